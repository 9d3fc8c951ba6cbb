// Benchmark of the HNSW vector index (usearch) against exact search on the same data in
// the same run: build time, search latency for the serving path's top-k, recall against
// brute force. The vectors are a normalised gaussian mixture (real embeddings are
// clustered; uniform random vectors are an unrealistically hard case). Prints progress on
// stderr and one JSON object as the last line of stdout.
//
//   npm run bench:ann [-- --count 1000000 --dim 64 --k 500 --queries 2000]
//   npm run bench:ann -- --count 20000          (quick smoke)
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Rng } from '../src/util/rng.js';
import {
  ExactIndex,
  type Quantization,
  type SearchHit,
  USEARCH_DEFAULTS,
  UsearchIndex,
  type VectorItem,
} from '../src/vectors/index.js';
import { machine, tempDir } from './common.js';

export interface AnnOptions {
  count: number;
  dim: number;
  /** Hits per search: the recall stage's candidate count. */
  k: number;
  /** Searches timed. */
  queries: number;
  seed?: number;
  /** Queries whose exact top-k is computed for recall and the exact baseline. Default 200. */
  recallQueries?: number;
  /** Mixture components. Default 300. */
  centers?: number;
  /** Per-dimension noise around a (unit) center, before normalising. Default 0.08. */
  spread?: number;
  connectivity?: number;
  quantization?: Quantization;
  expansionAdd?: number;
  expansionSearch?: number;
  /** Threads for the build (0: one per core). */
  threads?: number;
}

export interface AnnResult {
  count: number;
  dim: number;
  k: number;
  queries: number;
  recall_queries: number;
  centers: number;
  spread: number;
  connectivity: number;
  quantization: Quantization;
  expansion_add: number;
  expansion_search: number;
  build_s: number;
  build_items_per_s: number;
  ann_p50_ms: number;
  ann_p99_ms: number;
  ann_max_ms: number;
  /** CPU time of the same searches (immune to other processes taking the cores). */
  ann_cpu_p50_ms: number;
  ann_cpu_p99_ms: number;
  /** |first 100 of the ANN top-k ∩ exact top 100| / 100, averaged over recall queries. */
  ann_recall_at_100: number;
  /** |ANN top-k ∩ exact top-k| / k. */
  ann_recall_at_k: number;
  exact_p50_ms: number;
  exact_p99_ms: number;
  /** Top-k excluding the 300 nearest items (over-fetch, see usearch-index.ts). */
  ann_exclude300_p99_ms: number;
  /** Top-k within one category of ten, excluding the 300 nearest items. */
  ann_category_p99_ms: number;
  /** recall@100 of that category-filtered search against exact filtered search. */
  ann_category_recall_at_100: number;
  save_s: number;
  open_s: number;
  rss_mib: number;
}

const DEFAULTS = {
  seed: 1,
  recallQueries: 200,
  centers: 300,
  spread: 0.08,
  ...USEARCH_DEFAULTS,
  threads: 0,
};

const say = (msg: string) => process.stderr.write(`${msg}\n`);

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

function round(x: number, digits = 3): number {
  return Number(x.toFixed(digits));
}

/** `n` normalised points of a gaussian mixture, as one row-major matrix. */
function mixture(rng: Rng, centers: Float32Array, n: number, dim: number, spread: number) {
  const out = new Float32Array(n * dim);
  const nCenters = centers.length / dim;
  for (let i = 0; i < n; i += 1) {
    const c = rng.int(nCenters) * dim;
    let norm2 = 0;
    for (let d = 0; d < dim; d += 1) {
      const x = (centers[c + d] as number) + spread * rng.normal();
      out[i * dim + d] = x;
      norm2 += x * x;
    }
    const inv = 1 / Math.sqrt(norm2);
    for (let d = 0; d < dim; d += 1) out[i * dim + d] = (out[i * dim + d] as number) * inv;
  }
  return out;
}

function recallAt(ann: SearchHit[], exact: SearchHit[], n: number): number {
  const truth = new Set(exact.slice(0, n).map((h) => h.id));
  let found = 0;
  for (const h of ann.slice(0, n)) if (truth.has(h.id)) found += 1;
  return found / Math.min(n, truth.size);
}

export async function measureAnn(opts: AnnOptions): Promise<AnnResult> {
  const o = { ...DEFAULTS, ...opts };
  const { count, dim, k } = o;
  const rng = new Rng(o.seed);

  say(`generating ${count} vectors (dim ${dim}, ${o.centers} clusters)...`);
  const centers = mixture(rng.fork('centers'), new Float32Array(dim), o.centers, dim, 1);
  const data = mixture(rng.fork('items'), centers, count, dim, o.spread);
  const queryData = mixture(rng.fork('queries'), centers, o.queries, dim, o.spread);
  // Ten categories, independent of the clusters (cluster picks are random).
  const items: VectorItem[] = Array.from({ length: count }, (_, i) => ({
    id: `i${i}`,
    vector: data.subarray(i * dim, (i + 1) * dim),
    attrs: { category: `c${i % 10}` },
  }));
  const query = (i: number) => queryData.subarray(i * dim, (i + 1) * dim);

  const { dir, cleanup } = await tempDir('recmaster-bench-ann-');
  try {
    const hnsw = await UsearchIndex.open({
      dim,
      dir,
      connectivity: o.connectivity,
      quantization: o.quantization,
      expansionAdd: o.expansionAdd,
      expansionSearch: o.expansionSearch,
      threads: o.threads,
    });
    say(`building HNSW (M ${o.connectivity}, ${o.quantization}, ef_add ${o.expansionAdd})...`);
    const t0 = performance.now();
    const step = 100_000;
    for (let i = 0; i < count; i += step) {
      await hnsw.upsert(items.slice(i, i + step));
      const s = (performance.now() - t0) / 1000;
      say(`  ${Math.min(i + step, count)} in ${s.toFixed(1)} s`);
    }
    const buildS = (performance.now() - t0) / 1000;

    say(`timing ${o.queries} searches for top-${k} (ef_search ${o.expansionSearch})...`);
    for (let i = 0; i < Math.min(200, o.queries); i += 1) await hnsw.search(query(i), k);
    const annMs: number[] = [];
    // CPU time too: on a shared machine the wall-clock tail includes time spent preempted.
    const annCpuMs: number[] = [];
    for (let i = 0; i < o.queries; i += 1) {
      const cpu = process.cpuUsage();
      const t = performance.now();
      await hnsw.search(query(i), k);
      annMs.push(performance.now() - t);
      const used = process.cpuUsage(cpu);
      annCpuMs.push((used.user + used.system) / 1000);
    }
    annMs.sort((a, b) => a - b);
    annCpuMs.sort((a, b) => a - b);

    const recallQueries = Math.min(o.recallQueries, o.queries);
    say(`exact top-${k} for ${recallQueries} queries...`);
    const exact = await ExactIndex.open({ dim });
    for (let i = 0; i < count; i += step) await exact.upsert(items.slice(i, i + step));
    const exactMs: number[] = [];
    let recall100 = 0;
    let recallK = 0;
    for (let i = 0; i < recallQueries; i += 1) {
      const t = performance.now();
      const truth = await exact.search(query(i), k);
      exactMs.push(performance.now() - t);
      const ann = await hnsw.search(query(i), k);
      recall100 += recallAt(ann, truth, 100);
      recallK += recallAt(ann, truth, k);
    }
    exactMs.sort((a, b) => a - b);

    // The serving path's filters: drop what the user has seen (here the worst case, the
    // 300 nearest items), and the same within one category (a tenth of the items).
    const filteredQueries = Math.min(recallQueries, 100);
    say(`timing filtered searches (${filteredQueries} queries)...`);
    const excludeMs: number[] = [];
    const categoryMs: number[] = [];
    let categoryRecall = 0;
    for (let i = 0; i < filteredQueries; i += 1) {
      const seen = new Set((await hnsw.search(query(i), 300)).map((h) => h.id));
      let t = performance.now();
      const a = await hnsw.search(query(i), k, { excludeIds: seen });
      excludeMs.push(performance.now() - t);
      const filter = { excludeIds: seen, categories: [`c${i % 10}`] };
      t = performance.now();
      const b = await hnsw.search(query(i), k, filter);
      categoryMs.push(performance.now() - t);
      if (a.length !== k || b.length !== k) throw new Error('a filtered search came up short');
      if (i < 20) categoryRecall += recallAt(b, await exact.search(query(i), 100, filter), 100);
    }
    excludeMs.sort((a, b) => a - b);
    categoryMs.sort((a, b) => a - b);
    await exact.close();
    const rssMib = process.memoryUsage().rss / 2 ** 20;

    say('saving and reopening...');
    const t1 = performance.now();
    await hnsw.save();
    const saveS = (performance.now() - t1) / 1000;
    await hnsw.close();
    const t2 = performance.now();
    const reopened = await UsearchIndex.open({ dim, dir, expansionSearch: o.expansionSearch });
    const openS = (performance.now() - t2) / 1000;
    if ((await reopened.size()) !== count) throw new Error('reopened index lost items');
    await reopened.close();

    return {
      count,
      dim,
      k,
      queries: o.queries,
      recall_queries: recallQueries,
      centers: o.centers,
      spread: o.spread,
      connectivity: o.connectivity,
      quantization: o.quantization,
      expansion_add: o.expansionAdd,
      expansion_search: o.expansionSearch,
      build_s: round(buildS, 1),
      build_items_per_s: Math.round(count / buildS),
      ann_p50_ms: round(quantile(annMs, 0.5)),
      ann_p99_ms: round(quantile(annMs, 0.99)),
      ann_max_ms: round(annMs.at(-1) ?? 0),
      ann_cpu_p50_ms: round(quantile(annCpuMs, 0.5)),
      ann_cpu_p99_ms: round(quantile(annCpuMs, 0.99)),
      ann_recall_at_100: round(recall100 / recallQueries, 4),
      ann_recall_at_k: round(recallK / recallQueries, 4),
      exact_p50_ms: round(quantile(exactMs, 0.5), 1),
      exact_p99_ms: round(quantile(exactMs, 0.99), 1),
      ann_exclude300_p99_ms: round(quantile(excludeMs, 0.99)),
      ann_category_p99_ms: round(quantile(categoryMs, 0.99)),
      ann_category_recall_at_100: round(categoryRecall / Math.min(filteredQueries, 20), 4),
      save_s: round(saveS, 2),
      open_s: round(openS, 2),
      rss_mib: Math.round(rssMib),
    };
  } finally {
    await cleanup();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      count: { type: 'string', default: '1000000' },
      dim: { type: 'string', default: '64' },
      k: { type: 'string', default: '500' },
      queries: { type: 'string', default: '2000' },
      seed: { type: 'string', default: String(DEFAULTS.seed) },
      'recall-queries': { type: 'string', default: String(DEFAULTS.recallQueries) },
      centers: { type: 'string', default: String(DEFAULTS.centers) },
      spread: { type: 'string', default: String(DEFAULTS.spread) },
      connectivity: { type: 'string', default: String(DEFAULTS.connectivity) },
      quantization: { type: 'string', default: DEFAULTS.quantization },
      'expansion-add': { type: 'string', default: String(DEFAULTS.expansionAdd) },
      'expansion-search': { type: 'string', default: String(DEFAULTS.expansionSearch) },
      threads: { type: 'string', default: String(DEFAULTS.threads) },
    },
  });
  const result = await measureAnn({
    count: Number(values.count),
    dim: Number(values.dim),
    k: Number(values.k),
    queries: Number(values.queries),
    seed: Number(values.seed),
    recallQueries: Number(values['recall-queries']),
    centers: Number(values.centers),
    spread: Number(values.spread),
    connectivity: Number(values.connectivity),
    quantization: values.quantization as Quantization,
    expansionAdd: Number(values['expansion-add']),
    expansionSearch: Number(values['expansion-search']),
    threads: Number(values.threads),
  });
  console.log(JSON.stringify({ bench: 'ann', ...result, machine: machine() }));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
