import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { isRecmasterError } from '../src/errors.js';
import { RankerModelStore } from '../src/rank/model-store.js';
import { type RankExample, Ranker } from '../src/rank/ranker.js';
import { Rng } from '../src/util/rng.js';
import { smallRankerConfig, tempDir } from './helpers.js';

const config = smallRankerConfig({ experts: 3, expertDim: 8 });
const slots = ['a', 'b', 'c'];

function examples(rng: Rng, n: number): RankExample[] {
  const clicks = ['i3', 'i9', 'i27'];
  return Array.from({ length: n }, (_, k) => ({
    userId: 'u7',
    itemId: `i${k}`,
    category: `c${k % 5}`,
    creator: `a${k % 4}`,
    tags: k % 2 ? ['t1', 't2'] : ['t3'],
    recentClicks: clicks,
    features: Float32Array.of(rng.normal(), rng.normal(), rng.normal()),
    position: 0,
  }));
}

describe('ranker model store', () => {
  test('scoreQuery (the serving path) gives the scores of score() on the same examples', async () => {
    const rng = new Rng(3);
    const ranker = await Ranker.create(config, rng.fork('m'));
    const ex = examples(rng.fork('x'), 40);
    const slow = ranker.score(ex);
    const features = new Float32Array(ex.length * 3);
    ex.forEach((e, i) => {
      features.set(e.features, i * 3);
    });
    const fast = ranker.scoreQuery({
      userId: 'u7',
      recentClicks: ex[0]?.recentClicks ?? [],
      items: ex,
      features,
    });
    fast.forEach((s, i) => {
      const t = slow[i];
      assert.ok(t && Math.abs(s.click - t.click) < 1e-5, `click ${i}: ${s.click} vs ${t?.click}`);
      assert.ok(t && Math.abs(s.final - t.final) < 1e-4, `final ${i}: ${s.final} vs ${t?.final}`);
    });
    ranker.dispose();
  });

  test('saves, publishes and loads versions with the same scores; rolls back by pointer', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const store = new RankerModelStore(dir);
      assert.equal(await store.current(), null);
      const rng = new Rng(4);
      const a = await Ranker.create(config, rng.fork('a'));
      const b = await Ranker.create(config, rng.fork('b'));
      const v1 = await store.save(a, slots, { samples: 10 });
      const v2 = await store.save(b, slots, { samples: 20 });
      assert.deepEqual([v1, v2], ['v000001', 'v000002']);
      assert.equal(await store.current(), v2);
      const loaded = await store.loadCurrent(rng.fork('l'));
      const ex = examples(rng.fork('x'), 10);
      assert.deepEqual(
        loaded?.ranker.score(ex).map((s) => s.click),
        b.score(ex).map((s) => s.click),
        'the loaded model scores like the saved one',
      );
      assert.deepEqual(loaded?.manifest.featureSlots, slots);
      await store.files.setCurrent(v1);
      assert.equal(await store.current(), v1, 'rollback moves the pointer');
      await assert.rejects(store.files.setCurrent('v000009'), /no model version v000009/);
      // A version written without publishing does not move the pointer.
      await store.save(b, slots, {}, false);
      assert.equal(await store.current(), v1);
      for (const r of [a, b, loaded?.ranker]) r?.dispose();
    } finally {
      await cleanup();
    }
  });

  test('a store told the feature slots refuses a version trained on other slots', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const rng = new Rng(6);
      const a = await Ranker.create(config, rng);
      const v = await new RankerModelStore(dir).save(a, slots, {});
      a.dispose();
      const same = await new RankerModelStore(dir, 50, [...slots]).load(v, rng);
      assert.deepEqual(same.manifest.featureSlots, slots, 'the same slots load');
      same.ranker.dispose();
      for (const other of [
        ['a', 'x', 'c'],
        ['a', 'b'],
        ['a', 'b', 'c', 'd'],
      ]) {
        await assert.rejects(new RankerModelStore(dir, 50, other).load(v, rng), (err: unknown) => {
          assert.ok(isRecmasterError(err, 'E_MODEL_INVALID'), `code of ${String(err)}`);
          assert.match((err as Error).message, /trained on other features.*train-rank --cold/);
          return true;
        });
      }
    } finally {
      await cleanup();
    }
  });

  test('refuses NaN weights, wrong sizes and a broken manifest', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const store = new RankerModelStore(dir);
      const rng = new Rng(5);
      const a = await Ranker.create(config, rng);
      a.tables.item.weights[17] = Number.NaN;
      const v = await store.save(a, slots, {});
      await assert.rejects(store.load(v, rng), (err: unknown) => {
        assert.ok(isRecmasterError(err, 'E_MODEL_INVALID'), `code of ${String(err)}`);
        assert.match((err as Error).message, /not finite/);
        return true;
      });
      a.tables.item.weights[17] = 0;
      const ok = await store.save(a, slots, {});
      await writeFile(path.join(dir, ok, 'weights.bin'), Buffer.alloc(12));
      await assert.rejects(store.load(ok, rng), /weights.bin has 12 bytes/);
      await writeFile(path.join(dir, ok, 'model.json'), '{"format":"other"}');
      await assert.rejects(store.load(ok, rng), /E_MODEL_INVALID|format/);
      a.dispose();
    } finally {
      await cleanup();
    }
  });
});
