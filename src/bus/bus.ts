// The event bus boundary. Shaped after Kafka so that a Kafka implementation can
// stand behind it unchanged: topics split into partitions by key, offsets per
// partition, named consumer groups whose committed offsets survive restarts, and
// at-least-once delivery (a consumer commits after it has processed).

export interface BusRecord {
  /** Partitioning key: records with the same key land in the same partition, in order. */
  key: string;
  value: Uint8Array;
}

export interface AppendResult {
  partition: number;
  offset: number;
}

export interface ConsumedRecord {
  topic: string;
  partition: number;
  offset: number;
  key: string;
  value: Buffer;
  /** Wall-clock time the log accepted the record (ms). Event time lives in the value. */
  appendTime: number;
}

export interface PartitionInfo {
  partition: number;
  /** First offset still retained. */
  startOffset: number;
  /** Offset the next record will get (= number of records ever appended). */
  endOffset: number;
  bytes: number;
}

export interface TopicInfo {
  name: string;
  partitions: PartitionInfo[];
}

export interface TopicOptions {
  partitions?: number;
}

export type OffsetReset = 'earliest' | 'latest';

export interface ConsumerOptions {
  group: string;
  topics: string[];
  /** Where to start in a partition the group has never committed. Default 'earliest'. */
  reset?: OffsetReset;
}

export interface PollOptions {
  maxRecords?: number;
  /** How long to wait for at least one record before returning an empty batch. */
  timeoutMs?: number;
}

/** Where a consumer is: next offset to read, per topic and partition. */
export type Positions = Record<string, Record<number, number>>;

export interface Consumer {
  readonly group: string;
  poll(options?: PollOptions): Promise<ConsumedRecord[]>;
  /** Commit the positions after everything polled so far (or the given ones). */
  commit(positions?: Positions): Promise<void>;
  positions(): Positions;
  /** The group's committed offsets (what a restart resumes from). */
  committed(): Promise<Positions>;
  seek(topic: string, partition: number, offset: number): void;
  close(): Promise<void>;
}

export interface Bus {
  ensureTopic(name: string, options?: TopicOptions): Promise<void>;
  /** Resolves once the records are as durable as the bus promises (see its durability setting). */
  append(topic: string, records: BusRecord[]): Promise<AppendResult[]>;
  read(
    topic: string,
    partition: number,
    offset: number,
    maxRecords?: number,
  ): Promise<ConsumedRecord[]>;
  consumer(options: ConsumerOptions): Promise<Consumer>;
  describe(topic: string): Promise<TopicInfo>;
  topics(): Promise<string[]>;
  close(): Promise<void>;
}
