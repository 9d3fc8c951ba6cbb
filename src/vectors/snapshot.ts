// Crash-safe saves of an index directory. A save writes a new generation of files
// (`index-7.usearch`, `items-7.json`, ...) next to the current one, syncs them, then
// atomically replaces MANIFEST.json (temp file, sync, rename, sync the directory) to point
// at them, and only then deletes the old generation. A crash at any point leaves the
// manifest naming a complete generation; half-written files of an unfinished save are
// deleted on the next open.
import { mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { acquirePidLock, releasePidLock } from '../bus/log/pid-lock.js';
import { VectorIndexError } from './errors.js';
import type { Metric } from './vector-index.js';

const MANIFEST = 'MANIFEST.json';
const LOCK = 'LOCK';
/** Files a save writes: `<key>-<generation>.<ext>`. */
const SNAPSHOT_FILE = /^[a-z]+-\d+\.[a-z0-9]+$/;

const manifestSchema = z.object({
  format: z.literal(1),
  kind: z.string(),
  generation: z.number().int().positive(),
  savedAtMs: z.number(),
  dim: z.number().int().positive(),
  metric: z.enum(['ip', 'cosine']),
  size: z.number().int().nonnegative(),
  /** Implementation settings that are fixed at build time (e.g. HNSW connectivity). */
  settings: z.record(z.string(), z.union([z.number(), z.string()])),
  files: z.record(z.string(), z.object({ name: z.string(), bytes: z.number().int() })),
});
export type Manifest = z.infer<typeof manifestSchema>;
export type ManifestHeader = Omit<Manifest, 'format' | 'generation' | 'savedAtMs' | 'files'>;

/** Throws unless the saved index is of this kind, dimension and metric. */
export function checkManifest(
  manifest: Manifest,
  dir: string,
  kind: string,
  dim: number,
  metric: Metric,
): void {
  if (manifest.kind === kind && manifest.dim === dim && manifest.metric === metric) return;
  throw new VectorIndexError(
    'E_VECTOR_CONFIG',
    `${dir} holds a ${manifest.kind} index of dim ${manifest.dim}, metric ${manifest.metric}; ` +
      `asked for a ${kind} index of dim ${dim}, metric ${metric} ` +
      '(open it with those, or build the new one in another directory)',
  );
}

export function snapshotFileName(key: string, generation: number, ext: string): string {
  return `${key}-${generation}.${ext}`;
}

/** Creates the directory and takes its single-writer lock (two writers would mix generations). */
export async function openSnapshotDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await acquirePidLock(path.join(dir, LOCK), `vector index ${dir}`);
}

export async function releaseSnapshotDir(dir: string): Promise<void> {
  await releasePidLock(path.join(dir, LOCK));
}

/** The manifest, or null for a directory holding no index yet. Checks the files it names. */
export async function readManifest(dir: string): Promise<Manifest | null> {
  let text: string;
  try {
    text = await readFile(path.join(dir, MANIFEST), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  let parsed: Manifest;
  try {
    parsed = manifestSchema.parse(JSON.parse(text));
  } catch (err) {
    throw new VectorIndexError('E_VECTOR_CORRUPT', `${dir}/${MANIFEST} is not a valid manifest`, {
      cause: err,
    });
  }
  for (const { name, bytes } of Object.values(parsed.files)) {
    const actual = await stat(path.join(dir, name)).then(
      (s) => s.size,
      () => -1,
    );
    if (actual !== bytes)
      throw new VectorIndexError(
        'E_VECTOR_CORRUPT',
        `${dir}/${name} should hold ${bytes} bytes but ${actual < 0 ? 'is missing' : `holds ${actual}`}`,
      );
  }
  return parsed;
}

/**
 * Publishes generation `generation`, whose files (`files`: key -> file name in `dir`) the
 * caller has written completely. Returns the new manifest.
 */
export async function commitSnapshot(
  dir: string,
  generation: number,
  header: ManifestHeader,
  files: Record<string, string>,
): Promise<Manifest> {
  const described: Manifest['files'] = {};
  for (const [key, name] of Object.entries(files)) {
    const file = path.join(dir, name);
    await syncFile(file);
    described[key] = { name, bytes: (await stat(file)).size };
  }
  const manifest: Manifest = {
    format: 1,
    ...header,
    generation,
    savedAtMs: Date.now(),
    files: described,
  };
  const tmp = path.join(dir, `${MANIFEST}.tmp`);
  const handle = await open(tmp, 'w');
  try {
    await handle.writeFile(JSON.stringify(manifest, null, 2));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path.join(dir, MANIFEST));
  await syncFile(dir);
  await removeStale(dir, manifest);
  return manifest;
}

/** Deletes snapshot files the manifest does not name (old generations, unfinished saves). */
export async function removeStale(dir: string, manifest: Manifest | null): Promise<void> {
  const keep = new Set(Object.values(manifest?.files ?? {}).map((f) => f.name));
  for (const name of await readdir(dir)) {
    if (keep.has(name)) continue;
    if (SNAPSHOT_FILE.test(name) || name.endsWith('.tmp'))
      await unlink(path.join(dir, name)).catch(() => undefined);
  }
}

async function syncFile(file: string): Promise<void> {
  const handle = await open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
