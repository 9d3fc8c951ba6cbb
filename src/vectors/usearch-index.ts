// The embedded vector index: an HNSW graph from usearch (native, prebuilt, runs in
// process). usearch keys are unsigned integers, so string ids live in a SlotTable next
// to it; both are saved together as one snapshot generation (see snapshot.ts).
//
// Durability: changes are in memory until save() (close() saves too). A crash loses
// what changed since the last save, never the saved index; the caller re-upserts the
// current embeddings, which it has anyway (they come from the GNN's embedding table).
//
// Filtering: the npm binding (2.25) exposes no filter predicate to the native search
// (the C++ core has one), so a filtered search over-fetches and filters the hits: it asks
// for k divided by the share of items the filter can pass (known for categories), plus
// the excluded ids (likely near the query: they are what the user saw), and grows the
// fetch by the pass rate it observed until k hits pass. Cheap for broad filters; a filter
// passing 1% of items turns a top-500 search into a top-60k one. Milvus filters inside
// the graph walk instead.
//
// The native calls are synchronous: a search blocks the event loop for its ~1-2 ms; a
// large upsert is cut into chunks with a yield between them.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Index, MetricKind, ScalarKind } from 'usearch';
import { VectorIndexError } from './errors.js';
import { SlotTable } from './slot-table.js';
import {
  checkManifest,
  commitSnapshot,
  openSnapshotDir,
  readManifest,
  releaseSnapshotDir,
  removeStale,
  snapshotFileName,
} from './snapshot.js';
import type {
  Metric,
  SearchFilter,
  SearchHit,
  VectorIndex,
  VectorIndexOptions,
  VectorItem,
} from './vector-index.js';
import { checkBatch, checkDim, checkK, checkVector, copyVector } from './vector-math.js';

export interface UsearchIndexOptions extends VectorIndexOptions {
  /**
   * HNSW graph degree (links per node on upper levels, twice that on the base level).
   * More links: better recall at a given search effort, more memory, slower inserts.
   * Fixed when the index is created (stored in it).
   */
  connectivity?: number;
  /** Candidate list size while inserting (graph quality vs build time). */
  expansionAdd?: number;
  /** Candidate list size while searching; a search for k uses max(k, this). */
  expansionSearch?: number;
  /**
   * How the graph stores vectors (the API takes and scores float32 queries either way).
   * 'bf16' halves memory and memory traffic, which is what a search at 1M items waits on;
   * scores then carry ~3 significant digits (use 'f32' where scores must be exact). Fixed
   * when the index is created.
   */
  quantization?: Quantization;
  /** Threads for batch inserts (0: one per core). Searches use one thread each. */
  threads?: number;
}

/** No i8: usearch scales to int8 assuming unit vectors, which 'ip' does not promise. */
export type Quantization = 'f32' | 'f16' | 'bf16';

const SCALAR_KIND: Record<Quantization, ScalarKind> = {
  f32: ScalarKind.F32,
  f16: ScalarKind.F16,
  bf16: ScalarKind.BF16,
};

/**
 * Tuned on bench/ann.ts (1M clustered vectors, dim 64, top-500, 2 cores): connectivity 12
 * with bf16 storage met P99 <= 3 ms and recall@100 >= 0.95 with margin on both; f32 with
 * connectivity 16 had the best recall (0.997) but twice the latency; connectivity 8 lost
 * recall (0.94-0.96) without being faster than 12 in bf16.
 */
export const USEARCH_DEFAULTS = {
  connectivity: 12,
  quantization: 'bf16' as Quantization,
  expansionAdd: 128,
  expansionSearch: 128,
};

/** Items per native add call: big enough to keep the threads busy, small enough to yield. */
const CHUNK = 16_384;
/** Over-fetch margin on top of the filter's estimated pass rate. */
const OVERFETCH = 1.25;

/** What is fixed when an index is created (stored in its manifest). */
interface BuildSettings {
  connectivity: number;
  quantization: Quantization;
}

export class UsearchIndex implements VectorIndex {
  readonly kind = 'usearch';
  readonly dim: number;
  readonly metric: Metric;
  readonly settings: Readonly<BuildSettings>;
  private readonly dir: string | undefined;
  private readonly threads: number;
  private index: Index | undefined;
  private readonly table: SlotTable;
  private generation: number;
  private dirty = false;
  private saving: Promise<void> = Promise.resolve();

  private constructor(
    options: UsearchIndexOptions,
    settings: BuildSettings,
    index: Index,
    table: SlotTable,
    generation: number,
  ) {
    this.dim = options.dim;
    this.metric = options.metric ?? 'ip';
    this.dir = options.dir;
    this.threads = options.threads ?? 0;
    this.settings = settings;
    this.index = index;
    this.table = table;
    this.generation = generation;
  }

  /** Opens the index saved in `options.dir`, or creates an empty one. */
  static async open(options: UsearchIndexOptions): Promise<UsearchIndex> {
    checkDim(options.dim);
    const metric = options.metric ?? 'ip';
    const make = (settings: BuildSettings) =>
      new Index({
        dimensions: options.dim,
        // Cosine vectors are normalised on the way in, so inner product ranks them.
        metric: MetricKind.IP,
        quantization: SCALAR_KIND[settings.quantization],
        connectivity: settings.connectivity,
        expansion_add: options.expansionAdd ?? USEARCH_DEFAULTS.expansionAdd,
        expansion_search: options.expansionSearch ?? USEARCH_DEFAULTS.expansionSearch,
        multi: false,
      });
    const fresh: BuildSettings = {
      connectivity: options.connectivity ?? USEARCH_DEFAULTS.connectivity,
      quantization: options.quantization ?? USEARCH_DEFAULTS.quantization,
    };
    if (!(fresh.quantization in SCALAR_KIND))
      throw new VectorIndexError('E_VECTOR_INVALID', `unknown quantization ${fresh.quantization}`);
    const { dir } = options;
    if (dir === undefined) return new UsearchIndex(options, fresh, make(fresh), new SlotTable(), 0);

    await openSnapshotDir(dir);
    try {
      const manifest = await readManifest(dir);
      await removeStale(dir, manifest);
      if (manifest === null)
        return new UsearchIndex(options, fresh, make(fresh), new SlotTable(), 0);
      checkManifest(manifest, dir, 'usearch', options.dim, metric);
      // The saved index keeps the settings it was built with, whatever options say.
      const { connectivity, quantization } = manifest.settings;
      if (typeof connectivity !== 'number' || !(String(quantization) in SCALAR_KIND))
        throw new VectorIndexError('E_VECTOR_CORRUPT', `${dir}: manifest lacks build settings`);
      const settings: BuildSettings = { connectivity, quantization: quantization as Quantization };
      const { index: indexFile, items: itemsFile } = manifest.files;
      if (!indexFile || !itemsFile)
        throw new VectorIndexError('E_VECTOR_CORRUPT', `${dir}: manifest lacks index or items`);
      const itemsPath = path.join(dir, itemsFile.name);
      const table = SlotTable.fromJSON(JSON.parse(await readFile(itemsPath, 'utf8')), itemsPath);
      const index = make(settings);
      try {
        index.load(path.join(dir, indexFile.name));
      } catch (err) {
        throw new VectorIndexError('E_VECTOR_CORRUPT', `${dir}: cannot load ${indexFile.name}`, {
          cause: err,
        });
      }
      if (index.dimensions() !== options.dim || index.size() !== table.size)
        throw new VectorIndexError(
          'E_VECTOR_CORRUPT',
          `${dir}: ${indexFile.name} holds ${index.size()} vectors of dim ${index.dimensions()}, ` +
            `expected ${table.size} of dim ${options.dim}`,
        );
      return new UsearchIndex(options, settings, index, table, manifest.generation);
    } catch (err) {
      await releaseSnapshotDir(dir);
      throw err;
    }
  }

  async upsert(items: readonly VectorItem[]): Promise<void> {
    const index = this.live();
    const order = checkBatch(items, this.dim, this.metric);
    for (let start = 0; start < order.length; start += CHUNK) {
      if (start > 0) await yieldToLoop();
      const chunk = order.slice(start, start + CHUNK);
      const keys = new BigUint64Array(chunk.length);
      const matrix = new Float32Array(chunk.length * this.dim);
      const replaced: bigint[] = [];
      for (let j = 0; j < chunk.length; j += 1) {
        const item = items[chunk[j] as number] as VectorItem;
        const { slot, existed } = this.table.assign(item.id, item.attrs);
        keys[j] = BigInt(slot);
        if (existed) replaced.push(BigInt(slot));
        copyVector(item.vector, this.metric, matrix, j * this.dim);
      }
      this.dirty = true;
      try {
        // usearch refuses a key it holds: replacing is remove then add.
        if (replaced.length > 0) index.remove(BigUint64Array.from(replaced));
        index.add(keys, matrix, this.threads);
      } catch (err) {
        // Leave table and graph agreeing: this chunk's items are now absent.
        index.remove(keys);
        for (const j of chunk) this.table.release((items[j] as VectorItem).id);
        throw err;
      }
    }
  }

  async remove(ids: readonly string[]): Promise<number> {
    const index = this.live();
    const keys: bigint[] = [];
    for (const id of ids) {
      const slot = this.table.release(id);
      if (slot !== undefined) keys.push(BigInt(slot));
    }
    if (keys.length > 0) {
      index.remove(BigUint64Array.from(keys));
      this.dirty = true;
    }
    return keys.length;
  }

  async search(query: Float32Array, k: number, filter?: SearchFilter): Promise<SearchHit[]> {
    const index = this.live();
    checkVector(query, this.dim, this.metric, 'query');
    checkK(k);
    const size = this.table.size;
    if (size === 0) return [];
    const q = new Float32Array(this.dim);
    copyVector(query, this.metric, q);
    const compiled = this.table.compile(filter);
    if (compiled === null) return this.hits(index.search(q, Math.min(k, size), 1), k, null);

    const want = Math.min(k, compiled.eligible);
    if (want === 0) return [];
    let fetch = Math.min(
      size,
      Math.ceil((want * size * OVERFETCH) / compiled.eligible) + compiled.excluded + 16,
    );
    for (;;) {
      const matches = index.search(q, fetch, 1);
      const hits = this.hits(matches, k, compiled.accept);
      if (hits.length >= want || fetch >= size) return hits;
      // Too few passed: grow the fetch by the pass rate seen so far (at least double).
      const passRate = Math.max(hits.length, 1) / Math.max(matches.keys.length, 1);
      fetch = Math.min(size, Math.max(fetch * 2, Math.ceil((want / passRate) * OVERFETCH)));
    }
  }

  async size(): Promise<number> {
    this.live();
    return this.table.size;
  }

  async has(id: string): Promise<boolean> {
    this.live();
    return this.table.slotOf(id) !== undefined;
  }

  async save(): Promise<void> {
    this.live();
    // One save at a time; a save that starts after changes always writes them.
    const next = this.saving.then(() => this.saveNow());
    this.saving = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    if (this.index === undefined) return;
    try {
      await this.save();
    } finally {
      this.index = undefined;
      if (this.dir !== undefined) await releaseSnapshotDir(this.dir);
    }
  }

  private async saveNow(): Promise<void> {
    const { dir, index } = this;
    if (dir === undefined || index === undefined || !this.dirty) return;
    const generation = this.generation + 1;
    const files = {
      index: snapshotFileName('index', generation, 'usearch'),
      items: snapshotFileName('items', generation, 'json'),
    };
    // Capture both halves synchronously, so no upsert can slip in between them.
    const items = JSON.stringify(this.table.toJSON());
    index.save(path.join(dir, files.index));
    const size = this.table.size;
    this.dirty = false;
    try {
      await writeFile(path.join(dir, files.items), items);
      await commitSnapshot(
        dir,
        generation,
        {
          kind: this.kind,
          dim: this.dim,
          metric: this.metric,
          size,
          settings: { ...this.settings },
        },
        files,
      );
      this.generation = generation;
    } catch (err) {
      this.dirty = true;
      throw err;
    }
  }

  /** Search results as hits: ids for keys, scores for distances, filtered, at most k. */
  private hits(
    matches: { keys: BigUint64Array; distances: Float32Array },
    k: number,
    accept: ((slot: number) => boolean) | null,
  ): SearchHit[] {
    const out: SearchHit[] = [];
    const { keys, distances } = matches;
    for (let i = 0; i < keys.length && out.length < k; i += 1) {
      const slot = Number(keys[i]);
      if (accept !== null && !accept(slot)) continue;
      const id = this.table.idAt(slot);
      // usearch's inner-product distance is 1 - dot.
      if (id !== undefined) out.push({ id, score: 1 - (distances[i] as number) });
    }
    return out;
  }

  private live(): Index {
    if (this.index === undefined)
      throw new VectorIndexError('E_VECTOR_CLOSED', `the ${this.kind} vector index is closed`);
    return this.index;
  }
}
