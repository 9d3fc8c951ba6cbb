// A trained heterogeneous GraphSAGE model, for inference in plain JavaScript: embedding one
// item or one user takes microseconds, no tensor runtime, so a new item is in the vector
// index within a millisecond of its upsert. The trainer (sage-trainer.ts) computes the same
// functions with TensorFlow.js; a test checks that both agree.
//
//   meta(i)   = tanh([E_cat[c] ; mean E_tag[tags] ; E_creator[a]] · W_meta + b_meta + E_item[i])
//               (one weight block per metadata relation: category, tag, creator; and, with
//               `idEmbeddings`, the item's own row, learned for items that had interactions
//               when the model was trained, zero for every other item: see below. Added after
//               W_meta, which would only be a linear map of a free vector, at no matmul cost.)
//   profile(u)= Σ w_ui · meta(i) / Σ w_ui over the user's recent interactions (watch-weighted)
//   query(u)  = profile(u) · W_query + b_query
//   item(i)   = meta(i) · W_self + (mean_{u ∈ users(i)} profile(u) - p̄) · W_users + b_item
//               for an item with interactions (p̄, the mean profile of all users, centres the
//               users term), and
//   item(i)   = meta(i) · W_cold + b_cold
//               for an item nobody has interacted with (cold start). A separate cold path:
//               sharing W_self between both cases made it serve warm items, where the users
//               term carries much of the signal, and cold items lost out (measured).
//   score     = query(u) · item(i), plus `coldShift` for a cold item
//
// The shift puts both paths on one scale: fitted after training as the mean gap between the
// warm-path and the cold-path score of the same clicked items (sage-trainer.ts), it makes a cold
// item score about what it would as a warm one. Without it cold items ordered well among
// themselves (0.88 recall@100 in a cold-only pool, oracle 0.92) but sank below warm ones in a
// single list. It rides in one extra vector dimension ([item; shift or 0] · [query; 1]), so a
// plain inner-product index serves it.
//
// Item ID rows carry what metadata cannot explain (the simulator hides 30 % of an item's
// appeal from its metadata): on the item side, and on the user side too, since a profile is
// a mean of clicked items' meta(). Only items with interactions at training time get a row;
// every other item (new, or never clicked) has the zero row and stays purely inductive. In
// training, an item that takes the cold path (coldDropout) also loses its row, as a truly
// cold item has none.
import type { InteractionGraph, ItemNode } from './graph.js';

export interface SageConfig {
  /** Embedding width. */
  dim: number;
  /** Tags per item used (the rest are ignored). */
  maxTags: number;
  /** Interactions sampled per user into its profile while training. */
  userFanout: number;
  /** Newest interactions per user aggregated into its profile when embedding (a weighted mean, so it may exceed userFanout). */
  queryFanout: number;
  /** Users per item aggregated into its users term. */
  itemFanout: number;
  /** Learned item ID rows in meta() (models saved before they existed: false). */
  idEmbeddings: boolean;
}

export const DEFAULT_SAGE_CONFIG: SageConfig = {
  // 48 (2026-11-26, eval:recall warm / cold × oracle): 64 gave 0.81 / 1.01, 48 0.82 / 0.83, 32
  // 0.85 / 0.68; the index's top-500 p99 at 1M grows with the width (bench:recall).
  dim: 48,
  maxTags: 4,
  userFanout: 10,
  queryFanout: 50,
  itemFanout: 20,
  idEmbeddings: true,
};

/** Weights as flat row-major float32 arrays, plus the vocabularies their rows belong to. */
export interface SageWeights {
  categories: string[];
  tags: string[];
  creators: string[];
  /** Items with an ID row ('' first: the zero row); empty without idEmbeddings. */
  items: string[];
  catEmb: Float32Array; // [categories, dim]
  tagEmb: Float32Array; // [tags, dim]
  creatorEmb: Float32Array; // [creators, dim]
  itemEmb: Float32Array; // [items, dim]
  wMeta: Float32Array; // [3·dim, dim]
  bMeta: Float32Array; // [dim]
  wQuery: Float32Array; // [dim, dim]
  bQuery: Float32Array; // [dim]
  wSelf: Float32Array; // [dim, dim]
  wUsers: Float32Array; // [dim, dim]
  bItem: Float32Array; // [dim]
  wCold: Float32Array; // [dim, dim]
  bCold: Float32Array; // [dim]
  coldShift: Float32Array; // [1]
}

export const WEIGHT_NAMES = [
  'catEmb',
  'tagEmb',
  'creatorEmb',
  'wMeta',
  'bMeta',
  'wQuery',
  'bQuery',
  'wSelf',
  'wUsers',
  'bItem',
  'wCold',
  'bCold',
  'coldShift',
  // Last: files written before it existed read as an empty table.
  'itemEmb',
] as const;
export type WeightName = (typeof WEIGHT_NAMES)[number];

export interface ItemMeta {
  /** Looks up the item's ID row (absent or unknown: the zero row). */
  id?: string;
  category: string;
  tags: readonly string[];
  creator: string;
}

export class SageModel {
  readonly config: SageConfig;
  readonly weights: SageWeights;
  private readonly catIndex: Map<string, number>;
  private readonly tagIndex: Map<string, number>;
  private readonly creatorIndex: Map<string, number>;
  private readonly itemIndex: Map<string, number>;

  constructor(config: SageConfig, weights: SageWeights) {
    this.config = config;
    this.weights = weights;
    checkShapes(config, weights);
    this.catIndex = indexOf(weights.categories);
    this.tagIndex = indexOf(weights.tags);
    this.creatorIndex = indexOf(weights.creators);
    this.itemIndex = indexOf(weights.items);
  }

  get dim(): number {
    return this.config.dim;
  }

  /** Width of the vectors in the index: dim + 1 (the cold shift's dimension). */
  get vectorDim(): number {
    return this.config.dim + 1;
  }

  /** The vector to index for an item (see the cold shift above). */
  itemVector(meta: Float32Array, usersMean: Float32Array | null): Float32Array {
    const out = new Float32Array(this.vectorDim);
    out.set(this.item(meta, usersMean));
    out[this.dim] = usersMean ? 0 : (this.weights.coldShift[0] as number);
    return out;
  }

  /** The vector to search with for a user profile. */
  queryVector(profile: Float32Array): Float32Array {
    const out = new Float32Array(this.vectorDim);
    out.set(this.query(profile));
    out[this.dim] = 1;
    return out;
  }

  /** The metadata representation of an item (unknown ids use the zero "unknown" row). */
  meta(item: ItemMeta, out: Float32Array = new Float32Array(this.dim)): Float32Array {
    const d = this.dim;
    const w = this.weights;
    const x = new Float32Array(3 * d);
    addRow(x, 0, w.catEmb, this.catIndex.get(item.category) ?? 0, d, 1);
    const tags = item.tags.slice(0, this.config.maxTags);
    for (const t of tags) addRow(x, d, w.tagEmb, this.tagIndex.get(t) ?? 0, d, 1 / tags.length);
    addRow(x, 2 * d, w.creatorEmb, this.creatorIndex.get(item.creator) ?? 0, d, 1);
    matVec(x, w.wMeta, 3 * d, d, w.bMeta, out);
    const idRow = item.id === undefined ? 0 : (this.itemIndex.get(item.id) ?? 0);
    if (idRow > 0) addRow(out, 0, w.itemEmb, idRow, d, 1);
    for (let j = 0; j < d; j++) out[j] = Math.tanh(out[j] as number);
    return out;
  }

  /** A user's query vector from its profile (see `profileOf`). */
  query(profile: Float32Array): Float32Array {
    return matVec(profile, this.weights.wQuery, this.dim, this.dim, this.weights.bQuery);
  }

  /** An item's embedding from its meta representation and its users' mean profile (null: cold). */
  item(meta: Float32Array, usersMean: Float32Array | null): Float32Array {
    const d = this.dim;
    const w = this.weights;
    if (!usersMean) return matVec(meta, w.wCold, d, d, w.bCold);
    const out = matVec(meta, w.wSelf, d, d, w.bItem);
    const extra = matVec(usersMean, w.wUsers, d, d, null);
    for (let j = 0; j < d; j++) out[j] = (out[j] as number) + (extra[j] as number);
    return out;
  }
}

/**
 * Embeddings of a whole graph with one model: meta representations of every item, users'
 * profiles from them, then items' embeddings. What training refreshes each epoch and what
 * recall serves from.
 */
export class GraphEmbeddings {
  readonly metas: Float32Array[] = [];
  readonly profiles: (Float32Array | null)[] = [];
  /** The mean profile over users (centres the users term). */
  profileMean: Float32Array;

  constructor(
    readonly model: SageModel,
    readonly graph: InteractionGraph,
  ) {
    this.profileMean = new Float32Array(model.dim);
    this.refresh();
  }

  refresh(): void {
    const { graph, model } = this;
    for (let i = 0; i < graph.itemCount; i++)
      this.metas[i] = model.meta(itemMetaOf(graph, graph.items[i] as ItemNode), this.metas[i]);
    const mean = new Float32Array(model.dim);
    let n = 0;
    for (let u = 0; u < graph.userCount; u++) {
      const p = this.profileOfUser(u);
      this.profiles[u] = p;
      if (!p) continue;
      for (let j = 0; j < mean.length; j++) mean[j] = (mean[j] as number) + (p[j] as number);
      n += 1;
    }
    if (n > 0) for (let j = 0; j < mean.length; j++) mean[j] = (mean[j] as number) / n;
    this.profileMean = mean;
  }

  /** Meta representation of item `i`, computed on first use for items added since. */
  metaOf(i: number): Float32Array {
    let m = this.metas[i];
    if (!m) {
      m = this.model.meta(itemMetaOf(this.graph, this.graph.items[i] as ItemNode));
      this.metas[i] = m;
    }
    return m;
  }

  /** The profile of user `u` from its newest interactions, or null without any. */
  profileOfUser(u: number, exceptItem = -1): Float32Array | null {
    const edges = this.graph.itemsOf(u);
    const d = this.model.dim;
    const out = new Float32Array(d);
    let total = 0;
    let taken = 0;
    for (let k = edges.length - 1; k >= 0 && taken < this.model.config.queryFanout; k--) {
      const e = edges[k] as { other: number; weight: number };
      if (e.other === exceptItem) continue;
      const m = this.metaOf(e.other);
      for (let j = 0; j < d; j++) out[j] = (out[j] as number) + e.weight * (m[j] as number);
      total += e.weight;
      taken += 1;
    }
    if (total === 0) return null;
    for (let j = 0; j < d; j++) out[j] = (out[j] as number) / total;
    return out;
  }

  /** Mean profile of the item's newest users minus the mean over all users; null when cold. */
  usersMeanOf(i: number, exceptUser = -1): Float32Array | null {
    const edges = this.graph.usersOf(i);
    const d = this.model.dim;
    const out = new Float32Array(d);
    let n = 0;
    for (let k = edges.length - 1; k >= 0 && n < this.model.config.itemFanout; k--) {
      const u = (edges[k] as { other: number }).other;
      if (u === exceptUser) continue;
      const p = this.profiles[u] ?? this.profileOfUser(u);
      if (!p) continue;
      for (let j = 0; j < d; j++) out[j] = (out[j] as number) + (p[j] as number);
      n += 1;
    }
    if (n === 0) return null;
    const centre = this.profileMean;
    for (let j = 0; j < d; j++) out[j] = (out[j] as number) / n - (centre[j] as number);
    return out;
  }

  /** Item i's vector for the index (dim + 1). */
  itemEmbedding(i: number): Float32Array {
    return this.model.itemVector(this.metaOf(i), this.usersMeanOf(i));
  }

  /** The query of user `u` (null for a user with no interactions: use a fallback source). */
  userQuery(u: number): Float32Array | null {
    const p = this.profileOfUser(u);
    return p ? this.model.queryVector(p) : null;
  }
}

export function itemMetaOf(graph: InteractionGraph, node: ItemNode): ItemMeta {
  return {
    id: node.id,
    category: graph.categories.names[node.category] as string,
    tags: node.tags.map((t) => graph.tags.names[t] as string),
    creator: graph.creators.names[node.creator] as string,
  };
}

function indexOf(names: readonly string[]): Map<string, number> {
  return new Map(names.map((n, i) => [n, i]));
}

function addRow(
  x: Float32Array,
  at: number,
  table: Float32Array,
  row: number,
  d: number,
  s: number,
) {
  const base = row * d;
  for (let j = 0; j < d; j++) x[at + j] = (x[at + j] as number) + s * (table[base + j] as number);
}

/** out = x · W + b, W row-major [rows, cols]. */
function matVec(
  x: Float32Array,
  w: Float32Array,
  rows: number,
  cols: number,
  b: Float32Array | null,
  out: Float32Array = new Float32Array(cols),
): Float32Array {
  if (b) out.set(b);
  else out.fill(0);
  for (let r = 0; r < rows; r++) {
    const xr = x[r] as number;
    if (xr === 0) continue;
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c] = (out[c] as number) + xr * (w[base + c] as number);
  }
  return out;
}

/** Refuses weights whose shapes do not match the config and vocabularies, or that hold NaN. */
export function checkShapes(config: SageConfig, w: SageWeights): void {
  const d = config.dim;
  const want: Record<WeightName, number> = {
    catEmb: w.categories.length * d,
    tagEmb: w.tags.length * d,
    creatorEmb: w.creators.length * d,
    itemEmb: w.items.length * d,
    wMeta: 3 * d * d,
    bMeta: d,
    wQuery: d * d,
    bQuery: d,
    wSelf: d * d,
    wUsers: d * d,
    bItem: d,
    wCold: d * d,
    bCold: d,
    coldShift: 1,
  };
  if (!config.idEmbeddings && w.items.length > 0)
    throw new Error('GraphSAGE item ID rows given to a model without idEmbeddings');
  for (const name of WEIGHT_NAMES) {
    const got = w[name];
    if (got.length !== want[name])
      throw new Error(`GraphSAGE weight ${name} has ${got.length} values, expected ${want[name]}`);
    for (let k = 0; k < got.length; k++) {
      if (!Number.isFinite(got[k] as number))
        throw new Error(`GraphSAGE weight ${name} holds a non-finite value at ${k}`);
    }
  }
}
