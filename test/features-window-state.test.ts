// Window states against brute force: every expected value is recomputed from the raw event list,
// never from the state under test.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isRecmasterError } from '../src/errors.js';
import { decodeSavedKey, SavedKeyEncoder } from '../src/features/checkpoint.js';
import type { AggregateFeature } from '../src/features/definitions.js';
import {
  createState,
  DecayedState,
  deserializeState,
  type FeatureState,
  HEAD_WIDTH,
  headReaderOf,
  isExpired,
  LastNState,
  readHead,
  readStateBinary,
  SlidingWindowState,
  UnboundedState,
} from '../src/features/window-state.js';
import { BinaryReader, BinaryWriter } from '../src/util/binary.js';

/** mulberry32: a small seeded PRNG, so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0, 123);

interface Ev {
  ts: number;
  value: number;
  item: string;
}

/**
 * An out-of-order stream: true times advance by random gaps; most events arrive up to
 * `disorderMs` late, a few up to `veryLateMs` late.
 */
function stream(
  seed: number,
  count: number,
  gapMs: number,
  disorderMs: number,
  veryLateMs: number,
) {
  const r = rng(seed);
  const events: Ev[] = [];
  let t = T0;
  for (let i = 0; i < count; i++) {
    t += Math.floor(r() * gapMs);
    const u = r();
    const delay =
      u < 0.1 ? 0 : u < 0.95 ? Math.floor(r() * disorderMs) : Math.floor(r() * veryLateMs);
    events.push({
      ts: Math.max(0, t - delay),
      value: Math.round(r() * 1000) / 10,
      item: `i${Math.floor(r() * 8)}`,
    });
  }
  return events;
}

function close(actual: number, expected: number, what: string): void {
  const tol = 1e-9 * Math.max(1, Math.abs(expected));
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: got ${actual}, expected ${expected}`);
}

/** Brute force: the hop window read as of t covers [e - size, e), e = end of t's slide. */
function bruteWindow(events: Ev[], sizeMs: number, slideMs: number, asOf: number) {
  const end = (Math.floor(asOf / slideMs) + 1) * slideMs;
  let sum = 0;
  let count = 0;
  for (const e of events) {
    if (e.ts >= end - sizeMs && e.ts < end) {
      sum += e.value;
      count += 1;
    }
  }
  return { sum, count, start: end - sizeMs };
}

function checkWindow(sizeMs: number, slideMs: number, seed: number): void {
  const latenessMs = 3 * slideMs;
  const events = stream(seed, 4000, slideMs / 4, 2.5 * slideMs, 4 * sizeMs);
  const options = { allowedLatenessMs: latenessMs };
  const sums = new SlidingWindowState(sizeMs, slideMs, 'sum', options);
  const counts = new SlidingWindowState(sizeMs, slideMs, 'count', options);
  const r = rng(seed + 1);
  const seen: Ev[] = [];
  let maxApplied = -1;
  let maxSeen = -1;
  let late = 0;
  for (const [i, e] of events.entries()) {
    maxSeen = Math.max(maxSeen, e.ts);
    const watermark = maxSeen - latenessMs;
    const result = sums.add(e.ts, e.value, watermark);
    assert.equal(counts.add(e.ts, 1, watermark), result);
    seen.push(e);
    if (e.ts >= watermark) {
      assert.equal(result, 'applied', `event ${i} within the allowed lateness was refused`);
    }
    if (result === 'late') {
      late += 1; // the caller counts refusals
      // Refused only when it cannot count in any window readable as of the watermark or later.
      const oldest = bruteWindow(seen, sizeMs, slideMs, watermark);
      assert.ok(e.ts < oldest.start, `event ${i} (ts ${e.ts}) refused inside the window`);
    } else {
      maxApplied = Math.max(maxApplied, e.ts);
    }
    assert.equal(sums.maxEventTimeMs, maxApplied);
    if (i % 25 === 0 || i === events.length - 1) {
      const watermark = maxSeen - latenessMs;
      const between = watermark + Math.floor(r() * (maxApplied - watermark + 1));
      const after = maxApplied + Math.floor(r() * 1.5 * sizeMs);
      for (const asOf of [watermark, between, maxApplied, after]) {
        // Over every event seen, refused ones included: refusing lost nothing readable.
        const want = bruteWindow(seen, sizeMs, slideMs, asOf);
        close(sums.read(asOf), want.sum, `sum at event ${i} as of ${asOf}`);
        assert.equal(counts.read(asOf), want.count, `count at event ${i} as of ${asOf}`);
      }
    }
  }
  assert.ok(late > 0, 'the stream should contain events beyond the lateness bound');
  assert.ok(late < events.length / 10);
}

describe('sliding and tumbling windows', () => {
  test('sliding counts and sums match brute force on an out-of-order stream', () => {
    checkWindow(60_000, 5_000, 1);
    checkWindow(3_600_000, 60_000, 2);
    checkWindow(10_000, 1_000, 3);
  });

  test('tumbling windows (slide = size) match brute force', () => {
    checkWindow(5_000, 5_000, 4);
    checkWindow(60_000, 60_000, 5);
  });

  test('an event older than the window as of the watermark is refused and changes nothing', () => {
    const s = new SlidingWindowState(60_000, 10_000, 'count');
    assert.equal(s.add(T0, 1, T0), 'applied');
    const before = JSON.stringify(s.serialize());
    // The watermark has moved 10 minutes on (other keys): a 5-minute-old event cannot count.
    const wm = T0 + 600_000;
    assert.equal(s.add(T0 + 300_000, 1, wm), 'late');
    assert.equal(JSON.stringify(s.serialize()), before);
    assert.equal(s.read(wm), 0);
    assert.equal(s.add(wm - 30_000, 1, wm), 'applied');
    assert.equal(s.read(wm), 1);
    // A watermark trailing by more than the declared lateness: the ring cannot hold older buckets.
    const t = new SlidingWindowState(60_000, 10_000, 'count', { allowedLatenessMs: 20_000 });
    assert.equal(t.add(T0 + 200_000, 1, T0 + 180_000), 'applied');
    assert.equal(t.add(T0 + 140_000, 1, T0 + 100_000), 'applied');
    assert.equal(t.add(T0 + 100_000, 1, T0 + 100_000), 'late');
    // Empty windows read 0; buckets that slid out stop counting.
    assert.equal(new SlidingWindowState(60_000, 10_000, 'sum').read(T0), 0);
    assert.equal(s.read(wm + 60_000), 0);
  });
});

describe('decayed counters', () => {
  for (const measure of ['sum', 'count'] as const) {
    test(`decayed ${measure} equals the closed form, whatever the arrival order`, () => {
      const halfLifeMs = 600_000;
      const events = stream(7, 3000, 2_000, 60_000, 3_600_000);
      const state = new DecayedState(halfLifeMs, measure);
      const r = rng(8);
      let max = -1;
      for (const [i, e] of events.entries()) {
        assert.equal(state.add(e.ts, e.value, e.ts - 1e9), 'applied');
        max = Math.max(max, e.ts);
        if (i % 100 === 0 || i === events.length - 1) {
          for (const asOf of [max, max + Math.floor(r() * 5 * halfLifeMs)]) {
            let want = 0;
            for (const x of events.slice(0, i + 1)) {
              want += (measure === 'sum' ? x.value : 1) * 2 ** (-(asOf - x.ts) / halfLifeMs);
            }
            close(state.read(asOf), want, `decayed ${measure} at ${i} as of ${asOf}`);
          }
        }
      }
      assert.equal(state.maxEventTimeMs, max);
      // One half-life later, half the value.
      close(state.read(max + halfLifeMs), state.read(max) / 2, 'half-life');
    });
  }
});

describe('last-N sequences', () => {
  test('match the n newest events by event time (ties in arrival order)', () => {
    const n = 20;
    const events = stream(11, 3000, 1_000, 5_000, 120_000);
    const state = new LastNState(n, false);
    const seen: Ev[] = [];
    let late = 0;
    for (const [i, e] of events.entries()) {
      const result = state.add(e.ts, e.item, 0);
      seen.push(e);
      // Array.prototype.sort is stable: equal times keep arrival order.
      const want = [...seen].sort((a, b) => a.ts - b.ts).slice(-n);
      if (result === 'late') {
        late += 1;
        assert.ok(!want.includes(e), `event ${i} refused but among the ${n} newest`);
      }
      assert.deepEqual(
        state.read(e.ts),
        want.map((x) => x.item),
        `sequence after event ${i}`,
      );
    }
    assert.ok(late > 0);
  });

  test('dedupeConsecutive collapses back-to-back repeats of an in-order stream', () => {
    const n = 10;
    const r = rng(12);
    const state = new LastNState(n, true);
    const seen: string[] = [];
    let t = T0;
    for (let i = 0; i < 2000; i++) {
      t += Math.floor(r() * 3);
      const item = `i${Math.floor(r() * 3)}`;
      assert.equal(state.add(t, item, 0), 'applied');
      seen.push(item);
      const collapsed = seen.filter((x, j) => j === 0 || seen[j - 1] !== x);
      assert.deepEqual(state.read(t), collapsed.slice(-n), `after event ${i}`);
    }
  });
});

describe('unbounded aggregates and TTL', () => {
  test('unbounded sum and count take every event', () => {
    const events = stream(13, 500, 1_000, 50_000, 10_000_000);
    const sum = new UnboundedState('sum');
    const count = new UnboundedState('count');
    for (const e of events) {
      assert.equal(sum.add(e.ts, e.value, Number.MAX_SAFE_INTEGER), 'applied');
      count.add(e.ts, e.value, 0);
    }
    close(
      sum.read(0),
      events.reduce((a, e) => a + e.value, 0),
      'unbounded sum',
    );
    assert.equal(count.read(0), events.length);
    assert.equal(count.maxEventTimeMs, Math.max(...events.map((e) => e.ts)));
  });

  test('isExpired: no event within the TTL before the watermark', () => {
    const s = new UnboundedState('count');
    assert.equal(isExpired(s, 1000, T0), false);
    s.add(T0, 1, T0);
    assert.equal(isExpired(s, 1000, T0 + 999), false);
    assert.equal(isExpired(s, 1000, T0 + 1000), true);
  });
});

const base = {
  kind: 'aggregate' as const,
  description: 'test',
  entity: 'user' as const,
  sources: ['watch' as const],
  ttlMs: 100_000_000,
};
const defs: AggregateFeature[] = [
  {
    ...base,
    name: 'sliding',
    aggregation: { kind: 'sum', value: { kind: 'field', field: 'watchedS' } },
    window: { kind: 'sliding', sizeMs: 60_000, slideMs: 5_000 },
  },
  {
    ...base,
    name: 'tumbling',
    aggregation: { kind: 'count' },
    window: { kind: 'tumbling', sizeMs: 30_000 },
  },
  {
    ...base,
    name: 'decayed',
    aggregation: { kind: 'count' },
    window: { kind: 'decayed', halfLifeMs: 20_000 },
  },
  {
    ...base,
    name: 'unbounded',
    aggregation: { kind: 'sum', value: { kind: 'field', field: 'watchedS' } },
    window: { kind: 'unbounded' },
  },
  {
    ...base,
    name: 'last',
    aggregation: { kind: 'last_n', n: 7, dedupeConsecutive: true },
    window: { kind: 'unbounded' },
  },
];

function feed(state: FeatureState, e: Ev, watermark: number) {
  return state.kind === 'last_n'
    ? state.add(e.ts, e.item, watermark)
    : state.add(e.ts, e.value, watermark);
}

describe('heads (the engine reads rows from them)', () => {
  for (const def of defs.filter((d) => d.aggregation.kind !== 'last_n')) {
    test(`${def.name}: readHead answers exactly as read() does, or defers to it`, () => {
      const state = createState(def, { allowedLatenessMs: 10_000 }) as Exclude<
        FeatureState,
        LastNState
      >;
      const reader = headReaderOf(def);
      assert.ok(reader);
      const heads = new Float64Array(3 * HEAD_WIDTH).fill(7); // the state's head sits in the middle
      const slide = def.window.kind === 'sliding' ? def.window.slideMs : 30_000;
      let answered = 0;
      let deferred = 0;
      let maxSeen = 0;
      for (const e of stream(11, 3000, 2_000, 8_000, 200_000)) {
        maxSeen = Math.max(maxSeen, e.ts);
        feed(state, e, maxSeen - 10_000);
        state.writeHead(heads, HEAD_WIDTH);
        const newest = state.maxEventTimeMs ?? 0;
        for (const asOf of [
          newest,
          newest + slide,
          newest + 2 * slide,
          newest + 50_000,
          newest - slide,
        ]) {
          const fromHead = readHead(reader, heads, HEAD_WIDTH, asOf);
          if (Number.isNaN(fromHead)) {
            deferred += 1;
            assert.ok(
              asOf !== newest && asOf !== newest + slide,
              'a read in the newest bucket or the next never needs the state',
            );
          } else {
            answered += 1;
            assert.ok(Object.is(fromHead, state.read(asOf)), `${def.name} as of ${asOf}`);
          }
        }
      }
      assert.deepEqual([heads[0], heads[3 * HEAD_WIDTH - 1]], [7, 7], 'writes stay in their place');
      assert.ok(answered > 2 * 3000, `heads answered ${answered} reads, deferred ${deferred}`);
    });
  }
  test('an empty state and no state read 0', () => {
    const reader = headReaderOf(defs[0] as AggregateFeature);
    assert.ok(reader);
    const heads = new Float64Array(HEAD_WIDTH).fill(Number.NaN);
    assert.equal(readHead(reader, heads, 0, T0), 0);
    (createState(defs[0] as AggregateFeature) as SlidingWindowState).writeHead(heads, 0);
    assert.equal(readHead(reader, heads, 0, T0), 0);
  });
});

describe('snapshots', () => {
  for (const def of defs) {
    test(`${def.name}: serialize -> JSON -> deserialize reads the same and evolves the same`, () => {
      const events = stream(21, 600, 300, 3_000, 60_000);
      const options = { allowedLatenessMs: 5_000 };
      const original = createState(def, options);
      let max = 0;
      const feedAll = (s: FeatureState, from: number, to: number) => {
        for (const e of events.slice(from, to)) {
          max = Math.max(max, e.ts);
          feed(s, e, max - 5_000);
        }
      };
      assert.deepEqual(
        deserializeState(
          def,
          JSON.parse(JSON.stringify(original.serialize())),
          options,
        ).serialize(),
        original.serialize(),
      );
      feedAll(original, 0, 300);
      const copy = deserializeState(def, JSON.parse(JSON.stringify(original.serialize())), options);
      assert.equal(copy.maxEventTimeMs, original.maxEventTimeMs);
      for (const dt of [0, 1_000, 17_000, 45_000, 200_000]) {
        assert.deepEqual(copy.read(max + dt), original.read(max + dt));
      }
      // Both continue identically.
      const wmBase = max;
      let m = wmBase;
      for (const e of events.slice(300)) {
        m = Math.max(m, e.ts);
        assert.equal(feed(copy, e, m - 5_000), feed(original, e, m - 5_000));
      }
      assert.deepEqual(copy.read(m), original.read(m));
      assert.deepEqual(copy.serialize(), original.serialize());
    });
  }

  test("the checkpoint's binary encoding reads back as serialize() says, bit for bit", () => {
    const encoder = new SavedKeyEncoder();
    const options = { allowedLatenessMs: 5_000 };
    const events = stream(22, 400, 300, 3_000, 60_000);
    const states = defs.map((def) => createState(def, options));
    // Empty states (no event time yet) first, then after sums that are not short decimals.
    for (const fed of [false, true]) {
      if (fed) {
        let max = 0;
        for (const e of events) {
          max = Math.max(max, e.ts);
          for (const s of states) feed(s, { ...e, value: e.value / 3 }, max - 5_000);
        }
      }
      const start = encoder.begin();
      states.forEach((s, i) => {
        encoder.add(`stream/${i}`, (defs[i] as AggregateFeature).name, s);
      });
      const end = encoder.end();
      const bytes = encoder.written().subarray(start, end);
      const expected = states.map((s, i) => [
        `stream/${i}`,
        (defs[i] as AggregateFeature).name,
        s.serialize(),
      ]);
      assert.deepEqual(decodeSavedKey(bytes, encoder.labels), expected);
      // Labels are codes into the checkpoint's list: each stream id and name is listed once.
      assert.equal(encoder.labels.length, 2 * states.length);
      // Checkpoints written as JSON, or with labels as strings, before still restore.
      assert.deepEqual(decodeSavedKey(Buffer.from(JSON.stringify(expected))), expected);
      const labelledByStrings = new BinaryWriter(1024);
      labelledByStrings.u8(0xb1);
      states.forEach((s, i) => {
        labelledByStrings.str(`stream/${i}`);
        labelledByStrings.str((defs[i] as AggregateFeature).name);
        s.writeTo(labelledByStrings);
      });
      assert.deepEqual(decodeSavedKey(labelledByStrings.bytes()), expected);
      for (const broken of [
        () => decodeSavedKey(bytes.subarray(0, bytes.length - 3), encoder.labels),
        () => decodeSavedKey(bytes, encoder.labels.slice(0, 1)), // a code not in the list
      ])
        assert.throws(broken, (err) => isRecmasterError(err, 'E_STORE_FORMAT'));
    }
    encoder.begin();
    assert.equal(encoder.end(), -1, 'a key without states encodes as null');
  });

  test('sliding windows encode compactly, and the three-float64 encoding still reads', () => {
    // A counting window (sums are counts) and a summing one with sums that are not counts.
    const counting = new SlidingWindowState(60_000, 1_000, 'count', { allowedLatenessMs: 5_000 });
    const summing = new SlidingWindowState(60_000, 1_000, 'sum', { allowedLatenessMs: 5_000 });
    let max = 0;
    for (const e of stream(5, 2_000, 120, 3_000, 60_000)) {
      max = Math.max(max, e.ts);
      counting.add(e.ts, 1, max - 5_000);
      summing.add(e.ts, e.value / 3, max - 5_000);
    }
    const bucketsOf = (s: SlidingWindowState) =>
      (s.serialize() as { buckets: unknown[] }).buckets.length;
    assert.ok(bucketsOf(counting) > 30, 'enough buckets to matter');
    for (const state of [counting, summing]) {
      const w = new BinaryWriter();
      state.writeTo(w);
      const bytes = w.bytes();
      assert.deepEqual(readStateBinary(new BinaryReader(bytes)), state.serialize());
      // The three-float64 form: 24 bytes a bucket after the same 42-byte head.
      const wide = 42 + 4 + 24 * bucketsOf(state);
      assert.ok(
        bytes.length < (state === counting ? wide / 4 : wide * 0.7),
        `${bytes.length} vs ${wide}`,
      );
      // Checkpoints written before the compact form still restore.
      const json = state.serialize();
      assert.ok(json.kind === 'sliding' && json.headTotals && json.maxEventTimeMs !== null);
      const old = new BinaryWriter();
      old.u8(1);
      for (const x of [json.sizeMs, json.slideMs]) old.f64(x);
      old.u8(state.measure === 'count' ? 0 : 1);
      old.f64(json.maxEventTimeMs);
      for (const x of json.headTotals) old.f64(x);
      old.u32(json.buckets.length);
      for (const x of json.buckets.flat()) old.f64(x);
      assert.deepEqual(readStateBinary(new BinaryReader(old.bytes())), state.serialize());
    }
    // Event times before 1970 make negative bucket indexes: the float64 form, still exact.
    const early = new SlidingWindowState(60_000, 1_000, 'count');
    early.add(-30_500, 1, -40_000);
    early.add(-29_000, 1, -40_000);
    const w = new BinaryWriter();
    early.writeTo(w);
    assert.equal(w.bytes()[0], 1, 'the float64 form');
    assert.deepEqual(readStateBinary(new BinaryReader(w.bytes())), early.serialize());
  });

  test('varints round-trip every safe integer size and refuse what they cannot hold', () => {
    const values = [0, 1, 127, 128, 16_383, 16_384, 2 ** 31, 2 ** 32 + 5, 2 ** 53 - 1];
    const w = new BinaryWriter(4);
    for (const v of values) w.uvar(v);
    const r = new BinaryReader(w.bytes());
    assert.deepEqual(
      values.map(() => r.uvar()),
      values,
    );
    assert.ok(r.done);
    for (const bad of [-1, 0.5, 2 ** 53, Number.NaN]) assert.throws(() => w.uvar(bad), RangeError);
    assert.throws(
      () => new BinaryReader(Buffer.from([0x80, 0x80])).uvar(),
      (err) => isRecmasterError(err, 'E_STORE_FORMAT'),
    );
  });

  test('a snapshot made for another definition or malformed is refused', () => {
    const [sliding, tumbling] = defs as [AggregateFeature, AggregateFeature];
    const snap = JSON.parse(JSON.stringify(createState(sliding).serialize()));
    assert.throws(
      () => deserializeState(tumbling, snap),
      (err) => isRecmasterError(err, 'E_CONFIG') && /different definition/.test(err.message),
    );
    assert.throws(
      () => deserializeState(sliding, { ...snap, buckets: 'nope' }),
      (err) => isRecmasterError(err, 'E_CONFIG'),
    );
  });
});
