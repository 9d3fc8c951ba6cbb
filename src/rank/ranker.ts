// The ranker: sparse hashed ID embeddings (user, item, category, creator, tags) with row-wise
// Adagrad, the mean embedding of the user's recent clicks (the item table, pooled), the
// real-time feature vector (feature-vector.ts), and the request position, into the multi-task
// network (multitask.ts) with a click task and a watch task.
//
// - Explicit interactions: dot products of the user's and its recent clicks' embeddings with the
//   item's (ID, category, creator, tags) join the input, computed in the graph so they train the
//   embeddings: an MLP over concatenated embeddings learns such products poorly (Rendle et al.,
//   2020; measured here: click AUC 0.64 against an oracle 0.81 without them).
// - Watch task: squared loss on log1p(watched seconds), 0 when not clicked, so it predicts the
//   expected log-watch of an impression. Why: watch seconds are heavy-tailed (durations are
//   lognormal); log1p keeps long videos from dominating the loss, and predicting it per
//   impression (not per click) keeps the two tasks on the same examples.
// - Position is a training-time input only (position bias): serving scores every candidate as
//   if shown first (position 0), so the ranking is not biased by where the old model put items.
// - Final score (configurable): p_click^clickWeight × (1 + expected watch seconds)^watchWeight,
//   defaults 1 and 0.5: clicks first, watch time as a multiplier that cannot reward unclicked items.
import { EmbeddingTable, hashedRow } from '../util/embedding-table.js';
import { allFinite } from '../util/finite.js';
import type { Rng } from '../util/rng.js';
import { tf } from '../util/tf.js';
import {
  type Architecture,
  type MultiTaskConfig,
  MultiTaskNet,
  shuffledBatches,
} from './multitask.js';

export interface RankerConfig {
  architecture: Architecture;
  /** Width of each ID embedding. */
  idDim: number;
  /** Hash buckets per ID field (row 0 is reserved for "none"). */
  rows: Record<IdField, number>;
  /** Width of the real-time feature vector. */
  featureWidth: number;
  experts: number;
  expertDim: number;
  towerDim: number;
  fusion: { clickWeight: number; watchWeight: number };
}

export type IdField = 'user' | 'item' | 'category' | 'creator' | 'tag';

/**
 * Serving-sized defaults: 500 candidates score in about 1.2 ms on the wasm backend
 * (.scratch timing on this machine: idDim 16 with 4 experts of 32 took 2.4 ms; the first
 * layer's matrix product dominates, so its width is what costs).
 */
export function defaultRankerConfig(
  featureWidth: number,
  /** Size the ID tables to the world when known (smaller model files, faster swaps). */
  size?: { users: number; items: number },
): RankerConfig {
  const rows = (n: number | undefined, perId: number, max: number) =>
    n === undefined ? max : Math.min(max, 2 ** Math.ceil(Math.log2(Math.max(64, n * perId))));
  return {
    architecture: 'mmoe',
    idDim: 8,
    rows: {
      user: rows(size?.users, 2, 1 << 15),
      // New items keep arriving: room for 4× the catalogue before hash collisions crowd.
      item: rows(size?.items, 4, 1 << 17),
      category: 1 << 10,
      creator: 1 << 14,
      tag: 1 << 12,
    },
    featureWidth,
    experts: 4,
    expertDim: 16,
    towerDim: 8,
    fusion: { clickWeight: 1, watchWeight: 0.5 },
  };
}
const ID_FIELDS: readonly IdField[] = ['user', 'item', 'category', 'creator', 'tag'];
/** Initial spread of embedding rows (larger spreads trained worse here: 0.3 and 1.0 measured). */
const INIT_SCALE = 0.05;
/** Slot pairs whose dot products join the input: user and recent clicks against the item side. */
const INTERACTIONS: readonly [number, number][] = [
  [0, 1],
  [0, 2],
  [0, 3],
  [0, 4],
  [5, 1],
  [5, 2],
];

/**
 * The interaction products of one network input row starting at `at`, written from `to` on:
 * the same pairs augment() adds in the graph, summed in double precision.
 */
function interactions(rows: Float32Array, at: number, to: number, d: number): void {
  for (let k = 0; k < INTERACTIONS.length; k++) {
    const [a, b] = INTERACTIONS[k] as [number, number];
    let dot = 0;
    for (let j = 0; j < d; j++)
      dot += (rows[at + a * d + j] as number) * (rows[at + b * d + j] as number);
    rows[at + to + k] = dot;
  }
}

/** The watch task's target: log1p(watched seconds) (see the header). */
function watchTarget(watchedS: number): number {
  return Math.log1p(watchedS);
}

/** out[at..at+d) += scale × w[from..from+d): one embedding row into an input slot. */
function addScaledRow(
  out: Float32Array,
  at: number,
  w: Float32Array,
  from: number,
  d: number,
  scale: number,
): void {
  for (let j = 0; j < d; j++)
    out[at + j] = (out[at + j] as number) + scale * (w[from + j] as number);
}

/** An example's embedding lookups (see `lookups`) as table rows, in visiting order. */
interface ResolvedLookups {
  /** The table sizes the rows were hashed for (Ranker.tableRows). */
  tableRows: string;
  slots: Uint8Array;
  /** Index into ID_FIELDS. */
  fields: Uint8Array;
  rows: Int32Array;
  scales: Float64Array;
}

const resolvedLookups = new WeakMap<RankExample, ResolvedLookups>();

export interface RankExample extends RankItem {
  userId: string;
  /** The user's recent clicks, newest last (pooled into one embedding). */
  recentClicks: readonly string[];
  /** FeatureVectorizer output for this (user, item). */
  features: Float32Array;
  /** 0-based slot it was shown in (training); serving uses 0. */
  position: number;
}

export interface RankScores {
  click: number;
  /** Expected watch seconds of the impression (expm1 of the watch task's output, ≥ 0). */
  watchSeconds: number;
  final: number;
}

export interface TrainOptions {
  epochs: number;
  batchSize: number;
  /** Adam's rate for the network (the embedding tables keep the rate they were created with). */
  learningRate: number;
  rng: Rng;
  onEpoch?: (epoch: number, loss: number) => void;
}

/**
 * Every embedding lookup of an example as (input slot, table, id, weight): the one place that
 * says where each ID goes, used to build inputs and to send their gradients back.
 */
function lookups(e: RankExample, visit: Visit): void {
  userLookups(e, visit);
  itemLookups(e, visit);
}

type Visit = (slot: number, field: IdField, id: string, scale: number) => void;

/** The user side (slots 0 and 5): the same for every candidate of a request. */
function userLookups(e: Pick<RankExample, 'userId' | 'recentClicks'>, visit: Visit): void {
  visit(0, 'user', e.userId, 1);
  for (const c of e.recentClicks) visit(5, 'item', c, 1 / e.recentClicks.length);
}

function itemLookups(e: RankItem, visit: Visit): void {
  visit(1, 'item', e.itemId, 1);
  visit(2, 'category', e.category, 1);
  visit(3, 'creator', e.creator, 1);
  for (const t of e.tags) visit(4, 'tag', t, 1 / e.tags.length);
}

/** What the ranker knows of a candidate item besides its features. */
export interface RankItem {
  itemId: string;
  category: string;
  creator: string;
  tags: readonly string[];
}

/** One serving request: a user and its candidates, with their feature rows. */
export interface RankQuery {
  userId: string;
  recentClicks: readonly string[];
  items: readonly RankItem[];
  /** [items.length, featureWidth] rows (FeatureVectorizer.vectors). */
  features: Float32Array;
}

/** The ranker's weights as plain arrays: what a model file holds. */
export interface RankerWeights {
  net: Map<string, Float32Array>;
  tables: Record<IdField, Float32Array>;
}

export class Ranker {
  readonly config: RankerConfig;
  readonly net: MultiTaskNet;
  readonly tables: Record<IdField, EmbeddingTable>;
  private optimizer: tf.Optimizer | undefined;
  /** The tables' sizes as a key: examples' resolved rows are valid for tables of these sizes. */
  private readonly tableRows: string;

  private constructor(
    config: RankerConfig,
    net: MultiTaskNet,
    tables: Record<IdField, EmbeddingTable>,
  ) {
    this.config = config;
    this.net = net;
    this.tables = tables;
    this.tableRows = ID_FIELDS.map((f) => config.rows[f]).join(',');
  }

  /** [user, item, category, creator, mean tags, mean recent clicks] embeddings, features, position. */
  static inputWidth(config: RankerConfig): number {
    return 6 * config.idDim + config.featureWidth + 1;
  }

  /** The network's input: the rows plus the interaction dot products. */
  private augment(x: tf.Tensor2D): tf.Tensor2D {
    const d = this.config.idDim;
    const n = x.shape[0];
    const slot = (k: number) => x.slice([0, k * d], [n, d]);
    const [user, item, category, creator, tags, clicks] = [0, 1, 2, 3, 4, 5].map(
      slot,
    ) as tf.Tensor2D[];
    const dots = INTERACTIONS.map(([a, b]) => {
      const all = [user, item, category, creator, tags, clicks] as tf.Tensor2D[];
      return (all[a] as tf.Tensor2D).mul(all[b] as tf.Tensor2D).sum(1, true);
    });
    return tf.concat([x, ...dots], 1) as tf.Tensor2D;
  }

  /**
   * A new ranker: random weights from `rng`, or the given ones (a loaded or copied model;
   * shapes and finiteness are checked, and the tables are copied so training this one leaves
   * the source alone).
   */
  static async create(
    config: RankerConfig,
    rng: Rng,
    sparseLearningRate = 0.2,
    weights?: RankerWeights,
  ): Promise<Ranker> {
    const net = await MultiTaskNet.create(Ranker.netConfig(config), rng.fork('net'), weights?.net);
    const d = config.idDim;
    const tables = Object.fromEntries(
      ID_FIELDS.map((f) => {
        const expected = config.rows[f] * d;
        const given = weights?.tables[f];
        if (given && given.length !== expected)
          throw new Error(
            `ranker: the ${f} table has ${given.length} values, expected ${expected}`,
          );
        if (given && !allFinite(given)) throw new Error(`ranker: the ${f} table is not finite`);
        const r = rng.fork(`table/${f}`);
        const w = given
          ? given.slice()
          : Float32Array.from({ length: expected }, (_, k) =>
              k < d ? 0 : INIT_SCALE * r.normal(),
            );
        return [f, new EmbeddingTable(d, w, sparseLearningRate)];
      }),
    ) as Record<IdField, EmbeddingTable>;
    return new Ranker(config, net, tables);
  }

  static netConfig(config: RankerConfig): MultiTaskConfig {
    return {
      architecture: config.architecture,
      inputDim: Ranker.inputWidth(config) + INTERACTIONS.length,
      experts: config.experts,
      expertDim: config.expertDim,
      towerDim: config.towerDim,
      tasks: ['logistic', 'mse'],
    };
  }

  /** False once training wrote a non-finite value into an ID table (see EmbeddingTable.finite). */
  get tablesFinite(): boolean {
    return ID_FIELDS.every((f) => this.tables[f].finite);
  }

  /** A copy of the weights (for saving, or for a frozen twin). */
  weights(): RankerWeights {
    return {
      net: this.net.weights(),
      tables: Object.fromEntries(
        ID_FIELDS.map((f) => [f, Float32Array.from(this.tables[f].weights)]),
      ) as Record<IdField, Float32Array>,
    };
  }

  /**
   * Scores one request's candidates as served (position 0). Same numbers as score() on the
   * equivalent examples, but the user side is looked up once and the interaction products
   * are computed here rather than in the graph: serving needs no gradients, and this is the
   * hot path of every request.
   */
  scoreQuery(q: RankQuery): RankScores[] {
    const n = q.items.length;
    if (n === 0) return [];
    const { idDim: d, featureWidth } = this.config;
    if (q.features.length !== n * featureWidth)
      throw new Error(`ranker: ${q.features.length} feature values, expected ${n}×${featureWidth}`);
    const base = Ranker.inputWidth(this.config);
    const width = base + INTERACTIONS.length;
    const userSide = new Float32Array(6 * d);
    userLookups(q, (slot, field, id, scale) => this.addRow(userSide, slot * d, field, id, scale));
    const rows = new Float32Array(n * width);
    for (let i = 0; i < n; i++) {
      const at = i * width;
      const row = rows.subarray(at, at + width);
      row.set(userSide);
      itemLookups(q.items[i] as RankItem, (slot, field, id, scale) =>
        this.addRow(rows, at + slot * d, field, id, scale),
      );
      row.set(q.features.subarray(i * featureWidth, (i + 1) * featureWidth), 6 * d);
      // log1p(position 0) = 0: the slot is already 0.
      interactions(rows, at, base, d);
    }
    const [click, watch] = this.forwardRows(rows, n);
    return this.fuse(click, watch, n);
  }

  /** [click probability, watch output] for network input rows ([n, inputs + interactions]). */
  private forwardRows(rows: Float32Array, n: number): [Float32Array, Float32Array] {
    const width = Ranker.inputWidth(this.config) + INTERACTIONS.length;
    if (rows.length !== n * width)
      throw new Error(`ranker: ${rows.length} input values, expected ${n}×${width}`);
    const [click, watch] = this.net.predict(rows, n) as [Float32Array, Float32Array];
    return [click, watch];
  }

  private addRow(out: Float32Array, at: number, field: IdField, id: string, scale: number): void {
    // Straight from the table's array: a row view (subarray) per lookup was most of the
    // cost of building 2,000 holdout rows per online step.
    const table = this.tables[field];
    const d = table.dim;
    addScaledRow(out, at, table.weights, hashedRow(id, this.config.rows[field]) * d, d, scale);
  }

  private fuse(click: Float32Array, watch: Float32Array, n: number): RankScores[] {
    const { clickWeight, watchWeight } = this.config.fusion;
    const out: RankScores[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const p = click[i] as number;
      const watchSeconds = Math.max(0, Math.expm1(watch[i] as number));
      out[i] = {
        click: p,
        watchSeconds,
        final: p ** clickWeight * (1 + watchSeconds) ** watchWeight,
      };
    }
    return out;
  }

  /**
   * The network's input rows for examples ([n, inputWidth]); `servePosition` overrides positions.
   * `keepLookups`: remember which table rows each example uses (for examples scored again and
   * again, like a holdout; ~0.6 KB each, so not for a training set).
   */
  inputs(
    examples: readonly RankExample[],
    servePosition?: number,
    keepLookups = false,
  ): Float32Array {
    const { idDim: d, featureWidth } = this.config;
    const width = Ranker.inputWidth(this.config);
    const out = new Float32Array(examples.length * width);
    const weights = keepLookups ? ID_FIELDS.map((f) => this.tables[f].weights) : [];
    for (let n = 0; n < examples.length; n++) {
      const e = examples[n] as RankExample;
      const base = n * width;
      if (!keepLookups) {
        lookups(e, (slot, field, id, scale) => this.addRow(out, base + slot * d, field, id, scale));
      } else {
        // The rows each id hashes to, kept: the holdout's 2,000 examples are rebuilt every
        // online step, and hashing their ~50k ids was a fifth of that.
        this.addResolved(out, base, this.resolved(e), weights);
      }
      if (e.features.length !== featureWidth)
        throw new Error(`ranker: ${e.features.length} features, expected ${featureWidth}`);
      out.set(e.features, base + 6 * d);
      out[base + width - 1] = Math.log1p(servePosition ?? e.position);
    }
    return out;
  }

  /** addRow for each of an example's resolved lookups, in the same order (the same floats). */
  private addResolved(
    out: Float32Array,
    base: number,
    r: ResolvedLookups,
    weights: readonly Float32Array[],
  ): void {
    const d = this.config.idDim;
    for (let k = 0; k < r.rows.length; k++) {
      const w = weights[r.fields[k] as number] as Float32Array;
      const at = base + (r.slots[k] as number) * d;
      addScaledRow(out, at, w, (r.rows[k] as number) * d, d, r.scales[k] as number);
    }
  }

  /** `lookups(e)` as table rows, cached per example for tables of these sizes. */
  private resolved(e: RankExample): ResolvedLookups {
    const cached = resolvedLookups.get(e);
    if (cached !== undefined && cached.tableRows === this.tableRows) return cached;
    const slots: number[] = [];
    const fields: number[] = [];
    const rows: number[] = [];
    const scales: number[] = [];
    lookups(e, (slot, field, id, scale) => {
      slots.push(slot);
      fields.push(ID_FIELDS.indexOf(field));
      rows.push(hashedRow(id, this.config.rows[field]));
      scales.push(scale);
    });
    const r: ResolvedLookups = {
      tableRows: this.tableRows,
      slots: Uint8Array.from(slots),
      fields: Uint8Array.from(fields),
      rows: Int32Array.from(rows),
      // Float64 like the scale addRow multiplies by, so both build the same float32 rows.
      scales: Float64Array.from(scales),
    };
    resolvedLookups.set(e, r);
    return r;
  }

  /** Scores as served: every candidate at position 0. */
  score(examples: readonly RankExample[]): RankScores[] {
    if (examples.length === 0) return [];
    const [click, watch] = this.predict(this.inputs(examples, 0), examples.length);
    return this.fuse(click, watch, examples.length);
  }

  /** [click probability, watch output] for input rows from `inputs()`. */
  predict(rows: Float32Array, n: number): [Float32Array, Float32Array] {
    const width = Ranker.inputWidth(this.config);
    if (rows.length !== n * width)
      throw new Error(`ranker: ${rows.length} input values, expected ${n}×${width}`);
    // The interaction products in plain code, as scoreQuery does: no gradients are needed, and
    // the graph's slices and products cost more than the network itself on the holdout.
    const wide = width + INTERACTIONS.length;
    const out = new Float32Array(n * wide);
    const d = this.config.idDim;
    for (let i = 0; i < n; i++) {
      out.set(rows.subarray(i * width, (i + 1) * width), i * wide);
      interactions(out, i * wide, width, d);
    }
    return this.forwardRows(out, n);
  }

  /** The training objective (both tasks' losses) on labelled impressions, without training. */
  loss(examples: readonly RankExample[], clicked: Float32Array, watchedS: Float32Array): number {
    const n = examples.length;
    const width = Ranker.inputWidth(this.config);
    return tf.tidy(() => {
      const x = this.augment(tf.tensor2d(this.inputs(examples), [n, width]));
      const yClick = tf.tensor2d(clicked, [n, 1]);
      const yWatch = tf.tensor2d(Float32Array.from(watchedS, watchTarget), [n, 1]);
      return this.net.loss(x, [yClick, yWatch]).dataSync()[0] as number;
    });
  }

  /** Trains on labelled impressions: clicked (0/1) and watched seconds (0 when not clicked). */
  async train(
    examples: readonly RankExample[],
    clicked: Float32Array,
    watchedS: Float32Array,
    opts: TrainOptions,
  ): Promise<number> {
    const n = examples.length;
    const width = Ranker.inputWidth(this.config);
    const d = this.config.idDim;
    // One Adam per ranker, kept across calls: online learning takes many small train() calls,
    // and restarting the moment estimates every time would make each step a cold start.
    this.optimizer ??= tf.train.adam(opts.learningRate);
    const optimizer = this.optimizer;
    const order = Array.from({ length: n }, (_, i) => i);
    let last = Number.NaN;
    for (let epoch = 0; epoch < opts.epochs; epoch++) {
      let total = 0;
      let batches = 0;
      for (const idx of shuffledBatches(order, opts.batchSize, opts.rng)) {
        const batch = idx.map((i) => examples[i] as RankExample);
        const b = batch.length;
        const x = tf.variable(
          tf.tensor2d(this.inputs(batch), [b, width]),
          true,
          `rankX${epoch}_${batches}`,
        );
        const yClick = tf.tensor2d(
          Float32Array.from(idx, (i) => clicked[i] as number),
          [b, 1],
        );
        const yWatch = tf.tensor2d(
          Float32Array.from(idx, (i) => watchTarget(watchedS[i] as number)),
          [b, 1],
        );
        const vars = this.net.variables;
        const { value, grads } = tf.variableGrads(
          () => this.net.loss(this.augment(x), [yClick, yWatch]),
          [...vars, x],
        );
        optimizer.applyGradients(
          vars.map((v) => ({ name: v.name, tensor: grads[v.name] as tf.Tensor })),
        );
        const gx = (await (grads[x.name] as tf.Tensor).data()) as Float32Array;
        // Scatter the input gradient back to the embedding rows it came from.
        batch.forEach((e, r) => {
          const base = r * width;
          lookups(e, (slot, field, id, scale) =>
            this.tables[field].accumulate(
              hashedRow(id, this.config.rows[field]),
              gx,
              base + slot * d,
              scale,
            ),
          );
        });
        for (const t of Object.values(this.tables)) t.step();
        total += (await value.data())[0] as number;
        tf.dispose([value, x, yClick, yWatch, ...Object.values(grads)]);
        batches += 1;
      }
      last = total / batches;
      if (!Number.isFinite(last)) throw new Error(`ranker training diverged (loss ${last})`);
      opts.onEpoch?.(epoch, last);
    }
    return last;
  }

  dispose(): void {
    this.net.dispose();
    this.optimizer?.dispose();
  }
}

/** A ranker with the version it was loaded as (what responses and impressions report). */
export interface RankerModel {
  version: string;
  ranker: Ranker;
}
