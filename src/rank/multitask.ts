// The dense multi-task part of the ranker, in three architectures under one code path:
//
//   mmoe           E shared experts (ReLU layers) and one softmax gate per task over them;
//                  each task's tower sees its own mixture Σ_e g_t(x)_e · expert_e(x)
//                  (Ma et al., KDD 2018)
//   shared_bottom  one shared ReLU layer as wide as all experts together, then the towers
//   single_task    a separate bottom (as wide as one expert set) for each task
//
// Each task has a tower (ReLU layer, then one output). A task's loss is 'logistic' (sigmoid
// cross-entropy, for click-through) or 'mse' (for a transformed regression target such as
// log1p of watch seconds). Inputs are dense rows; the sparse ID embeddings in front of this
// network are looked up by the caller.

import { allFinite } from '../util/finite.js';
import type { Rng } from '../util/rng.js';
import { matMul, tf, useWasmBackend } from '../util/tf.js';

export type Architecture = 'mmoe' | 'shared_bottom' | 'single_task';
export type TaskLoss = 'logistic' | 'mse';

export interface MultiTaskConfig {
  architecture: Architecture;
  inputDim: number;
  experts: number;
  expertDim: number;
  towerDim: number;
  tasks: readonly TaskLoss[];
}

export interface FitOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** Weight of each task's loss in the sum. Default 1 each. */
  taskWeights?: readonly number[];
  rng: Rng;
  onEpoch?: (epoch: number, loss: number) => void;
  /**
   * Early stopping: after each epoch the (weighted) loss on these rows is measured; training
   * stops once it has not improved for `patience` epochs, and the net keeps the weights of
   * its best epoch.
   */
  validation?: ValidationSet;
}

export interface ValidationSet {
  x: Float32Array;
  n: number;
  targets: readonly Float32Array[];
  patience: number;
  /** Called after each epoch with the validation loss. */
  onEpoch?: (epoch: number, loss: number) => void;
}

type Params = Record<string, tf.Variable>;

/** One epoch's mini-batches: `order` (row indexes) reshuffled in place, in slices of `batchSize`. */
export function* shuffledBatches(
  order: number[],
  batchSize: number,
  rng: Rng,
): Generator<number[]> {
  rng.shuffle(order);
  for (let start = 0; start < order.length; start += batchSize)
    yield order.slice(start, start + batchSize);
}

export class MultiTaskNet {
  readonly config: MultiTaskConfig;
  private readonly params: Params = {};

  private constructor(
    config: MultiTaskConfig,
    rng: Rng,
    weights?: ReadonlyMap<string, Float32Array>,
  ) {
    this.config = config;
    const { inputDim: d, experts: E, expertDim: h, towerDim: t } = config;
    const dense = (name: string, rows: number, cols: number) => {
      const s = Math.sqrt(2 / (rows + cols));
      const given = (key: string, length: number) => {
        const w = weights?.get(key);
        if (!weights) return undefined;
        if (!w) throw new Error(`multi-task net: no weights for ${key}`);
        if (w.length !== length)
          throw new Error(`multi-task net: ${key} has ${w.length} values, expected ${length}`);
        if (!allFinite(w)) throw new Error(`multi-task net: ${key} is not finite`);
        return w;
      };
      const w =
        given(`${name}.w`, rows * cols) ??
        Float32Array.from({ length: rows * cols }, () => s * rng.normal());
      this.params[`${name}.w`] = tf.variable(tf.tensor2d(w, [rows, cols]));
      const b = given(`${name}.b`, cols);
      this.params[`${name}.b`] = tf.variable(b ? tf.tensor1d(b) : tf.zeros([cols]));
    };
    const tasks = config.tasks.length;
    if (config.architecture === 'single_task') {
      for (let k = 0; k < tasks; k++) dense(`bottom${k}`, d, E * h);
    } else {
      // MMoE's experts are one matmul ([d, E·h]), sliced per expert; shared-bottom is the same layer.
      dense('bottom', d, E * h);
    }
    for (let k = 0; k < tasks; k++) {
      if (config.architecture === 'mmoe') dense(`gate${k}`, d, E);
      dense(`tower${k}`, config.architecture === 'mmoe' ? h : E * h, t);
      dense(`out${k}`, t, 1);
    }
  }

  /** A new net: random weights from `rng`, or the given ones (shapes and finiteness checked). */
  static async create(
    config: MultiTaskConfig,
    rng: Rng,
    weights?: ReadonlyMap<string, Float32Array>,
  ): Promise<MultiTaskNet> {
    if (config.tasks.length === 0) throw new Error('a multi-task net needs at least one task');
    await useWasmBackend();
    if (weights) {
      const unknown = [...weights.keys()].filter(
        (k) => !MultiTaskNet.weightNames(config).includes(k),
      );
      if (unknown.length > 0)
        throw new Error(`multi-task net: unknown weights ${unknown.join(', ')}`);
    }
    return new MultiTaskNet(config, rng, weights);
  }

  /** The names of the weights a net of this config has, in a stable order. */
  static weightNames(config: MultiTaskConfig): string[] {
    const layers: string[] = [];
    if (config.architecture === 'single_task')
      for (let k = 0; k < config.tasks.length; k++) layers.push(`bottom${k}`);
    else layers.push('bottom');
    config.tasks.forEach((_, k) => {
      if (config.architecture === 'mmoe') layers.push(`gate${k}`);
      layers.push(`tower${k}`, `out${k}`);
    });
    return layers.flatMap((l) => [`${l}.w`, `${l}.b`]);
  }

  /** A copy of every weight, by name (weightNames order). */
  weights(): Map<string, Float32Array> {
    return new Map(
      MultiTaskNet.weightNames(this.config).map((n) => [
        n,
        (this.params[n] as tf.Variable).dataSync() as Float32Array,
      ]),
    );
  }

  /** One logit (logistic tasks) or prediction (mse tasks) per task: [n, 1] each. */
  forward(x: tf.Tensor2D): tf.Tensor2D[] {
    const p = this.params;
    return this.run(x, (input, name) =>
      matMul(input, p[`${name}.w`] as tf.Tensor).add(p[`${name}.b`] as tf.Tensor),
    );
  }

  /**
   * forward() without gradients (serving, evaluation): each layer's product and bias are one
   * fused kernel, and no custom-gradient wrapper. Scoring 500 candidates spent most of its
   * time launching kernels, not computing (measured). The same numbers up to float rounding.
   * (The kernel's fused ReLU is not used: it turns NaN into 0, and a broken model must score
   * NaN, as the online trainer's guardrail expects.)
   */
  infer(x: tf.Tensor2D): tf.Tensor2D[] {
    const p = this.params;
    return this.run(x, (input, name) =>
      tf.fused.matMul({
        a: input,
        b: p[`${name}.w`] as tf.Tensor2D,
        bias: p[`${name}.b`] as tf.Tensor,
      }),
    );
  }

  /** The network over a dense layer's product-plus-bias (forward's or infer's). */
  private run(
    x: tf.Tensor2D,
    affine: (input: tf.Tensor2D, name: string) => tf.Tensor,
  ): tf.Tensor2D[] {
    const layer = (input: tf.Tensor2D, name: string, relu: boolean) => {
      const y = affine(input, name) as tf.Tensor2D;
      return relu ? tf.relu(y) : y;
    };
    const { experts: E, expertDim: h, architecture } = this.config;
    const n = x.shape[0];
    const shared = architecture === 'single_task' ? null : layer(x, 'bottom', true);
    return this.config.tasks.map((_, k) => {
      let towerIn: tf.Tensor2D;
      if (architecture === 'single_task') towerIn = layer(x, `bottom${k}`, true);
      else if (architecture === 'shared_bottom') towerIn = shared as tf.Tensor2D;
      else {
        const gate = tf.softmax(layer(x, `gate${k}`, false)); // [n, E]
        const experts = (shared as tf.Tensor2D).reshape([n, E, h]);
        towerIn = experts.mul(gate.reshape([n, E, 1])).sum(1) as tf.Tensor2D;
      }
      return layer(layer(towerIn, `tower${k}`, true), `out${k}`, false);
    });
  }

  /** The gates' mixtures for inspection (MMoE only): one [n, experts] array per task. */
  gates(x: tf.Tensor2D): Float32Array[] {
    if (this.config.architecture !== 'mmoe') return [];
    return tf.tidy(() =>
      this.config.tasks.map((_, k) => {
        const p = this.params;
        const logits = matMul(x, p[`gate${k}.w`] as tf.Tensor).add(p[`gate${k}.b`] as tf.Tensor);
        return tf.softmax(logits).dataSync() as Float32Array;
      }),
    );
  }

  /** Predictions as numbers: probabilities for logistic tasks, raw values for mse tasks. */
  predict(x: Float32Array, n: number): Float32Array[] {
    const out: Float32Array[] = [];
    // Arrays leave tidy() through `out`: returning them makes tidy scan every element.
    tf.tidy(() => {
      const outs = this.infer(tf.tensor2d(x, [n, this.config.inputDim]));
      outs.forEach((o, k) => {
        const y = this.config.tasks[k] === 'logistic' ? tf.sigmoid(o) : o;
        out.push(y.dataSync() as Float32Array);
      });
    });
    return out;
  }

  /** The trainable weights (for training loops that also train inputs, like embeddings). */
  get variables(): tf.Variable[] {
    return Object.values(this.params);
  }

  /** The weighted sum of the task losses on a batch ([n, inputDim] rows, [n, 1] targets). */
  loss(
    x: tf.Tensor2D,
    targets: readonly tf.Tensor2D[],
    taskWeights?: readonly number[],
  ): tf.Scalar {
    const outs = this.forward(x);
    let sum: tf.Tensor = tf.scalar(0);
    outs.forEach((o, k) => {
      const y = targets[k] as tf.Tensor2D;
      const l =
        this.config.tasks[k] === 'logistic'
          ? tf.losses.sigmoidCrossEntropy(y, o)
          : tf.losses.meanSquaredError(y, o);
      sum = sum.add(l.mul(taskWeights?.[k] ?? 1));
    });
    return sum as tf.Scalar;
  }

  /** Mini-batch Adam on rows `x` ([n, inputDim]) with one target array per task. */
  async fit(x: Float32Array, n: number, targets: readonly Float32Array[], opts: FitOptions) {
    const d = this.config.inputDim;
    checkRows('fit', x, n, targets, d, this.config.tasks.length);
    const optimizer = tf.train.adam(opts.learningRate);
    const weights = opts.taskWeights ?? this.config.tasks.map(() => 1);
    const order = Array.from({ length: n }, (_, i) => i);
    const valid = opts.validation;
    if (valid)
      checkRows('validation', valid.x, valid.n, valid.targets, d, this.config.tasks.length);
    let best: { loss: number; epoch: number; weights: Map<string, Float32Array> | null } = {
      loss: Number.POSITIVE_INFINITY,
      epoch: -1,
      weights: null,
    };
    let last = Number.NaN;
    try {
      for (let epoch = 0; epoch < opts.epochs; epoch++) {
        let total = 0;
        let batches = 0;
        for (const idx of shuffledBatches(order, opts.batchSize, opts.rng)) {
          const bx = new Float32Array(idx.length * d);
          idx.forEach((row, r) => {
            bx.set(x.subarray(row * d, (row + 1) * d), r * d);
          });
          const by = targets.map((t) => Float32Array.from(idx, (row) => t[row] as number));
          const loss = optimizer.minimize(
            () =>
              this.loss(
                tf.tensor2d(bx, [idx.length, d]),
                by.map((t) => tf.tensor2d(t, [idx.length, 1])),
                weights,
              ),
            true,
            this.variables,
          );
          if (!loss) throw new Error('the optimiser returned no loss');
          total += (await loss.data())[0] as number;
          loss.dispose();
          batches += 1;
        }
        last = total / batches;
        if (!Number.isFinite(last))
          throw new Error(`training diverged (loss ${last}) in epoch ${epoch}`);
        opts.onEpoch?.(epoch, last);
        if (valid) {
          const loss = this.validationLoss(valid, weights);
          valid.onEpoch?.(epoch, loss);
          if (loss < best.loss) best = { loss, epoch, weights: this.weights() };
          else if (epoch - best.epoch >= valid.patience) break;
        }
      }
    } finally {
      optimizer.dispose();
    }
    if (best.weights) this.assign(best.weights);
    return last;
  }

  private validationLoss(valid: ValidationSet, taskWeights: readonly number[]): number {
    return tf.tidy(() => {
      const x = tf.tensor2d(valid.x, [valid.n, this.config.inputDim]);
      const y = valid.targets.map((t) => tf.tensor2d(t, [valid.n, 1]));
      return this.loss(x, y, taskWeights).dataSync()[0] as number;
    });
  }

  /** Sets every weight (same names and sizes as weights()). */
  private assign(weights: ReadonlyMap<string, Float32Array>): void {
    for (const [name, w] of weights) {
      const v = this.params[name] as tf.Variable;
      tf.tidy(() => v.assign(tf.tensor(w, v.shape)));
    }
  }

  dispose(): void {
    tf.dispose(Object.values(this.params));
  }
}

function checkRows(
  what: string,
  x: Float32Array,
  n: number,
  targets: readonly Float32Array[],
  d: number,
  tasks: number,
): void {
  if (x.length !== n * d) throw new Error(`${what}: x has ${x.length} values, expected ${n}×${d}`);
  if (targets.length !== tasks || targets.some((t) => t.length !== n))
    throw new Error(`${what}: need ${tasks} target arrays of ${n} values`);
}
