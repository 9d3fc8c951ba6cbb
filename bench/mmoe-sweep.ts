// The MMoE paper's synthetic experiment on the simulator (Ma et al., KDD 2018, section 4):
// two tasks whose linear parts have a chosen cosine similarity (the simulator's
// taskCorrelation knob), plus the same sin terms. Inputs are x = [u ⊙ v ; quality] of random
// (user, item) pairs; task 1 is a click drawn from the true click probability (logistic loss,
// AUC), task 2 the true watch ratio plus noise (squared loss, RMSE against the noiseless truth).
// MMoE and shared-bottom get the same width (unless sharedBottomWidth says otherwise) and the
// same epochs, or, with `patience`, each stops early on its own held-out samples.
// Used by npm run eval:mmoe-synthetic and npm run eval:rank.
import { auc, rmse } from '../src/rank/metrics.js';
import { type Architecture, MultiTaskNet } from '../src/rank/multitask.js';
import { Simulator, sigmoid, TRUTH } from '../src/sim/index.js';
import { Rng } from '../src/util/rng.js';

export interface SweepOptions {
  samples: number;
  epochs: number;
  seeds: number;
  experts: number;
  expertDim: number;
  /** Shared-bottom's layer width; default experts × expertDim (the same width as MMoE's experts). */
  sharedBottomWidth?: number;
  /** Seeds are seedBase, seedBase + 1, …; default 100. */
  seedBase?: number;
  correlations?: readonly number[];
  /**
   * Early stopping: hold out the last 10 % of the training samples and stop each model once
   * their loss has not improved for this many epochs (`epochs` is then the most it trains).
   * Default: none, every model trains `epochs` epochs.
   */
  patience?: number;
  onRow?: (row: Row) => void;
}

/** A base click rate of about 25 %, so every task has enough positives to learn from. */
const CLICK_INTERCEPT = -1;

function dataset(correlation: number, seed: number, n: number) {
  const sim = new Simulator({ seed, taskCorrelation: correlation, users: 2000, items: 5000 });
  const { world, truth } = sim;
  const d = world.dim + 1;
  const rng = new Rng(seed).fork('mmoe-synthetic');
  const x = new Float32Array(n * d);
  const click = new Float32Array(n);
  const watch = new Float32Array(n);
  const watchTrue = new Float32Array(n);
  const t = sim.config.startTime;
  for (let i = 0; i < n; i++) {
    const u = rng.int(world.userCount);
    const it = rng.int(world.itemCount);
    const uv = world.interestAt(u, t);
    const item = world.item(it);
    for (let j = 0; j < world.dim; j++) x[i * d + j] = (uv[j] as number) * (item.v[j] as number);
    x[i * d + world.dim] = item.quality;
    const { a1 } = truth.signalsIdx(u, it, t);
    const p = sigmoid(CLICK_INTERCEPT + TRUTH.sCtr * a1 + TRUTH.sQ * item.quality);
    click[i] = rng.uniform() < p ? 1 : 0;
    const ratio = truth.watchRatioIdx(u, it, t);
    watchTrue[i] = ratio;
    watch[i] = ratio + 0.1 * rng.normal();
  }
  return { x, click, watch, watchTrue, d };
}

export interface Row {
  correlation: number;
  mmoe_auc: number;
  shared_bottom_auc: number;
  mmoe_watch_rmse: number;
  shared_bottom_watch_rmse: number;
  /**
   * MMoE minus shared-bottom, seed by seed (both see the same data): the mean and its standard
   * error over the seeds (null with one seed). AUC below 0 or RMSE above 0: MMoE is worse.
   */
  auc_diff: { mean: number; se: number | null };
  watch_rmse_diff: { mean: number; se: number | null };
}

function meanAndSe(xs: readonly number[]): { mean: number; se: number | null } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  if (xs.length < 2) return { mean: Number(mean.toFixed(4)), se: null };
  const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1);
  return { mean: Number(mean.toFixed(4)), se: Number(Math.sqrt(variance / xs.length).toFixed(4)) };
}

export async function correlationSweep(opts: SweepOptions): Promise<Row[]> {
  const sweep: Row[] = [];
  for (const correlation of opts.correlations ?? [1, 0.9, 0.5, 0]) {
    const sums = { mmoe: { auc: 0, rmse: 0 }, shared_bottom: { auc: 0, rmse: 0 } };
    const aucDiffs: number[] = [];
    const rmseDiffs: number[] = [];
    for (let s = 0; s < opts.seeds; s++) {
      const seed = (opts.seedBase ?? 100) + s;
      const train = dataset(correlation, seed, opts.samples);
      const test = dataset(correlation, seed + 1000, Math.round(opts.samples / 4));
      const nTest = test.click.length;
      const scored: Record<string, { auc: number; rmse: number }> = {};
      for (const architecture of ['mmoe', 'shared_bottom'] as Architecture[]) {
        const net = await MultiTaskNet.create(
          {
            architecture,
            inputDim: train.d,
            // Shared-bottom's one layer is experts × expertDim wide: width W as 1 × W.
            experts: architecture === 'mmoe' || !opts.sharedBottomWidth ? opts.experts : 1,
            expertDim:
              architecture === 'mmoe' || !opts.sharedBottomWidth
                ? opts.expertDim
                : opts.sharedBottomWidth,
            towerDim: 8,
            tasks: ['logistic', 'mse'],
          },
          new Rng(seed).fork(architecture),
        );
        const nFit = opts.patience ? Math.round(opts.samples * 0.9) : opts.samples;
        const rows = (a: Float32Array, from: number, to: number) =>
          a.subarray(from * (a.length / opts.samples), to * (a.length / opts.samples));
        await net.fit(
          rows(train.x, 0, nFit),
          nFit,
          [rows(train.click, 0, nFit), rows(train.watch, 0, nFit)],
          {
            epochs: opts.epochs,
            batchSize: 256,
            learningRate: 0.005,
            rng: new Rng(seed).fork(`${architecture}/fit`),
            ...(opts.patience
              ? {
                  validation: {
                    x: rows(train.x, nFit, opts.samples),
                    n: opts.samples - nFit,
                    targets: [
                      rows(train.click, nFit, opts.samples),
                      rows(train.watch, nFit, opts.samples),
                    ],
                    patience: opts.patience,
                  },
                }
              : {}),
          },
        );
        const [p, w] = net.predict(test.x, nTest) as [Float32Array, Float32Array];
        const result = { auc: auc(p, test.click), rmse: rmse(w, test.watchTrue) };
        scored[architecture] = result;
        sums[architecture as 'mmoe' | 'shared_bottom'].auc += result.auc / opts.seeds;
        sums[architecture as 'mmoe' | 'shared_bottom'].rmse += result.rmse / opts.seeds;
        net.dispose();
      }
      const { mmoe, shared_bottom } = scored as Record<
        'mmoe' | 'shared_bottom',
        { auc: number; rmse: number }
      >;
      aucDiffs.push(mmoe.auc - shared_bottom.auc);
      rmseDiffs.push(mmoe.rmse - shared_bottom.rmse);
    }
    const row: Row = {
      correlation,
      mmoe_auc: Number(sums.mmoe.auc.toFixed(4)),
      shared_bottom_auc: Number(sums.shared_bottom.auc.toFixed(4)),
      mmoe_watch_rmse: Number(sums.mmoe.rmse.toFixed(4)),
      shared_bottom_watch_rmse: Number(sums.shared_bottom.rmse.toFixed(4)),
      auc_diff: meanAndSe(aucDiffs),
      watch_rmse_diff: meanAndSe(rmseDiffs),
    };
    opts.onRow?.(row);
    sweep.push(row);
  }

  return sweep;
}
