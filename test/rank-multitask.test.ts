import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { auc, rmse } from '../src/rank/metrics.js';
import { type Architecture, MultiTaskNet } from '../src/rank/multitask.js';
import { Rng } from '../src/util/rng.js';

/** Two tasks on the same inputs: a click (Bernoulli of a logistic) and a watch value. */
function synthetic(n: number, w1: number[], w2: number[], rng: Rng) {
  const d = w1.length;
  const x = new Float32Array(n * d);
  const click = new Float32Array(n);
  const watch = new Float32Array(n);
  const trueP = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let a = 0;
    let b = 0;
    for (let j = 0; j < d; j++) {
      const v = rng.normal();
      x[i * d + j] = v;
      a += (w1[j] as number) * v;
      b += (w2[j] as number) * v;
    }
    const p = 1 / (1 + Math.exp(-(a + Math.sin(a))));
    trueP[i] = p;
    click[i] = rng.uniform() < p ? 1 : 0;
    watch[i] = Math.tanh(b) + 0.1 * rng.normal();
  }
  return { x, click, watch, trueP };
}

describe('multi-task network (MMoE, shared-bottom, single-task)', () => {
  const rng = new Rng(9);
  const d = 8;
  const w1 = Array.from({ length: d }, () => rng.normal());
  const w2 = Array.from({ length: d }, () => rng.normal());
  const train = synthetic(6000, w1, w2, rng.fork('train'));
  const testSet = synthetic(2000, w1, w2, rng.fork('test'));
  const meanWatch = train.watch.reduce((s, v) => s + v, 0) / train.watch.length;
  const baselineRmse = rmse(new Float32Array(testSet.watch.length).fill(meanWatch), testSet.watch);
  const oracleAuc = auc(testSet.trueP, testSet.click);

  for (const architecture of ['mmoe', 'shared_bottom', 'single_task'] as Architecture[]) {
    test(`${architecture} learns both tasks`, async () => {
      const net = await MultiTaskNet.create(
        {
          architecture,
          inputDim: d,
          experts: 4,
          expertDim: 16,
          towerDim: 8,
          tasks: ['logistic', 'mse'],
        },
        rng.fork(architecture),
      );
      try {
        const loss = await net.fit(train.x, 6000, [train.click, train.watch], {
          epochs: 10,
          batchSize: 256,
          learningRate: 0.01,
          rng: rng.fork(`${architecture}/fit`),
        });
        assert.ok(Number.isFinite(loss), `loss ${loss}`);
        const [p, w] = net.predict(testSet.x, 2000) as [Float32Array, Float32Array];
        const got = auc(p, testSet.click);
        assert.ok(got > 0.98 * oracleAuc, `${architecture}: AUC ${got}, oracle ${oracleAuc}`);
        const err = rmse(w, testSet.watch);
        assert.ok(
          err < 0.2 * baselineRmse,
          `${architecture}: RMSE ${err}, mean baseline ${baselineRmse}`,
        );
      } finally {
        net.dispose();
      }
    });
  }

  for (const architecture of ['mmoe', 'shared_bottom', 'single_task'] as Architecture[]) {
    test(`${architecture}: infer (serving, no gradients) gives forward's outputs`, async () => {
      const config = {
        architecture,
        inputDim: d,
        experts: 3,
        expertDim: 4,
        towerDim: 5,
        tasks: ['logistic', 'mse'] as const,
      };
      const made = await MultiTaskNet.create(
        { ...config, tasks: [...config.tasks] },
        rng.fork('a'),
      );
      // Non-zero biases (a new net's are zero), so the fused bias is exercised too.
      const r = rng.fork(`${architecture}/biases`);
      const weights = made.weights();
      for (const [name, w] of weights)
        if (name.endsWith('.b')) for (let k = 0; k < w.length; k++) w[k] = r.normal();
      made.dispose();
      const net = await MultiTaskNet.create({ ...config, tasks: [...config.tasks] }, rng, weights);
      try {
        const { tf } = await import('../src/util/tf.js');
        const n = 50;
        const x = testSet.x.subarray(0, n * d);
        const [slow, fast] = [net.forward, net.infer].map((f) =>
          tf.tidy(() =>
            f.call(net, tf.tensor2d(x, [n, d])).map((o) => o.dataSync() as Float32Array),
          ),
        ) as [Float32Array[], Float32Array[]];
        assert.equal(fast.length, 2);
        fast.forEach((out, k) => {
          const want = slow[k] as Float32Array;
          assert.equal(out.length, n);
          let spread = 0;
          for (let i = 0; i < n; i++) {
            spread = Math.max(spread, Math.abs((want[i] as number) - (want[0] as number)));
            assert.ok(
              Math.abs((out[i] as number) - (want[i] as number)) < 1e-5,
              `task ${k} row ${i}: ${out[i]} vs ${want[i]}`,
            );
          }
          assert.ok(spread > 1e-3, 'the outputs differ between rows (not a constant)');
        });
        // A non-finite input gives non-finite outputs (the guardrail relies on it), as forward().
        const broken = Float32Array.from(x.subarray(0, d));
        broken[0] = Number.NaN;
        for (const out of net.predict(broken, 1)) assert.ok(Number.isNaN(out[0]), 'NaN propagates');
      } finally {
        net.dispose();
      }
    });
  }

  test('MMoE gates are softmax mixtures over the experts', async () => {
    const net = await MultiTaskNet.create(
      {
        architecture: 'mmoe',
        inputDim: d,
        experts: 3,
        expertDim: 4,
        towerDim: 4,
        tasks: ['logistic', 'mse'],
      },
      rng.fork('gates'),
    );
    try {
      const { tf } = await import('../src/util/tf.js');
      const gates = net.gates(tf.tensor2d(testSet.x.subarray(0, 5 * d), [5, d]));
      assert.equal(gates.length, 2, 'one gate per task');
      for (const g of gates) {
        for (let r = 0; r < 5; r++) {
          const row = Array.from(g.subarray(r * 3, r * 3 + 3));
          assert.ok(Math.abs(row.reduce((s, v) => s + v, 0) - 1) < 1e-5, `row sums to 1: ${row}`);
        }
      }
      assert.throws(() => net.predict(new Float32Array(3), 1), /./, 'a wrong input width throws');
    } finally {
      net.dispose();
    }
  });

  test('early stopping ends training when the validation loss stops improving, at its best weights', async () => {
    // 300 noisy samples, a wide net and a high rate: it overfits within a few epochs.
    const small = synthetic(300, w1, w2, rng.fork('small'));
    const valid = synthetic(1000, w1, w2, rng.fork('valid'));
    const net = await MultiTaskNet.create(
      {
        architecture: 'mmoe',
        inputDim: d,
        experts: 4,
        expertDim: 32,
        towerDim: 16,
        tasks: ['logistic', 'mse'],
      },
      rng.fork('early'),
    );
    const { tf } = await import('../src/util/tf.js');
    try {
      const losses: number[] = [];
      await net.fit(small.x, 300, [small.click, small.watch], {
        epochs: 60,
        batchSize: 32,
        learningRate: 0.03,
        rng: rng.fork('early-fit'),
        validation: {
          x: valid.x,
          n: 1000,
          targets: [valid.click, valid.watch],
          patience: 3,
          onEpoch: (_, loss) => losses.push(loss),
        },
      });
      assert.ok(losses.length < 60, `stopped early (${losses.length} epochs)`);
      const bestEpoch = losses.indexOf(Math.min(...losses));
      assert.equal(losses.length, bestEpoch + 4, 'stopped 3 epochs after the best');
      const after = tf.tidy(
        () =>
          net
            .loss(tf.tensor2d(valid.x, [1000, d]), [
              tf.tensor2d(valid.click, [1000, 1]),
              tf.tensor2d(valid.watch, [1000, 1]),
            ])
            .dataSync()[0] as number,
      );
      assert.ok(
        Math.abs(after - (losses[bestEpoch] as number)) < 1e-5,
        `keeps the best epoch's weights: ${after} vs best ${losses[bestEpoch]}, last ${losses.at(-1)}`,
      );
      assert.ok(
        (losses.at(-1) as number) > (losses[bestEpoch] as number),
        'the last epoch was worse',
      );
    } finally {
      net.dispose();
    }
  });
});
