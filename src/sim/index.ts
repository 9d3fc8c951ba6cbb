// The simulator's public API.

export { cumulative, Rng } from '../util/rng.js';
export { parseSimConfig, type SimConfig, type SimConfigInput, SimConfigSchema } from './config.js';
export { IdSource } from './ids.js';
export { LoggingPolicy, POLICY_MODEL_VERSION } from './policy.js';
export {
  HttpEventSink,
  type HttpOptions,
  HttpRecommender,
  type Recommender,
  type RecommendRequest,
  type RecommendResponse,
} from './recommender.js';
export { type RunOptions, type SimStats, Simulator, type SimulatorOptions } from './simulator.js';
export { ArraySink, CountingSink, type EventSink } from './sink.js';
export { examination, type OracleItem, sigmoid, type TaskSignals, TRUTH, Truth } from './truth.js';
export {
  categoryId,
  creatorId,
  itemId,
  tagId,
  userId,
  World,
  type WorldItem,
  type WorldUser,
} from './world.js';
