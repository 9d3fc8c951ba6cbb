export type * from './bus.js';
export { LogBus, type LogBusOptions, partitionFor } from './log/log-bus.js';
export type { Durability } from './log/partition.js';
