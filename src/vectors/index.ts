// The vector index stage: the VectorIndex boundary, its embedded HNSW implementation
// (usearch) and the exact brute-force one (ground truth, small catalogues).
export { isVectorIndexError, type VectorErrorCode, VectorIndexError } from './errors.js';
export { ExactIndex } from './exact-index.js';
export {
  type Quantization,
  USEARCH_DEFAULTS,
  UsearchIndex,
  type UsearchIndexOptions,
} from './usearch-index.js';
export type {
  Metric,
  SearchFilter,
  SearchHit,
  VectorAttrs,
  VectorIndex,
  VectorIndexOptions,
  VectorItem,
} from './vector-index.js';
