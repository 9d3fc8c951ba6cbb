// The event stream: requests arrive as a Poisson process in event time, the recommender
// answers, the truth decides clicks and watches, and everything is emitted in event-time
// order (feedback optionally jittered by disorderMs) in batches to a sink.
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import TinyQueue from 'tinyqueue';
import type { Click, Event, ItemUpsert, Marker, Watch } from '../events/schemas.js';
import { cumulative, Rng } from '../util/rng.js';
import { parseSimConfig, type SimConfig, type SimConfigInput } from './config.js';
import { IdSource } from './ids.js';
import { LoggingPolicy } from './policy.js';
import type { Recommender } from './recommender.js';
import type { EventSink } from './sink.js';
import { TRUTH, Truth } from './truth.js';
import { categoryId, creatorId, tagId, World, type WorldItem } from './world.js';

/** Initial catalogue items were created up to this long before startTime. */
const CATALOGUE_AGE_MS = 30 * 86_400_000;
/** A click follows its impression after 1-10 s. */
const CLICK_DELAY_MS = { min: 1000, max: 10_000 };
/** When paced, flush every this many wall-clock ms (so real-time lag stays small). */
const PACED_TICK_WALL_MS = 10;
/** Unpaced, flush at least every simulated second. */
const UNPACED_TICK_MS = 1000;

export interface SimStats {
  requests: number;
  impressions: number;
  clicks: number;
  watches: number;
  newItems: number;
  itemUpserts: number;
  markers: number;
  /** Events handed to the sink. */
  events: number;
  /** Items a server recommended that the world does not know (no feedback for them). */
  unknownItems: number;
  /** Event time reached, epoch ms. */
  eventTimeMs: number;
  /** Event-time seconds since startTime. */
  simulatedS: number;
}

export interface RunOptions {
  sink: EventSink;
  /**
   * Event-time seconds to generate requests and items for. Feedback still pending at the end
   * is then drained at once (unpaced), unless `drain` is false.
   */
  durationS?: number;
  /** Hard cap on emitted events (stops at exactly this many, without draining). */
  maxEvents?: number;
  /** Event-time seconds per wall-clock second; 0/undefined = as fast as possible. */
  speed?: number;
  /** Called after each batch. */
  onProgress?: (stats: SimStats) => void;
  /** Stops the run after the current batch (buffered events are still emitted). */
  signal?: AbortSignal;
  /** Max events per sink call; default 1000. */
  batchSize?: number;
  /** Emit feedback still pending when durationS ends; default true. */
  drain?: boolean;
}

interface Pending {
  /** When to emit: the event time plus optional disorder jitter. */
  emitAt: number;
  seq: number;
  event: Click | Watch;
}

export interface SimulatorOptions {
  /** Default: the built-in logging policy (which also produces the impressions). */
  recommender?: Recommender;
}

export class Simulator {
  readonly config: SimConfig;
  readonly world: World;
  readonly truth: Truth;
  readonly policy: LoggingPolicy;
  readonly recommender: Recommender;
  readonly stats: SimStats;

  private readonly ids: IdSource;
  private readonly arrivals: Rng;
  private readonly itemArrivals: Rng;
  private readonly feedback: Rng;
  private readonly disorder: Rng;
  private readonly catalogue: Rng;
  private readonly userCum: Float64Array;
  private readonly queue = new TinyQueue<Pending>(
    [],
    (a, b) => a.emitAt - b.emitAt || a.seq - b.seq,
  );
  private seq = 0;
  private started = false;

  constructor(config: SimConfigInput | SimConfig = {}, opts: SimulatorOptions = {}) {
    this.config = parseSimConfig(config);
    this.world = new World(this.config);
    this.truth = new Truth(this.world);
    this.ids = new IdSource(this.config.seed, this.config.runId);
    const root = new Rng(this.config.seed).fork('simulator');
    this.arrivals = root.fork('arrivals');
    this.itemArrivals = root.fork('item-arrivals');
    this.feedback = root.fork('feedback');
    this.disorder = root.fork('disorder');
    this.catalogue = root.fork('catalogue');
    this.policy = new LoggingPolicy(this.world, root.fork('policy'), this.ids);
    this.recommender = opts.recommender ?? this.policy;
    this.userCum = cumulative(this.world.users.map((u) => u.activity));
    this.stats = {
      requests: 0,
      impressions: 0,
      clicks: 0,
      watches: 0,
      newItems: 0,
      itemUpserts: 0,
      markers: 0,
      events: 0,
      unknownItems: 0,
      eventTimeMs: this.config.startTime,
      simulatedS: 0,
    };
  }

  /** Runs the simulation once; resolves with the final counters. */
  async run(opts: RunOptions): Promise<SimStats> {
    const { sink, durationS, maxEvents = Number.POSITIVE_INFINITY, signal, onProgress } = opts;
    if (durationS === undefined && !Number.isFinite(maxEvents) && !signal) {
      throw new Error('Simulator.run needs durationS, maxEvents or signal to know when to stop');
    }
    if (this.started) throw new Error('Simulator.run can only be called once per instance');
    this.started = true;
    const speed = opts.speed ?? 0;
    const batchSize = Math.max(1, opts.batchSize ?? 1000);
    const drain = opts.drain ?? true;
    const c = this.config;
    const start = c.startTime;
    const end = durationS === undefined ? Number.POSITIVE_INFINITY : start + durationS * 1000;
    const tick =
      speed > 0 ? Math.min(1000, Math.max(1, PACED_TICK_WALL_MS * speed)) : UNPACED_TICK_MS;
    const wallStart = performance.now();

    let buffer: Event[] = [];
    let stopped = false;
    const stats = this.stats;

    const push = (e: Event): boolean => {
      if (stats.events + buffer.length >= maxEvents) {
        stopped = true;
        return false;
      }
      buffer.push(e);
      return true;
    };
    const flush = async (eventTime: number) => {
      // Feedback drained after `end` is not paced: it would otherwise keep a paced run going
      // for up to the longest watch time (minutes) after durationS.
      if (speed > 0 && eventTime <= end) {
        const wait = wallStart + (eventTime - start) / speed - performance.now();
        if (wait > 0) await sleep(wait, signal);
      }
      stats.eventTimeMs = Math.max(stats.eventTimeMs, Math.floor(Math.min(eventTime, end)));
      stats.simulatedS = (stats.eventTimeMs - start) / 1000;
      if (buffer.length > 0) {
        const batch = buffer;
        buffer = [];
        for (const e of batch) this.count(e);
        await sink.emit(batch);
      }
      onProgress?.({ ...stats });
      if (speed <= 0) await yieldToLoop(); // let timers and the abort signal run
      if (signal?.aborted || stats.events >= maxEvents) stopped = true;
    };

    // The initial catalogue, created in the past, announced at the start.
    for (let i = 0; i < c.items && !stopped; i++) {
      const createdAt = start - Math.floor(this.catalogue.uniform() * CATALOGUE_AGE_MS);
      push(this.itemUpsert(this.world.item(i), start, createdAt));
      if (buffer.length >= batchSize) await flush(start);
    }

    let nextRequest = start + this.arrivals.poissonInterval(c.requestsPerSecond / 1000);
    let nextItem = start + this.itemArrivals.poissonInterval(c.newItemsPerMinute / 60_000);
    let nextDrift = this.world.driftTimeMs ?? Number.POSITIVE_INFINITY;
    let flushAt = start + tick;

    while (!stopped) {
      if (nextRequest >= end) nextRequest = Number.POSITIVE_INFINITY;
      if (nextItem >= end) nextItem = Number.POSITIVE_INFINITY;
      if (nextDrift >= end) nextDrift = Number.POSITIVE_INFINITY;
      const head = this.queue.peek();
      let pendingAt = head ? head.emitAt : Number.POSITIVE_INFINITY;
      if (!drain && pendingAt >= end) pendingAt = Number.POSITIVE_INFINITY;
      const t = Math.min(nextRequest, nextItem, nextDrift, pendingAt);
      if (t === Number.POSITIVE_INFINITY) break;

      if (t >= flushAt || buffer.length >= batchSize) {
        await flush(Math.min(t, flushAt));
        if (stopped) break;
        if (t >= flushAt) flushAt += Math.ceil((t - flushAt + 1e-9) / tick) * tick;
      }

      if (t === pendingAt) {
        push((this.queue.pop() as Pending).event);
      } else if (t === nextDrift) {
        push(this.driftMarker(Math.floor(t)));
        nextDrift = Number.POSITIVE_INFINITY;
      } else if (t === nextItem) {
        if (push(this.itemUpsert(this.world.addItem(), Math.floor(t), Math.floor(t)))) {
          stats.newItems++;
        }
        nextItem += this.itemArrivals.poissonInterval(c.newItemsPerMinute / 60_000);
      } else {
        await this.request(t, push);
        nextRequest += this.arrivals.poissonInterval(c.requestsPerSecond / 1000);
      }
    }
    stopped = false; // what is buffered was produced before the stop: emit it
    await flush(Math.min(flushAt, end));
    return { ...stats };
  }

  /** One recommendation request at event time t: slate, impressions, sampled feedback. */
  private async request(t: number, push: (e: Event) => boolean): Promise<void> {
    const ts = Math.floor(t);
    const user = this.arrivals.pickCumulative(this.userCum);
    const userId = this.world.user(user).id;
    this.stats.requests++;
    const res = await this.recommender.recommend({ userId, count: this.config.slateSize, ts });
    if (res.impressions) for (const imp of res.impressions) push(imp);

    for (const rec of res.items) {
      const item = this.world.findItem(rec.itemId);
      if (item < 0) {
        this.stats.unknownItems++;
        continue;
      }
      const o = this.truth.outcomeIdx(user, item, rec.position, ts);
      if (this.feedback.uniform() >= o.click) continue;
      const clickAt = t + this.feedback.range(CLICK_DELAY_MS.min, CLICK_DELAY_MS.max);
      const r = Math.min(1 - 1e-9, Math.max(1e-9, o.watchRatio));
      const durationS = this.world.item(item).durationS;
      const share = this.feedback.beta(r * TRUTH.kappa, (1 - r) * TRUTH.kappa);
      const watchedS = Math.round(durationS * share * 1000) / 1000;
      const base = { requestId: res.requestId, userId, itemId: rec.itemId };
      this.enqueue(clickAt, {
        id: this.ids.nextEventId(),
        ts: Math.floor(clickAt),
        type: 'click',
        ...base,
      });
      const watchAt = clickAt + watchedS * 1000;
      this.enqueue(watchAt, {
        id: this.ids.nextEventId(),
        ts: Math.floor(watchAt),
        type: 'watch',
        ...base,
        watchedS,
        durationS,
      });
    }
  }

  private enqueue(at: number, event: Click | Watch): void {
    const jitter =
      this.config.disorderMs > 0 ? this.disorder.uniform() * this.config.disorderMs : 0;
    this.queue.push({ emitAt: at + jitter, seq: this.seq++, event });
  }

  private itemUpsert(item: WorldItem, ts: number, createdAt: number): ItemUpsert {
    return {
      id: this.ids.nextEventId(),
      ts,
      type: 'item_upsert',
      itemId: item.id,
      category: categoryId(item.category),
      tags: item.tags.map(tagId),
      creator: creatorId(item.creator),
      durationS: item.durationS,
      createdAt,
    };
  }

  private driftMarker(ts: number): Marker {
    return {
      id: this.ids.nextEventId(),
      ts,
      type: 'marker',
      name: 'drift',
      detail: { share: this.config.driftShare, usersAffected: this.world.driftedUsers.length },
    };
  }

  private count(e: Event): void {
    const s = this.stats;
    s.events++;
    switch (e.type) {
      case 'impression':
        s.impressions++;
        break;
      case 'click':
        s.clicks++;
        break;
      case 'watch':
        s.watches++;
        break;
      case 'item_upsert':
        s.itemUpserts++;
        break;
      case 'marker':
        s.markers++;
        break;
      default:
        break;
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
