// The joiner: impressions + clicks + watches become labelled samples, the stream the
// online trainer learns from. An impression and its feedback are matched by
// (request id, item) within an attribution window in event time; each impression yields
// exactly one sample on the `samples` topic, emitted as soon as its label is final.
//
// Rules (all times are event times, `ts` of the events):
//
// - Attribution window. Feedback F joins impression P when they have the same request id
//   and item and F.ts < P.ts + windowMs. Feedback outside the window is not joined; it
//   is counted as late feedback.
// - Watermark. Every input stream (a partition of `impressions` or `feedback`) keeps its
//   newest event time; the watermark is the minimum of those minus allowedLatenessMs, and
//   never goes back. It is the minimum over streams rather than the newest event overall
//   because the consumer reads the two topics in polls of up to `batchSize` records per
//   partition: while catching up, one topic can be read minutes (of event time) ahead of
//   the other, and a global maximum would close windows before their feedback, sitting
//   in the other topic, was even read. With the minimum, whether on-time feedback (see
//   below) is joined depends on its own stream's order only, not on how polls interleave
//   the streams, so a live run, a replay after a crash and a rebuild from offset 0 give
//   the same samples (the kill -9 test checks this, with different batch sizes).
//   A stream that never had a record holds the watermark back until the joiner has once
//   caught up with the log (then it is ignored until it gets one). A stream that has had
//   records and then falls silent holds it back (no idleness timeout: that would make
//   the output depend on wall-clock timing); the end of a finite input is declared with
//   catchUp({ endOfInput: true }) instead.
// - Closing. P closes when its watch arrives (a watch implies the click: clicked = true,
//   watchedS and durationS from the watch, sample ts = the watch's ts), or when the
//   watermark reaches P.ts + windowMs (sample ts = P.ts + windowMs): clicked = true with
//   watchedS 0 if a click was joined (its watch came too late or never), else a negative
//   (clicked = false, watchedS 0, no durationS).
// - Out of order. Feedback at most allowedLatenessMs behind the newest event of its own
//   partition is always joined if it is in the window. Feedback later than that is joined
//   if its impression is still open, and otherwise counted as late feedback, never merged
//   into a sample already emitted. A click arriving after the watch that completed its
//   sample agrees with the sample and is absorbed (not late); a second watch is late.
// - Feedback before its impression (the topics are read independently) is held until the
//   watermark reaches F.ts + windowMs, the point after which its impression could only
//   arrive late; the impression joins it on arrival. Still unclaimed then, it is counted
//   as unmatched feedback.
// - Late impressions. An impression whose window has already closed when it arrives
//   (P.ts + windowMs <= watermark) is counted and dropped: its feedback has already been
//   given up on, so the only sample it could get is a negative that may well be wrong.
// - Duplicates. An event re-delivered (same event id) is counted and ignored; so is a
//   second impression of the same (request id, item): one sample per pair. The memory of
//   what was seen is kept until the watermark is two windows past an event's ts: a
//   re-delivery older than that is classed as late, and feedback for an impression
//   forgotten that way (a watch ending more than a window after its window) as
//   unmatched; neither is joined.
//
// Exactly once on `samples`, kill -9 included: a checkpoint (LMDB, one transaction)
// holds the open impressions, held feedback, dedupe memory and counters, the input
// positions they correspond to, and the `samples` end offsets right after the samples of
// that state were appended (checkpoints are taken only after an append resolved). A
// restart restores it, scans `samples` from those end offsets to the end and remembers
// the impression ids found there: they were emitted after the checkpoint, from inputs the
// restart replays. Replaying re-derives them (the decisions depend on event time and each
// stream's own order only) and skips appending them; a remembered id is persisted until
// its replay consumes it, so a second crash cannot forget it. Without any checkpoint
// (first start, or a deleted state directory) the whole `samples` topic is scanned the
// same way, so a rebuild never appends a sample twice either. The embedded log has one
// writer per topic: the joiner takes the writer role of `samples` when it opens (a second
// writer fails at once with E_LOG_LOCKED, and a dead one's torn tail is cut off before
// the scan).
import { createHash } from 'node:crypto';
import TinyQueue from 'tinyqueue';
import type { AppendResult, Bus, ConsumedRecord, Positions } from '../bus/bus.js';
import { RecmasterError } from '../errors.js';
import { decodeEvent } from '../events/codec.js';
import { EventPublisher } from '../events/publisher.js';
import type { Click, Event, Impression, LabelledSample, Watch } from '../events/schemas.js';
import { EventSubscriber } from '../events/subscriber.js';
import { Topics } from '../events/topics.js';
import {
  type EntryKind,
  type JoinerCheckpointChanges,
  type JoinerCheckpointMeta,
  JoinerCheckpointStore,
} from './joiner-checkpoint.js';

export interface JoinerOptions {
  bus: Bus;
  /** Directory of the joiner's checkpoint (LMDB). */
  stateDir: string;
  /** Consumer group. Default 'joiner'. */
  group?: string;
  /** Attribution window after an impression, event time. Default 10 min. */
  windowMs?: number;
  /** How far behind its stream's newest event an event may be and still count. Default 5 s. */
  allowedLatenessMs?: number;
  /** Checkpoint this often (and on close). Default 5 s. */
  checkpointIntervalMs?: number;
  /** Records per poll. Default 1000. */
  batchSize?: number;
  /** Records per batch when behind (several polls, one append). Default 10 × batchSize. */
  maxBatch?: number;
}

export interface JoinerStats {
  /** Impressions accepted (each gets exactly one sample). */
  impressions: number;
  /** Distinct clicks and watches received (duplicates not counted). */
  clicks: number;
  watches: number;
  /** Events re-delivered (same event id, or a second impression of a (request, item)). */
  duplicates: number;
  /** Impressions whose window had closed before they arrived (no sample). */
  lateImpressions: number;
  /** Feedback not joined: outside its impression's window, or after the impression closed. */
  lateFeedback: number;
  /** Feedback whose impression never arrived in time. */
  unmatchedFeedback: number;
  /** Samples emitted (or found already emitted by a run before a crash), positive + negative. */
  samples: number;
  positive: number;
  negative: number;
  /** Samples a restart found already on the topic, so did not append again (this process). */
  suppressed: number;
  /** Impressions waiting for feedback or their window's end. */
  pending: number;
  /** Feedback waiting for its impression. */
  held: number;
  /** Event-time watermark, null until every input stream had an event. */
  watermark: number | null;
  deadLetters: number;
  batches: number;
  checkpoints: number;
}

export interface CatchUpOptions {
  /**
   * The input is complete: after catching up, close every open impression as its window
   * would (label from the feedback joined so far) and count held feedback as unmatched.
   */
  endOfInput?: boolean;
  onBatch?: (stats: JoinerStats) => void;
}

type Feedback = Click | Watch;

interface OpenImpression {
  imp: Impression;
  clicked: boolean;
  /** Feedback ids joined so far (for dedupe). */
  fbIds: string[];
}

interface ClosedImpression {
  id: string;
  /** The impression's ts. */
  ts: number;
  byWatch: boolean;
  fbIds: string[];
}

/** What a timer does when the watermark reaches it (also its order among equal times). */
const TimerKind = {
  Close: 0,
  ExpireHeld: 1,
  ForgetClosed: 2,
  ForgetStray: 3,
  ForgetSuppressed: 4,
} as const;
type TimerKind = (typeof TimerKind)[keyof typeof TimerKind];

interface Timer {
  at: number;
  kind: TimerKind;
  key: string;
  id: string;
}

const COUNTERS = [
  'impressions',
  'clicks',
  'watches',
  'duplicates',
  'lateImpressions',
  'lateFeedback',
  'unmatchedFeedback',
  'positive',
  'negative',
  'batches',
] as const;
type Counter = (typeof COUNTERS)[number];

/** Unambiguous key of a (request, item) pair (ids may contain any character). */
function pairKey(requestId: string, itemId: string): string {
  return `${requestId.length}:${requestId}|${itemId}`;
}

/** The sample's event id: deterministic, so a re-derived sample is the same event. */
export function sampleId(impressionId: string): string {
  const id = `s:${impressionId}`;
  return id.length <= 128
    ? id
    : `s:${createHash('sha256').update(impressionId).digest('hex').slice(0, 64)}`;
}

export class Joiner {
  readonly windowMs: number;
  readonly allowedLatenessMs: number;
  private readonly bus: Bus;
  private readonly store: JoinerCheckpointStore;
  private readonly sub: EventSubscriber;
  private readonly publisher: EventPublisher;
  private readonly checkpointInterval: number;
  private readonly batchSize: number;
  private readonly maxBatch: number;

  private readonly pending = new Map<string, OpenImpression>();
  private readonly closed = new Map<string, ClosedImpression>();
  private readonly held = new Map<string, Feedback[]>();
  /** Feedback counted late or unmatched: id → ts (dedupe memory). */
  private readonly strays = new Map<string, number>();
  /** Impression id → sample ts, for samples already on the topic (see restore). */
  private readonly suppress = new Map<string, number>();
  private readonly timers = new TinyQueue<Timer>([], compareTimers);

  private readonly streamIds: string[] = [];
  private readonly streamIndex = new Map<string, number>();
  private readonly streamMax: (number | null)[] = [];
  private ignoreEmptyStreams = false;
  private watermark: number | null = null;

  private samplesEnd: Record<number, number> = {};
  private readonly counters: Record<Counter, number> = Object.fromEntries(
    COUNTERS.map((c) => [c, 0]),
  ) as Record<Counter, number>;
  private suppressedCount = 0;
  private heldCount = 0;

  /** Entries changed since the last checkpoint: `${kind}|${key}` → value or null (removed). */
  private dirty = new Map<string, unknown>();
  private changedSinceCheckpoint = false;
  private saving: Promise<void> | undefined;
  private saveError: unknown;
  /** Set when an append failed mid-step: the in-memory state is then ahead of the topic. */
  private failed: unknown;
  private lastCheckpoint = 0;
  private checkpointCount = 0;
  private stepping = false;

  private constructor(
    options: JoinerOptions,
    store: JoinerCheckpointStore,
    sub: EventSubscriber,
    windowMs: number,
    latenessMs: number,
  ) {
    this.bus = options.bus;
    this.store = store;
    this.sub = sub;
    this.publisher = new EventPublisher(options.bus);
    this.windowMs = windowMs;
    this.allowedLatenessMs = latenessMs;
    this.checkpointInterval = options.checkpointIntervalMs ?? 5000;
    this.batchSize = Math.max(1, options.batchSize ?? 1000);
    this.maxBatch = Math.max(this.batchSize, options.maxBatch ?? 10 * this.batchSize);
  }

  /** Opens the joiner, resuming from its checkpoint when there is one. */
  static async open(options: JoinerOptions): Promise<Joiner> {
    const windowMs = options.windowMs ?? 600_000;
    const latenessMs = options.allowedLatenessMs ?? 5000;
    if (!Number.isSafeInteger(windowMs) || windowMs <= 0) {
      throw new RecmasterError(
        'E_CONFIG',
        `the window must be a whole number of ms > 0, not ${windowMs}`,
      );
    }
    if (!Number.isSafeInteger(latenessMs) || latenessMs < 0) {
      throw new RecmasterError(
        'E_CONFIG',
        `the allowed lateness must be a whole number of ms >= 0, not ${latenessMs}`,
      );
    }
    const { bus } = options;
    for (const topic of [Topics.impressions, Topics.feedback, Topics.samples])
      await bus.ensureTopic(topic);
    const store = await JoinerCheckpointStore.open(options.stateDir);
    let sub: EventSubscriber | undefined;
    try {
      const meta = store.meta();
      if (meta && (meta.windowMs !== windowMs || meta.allowedLatenessMs !== latenessMs)) {
        throw new RecmasterError(
          'E_CONFIG',
          `the joiner state in ${options.stateDir} was built with a window of ${meta.windowMs} ms and ` +
            `a lateness of ${meta.allowedLatenessMs} ms; pass the same, or delete that directory ` +
            '(and the samples topic) to start over',
        );
      }
      sub = await EventSubscriber.create(bus, {
        group: options.group ?? 'joiner',
        topics: [Topics.impressions, Topics.feedback],
      });
      const joiner = new Joiner(options, store, sub, windowMs, latenessMs);
      await joiner.restore(meta);
      return joiner;
    } catch (err) {
      await sub?.close();
      await store.close();
      throw err;
    }
  }

  private async restore(meta: JoinerCheckpointMeta | undefined): Promise<void> {
    const positions = this.sub.consumer.positions();
    for (const [topic, parts] of Object.entries(positions)) {
      for (const p of Object.keys(parts)) this.stream(`${topic}/${p}`);
    }
    let scanFrom: Record<number, number> = {};
    if (!meta) {
      // No state: it is built from the start of the log, whatever the group committed.
      for (const [topic, parts] of Object.entries(positions)) {
        for (const p of Object.keys(parts)) this.sub.consumer.seek(topic, Number(p), 0);
      }
    } else {
      for (const [topic, parts] of Object.entries(meta.inputs)) {
        for (const [p, offset] of Object.entries(parts))
          this.sub.consumer.seek(topic, Number(p), offset);
      }
      for (const [id, maxTs] of Object.entries(meta.streams))
        this.streamMax[this.stream(id)] = maxTs;
      this.ignoreEmptyStreams = meta.ignoreEmptyStreams;
      this.watermark = meta.watermark;
      for (const c of COUNTERS) this.counters[c] = meta.counters[c] ?? 0;
      scanFrom = meta.samplesEnd;
      const w = this.windowMs;
      for (const [key, open] of this.store.entries<OpenImpression>('p')) {
        this.pending.set(key, open);
        this.timers.push({ at: open.imp.ts + w, kind: TimerKind.Close, key, id: open.imp.id });
      }
      for (const [key, list] of this.store.entries<Feedback[]>('o')) {
        this.held.set(key, list);
        this.heldCount += list.length;
        for (const f of list)
          this.timers.push({ at: f.ts + w, kind: TimerKind.ExpireHeld, key, id: f.id });
      }
      for (const [key, c] of this.store.entries<ClosedImpression>('c')) {
        this.closed.set(key, c);
        this.timers.push({ at: c.ts + 2 * w, kind: TimerKind.ForgetClosed, key, id: c.id });
      }
      for (const [id, ts] of this.store.entries<number>('s')) {
        this.strays.set(id, ts);
        this.timers.push({ at: ts + 2 * w, kind: TimerKind.ForgetStray, key: id, id });
      }
      for (const [id, ts] of this.store.entries<number>('x')) {
        this.suppress.set(id, ts);
        this.timers.push({ at: ts + 2 * w, kind: TimerKind.ForgetSuppressed, key: id, id });
      }
    }
    // Take the writer role of `samples` now (an empty append does only that): a second
    // writer fails here rather than after it consumed input, and a torn tail left by a
    // killed predecessor is cut off before the scan below reads the topic.
    await this.bus.append(Topics.samples, []);
    const info = await this.bus.describe(Topics.samples);
    for (const p of info.partitions) {
      let offset = Math.max(scanFrom[p.partition] ?? 0, p.startOffset);
      while (offset < p.endOffset) {
        const batch = await this.bus.read(Topics.samples, p.partition, offset, 5000);
        if (batch.length === 0) break;
        for (const record of batch) {
          const decoded = decodeEvent(record.value);
          if (decoded.ok && decoded.event.type === 'sample') {
            const { impressionId, ts } = decoded.event;
            if (!this.suppress.has(impressionId)) {
              this.suppress.set(impressionId, ts);
              this.setEntry('x', impressionId, ts);
              this.timers.push({
                at: ts + 2 * this.windowMs,
                kind: TimerKind.ForgetSuppressed,
                key: impressionId,
                id: impressionId,
              });
            }
          }
        }
        offset = (batch.at(-1) as ConsumedRecord).offset + 1;
      }
      this.samplesEnd[p.partition] = p.endOffset;
    }
    this.changedSinceCheckpoint = this.dirty.size > 0;
  }

  /** The index of an input stream (`topic/partition`), registering it on first sight. */
  private stream(id: string): number {
    let index = this.streamIndex.get(id);
    if (index === undefined) {
      index = this.streamIds.length;
      this.streamIds.push(id);
      this.streamIndex.set(id, index);
      this.streamMax.push(null);
    }
    return index;
  }

  /**
   * Processes one batch (waiting up to `timeoutMs` for it); resolves with the number of
   * input events consumed, once the samples they completed are appended.
   */
  async step(timeoutMs = 100): Promise<number> {
    if (this.stepping) throw new Error('Joiner.step is not reentrant: await the previous step');
    if (this.failed !== undefined) throw this.failed;
    this.stepping = true;
    try {
      return await this.stepOnce(timeoutMs);
    } finally {
      this.stepping = false;
    }
  }

  private async stepOnce(timeoutMs: number): Promise<number> {
    const received: { event: Event; record: ConsumedRecord }[] = [];
    let full = true;
    for (let first = true; full && received.length < this.maxBatch; first = false) {
      const deadBefore = this.sub.deadLetters;
      const batch = await this.sub.poll({
        maxRecords: this.batchSize,
        timeoutMs: first ? timeoutMs : 0,
      });
      for (const r of batch) received.push(r);
      // A poll that did not fill up read every partition to its end.
      full = batch.length + (this.sub.deadLetters - deadBefore) >= this.batchSize;
    }
    const out: LabelledSample[] = [];
    for (const { event, record } of received) this.apply(event, record, out);
    if (!full && !this.ignoreEmptyStreams) {
      // Caught up once: a stream still without records is empty, not merely unread yet.
      this.ignoreEmptyStreams = true;
      this.changedSinceCheckpoint = true;
      this.advanceWatermark(out);
    }
    if (received.length > 0) {
      this.counters.batches += 1;
      this.changedSinceCheckpoint = true;
    }
    await this.emit(out);
    this.maybeCheckpoint();
    return received.length;
  }

  /** Appends the samples; the state that produced them is checkpointed only after this. */
  private async emit(out: LabelledSample[]): Promise<void> {
    if (out.length === 0) return;
    let results: AppendResult[];
    try {
      results = await this.publisher.publish(out);
    } catch (err) {
      // The state already counts these samples as emitted: never checkpoint it.
      this.failed = err;
      throw err;
    }
    for (const r of results) {
      if (r.offset + 1 > (this.samplesEnd[r.partition] ?? 0))
        this.samplesEnd[r.partition] = r.offset + 1;
    }
  }

  /** Runs until the signal aborts, then checkpoints. */
  async run(signal: AbortSignal, onBatch?: (stats: JoinerStats) => void): Promise<void> {
    while (!signal.aborted) {
      const n = await this.step(100);
      if (n > 0) onBatch?.(this.stats());
    }
    await this.checkpoint();
  }

  /**
   * Processes the inputs up to their end offsets as of the call, then checkpoints (with
   * `endOfInput`, after closing every open impression).
   */
  async catchUp(options: CatchUpOptions = {}): Promise<void> {
    const target: Positions = {};
    for (const topic of [Topics.impressions, Topics.feedback]) {
      const info = await this.bus.describe(topic);
      target[topic] = Object.fromEntries(info.partitions.map((p) => [p.partition, p.endOffset]));
    }
    const reached = () => {
      const at = this.sub.consumer.positions();
      return Object.entries(target).every(([topic, parts]) =>
        Object.entries(parts).every(([p, end]) => (at[topic]?.[Number(p)] ?? 0) >= end),
      );
    };
    let idle = 0;
    while (!reached()) {
      const n = await this.step(idle > 0 ? 50 : 0);
      if (n > 0) {
        idle = 0;
        options.onBatch?.(this.stats());
      } else {
        idle += 1;
      }
    }
    if (options.endOfInput) {
      const out: LabelledSample[] = [];
      this.closeEverything(out);
      await this.emit(out);
      options.onBatch?.(this.stats());
    }
    await this.checkpoint();
  }

  private apply(event: Event, record: ConsumedRecord, out: LabelledSample[]): void {
    if (event.type === 'impression') this.onImpression(event, out);
    else if (event.type === 'click' || event.type === 'watch') this.onFeedback(event, out);
    else return; // nothing else is published to these topics
    const si =
      this.streamIndex.get(`${record.topic}/${record.partition}`) ??
      this.stream(`${record.topic}/${record.partition}`);
    const max = this.streamMax[si];
    if (max === null || max === undefined || event.ts > max) {
      this.streamMax[si] = event.ts;
      this.advanceWatermark(out);
    }
    this.fire(out);
  }

  private onImpression(imp: Impression, out: LabelledSample[]): void {
    const key = pairKey(imp.requestId, imp.itemId);
    if (this.pending.has(key) || this.closed.has(key)) {
      this.counters.duplicates += 1;
      return;
    }
    if (this.watermark !== null && imp.ts + this.windowMs <= this.watermark) {
      this.counters.lateImpressions += 1;
      return;
    }
    this.counters.impressions += 1;
    const open: OpenImpression = { imp, clicked: false, fbIds: [] };
    this.pending.set(key, open);
    this.setEntry('p', key, open);
    this.timers.push({ at: imp.ts + this.windowMs, kind: TimerKind.Close, key, id: imp.id });
    const waiting = this.held.get(key);
    if (waiting) {
      this.held.delete(key);
      this.heldCount -= waiting.length;
      this.setEntry('o', key, null);
      for (const f of waiting) this.route(key, f, out);
    }
  }

  private onFeedback(f: Feedback, out: LabelledSample[]): void {
    const key = pairKey(f.requestId, f.itemId);
    if (
      this.strays.has(f.id) ||
      this.pending.get(key)?.fbIds.includes(f.id) ||
      this.closed.get(key)?.fbIds.includes(f.id) ||
      this.held.get(key)?.some((h) => h.id === f.id)
    ) {
      this.counters.duplicates += 1;
      return;
    }
    if (f.type === 'click') this.counters.clicks += 1;
    else this.counters.watches += 1;
    this.route(key, f, out);
  }

  /** Joins feedback (new, or held until now) to its impression, or holds or rejects it. */
  private route(key: string, f: Feedback, out: LabelledSample[]): void {
    const open = this.pending.get(key);
    if (open) {
      if (f.ts >= open.imp.ts + this.windowMs) {
        this.reject(f); // outside the attribution window
        return;
      }
      open.fbIds.push(f.id);
      if (f.type === 'watch') {
        this.closeImpression(key, open, f, out);
      } else {
        open.clicked = true;
        this.setEntry('p', key, open);
      }
      return;
    }
    const closed = this.closed.get(key);
    if (closed) {
      if (closed.byWatch && f.type === 'click' && f.ts < closed.ts + this.windowMs) {
        // The watch that completed the sample implied this click: nothing to change.
        closed.fbIds.push(f.id);
        this.setEntry('c', key, closed);
      } else {
        this.reject(f);
      }
      return;
    }
    let list = this.held.get(key);
    if (!list) {
      list = [];
      this.held.set(key, list);
    }
    list.push(f);
    this.heldCount += 1;
    this.setEntry('o', key, list);
    this.timers.push({ at: f.ts + this.windowMs, kind: TimerKind.ExpireHeld, key, id: f.id });
  }

  /** Late feedback: counted, remembered for dedupe, never merged. */
  private reject(f: Feedback): void {
    this.counters.lateFeedback += 1;
    this.remember(f);
  }

  private remember(f: Feedback): void {
    this.strays.set(f.id, f.ts);
    this.setEntry('s', f.id, f.ts);
    this.timers.push({
      at: f.ts + 2 * this.windowMs,
      kind: TimerKind.ForgetStray,
      key: f.id,
      id: f.id,
    });
  }

  /** Closes an impression: by its watch, or (watch undefined) at its window's end. */
  private closeImpression(
    key: string,
    open: OpenImpression,
    watch: Watch | undefined,
    out: LabelledSample[],
  ): void {
    const imp = open.imp;
    this.pending.delete(key);
    this.setEntry('p', key, null);
    const closed: ClosedImpression = {
      id: imp.id,
      ts: imp.ts,
      byWatch: watch !== undefined,
      fbIds: open.fbIds,
    };
    this.closed.set(key, closed);
    this.setEntry('c', key, closed);
    this.timers.push({
      at: imp.ts + 2 * this.windowMs,
      kind: TimerKind.ForgetClosed,
      key,
      id: imp.id,
    });
    const clicked = watch !== undefined || open.clicked;
    const sample: LabelledSample = {
      id: sampleId(imp.id),
      ts: watch ? watch.ts : imp.ts + this.windowMs,
      type: 'sample',
      impressionId: imp.id,
      impressionTs: imp.ts,
      requestId: imp.requestId,
      userId: imp.userId,
      itemId: imp.itemId,
      position: imp.position,
      modelVersion: imp.modelVersion,
      clicked,
      watchedS: watch ? watch.watchedS : 0,
      ...(watch ? { durationS: watch.durationS } : {}),
      features: imp.features,
      scores: imp.scores,
    };
    if (clicked) this.counters.positive += 1;
    else this.counters.negative += 1;
    if (this.suppress.delete(imp.id)) {
      // Appended by a run that crashed before checkpointing it: already on the topic.
      this.setEntry('x', imp.id, null);
      this.suppressedCount += 1;
    } else {
      out.push(sample);
    }
  }

  private advanceWatermark(out: LabelledSample[]): void {
    let min = Number.POSITIVE_INFINITY;
    for (const max of this.streamMax) {
      if (max === null) {
        if (!this.ignoreEmptyStreams) return;
      } else if (max < min) {
        min = max;
      }
    }
    if (min === Number.POSITIVE_INFINITY) return;
    const candidate = min - this.allowedLatenessMs;
    if (this.watermark === null || candidate > this.watermark) {
      this.watermark = candidate;
      this.fire(out);
    }
  }

  /** Runs every timer the watermark has reached. */
  private fire(out: LabelledSample[]): void {
    const wm = this.watermark;
    if (wm === null) return;
    for (let t = this.timers.peek(); t !== undefined && t.at <= wm; t = this.timers.peek()) {
      this.timers.pop();
      switch (t.kind) {
        case TimerKind.Close: {
          const open = this.pending.get(t.key);
          if (open && open.imp.id === t.id) this.closeImpression(t.key, open, undefined, out);
          break;
        }
        case TimerKind.ExpireHeld:
          this.expireHeld(t.key, t.id);
          break;
        case TimerKind.ForgetClosed:
          if (this.closed.get(t.key)?.id === t.id) {
            this.closed.delete(t.key);
            this.setEntry('c', t.key, null);
          }
          break;
        case TimerKind.ForgetStray:
          if (this.strays.delete(t.id)) this.setEntry('s', t.id, null);
          break;
        case TimerKind.ForgetSuppressed:
          if (this.suppress.delete(t.id)) this.setEntry('x', t.id, null);
          break;
      }
    }
  }

  private expireHeld(key: string, id: string): void {
    const list = this.held.get(key);
    const index = list?.findIndex((f) => f.id === id) ?? -1;
    if (!list || index < 0) return;
    const [f] = list.splice(index, 1);
    this.heldCount -= 1;
    if (list.length === 0) this.held.delete(key);
    this.setEntry('o', key, list.length === 0 ? null : list);
    this.counters.unmatchedFeedback += 1;
    this.remember(f as Feedback);
  }

  /** End of input: every open impression closes as its window would; held feedback is unmatched. */
  private closeEverything(out: LabelledSample[]): void {
    const open = [...this.pending].sort(
      ([ka, a], [kb, b]) => a.imp.ts - b.imp.ts || (ka < kb ? -1 : ka > kb ? 1 : 0),
    );
    for (const [key, entry] of open) this.closeImpression(key, entry, undefined, out);
    for (const [key, list] of [...this.held]) {
      for (const f of [...list]) this.expireHeld(key, f.id);
    }
    this.changedSinceCheckpoint = true;
  }

  private setEntry(kind: EntryKind, key: string, value: unknown): void {
    this.dirty.set(`${kind}|${key}`, value);
  }

  private maybeCheckpoint(): void {
    this.throwIfSaveFailed();
    if (
      this.changedSinceCheckpoint &&
      !this.saving &&
      Date.now() - this.lastCheckpoint >= this.checkpointInterval
    ) {
      this.lastCheckpoint = Date.now();
      const changes = this.snapshot();
      // Written in the background (LMDB commits off the main thread); the joiner goes on.
      this.saving = this.save(changes).finally(() => {
        this.saving = undefined;
      });
    }
  }

  /** The state of this moment, as checkpoint changes (encoded now, written later). */
  private snapshot(): JoinerCheckpointChanges {
    const entries = new Map<string, Buffer | null>();
    for (const [key, value] of this.dirty)
      entries.set(key, value === null ? null : Buffer.from(JSON.stringify(value)));
    this.dirty = new Map();
    this.changedSinceCheckpoint = false;
    const streams: Record<string, number | null> = {};
    this.streamIds.forEach((id, i) => {
      streams[id] = this.streamMax[i] ?? null;
    });
    return {
      meta: {
        version: 1,
        windowMs: this.windowMs,
        allowedLatenessMs: this.allowedLatenessMs,
        inputs: this.sub.consumer.positions(),
        samplesEnd: { ...this.samplesEnd },
        streams,
        ignoreEmptyStreams: this.ignoreEmptyStreams,
        watermark: this.watermark,
        counters: { ...this.counters },
      },
      entries,
    };
  }

  private async save(changes: JoinerCheckpointChanges): Promise<void> {
    try {
      await this.store.save(changes);
      // The group offsets are informational (the checkpoint is what a restart resumes from).
      await this.sub.commit(changes.meta.inputs);
      this.checkpointCount += 1;
    } catch (err) {
      this.saveError ??= err;
    }
  }

  /** Checkpoints now, completely (on close, after a catch-up). */
  async checkpoint(): Promise<void> {
    if (this.failed !== undefined) throw this.failed;
    await this.saving;
    this.throwIfSaveFailed();
    this.lastCheckpoint = Date.now();
    await this.save(this.snapshot());
    this.throwIfSaveFailed();
  }

  private throwIfSaveFailed(): void {
    if (this.saveError !== undefined) throw this.saveError;
  }

  stats(): JoinerStats {
    const c = this.counters;
    return {
      impressions: c.impressions,
      clicks: c.clicks,
      watches: c.watches,
      duplicates: c.duplicates,
      lateImpressions: c.lateImpressions,
      lateFeedback: c.lateFeedback,
      unmatchedFeedback: c.unmatchedFeedback,
      samples: c.positive + c.negative,
      positive: c.positive,
      negative: c.negative,
      suppressed: this.suppressedCount,
      pending: this.pending.size,
      held: this.heldCount,
      watermark: this.watermark,
      deadLetters: this.sub.deadLetters,
      batches: c.batches,
      checkpoints: this.checkpointCount,
    };
  }

  /** Checkpoints (unless an append failed, when the state must not be kept) and closes. */
  async close(): Promise<void> {
    try {
      if (this.failed === undefined) await this.checkpoint();
      else await this.saving;
    } finally {
      await this.sub.close();
      await this.store.close();
    }
  }
}

function compareTimers(a: Timer, b: Timer): number {
  return (
    a.at - b.at ||
    a.kind - b.kind ||
    (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  );
}
