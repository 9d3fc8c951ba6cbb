// Versioned model files on disk: <dir>/v000001/{model.json, weights.bin}, plus a `current`
// pointer saying which version serves. A version is written into a temporary directory,
// synced, then renamed into place, so a reader never sees half a model and a crash leaves at
// most a stray temporary directory. The pointer is replaced atomically (write, sync, rename),
// which is what lets a server swap models by watching one small file, and an operator roll
// back by pointing it at an older version.
//
// Reads (the pointer, a version's files) are synchronous on purpose: a server checks the
// pointer every few ms and loads a version while answering requests, and under load every
// async step (open, stat, each 512 KiB chunk, close) waits behind the queued requests: a
// swap took ~17 of them. These are small local files, read from the page cache in well
// under a millisecond.

import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, open as openFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { RecmasterError } from '../errors.js';

const VERSION = /^v\d{6}$/;
const POINTER = 'current';

/** Fields every model.json here has, whatever the model: spread into each store's schema. */
export const manifestFields = {
  version: z.string().regex(VERSION),
  createdMs: z.number().int(),
  /** Array name -> number of float32 values, in weights.bin order. */
  lengths: z.record(z.string(), z.number().int().nonnegative()),
  /** Free-form training facts (steps, loss, data size, the version it started from). */
  training: z.record(z.string(), z.union([z.string(), z.number(), z.null()])),
};

export interface StoredVersion {
  version: string;
  /** model.json, parsed but not validated (the caller owns its schema). */
  manifest: unknown;
  weights: Buffer;
}

export class VersionedDir {
  constructor(
    readonly dir: string,
    /** Versions kept on disk (the oldest are removed as new ones are written). 0 = all. */
    readonly keep = 0,
  ) {}

  /** Version names, oldest first. */
  async versions(): Promise<string[]> {
    return this.versionsSync();
  }

  private versionsSync(): string[] {
    try {
      return readdirSync(this.dir)
        .filter((n) => VERSION.test(n))
        .sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  /**
   * Writes a new version (numbered after the newest) and returns its name. `manifest` gets the
   * name it will have. Does not move the `current` pointer: publishing is a separate decision;
   * `publish` does both and prunes after the pointer has moved.
   */
  async write(
    manifest: (version: string) => object,
    arrays: readonly Float32Array[],
  ): Promise<string> {
    return this.writeVersion(manifest, arrays, false);
  }

  private async writeVersion(
    manifest: (version: string) => object,
    arrays: readonly Float32Array[],
    makeCurrent: boolean,
  ): Promise<string> {
    await mkdir(this.dir, { recursive: true });
    const versions = await this.versions();
    const next = Number((versions.at(-1) ?? 'v000000').slice(1)) + 1;
    const version = `v${String(next).padStart(6, '0')}`;
    const tmp = path.join(this.dir, `.tmp-${version}-${process.pid}`);
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp);
    const bytes = Buffer.concat(
      arrays.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)),
    );
    // The files and the new pointer are written and synced together (one round of fsync
    // instead of two); the pointer is renamed into place only after the version directory,
    // so no reader sees it name a version that is not there.
    const [, , pointer] = await Promise.all([
      writeSynced(path.join(tmp, 'weights.bin'), bytes),
      writeSynced(path.join(tmp, 'model.json'), JSON.stringify(manifest(version))),
      makeCurrent ? this.writePointer(version) : undefined,
    ]);
    await rename(tmp, path.join(this.dir, version));
    if (pointer) await rename(pointer, path.join(this.dir, POINTER));
    return version;
  }

  /**
   * Writes a new version; with `makeCurrent`, points serving at it. Old versions beyond `keep`
   * are removed last, once readers can already see the new pointer (removing them first put
   * a directory removal on every online publish's path to serving).
   */
  async publish(
    manifest: (version: string) => object,
    arrays: readonly Float32Array[],
    makeCurrent = true,
  ): Promise<string> {
    const version = await this.writeVersion(manifest, arrays, makeCurrent);
    await this.prune();
    return version;
  }

  async read(version: string): Promise<StoredVersion> {
    if (!VERSION.test(version))
      throw new RecmasterError('E_CONFIG', `"${version}" is not a model version (v000001, ...)`);
    const where = path.join(this.dir, version);
    let manifest: unknown;
    try {
      manifest = JSON.parse(readFileSync(path.join(where, 'model.json'), 'utf8'));
    } catch (err) {
      throw new RecmasterError(
        'E_MODEL_INVALID',
        `model ${where} has no readable model.json: ${(err as Error).message}`,
      );
    }
    return { version, manifest, weights: readFileSync(path.join(where, 'weights.bin')) };
  }

  /** The serving version: the pointer when set, else the newest version; null when empty. */
  async current(): Promise<string | null> {
    try {
      const v = readFileSync(path.join(this.dir, POINTER), 'utf8').trim();
      if (VERSION.test(v)) return v;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    return this.versionsSync().at(-1) ?? null;
  }

  /** Points serving at `version` (which must exist). Atomic: readers see the old or the new. */
  async setCurrent(version: string): Promise<void> {
    const versions = await this.versions();
    if (!versions.includes(version))
      throw new RecmasterError(
        'E_CONFIG',
        `no model version ${version} in ${this.dir} (have: ${versions.join(', ') || 'none'})`,
      );
    await rename(await this.writePointer(version), path.join(this.dir, POINTER));
  }

  /** A synced pointer file naming `version`, beside the real one (rename it into place). */
  private async writePointer(version: string): Promise<string> {
    const tmp = path.join(this.dir, `.${POINTER}-${process.pid}`);
    await writeSynced(tmp, `${version}\n`);
    return tmp;
  }

  private async prune(): Promise<void> {
    if (this.keep <= 0) return;
    const versions = await this.versions();
    const current = await this.current();
    for (const v of versions.slice(0, Math.max(0, versions.length - this.keep))) {
      if (v !== current) await rm(path.join(this.dir, v), { recursive: true, force: true });
    }
  }
}

/** The float32 arrays of `bytes`, in order, with the given lengths (checked against the size). */
export function splitFloats(
  where: string,
  bytes: Buffer,
  lengths: readonly number[],
): Float32Array[] {
  const total = lengths.reduce((a, b) => a + b, 0);
  if (bytes.length !== total * 4)
    throw new RecmasterError(
      'E_MODEL_INVALID',
      `model ${where}: weights.bin has ${bytes.length} bytes, expected ${total * 4}`,
    );
  const floats = new Float32Array(
    bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length),
  );
  const out: Float32Array[] = [];
  let at = 0;
  for (const len of lengths) {
    out.push(floats.subarray(at, at + len));
    at += len;
  }
  return out;
}

/** Writes and fsyncs through one handle (each step is a trip to the thread pool). */
async function writeSynced(file: string, data: string | Buffer): Promise<void> {
  const fh = await openFile(file, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
}
