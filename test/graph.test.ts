import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import type { Event } from '../src/events/schemas.js';
import { GnnRecall } from '../src/graph/gnn-recall.js';
import { InteractionGraph } from '../src/graph/graph.js';
import { GraphModelStore } from '../src/graph/model-store.js';
import { GraphEmbeddings, type SageModel } from '../src/graph/sage-model.js';
import { trainSage } from '../src/graph/sage-trainer.js';
import { ExactIndex } from '../src/vectors/index.js';

const T0 = Date.UTC(2026, 0, 1);
let seq = 0;
const envelope = (ts: number) => ({ id: `e${++seq}`, ts });

function upsert(itemId: string, category: string, tags: string[], creator: string, ts = T0): Event {
  return {
    ...envelope(ts),
    type: 'item_upsert',
    itemId,
    category,
    tags,
    creator,
    durationS: 60,
    createdAt: ts,
  };
}
function click(userId: string, itemId: string, ts: number): Event {
  return { ...envelope(ts), type: 'click', requestId: `r${seq}`, userId, itemId };
}
function watch(userId: string, itemId: string, ts: number, watchedS: number): Event {
  return {
    ...envelope(ts),
    type: 'watch',
    requestId: `r${seq}`,
    userId,
    itemId,
    watchedS,
    durationS: 60,
  };
}

/**
 * Two tastes: users u0..u19 click only category "a" items, u20..u39 only "b". Each category
 * has its own tags and creators, so metadata alone tells the groups apart.
 */
function twoTasteGraph(): InteractionGraph {
  const g = new InteractionGraph();
  for (let i = 0; i < 40; i++) {
    const cat = i % 2 === 0 ? 'a' : 'b';
    g.apply(upsert(`i${i}`, cat, [`${cat}-t${i % 3}`], `${cat}-creator${i % 4}`));
  }
  let t = T0;
  for (let u = 0; u < 40; u++) {
    const parity = u < 20 ? 0 : 1;
    for (let k = 0; k < 8; k++) {
      t += 1000;
      g.apply(click(`u${u}`, `i${(2 * ((u * 3 + k * 5) % 20) + parity) % 40}`, t));
    }
  }
  return g;
}

describe('interaction graph', () => {
  test('a watch weights its click edge; a repeated click does not add an edge', () => {
    const g = new InteractionGraph();
    g.apply(upsert('i1', 'c', ['t'], 'a'));
    g.apply(click('u1', 'i1', T0 + 1));
    g.apply(click('u1', 'i1', T0 + 2));
    assert.equal(g.interactions, 1);
    assert.equal(g.itemsOf(0)[0]?.weight, 0.5);
    g.apply(watch('u1', 'i1', T0 + 3, 30));
    assert.equal(g.itemsOf(0)[0]?.weight, 0.75);
    assert.equal(g.usersOf(0)[0]?.weight, 0.75);
  });

  test('memory stays bounded: newest N per user and per item, old interactions age out', () => {
    const g = new InteractionGraph({ maxItemsPerUser: 5, maxUsersPerItem: 3, maxAgeMs: 60_000 });
    for (let i = 0; i < 10; i++) g.apply(upsert(`i${i}`, 'c', [], 'a'));
    for (let i = 0; i < 10; i++) g.apply(click('u1', `i${i}`, T0 + i));
    assert.deepEqual(
      g.itemsOf(0).map((e) => g.items[e.other]?.id),
      ['i5', 'i6', 'i7', 'i8', 'i9'],
    );
    for (let u = 0; u < 6; u++) g.apply(click(`v${u}`, 'i0', T0 + 100 + u));
    assert.equal(g.usersOf(0).length, 3);
    g.apply(upsert('i99', 'c', [], 'a', T0 + 120_000)); // the clock moves on two minutes
    assert.equal(g.itemsOf(0).length, 0, 'interactions older than maxAgeMs are gone');
  });

  test('an interaction with an item never upserted is ignored (no node without metadata)', () => {
    const g = new InteractionGraph();
    g.apply(click('u1', 'ghost', T0));
    assert.equal(g.interactions, 0);
    assert.equal(g.userCount, 0);
  });
});

describe('GraphSAGE', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  let trained: SageModel;

  test('training learns the two tastes, and places a cold item by its metadata alone', async () => {
    const g = twoTasteGraph();
    const result = await trainSage(
      g,
      { epochs: 60, batchSize: 64, seed: 3 },
      { dim: 8, maxTags: 2, userFanout: 5, queryFanout: 10, itemFanout: 5, idEmbeddings: true },
    );
    trained = result.model;
    assert.equal(trained.weights.items.length, 41, 'an ID row for each clicked item, and row 0');
    assert.ok(
      Number.isFinite(result.finalLoss) && result.finalLoss < 0.5,
      `loss ${result.finalLoss}`,
    );
    // Cold items: metadata of each taste, never clicked.
    g.apply(upsert('coldA', 'a', ['a-t1'], 'a-creator2'));
    g.apply(upsert('coldB', 'b', ['b-t1'], 'b-creator2'));
    const emb = new GraphEmbeddings(trained, g);
    const score = (u: string, item: string) => {
      const q = emb.userQuery(g.userIndexOf(u) as number) as Float32Array;
      const v = emb.itemEmbedding(g.itemIndexOf(item) as number);
      return q.reduce((s, x, j) => s + x * (v[j] as number), 0);
    };
    let right = 0;
    for (let u = 0; u < 40; u++) {
      const [own, other] = u < 20 ? ['coldA', 'coldB'] : ['coldB', 'coldA'];
      if (score(`u${u}`, own) > score(`u${u}`, other)) right += 1;
    }
    assert.ok(right >= 36, `cold item of the user's taste ranked first for ${right}/40 users`);
  });

  test('a new item is searchable as soon as its upsert is applied, and clicks move a user', async () => {
    const g = twoTasteGraph();
    const index = await ExactIndex.open({ dim: trained.vectorDim });
    const recall = new GnnRecall(g, index, trained);
    await recall.embedAll();
    await recall.apply([upsert('fresh', 'a', ['a-t0'], 'a-creator1', T0 + 10_000_000)]);
    assert.ok(await index.has('fresh'), 'the fresh item is in the index');
    assert.equal(recall.newItemLatencyUs.totalCount, 1);
    // Candidates scored by graph index: the query's dot with each item's vector as embedded
    // (just now, before the clicks below), NaN for an index outside the graph.
    const query = recall.query('u0') as Float32Array;
    const emb = new GraphEmbeddings(trained, g);
    const indexes = ['i0', 'fresh', 'i3', 'i39'].map((id) => g.itemIndexOf(id) as number);
    const scores = recall.scores(query, [...indexes, -1, g.itemCount]);
    indexes.forEach((i, k) => {
      const v = emb.itemEmbedding(i);
      const want = v.reduce((s, x, j) => s + x * (query[j] as number), 0);
      assert.ok(
        Math.abs((scores[k] as number) - want) < 1e-5,
        `item ${i}: ${scores[k]} vs ${want}`,
      );
    });
    assert.ok(Number.isNaN(scores[4]) && Number.isNaN(scores[5]), 'outside the graph: NaN');
    assert.throws(() => recall.scores(query.subarray(1), indexes), /dimensions/);
    // 21 taste-a items in all (20 + the fresh one): it must rank among them, above taste b.
    const top = await recall.recall('u0', 21);
    assert.ok(
      top.some((h) => h.id === 'fresh'),
      'a taste-a user gets the fresh taste-a item',
    );
    // A new user who clicks taste-b items gets taste-b candidates.
    assert.deepEqual(await recall.recall('newbie', 5), []);
    await recall.apply([1, 3, 5].map((i) => click('newbie', `i${i}`, T0 + 10_000_100 + i)));
    const hits = await recall.recall('newbie', 10);
    const b = hits.filter((h) => g.item(h.id)?.category === g.categories.get('b')).length;
    assert.ok(b >= 8, `${b}/10 candidates of the clicked taste`);
  });

  test('models are versioned on disk; loading refuses wrong shapes and NaN', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'recmaster-gnn-'));
    dirs.push(dir);
    const store = new GraphModelStore(dir);
    assert.equal(await store.latest(), null);
    assert.equal(await store.save(trained, { steps: 1 }), 'v000001');
    assert.equal(await store.save(trained, { steps: 2 }), 'v000002');
    const loaded = await store.latest();
    assert.equal(loaded?.version, 'v000002');
    assert.deepEqual(loaded?.model.weights.wQuery, trained.weights.wQuery);
    // Corrupt a copy: a NaN, then a truncated file.
    const weights = path.join(dir, 'v000002', 'weights.bin');
    const bytes = Buffer.from(trained.weights.catEmb.buffer.slice(0));
    const all = Buffer.alloc((await import('node:fs')).statSync(weights).size);
    bytes.copy(all);
    all.writeFloatLE(Number.NaN, 4 * trained.weights.catEmb.length - 4);
    await writeFile(weights, all);
    await assert.rejects(store.load('v000002'), /non-finite/);
    await writeFile(weights, all.subarray(0, 100));
    await assert.rejects(store.load('v000002'), /expected/);
  });

  test('a model saved before item ID rows existed still loads, as a metadata-only model', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'recmaster-gnn-'));
    dirs.push(dir);
    const { model } = await trainSage(
      twoTasteGraph(),
      { epochs: 1, batchSize: 64, seed: 3 },
      { dim: 8, maxTags: 2, userFanout: 5, queryFanout: 10, itemFanout: 5, idEmbeddings: false },
    );
    const store = new GraphModelStore(dir);
    const version = await store.save(model, { steps: 1 });
    // What the older format wrote: no idEmbeddings, no items vocabulary, no itemEmb array.
    const file = path.join(dir, version, 'model.json');
    const manifest = JSON.parse(await readFile(file, 'utf8'));
    delete manifest.config.idEmbeddings;
    delete manifest.vocab.items;
    delete manifest.lengths.itemEmb;
    await writeFile(file, JSON.stringify(manifest));
    const loaded = await store.load(version);
    assert.equal(loaded.model.config.idEmbeddings, false);
    assert.equal(loaded.model.weights.items.length, 0);
    assert.deepEqual(loaded.model.weights.wMeta, model.weights.wMeta);
  });
});
