// Trains the heterogeneous GraphSAGE model (sage-model.ts) by link prediction on the
// interaction graph, with TensorFlow.js on its WebAssembly backend.
//
// Loss: BPR, -log σ(score(u, i⁺) - score(u, i⁻)), with i⁻ drawn uniformly from the catalogue.
// Why BPR: recall is a ranking problem over the whole catalogue, BPR optimises exactly the
// pairwise order, needs one negative per positive (cheap on two cores), and uniform negatives
// match the uniform candidate pool an ANN search ranks (a sampled softmax would need many
// negatives per step for the same signal).
//
// Neighbourhoods are sampled per step: up to `userFanout` of the user's other interactions
// (the positive itself is left out, so the model cannot see the answer) and up to
// `itemFanout` users of each item, whose profiles come from a cache refreshed every epoch
// (historical embeddings, as in PinSage: the two-hop term costs one gather, not a subgraph).
// With probability `coldDropout` an item's users term is dropped and it takes the cold path,
// so the model also learns to place items with metadata only: the inductive cold start. After
// training, the cold path's shift is fitted (fitColdShift) so both paths share one scale.
//
// The embedding tables (categories, tags, creators, item IDs) are sparse: a step touches a few rows, so
// they live in plain arrays and are updated row by row with Adagrad (per-row optimiser state);
// TensorFlow.js computes the gradient of the looked-up rows and the dense weights (Adam).
// (This also sidesteps the wasm backend, which has no kernel for the gradient of a gather.)
import { EmbeddingTable } from '../util/embedding-table.js';
import { Rng } from '../util/rng.js';
import { matMul, tf, useWasmBackend } from '../util/tf.js';
import type { InteractionGraph, ItemNode } from './graph.js';
import {
  DEFAULT_SAGE_CONFIG,
  GraphEmbeddings,
  itemMetaOf,
  type SageConfig,
  SageModel,
  type SageWeights,
  WEIGHT_NAMES,
  type WeightName,
} from './sage-model.js';

export interface TrainOptions {
  epochs: number;
  batchSize: number;
  /** Adam's rate for the dense weights. */
  learningRate: number;
  /** Adagrad's rate for the embedding-table rows. */
  sparseLearningRate: number;
  /** L2 penalty on the batch's embeddings. */
  l2: number;
  coldDropout: number;
  seed: number;
  /** Stop after this many steps in all (a time cap for benchmarks and tests). */
  maxSteps?: number;
  onProgress?: (p: { epoch: number; step: number; steps: number; loss: number }) => void;
}

export const DEFAULT_TRAIN_OPTIONS: TrainOptions = {
  epochs: 3,
  batchSize: 1024,
  learningRate: 0.005,
  sparseLearningRate: 0.2,
  l2: 1e-4,
  coldDropout: 0.3,
  seed: 1,
};

/** Embedding tables: trained row by row in JS (SparseTables). */
const SPARSE = ['catEmb', 'tagEmb', 'creatorEmb', 'itemEmb'] as const;
type SparseName = (typeof SPARSE)[number];
/** Fitted after training (fitColdShift), not by gradient. */
type FittedName = 'coldShift';
/** Every other weight is a dense TF variable trained with Adam. */
type DenseName = Exclude<WeightName, SparseName | FittedName>;
const DENSE = WEIGHT_NAMES.filter(
  (n): n is DenseName => n !== 'coldShift' && !(SPARSE as readonly string[]).includes(n),
);
type Vars = Record<DenseName, tf.Variable>;

export interface TrainResult {
  model: SageModel;
  steps: number;
  finalLoss: number;
  seconds: number;
}

/**
 * Trains on the graph's current edges. `warm` continues from an earlier model: its rows are
 * kept for known categories, tags and creators, and new ones start small and random.
 */
export async function trainSage(
  graph: InteractionGraph,
  options: Partial<TrainOptions> = {},
  config: SageConfig = DEFAULT_SAGE_CONFIG,
  warm?: SageModel,
): Promise<TrainResult> {
  await useWasmBackend();
  const opts = { ...DEFAULT_TRAIN_OPTIONS, ...options };
  const started = performance.now();
  const rng = new Rng(opts.seed).fork('sage');
  const d = config.dim;
  const init = initialWeights(graph, config, rng, warm);
  const vars = Object.fromEntries(
    DENSE.map((n) => [n, tf.variable(tensorOf(n, init, d), true, n)]),
  ) as Vars;
  const optimizer = tf.train.adam(opts.learningRate);
  const sparse = new SparseTables(init, d, opts.sparseLearningRate);
  // Graph item index -> its ID row (0: none, the zero row).
  const idRows = new Int32Array(graph.itemCount);
  const rowOfId = new Map(init.items.map((id, r) => [id, r]));
  for (let i = 0; i < graph.itemCount; i++)
    idRows[i] = rowOfId.get((graph.items[i] as { id: string }).id) ?? 0;
  const edges = graph.edges();
  if (edges.length === 0) throw new Error('the graph has no interactions to train on');
  const stepsPerEpoch = Math.ceil(edges.length / opts.batchSize);
  const totalSteps = Math.min(
    opts.maxSteps ?? Number.POSITIVE_INFINITY,
    stepsPerEpoch * opts.epochs,
  );
  let step = 0;
  let loss = Number.NaN;
  try {
    for (let epoch = 0; epoch < opts.epochs && step < totalSteps; epoch++) {
      // Profiles for the users terms, from this epoch's starting weights (historical embeddings).
      const embeddings = new GraphEmbeddings(exportModel(vars, init, config), graph);
      rng.shuffle(edges);
      for (let s = 0; s < stepsPerEpoch && step < totalSteps; s++, step++) {
        const batch = edges.slice(s * opts.batchSize, (s + 1) * opts.batchSize);
        const inputs = buildBatch(
          graph,
          embeddings,
          init,
          idRows,
          batch,
          config,
          opts.coldDropout,
          rng,
        );
        const uX = tf.variable(inputs.uX, true, `uX${step}`);
        const iX = tf.variable(inputs.iX, true, `iX${step}`);
        const uId = tf.variable(inputs.uId, true, `uId${step}`);
        const iId = tf.variable(inputs.iId, true, `iId${step}`);
        const looked = config.idEmbeddings ? [uX, iX, uId, iId] : [uX, iX];
        const { value, grads } = tf.variableGrads(
          () => bprLoss(vars, { uX, iX, uId, iId }, inputs, config, opts.l2),
          [...DENSE.map((n) => vars[n]), ...looked],
        );
        optimizer.applyGradients(DENSE.map((n) => ({ name: n, tensor: grads[n] as tf.Tensor })));
        const grad = async (t: tf.Variable) =>
          (await (grads[t.name] as tf.Tensor).data()) as Float32Array;
        sparse.apply(inputs.uRows, await grad(uX));
        sparse.apply(inputs.iRows, await grad(iX));
        if (config.idEmbeddings) {
          sparse.applyIds(inputs.uRows, await grad(uId));
          sparse.applyIds(inputs.iRows, await grad(iId));
        }
        loss = (await value.data())[0] as number;
        tf.dispose([value, uX, iX, uId, iId, inputs.uX, inputs.iX, inputs.uId, inputs.iId]);
        tf.dispose([inputs.uW, inputs.iUsers, inputs.iCold]);
        tf.dispose(Object.values(grads));
        if (!Number.isFinite(loss))
          throw new Error(`training diverged (loss ${loss}) at step ${step}`);
        opts.onProgress?.({ epoch, step: step + 1, steps: totalSteps, loss });
      }
    }
    const model = exportModel(vars, init, config);
    model.weights.coldShift[0] = fitColdShift(model, graph, rng);
    return {
      model,
      steps: step,
      finalLoss: loss,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    tf.dispose(Object.values(vars));
    optimizer.dispose();
    tf.disposeVariables();
  }
}

/** Where each row of a looked-up input came from: its table rows and their weights. */
interface RowSources {
  /** Item ID rows (0: none). */
  item: Int32Array;
  cat: Int32Array;
  cre: Int32Array;
  tags: Int32Array; // [rows, T]
  tagW: Float32Array; // [rows, T]
  T: number;
}

interface BatchInputs {
  uX: tf.Tensor; // [B·K, 3·dim] looked-up rows of the users' interactions
  uId: tf.Tensor; // [B·K, dim] their item ID rows (zero: none)
  uW: tf.Tensor; // [B, K] normalised interaction weights (0 for padding)
  iX: tf.Tensor; // [2B, 3·dim] positives then negatives
  iId: tf.Tensor; // [2B, dim] their item ID rows (zero: none, or the cold path)
  iUsers: tf.Tensor; // [2B, dim] mean profile of the item's users (0 when none or dropped)
  iCold: tf.Tensor; // [2B, 1] 1 where the item takes the cold path (no users, or dropped)
  uRows: RowSources;
  iRows: RowSources;
}

function rowSources(rows: number, T: number): RowSources {
  return {
    item: new Int32Array(rows),
    cat: new Int32Array(rows),
    cre: new Int32Array(rows),
    tags: new Int32Array(rows * T),
    tagW: new Float32Array(rows * T),
    T,
  };
}

/** Fills row `slot` with the item's table indexes (`idRow` 0: without its ID row). */
function putItem(
  graph: InteractionGraph,
  item: number,
  idRow: number,
  rows: RowSources,
  slot: number,
): void {
  const node = graph.items[item];
  if (!node) return;
  rows.item[slot] = idRow;
  rows.cat[slot] = node.category;
  rows.cre[slot] = node.creator;
  const n = Math.min(rows.T, node.tags.length);
  for (let t = 0; t < n; t++) {
    rows.tags[slot * rows.T + t] = node.tags[t] as number;
    rows.tagW[slot * rows.T + t] = 1 / n;
  }
}

/** E_item[i] for every row (zero without an ID row): added inside meta(). */
function lookUpIds(w: SageWeights, rows: RowSources, d: number): Float32Array {
  const out = new Float32Array(rows.item.length * d);
  rows.item.forEach((r, k) => {
    if (r > 0) out.set(w.itemEmb.subarray(r * d, (r + 1) * d), k * d);
  });
  return out;
}

/** [E_cat[c] ; Σ w_t E_tag[t] ; E_creator[a]] for every row: the input of meta(). */
function lookUp(w: SageWeights, rows: RowSources, d: number): Float32Array {
  const n = rows.cat.length;
  const x = new Float32Array(n * 3 * d);
  for (let r = 0; r < n; r++) {
    const base = r * 3 * d;
    const c = (rows.cat[r] as number) * d;
    const a = (rows.cre[r] as number) * d;
    for (let j = 0; j < d; j++) {
      x[base + j] = w.catEmb[c + j] as number;
      x[base + 2 * d + j] = w.creatorEmb[a + j] as number;
    }
    for (let t = 0; t < rows.T; t++) {
      const tw = rows.tagW[r * rows.T + t] as number;
      if (tw === 0) continue;
      const tb = (rows.tags[r * rows.T + t] as number) * d;
      for (let j = 0; j < d; j++)
        x[base + d + j] = (x[base + d + j] as number) + tw * (w.tagEmb[tb + j] as number);
    }
  }
  return x;
}

function buildBatch(
  graph: InteractionGraph,
  emb: GraphEmbeddings,
  weights: SageWeights,
  idRows: Int32Array,
  batch: { user: number; item: number }[],
  config: SageConfig,
  coldDropout: number,
  rng: Rng,
): BatchInputs {
  const B = batch.length;
  const K = config.userFanout;
  const T = config.maxTags;
  const d = config.dim;
  const uRows = rowSources(B * K, T);
  const iRows = rowSources(2 * B, T);
  const uW = new Float32Array(B * K);
  const iUsers = new Float32Array(2 * B * d);
  const iCold = new Float32Array(2 * B).fill(1);
  for (let b = 0; b < B; b++) {
    const { user, item } = batch[b] as { user: number; item: number };
    // The user's other interactions: a random subset of up to K, weights normalised.
    const others = graph.itemsOf(user).filter((e) => e.other !== item);
    const picked = others.length <= K ? others : rng.shuffle([...others]).slice(0, K);
    let total = 0;
    for (const e of picked) total += e.weight;
    picked.forEach((e, k) => {
      putItem(graph, e.other, idRows[e.other] as number, uRows, b * K + k);
      uW[b * K + k] = e.weight / total;
    });
    const negative = rng.int(graph.itemCount);
    for (const [slot, it] of [
      [b, item],
      [B + b, negative],
    ] as const) {
      // The cold path (no users, or dropped) has no ID row either: a cold item has none.
      const mean = rng.uniform() < coldDropout ? null : emb.usersMeanOf(it, user);
      putItem(graph, it, mean ? (idRows[it] as number) : 0, iRows, slot);
      if (!mean) continue;
      iUsers.set(mean, slot * d);
      iCold[slot] = 0;
    }
  }
  return {
    uX: tf.tensor2d(lookUp(weights, uRows, d), [B * K, 3 * d]),
    uId: tf.tensor2d(lookUpIds(weights, uRows, d), [B * K, d]),
    uW: tf.tensor2d(uW, [B, K]),
    iX: tf.tensor2d(lookUp(weights, iRows, d), [2 * B, 3 * d]),
    iId: tf.tensor2d(lookUpIds(weights, iRows, d), [2 * B, d]),
    iUsers: tf.tensor2d(iUsers, [2 * B, d]),
    iCold: tf.tensor2d(iCold, [2 * B, 1]),
    uRows,
    iRows,
  };
}

/** Row-wise Adagrad on the metadata and item ID tables (trained in place in the weights). */
class SparseTables {
  private readonly tables: Record<SparseName, EmbeddingTable>;

  constructor(
    w: SageWeights,
    private readonly d: number,
    lr: number,
  ) {
    this.tables = {
      catEmb: new EmbeddingTable(d, w.catEmb, lr),
      tagEmb: new EmbeddingTable(d, w.tagEmb, lr),
      creatorEmb: new EmbeddingTable(d, w.creatorEmb, lr),
      itemEmb: new EmbeddingTable(d, w.itemEmb, lr),
    };
  }

  /** Applies the gradient of looked-up rows (`grad` is [rows, 3·dim]) to their table rows. */
  apply(rows: RowSources, grad: Float32Array): void {
    const d = this.d;
    const { catEmb, tagEmb, creatorEmb } = this.tables;
    for (let r = 0; r < rows.cat.length; r++) {
      const base = r * 3 * d;
      catEmb.accumulate(rows.cat[r] as number, grad, base);
      creatorEmb.accumulate(rows.cre[r] as number, grad, base + 2 * d);
      for (let t = 0; t < rows.T; t++) {
        const tw = rows.tagW[r * rows.T + t] as number;
        if (tw !== 0) tagEmb.accumulate(rows.tags[r * rows.T + t] as number, grad, base + d, tw);
      }
    }
    for (const table of SPARSE) this.tables[table].step();
  }

  /** Applies the gradient of looked-up ID rows (`grad` is [rows, dim]); row 0 never moves. */
  applyIds(rows: RowSources, grad: Float32Array): void {
    const { itemEmb } = this.tables;
    for (let k = 0; k < rows.item.length; k++)
      itemEmb.accumulate(rows.item[k] as number, grad, k * this.d);
    itemEmb.step();
  }
}

/** meta() of sage-model.ts on looked-up rows and their ID rows. */
function metaRep(v: Vars, x: tf.Tensor, ids: tf.Tensor | null): tf.Tensor {
  const linear = matMul(x, v.wMeta).add(v.bMeta);
  return tf.tanh(ids ? linear.add(ids) : linear);
}

/** The batch's looked-up rows, as variables (their gradients go to the sparse tables). */
interface Looked {
  uX: tf.Tensor;
  iX: tf.Tensor;
  uId: tf.Tensor;
  iId: tf.Tensor;
}

function bprLoss(
  v: Vars,
  { uX, iX, uId, iId }: Looked,
  x: BatchInputs,
  config: SageConfig,
  l2: number,
): tf.Scalar {
  const d = config.dim;
  const B = x.uW.shape[0] as number;
  const K = config.userFanout;
  const ids = config.idEmbeddings;
  const clicked = metaRep(v, uX, ids ? uId : null).reshape([B, K, d]);
  const profile = clicked.mul(x.uW.reshape([B, K, 1])).sum(1);
  const query = matMul(profile, v.wQuery).add(v.bQuery);
  const meta = metaRep(v, iX, ids ? iId : null);
  const warm = matMul(meta, v.wSelf).add(matMul(x.iUsers, v.wUsers)).add(v.bItem);
  const cold = matMul(meta, v.wCold).add(v.bCold);
  const items = cold.mul(x.iCold).add(warm.mul(tf.sub(1, x.iCold)));
  const pos = items.slice([0, 0], [B, d]);
  const neg = items.slice([B, 0], [B, d]);
  const diff = query.mul(pos.sub(neg)).sum(1);
  const bpr = tf.softplus(diff.neg()).mean();
  const reg = query.square().sum(1).mean().add(items.square().sum(1).mean()).mul(l2);
  return bpr.add(reg) as tf.Scalar;
}

function shapeOf(name: DenseName, d: number): number[] {
  if (name === 'wMeta') return [3 * d, d];
  if (name.startsWith('b')) return [d];
  return [d, d];
}

function tensorOf(name: DenseName, w: SageWeights, d: number): tf.Tensor {
  return tf.tensor(w[name], shapeOf(name, d), 'float32');
}

/**
 * The cold path's shift: the mean of warm-path minus cold-path score over a sample of clicked
 * (user, item) pairs whose item has other users, so a cold item scores about what it would
 * as a warm one (see sage-model.ts).
 */
function fitColdShift(model: SageModel, graph: InteractionGraph, rng: Rng, samples = 5000): number {
  const emb = new GraphEmbeddings(model, graph);
  const edges = graph.edges();
  let sum = 0;
  let n = 0;
  for (let k = 0; k < samples * 4 && n < samples && edges.length > 0; k++) {
    const { user, item } = edges[rng.int(edges.length)] as { user: number; item: number };
    const users = emb.usersMeanOf(item, user);
    const profile = emb.profileOfUser(user, item);
    if (!users || !profile) continue;
    const q = model.query(profile);
    const warm = model.item(emb.metaOf(item), users);
    // The cold path as trained: without the item's ID row.
    const node = graph.items[item] as ItemNode;
    const cold = model.item(model.meta({ ...itemMetaOf(graph, node), id: undefined }), null);
    let gap = 0;
    for (let j = 0; j < q.length; j++)
      gap += (q[j] as number) * ((warm[j] as number) - (cold[j] as number));
    sum += gap;
    n += 1;
  }
  return n > 0 ? sum / n : 0;
}

/** A model from the current dense variables and sparse tables (copied: training goes on). */
function exportModel(vars: Vars, sparse: SageWeights, config: SageConfig): SageModel {
  const weights: SageWeights = {
    ...sparse,
    catEmb: sparse.catEmb.slice(),
    tagEmb: sparse.tagEmb.slice(),
    creatorEmb: sparse.creatorEmb.slice(),
    itemEmb: sparse.itemEmb.slice(),
  };
  for (const n of DENSE) weights[n] = vars[n].dataSync() as Float32Array;
  return new SageModel(config, weights);
}

/** Fresh weights for the graph's vocabularies; rows of a warm model are carried over. */
function initialWeights(
  graph: InteractionGraph,
  config: SageConfig,
  rng: Rng,
  warm?: SageModel,
): SageWeights {
  const d = config.dim;
  if (warm && warm.dim !== d) throw new Error(`warm start needs dim ${warm.dim}, got ${d}`);
  const table = (names: string[], old: { names: string[]; emb: Float32Array } | undefined) => {
    const out = new Float32Array(names.length * d);
    const oldIndex = new Map(old?.names.map((n, i) => [n, i]));
    // Row 0 is "unknown": it stays zero, so an unseen id adds nothing.
    for (let r = 1; r < names.length; r++) {
      const o = oldIndex.get(names[r] as string);
      if (old && o !== undefined && o > 0) out.set(old.emb.subarray(o * d, (o + 1) * d), r * d);
      else for (let j = 0; j < d; j++) out[r * d + j] = 0.1 * rng.normal();
    }
    return out;
  };
  const glorot = (rows: number, cols: number) => {
    const s = Math.sqrt(2 / (rows + cols));
    return Float32Array.from({ length: rows * cols }, () => s * rng.normal());
  };
  const categories = [...graph.categories.names];
  const tags = [...graph.tags.names];
  const creators = [...graph.creators.names];
  // ID rows for the items with interactions now ('' first: the zero row).
  const items = config.idEmbeddings
    ? [
        '',
        ...graph.items
          .filter((node) => graph.usersOf(node.index).length > 0)
          .map((node) => node.id),
      ]
    : [];
  const w = warm?.weights;
  // A new item row starts at zero: meta() is then what the metadata alone says, and the row
  // learns only what the metadata leaves unexplained. Known rows carry over on a warm start.
  const itemEmb = new Float32Array(items.length * d);
  if (w) {
    const oldRow = new Map(w.items.map((id, r) => [id, r]));
    items.forEach((id, r) => {
      const o = oldRow.get(id);
      if (r > 0 && o !== undefined && o > 0)
        itemEmb.set(w.itemEmb.subarray(o * d, (o + 1) * d), r * d);
    });
  }
  return {
    categories,
    tags,
    creators,
    items,
    catEmb: table(categories, w && { names: w.categories, emb: w.catEmb }),
    tagEmb: table(tags, w && { names: w.tags, emb: w.tagEmb }),
    creatorEmb: table(creators, w && { names: w.creators, emb: w.creatorEmb }),
    itemEmb,
    wMeta: w ? w.wMeta.slice() : glorot(3 * d, d),
    bMeta: w ? w.bMeta.slice() : new Float32Array(d),
    wQuery: w ? w.wQuery.slice() : glorot(d, d),
    bQuery: w ? w.bQuery.slice() : new Float32Array(d),
    wSelf: w ? w.wSelf.slice() : glorot(d, d),
    wUsers: w ? w.wUsers.slice() : glorot(d, d),
    bItem: w ? w.bItem.slice() : new Float32Array(d),
    wCold: w ? w.wCold.slice() : glorot(d, d),
    bCold: w ? w.bCold.slice() : new Float32Array(d),
    coldShift: w ? w.coldShift.slice() : new Float32Array(1),
  };
}
