// Versioned GraphSAGE models on disk (util/versioned-dir.ts: atomic versions, a `current`
// pointer). Loading checks every shape against the config and vocabularies and refuses
// non-finite values.
import path from 'node:path';
import { z } from 'zod';
import { RecmasterError } from '../errors.js';
import { manifestFields, splitFloats, VersionedDir } from '../util/versioned-dir.js';
import { type SageConfig, SageModel, type SageWeights, WEIGHT_NAMES } from './sage-model.js';

const Manifest = z.strictObject({
  format: z.literal('recmaster-graphsage/1'),
  ...manifestFields,
  config: z.strictObject({
    dim: z.number().int().min(1).max(4096),
    maxTags: z.number().int().min(1).max(64),
    userFanout: z.number().int().min(1).max(10_000),
    queryFanout: z.number().int().min(1).max(10_000),
    itemFanout: z.number().int().min(1).max(10_000),
    /** Absent in models saved before item ID rows existed. */
    idEmbeddings: z.boolean().default(false),
  }),
  vocab: z.strictObject({
    categories: z.array(z.string()),
    tags: z.array(z.string()),
    creators: z.array(z.string()),
    items: z.array(z.string()).default([]),
  }),
});
export type ModelManifest = z.infer<typeof Manifest>;

export interface SavedModel {
  version: string;
  model: SageModel;
  manifest: ModelManifest;
}

export class GraphModelStore {
  private readonly files: VersionedDir;

  constructor(readonly dir: string) {
    this.files = new VersionedDir(dir);
  }

  /** Version names, oldest first. */
  versions(): Promise<string[]> {
    return this.files.versions();
  }

  async latest(): Promise<SavedModel | null> {
    const current = await this.files.current();
    return current ? this.load(current) : null;
  }

  async save(model: SageModel, training: ModelManifest['training']): Promise<string> {
    const w = model.weights;
    return this.files.write(
      (version): ModelManifest => ({
        format: 'recmaster-graphsage/1',
        version,
        createdMs: Date.now(),
        config: { ...model.config },
        vocab: { categories: w.categories, tags: w.tags, creators: w.creators, items: w.items },
        lengths: Object.fromEntries(WEIGHT_NAMES.map((n) => [n, w[n].length])),
        training,
      }),
      WEIGHT_NAMES.map((n) => w[n]),
    );
  }

  async load(version: string): Promise<SavedModel> {
    const stored = await this.files.read(version);
    const where = path.join(this.dir, version);
    const parsed = Manifest.safeParse(stored.manifest);
    if (!parsed.success)
      throw new RecmasterError(
        'E_MODEL_INVALID',
        `model ${where}: ${z.prettifyError(parsed.error)}`,
      );
    const manifest = parsed.data;
    const arrays = splitFloats(
      where,
      stored.weights,
      WEIGHT_NAMES.map((n) => manifest.lengths[n] ?? 0),
    );
    const weights: Partial<SageWeights> = { ...manifest.vocab };
    WEIGHT_NAMES.forEach((n, k) => {
      weights[n] = arrays[k] as Float32Array;
    });
    // SageModel checks shapes against config and vocabularies, and refuses NaN/Infinity.
    const config: SageConfig = manifest.config;
    return { version, manifest, model: new SageModel(config, weights as SageWeights) };
  }
}
