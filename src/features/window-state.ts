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
import { ArenaNumbers, type StateArena, sharedArena } from './state-arena.js';

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
    z.tuple([z.number().int().nonnegative(), z.number().finite(), z.number().int().nonnegative()]),
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

/**
 * Event times kept in a state's fields are NaN while there is none, never null: a field that
 * has held null keeps every number written to it as a new heap box (V8's field representation),
 * so each event allocated one per state and the long-lived state pointed at the young box (a
 * remembered-set slot for every scavenge, and the box promoted when the state sat idle).
 */
const NO_TIME = Number.NaN;

/** Null for NO_TIME (the states' public form). */
function timeOrNull(t: number): number | null {
  return Number.isNaN(t) ? null : t;
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
  /**
   * Where the numeric states keep their numbers (the engine's own, dropped with it); the
   * process-wide `sharedArena` when not given. A state dropped for good gives its block back
   * with `release()`.
   */
  arena?: StateArena;
}

/** What the sliding windows of one size, slide, measure and lateness share: made once. */
interface SlidingSpec {
  readonly sizeMs: number;
  readonly slideMs: number;
  readonly measure: Measure;
  /** Buckets in a window (sizeMs / slideMs). */
  readonly k: number;
  /** Buckets kept beyond a window for lateness. */
  readonly extra: number;
  /** k + extra: the buckets kept. */
  readonly kept: number;
}

const slidingSpecs = new Map<string, SlidingSpec>();

function slidingSpec(
  sizeMs: number,
  slideMs: number,
  measure: Measure,
  options: StateOptions,
): SlidingSpec {
  const lateness = options.allowedLatenessMs ?? 0;
  const id = `${sizeMs}/${slideMs}/${measure}/${lateness}`;
  const known = slidingSpecs.get(id);
  if (known) return known;
  if (!(sizeMs > 0 && slideMs > 0 && sizeMs % slideMs === 0)) {
    throw new RecmasterError('E_CONFIG', `slideMs ${slideMs} must divide sizeMs ${sizeMs}`);
  }
  if (!(lateness >= 0 && Number.isFinite(lateness))) {
    throw new RecmasterError('E_CONFIG', `allowedLatenessMs must be >= 0, got ${lateness}`);
  }
  const k = sizeMs / slideMs;
  const extra = Math.floor(lateness / slideMs) + 1;
  const spec = { sizeMs, slideMs, measure, k, extra, kept: k + extra };
  slidingSpecs.set(id, spec);
  return spec;
}

// Layout of a sliding window's numbers: a header, then its buckets.
const HEAD = 0; // newest bucket index, NaN while empty
const MAX_TS = 1; // newest event time, NaN while empty
const HEAD_SUM = 2; // running sum of the window ending at the head bucket
const HEAD_COUNT = 3; // its running count
const COUNTED = 4; // 1 while every value added was 1 (each bucket's sum is its count), else 0
const B0 = 5; // the first bucket: [index (floor(ts / slideMs)), sum, count] each
/** An empty window's header (shared while a state has no block). */
const SLIDING_EMPTY = new Float64Array([Number.NaN, Number.NaN, 0, 0, 1]);

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
 *
 * An engine holds ~100k of these: each is this object (the parameters are shared) and a block
 * of its arena (`len` numbers used: the header, then the buckets), not an array of its own.
 */
export class SlidingWindowState extends ArenaNumbers {
  private readonly spec: SlidingSpec;
  private len = B0;

  constructor(sizeMs: number, slideMs: number, measure: Measure, options: StateOptions = {}) {
    super(options.arena ?? sharedArena, SLIDING_EMPTY);
    this.spec = slidingSpec(sizeMs, slideMs, measure, options);
  }

  get kind(): 'sliding' {
    return 'sliding';
  }
  get measure(): Measure {
    return this.spec.measure;
  }

  get maxEventTimeMs(): number | null {
    const t = this.buf[this.at + MAX_TS] as number;
    return Number.isNaN(t) ? null : t;
  }

  /** The newest bucket's index, null while empty. */
  private get head(): number | null {
    const h = this.buf[this.at + HEAD] as number;
    return Number.isNaN(h) ? null : h;
  }

  private bucket(t: number): number {
    return Math.floor(t / this.spec.slideMs);
  }

  add(eventTimeMs: number, value: number, watermarkMs: number): AddResult {
    const { k, kept } = this.spec;
    const b = this.bucket(eventTimeMs);
    if (b < this.bucket(Math.max(watermarkMs, 0)) - k + 1) return 'late';
    // NaN while empty: every comparison with it is false
    const head = this.buf[this.at + HEAD] as number;
    if (b <= head - kept) return 'late';
    if (this.cap === 0) this.reserve(B0 + 3, B0);
    if (!(b <= head)) this.advanceHead(b);
    // Usually the newest bucket; otherwise find its place (binary search from the end).
    let s = this.buf;
    let o = this.at;
    const n = (this.len - B0) / 3;
    let i = n - 1;
    if (i < 0 || (s[o + B0 + i * 3] as number) !== b) {
      let lo = 0;
      let hi = n;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if ((s[o + B0 + mid * 3] as number) < b) lo = mid + 1;
        else hi = mid;
      }
      i = lo;
      if (i === n || s[o + B0 + i * 3] !== b) {
        if (this.len + 3 > this.cap) {
          this.reserve(this.len + 3, this.len);
          s = this.buf;
          o = this.at;
        }
        const at = o + B0 + i * 3;
        for (let j = o + this.len - 1; j >= at; j--) s[j + 3] = s[j] as number;
        s[at] = b;
        s[at + 1] = 0;
        s[at + 2] = 0;
        this.len += 3;
      }
    }
    const at = o + B0 + i * 3;
    s[at + 1] = (s[at + 1] as number) + value;
    s[at + 2] = (s[at + 2] as number) + 1;
    if (value !== 1) s[o + COUNTED] = 0;
    if (b > (s[o + HEAD] as number) - k) {
      s[o + HEAD_SUM] = (s[o + HEAD_SUM] as number) + value;
      s[o + HEAD_COUNT] = (s[o + HEAD_COUNT] as number) + 1;
    }
    if (!(eventTimeMs <= (s[o + MAX_TS] as number))) s[o + MAX_TS] = eventTimeMs;
    return 'applied';
  }

  /** Moves the head window to end at bucket b: takes out what slides out, drops what is too old. */
  private advanceHead(b: number): void {
    const { k, kept } = this.spec;
    const s = this.buf;
    const o = this.at;
    const n = (this.len - B0) / 3;
    const head = s[o + HEAD] as number;
    if (!Number.isNaN(head)) {
      const oldStart = head - k + 1;
      const newStart = b - k + 1;
      for (let i = 0; i < n; i++) {
        const at = o + B0 + i * 3;
        const bucket = s[at] as number;
        if (bucket >= newStart) break;
        if (bucket >= oldStart) {
          s[o + HEAD_SUM] = (s[o + HEAD_SUM] as number) - (s[at + 1] as number);
          s[o + HEAD_COUNT] = (s[o + HEAD_COUNT] as number) - (s[at + 2] as number);
        }
      }
    }
    s[o + HEAD] = b;
    let drop = 0;
    while (drop < n && (s[o + B0 + drop * 3] as number) <= b - kept) drop++;
    if (drop > 0) {
      // A loop, not copyWithin: a few hundred numbers at most, and every advance of a full
      // window drops a bucket.
      const end = o + this.len - drop * 3;
      for (let i = o + B0; i < end; i++) s[i] = s[i + drop * 3] as number;
      this.len -= drop * 3;
    }
  }

  read(asOfMs: number): number {
    const s = this.buf;
    const o = this.at;
    const head = s[o + HEAD] as number;
    if (Number.isNaN(head)) return 0;
    const { k, extra, measure } = this.spec;
    const end = Math.max(this.bucket(Math.max(asOfMs, 0)), head - extra);
    const headValue = (measure === 'sum' ? s[o + HEAD_SUM] : s[o + HEAD_COUNT]) as number;
    if (end === head) return headValue;
    const start = end - k + 1;
    const n = (this.len - B0) / 3;
    const of = measure === 'sum' ? 1 : 2;
    if (end > head) {
      // Later than the head window: that window minus what has slid out of it since, which
      // is only the oldest few buckets (an idle stream of a busy key is read this way).
      if (start > head) return 0;
      const headStart = head - k + 1;
      let total = headValue;
      for (let i = 0; i < n; i++) {
        const b = s[o + B0 + i * 3] as number;
        if (b >= start) break;
        if (b >= headStart) total -= s[o + B0 + i * 3 + of] as number;
      }
      return total;
    }
    let total = 0;
    for (let i = 0; i < n; i++) {
      const b = s[o + B0 + i * 3] as number;
      if (b > end) break;
      if (b >= start) total += s[o + B0 + i * 3 + of] as number;
    }
    return total;
  }

  /**
   * [head bucket, the head window's value, its oldest bucket, that bucket's value] (NaN while
   * empty): enough for a read as of the head's bucket or the next one, the usual reads.
   */
  writeHead(out: Float64Array, at: number): void {
    const s = this.buf;
    const o = this.at;
    const head = s[o + HEAD] as number;
    if (Number.isNaN(head)) {
      out.fill(Number.NaN, at, at + HEAD_WIDTH);
      return;
    }
    const sum = this.spec.measure === 'sum';
    const headStart = head - this.spec.k + 1;
    let i = o + B0;
    while ((s[i] as number) < headStart) i += 3; // the head bucket itself ends this
    out[at] = head;
    out[at + 1] = (sum ? s[o + HEAD_SUM] : s[o + HEAD_COUNT]) as number;
    out[at + 2] = s[i] as number;
    out[at + 3] = s[i + (sum ? 1 : 2)] as number;
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
    const s = this.buf;
    const o = this.at;
    const buckets: [number, number, number][] = [];
    for (let i = o + B0; i < o + this.len; i += 3) {
      buckets.push([s[i] as number, s[i + 1] as number, s[i + 2] as number]);
    }
    return {
      kind: 'sliding',
      sizeMs: this.spec.sizeMs,
      slideMs: this.spec.slideMs,
      measure: this.spec.measure,
      maxEventTimeMs: this.maxEventTimeMs,
      buckets,
      headTotals: [s[o + HEAD_SUM] as number, s[o + HEAD_COUNT] as number],
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
    const s = this.buf;
    const o = this.at;
    const end = o + this.len;
    // Bucket indexes ascend and counts are whole numbers >= 0 (add and fromJson keep both
    // so): the indexes are varints when the first is >= 0 and the last a safe integer. Sums
    // are left out while every value added was 1 (COUNTED). Both known without a pass over
    // the buckets, which was ~40 % of encoding a sliding window.
    const buckets = (this.len - B0) / 3;
    const first = s[o + B0];
    const last = s[end - 3];
    const compact =
      buckets === 0 ||
      ((first as number) >= 0 && Number.isSafeInteger(first) && Number.isSafeInteger(last));
    const countedOnly = s[o + COUNTED] === 1;
    w.u8(compact ? KIND_CODE.sliding_compact : KIND_CODE.sliding);
    w.f64(this.spec.sizeMs);
    w.f64(this.spec.slideMs);
    w.u8(MEASURE_CODE[this.spec.measure]);
    w.f64(s[o + MAX_TS] as number);
    w.f64(s[o + HEAD_SUM] as number);
    w.f64(s[o + HEAD_COUNT] as number);
    if (!compact) {
      w.u32(buckets);
      for (let i = o + B0; i < end; i++) w.f64(s[i] as number);
      return;
    }
    w.uvar(buckets);
    w.u8(countedOnly ? 1 : 0);
    let previous = 0;
    for (let i = o + B0; i < end; i += 3) {
      w.uvar((s[i] as number) - previous); // ascending: never negative
      previous = s[i] as number;
      w.uvar(s[i + 2] as number);
      if (!countedOnly) w.f64(s[i + 1] as number);
    }
  }

  /** Restores buckets; with a smaller lateness than when saved, the oldest buckets are dropped. */
  static fromJson(
    json: z.infer<typeof SlidingJson>,
    options: StateOptions = {},
  ): SlidingWindowState {
    const state = new SlidingWindowState(json.sizeMs, json.slideMs, json.measure, options);
    const head = json.buckets.reduce((h, [b]) => Math.max(h, b), -1);
    const kept = json.buckets
      .filter(([b]) => b > head - state.spec.kept)
      .sort((x, y) => x[0] - y[0]);
    // An empty state keeps no block, as a fresh one (the engine's block count is then the
    // number of states that hold events, restored or not).
    if (kept.length === 0 && json.maxEventTimeMs === null) return state;
    state.len = B0 + kept.length * 3;
    state.reserve(state.len, B0);
    const s = state.buf;
    const o = state.at;
    let i = o + B0;
    for (const [b, sum, count] of kept) {
      s[i++] = b;
      s[i++] = sum;
      s[i++] = count;
    }
    s[o + COUNTED] = kept.every(([, sum, count]) => Object.is(sum, count)) ? 1 : 0;
    s[o + HEAD] = head < 0 ? Number.NaN : head;
    s[o + MAX_TS] = json.maxEventTimeMs ?? Number.NaN;
    if (json.headTotals) [s[o + HEAD_SUM], s[o + HEAD_COUNT]] = json.headTotals;
    else state.recomputeHead();
    return state;
  }

  /** Recomputes the head totals from the buckets (a snapshot without them). */
  private recomputeHead(): void {
    const s = this.buf;
    const o = this.at;
    s[o + HEAD_SUM] = 0;
    s[o + HEAD_COUNT] = 0;
    const head = this.head;
    if (head === null) return;
    for (let i = o + B0; i < o + this.len; i += 3) {
      if ((s[i] as number) > head - this.spec.k) {
        s[o + HEAD_SUM] = (s[o + HEAD_SUM] as number) + (s[i + 1] as number);
        s[o + HEAD_COUNT] = (s[o + HEAD_COUNT] as number) + (s[i + 2] as number);
      }
    }
  }
}

// A decayed state's numbers: the total as of its reference time, and that time.
const VALUE = 0;
const REF = 1;
const DECAYED_EMPTY = new Float64Array([0, Number.NaN]);
// An unbounded state's numbers.
const SUM = 0;
const COUNT = 1;
const NEWEST = 2; // newest event time
const UNBOUNDED_EMPTY = new Float64Array([0, 0, Number.NaN]);

/**
 * Exponentially decayed counter: the total as of its reference time (the newest event), decayed
 * lazily: sum of v_i * 2^(-(t - t_i) / halfLife) read at t. An older event is added already
 * decayed to the reference time, so the value does not depend on arrival order.
 */
export class DecayedState extends ArenaNumbers {
  readonly kind = 'decayed';
  readonly halfLifeMs: number;
  readonly measure: Measure;

  constructor(halfLifeMs: number, measure: Measure, options: StateOptions = {}) {
    super(options.arena ?? sharedArena, DECAYED_EMPTY);
    this.halfLifeMs = halfLifeMs;
    this.measure = measure;
  }

  /** The reference time (newest event), NO_TIME while empty. */
  private get ref(): number {
    return this.buf[this.at + REF] as number;
  }

  get maxEventTimeMs(): number | null {
    return timeOrNull(this.ref);
  }

  private decay(dtMs: number): number {
    return 2 ** (-dtMs / this.halfLifeMs);
  }

  add(eventTimeMs: number, value: number, _watermarkMs: number): AddResult {
    if (this.cap === 0) this.reserve(2, 2);
    const s = this.buf;
    const o = this.at;
    const v = this.measure === 'count' ? 1 : value;
    const ref = s[o + REF] as number;
    if (Number.isNaN(ref) || eventTimeMs >= ref) {
      s[o + VALUE] = Number.isNaN(ref)
        ? v
        : (s[o + VALUE] as number) * this.decay(eventTimeMs - ref) + v;
      s[o + REF] = eventTimeMs;
    } else {
      s[o + VALUE] = (s[o + VALUE] as number) + v * this.decay(ref - eventTimeMs);
    }
    return 'applied';
  }

  read(asOfMs: number): number {
    const ref = this.ref;
    if (Number.isNaN(ref)) return 0;
    return decayedRead(this.buf[this.at + VALUE] as number, ref, asOfMs, this.halfLifeMs);
  }

  /** [reference time, value as of it, NaN, NaN] (NaN while empty). */
  writeHead(out: Float64Array, at: number): void {
    out[at] = this.ref;
    out[at + 1] = this.buf[this.at + VALUE] as number;
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
      maxEventTimeMs: timeOrNull(this.ref),
      value: this.buf[this.at + VALUE] as number,
    };
  }

  writeTo(w: BinaryWriter): void {
    w.u8(KIND_CODE.decayed);
    w.f64(this.halfLifeMs);
    w.u8(MEASURE_CODE[this.measure]);
    w.f64(this.ref);
    w.f64(this.buf[this.at + VALUE] as number);
  }

  static fromJson(json: z.infer<typeof DecayedJson>, options: StateOptions = {}): DecayedState {
    const state = new DecayedState(json.halfLifeMs, json.measure, options);
    if (json.maxEventTimeMs === null) return state; // empty: no block (see the sliding window's)
    state.reserve(2, 0);
    state.buf[state.at + VALUE] = json.value;
    state.buf[state.at + REF] = json.maxEventTimeMs;
    return state;
  }
}

/** Count or sum since the state was created (until TTL drops it). */
export class UnboundedState extends ArenaNumbers {
  readonly kind = 'unbounded';
  readonly measure: Measure;

  constructor(measure: Measure, options: StateOptions = {}) {
    super(options.arena ?? sharedArena, UNBOUNDED_EMPTY);
    this.measure = measure;
  }

  /** The newest event time, NO_TIME while empty. */
  private get maxTs(): number {
    return this.buf[this.at + NEWEST] as number;
  }

  get maxEventTimeMs(): number | null {
    return timeOrNull(this.maxTs);
  }

  add(eventTimeMs: number, value: number, _watermarkMs: number): AddResult {
    if (this.cap === 0) this.reserve(3, 3);
    const s = this.buf;
    const o = this.at;
    s[o + SUM] = (s[o + SUM] as number) + value;
    s[o + COUNT] = (s[o + COUNT] as number) + 1;
    if (!(eventTimeMs <= (s[o + NEWEST] as number))) s[o + NEWEST] = eventTimeMs; // true while NO_TIME
    return 'applied';
  }

  read(_asOfMs: number): number {
    return this.buf[this.at + (this.measure === 'sum' ? SUM : COUNT)] as number;
  }

  /** [newest event time, value, NaN, NaN] (NaN while empty). */
  writeHead(out: Float64Array, at: number): void {
    out[at] = this.maxTs;
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
      maxEventTimeMs: timeOrNull(this.maxTs),
      sum: this.buf[this.at + SUM] as number,
      count: this.buf[this.at + COUNT] as number,
    };
  }

  writeTo(w: BinaryWriter): void {
    w.u8(KIND_CODE.unbounded);
    w.u8(MEASURE_CODE[this.measure]);
    w.f64(this.maxTs);
    w.f64(this.buf[this.at + SUM] as number);
    w.f64(this.buf[this.at + COUNT] as number);
  }

  static fromJson(json: z.infer<typeof UnboundedJson>, options: StateOptions = {}): UnboundedState {
    const state = new UnboundedState(json.measure, options);
    if (json.maxEventTimeMs === null && json.sum === 0 && json.count === 0) return state;
    state.reserve(3, 0);
    state.buf[state.at + SUM] = json.sum;
    state.buf[state.at + COUNT] = json.count;
    state.buf[state.at + NEWEST] = json.maxEventTimeMs ?? NO_TIME;
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
  /** The newest event time, NO_TIME while empty. */
  private maxTs = NO_TIME;

  constructor(n: number, dedupeConsecutive: boolean) {
    this.n = n;
    this.dedupeConsecutive = dedupeConsecutive;
  }

  get maxEventTimeMs(): number | null {
    return timeOrNull(this.maxTs);
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
    if (!(eventTimeMs <= this.maxTs)) this.maxTs = eventTimeMs; // true while NO_TIME
    return 'applied';
  }

  read(_asOfMs: number): string[] {
    return [...this.ids];
  }

  /** Nothing to give back: its arrays are the collector's (see ArenaNumbers.release). */
  release(): void {}

  /** [event time, item id], oldest first (to merge several sequences). */
  entriesWithTime(): [number, string][] {
    return this.times.map((t, i) => [t, this.ids[i] ?? '']);
  }

  serialize(): StateJson {
    return {
      kind: 'last_n',
      n: this.n,
      dedupeConsecutive: this.dedupeConsecutive,
      maxEventTimeMs: timeOrNull(this.maxTs),
      entries: this.times.map((t, i) => [t, this.ids[i] ?? '']),
    };
  }

  writeTo(w: BinaryWriter): void {
    w.u8(KIND_CODE.last_n);
    w.u32(this.n);
    w.u8(this.dedupeConsecutive ? 1 : 0);
    w.f64(this.maxTs);
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
    state.maxTs = json.maxEventTimeMs ?? NO_TIME;
    return state;
  }
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
      return new DecayedState(w.halfLifeMs, measure, options);
    case 'unbounded':
      return new UnboundedState(measure, options);
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
      return DecayedState.fromJson(s, options);
    case 'unbounded':
      return UnboundedState.fromJson(s, options);
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
