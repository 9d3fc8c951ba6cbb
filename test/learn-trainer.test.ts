import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isRecmasterError } from '../src/errors.js';
import type { LabelledSample } from '../src/events/schemas.js';
import { trainOffline } from '../src/learn/offline-train.js';
import { OnlineTrainer } from '../src/learn/online-trainer.js';
import { examplesOf } from '../src/learn/samples.js';
import { FeatureVectorizer } from '../src/rank/feature-vector.js';
import { RankerModelStore } from '../src/rank/model-store.js';
import { Ranker } from '../src/rank/ranker.js';
import { Rng } from '../src/util/rng.js';
import { smallRankerConfig, tempDir } from './helpers.js';

const vectorizer = new FeatureVectorizer();
const config = smallRankerConfig({
  rows: { user: 256, item: 512, category: 32, creator: 64, tag: 64 },
  featureWidth: vectorizer.width,
  expertDim: 8,
});

/** Users like 2 of 8 categories; a liked item is clicked 60 % of the time, others 5 %. */
function samples(seed: number, n: number, from = 0): LabelledSample[] {
  const world = new Rng(99).fork('likes');
  const likes = Array.from({ length: 100 }, () => [world.int(8), world.int(8)]);
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, k) => {
    const u = rng.int(100);
    const cat = rng.int(8);
    const liked = (likes[u] as number[]).includes(cat);
    const clicked = rng.uniform() < (liked ? 0.6 : 0.05);
    const features: Record<string, number | string[]> = {};
    for (const s of vectorizer.slots) features[s.name] = 0;
    features['item.category'] = [`c${cat}`];
    features['item.creator'] = [`a${rng.int(20)}`];
    features['item.tags'] = [`t${cat}`];
    features['ctx.recent_clicks'] = [];
    const ts = 1_000_000 + (from + k) * 1000;
    return {
      id: `s:${from + k}`,
      ts,
      type: 'sample' as const,
      impressionId: `imp${from + k}`,
      impressionTs: ts,
      requestId: `r${from + k}`,
      userId: `u${u}`,
      itemId: `i${rng.int(300)}`,
      position: 0,
      modelVersion: 'bootstrap',
      clicked,
      watchedS: clicked ? 30 : 0,
      features,
    };
  });
}

describe('ranker training from samples', () => {
  test('offline: early stopping keeps the best epoch; the model learns the users’ tastes', async () => {
    const result = await trainOffline(samples(1, 8000), vectorizer, {
      config,
      rng: new Rng(2),
      maxEpochs: 12,
      // This small net can sit near AUC 0.5 for a few epochs before it finds the tastes.
      patience: 5,
      learningRate: 0.01,
    });
    // The oracle (true probabilities 0.6 / 0.05) gets about 0.84 on such data.
    assert.ok(result.validationAuc > 0.7, `validation AUC ${result.validationAuc}`);
    assert.ok(result.bestEpoch >= 1 && result.bestEpoch <= result.epochs, 'best epoch in range');
    assert.equal(result.trainSamples + result.validationSamples, 8000);
    result.ranker.dispose();
    await assert.rejects(
      trainOffline(samples(1, 50), vectorizer, { config, rng: new Rng(2) }),
      /need at least 100/,
    );
  });

  test('offline: early stopping on both tasks’ validation loss keeps the epoch with the lowest', async () => {
    const losses = new Map<number, number>();
    const result = await trainOffline(samples(1, 4000), vectorizer, {
      config,
      rng: new Rng(2),
      maxEpochs: 6,
      patience: 2,
      learningRate: 0.01,
      stopOn: 'loss',
      onEpoch: (e) => losses.set(e.epoch, e.validationLoss as number),
    });
    try {
      assert.ok([...losses.values()].every(Number.isFinite), 'a validation loss every epoch');
      if (result.bestEpoch > 0) {
        const best = losses.get(result.bestEpoch) as number;
        assert.equal(best, Math.min(...losses.values()), `best epoch ${result.bestEpoch}`);
      }
      // The model returned is the best epoch's: its validation loss is the one recorded then.
      const valid = samples(1, 4000)
        .sort((a, b) => a.impressionTs - b.impressionTs)
        .slice(3600);
      const data = examplesOf(vectorizer, valid);
      const again = result.ranker.loss(data.examples, data.clicked, data.watchedS);
      if (result.bestEpoch > 0)
        assert.ok(Math.abs(again - (losses.get(result.bestEpoch) as number)) < 1e-5, `${again}`);
    } finally {
      result.ranker.dispose();
    }
  });

  test('online: refuses to continue a serving version trained on other feature slots', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const store = new RankerModelStore(dir);
      const old = await Ranker.create(config, new Rng(4));
      const slots = vectorizer.slotNames;
      await store.save(old, [...slots.slice(0, -1), 'user.a_feature_since_removed'], {});
      old.dispose();
      await assert.rejects(
        OnlineTrainer.open({ store, vectorizer, rng: new Rng(3) }),
        (err: unknown) => {
          assert.ok(isRecmasterError(err, 'E_MODEL_INVALID'), `code of ${String(err)}`);
          assert.match((err as Error).message, /a_feature_since_removed.*train-rank --cold/);
          return true;
        },
      );
    } finally {
      await cleanup();
    }
  });

  test('online: a version every 100 samples; the guardrail refuses a broken step and keeps the last good one', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const store = new RankerModelStore(dir);
      const trainer = await OnlineTrainer.open(
        { store, vectorizer, rng: new Rng(3), stepEvery: 100, holdoutEvery: 10, minHoldout: 50 },
        () => Ranker.create(config, new Rng(4)),
      );
      const published: string[] = [];
      for (const s of samples(5, 1000)) {
        for (const step of await trainer.add(s)) if (step.version) published.push(step.version);
      }
      // 1000 samples, about 10 % held out: 9 steps of 100.
      assert.ok(published.length >= 8 && published.length <= 9, `published ${published}`);
      assert.equal(await store.current(), published.at(-1));
      const stats = trainer.stats();
      assert.ok(stats.holdout > 50, `holdout ${stats.holdout}`);

      // Poison the working model: the next step yields non-finite weights and is refused.
      trainer.model.tables.user.weights.fill(Number.NaN);
      let refused: string | null = null;
      for (const s of samples(6, 300, 5000)) {
        const [step] = await trainer.add(s);
        if (step?.refused) {
          refused = step.refused;
          break;
        }
      }
      assert.match(refused ?? '', /non-finite|training failed/, 'the broken step is refused');
      assert.equal(await store.current(), published.at(-1), 'the last good version still serves');
      // Learning goes on from the good weights.
      let next: string | null = null;
      for (const s of samples(7, 300, 9000)) {
        const [step] = await trainer.add(s);
        if (step?.version) {
          next = step.version;
          break;
        }
      }
      assert.ok(next !== null, 'publishes again after a refusal');
      const loaded = await store.loadCurrent(new Rng(1));
      assert.ok(loaded, 'the new version loads (finite, right shapes)');
      loaded?.ranker.dispose();
      trainer.dispose();
    } finally {
      await cleanup();
    }
  });

  test('with a label delay, samples are learned from once final, in impression order', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const trainer = await OnlineTrainer.open(
        {
          store: new RankerModelStore(dir),
          vectorizer,
          rng: new Rng(3),
          stepEvery: 20,
          holdoutEvery: 1_000_000_000,
          labelDelayMs: 10_000,
        },
        () => Ranker.create(config, new Rng(4)),
      );
      const batch = samples(8, 40); // impressions 1 s apart, each arriving at its own time
      let steps = 0;
      for (const s of batch.slice(0, 10)) steps += (await trainer.add(s)).length;
      assert.equal(steps, 0, 'nothing is final within the delay');
      assert.equal(trainer.stats().waiting, 10);
      for (const s of batch.slice(10)) steps += (await trainer.add(s)).length;
      // The 40th sample arrives at +39 s: impressions up to +29 s are final (30 samples).
      assert.equal(trainer.stats().samples, 30, 'samples released once 10 s old');
      assert.equal(steps, 1, 'one step of 20');
      trainer.dispose();
    } finally {
      await cleanup();
    }
  });

  test('a label delay that is not a number >= 0 is refused (NaN would hold every sample)', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      for (const labelDelayMs of [Number.NaN, -1, Number.POSITIVE_INFINITY]) {
        await assert.rejects(
          OnlineTrainer.open(
            { store: new RankerModelStore(dir), vectorizer, rng: new Rng(3), labelDelayMs },
            () => Ranker.create(config, new Rng(4)),
          ),
          /E_CONFIG|labelDelayMs must be a number >= 0/,
        );
      }
    } finally {
      await cleanup();
    }
  });
});
