import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LabelledSample } from '../src/events/schemas.js';
import { OnlineTrainer } from '../src/learn/online-trainer.js';
import { LearningLoop } from '../src/loop/learning-loop.js';
import { FeatureVectorizer } from '../src/rank/feature-vector.js';
import { RankerModelStore } from '../src/rank/model-store.js';
import { Ranker } from '../src/rank/ranker.js';
import { Rng } from '../src/util/rng.js';
import { smallRankerConfig, tempDir } from './helpers.js';

const vectorizer = new FeatureVectorizer();
const config = smallRankerConfig({
  rows: { user: 64, item: 64, category: 8, creator: 8, tag: 8 },
  featureWidth: vectorizer.width,
  expertDim: 4,
});

/** Impression i at 1 s × i; a click's label arrives 5 s after it, a non-click's 60 s after. */
function sample(i: number, clicked: boolean): LabelledSample {
  const features: Record<string, number | string[]> = {};
  for (const s of vectorizer.slots) features[s.name] = 0;
  features['item.category'] = ['c1'];
  const impressionTs = 1_000_000 + i * 1000;
  return {
    id: `s:${i}`,
    ts: impressionTs + (clicked ? 5_000 : 60_000),
    type: 'sample',
    impressionId: `imp${i}`,
    impressionTs,
    requestId: `r${i}`,
    userId: `u${i % 7}`,
    itemId: `i${i % 11}`,
    position: 0,
    modelVersion: 'v1',
    clicked,
    watchedS: clicked ? 10 : 0,
    features,
    scores: { click: i / 100 },
  };
}

async function loopWith(finalAfterMs: number) {
  const { dir, cleanup } = await tempDir();
  const trainer = await OnlineTrainer.open(
    { store: new RankerModelStore(dir), vectorizer, rng: new Rng(1), stepEvery: 1000 },
    () => Ranker.create(config, new Rng(2)),
  );
  const frozen = await Ranker.create(config, new Rng(3));
  const loop = new LearningLoop(trainer, frozen, null, vectorizer, 0.5, {
    finalAfterMs,
    clickTruth: (s) => (s.clicked ? 0.9 : 0.1),
  });
  return {
    loop,
    done: async () => {
      trainer.dispose();
      frozen.dispose();
      await cleanup();
    },
  };
}

describe('learning loop', () => {
  test('with finalAfterMs, samples are scored once final, in impression order', async () => {
    const { loop, done } = await loopWith(60_000);
    try {
      // Arrival order: clicks of impressions 0–9 first, then non-clicks as their windows close.
      const arrivals = [sample(3, true), sample(7, true)];
      for (let i = 0; i < 10; i++) if (i !== 3 && i !== 7) arrivals.push(sample(i, false));
      await loop.learn(arrivals.slice(0, 2));
      assert.equal(loop.history().length, 0, 'a click waits until a sample 60 s newer arrives');
      await loop.learn(arrivals.slice(2, 5)); // non-clicks of impressions 0, 1, 2: newest 62 s
      assert.deepEqual(
        loop.history().map((s) => s.ts - 1_000_000),
        [0, 1000, 2000],
        'final samples released, in impression order; 3 (clicked) waits for a sample at 63 s',
      );
      await loop.learn(arrivals.slice(5));
      assert.deepEqual(
        loop.history().map((s) => (s.ts - 1_000_000) / 1000),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
      const h = loop.history();
      assert.equal(h[3]?.clicked, 1);
      assert.equal(h[3]?.truth, 0.9, 'the true probability is kept');
      assert.equal(h[3]?.served, 0.03, 'so is the score the serving model logged');
      assert.equal(loop.stats().samples, 10);
    } finally {
      await done();
    }
  });

  test('the end of the input releases what waits; without finalAfterMs samples go as they come', async () => {
    const held = await loopWith(60_000);
    try {
      await held.loop.learn([sample(5, true), sample(2, true)]);
      assert.equal(held.loop.history().length, 0);
      await held.loop.learn([], true);
      assert.deepEqual(
        held.loop.history().map((s) => s.ts - 1_000_000),
        [2000, 5000],
      );
    } finally {
      await held.done();
    }
    const direct = await loopWith(0);
    try {
      await direct.loop.learn([sample(5, true), sample(2, true)]);
      assert.deepEqual(
        direct.loop.history().map((s) => s.ts - 1_000_000),
        [5000, 2000],
        'arrival order',
      );
    } finally {
      await direct.done();
    }
    await assert.rejects(loopWith(Number.NaN), /finalAfterMs must be a number >= 0/);
  });
});
