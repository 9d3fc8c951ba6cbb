import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LogBus } from '../src/bus/index.js';
import { EventPublisher } from '../src/events/publisher.js';
import type { Event } from '../src/events/schemas.js';
import { parseCatalogue } from '../src/features/definitions.js';
import { FeatureEngine } from '../src/features/engine.js';
import { type SimConfigInput, Simulator } from '../src/sim/index.js';
import { PublisherSink } from '../src/sim/publisher-sink.js';
import type { EventSink } from '../src/sim/sink.js';
import { LmdbFeatureStore } from '../src/store/lmdb-store.js';
import { RedisFeatureStore } from '../src/store/redis-store.js';
import type { FeatureRow, FeatureStore } from '../src/store/store.js';
import { tempDir } from './helpers.js';
import { startRedis } from './redis-server.js';

const runner = fileURLToPath(new URL('./fixtures/feature-runner.ts', import.meta.url));
const world: SimConfigInput = { users: 80, items: 300, seed: 5, requestsPerSecond: 10 };

/** Simulates into a fresh log and keeps a copy of the events for brute-force checks. */
async function simulate(
  dir: string,
  durationS: number,
  config: SimConfigInput = world,
): Promise<Event[]> {
  const bus = new LogBus({ dir: path.join(dir, 'bus'), durability: 'os', defaultPartitions: 4 });
  const publisher = new EventPublisher(bus);
  await publisher.ensureTopics();
  const kept: Event[] = [];
  const inner = new PublisherSink(publisher);
  const sink: EventSink = {
    emit: async (events) => {
      kept.push(...events);
      await inner.emit(events);
    },
  };
  await new Simulator(config).run({ sink, durationS });
  await bus.close();
  return kept;
}

/** Sweeps a slice of the keys every 10 records of a stream in the replay tests (not 3,125). */
const OFTEN = 160;

async function runEngine(
  dir: string,
  name: string,
  store?: FeatureStore,
  lateness?: number,
  sweepEvery?: number,
) {
  const bus = new LogBus({ dir: path.join(dir, 'bus'), durability: 'os', defaultPartitions: 4 });
  const own = store ?? (await LmdbFeatureStore.open(path.join(dir, `${name}-store`)));
  const engine = await FeatureEngine.open({
    bus,
    store: own,
    stateDir: path.join(dir, `${name}-state`),
    group: name,
    ...(lateness === undefined ? {} : { allowedLatenessMs: lateness }),
    ...(sweepEvery === undefined ? {} : { sweepEvery }),
  });
  await engine.catchUp();
  const stats = engine.stats();
  await engine.close();
  await bus.close();
  const rows = await allRows(own);
  if (!store) await own.close();
  return { rows, stats };
}

async function allRows(store: FeatureStore): Promise<Map<string, FeatureRow>> {
  const rows = new Map<string, FeatureRow>();
  for await (const [key, row] of store.scan()) rows.set(key, row);
  return rows;
}

function hopWindowEnd(asOf: number, slideMs: number): number {
  return (Math.floor(asOf / slideMs) + 1) * slideMs;
}

describe('feature engine', () => {
  test('batch sizes that are not whole numbers >= 1, or a max below the batch, are refused', async () => {
    const { dir, cleanup } = await tempDir();
    const bus = new LogBus({ dir: path.join(dir, 'bus'), durability: 'os' });
    const store = await LmdbFeatureStore.open(path.join(dir, 'store'));
    try {
      const stateDir = path.join(dir, 'state');
      for (const [batchSize, maxBatch, message] of [
        [0, undefined, /whole numbers >= 1/],
        [Number.NaN, undefined, /whole numbers >= 1/],
        [100, 2.5, /whole numbers >= 1/],
        [100, 50, /maxBatch \(50\) must be at least batchSize \(100\)/],
      ] as const) {
        await assert.rejects(
          FeatureEngine.open({ bus, store, stateDir, batchSize, maxBatch }),
          (err: Error & { code?: string }) => err.code === 'E_CONFIG' && message.test(err.message),
        );
      }
    } finally {
      await store.close();
      await bus.close();
      await cleanup();
    }
  });

  test('rows match a brute-force recomputation from the events', async () => {
    const { dir, cleanup } = await tempDir();
    const events = await simulate(dir, 1800);
    const { rows, stats } = await runEngine(dir, 'features');
    assert.equal(stats.lateEvents, 0, 'the simulator emits in event-time order');
    assert.equal(stats.unknownCategory, 0, 'item upserts are readable before behaviour');
    const behaviour = events.filter(
      (e): e is Extract<Event, { type: 'impression' | 'click' | 'watch' }> =>
        e.type === 'impression' || e.type === 'click' || e.type === 'watch',
    );
    assert.equal(stats.events, behaviour.length);
    const byUser = new Map<string, typeof behaviour>();
    for (const e of behaviour) {
      const list = byUser.get(e.userId) ?? [];
      list.push(e);
      byUser.set(e.userId, list);
    }
    let checkedUsers = 0;
    for (const [userId, mine] of byUser) {
      const asOf = Math.max(...mine.map((e) => e.ts));
      const row = rows.get(`user:${userId}`);
      assert.ok(row, `row of ${userId}`);
      assert.equal(row.eventTimeMs, asOf);
      const inHop = (ts: number, size: number, slide: number) => {
        const end = hopWindowEnd(asOf, slide);
        return ts >= end - size && ts < end;
      };
      const clicks1h = mine.filter(
        (e) => e.type === 'click' && inHop(e.ts, 3_600_000, 60_000),
      ).length;
      const imps1h = mine.filter(
        (e) => e.type === 'impression' && inHop(e.ts, 3_600_000, 60_000),
      ).length;
      const imps24h = mine.filter(
        (e) => e.type === 'impression' && inHop(e.ts, 86_400_000, 900_000),
      ).length;
      const watch1m = mine
        .filter((e) => e.type === 'watch' && inHop(e.ts, 60_000, 5_000))
        .reduce((s, e) => s + (e.type === 'watch' ? e.watchedS : 0), 0);
      assert.equal(row.values.user_clicks_1h, clicks1h, `${userId} clicks 1h`);
      assert.equal(row.values.user_impressions_1h, imps1h);
      assert.equal(row.values.user_impressions_24h, imps24h);
      assert.ok(Math.abs((row.values.user_watch_s_1m as number) - watch1m) < 1e-6);
      assert.ok(
        Math.abs((row.values.user_ctr_1h as number) - (clicks1h + 0.05 * 20) / (imps1h + 20)) <
          1e-12,
      );
      const clicked: string[] = [];
      for (const e of mine.filter((x) => x.type === 'click')) {
        if (clicked.at(-1) !== e.itemId) clicked.push(e.itemId);
        else clicked[clicked.length - 1] = e.itemId;
      }
      assert.deepEqual(row.values.user_last_clicks, clicked.slice(-50));
      checkedUsers += 1;
    }
    assert.ok(checkedUsers > 50);
    // Items: their events come from several partitions and are summed across them.
    const byItem = new Map<string, typeof behaviour>();
    for (const e of behaviour) {
      const list = byItem.get(e.itemId) ?? [];
      list.push(e);
      byItem.set(e.itemId, list);
    }
    for (const [itemId, list] of [...byItem].slice(0, 100)) {
      const asOf = Math.max(...list.map((e) => e.ts));
      const end = hopWindowEnd(asOf, 60_000);
      const clicks = list.filter(
        (e) => e.type === 'click' && e.ts >= end - 3_600_000 && e.ts < end,
      ).length;
      assert.equal(
        rows.get(`item:${itemId}`)?.values.item_clicks_1h,
        clicks,
        `${itemId} clicks 1h`,
      );
    }
    // User×category: the clicks on the category, decayed with a 24 h half-life, as of the
    // key's newest click.
    const categoryOf = new Map<string, string>();
    for (const e of events) if (e.type === 'item_upsert') categoryOf.set(e.itemId, e.category);
    const byUserCategory = new Map<string, number[]>();
    for (const e of behaviour) {
      if (e.type !== 'click') continue;
      const key = `user_category:${e.userId}|${categoryOf.get(e.itemId)}`;
      byUserCategory.set(key, [...(byUserCategory.get(key) ?? []), e.ts]);
    }
    assert.ok(byUserCategory.size > 50, `${byUserCategory.size} user×category keys`);
    for (const [key, times] of byUserCategory) {
      const asOf = Math.max(...times);
      const want = times.reduce((sum, t) => sum + 2 ** (-(asOf - t) / 86_400_000), 0);
      const row = rows.get(key);
      assert.ok(row, `row of ${key}`);
      assert.ok(
        Math.abs((row.values.user_category_affinity as number) - want) < 1e-9,
        `${key} affinity ${row.values.user_category_affinity} against ${want}`,
      );
    }
    await cleanup();
  });

  test('rebuilding from offset 0 gives exactly the rows of the live run', async () => {
    const { dir, cleanup } = await tempDir();
    const bus = new LogBus({ dir: path.join(dir, 'bus'), durability: 'os', defaultPartitions: 4 });
    const publisher = new EventPublisher(bus);
    await publisher.ensureTopics();
    const store = await LmdbFeatureStore.open(path.join(dir, 'live-store'));
    const engine = await FeatureEngine.open({
      bus,
      store,
      stateDir: path.join(dir, 'live-state'),
      group: 'live',
      sweepEvery: OFTEN,
    });
    // Live: the engine follows the simulator as it writes (paced), in small, uneven batches.
    const stop = new AbortController();
    const following = engine.run(stop.signal);
    await new Simulator({ ...world, disorderMs: 3000 }).run({
      sink: new PublisherSink(publisher),
      durationS: 240,
      speed: 120,
    });
    stop.abort();
    await following;
    await engine.catchUp();
    const liveStats = engine.stats();
    await engine.close();
    // Reopened from the checkpoint written at close: one arena block per state that holds
    // events and per key, whether made live or restored, so a state or key dropped live
    // without giving its block back would show here.
    const reopened = await FeatureEngine.open({
      bus,
      store,
      stateDir: path.join(dir, 'live-state'),
      group: 'live',
    });
    assert.ok(liveStats.arenaBlocks > 0);
    assert.equal(reopened.stats().arenaBlocks, liveStats.arenaBlocks);
    await reopened.close();
    await bus.close();
    const live = await allRows(store);
    await store.close();
    assert.ok(liveStats.batches > 5, `live run took ${liveStats.batches} batches`);

    const rebuilt = await runEngine(dir, 'rebuild', undefined, undefined, OFTEN);
    assert.ok(liveStats.expiredStates > 0, 'states expired while the live run went on');
    assert.equal(rebuilt.stats.expiredStates, liveStats.expiredStates);
    assert.equal(rebuilt.rows.size, live.size);
    for (const [k, v] of live) {
      if (JSON.stringify(v) !== JSON.stringify(rebuilt.rows.get(k))) {
        console.log(
          'DIFF',
          k,
          JSON.stringify(v).slice(0, 300),
          '\n     ',
          JSON.stringify(rebuilt.rows.get(k)).slice(0, 300),
        );
        break;
      }
    }
    assert.deepEqual(rebuilt.rows, live);
    assert.equal(rebuilt.stats.lateEvents, liveStats.lateEvents);
    await cleanup();
  });

  test('kill -9 mid-stream and resume gives exactly the rows of an uninterrupted run', async () => {
    const { dir, cleanup } = await tempDir();
    await simulate(dir, 600, { ...world, disorderMs: 90_000 });
    const reference = await runEngine(dir, 'reference', undefined, undefined, OFTEN);
    assert.ok(reference.stats.expiredStates > 0, 'states expired along the way');
    assert.ok(reference.stats.lateEvents > 0, 'some events are later than the allowed lateness');

    const stateDir = path.join(dir, 'crash-state');
    const storeDir = path.join(dir, 'crash-store');
    // Killed a few batches after the process completed its first checkpoint, twice: each
    // restart resumes from a checkpoint written while events kept changing the states it was
    // encoding (copy-on-write), not from the start of the log.
    const first = await runRunner(path.join(dir, 'bus'), storeDir, stateDir, 1);
    assert.equal(first.outcome, 'killed');
    assert.equal(first.restoredEvents, 0, 'the first run starts from the log');
    const second = await runRunner(path.join(dir, 'bus'), storeDir, stateDir, 1);
    assert.equal(second.outcome, 'killed');
    assert.ok(second.restoredEvents > 0, 'the second run resumes from a checkpoint');
    const last = await runRunner(path.join(dir, 'bus'), storeDir, stateDir, null);
    assert.equal(last.outcome, 'done');
    assert.ok(last.restoredEvents > second.restoredEvents, 'and so does the last');
    const store = await LmdbFeatureStore.open(storeDir);
    const crashed = await allRows(store);
    await store.close();
    assert.equal(crashed.size, reference.rows.size);
    assert.deepEqual(crashed, reference.rows);
    await cleanup();
  });

  test('closing checkpoints everything, also what changed while a checkpoint was in progress', async () => {
    const { dir, cleanup } = await tempDir();
    await simulate(dir, 300);
    const bus = new LogBus({ dir: path.join(dir, 'bus'), durability: 'os', defaultPartitions: 4 });
    const store = await LmdbFeatureStore.open(path.join(dir, 'store'));
    const options = {
      bus,
      store,
      stateDir: path.join(dir, 'state'),
      batchSize: 500,
      maxBatch: 500,
      // A checkpoint starts after every batch and encodes 64 keys a batch.
      checkpointIntervalMs: 0,
      checkpointSliceMs: 0,
    };
    const engine = await FeatureEngine.open(options);
    for (let i = 0; i < 5; i++) await engine.step(0);
    await engine.checkpoint(); // none in progress now
    await engine.step(0); // starts one: 500 events changed more than 64 keys
    await engine.step(0); // changes more while it is still in progress
    await engine.close();
    const closed = engine.stats();
    assert.equal(closed.events, 3500);
    const reopened = await FeatureEngine.open(options);
    const restored = reopened.stats();
    assert.equal(restored.events, closed.events, 'the last checkpoint counted every event');
    assert.equal(restored.keys, closed.keys);
    await reopened.close();
    await store.close();
    await bus.close();
    await cleanup();
  });

  test('a changed item category counts once the items topic is read again', async () => {
    const { dir, cleanup } = await tempDir();
    const bus = new LogBus({ dir: path.join(dir, 'bus'), durability: 'os' });
    const publisher = new EventPublisher(bus);
    await publisher.ensureTopics();
    const t0 = 1_767_225_600_000;
    const upsert = (category: string, ts: number): Event => ({
      id: `up-${category}`,
      ts,
      type: 'item_upsert',
      itemId: 'i1',
      category,
      tags: [],
      creator: 'a1',
      durationS: 60,
      createdAt: t0,
    });
    const click = (n: number, ts: number): Event => ({
      id: `c${n}`,
      ts,
      type: 'click',
      requestId: `r${n}`,
      userId: 'u1',
      itemId: 'i1',
    });
    const engines = [];
    for (const [name, itemsRefreshMs] of [
      ['every-batch', 0],
      ['hourly', 3_600_000],
    ] as const) {
      const store = await LmdbFeatureStore.open(path.join(dir, `${name}-store`));
      const engine = await FeatureEngine.open({
        bus,
        store,
        stateDir: path.join(dir, `${name}-state`),
        group: name,
        itemsRefreshMs,
      });
      engines.push({ store, engine });
    }
    await publisher.publish([upsert('c1', t0), click(1, t0 + 1000)]);
    for (const { engine } of engines) await engine.catchUp();
    // i1 is known now: the new category is read at once only by the engine that reads items on
    // every batch; the other one counts the second click under the category it knows.
    await publisher.publish([upsert('c2', t0 + 2000), click(2, t0 + 3000)]);
    for (const { engine } of engines) await engine.catchUp();
    const affinity = async (store: FeatureStore, category: string) =>
      (await store.getMany([{ entity: 'user_category', key: `u1|${category}` }]))[0]?.values
        .user_category_affinity ?? null;
    const [every, hourly] = engines.map((e) => e.store);
    assert.ok(((await affinity(every as FeatureStore, 'c2')) as number) > 0);
    assert.equal(await affinity(hourly as FeatureStore, 'c2'), null);
    assert.ok(
      ((await affinity(hourly as FeatureStore, 'c1')) as number) >
        ((await affinity(every as FeatureStore, 'c1')) as number),
      'two clicks under c1 against one',
    );
    await assert.rejects(
      FeatureEngine.open({
        bus,
        store: every as FeatureStore,
        stateDir: path.join(dir, 'bad-state'),
        group: 'bad',
        itemsRefreshMs: Number.NaN,
      }),
      (err: Error & { code?: string }) =>
        err.code === 'E_CONFIG' && /itemsRefreshMs/.test(err.message),
    );
    for (const { engine, store } of engines) {
      await engine.close();
      await store.close();
    }
    await bus.close();
    await cleanup();
  });

  test('a state is dropped at the first sweep after its TTL, also one created after a longer-lived one', async () => {
    const { dir, cleanup } = await tempDir();
    const bus = new LogBus({ dir: path.join(dir, 'bus'), durability: 'os' });
    const publisher = new EventPublisher(bus);
    await publisher.ensureTopics();
    const MIN = 60_000;
    const features = parseCatalogue([
      {
        kind: 'aggregate',
        name: 'item_clicks_day',
        description: 'clicks, decayed',
        entity: 'item',
        sources: ['click'],
        aggregation: { kind: 'count' },
        window: { kind: 'decayed', halfLifeMs: 60 * MIN },
        ttlMs: 24 * 60 * MIN,
      },
      {
        kind: 'aggregate',
        name: 'item_watches_10m',
        description: 'watches, last 10 minutes',
        entity: 'item',
        sources: ['watch'],
        aggregation: { kind: 'count' },
        window: { kind: 'sliding', sizeMs: 10 * MIN, slideMs: MIN },
        ttlMs: 20 * MIN,
      },
    ]);
    const t0 = 1_767_225_600_000;
    let n = 0;
    const click = (itemId: string, ts: number): Event => ({
      id: `c${++n}`,
      ts,
      type: 'click',
      requestId: `r${n}`,
      userId: 'u1',
      itemId,
    });
    const watch = (itemId: string, ts: number): Event => ({
      id: `w${++n}`,
      ts,
      type: 'watch',
      requestId: `r${n}`,
      userId: 'u1',
      itemId,
      watchedS: 10,
      durationS: 60,
    });
    const store = await LmdbFeatureStore.open(path.join(dir, 'store'));
    // A sweep of a sixteenth of the keys every record: all of them every 16 records.
    const engine = await FeatureEngine.open({
      bus,
      store,
      stateDir: path.join(dir, 'state'),
      features,
      sweepEvery: 16,
    });
    // i1 first gets a click (kept a day), swept once, then a watch (kept 20 minutes) that
    // must go 20 minutes later although the click's state lives on.
    await publisher.publish([click('i1', t0), click('i2', t0)]);
    const filler = (from: number, count: number) =>
      Array.from({ length: count }, (_, i) => click('i0', from + i));
    await publisher.publish(filler(t0 + MIN, 40));
    // i3 has a watch only: when its state expires the key goes too.
    await publisher.publish([watch('i1', t0 + 2 * MIN), watch('i3', t0 + 2 * MIN)]);
    await publisher.publish(filler(t0 + 21 * MIN, 40));
    await engine.catchUp();
    assert.equal(engine.stats().expiredStates, 0, 'nothing is 20 minutes old yet');
    const before = engine.stats();
    await publisher.publish(filler(t0 + 23 * MIN, 40));
    await engine.catchUp();
    assert.equal(engine.stats().expiredStates, 2, "i1's and i3's watch states");
    assert.equal(engine.stats().keys, before.keys - 1, "i3's key");
    assert.equal(
      engine.stats().arenaBlocks,
      before.arenaBlocks - 3,
      'the two states and the key gave their arena blocks back',
    );
    assert.equal(engine.stats().timeSlots, engine.stats().keys, "and the key's time slot");
    // i2 the same, except that its watch state is made empty by a late watch (older than its
    // 10-minute window) before a sweep, and counts its first watch only after that sweep.
    await publisher.publish([watch('i2', t0 + MIN), ...filler(t0 + 24 * MIN, 40)]);
    await publisher.publish([watch('i2', t0 + 25 * MIN), ...filler(t0 + 26 * MIN, 40)]);
    await engine.catchUp();
    assert.equal(engine.stats().lateEvents, 1);
    await publisher.publish(filler(t0 + 46 * MIN, 40));
    await engine.catchUp();
    assert.equal(engine.stats().expiredStates, 3, "and i2's");
    const [row] = await store.getMany([{ entity: 'item', key: 'i1' }]);
    assert.equal(row?.values.item_watches_10m, 0);
    assert.ok((row?.values.item_clicks_day as number) > 0);
    await engine.close();
    await store.close();
    await bus.close();
    await cleanup();
  });

  test('late events beyond the allowed lateness are counted, not merged', async () => {
    const { dir, cleanup } = await tempDir();
    await simulate(dir, 600, { ...world, disorderMs: 120_000 });
    const strict = await runEngine(dir, 'strict', undefined, 1000);
    const lenient = await runEngine(dir, 'lenient', undefined, 150_000);
    assert.ok(strict.stats.lateEvents > 0);
    assert.equal(
      lenient.stats.lateEvents,
      0,
      'nothing is later than 150 s when disorder is at most 120 s',
    );
    assert.equal(strict.stats.events, lenient.stats.events);
    await cleanup();
  });

  test('the Redis store holds exactly the rows of the embedded store', async () => {
    const redis = await startRedis();
    const { dir, cleanup } = await tempDir();
    try {
      await simulate(dir, 600);
      const embedded = await runEngine(dir, 'embedded');
      const store = await RedisFeatureStore.open(redis.url);
      const viaRedis = await runEngine(dir, 'redis', store);
      // A ranking request: one user and many items in one call.
      const items = [...embedded.rows.keys()].filter((k) => k.startsWith('item:')).slice(0, 200);
      const got = await store.getMany([
        { entity: 'user', key: 'u1' },
        ...items.map((k) => ({ entity: 'item' as const, key: k.slice(5) })),
        { entity: 'item', key: 'no-such-item' },
      ]);
      await store.close();
      assert.deepEqual(viaRedis.rows, embedded.rows);
      assert.deepEqual(got[0], embedded.rows.get('user:u1') ?? null);
      assert.deepEqual(
        got.slice(1, -1),
        items.map((k) => embedded.rows.get(k)),
      );
      assert.equal(got.at(-1), null);
    } finally {
      await redis.stop();
      await cleanup();
    }
  });
});

/**
 * Runs the engine in a child process; with `checkpoints`, kills it (SIGKILL) three batches
 * after it has completed that many checkpoints. Also says what the run resumed from.
 */
function runRunner(
  busDir: string,
  storeDir: string,
  stateDir: string,
  checkpoints: number | null,
): Promise<{ outcome: 'killed' | 'done'; restoredEvents: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', runner, busDir, storeDir, stateDir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let out = '';
    const restoredEvents = () => Number(/^RESTORED (\d+)/m.exec(out)?.[1] ?? Number.NaN);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      if (checkpoints === null) return;
      const after = [...out.matchAll(/^STEP (\d+)$/gm)].filter((m) => Number(m[1]) >= checkpoints);
      if (after.length >= 3) child.kill('SIGKILL');
    });
    child.stderr.on('data', (d) => {
      stderr += String(d);
    });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve({ outcome: 'killed', restoredEvents: restoredEvents() });
      else if (code === 0 && out.includes('DONE'))
        resolve({ outcome: 'done', restoredEvents: restoredEvents() });
      else reject(new Error(`runner failed (${code ?? signal}): ${stderr}`));
    });
  });
}
