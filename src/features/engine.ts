// The embedded streaming feature engine. It consumes behaviour events (impressions,
// clicks, watches) and item upserts from the bus, keeps event-time window states per
// feature and key, and writes the changed rows to the feature store after every batch.
//
// Determinism, which exactly-once and replay rest on: state is kept per input stream
// (topic partition), and each stream's watermark is its own newest event time minus the
// allowed lateness. So what a stream's states hold is a function of that stream's records
// alone, whatever the interleaving with other streams, the batch sizes or restarts. A row
// is the sum of its keys' per-stream states read as of the key's newest event time. The
// store is only ever overwritten with such rows, never incremented, and a checkpoint
// stores states together with the positions they correspond to: after kill -9 the engine
// restores the checkpoint, replays from its positions, and ends with the same rows as a
// run that was never interrupted; a rebuild from offset 0 ends with the same rows too.
import { build as buildHistogram, type Histogram } from 'hdr-histogram-js';
import { Histogram as PromHistogram } from 'prom-client';
import type { Bus, ConsumedRecord, Positions } from '../bus/bus.js';
import { RecmasterError } from '../errors.js';
import type { Event } from '../events/schemas.js';
import { EventSubscriber } from '../events/subscriber.js';
import { Topics } from '../events/topics.js';
import type { FeatureRow, FeatureStore, FeatureValue, RowWrite } from '../store/store.js';
import { BinaryWriter } from '../util/binary.js';
import { fnv1a } from '../util/fnv.js';
import { registry } from '../util/metrics.js';
import {
  type CheckpointChanges,
  CheckpointStore,
  SavedKeyEncoder,
  type StreamMeta,
} from './checkpoint.js';
import { type KeyWrites, keyWrites } from './checkpoint-batch.js';
import {
  type AggregateFeature,
  contributionOf,
  type DerivedFeature,
  type Entity,
  FEATURES,
  type FeatureDefinition,
  ratioValue,
} from './definitions.js';
import { KeyTimes } from './key-times.js';
import { SavedStates } from './saved-states.js';
import { StateArena } from './state-arena.js';
import {
  createState,
  deserializeState,
  type FeatureState,
  HEAD_WIDTH,
  type HeadReader,
  headReaderOf,
  isExpired,
  type LastNState,
  type NumericState,
  readHead,
} from './window-state.js';

export interface FeatureEngineOptions {
  bus: Bus;
  store: FeatureStore;
  /** Directory of the engine's checkpoint (LMDB). */
  stateDir: string;
  /** Consumer group name prefix. Default 'features'. */
  group?: string;
  /** How far behind a stream's newest event an event may be and still count. Default 5 s. */
  allowedLatenessMs?: number;
  /** Start a checkpoint this often (and write one on close). Default 5 s. */
  checkpointIntervalMs?: number;
  /**
   * How long a checkpoint may hold up the engine between two batches. Default 1 ms: a
   * checkpoint of ~8,000 keys then spreads over ~1 s at ~10 % more load, instead of ~0.4 s
   * at ~30 % (at 22k events/s the engine has no room for the latter).
   */
  checkpointSliceMs?: number;
  /** Records per poll. Default 2000. */
  batchSize?: number;
  /** Records per batch when behind (several polls, one write). Default 10 × batchSize. */
  maxBatch?: number;
  features?: readonly FeatureDefinition[];
  /**
   * Every key's states in a stream are checked for expiry once per this many of the stream's
   * records, 1/SWEEP_SLICES of the keys at a time. Default 50,000.
   */
  sweepEvery?: number;
  /**
   * The items topic is read before a batch that names an item not seen yet, and otherwise at
   * most this often (ms): a changed category of a known item counts from then. Default 1000.
   */
  itemsRefreshMs?: number;
}

export interface FeatureEngineStats {
  events: number;
  /** Events that came later than the allowed lateness for at least one windowed feature. */
  lateEvents: number;
  /** Behaviour events whose item had no known category (not counted for user×category). */
  unknownCategory: number;
  deadLetters: number;
  items: number;
  /** Keys (user, item, user×category) with state. */
  keys: number;
  /** Per-stream states dropped because no event came within their feature's TTL. */
  expiredStates: number;
  /**
   * Blocks of the engine's state arena in use: one per numeric state that holds events and one
   * per key's heads (a state or key dropped gives its block back).
   */
  arenaBlocks: number;
  /** Bytes of that arena (outside V8's heap). */
  arenaBytes: number;
  /** Keys' slots for their event times in use: as many as `keys` (more would be a leak). */
  timeSlots: number;
  rowsWritten: number;
  batches: number;
  checkpoints: number;
  /** The longest time one checkpoint slice held up the engine. */
  checkpointPauseMaxMs: number;
  freshnessP50Ms: number;
  freshnessP99Ms: number;
  freshnessMaxMs: number;
}

const freshnessMetric = new PromHistogram({
  name: 'recmaster_feature_freshness_ms',
  help: 'Wall time from an event entering the log to its features being visible in the store',
  buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000],
  registers: [registry],
});

type BehaviourEvent = Extract<Event, { type: 'impression' | 'click' | 'watch' }>;
type NumericFields = Partial<Record<'position' | 'watchedS' | 'durationS', number>>;

/** All state of one key: per feature of its entity, per input stream. */
interface KeyEntry {
  entity: Entity;
  key: string;
  /**
   * At feature index within the entity × streams.length + the stream's place in `streams`:
   * one array per key (an array per feature made ~50k more heap objects for the collector).
   */
  states: (FeatureState | undefined)[];
  /**
   * Its slot in the engine's KeyTimes: the newest event time over its states (-1 while empty:
   * the row's as-of time), and the time before which none of its states can expire (sweep).
   */
  timeSlot: number;
  /**
   * The streams it has (or had) a state in, in stream-id order: a row is the sum over these
   * only (a user's keys live in two of the eight streams), and reading a per-stream array
   * past its end is a slow path in V8.
   */
  streams: number[];
  /** Which slice of the keys it is swept with (a hash of entity and key). */
  slice: number;
  /**
   * Each numeric state's head (writeHead), at (feature index × streams.length + the stream's
   * place in `streams`) × HEAD_WIDTH; NaN where there is no state. Derived from `states`,
   * rewritten whenever one changes; rows are read from it (materialize). They lie in `heads`
   * from `headsAt`, a block of the engine's arena (capacity `headsCap` in chunk `headsChunk`;
   * NO_HEADS and 0 while none): a Float64Array of its own per key was three objects for the
   * collector (the array, its buffer, the buffer's backing store) for ~50k keys.
   */
  heads: Float64Array;
  headsAt: number;
  headsCap: number;
  headsChunk: number;
  /** The checkpoint whose changes include this key (its epoch; -1: none yet). */
  dirtyIn: number;
  /** The checkpoint in progress that has still to encode this key (its epoch), else -1. */
  pendingIn: number;
  /** Its chain of states saved for that checkpoint (SavedStates), -1 while none. */
  savedHead: number;
}

const NO_HEADS = new Float64Array(0);

/**
 * Keys are checked for expiry a slice at a time: checking all of them at once held up the
 * batch it fell in by 13–20 ms with only ~10k keys, every ~2 s at 22k events/s.
 */
const SWEEP_SLICES = 16;

/** FNV-1a of `entity:key`: a key's sweep slice, the same in every run. */
function sliceOf(entity: Entity, key: string): number {
  // `| 0`: the hash is an unsigned 32-bit number, a double to V8 when over 2^31, and so was
  // its remainder: kept in a key's field, a heap number of its own per key.
  return (fnv1a(`${entity}:${key}`) % SWEEP_SLICES) | 0;
}

/** The checkpoint in progress (see beginCheckpoint). */
interface Snapshot {
  epoch: number;
  /** All but the keys, known once every one is encoded (keysToWrite). */
  changes: Omit<CheckpointChanges, 'keys'>;
  /**
   * Keys changed since the last checkpoint; those from `next` on are not encoded yet (their
   * `pendingIn` is this epoch). Flags on the keys, not Sets: a Set lookup per state an event
   * changed, and Sets of ~30k keys made and dropped every checkpoint.
   */
  pending: KeyEntry[];
  next: number;
  /** Where the bytes of the keys encoded so far lie in the encoder ([start, end] each). */
  encodedAt: number[];
}

/** Streams per feature in a saved-state code (far more than a topic's partitions). */
const STATE_CODE = 1 << 16;

interface EntityFeatures {
  aggregates: AggregateFeature[];
  /** The head reader of each aggregate (null for last-N). */
  readers: (HeadReader | null)[];
  derived: DerivedFeature[];
}

export class FeatureEngine {
  private readonly store: FeatureStore;
  private readonly checkpoints: CheckpointStore;
  private readonly behaviour: EventSubscriber;
  private readonly items: EventSubscriber;
  private readonly lateness: number;
  /** The numbers of the numeric states (see StateArena): this engine's, dropped with it. */
  private readonly arena = new StateArena();
  /** Each key's two event times (KeyEntry.timeSlot). */
  private readonly times = new KeyTimes();
  private readonly checkpointInterval: number;
  private readonly checkpointSlice: number;
  private readonly batchSize: number;
  private readonly maxBatch: number;
  /** A stream's records between two sweep slices. */
  private readonly sweepStep: number;
  private readonly aggregates: AggregateFeature[];
  /** Per source event type: the features it feeds, with their index within their entity. */
  /** The features each event type feeds, grouped by entity (one key lookup per entity). */
  private readonly bySource = new Map<
    string,
    { entity: Entity; features: { def: AggregateFeature; index: number }[] }[]
  >();
  private readonly byEntity = new Map<Entity, EntityFeatures>();
  /** Input streams (topic partitions) in order of first appearance; states index into it. */
  private readonly streamIds: string[] = [];
  private readonly streamIndex = new Map<string, number>();
  /** Stream indexes by topic, then partition. */
  private readonly streamByTopic = new Map<string, number[]>();
  private readonly streamMeta: StreamMeta[] = [];
  /**
   * Each stream's rank in stream-id order: partial states are combined in this order, so a
   * float sum comes out bit for bit the same whatever order the streams first appeared in.
   * A new stream shifts ranks but not the relative order of the others, so the sorted
   * per-key lists stay sorted.
   */
  private streamRank: number[] = [];
  private readonly keys = new Map<string, KeyEntry>();
  /** The keys by sweep slice. */
  private readonly slices: Set<KeyEntry>[] = Array.from({ length: SWEEP_SLICES }, () => new Set());
  private readonly catalogue = new Map<string, string>();
  private readonly encoder = new SavedKeyEncoder();
  /** encodeEntry's list of a key's places, reused. */
  private readonly places: number[] = [];
  /** The bytes of the states saved before they changed, this checkpoint's. */
  private readonly preserved = new BinaryWriter(1 << 20);
  /**
   * Pending keys' states saved just before they changed, by code fi × STATE_CODE + si: where
   * their bytes at the snapshot lie in `preserved` (offsets into one buffer, not a Buffer per
   * state, which lived long enough to be promoted), or -1 for a state created since.
   */
  private readonly saved = new SavedStates();
  private readonly freshness: Histogram;
  private readonly counters = {
    events: 0,
    lateEvents: 0,
    unknownCategory: 0,
    rowsWritten: 0,
    batches: 0,
    expiredStates: 0,
  };
  // Changes since the last checkpoint: the keys whose dirtyIn is `epoch`.
  private epoch = 0;
  private dirtyKeys: KeyEntry[] = [];
  private snapshot: Snapshot | undefined;
  /** The checkpoint being written, if any. */
  private saving: Promise<void> | undefined;
  private saveError: unknown;
  /** The store write in flight (never rejects: a failure lands in writeError). */
  private writing: Promise<void> = Promise.resolve();
  private writeError: unknown;
  private readonly dirtyCategories = new Map<string, string>();
  private itemsDrainedAt = 0;
  private readonly itemsRefreshMs: number;
  private lastCheckpoint = 0;
  private checkpointCount = 0;
  private checkpointPauseMaxMs = 0;
  private stepping = false;

  private constructor(
    options: FeatureEngineOptions,
    checkpoints: CheckpointStore,
    behaviour: EventSubscriber,
    items: EventSubscriber,
  ) {
    this.store = options.store;
    this.checkpoints = checkpoints;
    this.behaviour = behaviour;
    this.items = items;
    this.lateness = options.allowedLatenessMs ?? 5000;
    this.checkpointInterval = options.checkpointIntervalMs ?? 5000;
    this.checkpointSlice = options.checkpointSliceMs ?? 1;
    // Defaulted and checked by open().
    this.batchSize = options.batchSize as number;
    this.maxBatch = options.maxBatch as number;
    this.itemsRefreshMs = options.itemsRefreshMs as number;
    this.sweepStep = Math.max(1, Math.floor((options.sweepEvery ?? 50_000) / SWEEP_SLICES));
    const features = options.features ?? FEATURES;
    this.aggregates = features.filter((f): f is AggregateFeature => f.kind === 'aggregate');
    for (const f of features) {
      const group = this.byEntity.get(f.entity) ?? { aggregates: [], readers: [], derived: [] };
      if (f.kind === 'aggregate') {
        for (const source of f.sources) {
          const groups = this.bySource.get(source) ?? [];
          let forEntity = groups.find((g) => g.entity === f.entity);
          if (!forEntity) {
            forEntity = { entity: f.entity, features: [] };
            groups.push(forEntity);
          }
          forEntity.features.push({ def: f, index: group.aggregates.length });
          this.bySource.set(source, groups);
        }
        group.aggregates.push(f);
        group.readers.push(headReaderOf(f));
      } else {
        group.derived.push(f);
      }
      this.byEntity.set(f.entity, group);
    }
    this.freshness = buildHistogram({
      lowestDiscernibleValue: 1,
      highestTrackableValue: 3_600_000,
      numberOfSignificantValueDigits: 3,
    });
  }

  /** Opens the engine, resuming from its checkpoint when there is one. */
  static async open(options: FeatureEngineOptions): Promise<FeatureEngine> {
    const batchSize = options.batchSize ?? 2000;
    const maxBatch = options.maxBatch ?? 10 * batchSize;
    if (!(Number.isInteger(batchSize) && batchSize >= 1 && Number.isInteger(maxBatch)))
      throw new RecmasterError(
        'E_CONFIG',
        `batchSize and maxBatch must be whole numbers >= 1, got ${batchSize} and ${maxBatch}`,
      );
    const itemsRefreshMs = options.itemsRefreshMs ?? 1000;
    if (!(itemsRefreshMs >= 0))
      throw new RecmasterError(
        'E_CONFIG',
        `itemsRefreshMs must be a number >= 0, got ${options.itemsRefreshMs}`,
      );
    if (maxBatch < batchSize)
      throw new RecmasterError(
        'E_CONFIG',
        `maxBatch (${maxBatch}) must be at least batchSize (${batchSize})`,
      );
    const group = options.group ?? 'features';
    const checkpoints = await CheckpointStore.open(options.stateDir);
    const behaviour = await EventSubscriber.create(options.bus, {
      group,
      topics: [Topics.impressions, Topics.feedback],
    });
    const items = await EventSubscriber.create(options.bus, {
      group: `${group}.items`,
      topics: [Topics.items],
    });
    const engine = new FeatureEngine(
      { ...options, batchSize, maxBatch, itemsRefreshMs },
      checkpoints,
      behaviour,
      items,
    );
    engine.restore();
    return engine;
  }

  private restore(): void {
    const meta = this.checkpoints.meta();
    if (!meta) {
      // No state yet: it must be built from the start of the log, whatever the group committed.
      for (const sub of [this.behaviour, this.items]) {
        for (const [topic, parts] of Object.entries(sub.consumer.positions())) {
          for (const p of Object.keys(parts)) sub.consumer.seek(topic, Number(p), 0);
        }
      }
      return;
    }
    seekAll(this.behaviour, meta.behaviour);
    seekAll(this.items, meta.items);
    // Keys not rewritten since name their labels by these codes: keep them.
    this.encoder.seed(this.checkpoints.labels());
    for (const [id, m] of Object.entries(meta.streams)) this.streamMeta[this.stream(id)] = { ...m };
    for (const [entityKey, saved] of this.checkpoints.keys()) {
      const sep = entityKey.indexOf(':');
      const entity = entityKey.slice(0, sep) as Entity;
      const group = this.byEntity.get(entity);
      if (!group) continue; // an entity no feature uses any more
      const entry = this.newEntry(entity, entityKey.slice(sep + 1));
      const restored: [number, number, FeatureState][] = [];
      for (const [streamId, feature, json] of saved) {
        const index = group.aggregates.findIndex((f) => f.name === feature);
        const def = group.aggregates[index];
        if (!def) continue; // a feature removed from the catalogue since
        const si = this.stream(streamId);
        restored.push([
          index,
          si,
          deserializeState(def, json, { allowedLatenessMs: this.lateness, arena: this.arena }),
        ]);
        this.insertStream(entry, si);
      }
      const width = entry.streams.length;
      entry.states = Array.from({ length: group.aggregates.length * width }, () => undefined);
      for (const [fi, si, state] of restored)
        entry.states[fi * width + entry.streams.indexOf(si)] = state;
      this.times.setNewest(entry.timeSlot, newestEventTime(entry));
      this.writeHeads(entry);
      this.keys.set(entityKey, entry);
      (this.slices[entry.slice] as Set<KeyEntry>).add(entry);
    }
    for (const [itemId, category] of this.checkpoints.categories())
      this.catalogue.set(itemId, category);
    for (const k of Object.keys(this.counters) as (keyof typeof this.counters)[]) {
      this.counters[k] = meta.counters[k] ?? 0;
    }
  }

  /** The index of a stream (`topic/partition`), registering it on first sight. */
  private stream(id: string): number {
    let index = this.streamIndex.get(id);
    if (index === undefined) {
      index = this.streamIds.length;
      this.streamIds.push(id);
      this.streamIndex.set(id, index);
      this.streamMeta.push({ maxTs: null, processed: 0 });
      const order = this.streamIds
        .map((_, i) => i)
        .sort((a, b) => compareIds(this.streamIds[a], this.streamIds[b]));
      this.streamRank = [];
      order.forEach((si, rank) => {
        this.streamRank[si] = rank;
      });
      let byPartition = this.streamByTopic.get(id.slice(0, id.lastIndexOf('/')));
      if (!byPartition) {
        byPartition = [];
        this.streamByTopic.set(id.slice(0, id.lastIndexOf('/')), byPartition);
      }
      byPartition[Number(id.slice(id.lastIndexOf('/') + 1))] = index;
    }
    return index;
  }

  /**
   * Notes that a key has a state in a stream, keeping its list in stream-id order; every
   * place after it moves, in the states and the heads. Returns the stream's place.
   */
  private addStream(entry: KeyEntry, si: number): number {
    const at = this.insertStream(entry, si);
    if (at < 0) return entry.streams.indexOf(si);
    const features = (this.byEntity.get(entry.entity) as EntityFeatures).aggregates.length;
    const width = entry.streams.length;
    const old = entry.states;
    const states: (FeatureState | undefined)[] = Array.from(
      { length: features * width },
      () => undefined,
    );
    for (let fi = 0; fi < features; fi++) {
      for (let place = 0; place < width; place++) {
        if (place !== at)
          states[fi * width + place] = old[fi * (width - 1) + (place < at ? place : place - 1)];
      }
    }
    entry.states = states;
    this.writeHeads(entry);
    return at;
  }

  /**
   * Inserts the stream into the key's list without moving states or heads (a restore lays them
   * out once per key at the end); its place, or -1 when the key had it already.
   */
  private insertStream(entry: KeyEntry, si: number): number {
    const streams = entry.streams;
    if (streams.includes(si)) return -1;
    const rank = this.streamRank[si] as number;
    let at = streams.length;
    while (at > 0 && (this.streamRank[streams[at - 1] as number] as number) > rank) at -= 1;
    streams.splice(at, 0, si);
    return at;
  }

  /** Rewrites all of a key's heads from its states (its streams changed, or a restore). */
  private writeHeads(entry: KeyEntry): void {
    const aggregates = (this.byEntity.get(entry.entity) as EntityFeatures).aggregates;
    const size = aggregates.length * entry.streams.length * HEAD_WIDTH;
    this.releaseHeads(entry);
    if (size === 0) return;
    entry.headsCap = this.arena.alloc(size);
    entry.headsChunk = this.arena.lastChunk;
    entry.headsAt = this.arena.lastAt;
    const heads = this.arena.chunk(entry.headsChunk);
    entry.heads = heads;
    heads.fill(Number.NaN, entry.headsAt, entry.headsAt + size);
    for (let at = 0; at < entry.states.length; at++) {
      const state = entry.states[at];
      if (state !== undefined && state.kind !== 'last_n')
        state.writeHead(heads, entry.headsAt + at * HEAD_WIDTH);
    }
  }

  /** A key with no state yet (not registered: the caller adds it to `keys` and its slice). */
  private newEntry(entity: Entity, key: string): KeyEntry {
    return {
      entity,
      key,
      states: [],
      timeSlot: this.times.take(-1, Number.NEGATIVE_INFINITY),
      streams: [],
      slice: sliceOf(entity, key),
      heads: NO_HEADS,
      headsAt: 0,
      headsCap: 0,
      headsChunk: -1,
      dirtyIn: -1,
      pendingIn: -1,
      savedHead: -1,
    };
  }

  /** Gives a key's heads block back to the arena (the key is dropped, or its heads rewritten). */
  private releaseHeads(entry: KeyEntry): void {
    if (entry.headsCap === 0) return;
    this.arena.free(entry.headsChunk, entry.headsAt, entry.headsCap);
    entry.heads = NO_HEADS;
    entry.headsAt = 0;
    entry.headsCap = 0;
    entry.headsChunk = -1;
  }

  /** The stream index of a record, without building its id string (the per-event path). */
  private streamOf(record: ConsumedRecord): number {
    return (
      this.streamByTopic.get(record.topic)?.[record.partition] ??
      this.stream(`${record.topic}/${record.partition}`)
    );
  }

  /**
   * Processes one batch (waiting up to `timeoutMs` for it); resolves with the number of
   * behaviour records consumed once their rows are handed to the store. The store may
   * still be committing them: `catchUp` and `checkpoint` resolve only when it has.
   */
  async step(timeoutMs = 100): Promise<number> {
    if (this.stepping)
      throw new Error('FeatureEngine.step is not reentrant: await the previous step');
    this.stepping = true;
    try {
      return await this.stepOnce(timeoutMs);
    } finally {
      this.stepping = false;
    }
  }

  private async stepOnce(timeoutMs: number): Promise<number> {
    const received = await this.behaviour.poll({ maxRecords: this.batchSize, timeoutMs });
    // Behind (full polls): take more before writing rows. A row is written once per batch
    // whatever its number of events, so bigger batches catch up faster.
    for (let more = received.length; more === this.batchSize && received.length < this.maxBatch; ) {
      const next = await this.behaviour.poll({ maxRecords: this.batchSize, timeoutMs: 0 });
      more = next.length;
      for (const r of next) received.push(r);
    }
    if (received.length > 0) {
      // Item upserts are appended before any behaviour that shows the item (the publisher
      // orders it so): draining them when a batch names an item not seen yet makes every
      // category known. Otherwise once per itemsRefreshMs (a changed category), because
      // polling the items topic on every batch was half of a live poll's thread-pool trips
      // (nearly always empty: a read and a directory listing per partition).
      if (
        Date.now() - this.itemsDrainedAt >= this.itemsRefreshMs ||
        received.some(({ event }) => !this.catalogue.has((event as BehaviourEvent).itemId))
      )
        await this.drainItems();
      const touched = new Set<KeyEntry>();
      for (const { event, record } of received)
        this.apply(event as BehaviourEvent, record, touched);
      const rows: RowWrite[] = [];
      for (const entry of touched) {
        const row = this.materialize(entry);
        if (row === null) {
          this.keys.delete(`${entry.entity}:${entry.key}`);
          this.releaseHeads(entry);
          this.times.give(entry.timeSlot);
          this.slices[entry.slice]?.delete(entry);
        }
        rows.push({ entity: entry.entity, key: entry.key, row });
      }
      // One write in flight: the store commits this batch (LMDB on its own thread, Redis
      // over the socket) while the next batch is polled and applied. Waiting here instead
      // made the commit part of every event's latency.
      await this.writing;
      this.throwIfWriteFailed();
      const appended = received.map(({ record }) => record.appendTime);
      this.writing = this.store.write(rows).then(
        () => this.recordFreshness(appended),
        (err: unknown) => {
          this.writeError ??= err;
        },
      );
      this.counters.rowsWritten += rows.length;
      this.counters.batches += 1;
    }
    this.throwIfSaveFailed();
    if (
      !this.snapshot &&
      !this.saving &&
      Date.now() - this.lastCheckpoint >= this.checkpointInterval
    ) {
      this.lastCheckpoint = Date.now();
      this.beginCheckpoint();
    }
    await this.advanceCheckpoint(this.checkpointSlice);
    return received.length;
  }

  /**
   * Runs until the signal aborts, then checkpoints. `onBatch` is told each batch's number of
   * records; it asks for `stats()` when it reports (computing them for every batch, hundreds
   * a second, cost two histogram percentiles each and an object V8 came to allocate in the
   * old generation: ~0.3 MB/s for the mark-compacts to collect).
   */
  async run(signal: AbortSignal, onBatch?: (records: number) => void): Promise<void> {
    while (!signal.aborted) {
      const n = await this.step(100);
      if (n > 0) onBatch?.(n);
    }
    await this.checkpoint();
  }

  /** Processes everything in the log right now, then returns (backfill, tests, benchmarks). */
  async catchUp(): Promise<void> {
    while ((await this.step(0)) > 0) {
      // keep going until a poll comes back empty
    }
    await this.drainItems();
    await this.writing; // callers read the store next
    this.throwIfWriteFailed();
  }

  private async drainItems(): Promise<void> {
    this.itemsDrainedAt = Date.now();
    for (;;) {
      const batch = await this.items.poll({ maxRecords: 5000 });
      if (batch.length === 0) return;
      for (const { event } of batch) {
        if (event.type !== 'item_upsert') continue;
        if (this.catalogue.get(event.itemId) !== event.category) {
          this.catalogue.set(event.itemId, event.category);
          this.dirtyCategories.set(event.itemId, event.category);
        }
      }
    }
  }

  private apply(event: BehaviourEvent, record: ConsumedRecord, touched: Set<KeyEntry>): void {
    this.counters.events += 1;
    const streamIndex = this.streamOf(record);
    const meta = this.streamMeta[streamIndex] as StreamMeta;
    if (meta.maxTs === null || event.ts > meta.maxTs) meta.maxTs = event.ts;
    const watermark = meta.maxTs - this.lateness;
    let late = false;
    let unknownCategory = false;
    for (const { entity, features } of this.bySource.get(event.type) ?? []) {
      let key: string;
      if (entity === 'user') key = event.userId;
      else if (entity === 'item') key = event.itemId;
      else {
        const category = this.catalogue.get(event.itemId);
        if (category === undefined) {
          unknownCategory = true;
          continue;
        }
        key = `${event.userId}|${category}`;
      }
      const entityKey = `${entity}:${key}`;
      let entry = this.keys.get(entityKey);
      if (!entry) {
        entry = this.newEntry(entity, key);
        this.keys.set(entityKey, entry);
        (this.slices[entry.slice] as Set<KeyEntry>).add(entry);
      }
      let applied = false;
      let place = entry.streams.indexOf(streamIndex);
      for (const { def, index } of features) {
        if (this.snapshot) this.preserve(entry, index, streamIndex);
        let state = place < 0 ? undefined : entry.states[index * entry.streams.length + place];
        if (!state) {
          state = createState(def, { allowedLatenessMs: this.lateness, arena: this.arena });
          if (place < 0) place = this.addStream(entry, streamIndex);
          entry.states[index * entry.streams.length + place] = state;
          // Its newest event time will be at least this event's (if the event counts at all).
          const expires = event.ts + def.ttlMs;
          if (expires < this.times.expiresFrom(entry.timeSlot))
            this.times.setExpiresFrom(entry.timeSlot, expires);
        }
        const agg = def.aggregation;
        let result: 'applied' | 'late';
        if (agg.kind === 'last_n') {
          result = (state as LastNState).add(event.ts, event.itemId, watermark);
        } else {
          const numeric = state as NumericState;
          result = numeric.add(
            event.ts,
            agg.kind === 'count' ? 1 : contributionOf(agg.value, event as NumericFields),
            watermark,
          );
          numeric.writeHead(
            entry.heads,
            entry.headsAt + (index * entry.streams.length + place) * HEAD_WIDTH,
          );
        }
        // A full last-N refusing an old click is not lateness: it would fall off at once.
        if (result === 'late' && agg.kind !== 'last_n') late = true;
        else applied = true;
        const t = state.maxEventTimeMs;
        if (t !== null && t > this.times.newest(entry.timeSlot))
          this.times.setNewest(entry.timeSlot, t);
      }
      if (applied) this.markDirty(entry);
      touched.add(entry);
    }
    if (late) this.counters.lateEvents += 1;
    if (unknownCategory) this.counters.unknownCategory += 1;
    meta.processed += 1;
    if (meta.processed % this.sweepStep === 0) {
      const slice = (meta.processed / this.sweepStep) % SWEEP_SLICES;
      this.sweep(streamIndex, watermark, touched, this.slices[slice] as Set<KeyEntry>);
    }
  }

  /**
   * Drops one stream's expired states in one slice of the keys. At the stream's own record
   * counts, with its own watermark, over keys sliced by a hash: what it drops is a function
   * of that stream's records alone, so a replay or a restart sweeps alike.
   */
  private sweep(
    streamIndex: number,
    watermark: number,
    touched: Set<KeyEntry>,
    keys: Set<KeyEntry>,
  ): void {
    for (const entry of keys) {
      // Most keys: nothing can have expired yet (a full pass over all of them was ~4 % of the
      // engine's time 20 minutes into a stream, with the catalogue still growing).
      // No state of the key (in any stream) expires before its expiresFrom (-Infinity: look):
      // recomputed here, lowered when a state is created; events only move an expiry later.
      if (watermark < this.times.expiresFrom(entry.timeSlot)) continue;
      const place = entry.streams.indexOf(streamIndex);
      if (place < 0) continue;
      const defs = (this.byEntity.get(entry.entity) as EntityFeatures).aggregates;
      const width = entry.streams.length;
      for (let fi = 0; fi < defs.length; fi++) {
        const state = entry.states[fi * width + place];
        if (state && isExpired(state, (defs[fi] as AggregateFeature).ttlMs, watermark)) {
          this.preserve(entry, fi, streamIndex);
          state.release();
          entry.states[fi * width + place] = undefined;
          this.counters.expiredStates += 1;
          this.markDirty(entry);
          touched.add(entry);
          this.times.setNewest(entry.timeSlot, -1); // recomputed below
        }
      }
      if (this.times.newest(entry.timeSlot) === -1) {
        this.times.setNewest(entry.timeSlot, newestEventTime(entry));
        this.writeHeads(entry);
      }
      this.times.setExpiresFrom(entry.timeSlot, this.earliestExpiry(entry));
    }
  }

  /**
   * The earliest event time at which one of the key's states (in any stream) can expire;
   * -Infinity while one is empty (made by a late event: its first counted event, whenever it
   * comes, sets its expiry without creating a state).
   */
  private earliestExpiry(entry: KeyEntry): number {
    const defs = (this.byEntity.get(entry.entity) as EntityFeatures).aggregates;
    const width = entry.streams.length;
    let earliest = Number.POSITIVE_INFINITY;
    for (let at = 0; at < entry.states.length; at++) {
      const state = entry.states[at];
      if (state === undefined) continue;
      const t = state.maxEventTimeMs;
      if (t === null) return Number.NEGATIVE_INFINITY;
      const expires = t + (defs[Math.floor(at / width)] as AggregateFeature).ttlMs;
      if (expires < earliest) earliest = expires;
    }
    return earliest;
  }

  /** The row of one key: every feature of its entity, as of the key's newest event. */
  private materialize(entry: KeyEntry): FeatureRow | null {
    const group = this.byEntity.get(entry.entity) as EntityFeatures;
    const states = entry.states;
    const streams = entry.streams;
    const asOf = this.times.newest(entry.timeSlot);
    if (asOf < 0) return null;
    const values: Record<string, FeatureValue> = {};
    const aggregates = group.aggregates;
    const heads = entry.heads;
    const width = streams.length;
    for (let fi = 0; fi < aggregates.length; fi += 1) {
      const def = aggregates[fi] as AggregateFeature;
      const first = fi * width;
      if (def.aggregation.kind === 'last_n') {
        const seqs: LastNState[] = [];
        for (let place = 0; place < width; place += 1) {
          const s = states[first + place];
          if (s) seqs.push(s as LastNState);
        }
        values[def.name] = mergeLastN(seqs, def.aggregation.n);
        continue;
      }
      // In stream-id order, from the heads; a place without a state reads 0 (adding +0
      // changes no sum), and the state itself answers only when its head cannot.
      const reader = group.readers[fi] as HeadReader;
      let sum = 0;
      let at = entry.headsAt + first * HEAD_WIDTH;
      for (let place = 0; place < width; place += 1, at += HEAD_WIDTH) {
        let v = readHead(reader, heads, at, asOf);
        if (Number.isNaN(v)) v = (states[first + place] as NumericState).read(asOf);
        sum += v;
      }
      values[def.name] = sum;
    }
    for (const def of group.derived) {
      const num = values[def.numerator];
      const den = values[def.denominator];
      values[def.name] =
        typeof num === 'number' && typeof den === 'number' ? ratioValue(def, num, den) : null;
    }
    return { values, eventTimeMs: asOf };
  }

  /**
   * Starts a checkpoint: fixes the positions, stream watermarks and counters of this
   * moment, and the keys changed since the last one. Their states are then encoded a
   * slice at a time between batches (advanceCheckpoint), and a state about to change before
   * its key's turn is encoded first (preserve): copy-on-write, so the engine never stops for
   * long and the checkpoint still holds exactly the state at those positions. Per state, not
   * per key: an event changes 2–5 states, and encoding all ~28 of a hot item key inline made
   * every event during a checkpoint cost about twice as much.
   */
  private beginCheckpoint(): void {
    const streams: Record<string, StreamMeta> = {};
    this.streamIds.forEach((id, i) => {
      streams[id] = { ...(this.streamMeta[i] as StreamMeta) };
    });
    const pending = this.dirtyKeys;
    const epoch = this.epoch;
    for (const entry of pending) entry.pendingIn = epoch;
    this.snapshot = {
      epoch,
      changes: {
        meta: {
          behaviour: this.behaviour.consumer.positions(),
          items: this.items.consumer.positions(),
          streams,
          counters: { ...this.counters },
        },
        categories: new Map(this.dirtyCategories),
        labels: this.encoder.labels,
      },
      pending,
      next: 0,
      encodedAt: [],
    };
    this.epoch += 1;
    this.dirtyKeys = [];
    this.dirtyCategories.clear();
    // The last checkpoint is saved (a new one begins only then): its bytes are free again.
    this.encoder.clear();
    this.preserved.reset();
    this.saved.reset();
  }

  /** Includes the key in the next checkpoint's changes. */
  private markDirty(entry: KeyEntry): void {
    if (entry.dirtyIn === this.epoch) return;
    entry.dirtyIn = this.epoch;
    this.dirtyKeys.push(entry);
  }

  /** Saves one state of a pending key, as it is now, before it changes (or is created). */
  private preserve(entry: KeyEntry, fi: number, si: number): void {
    if (this.snapshot === undefined || entry.pendingIn !== this.snapshot.epoch) return;
    const code = fi * STATE_CODE + si;
    // Saved already: it has changed since the snapshot.
    if (this.saved.find(entry.savedHead, code) >= 0) return;
    const place = entry.streams.indexOf(si);
    const state = place < 0 ? undefined : entry.states[fi * entry.streams.length + place];
    if (state === undefined) {
      entry.savedHead = this.saved.push(entry.savedHead, code, -1, -1);
      return;
    }
    const defs = (this.byEntity.get(entry.entity) as EntityFeatures).aggregates;
    const start = this.preserved.length;
    this.encoder.writeOne(
      this.preserved,
      this.streamIds[si] as string,
      (defs[fi] as AggregateFeature).name,
      state,
    );
    entry.savedHead = this.saved.push(entry.savedHead, code, start, this.preserved.length);
  }

  /**
   * Encodes a key's states as of the snapshot (those saved before they changed, the rest as
   * they are); records where its bytes lie.
   */
  private encodeEntry(snapshot: Snapshot, entry: KeyEntry): void {
    const defs = (this.byEntity.get(entry.entity) as EntityFeatures).aggregates;
    const encoder = this.encoder;
    const start = encoder.begin();
    const { states, streams } = entry;
    const width = streams.length;
    // Places in stream-index order (the order checkpoints have always listed states in), in
    // an array reused from key to key.
    const places = this.places;
    places.length = width;
    for (let p = 0; p < width; p++) places[p] = p;
    if (width > 1) places.sort((a, b) => (streams[a] as number) - (streams[b] as number));
    for (let fi = 0; fi < defs.length; fi++) {
      for (const place of places) {
        const si = streams[place] as number;
        const at = this.saved.find(entry.savedHead, fi * STATE_CODE + si);
        if (at >= 0) {
          const start = this.saved.start(at);
          if (start >= 0) encoder.addFrom(this.preserved, start, this.saved.end(at));
          continue;
        }
        const state = states[fi * width + place];
        if (state)
          encoder.add(this.streamIds[si] as string, (defs[fi] as AggregateFeature).name, state);
      }
    }
    snapshot.encodedAt.push(start, encoder.end());
  }

  /** Encodes pending keys for about `budgetMs`; writes the checkpoint once none are left. */
  private async advanceCheckpoint(budgetMs: number): Promise<void> {
    const snapshot = this.snapshot;
    if (!snapshot) return;
    const started = performance.now();
    const pending = snapshot.pending;
    while (snapshot.next < pending.length) {
      const entry = pending[snapshot.next] as KeyEntry;
      snapshot.next += 1;
      this.encodeEntry(snapshot, entry);
      entry.pendingIn = -1;
      entry.savedHead = -1;
      if (snapshot.next % 64 === 0 && performance.now() - started > budgetMs) break;
    }
    // A final checkpoint (unbounded budget) is not a pause of the stream.
    if (Number.isFinite(budgetMs))
      this.checkpointPauseMaxMs = Math.max(this.checkpointPauseMaxMs, performance.now() - started);
    if (snapshot.next === pending.length) {
      this.snapshot = undefined;
      const changes = { ...snapshot.changes, keys: this.keysToWrite(snapshot) };
      // Written in the background (LMDB commits off the main thread); the engine goes on.
      this.saving = this.save(changes).finally(() => {
        this.saving = undefined;
      });
    }
  }

  /**
   * The encoded keys as the writer thread takes them. Their ids are made here, once all are
   * encoded, not kept for seconds before (long enough to be promoted).
   */
  private keysToWrite(snapshot: Snapshot): KeyWrites {
    const ids = snapshot.pending.map((entry) => `${entry.entity}:${entry.key}`);
    return keyWrites(ids, snapshot.encodedAt, this.encoder.written());
  }

  /** Freshness of a written batch: now (its rows are visible) minus each event's append. */
  private recordFreshness(appendTimes: readonly number[]): void {
    const now = Date.now();
    for (const t of appendTimes) {
      const ms = Math.max(1, now - t);
      this.freshness.recordValue(ms);
      freshnessMetric.observe(ms);
    }
  }

  private throwIfWriteFailed(): void {
    if (this.writeError !== undefined) throw this.writeError;
  }

  private async save(changes: CheckpointChanges): Promise<void> {
    try {
      // The rows of every event before the checkpoint's positions must be in the store
      // before the checkpoint says so (a restart would not write them again). Writes are
      // issued one at a time, so the one in flight now is the last of them.
      await this.writing;
      this.throwIfWriteFailed();
      await this.checkpoints.save(changes);
      // The group offsets are informational (the checkpoint is what a restart resumes from).
      await this.behaviour.commit(changes.meta.behaviour);
      await this.items.commit(changes.meta.items);
      this.checkpointCount += 1;
    } catch (err) {
      this.saveError ??= err;
    }
  }

  /**
   * Checkpoints everything processed so far (on close, after a backfill): completes a
   * checkpoint in progress, then writes one of the changes made since it began (completing
   * only the one in progress left those to be replayed from the log on the next start).
   */
  async checkpoint(): Promise<void> {
    await this.writing;
    this.throwIfWriteFailed();
    await this.saving;
    if (this.snapshot) {
      await this.advanceCheckpoint(Number.POSITIVE_INFINITY);
      await this.saving;
    }
    this.beginCheckpoint();
    await this.advanceCheckpoint(Number.POSITIVE_INFINITY);
    await this.saving;
    this.throwIfSaveFailed();
  }

  private throwIfSaveFailed(): void {
    if (this.saveError !== undefined) throw this.saveError;
  }

  stats(): FeatureEngineStats {
    return {
      ...this.counters,
      deadLetters: this.behaviour.deadLetters + this.items.deadLetters,
      items: this.catalogue.size,
      keys: this.keys.size,
      arenaBlocks: this.arena.liveBlocks,
      arenaBytes: this.arena.bytes,
      timeSlots: this.times.live,
      checkpoints: this.checkpointCount,
      checkpointPauseMaxMs: Math.round(this.checkpointPauseMaxMs),
      freshnessP50Ms: this.freshness.getValueAtPercentile(50),
      freshnessP99Ms: this.freshness.getValueAtPercentile(99),
      freshnessMaxMs: this.freshness.maxValue,
    };
  }

  /** Clears the freshness histogram (e.g. after a warm-up). */
  resetFreshness(): void {
    this.freshness.reset();
  }

  async close(): Promise<void> {
    await this.checkpoint();
    await this.behaviour.close();
    await this.items.close();
    await this.checkpoints.close();
  }
}

function compareIds(a: string | undefined, b: string | undefined): number {
  return (a ?? '') < (b ?? '') ? -1 : (a ?? '') > (b ?? '') ? 1 : 0;
}

/** The newest event time over a key's states, -1 when it has none. */
function newestEventTime(entry: KeyEntry): number {
  let newest = -1;
  for (const state of entry.states) {
    const t = state?.maxEventTimeMs ?? null;
    if (t !== null && t > newest) newest = t;
  }
  return newest;
}

function seekAll(sub: EventSubscriber, positions: Positions): void {
  for (const [topic, parts] of Object.entries(positions)) {
    for (const [p, offset] of Object.entries(parts)) sub.consumer.seek(topic, Number(p), offset);
  }
}

/** The newest n item ids over several last-N states, oldest first. */
function mergeLastN(states: LastNState[], n: number): string[] {
  if (states.length === 0) return [];
  if (states.length === 1) return (states[0] as LastNState).read(0);
  const all = states.flatMap((s) => s.entriesWithTime());
  all.sort((a, b) => a[0] - b[0]);
  return all.slice(-n).map(([, id]) => id);
}
