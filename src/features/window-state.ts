// Per-key aggregation state of one aggregate feature, in event time, engine-independent and pure
// (no clocks, no I/O). The embedded engine keeps one state per (feature, key), feeds it events
// with the current watermark, reads it when serving, and snapshots `serialize()` together with
// the consumer offsets (exactly-once: restore the snapshot, resume from its offsets).
//
// - add(eventTimeMs, value, watermarkMs) -> 'applied' | 'late'. 'late' means the event can no
//   longer change any read as of the watermark or later: the state is left as it was and the
//   caller counts it. Sliding/tumbling windows refuse events older than the window as of the
//   watermark; a full last-N sequence refuses events older than all it holds (they would fall off
//   at once). Decayed and unbounded aggregates take any event exactly (their closed form does not
//   depend on arrival order), as Flink's unbounded aggregations do.
// - read(asOfMs): the value as of asOfMs, exact for any asOf at or after the watermark. States
//   keep no history beyond that: a sliding window reads an earlier asOf as of the oldest window
//   it still holds; decayed, unbounded and last-N states read it as of their newest event.
// - maxEventTimeMs: the newest event time included (freshness, TTL), null while empty.
// - writeHead(out, at) / readHead: a numeric state's usual read in HEAD_WIDTH numbers, which
//   the engine keeps for all of a key's states in one typed array: reading a row then walks one
//   array instead of ~28 scattered state objects (it was the engine's largest cost). readHead
//   returns exactly what read() would, or NaN when only the state itself can answer.
import { z } from 'zod';
import { RecmasterError } from '../errors.js';
import type { BinaryReader, BinaryWriter } from '../util/binary.js';
import type { AggregateFeature } from './definitions.js';

export type AddResult = 'applied' | 'late';
/** Which of the two running numbers a numeric state reports. */
export type Measure = 'count' | 'sum';

const eventTime = z.number().int().nonnegative();
const maxTs = eventTime.nullable();

const SlidingJson = z.strictObject({
  kind: z.literal('sliding'),
  sizeMs: z.number().int().positive(),
  slideMs: z.number().int().positive(),
  measure: z.enum(['count', 'sum']),
  maxEventTimeMs: maxTs,
  /** Non-empty buckets, oldest first: [bucket index = floor(ts / slideMs), sum, count]. */
  buckets: z.array(
    z.tuple([z.number().int().nonnegative(), z.number().finite(), z.number().int()]),
  ),
  /**
   * The running [sum, count] of the window ending at the newest bucket, kept as it was
   * accumulated: recomputing it could differ in the last bits of a float sum, and a
   * restored state must continue exactly as the original would have.
   */
  headTotals: z.tuple([z.number().finite(), z.number().int()]).optional(),
});
const DecayedJson = z.strictObject({
  kind: z.literal('decayed'),
  halfLifeMs: z.number().int().positive(),
  measure: z.enum(['count', 'sum']),
  maxEventTimeMs: maxTs,
  /** The decayed total as of maxEventTimeMs (its reference time). */
  value: z.number().finite(),
});
const UnboundedJson = z.strictObject({
  kind: z.literal('unbounded'),
  measure: z.enum(['count', 'sum']),
  maxEventTimeMs: maxTs,
  sum: z.number().finite(),
  count: z.number().int().nonnegative(),
});
const LastNJson = z.strictObject({
  kind: z.literal('last_n'),
  n: z.number().int().positive(),
  dedupeConsecutive: z.boolean(),
  maxEventTimeMs: maxTs,
  /** [event time, item id], oldest first. */
  entries: z.array(z.tuple([eventTime, z.string()])),
});
export const StateJson = z.discriminatedUnion('kind', [
  SlidingJson,
  DecayedJson,
  UnboundedJson,
  LastNJson,
]);
export type StateJson = z.infer<typeof StateJson>;

/** Numbers per numeric state in a head table (see writeHead). */
export const HEAD_WIDTH = 4;

/** A decayed total as of asOf: the one formula for a state's read and its head's. */
function decayedRead(value: number, ref: number, asOfMs: number, halfLifeMs: number): number {
  return value * 2 ** (-Math.max(0, asOfMs - ref) / halfLifeMs);
}

function later(a: number | null, b: number): number {
  return a === null || b > a ? b : a;
}

/** Engine settings a state needs that are not part of the feature definition. */
export interface StateOptions {
  /**
   * How far the watermark the engine passes to `add` may trail the newest event time it has
   * seen (its bounded out-of-orderness). A sliding window keeps floor(lateness / slide) + 1
   * buckets beyond its size, so that every window ending at or after the watermark can be read
   * exactly and every event not older than the watermark's window is applied. Default 0.
   */
  allowedLatenessMs?: number;
}

/**
 * Sliding (hopping) window over slide-sized buckets; a tumbling window is the case
 * slideMs = sizeMs. Read as of t: the sum over the k = sizeMs / slideMs buckets ending with
 * the bucket of t, i.e. events in [e - sizeMs, e), e = (floor(t / slideMs) + 1) * slideMs. The
 * state keeps the buckets of the last k + extra slides, extra = floor(allowedLateness / slide) + 1,
 * so any t with a bucket from (newest bucket - extra) on reads exactly; an earlier t is read as
 * of that bucket. Buckets are stored sparsely (only slides that had events, oldest first): most
 * keys see few events, and a ring of every slide would cost memory for nothing. The window
 * ending at the newest bucket keeps running totals, so the engine's usual read is O(1). An
 * event is late when it is older than the window as of the watermark (it can only have counted
 * in windows already past), or older than the buckets kept (the watermark trails by more than
 * the declared lateness).
 */
export class SlidingWindowState {
  readonly kind = 'sliding';
  readonly sizeMs: number;
  readonly slideMs: number;
  readonly measure: Measure;
  readonly allowedLatenessMs: number;
  private readonly k: number;
  private readonly extra: number;
  private readonly cap: number;
  /**
   * [bucket index (floor(ts / slideMs)), sum, count] of each bucket with events, ascending, in
   * one array (three arrays made each window seven heap objects for the GC to trace).
   */
  private buckets: number[] = [];
  private head: number | null = null;
  private maxTs: number | null = null;
  /** Running totals of the window ending at `head` (the read the engine makes most). */
  private headSum = 0;
  private headCount = 0;

  constructor(sizeMs: number, slideMs: number, measure: Measure, options: StateOptions = {}) {
    if (!(sizeMs > 0 && slideMs > 0 && sizeMs % slideMs === 0)) {
      throw new RecmasterError('E_CONFIG', `slideMs ${slideMs} must divide sizeMs ${sizeMs}`);
    }
    const lateness = options.allowedLatenessMs ?? 0;
    if (!(lateness >= 0 && Number.isFinite(lateness))) {
      throw new RecmasterError('E_CONFIG', `allowedLatenessMs must be >= 0, got ${lateness}`);
    }
    this.sizeMs = sizeMs;
    this.slideMs = slideMs;
    this.measure = measure;
    this.allowedLatenessMs = lateness;
    this.k = sizeMs / slideMs;
    this.extra = Math.floor(lateness / slideMs) + 1;
    this.cap = this.k + this.extra;
  }

  get maxEventTimeMs(): number | null {
    return this.maxTs;
  }

  private bucket(t: number): number {
    return Math.floor(t / this.slideMs);
  }

  add(eventTimeMs: number, value: number, watermarkMs: number): AddResult {
    const b = this.bucket(eventTimeMs);
    if (b < this.bucket(Math.max(watermarkMs, 0)) - this.k + 1) return 'late';
    if (this.head !== null && b <= this.head - this.cap) return 'late';
    if (this.head === null || b > this.head) this.advanceHead(b);
    // Usually the newest bucket; otherwise find its place (binary search from the end).
    const buckets = this.buckets;
    const n = buckets.length / 3;
    let i = n - 1;
    if (i < 0 || (buckets[i * 3] as number) !== b) {
      let lo = 0;
      let hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if ((buckets[mid * 3] as number) < b) lo = mid + 1;
        else hi = mid;
      }
      i = lo;
      // A new newest bucket, the usual case: push (splice allocates an array to return).
      if (i === n) buckets.push(b, 0, 0);
      else if (buckets[i * 3] !== b) buckets.splice(i * 3, 0, b, 0, 0);
    }
    buckets[i * 3 + 1] = (buckets[i * 3 + 1] as number) + value;
    buckets[i * 3 + 2] = (buckets[i * 3 + 2] as number) + 1;
    if (b > (this.head as number) - this.k) {
      this.headSum += value;
      this.headCount += 1;
    }
    this.maxTs = later(this.maxTs, eventTimeMs);
    return 'applied';
  }

  /** Moves the head window to end at bucket b: takes out what slides out, drops what is too old. */
  private advanceHead(b: number): void {
    const buckets = this.buckets;
    const n = buckets.length / 3;
    if (this.head !== null) {
      const oldStart = this.head - this.k + 1;
      const newStart = b - this.k + 1;
      for (let i = 0; i < n; i++) {
        const bucket = buckets[i * 3] as number;
        if (bucket >= newStart) break;
        if (bucket >= oldStart) {
          this.headSum -= buckets[i * 3 + 1] as number;
          this.headCount -= buckets[i * 3 + 2] as number;
        }
      }
    }
    this.head = b;
    let drop = 0;
    while (drop < n && (buckets[drop * 3] as number) <= b - this.cap) drop++;
    // In place: the array lives long (promoted), and a splice's new array would be old-space
    // garbage for the next full collection.
    if (drop > 0) dropFront(buckets, drop * 3);
  }

  read(asOfMs: number): number {
    if (this.head === null) return 0;
    const end = Math.max(this.bucket(Math.max(asOfMs, 0)), this.head - this.extra);
    const head = this.measure === 'sum' ? this.headSum : this.headCount;
    if (end === this.head) return head;
    const start = end - this.k + 1;
    const buckets = this.buckets;
    const n = buckets.length / 3;
    const of = this.measure === 'sum' ? 1 : 2;
    if (end > this.head) {
      // Later than the head window: that window minus what has slid out of it since, which
      // is only the oldest few buckets (an idle stream of a busy key is read this way).
      if (start > this.head) return 0;
      const headStart = this.head - this.k + 1;
      let total = head;
      for (let i = 0; i < n; i++) {
        const b = buckets[i * 3] as number;
        if (b >= start) break;
        if (b >= headStart) total -= buckets[i * 3 + of] as number;
      }
      return total;
    }
    let total = 0;
    for (let i = 0; i < n; i++) {
      const b = buckets[i * 3] as number;
      if (b > end) break;
      if (b >= start) total += buckets[i * 3 + of] as number;
    }
    return total;
  }

  /**
   * [head bucket, the head window's value, its oldest bucket, that bucket's value] (NaN while
   * empty): enough for a read as of the head's bucket or the next one, the usual reads.
   */
  writeHead(out: Float64Array, at: number): void {
    if (this.head === null) {
      out.fill(Number.NaN, at, at + HEAD_WIDTH);
      return;
    }
    const headStart = this.head - this.k + 1;
    const buckets = this.buckets;
    let i = 0;
    while ((buckets[i] as number) < headStart) i += 3; // the head bucket itself ends this
    out[at] = this.head;
    out[at + 1] = this.measure === 'sum' ? this.headSum : this.headCount;
    out[at + 2] = buckets[i] as number;
    out[at + 3] = buckets[i + (this.measure === 'sum' ? 1 : 2)] as number;
  }

  /** read(asOfMs) from writeHead's numbers, bit for bit, or NaN when they do not tell it. */
  static readHead(h: Float64Array, at: number, asOfMs: number, slideMs: number, k: number): number {
    const head = h[at] as number;
    if (Number.isNaN(head)) return 0; // empty
    const end = Math.floor(Math.max(asOfMs, 0) / slideMs);
    if (end === head) return h[at + 1] as number;
    if (end < head) return Number.NaN;
    const start = end - k + 1;
    if (start > head) return 0;
    // As read(): the head window minus its buckets older than start, oldest first.
    const oldest = h[at + 2] as number;
    if (oldest >= start) return h[at + 1] as number;
    if (oldest === start - 1) return (h[at + 1] as number) - (h[at + 3] as number);
    return Number.NaN;
  }

  serialize(): StateJson {
    const buckets: [number, number, number][] = [];
    for (let i = 0; i < this.buckets.length; i += 3) {
      buckets.push([
        this.buckets[i] as number,
        this.buckets[i + 1] as number,
        this.buckets[i + 2] as number,
      ]);
    }
    return {
      kind: 'sliding',
      sizeMs: this.sizeMs,
      slideMs: this.slideMs,
      measure: this.measure,
      maxEventTimeMs: this.maxTs,
      buckets,
      headTotals: [this.headSum, this.headCount],
    };
  }

  /**
   * What serialize() says, in binary (readStateBinary reads it back as the same JSON).
   * Compactly when it can be exact: bucket indexes as varint steps from the one before and
   * counts as varints, sums left out when each equals its count (a counting window, 95 % of
   * them). A bucket as three float64s was most of a checkpoint's bytes (13.9 of 17.1 MB for a
   * 454k-event log; ~10 MB this way). Otherwise (a negative bucket index), three float64s.
   */
  writeTo(w: BinaryWriter): void {
    const b = this.buckets;
    let compact = true;
    let countedOnly = true;
    for (let i = 0; i < b.length; i += 3) {
      const index = b[i] as number;
      const count = b[i + 2] as number;
      const after = i === 0 ? 0 : (b[i - 3] as number);
      if (
        !(
          Number.isSafeInteger(index) &&
          index >= after &&
          Number.isSafeInteger(count) &&
          count >= 0
        )
      )
        compact = false;
      if (!Object.is(b[i + 1], count)) countedOnly = false;
    }
    w.u8(compact ? KIND_CODE.sliding_compact : KIND_CODE.sliding);
    w.f64(this.sizeMs);
    w.f64(this.slideMs);
    w.u8(MEASURE_CODE[this.measure]);
    w.f64(this.maxTs ?? Number.NaN);
    w.f64(this.headSum);
    w.f64(this.headCount);
    if (!compact) {
      w.u32(b.length / 3);
      for (const x of b) w.f64(x);
      return;
    }
    w.uvar(b.length / 3);
    w.u8(countedOnly ? 1 : 0);
    let previous = 0;
    for (let i = 0; i < b.length; i += 3) {
      w.uvar((b[i] as number) - previous); // ascending: never negative
      previous = b[i] as number;
      w.uvar(b[i + 2] as number);
      if (!countedOnly) w.f64(b[i + 1] as number);
    }
  }

  /** Restores buckets; with a smaller lateness than when saved, the oldest buckets are dropped. */
  static fromJson(
    json: z.infer<typeof SlidingJson>,
    options: StateOptions = {},
  ): SlidingWindowState {
    const state = new SlidingWindowState(json.sizeMs, json.slideMs, json.measure, options);
    const head = json.buckets.reduce((h, [b]) => Math.max(h, b), -1);
    const kept = json.buckets.filter(([b]) => b > head - state.cap).sort((x, y) => x[0] - y[0]);
    state.buckets = kept.flat();
    state.head = head < 0 ? null : head;
    state.maxTs = json.maxEventTimeMs;
    if (json.headTotals) [state.headSum, state.headCount] = json.headTotals;
    else state.recomputeHead();
    return state;
  }

  /** Recomputes the head totals from the buckets (a snapshot without them). */
  private recomputeHead(): void {
    this.headSum = 0;
    this.headCount = 0;
    if (this.head === null) return;
    for (let i = 0; i < this.buckets.length; i += 3) {
      if ((this.buckets[i] as number) > this.head - this.k) {
        this.headSum += this.buckets[i + 1] as number;
        this.headCount += this.buckets[i + 2] as number;
      }
    }
  }
}

/**
 * Exponentially decayed counter: the total as of its reference time (the newest event), decayed
 * lazily: sum of v_i * 2^(-(t - t_i) / halfLife) read at t. An older event is added already
 * decayed to the reference time, so the value does not depend on arrival order.
 */
export class DecayedState {
  readonly kind = 'decayed';
  readonly halfLifeMs: number;
  readonly measure: Measure;
  private value = 0;
  private ref: number | null = null;

  constructor(halfLifeMs: number, measure: Measure) {
    this.halfLifeMs = halfLifeMs;
    this.measure = measure;
  }

  get maxEventTimeMs(): number | null {
    return this.ref;
  }

  private decay(dtMs: number): number {
    return 2 ** (-dtMs / this.halfLifeMs);
  }

  add(eventTimeMs: number, value: number, _watermarkMs: number): AddResult {
    const v = this.measure === 'count' ? 1 : value;
    if (this.ref === null || eventTimeMs >= this.ref) {
      this.value = this.ref === null ? v : this.value * this.decay(eventTimeMs - this.ref) + v;
      this.ref = eventTimeMs;
    } else {
      this.value += v * this.decay(this.ref - eventTimeMs);
    }
    return 'applied';
  }

  read(asOfMs: number): number {
    if (this.ref === null) return 0;
    return decayedRead(this.value, this.ref, asOfMs, this.halfLifeMs);
  }

  /** [reference time, value as of it, NaN, NaN] (NaN while empty). */
  writeHead(out: Float64Array, at: number): void {
    out[at] = this.ref ?? Number.NaN;
    out[at + 1] = this.value;
    out[at + 2] = Number.NaN;
    out[at + 3] = Number.NaN;
  }

  static readHead(h: Float64Array, at: number, asOfMs: number, halfLifeMs: number): number {
    const ref = h[at] as number;
    return Number.isNaN(ref) ? 0 : decayedRead(h[at + 1] as number, ref, asOfMs, halfLifeMs);
  }

  serialize(): StateJson {
    return {
      kind: 'decayed',
      halfLifeMs: this.halfLifeMs,
      measure: this.measure,
      maxEventTimeMs: this.ref,
      value: this.value,
    };
  }

  writeTo(w: BinaryWriter): void {
    w.u8(KIND_CODE.decayed);
    w.f64(this.halfLifeMs);
    w.u8(MEASURE_CODE[this.measure]);
    w.f64(this.ref ?? Number.NaN);
    w.f64(this.value);
  }

  static fromJson(json: z.infer<typeof DecayedJson>): DecayedState {
    const state = new DecayedState(json.halfLifeMs, json.measure);
    state.value = json.maxEventTimeMs === null ? 0 : json.value;
    state.ref = json.maxEventTimeMs;
    return state;
  }
}

/** Count or sum since the state was created (until TTL drops it). */
export class UnboundedState {
  readonly kind = 'unbounded';
  readonly measure: Measure;
  private sum = 0;
  private count = 0;
  private maxTs: number | null = null;

  constructor(measure: Measure) {
    this.measure = measure;
  }

  get maxEventTimeMs(): number | null {
    return this.maxTs;
  }

  add(eventTimeMs: number, value: number, _watermarkMs: number): AddResult {
    this.sum += value;
    this.count += 1;
    this.maxTs = later(this.maxTs, eventTimeMs);
    return 'applied';
  }

  read(_asOfMs: number): number {
    return this.measure === 'sum' ? this.sum : this.count;
  }

  /** [newest event time, value, NaN, NaN] (NaN while empty). */
  writeHead(out: Float64Array, at: number): void {
    out[at] = this.maxTs ?? Number.NaN;
    out[at + 1] = this.read(0);
    out[at + 2] = Number.NaN;
    out[at + 3] = Number.NaN;
  }

  static readHead(h: Float64Array, at: number): number {
    const t = h[at] as number;
    return Number.isNaN(t) ? 0 : (h[at + 1] as number);
  }

  serialize(): StateJson {
    return {
      kind: 'unbounded',
      measure: this.measure,
      maxEventTimeMs: this.maxTs,
      sum: this.sum,
      count: this.count,
    };
  }

  writeTo(w: BinaryWriter): void {
    w.u8(KIND_CODE.unbounded);
    w.u8(MEASURE_CODE[this.measure]);
    w.f64(this.maxTs ?? Number.NaN);
    w.f64(this.sum);
    w.f64(this.count);
  }

  static fromJson(json: z.infer<typeof UnboundedJson>): UnboundedState {
    const state = new UnboundedState(json.measure);
    state.sum = json.sum;
    state.count = json.count;
    state.maxTs = json.maxEventTimeMs;
    return state;
  }
}

/**
 * The item ids of the n newest events in event time (equal times in arrival order), oldest
 * first. An event older than every entry of a full sequence is late (it would fall off at once).
 * With dedupeConsecutive, an event whose predecessor in time order has the same item replaces it
 * (keeps the later time): exact for in-order arrival; an out-of-order event is compared with its
 * predecessor only, so it may sit next to an equal successor.
 */
export class LastNState {
  readonly kind = 'last_n';
  readonly n: number;
  readonly dedupeConsecutive: boolean;
  private times: number[] = [];
  private ids: string[] = [];
  private maxTs: number | null = null;

  constructor(n: number, dedupeConsecutive: boolean) {
    this.n = n;
    this.dedupeConsecutive = dedupeConsecutive;
  }

  get maxEventTimeMs(): number | null {
    return this.maxTs;
  }

  add(eventTimeMs: number, itemId: string, _watermarkMs: number): AddResult {
    // Insertion point: after every entry with time <= eventTimeMs (binary search).
    let lo = 0;
    let hi = this.times.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.times[mid] ?? 0) <= eventTimeMs) lo = mid + 1;
      else hi = mid;
    }
    if (lo === 0 && this.times.length >= this.n) return 'late';
    if (this.dedupeConsecutive && lo > 0 && this.ids[lo - 1] === itemId) {
      this.times[lo - 1] = eventTimeMs;
    } else {
      this.times.splice(lo, 0, eventTimeMs);
      this.ids.splice(lo, 0, itemId);
      if (this.times.length > this.n) {
        this.times.shift();
        this.ids.shift();
      }
    }
    this.maxTs = later(this.maxTs, eventTimeMs);
    return 'applied';
  }

  read(_asOfMs: number): string[] {
    return [...this.ids];
  }

  /** [event time, item id], oldest first (to merge several sequences). */
  entriesWithTime(): [number, string][] {
    return this.times.map((t, i) => [t, this.ids[i] ?? '']);
  }

  serialize(): StateJson {
    return {
      kind: 'last_n',
      n: this.n,
      dedupeConsecutive: this.dedupeConsecutive,
      maxEventTimeMs: this.maxTs,
      entries: this.times.map((t, i) => [t, this.ids[i] ?? '']),
    };
  }

  writeTo(w: BinaryWriter): void {
    w.u8(KIND_CODE.last_n);
    w.u32(this.n);
    w.u8(this.dedupeConsecutive ? 1 : 0);
    w.f64(this.maxTs ?? Number.NaN);
    const m = this.times.length;
    w.u32(m);
    for (let i = 0; i < m; i++) {
      w.f64(this.times[i] as number);
      w.str(this.ids[i] ?? '');
    }
  }

  static fromJson(json: z.infer<typeof LastNJson>): LastNState {
    const state = new LastNState(json.n, json.dedupeConsecutive);
    const entries = json.entries.slice(-json.n);
    state.times = entries.map((e) => e[0]);
    state.ids = entries.map((e) => e[1]);
    state.maxTs = json.maxEventTimeMs;
    return state;
  }
}

/** Removes the first n elements of an array in place. */
function dropFront(a: number[], n: number): void {
  a.copyWithin(0, n);
  a.length -= n;
}

const KIND_CODE = { sliding: 1, decayed: 2, unbounded: 3, last_n: 4, sliding_compact: 5 } as const;
const MEASURE_CODE = { count: 0, sum: 1 } as const;
const MEASURES: readonly Measure[] = ['count', 'sum'];

/**
 * Reads one state written by `writeTo` back as the JSON `serialize()` gives, so a restore
 * goes through the same validation (deserializeState) whichever form was saved.
 */
export function readStateBinary(r: BinaryReader): StateJson {
  const kind = r.u8();
  const measure = () => MEASURES[r.u8()] ?? 'invalid';
  const time = () => {
    const t = r.f64();
    return Number.isNaN(t) ? null : t;
  };
  // What both sliding forms write before their buckets.
  const slidingHead = () => ({
    kind: 'sliding' as const,
    sizeMs: r.f64(),
    slideMs: r.f64(),
    measure: measure(),
    maxEventTimeMs: time(),
    headTotals: [r.f64(), r.f64()] as [number, number],
  });
  switch (kind) {
    case KIND_CODE.sliding: {
      const head = slidingHead();
      const buckets: [number, number, number][] = [];
      for (let n = r.u32(); n > 0; n--) buckets.push([r.f64(), r.f64(), r.f64()]);
      return { ...head, buckets } as StateJson;
    }
    case KIND_CODE.sliding_compact: {
      const head = slidingHead();
      const n = r.uvar();
      const countedOnly = r.u8() === 1;
      const buckets: [number, number, number][] = [];
      let index = 0;
      for (let k = 0; k < n; k++) {
        index += r.uvar();
        const count = r.uvar();
        buckets.push([index, countedOnly ? count : r.f64(), count]);
      }
      return { ...head, buckets } as StateJson;
    }
    case KIND_CODE.decayed:
      return {
        kind: 'decayed',
        halfLifeMs: r.f64(),
        measure: measure(),
        maxEventTimeMs: time(),
        value: r.f64(),
      } as StateJson;
    case KIND_CODE.unbounded:
      return {
        kind: 'unbounded',
        measure: measure(),
        maxEventTimeMs: time(),
        sum: r.f64(),
        count: r.f64(),
      } as StateJson;
    case KIND_CODE.last_n: {
      const head = { n: r.u32(), dedupeConsecutive: r.u8() === 1, maxEventTimeMs: time() };
      const entries: [number, string][] = [];
      for (let m = r.u32(); m > 0; m--) entries.push([r.f64(), r.str()]);
      return { kind: 'last_n', ...head, entries };
    }
    default:
      throw new RecmasterError('E_STORE_FORMAT', `unknown state kind ${kind} in a snapshot`);
  }
}

export type NumericState = SlidingWindowState | DecayedState | UnboundedState;
export type FeatureState = NumericState | LastNState;

/** A fresh, empty state for one aggregate feature. */
export function createState(def: AggregateFeature, options: StateOptions = {}): FeatureState {
  const agg = def.aggregation;
  if (agg.kind === 'last_n') return new LastNState(agg.n, agg.dedupeConsecutive);
  const measure: Measure = agg.kind;
  const w = def.window;
  switch (w.kind) {
    case 'sliding':
      return new SlidingWindowState(w.sizeMs, w.slideMs, measure, options);
    case 'tumbling':
      return new SlidingWindowState(w.sizeMs, w.sizeMs, measure, options);
    case 'decayed':
      return new DecayedState(w.halfLifeMs, measure);
    case 'unbounded':
      return new UnboundedState(measure);
  }
}

/** How the heads of one numeric feature's states are read (see writeHead). */
export type HeadReader =
  | { kind: 'sliding'; slideMs: number; k: number }
  | { kind: 'decayed'; halfLifeMs: number }
  | { kind: 'unbounded' };

/** The head reader of a feature, null for a last-N sequence (it has no head). */
export function headReaderOf(def: AggregateFeature): HeadReader | null {
  if (def.aggregation.kind === 'last_n') return null;
  const w = def.window;
  switch (w.kind) {
    case 'sliding':
      return { kind: 'sliding', slideMs: w.slideMs, k: w.sizeMs / w.slideMs };
    case 'tumbling':
      return { kind: 'sliding', slideMs: w.sizeMs, k: 1 };
    case 'decayed':
      return { kind: 'decayed', halfLifeMs: w.halfLifeMs };
    case 'unbounded':
      return { kind: 'unbounded' };
  }
}

/** What read(asOfMs) of the state whose head is at h[at] returns, or NaN: ask the state. */
export function readHead(r: HeadReader, h: Float64Array, at: number, asOfMs: number): number {
  switch (r.kind) {
    case 'sliding':
      return SlidingWindowState.readHead(h, at, asOfMs, r.slideMs, r.k);
    case 'decayed':
      return DecayedState.readHead(h, at, asOfMs, r.halfLifeMs);
    case 'unbounded':
      return UnboundedState.readHead(h, at);
  }
}

/**
 * Restores a state from `serialize()` output (plain JSON, e.g. after JSON.parse). Refuses (E_CONFIG)
 * JSON that is malformed or was made for a different definition (window or aggregation changed:
 * the state must be rebuilt from the log, not reinterpreted).
 */
export function deserializeState(
  def: AggregateFeature,
  json: unknown,
  options: StateOptions = {},
): FeatureState {
  const parsed = StateJson.safeParse(json);
  if (!parsed.success) {
    throw new RecmasterError('E_CONFIG', `feature ${def.name}: invalid state snapshot`, {
      cause: parsed.error,
    });
  }
  const fresh = JSON.stringify(shape(createState(def).serialize()));
  if (JSON.stringify(shape(parsed.data)) !== fresh) {
    throw new RecmasterError(
      'E_CONFIG',
      `feature ${def.name}: state snapshot was made for a different definition`,
    );
  }
  const s = parsed.data;
  switch (s.kind) {
    case 'sliding':
      return SlidingWindowState.fromJson(s, options);
    case 'decayed':
      return DecayedState.fromJson(s);
    case 'unbounded':
      return UnboundedState.fromJson(s);
    case 'last_n':
      return LastNState.fromJson(s);
  }
}

/** The parameters of a snapshot (what must match the definition), without its data. */
function shape(s: StateJson): Record<string, unknown> {
  switch (s.kind) {
    case 'sliding':
      return { kind: s.kind, sizeMs: s.sizeMs, slideMs: s.slideMs, measure: s.measure };
    case 'decayed':
      return { kind: s.kind, halfLifeMs: s.halfLifeMs, measure: s.measure };
    case 'unbounded':
      return { kind: s.kind, measure: s.measure };
    case 'last_n':
      return { kind: s.kind, n: s.n, dedupeConsecutive: s.dedupeConsecutive };
  }
}

/** True when the key's state may be dropped: no event within ttlMs before the watermark. */
export function isExpired(state: FeatureState, ttlMs: number, watermarkMs: number): boolean {
  const t = state.maxEventTimeMs;
  return t !== null && t + ttlMs <= watermarkMs;
}
