// Versioned ranker models on disk (util/versioned-dir.ts: atomic versions and a `current`
// pointer that servers follow and operators roll back). Loading validates the manifest with
// zod, every array's length against the config, and refuses non-finite weights.
import path from 'node:path';
import { z } from 'zod';
import { RecmasterError } from '../errors.js';
import type { Rng } from '../util/rng.js';
import { manifestFields, splitFloats, VersionedDir } from '../util/versioned-dir.js';
import { MultiTaskNet } from './multitask.js';
import { type IdField, Ranker, type RankerConfig, type RankerWeights } from './ranker.js';

const ID_FIELDS = ['user', 'item', 'category', 'creator', 'tag'] as const;
const count = z
  .number()
  .int()
  .min(1)
  .max(1 << 24);

export const RankerConfigSchema = z.strictObject({
  architecture: z.enum(['mmoe', 'shared_bottom', 'single_task']),
  idDim: z.number().int().min(1).max(512),
  rows: z.strictObject({
    user: count.min(2),
    item: count.min(2),
    category: count.min(2),
    creator: count.min(2),
    tag: count.min(2),
  }),
  featureWidth: z.number().int().min(0).max(10_000),
  experts: count,
  expertDim: count,
  towerDim: count,
  fusion: z.strictObject({
    clickWeight: z.number().finite().min(0),
    watchWeight: z.number().finite().min(0),
  }),
});

const Manifest = z.strictObject({
  format: z.literal('recmaster-ranker/1'),
  ...manifestFields,
  config: RankerConfigSchema,
  /** The feature vector's slot names, in order: a model only serves with the same layout. */
  featureSlots: z.array(z.string()),
});
export type RankerManifest = z.infer<typeof Manifest>;

export interface SavedRanker {
  version: string;
  ranker: Ranker;
  manifest: RankerManifest;
}

export class RankerModelStore {
  readonly files: VersionedDir;

  constructor(
    readonly dir: string,
    /** Versions kept on disk (the online trainer publishes many). */
    keep = 50,
    /**
     * The feature slots this build's vectorizer makes: a version trained on other slots (the
     * feature catalogue changed since) is refused on load instead of failing, or reading the
     * wrong features, on every request. Unchecked when not given.
     */
    private readonly featureSlots?: readonly string[],
  ) {
    this.files = new VersionedDir(dir, keep);
  }

  versions(): Promise<string[]> {
    return this.files.versions();
  }

  /** Writes a new version; with `publish` the `current` pointer moves to it. */
  async save(
    ranker: Ranker,
    featureSlots: readonly string[],
    training: RankerManifest['training'],
    publish = true,
    /** The ranker's weights when the caller has just taken them (saves copying them again). */
    w: RankerWeights = ranker.weights(),
  ): Promise<string> {
    const names = [...w.net.keys()];
    const arrays = [
      ...names.map((n) => w.net.get(n) as Float32Array),
      ...ID_FIELDS.map((f) => w.tables[f]),
    ];
    return this.files.publish(
      (v): RankerManifest => ({
        format: 'recmaster-ranker/1',
        version: v,
        createdMs: Date.now(),
        config: ranker.config,
        featureSlots: [...featureSlots],
        lengths: Object.fromEntries([
          ...names.map((n) => [`net/${n}`, (w.net.get(n) as Float32Array).length]),
          ...ID_FIELDS.map((f) => [`table/${f}`, w.tables[f].length]),
        ]),
        training,
      }),
      arrays,
      publish,
    );
  }

  /** The version servers should use now (null before the first model). */
  current(): Promise<string | null> {
    return this.files.current();
  }

  async loadCurrent(rng: Rng): Promise<SavedRanker | null> {
    const v = await this.current();
    return v ? this.load(v, rng) : null;
  }

  async load(version: string, rng: Rng): Promise<SavedRanker> {
    const stored = await this.files.read(version);
    const where = path.join(this.dir, version);
    const parsed = Manifest.safeParse(stored.manifest);
    if (!parsed.success)
      throw new RecmasterError(
        'E_MODEL_INVALID',
        `model ${where}: ${z.prettifyError(parsed.error)}`,
      );
    const manifest = parsed.data;
    if (this.featureSlots) checkSlots(`model ${where}`, manifest.featureSlots, this.featureSlots);
    const config: RankerConfig = manifest.config;
    const netNames = MultiTaskNet.weightNames(Ranker.netConfig(config));
    const keys = [...netNames.map((n) => `net/${n}`), ...ID_FIELDS.map((f) => `table/${f}`)];
    const missing = keys.filter((k) => manifest.lengths[k] === undefined);
    if (missing.length > 0)
      throw new RecmasterError('E_MODEL_INVALID', `model ${where} lacks ${missing.join(', ')}`);
    const arrays = splitFloats(
      where,
      stored.weights,
      keys.map((k) => manifest.lengths[k] as number),
    );
    const net = new Map(netNames.map((n, k) => [n, arrays[k] as Float32Array]));
    const tables = Object.fromEntries(
      ID_FIELDS.map((f, k) => [f, arrays[netNames.length + k] as Float32Array]),
    ) as Record<IdField, Float32Array>;
    try {
      const ranker = await Ranker.create(config, rng, undefined, { net, tables });
      return { version, manifest, ranker };
    } catch (err) {
      throw new RecmasterError('E_MODEL_INVALID', `model ${where}: ${(err as Error).message}`);
    }
  }
}

/** Refuses (E_MODEL_INVALID) a model whose feature slots are not the expected ones. */
export function checkSlots(
  what: string,
  saved: readonly string[],
  expected: readonly string[],
): void {
  const mismatch = slotMismatch(saved, expected);
  if (mismatch)
    throw new RecmasterError(
      'E_MODEL_INVALID',
      `${what} was trained on other features than this build makes (${mismatch}): train a new one (\`recmaster train-rank --cold\`) or start in a new data directory`,
    );
}

/** How a model's feature slots differ from the expected ones, or null when they are the same. */
export function slotMismatch(saved: readonly string[], expected: readonly string[]): string | null {
  const n = Math.max(saved.length, expected.length);
  for (let i = 0; i < n; i++) {
    if (saved[i] !== expected[i])
      return `slot ${i}: the model has ${saved[i] ?? 'none'}, this build ${expected[i] ?? 'none'}; ${saved.length} against ${expected.length} slots`;
  }
  return null;
}
