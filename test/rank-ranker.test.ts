import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { auc } from '../src/rank/metrics.js';
import { type RankExample, Ranker, type RankerConfig } from '../src/rank/ranker.js';
import { hashedRow } from '../src/util/embedding-table.js';
import { Rng } from '../src/util/rng.js';
import { tf } from '../src/util/tf.js';
import { smallRankerConfig } from './helpers.js';

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/**
 * Users like two of ten categories; an item's click probability rises with that and with an
 * observed quality feature, and falls with the position it is shown at.
 */
function world(seed: number) {
  const rng = new Rng(seed).fork('world');
  return {
    likes: Array.from({ length: 200 }, () => [rng.int(10), rng.int(10)]),
    quality: Array.from({ length: 400 }, () => rng.normal()),
  };
}

/** Logged impressions; `position` fixes the slot (else random in 0..9). */
function impressions(w: ReturnType<typeof world>, rng: Rng, n: number, fixedPosition?: number) {
  const { likes, quality } = w;
  const examples: RankExample[] = [];
  const clicked = new Float32Array(n);
  const watched = new Float32Array(n);
  const trueP0: number[] = [];
  for (let k = 0; k < n; k++) {
    const u = rng.int(200);
    const i = rng.int(400);
    const cat = i % 10;
    const position = fixedPosition ?? rng.int(10);
    const liked = (likes[u] as number[]).includes(cat) ? 1 : 0;
    const p0 = sigmoid(-2 + 3 * liked + 0.7 * (quality[i] as number));
    trueP0.push(p0);
    const click = rng.uniform() < p0 / Math.sqrt(1 + position) ? 1 : 0;
    clicked[k] = click;
    watched[k] = click ? 60 * (0.3 + 0.5 * liked) : 0;
    examples.push({
      userId: `u${u}`,
      itemId: `i${i}`,
      category: `c${cat}`,
      creator: `a${i % 37}`,
      tags: [`t${cat}-${i % 3}`],
      recentClicks: [],
      features: Float32Array.of(quality[i] as number, rng.normal()),
      position,
    });
  }
  return { examples, clicked, watched, trueP0 };
}

describe('ranker (hashed IDs + features + MMoE)', () => {
  test('learns click and watch from logged impressions; position is a training-time input', async () => {
    const rng = new Rng(21);
    const w = world(21);
    const train = impressions(w, rng.fork('train'), 20_000);
    const config = smallRankerConfig({
      idDim: 8,
      rows: { user: 512, item: 1024, category: 64, creator: 128, tag: 128 },
      featureWidth: 2,
      experts: 4,
      expertDim: 16,
      towerDim: 8,
    });
    const ranker = await Ranker.create(config, rng.fork('model'));
    try {
      const loss = await ranker.train(train.examples, train.clicked, train.watched, {
        epochs: 6,
        batchSize: 256,
        learningRate: 0.01,
        rng: rng.fork('fit'),
      });
      assert.ok(Number.isFinite(loss), `loss ${loss}`);
      // Held-out impressions of the same users and items, all shown first.
      const test = impressions(w, rng.fork('test'), 4000, 0);
      const held = test.examples;
      const scores = ranker.score(held);
      const truth = test.trueP0;
      const got = auc(
        scores.map((s) => s.click),
        test.clicked,
      );
      const oracle = auc(truth, test.clicked);
      // The quality feature alone: what a model that learned nothing from the IDs would get.
      const featureOnly = auc(
        held.map((e) => e.features[0] as number),
        test.clicked,
      );
      assert.ok(
        got > 0.85 * oracle && got > featureOnly + 0.05,
        `click AUC ${got}, oracle ${oracle}, quality feature alone ${featureOnly}`,
      );
      // Watch: liked items get more expected watch time.
      const likedWatch = scores
        .filter((_, k) => (truth[k] as number) > 0.5)
        .map((s) => s.watchSeconds);
      const otherWatch = scores
        .filter((_, k) => (truth[k] as number) <= 0.5)
        .map((s) => s.watchSeconds);
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      assert.ok(
        mean(likedWatch) > 2 * mean(otherWatch),
        `watch ${mean(likedWatch)} vs ${mean(otherWatch)}`,
      );
      // Position: the same impressions scored as if shown lower get a lower click probability.
      const [top] = ranker.predict(ranker.inputs(held, 0), held.length);
      const [low] = ranker.predict(ranker.inputs(held, 9), held.length);
      assert.ok(mean(Array.from(low)) < 0.8 * mean(Array.from(top)), 'a learned position bias');
      for (const s of scores)
        assert.ok(s.final >= 0 && Number.isFinite(s.final), `final ${s.final}`);
    } finally {
      ranker.dispose();
    }
  });

  test('serving, prediction and training compute the same inputs, as the tables train', async () => {
    const rng = new Rng(5);
    const config = smallRankerConfig({
      rows: { user: 64, item: 128, category: 16, creator: 32, tag: 32 },
    });
    const ranker = await Ranker.create(config, rng.fork('model'));
    const recentClicks = ['i7', 'i9', 'i11'];
    const examples: RankExample[] = Array.from({ length: 12 }, (_, k) => ({
      userId: 'u3',
      itemId: `i${k * 5}`,
      category: `c${k % 4}`,
      creator: `a${k % 3}`,
      tags: k % 2 === 0 ? [`t${k}`, 't1'] : [`t${k}`],
      recentClicks,
      features: Float32Array.of(k / 10, 1 - k / 10, k % 2),
      position: k,
    }));
    // What inputs() must hold: each slot the (mean of the) table rows its ids hash to.
    const expected = (e: RankExample): Float32Array => {
      const d = config.idDim;
      const out = new Float32Array(Ranker.inputWidth(config));
      const add = (slot: number, field: keyof RankerConfig['rows'], id: string, s: number) => {
        const w = ranker.tables[field].weights;
        const row = hashedRow(id, config.rows[field]) * d;
        for (let j = 0; j < d; j++)
          out[slot * d + j] = (out[slot * d + j] as number) + s * (w[row + j] as number);
      };
      add(0, 'user', e.userId, 1);
      for (const c of e.recentClicks) add(5, 'item', c, 1 / e.recentClicks.length);
      add(1, 'item', e.itemId, 1);
      add(2, 'category', e.category, 1);
      add(3, 'creator', e.creator, 1);
      for (const t of e.tags) add(4, 'tag', t, 1 / e.tags.length);
      out.set(e.features, 6 * d);
      out[out.length - 1] = Math.log1p(e.position);
      return out;
    };
    const width = Ranker.inputWidth(config);
    const checkInputs = () => {
      // Kept lookups (as the online trainer's holdout uses) and fresh ones give the same rows.
      const rows = ranker.inputs(examples, undefined, true);
      assert.deepEqual(ranker.inputs(examples), rows);
      examples.forEach((e, n) => {
        assert.deepEqual(rows.subarray(n * width, (n + 1) * width), expected(e), `example ${n}`);
      });
    };
    try {
      checkInputs();
      // A training step moves the rows these examples use: inputs() must follow the tables.
      const clicked = Float32Array.from(examples, (_, k) => k % 2);
      const watched = Float32Array.from(examples, (_, k) => (k % 2) * 30);
      await ranker.train(examples, clicked, watched, {
        epochs: 3,
        batchSize: 4,
        learningRate: 0.05,
        rng: rng.fork('fit'),
      });
      checkInputs();

      // Serving (scoreQuery) and score() give the same numbers for the same candidates.
      const served = ranker.scoreQuery({
        userId: 'u3',
        recentClicks,
        items: examples,
        features: Float32Array.from(examples.flatMap((e) => [...e.features])),
      });
      const scored = ranker.score(examples);
      served.forEach((s, k) => {
        const other = scored[k] as (typeof scored)[number];
        assert.ok(Math.abs(s.click - other.click) < 1e-6, `click ${s.click} vs ${other.click}`);
        assert.ok(Math.abs(s.watchSeconds - other.watchSeconds) < 1e-5, 'watch seconds');
      });

      // predict() adds the interaction products in plain code; training adds them in the graph.
      const rows = ranker.inputs(examples);
      const [click] = ranker.predict(rows, examples.length);
      const graph = tf.tidy(() => {
        const augment = (ranker as unknown as { augment(x: tf.Tensor2D): tf.Tensor2D }).augment;
        const x = augment.call(ranker, tf.tensor2d(rows, [examples.length, width]));
        const [c] = ranker.net.forward(x);
        return tf.sigmoid(c as tf.Tensor2D).dataSync() as Float32Array;
      });
      click.forEach((p, k) => {
        assert.ok(Math.abs(p - (graph[k] as number)) < 1e-6, `predict ${p} vs graph ${graph[k]}`);
      });
    } finally {
      ranker.dispose();
    }
  });
});
