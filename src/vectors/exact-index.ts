// Brute-force vector index: scores the query against every stored vector. Exact, so it
// is the ground truth for the HNSW index's recall, and the simplest right choice for a
// small catalogue (about 1 ms per 20k vectors of dim 64). Filters are applied inside the
// scan, so a filtered search is exact too. Same persistence as UsearchIndex: a snapshot
// generation of the item table plus the raw vectors (little-endian float32 rows).
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
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
import {
  checkBatch,
  checkDim,
  checkK,
  checkVector,
  copyVector,
  dotRow,
  TopK,
} from './vector-math.js';

export class ExactIndex implements VectorIndex {
  readonly kind = 'exact';
  readonly dim: number;
  readonly metric: Metric;
  private readonly dir: string | undefined;
  private table: SlotTable;
  /** Row `slot` holds the vector of the item on that slot (normalised for cosine). */
  private matrix: Float32Array;
  private generation: number;
  private dirty = false;
  private closed = false;
  private saving: Promise<void> = Promise.resolve();

  private constructor(
    options: VectorIndexOptions,
    table: SlotTable,
    matrix: Float32Array,
    generation: number,
  ) {
    this.dim = options.dim;
    this.metric = options.metric ?? 'ip';
    this.dir = options.dir;
    this.table = table;
    this.matrix = matrix;
    this.generation = generation;
  }

  /** Opens the index saved in `options.dir`, or creates an empty one. */
  static async open(options: VectorIndexOptions): Promise<ExactIndex> {
    checkDim(options.dim);
    const { dir, dim } = options;
    const empty = () => new ExactIndex(options, new SlotTable(), new Float32Array(1024 * dim), 0);
    if (dir === undefined) return empty();
    await openSnapshotDir(dir);
    try {
      const manifest = await readManifest(dir);
      await removeStale(dir, manifest);
      if (manifest === null) return empty();
      checkManifest(manifest, dir, 'exact', dim, options.metric ?? 'ip');
      const { items: itemsFile, vectors: vectorsFile } = manifest.files;
      if (!itemsFile || !vectorsFile)
        throw new VectorIndexError('E_VECTOR_CORRUPT', `${dir}: manifest lacks items or vectors`);
      const itemsPath = path.join(dir, itemsFile.name);
      const json: unknown = JSON.parse(await readFile(itemsPath, 'utf8'));
      const table = SlotTable.fromJSON(json, itemsPath);
      const bytes = await readFile(path.join(dir, vectorsFile.name));
      if (bytes.length !== table.size * dim * 4)
        throw new VectorIndexError(
          'E_VECTOR_CORRUPT',
          `${dir}/${vectorsFile.name} holds ${bytes.length} bytes, expected ${table.size * dim * 4}`,
        );
      const rows = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
      const matrix = new Float32Array(Math.max(table.slotLimit, 1024) * dim);
      // Rows were written in the table's slot order (see saveNow).
      const slots = (json as { slots: number[] }).slots;
      for (let i = 0; i < slots.length; i += 1)
        matrix.set(rows.subarray(i * dim, (i + 1) * dim), (slots[i] as number) * dim);
      return new ExactIndex(options, table, matrix, manifest.generation);
    } catch (err) {
      await releaseSnapshotDir(dir);
      throw err;
    }
  }

  async upsert(items: readonly VectorItem[]): Promise<void> {
    this.live();
    for (const i of checkBatch(items, this.dim, this.metric)) {
      const item = items[i] as VectorItem;
      const { slot } = this.table.assign(item.id, item.attrs);
      this.ensureRows(slot + 1);
      copyVector(item.vector, this.metric, this.matrix, slot * this.dim);
    }
    if (items.length > 0) this.dirty = true;
  }

  async remove(ids: readonly string[]): Promise<number> {
    this.live();
    let removed = 0;
    for (const id of ids) if (this.table.release(id) !== undefined) removed += 1;
    if (removed > 0) this.dirty = true;
    return removed;
  }

  async search(query: Float32Array, k: number, filter?: SearchFilter): Promise<SearchHit[]> {
    this.live();
    checkVector(query, this.dim, this.metric, 'query');
    checkK(k);
    const q = new Float32Array(this.dim);
    copyVector(query, this.metric, q);
    const compiled = this.table.compile(filter);
    const accept = compiled?.accept;
    const top = new TopK(Math.min(k, Math.max(this.table.size, 1)));
    const { table, matrix } = this;
    const limit = table.slotLimit;
    for (let slot = 0; slot < limit; slot += 1) {
      const score = dotRow(q, matrix, slot);
      if (score <= top.threshold) continue;
      if (table.idAt(slot) === undefined || (accept !== undefined && !accept(slot))) continue;
      top.push(score, slot);
    }
    return top.sorted().map(({ score, slot }) => ({ id: table.idAt(slot) as string, score }));
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
    const next = this.saving.then(() => this.saveNow());
    this.saving = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.save();
    } finally {
      this.closed = true;
      this.matrix = new Float32Array(0);
      this.table = new SlotTable();
      if (this.dir !== undefined) await releaseSnapshotDir(this.dir);
    }
  }

  private async saveNow(): Promise<void> {
    const { dir } = this;
    if (dir === undefined || !this.dirty) return;
    const generation = this.generation + 1;
    const files = {
      items: snapshotFileName('items', generation, 'json'),
      vectors: snapshotFileName('vectors', generation, 'f32'),
    };
    // Capture synchronously: rows in the table's slot order.
    const json = this.table.toJSON();
    const rows = new Float32Array(json.slots.length * this.dim);
    for (let i = 0; i < json.slots.length; i += 1) {
      const from = (json.slots[i] as number) * this.dim;
      rows.set(this.matrix.subarray(from, from + this.dim), i * this.dim);
    }
    const items = JSON.stringify(json);
    this.dirty = false;
    try {
      await writeFile(path.join(dir, files.items), items);
      await writeFile(path.join(dir, files.vectors), new Uint8Array(rows.buffer));
      await commitSnapshot(
        dir,
        generation,
        {
          kind: this.kind,
          dim: this.dim,
          metric: this.metric,
          size: json.slots.length,
          settings: {},
        },
        files,
      );
      this.generation = generation;
    } catch (err) {
      this.dirty = true;
      throw err;
    }
  }

  private ensureRows(rows: number): void {
    if (rows * this.dim <= this.matrix.length) return;
    let cap = this.matrix.length / this.dim;
    while (cap < rows) cap *= 2;
    const grown = new Float32Array(cap * this.dim);
    grown.set(this.matrix);
    this.matrix = grown;
  }

  private live(): void {
    if (this.closed)
      throw new VectorIndexError('E_VECTOR_CLOSED', `the ${this.kind} vector index is closed`);
  }
}
