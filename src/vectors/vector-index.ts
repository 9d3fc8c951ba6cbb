// The vector index boundary: item embeddings in, nearest items out. The recall stage
// asks it for the items whose vectors score highest against a user vector. Methods are
// async and filters are declarative so that a Milvus collection can stand behind the
// same interface (a filter becomes a boolean expression such as
// `id not in [...] and category in [...] and created_ms >= t`).

/**
 * How a query scores an item (higher is better in both):
 * - 'ip': inner product of the raw vectors (what a two-tower / GraphSAGE dot-product
 *   model scores with; HNSW behaves best when the vectors are roughly normalised);
 * - 'cosine': cosine similarity, i.e. the inner product of the L2-normalised vectors
 *   (vectors are normalised on the way in, so a zero vector is refused).
 */
export type Metric = 'ip' | 'cosine';

export interface VectorAttrs {
  category?: string;
  /** When the item was created (epoch ms), for "fresh items only" recall. */
  createdMs?: number;
}

export interface VectorItem {
  id: string;
  vector: Float32Array;
  /** Replaced as a whole on upsert: omitted attrs are cleared. */
  attrs?: VectorAttrs;
}

/** Every condition given must hold (AND). */
export interface SearchFilter {
  /** Never return these (e.g. items the user has already seen). */
  excludeIds?: ReadonlySet<string> | readonly string[];
  /** Only items in one of these categories (items without a category never match). */
  categories?: readonly string[];
  /** Only items created at or after this time (items without createdMs never match). */
  minCreatedMs?: number;
}

export interface SearchHit {
  id: string;
  /** Inner product ('ip') or cosine similarity ('cosine'); hits come best first. */
  score: number;
}

export interface VectorIndex {
  readonly kind: string;
  readonly dim: number;
  readonly metric: Metric;
  /**
   * Adds items or replaces them (vector and attrs) by id; within one call the last
   * occurrence of an id wins. Throws before changing anything if any item is invalid
   * (wrong dimension, NaN/Infinity, empty id).
   */
  upsert(items: readonly VectorItem[]): Promise<void>;
  /** Removes the ids that are present; resolves to how many were. */
  remove(ids: readonly string[]): Promise<number>;
  /** At most k hits, best first, every one passing the filter. */
  search(query: Float32Array, k: number, filter?: SearchFilter): Promise<SearchHit[]>;
  size(): Promise<number>;
  has(id: string): Promise<boolean>;
  /** Makes every change so far durable (a no-op for an index opened without a directory). */
  save(): Promise<void>;
  /** Saves unsaved changes, then releases the index; any later call throws. */
  close(): Promise<void>;
}

export interface VectorIndexOptions {
  dim: number;
  /** Default 'ip'. Fixed when the index is created; reopening with another metric throws. */
  metric?: Metric;
  /** Where the index persists; without one it lives in memory only. */
  dir?: string;
}
