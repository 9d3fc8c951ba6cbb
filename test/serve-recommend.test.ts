import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { LogBus } from '../src/bus/index.js';
import { LogFollower } from '../src/bus/log-follower.js';
import { EventPublisher } from '../src/events/publisher.js';
import type { Impression } from '../src/events/schemas.js';
import { Topics } from '../src/events/topics.js';
import { FeatureEngine } from '../src/features/engine.js';
import { InteractionGraph } from '../src/graph/graph.js';
import { GraphModelStore } from '../src/graph/model-store.js';
import { DEFAULT_SAGE_CONFIG } from '../src/graph/sage-model.js';
import { trainSage } from '../src/graph/sage-trainer.js';
import { FeatureVectorizer } from '../src/rank/feature-vector.js';
import { RankerModelStore } from '../src/rank/model-store.js';
import { Ranker } from '../src/rank/ranker.js';
import { exampleFromSnapshot } from '../src/rank/snapshot.js';
import type { RecommendResult } from '../src/serve/recommend-service.js';
import { createServer, type RecommendServer } from '../src/serve/server.js';
import { Simulator } from '../src/sim/index.js';
import { PublisherSink } from '../src/sim/publisher-sink.js';
import { LmdbFeatureStore } from '../src/store/lmdb-store.js';
import { Rng } from '../src/util/rng.js';
import { tempDir } from './helpers.js';

describe('recommendation server', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let bus: LogBus;
  let store: LmdbFeatureStore;
  let server: RecommendServer;
  let sim: Simulator;

  before(async () => {
    ({ dir, cleanup } = await tempDir());
    bus = new LogBus({ dir: path.join(dir, 'bus'), durability: 'os' });
    const publisher = new EventPublisher(bus);
    await publisher.ensureTopics();
    sim = new Simulator({ users: 60, items: 400, seed: 9, requestsPerSecond: 5 });
    await sim.run({ sink: new PublisherSink(publisher), durationS: 1800 });
    store = await LmdbFeatureStore.open(path.join(dir, 'store'));
    const engine = await FeatureEngine.open({ bus, store, stateDir: path.join(dir, 'state') });
    await engine.catchUp();
    await engine.close();
    const graph = new InteractionGraph();
    await new LogFollower(bus, [Topics.items, Topics.feedback]).catchUp((events) => {
      for (const e of events) graph.apply(e);
    });
    const { model } = await trainSage(
      graph,
      { epochs: 1, seed: 3 },
      { ...DEFAULT_SAGE_CONFIG, dim: 16 },
    );
    await new GraphModelStore(path.join(dir, 'gnn')).save(model, {});
    server = await createServer({
      bus,
      store,
      rankerDir: path.join(dir, 'ranker'),
      gnnDir: path.join(dir, 'gnn'),
      modelPollMs: 5,
    });
  });

  after(async () => {
    await server?.close();
    await store?.close();
    await bus?.close();
    await cleanup?.();
  });

  const recommend = async (body: unknown) =>
    server.app.inject({ method: 'POST', url: '/recommend', payload: body as object });

  test('recalls from several sources, removes seen items, logs impressions with snapshots', async () => {
    const res = await recommend({ userId: 'u3', count: 10 });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json() as RecommendResult;
    assert.equal(body.modelVersion, 'bootstrap', 'no ranker yet: uniform logging over recall');
    assert.equal(body.items.length, 10);
    assert.equal(new Set(body.items.map((i) => i.itemId)).size, 10, 'no duplicates');
    assert.ok(body.candidates >= 100, `${body.candidates} candidates`);
    assert.ok(
      body.items.some((i) => i.source === 'ann'),
      `sources ${body.items.map((i) => i.source)}`,
    );
    const clicked = new Set(
      server.live.graph
        .itemsOf(server.live.graph.userIndexOf('u3') as number)
        .map((e) => server.live.graph.items[e.other]?.id),
    );
    assert.ok(
      body.items.every((i) => !clicked.has(i.itemId)),
      'already clicked items are not recommended',
    );
    const again = (await recommend({ userId: 'u3', count: 10 })).json() as RecommendResult;
    const first = new Set(body.items.map((i) => i.itemId));
    assert.ok(
      again.items.every((i) => !first.has(i.itemId)),
      'items shown a moment ago are not shown again',
    );

    const logged: Impression[] = [];
    await new LogFollower(bus, [Topics.impressions]).catchUp((events) => {
      for (const e of events)
        if (e.type === 'impression' && e.requestId === body.requestId) logged.push(e);
    });
    assert.equal(logged.length, 10, 'every shown item is logged');
    const vectorizer = new FeatureVectorizer();
    for (const imp of logged) {
      const item = body.items[imp.position];
      assert.equal(imp.itemId, item?.itemId, 'logged in the order shown');
      assert.equal(imp.modelVersion, 'bootstrap');
      const ex = exampleFromSnapshot(vectorizer, imp);
      assert.ok(ex.category.startsWith('c'), `category from the snapshot: ${ex.category}`);
      assert.equal(ex.features.length, vectorizer.width);
      assert.ok(
        typeof imp.features['item.missing'] === 'number',
        'the snapshot has the dense feature values',
      );
    }
    // Where the time went, per phase, for the two requests so far.
    const metrics = (await server.app.inject({ url: '/metrics' })).body;
    for (const phase of ['recall', 'features', 'rank', 'log']) {
      const count = metrics.match(
        new RegExp(`recmaster_recommend_phase_seconds_count\\{phase="${phase}"\\} (\\d+)`),
      );
      assert.ok(count && Number(count[1]) >= 2, `${phase} phase timed: ${count?.[0]}`);
    }
  });

  test('an unknown user gets popular and fresh items', async () => {
    const body = (await recommend({ userId: 'stranger', count: 5 })).json() as RecommendResult;
    assert.equal(body.items.length, 5);
    assert.ok(
      body.items.every((i) => i.source === 'popular' || i.source === 'fresh'),
      `sources ${body.items.map((i) => i.source)}`,
    );
  });

  test('a published ranker version is swapped in without a restart', async () => {
    const vectorizer = new FeatureVectorizer();
    const ranker = await Ranker.create(
      {
        architecture: 'mmoe',
        idDim: 4,
        rows: { user: 128, item: 1024, category: 64, creator: 64, tag: 128 },
        featureWidth: vectorizer.width,
        experts: 2,
        expertDim: 8,
        towerDim: 4,
        fusion: { clickWeight: 1, watchWeight: 0.5 },
      },
      new Rng(2),
    );
    const publishedAt = performance.timeOrigin + performance.now();
    const version = await new RankerModelStore(path.join(dir, 'ranker')).save(
      ranker,
      vectorizer.slotNames,
      {},
    );
    ranker.dispose();
    const deadline = Date.now() + 5000;
    let body: RecommendResult | undefined;
    while (Date.now() < deadline) {
      body = (await recommend({ userId: 'u5', count: 5 })).json() as RecommendResult;
      if (body.modelVersion === version) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(body?.modelVersion, version, 'the new version serves');
    // /readyz says since when (what bench:swap measures publish-to-serve with).
    const ready = (await server.app.inject({ url: '/readyz' })).json() as {
      modelVersion: string;
      modelSinceMs: number;
    };
    assert.equal(ready.modelVersion, version);
    assert.ok(
      ready.modelSinceMs > publishedAt && ready.modelSinceMs <= Date.now() + 1,
      `served since ${ready.modelSinceMs}, published at ${publishedAt}`,
    );
    const finals = body?.items.map((i) => i.scores.final) ?? [];
    assert.ok(
      finals.every(
        (f, k) => k === 0 || f <= (finals[k - 1] as number) || body?.items[k]?.source === 'fresh',
      ),
      `ranked by final score: ${finals}`,
    );
    assert.ok(
      body?.items.every((i) => i.scores.click > 0 && i.scores.click < 1),
      'click probabilities from the model',
    );
  });

  test('bad requests get a 400 with a message, never a 5xx', async () => {
    for (const bad of [
      {},
      { userId: '' },
      { userId: 'u1', count: 0 },
      { userId: 'u1', count: 1e6 },
      { userId: 'u1', extra: true },
      { userId: 7 },
      { userId: 'u1', context: { ts: -5 } },
      [],
      'text',
    ]) {
      const res = await recommend(bad);
      assert.ok(
        res.statusCode >= 400 && res.statusCode < 500,
        `${JSON.stringify(bad)} → ${res.statusCode} ${res.body}`,
      );
      const msg = (res.json() as { message: string }).message;
      assert.ok(
        msg.length > 0 && !msg.includes('events['),
        `message for ${JSON.stringify(bad)}: ${msg}`,
      );
    }
    const junk = await server.app.inject({
      method: 'POST',
      url: '/recommend',
      headers: { 'content-type': 'application/json' },
      payload: '{"userId":',
    });
    assert.equal(junk.statusCode, 400, junk.body);
  });

  test('fuzzed recommendation requests never yield a 5xx', async () => {
    const rng = new Rng(11).fork('fuzz');
    const atoms: unknown[] = [null, true, 0, -1, 1.5, 1e308, 'u1', '', 'x'.repeat(300), [], {}];
    const fields = ['userId', 'count', 'context', 'ts', 'extra'];
    const value = (depth: number): unknown => {
      if (depth > 2 || rng.uniform() < 0.6) return atoms[rng.int(atoms.length)];
      if (rng.uniform() < 0.3) return Array.from({ length: rng.int(3) }, () => value(depth + 1));
      const obj: Record<string, unknown> = {};
      for (let k = rng.int(4); k > 0; k--)
        obj[fields[rng.int(fields.length)] as string] = value(depth + 1);
      return obj;
    };
    for (let i = 0; i < 300; i++) {
      const body: Record<string, unknown> = { userId: `u${rng.int(80)}`, count: 1 + rng.int(30) };
      body[fields[rng.int(fields.length)] as string] = value(0);
      const text = rng.uniform() < 0.2 ? JSON.stringify(value(0)) : JSON.stringify(body);
      const payload = rng.uniform() < 0.1 ? text.slice(0, rng.int(text.length + 1)) : text;
      const res = await server.app.inject({
        method: 'POST',
        url: '/recommend',
        headers: { 'content-type': 'application/json' },
        payload,
      });
      assert.ok(res.statusCode < 500, `${res.statusCode} for ${payload}: ${res.body}`);
    }
    const ok = await recommend({ userId: 'u1', count: 3 });
    assert.equal(ok.statusCode, 200, 'still serving after the fuzzing');
  });
});
