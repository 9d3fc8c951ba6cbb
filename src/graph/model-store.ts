// Versioned GraphSAGE models on disk: <dir>/v000001/{model.json, weights.bin}. A version is
// written into a temporary directory, synced, then renamed into place, so a reader never sees
// half a model and a crash leaves at most a stray temporary directory. Loading checks every
// shape against the config and vocabularies and refuses non-finite values.
import {
  mkdir,
  open as openFile,
  readdir,
  readFile,
  rename,
  rm,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { type SageConfig, SageModel, type SageWeights, WEIGHT_NAMES } from './sage-model.js';

const Manifest = z.strictObject({
  format: z.literal('recmaster-graphsage/1'),
  version: z.string().regex(/^v\d{6}$/),
  createdMs: z.number().int(),
  config: z.strictObject({
    dim: z.number().int().min(1).max(4096),
    maxTags: z.number().int().min(1).max(64),
    userFanout: z.number().int().min(1).max(10_000),
    queryFanout: z.number().int().min(1).max(10_000),
    itemFanout: z.number().int().min(1).max(10_000),
  }),
  vocab: z.strictObject({
    categories: z.array(z.string()),
    tags: z.array(z.string()),
    creators: z.array(z.string()),
  }),
  /** Weight name -> number of float32 values, in weights.bin order. */
  lengths: z.record(z.string(), z.number().int().nonnegative()),
  /** Free-form training facts (steps, loss, data size, the version it warm-started from). */
  training: z.record(z.string(), z.union([z.string(), z.number(), z.null()])),
});
export type ModelManifest = z.infer<typeof Manifest>;

export interface SavedModel {
  version: string;
  model: SageModel;
  manifest: ModelManifest;
}

export class GraphModelStore {
  constructor(readonly dir: string) {}

  /** Version names, oldest first. */
  async versions(): Promise<string[]> {
    try {
      return (await readdir(this.dir)).filter((n) => /^v\d{6}$/.test(n)).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  async latest(): Promise<SavedModel | null> {
    const versions = await this.versions();
    const last = versions.at(-1);
    return last ? this.load(last) : null;
  }

  async save(model: SageModel, training: ModelManifest['training']): Promise<string> {
    await mkdir(this.dir, { recursive: true });
    const versions = await this.versions();
    const next = Number((versions.at(-1) ?? 'v000000').slice(1)) + 1;
    const version = `v${String(next).padStart(6, '0')}`;
    const w = model.weights;
    const manifest: ModelManifest = {
      format: 'recmaster-graphsage/1',
      version,
      createdMs: Date.now(),
      config: { ...model.config },
      vocab: { categories: w.categories, tags: w.tags, creators: w.creators },
      lengths: Object.fromEntries(WEIGHT_NAMES.map((n) => [n, w[n].length])),
      training,
    };
    const tmp = path.join(this.dir, `.tmp-${version}-${process.pid}`);
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp);
    const bytes = Buffer.concat(
      WEIGHT_NAMES.map((n) => Buffer.from(w[n].buffer, w[n].byteOffset, w[n].byteLength)),
    );
    await writeSynced(path.join(tmp, 'weights.bin'), bytes);
    await writeSynced(path.join(tmp, 'model.json'), JSON.stringify(manifest));
    await rename(tmp, path.join(this.dir, version));
    return version;
  }

  async load(version: string): Promise<SavedModel> {
    const where = path.join(this.dir, version);
    let manifest: ModelManifest;
    try {
      manifest = Manifest.parse(JSON.parse(await readFile(path.join(where, 'model.json'), 'utf8')));
    } catch (err) {
      throw new Error(`model ${where} has no valid model.json: ${(err as Error).message}`);
    }
    const bytes = await readFile(path.join(where, 'weights.bin'));
    const total = WEIGHT_NAMES.reduce((n, k) => n + (manifest.lengths[k] ?? 0), 0);
    if (bytes.length !== total * 4)
      throw new Error(
        `model ${where}: weights.bin has ${bytes.length} bytes, expected ${total * 4}`,
      );
    const floats = new Float32Array(
      bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length),
    );
    const weights: Partial<SageWeights> = { ...manifest.vocab };
    let at = 0;
    for (const n of WEIGHT_NAMES) {
      const len = manifest.lengths[n] ?? 0;
      weights[n] = floats.subarray(at, at + len);
      at += len;
    }
    // SageModel checks shapes against config and vocabularies, and refuses NaN/Infinity.
    const config: SageConfig = manifest.config;
    return { version, manifest, model: new SageModel(config, weights as SageWeights) };
  }
}

async function writeSynced(file: string, data: string | Buffer): Promise<void> {
  await writeFile(file, data);
  const fh = await openFile(file, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
