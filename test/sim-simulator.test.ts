import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Event, type Impression } from '../src/events/schemas.js';
import { ArraySink, type SimConfigInput, Simulator, World } from '../src/sim/index.js';

async function runSim(config: SimConfigInput, durationS: number) {
  const sim = new Simulator(config);
  const sink = new ArraySink();
  const stats = await sim.run({ sink, durationS });
  return { sim, sink, stats, events: sink.events };
}

describe('simulator determinism', () => {
  it('same seed and config give an identical stream; another seed does not', async () => {
    const cfg = { users: 200, items: 500, disorderMs: 500, driftAtS: 10 };
    const a = await runSim(cfg, 20);
    const b = await runSim(cfg, 20);
    const c = await runSim({ ...cfg, seed: 43 }, 20);
    assert.ok(a.events.length > 5000);
    assert.equal(JSON.stringify(a.events), JSON.stringify(b.events));
    assert.deepEqual(a.stats, b.stats);
    assert.notEqual(JSON.stringify(a.events), JSON.stringify(c.events));
  });
});

describe('simulator stream (default config, 100 s of event time)', () => {
  let run: Awaited<ReturnType<typeof runSim>>;
  before(async () => {
    run = await runSim({ driftAtS: 50 }, 100);
  });

  it('emits only valid events, counted in the stats', () => {
    for (const e of run.events) Event.parse(e);
    const { stats, events } = run;
    assert.equal(stats.events, events.length);
    assert.equal(stats.impressions, events.filter((e) => e.type === 'impression').length);
    assert.equal(stats.clicks, stats.watches);
    assert.equal(stats.itemUpserts, 5000 + stats.newItems);
    assert.ok(stats.newItems > 25 && stats.newItems < 75, `new items ${stats.newItems}`);
    const ids = new Set(events.map((e) => e.id));
    assert.equal(ids.size, events.length, 'event ids are unique');
    // Over 10 characters: V8's JSON.parse would intern shorter ones (src/sim/ids.ts).
    for (const e of events) {
      assert.ok(e.id.length > 10, `event id ${e.id}`);
      if ('requestId' in e) assert.ok(e.requestId.length > 10, `request id ${e.requestId}`);
    }
    const ctr = stats.clicks / stats.impressions;
    assert.ok(ctr > 0.03 && ctr < 0.1, `overall CTR ${ctr}`);
  });

  it('is in event-time order and the policy logs sim-policy impressions', () => {
    let last = 0;
    for (const e of run.events) {
      assert.ok(e.ts >= last, `ts went back at ${e.id}`);
      last = e.ts;
    }
    const imp = run.events.find((e): e is Impression => e.type === 'impression');
    assert.equal(imp?.modelVersion, 'sim-policy');
    assert.equal(imp?.source, 'sim-policy');
  });

  it('items appear as item_upsert before any interaction with them', () => {
    const known = new Set<string>();
    let newItemImpressions = 0;
    for (const e of run.events) {
      if (e.type === 'item_upsert') {
        known.add(e.itemId);
        if (e.createdAt !== e.ts) assert.ok(e.createdAt < e.ts);
      } else if (e.type === 'impression' || e.type === 'click' || e.type === 'watch') {
        assert.ok(known.has(e.itemId), `${e.type} of ${e.itemId} before its upsert`);
        if (e.type === 'impression' && Number(e.itemId.slice(1)) >= 5000) newItemImpressions++;
      }
    }
    assert.ok(newItemImpressions > 0, 'new items do get shown');
    // A rebuilt world generates the same new items.
    const world = new World({});
    for (const e of run.events) {
      if (e.type !== 'item_upsert' || Number(e.itemId.slice(1)) < 5000) continue;
      const item = world.addItem();
      assert.equal(item.id, e.itemId);
      assert.equal(`c${item.category}`, e.category);
      assert.deepEqual(
        item.tags.map((t) => `t${t}`),
        e.tags,
      );
      assert.equal(item.durationS, e.durationS);
    }
  });

  it('CTR decreases with position', () => {
    const shown = new Map<string, number>();
    const imps = new Array(10).fill(0);
    const clicks = new Array(10).fill(0);
    for (const e of run.events) {
      if (e.type === 'impression') {
        shown.set(`${e.requestId}/${e.itemId}`, e.position);
        imps[e.position]++;
      } else if (e.type === 'click') {
        clicks[shown.get(`${e.requestId}/${e.itemId}`) as number]++;
      }
    }
    const group = (lo: number, hi: number) => {
      let c = 0;
      let n = 0;
      for (let p = lo; p <= hi; p++) {
        c += clicks[p];
        n += imps[p];
      }
      return c / n;
    };
    const ctrs = [group(0, 0), group(1, 2), group(3, 5), group(6, 9)];
    for (let k = 1; k < ctrs.length; k++) {
      assert.ok((ctrs[k] as number) < (ctrs[k - 1] as number), `CTR by position ${ctrs}`);
    }
  });

  it('empirical click rates match the true probabilities (bucketed calibration)', () => {
    const { sim } = run;
    const clicked = new Set<string>();
    for (const e of run.events) if (e.type === 'click') clicked.add(`${e.requestId}/${e.itemId}`);
    const rows: { p: number; y: number }[] = [];
    for (const e of run.events) {
      if (e.type !== 'impression') continue;
      const p = sim.truth.clickProbability(e.userId, e.itemId, e.position, e.ts);
      rows.push({ p, y: clicked.has(`${e.requestId}/${e.itemId}`) ? 1 : 0 });
    }
    assert.ok(rows.length >= 45_000, `impressions ${rows.length}`);
    rows.sort((a, b) => a.p - b.p);
    const buckets = 8;
    const means: number[] = [];
    for (let b = 0; b < buckets; b++) {
      const part = rows.slice(
        Math.floor((b * rows.length) / buckets),
        Math.floor(((b + 1) * rows.length) / buckets),
      );
      const mp = part.reduce((s, r) => s + r.p, 0) / part.length;
      const my = part.reduce((s, r) => s + r.y, 0) / part.length;
      const tol = 4 * Math.sqrt((mp * (1 - mp)) / part.length) + 0.002;
      assert.ok(Math.abs(my - mp) < tol, `bucket ${b}: empirical ${my} vs truth ${mp}`);
      means.push(mp);
    }
    assert.ok((means[buckets - 1] as number) > 5 * (means[0] as number), 'buckets spread');
  });

  it('mean watched seconds given click ≈ duration · r', () => {
    const { sim } = run;
    const tsOf = new Map<string, number>();
    for (const e of run.events) if (e.type === 'impression') tsOf.set(e.requestId, e.ts);
    let watched = 0;
    let expected = 0;
    let n = 0;
    for (const e of run.events) {
      if (e.type !== 'watch') continue;
      const r = sim.truth.watchRatioGivenClick(e.userId, e.itemId, tsOf.get(e.requestId) as number);
      assert.ok(e.watchedS <= e.durationS + 1e-9);
      watched += e.watchedS;
      expected += e.durationS * r;
      n++;
    }
    assert.ok(n > 2000);
    assert.ok(Math.abs(watched / expected - 1) < 0.03, `watched/expected ${watched / expected}`);
  });

  it('emits the drift marker once, at driftAtS', () => {
    const markers = run.events.filter((e) => e.type === 'marker');
    assert.equal(markers.length, 1);
    const m = markers[0];
    assert.ok(m?.type === 'marker');
    assert.equal(m.name, 'drift');
    assert.equal(m.ts, Date.UTC(2026, 0, 1) + 50_000);
    assert.deepEqual(m.detail, { share: 0.3, usersAffected: 300 });
  });
});

describe('simulator run options', () => {
  it('disorderMs shuffles feedback by at most that much', async () => {
    const { events } = await runSim({ users: 100, items: 300, disorderMs: 2000 }, 30);
    let maxTs = 0;
    let late = 0;
    for (const e of events) {
      if (e.ts < maxTs) {
        late++;
        assert.ok(e.type === 'click' || e.type === 'watch');
        assert.ok(maxTs - e.ts <= 2001, `${maxTs - e.ts} ms late`);
      }
      maxTs = Math.max(maxTs, e.ts);
    }
    assert.ok(late > 0, 'some events are out of order');
  });

  it('maxEvents stops at exactly that many', async () => {
    const sink = new ArraySink();
    const stats = await new Simulator({ users: 50, items: 100 }).run({ sink, maxEvents: 1234 });
    assert.equal(sink.events.length, 1234);
    assert.equal(stats.events, 1234);
    assert.ok(sink.batches >= 2);
  });

  it('speed paces event time against the wall clock, and signal stops a run', async () => {
    const t0 = performance.now();
    const sink = new ArraySink();
    const stats = await new Simulator({ users: 20, items: 20 }).run({
      sink,
      durationS: 3,
      speed: 20,
    });
    const wall = performance.now() - t0;
    assert.ok(wall >= 130, `3 s at 20x took ${wall} ms`);
    assert.equal(stats.simulatedS, 3);

    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const s2 = await new Simulator({ users: 20, items: 20 }).run({
      sink: new ArraySink(),
      speed: 10,
      signal: ac.signal,
    });
    assert.ok(s2.simulatedS > 0 && s2.simulatedS < 5, `stopped at ${s2.simulatedS}s`);
  });

  it('refuses to run without a stopping condition or twice', async () => {
    const sim = new Simulator({ users: 5, items: 5 });
    await assert.rejects(sim.run({ sink: new ArraySink() }), /durationS, maxEvents or signal/);
    await sim.run({ sink: new ArraySink(), durationS: 1 });
    await assert.rejects(sim.run({ sink: new ArraySink(), durationS: 1 }), /once/);
  });
});
