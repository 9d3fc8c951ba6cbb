// GNN recall, live: the graph follows the bus, a new item is embedded from its metadata and
// put in the vector index as its upsert is applied (no retraining), an item whose users change
// is re-embedded now and then, and a user's query is computed from the graph at request time,
// so a click changes that user's candidates at once.
import { build as buildHistogram, type Histogram } from 'hdr-histogram-js';
import type { Event } from '../events/schemas.js';
import type { SearchFilter, SearchHit, VectorIndex, VectorItem } from '../vectors/index.js';
import type { InteractionGraph } from './graph.js';
import { dotAt, ItemVectors } from './item-vectors.js';
import { GraphEmbeddings, itemMetaOf, type SageModel } from './sage-model.js';

export interface GnnRecallOptions {
  /** Re-embed an item with new interactions at most this often (event time). Default 60 s. */
  reembedEveryMs?: number;
}

export class GnnRecall {
  private embeddings: GraphEmbeddings;
  private readonly reembedEveryMs: number;
  /** Event time an item was last embedded, by item index. */
  private readonly embeddedAt: number[] = [];
  /** Each item's vector as last put in the index (for scoring candidates from other sources). */
  private readonly vectors: ItemVectors;
  /** Wall-clock µs from applying an item upsert to its vector being searchable. */
  readonly newItemLatencyUs: Histogram = buildHistogram({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });

  constructor(
    readonly graph: InteractionGraph,
    readonly index: VectorIndex,
    model: SageModel,
    options: GnnRecallOptions = {},
  ) {
    this.embeddings = new GraphEmbeddings(model, graph);
    this.vectors = new ItemVectors(model.vectorDim, Math.max(1024, graph.itemCount));
    this.reembedEveryMs = options.reembedEveryMs ?? 60_000;
  }

  get model(): SageModel {
    return this.embeddings.model;
  }

  /** Swaps in a new model and re-embeds every item (the index keeps serving meanwhile). */
  async setModel(model: SageModel): Promise<void> {
    if (model.vectorDim !== this.index.dim)
      throw new Error(
        `model vectors have ${model.vectorDim} dimensions, the index ${this.index.dim}`,
      );
    this.embeddings = new GraphEmbeddings(model, this.graph);
    await this.embedAll();
  }

  /** Embeds every item of the graph into the index, in batches. */
  async embedAll(batch = 5000): Promise<void> {
    for (let start = 0; start < this.graph.itemCount; start += batch) {
      const items: VectorItem[] = [];
      const end = Math.min(this.graph.itemCount, start + batch);
      for (let i = start; i < end; i++) items.push(this.vectorItem(i));
      await this.index.upsert(items);
    }
  }

  /** Applies events to the graph and updates the index for what they changed. */
  async apply(events: readonly Event[]): Promise<void> {
    const upserted = new Set<number>();
    const touched = new Set<number>();
    const started: number[] = [];
    for (const e of events) {
      this.graph.apply(e);
      if (e.type === 'item_upsert') {
        const i = this.graph.itemIndexOf(e.itemId);
        if (i !== undefined && !upserted.has(i)) {
          upserted.add(i);
          started.push(performance.now());
        }
      } else if (e.type === 'click' || e.type === 'watch') {
        const i = this.graph.itemIndexOf(e.itemId);
        if (i !== undefined && e.ts - (this.embeddedAt[i] ?? 0) >= this.reembedEveryMs)
          touched.add(i);
      }
    }
    if (upserted.size === 0 && touched.size === 0) return;
    const items: VectorItem[] = [];
    for (const i of upserted) items.push(this.vectorItem(i, true));
    for (const i of touched) if (!upserted.has(i)) items.push(this.vectorItem(i));
    await this.index.upsert(items);
    const now = performance.now();
    for (const t of started)
      this.newItemLatencyUs.recordValue(Math.max(1, Math.round((now - t) * 1000)));
  }

  /** The user's query vector from the graph now; null for a user with no interactions. */
  query(userId: string): Float32Array | null {
    const u = this.graph.userIndexOf(userId);
    return u === undefined ? null : this.embeddings.userQuery(u);
  }

  /**
   * The affinity of a query with each item's vector (what ANN recall ranks by), items given by
   * their graph index; NaN for a negative index (an item not in the graph).
   */
  scores(query: Float32Array, items: ArrayLike<number>): Float32Array {
    if (query.length !== this.vectors.dim)
      throw new Error(`query has ${query.length} dimensions, item vectors ${this.vectors.dim}`);
    const out = new Float32Array(items.length);
    for (let k = 0; k < items.length; k++) {
      const i = items[k] as number;
      if (i < 0 || i >= this.graph.itemCount) out[k] = Number.NaN;
      else if (this.vectors.has(i)) out[k] = this.vectors.dot(i, query);
      else out[k] = dotAt(this.embeddings.itemEmbedding(i), 0, query); // not embedded yet
    }
    return out;
  }

  /** The user's candidates, best first; empty for a user with no interactions (use a fallback). */
  async recall(userId: string, k: number, filter?: SearchFilter): Promise<SearchHit[]> {
    const query = this.query(userId);
    return query ? this.search(query, k, filter) : [];
  }

  /** The nearest items to a query (recall with a query already computed). */
  search(query: Float32Array, k: number, filter?: SearchFilter): Promise<SearchHit[]> {
    return this.index.search(query, k, filter);
  }

  private vectorItem(i: number, fresh = false): VectorItem {
    const node = this.graph.items[i];
    if (!node) throw new Error(`no item at index ${i}`);
    // An upsert may have changed the metadata: recompute its meta representation.
    if (fresh) this.embeddings.metas[i] = this.embeddings.model.meta(itemMetaOf(this.graph, node));
    this.embeddedAt[i] = this.graph.newestMs;
    const vector = this.embeddings.itemEmbedding(i);
    this.vectors.set(i, vector);
    return {
      id: node.id,
      vector,
      attrs: {
        category: this.graph.categories.names[node.category] as string,
        createdMs: node.createdMs,
      },
    };
  }
}
