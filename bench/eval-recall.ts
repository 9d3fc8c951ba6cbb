// Recall evaluation of GraphSAGE against the simulator's oracle and simple baselines.
//
// The simulator runs for `--train-s` + `--holdout-s` of event time. The graph holds what
// happened before the cut T; the model is trained on it. At T every user with history asks for
// 100 items out of every item that exists at T, minus the items it already interacted with.
// The truth is what each user then clicks during the holdout. A clicked item is "warm" when it
// had interactions before T and "cold" when it had none (metadata only). recall@100 is computed
// per user over the warm and the cold clicks separately (one ranked list each user), averaged
// over users with at least one such click:
//   graphsage   query(u) · item(i), exact top 100 (the ANN is measured by bench:recall)
//   popularity  clicks before T (cold items have none, so never make the list)
//   random      a uniform random list
//   oracle      the simulator's true click affinity at T
//   metadata oracle (diagnostic) the true affinity with the item's vector replaced by its
//               metadata-explained part and no quality: the best any metadata-only model can do
//
//   npm run eval:recall [-- --users 2000 --items 5000 --train-s 3600 --holdout-s 1200 --epochs 12]
//   (also --dim, --id-embeddings false, --item-fanout, --user-fanout, --query-fanout, rates)
import { parseArgs } from 'node:util';
import type { Event } from '../src/events/schemas.js';
import { InteractionGraph } from '../src/graph/graph.js';
import { DEFAULT_SAGE_CONFIG, GraphEmbeddings } from '../src/graph/sage-model.js';
import { trainSage } from '../src/graph/sage-trainer.js';
import { type EventSink, Simulator } from '../src/sim/index.js';
import { Rng } from '../src/util/rng.js';
import { machine } from './common.js';

const { values: args } = parseArgs({
  options: {
    users: { type: 'string', default: '2000' },
    items: { type: 'string', default: '5000' },
    'new-items-per-minute': { type: 'string', default: '60' },
    'train-s': { type: 'string', default: '3600' },
    'holdout-s': { type: 'string', default: '1200' },
    epochs: { type: 'string', default: '12' },
    'learning-rate': { type: 'string' },
    'sparse-learning-rate': { type: 'string' },
    'cold-dropout': { type: 'string' },
    'item-fanout': { type: 'string' },
    'user-fanout': { type: 'string' },
    'query-fanout': { type: 'string' },
    dim: { type: 'string' },
    'id-embeddings': { type: 'string' },
    seed: { type: 'string', default: '7' },
    k: { type: 'string', default: '100' },
  },
});
const K = Number(args.k);
const trainS = Number(args['train-s']);
const holdoutS = Number(args['holdout-s']);
const say = (msg: string) => process.stderr.write(`${msg}\n`);

/** Keeps what the graph and the truth need: item upserts, clicks and watches. */
class InteractionSink implements EventSink {
  readonly events: Event[] = [];
  emit(events: Event[]): Promise<void> {
    for (const e of events) if (e.type !== 'impression') this.events.push(e);
    return Promise.resolve();
  }
}

const sim = new Simulator({
  seed: Number(args.seed),
  users: Number(args.users),
  items: Number(args.items),
  newItemsPerMinute: Number(args['new-items-per-minute']),
});
const sink = new InteractionSink();
say(`simulating ${trainS + holdoutS} s of event time...`);
await sim.run({ sink, durationS: trainS + holdoutS });
const cut = sim.config.startTime + trainS * 1000;

function addTo(map: Map<string, Set<string>>, key: string, value: string): void {
  const set = map.get(key) ?? new Set<string>();
  set.add(value);
  map.set(key, set);
}

const graph = new InteractionGraph();
const interacted = new Set<string>(); // items with any interaction before T
const seenBefore = new Map<string, Set<string>>(); // user -> items interacted with before T
const clicksBefore = new Map<string, number>(); // item -> clicks before T (popularity)
const truth = new Map<string, Set<string>>(); // user -> items clicked during the holdout
for (const e of sink.events) {
  if (e.type === 'item_upsert') {
    if (e.createdAt < cut) graph.apply(e);
    continue;
  }
  if (e.type !== 'click' && e.type !== 'watch') continue;
  if (e.ts < cut) {
    graph.apply(e);
    interacted.add(e.itemId);
    if (e.type === 'click') clicksBefore.set(e.itemId, (clicksBefore.get(e.itemId) ?? 0) + 1);
    addTo(seenBefore, e.userId, e.itemId);
  } else if (e.type === 'click' && graph.item(e.itemId)) {
    addTo(truth, e.userId, e.itemId);
  }
}
const pool = graph.items.map((n) => n.id);
const coldCount = pool.filter((id) => !interacted.has(id)).length;
say(
  `graph: ${graph.userCount} users, ${graph.itemCount} items (${coldCount} cold), ${graph.interactions} interactions; cut at ${trainS} s`,
);

const trained = await trainSage(
  graph,
  {
    epochs: Number(args.epochs),
    ...(args['learning-rate'] ? { learningRate: Number(args['learning-rate']) } : {}),
    ...(args['sparse-learning-rate']
      ? { sparseLearningRate: Number(args['sparse-learning-rate']) }
      : {}),
    ...(args['cold-dropout'] ? { coldDropout: Number(args['cold-dropout']) } : {}),
    onProgress: ({ step, steps, loss }) => {
      if (step % 50 === 0 || step === steps) say(`  step ${step}/${steps} loss ${loss.toFixed(4)}`);
    },
  },
  {
    ...DEFAULT_SAGE_CONFIG,
    ...(args['item-fanout'] ? { itemFanout: Number(args['item-fanout']) } : {}),
    ...(args['user-fanout'] ? { userFanout: Number(args['user-fanout']) } : {}),
    ...(args['query-fanout'] ? { queryFanout: Number(args['query-fanout']) } : {}),
    ...(args.dim ? { dim: Number(args.dim) } : {}),
    ...(args['id-embeddings'] ? { idEmbeddings: args['id-embeddings'] !== 'false' } : {}),
  },
);
say(`trained in ${trained.seconds.toFixed(1)} s (${trained.steps} steps)`);
const emb = new GraphEmbeddings(trained.model, graph);
const itemVecs = pool.map((_, i) => emb.itemEmbedding(i));

const rng = new Rng(Number(args.seed)).fork('random-baseline');

interface Totals {
  coldOnly: number;
  warm: number;
  warmUsers: number;
  cold: number;
  coldUsers: number;
}
const methods = ['graphsage', 'popularity', 'random', 'oracle', 'metadata_oracle'] as const;
const totals = Object.fromEntries(
  methods.map((m) => [m, { warm: 0, warmUsers: 0, cold: 0, coldUsers: 0, coldOnly: 0 }]),
) as Record<(typeof methods)[number], Totals>;

/** Indexes of the k highest scores (seen items excluded). */
function topK(scores: Float64Array, exclude: Set<number>, k: number): number[] {
  const idx: number[] = [];
  for (let i = 0; i < scores.length; i++) if (!exclude.has(i)) idx.push(i);
  idx.sort((a, b) => (scores[b] as number) - (scores[a] as number) || a - b);
  return idx.slice(0, k);
}

/** The click-task signal a1 with v = sqrt(1 - h)·vObs (what metadata can explain). */
function metadataAffinity(userIdx: number, itemIdx: number): number {
  const u = sim.world.interestAt(userIdx, cut);
  const vObs = sim.world.item(itemIdx).vObs;
  const scale = Math.sqrt(1 - sim.config.hiddenShare);
  let l1 = 0;
  for (let d = 0; d < u.length; d++)
    l1 += (sim.truth.w1[d] as number) * (u[d] as number) * scale * (vObs[d] as number);
  let a1 = l1;
  for (let i = 0; i < sim.truth.alpha.length; i++)
    a1 +=
      sim.config.nonlinearity *
      Math.sin((sim.truth.alpha[i] as number) * l1 + (sim.truth.beta[i] as number));
  return a1;
}

const warmIndexes = new Set(pool.flatMap((id, i) => (interacted.has(id) ? [i] : [])));
let evaluated = 0;
for (const [userId, clicked] of truth) {
  const u = graph.userIndexOf(userId);
  if (u === undefined) continue; // no history before T: nothing to query with
  const seen = seenBefore.get(userId) ?? new Set<string>();
  const exclude = new Set<number>();
  for (const id of seen) {
    const i = graph.itemIndexOf(id);
    if (i !== undefined) exclude.add(i);
  }
  const warmTruth = [...clicked].filter((id) => !seen.has(id) && interacted.has(id));
  const coldTruth = [...clicked].filter((id) => !interacted.has(id));
  if (warmTruth.length === 0 && coldTruth.length === 0) continue;
  evaluated += 1;
  const query = emb.userQuery(u);
  const userIdx = sim.world.userIndex(userId);
  const lists: Record<(typeof methods)[number], Float64Array> = {
    graphsage: new Float64Array(pool.length),
    popularity: new Float64Array(pool.length),
    random: new Float64Array(pool.length),
    oracle: new Float64Array(pool.length),
    metadata_oracle: new Float64Array(pool.length),
  };
  for (let i = 0; i < pool.length; i++) {
    const v = itemVecs[i] as Float32Array;
    let s = 0;
    if (query) for (let j = 0; j < v.length; j++) s += (query[j] as number) * (v[j] as number);
    lists.graphsage[i] = s;
    lists.popularity[i] = clicksBefore.get(pool[i] as string) ?? 0;
    lists.random[i] = rng.uniform();
    const worldItem = sim.world.itemIndex(pool[i] as string);
    lists.oracle[i] = sim.truth.affinityIdx(userIdx, worldItem, cut);
    lists.metadata_oracle[i] = metadataAffinity(userIdx, worldItem);
  }
  for (const m of methods) {
    const top = new Set(topK(lists[m], exclude, K).map((i) => pool[i] as string));
    const t = totals[m];
    if (warmTruth.length > 0) {
      t.warm += warmTruth.filter((id) => top.has(id)).length / warmTruth.length;
      t.warmUsers += 1;
    }
    if (coldTruth.length > 0) {
      t.cold += coldTruth.filter((id) => top.has(id)).length / coldTruth.length;
      t.coldUsers += 1;
      // Diagnostic: the same ranking among cold items only (how well it orders them,
      // apart from how it places them against warm ones).
      const coldTop = new Set(topK(lists[m], warmIndexes, K).map((i) => pool[i] as string));
      t.coldOnly += coldTruth.filter((id) => coldTop.has(id)).length / coldTruth.length;
    }
  }
}

const recall = (m: (typeof methods)[number], kind: 'warm' | 'cold') => {
  const t = totals[m];
  const users = kind === 'warm' ? t.warmUsers : t.coldUsers;
  return users === 0 ? 0 : Number(((kind === 'warm' ? t.warm : t.cold) / users).toFixed(4));
};
const result = {
  bench: 'eval-recall',
  k: K,
  users_evaluated: evaluated,
  users_with_warm_clicks: totals.graphsage.warmUsers,
  users_with_cold_clicks: totals.graphsage.coldUsers,
  items: pool.length,
  cold_items: coldCount,
  interactions: graph.interactions,
  train_s: Number(trained.seconds.toFixed(1)),
  recall_at_100_warm: recall('graphsage', 'warm'),
  recall_at_100_cold: recall('graphsage', 'cold'),
  oracle_recall_at_100_warm: recall('oracle', 'warm'),
  oracle_recall_at_100_cold: recall('oracle', 'cold'),
  popularity_recall_at_100_warm: recall('popularity', 'warm'),
  popularity_recall_at_100_cold: recall('popularity', 'cold'),
  random_recall_at_100_warm: recall('random', 'warm'),
  random_recall_at_100_cold: recall('random', 'cold'),
  metadata_oracle_recall_at_100_warm: recall('metadata_oracle', 'warm'),
  metadata_oracle_recall_at_100_cold: recall('metadata_oracle', 'cold'),
  cold_only_pool_recall_at_100: Number(
    (totals.graphsage.coldOnly / Math.max(1, totals.graphsage.coldUsers)).toFixed(4),
  ),
  oracle_cold_only_pool_recall_at_100: Number(
    (totals.oracle.coldOnly / Math.max(1, totals.oracle.coldUsers)).toFixed(4),
  ),
  warm_vs_oracle: Number((recall('graphsage', 'warm') / recall('oracle', 'warm')).toFixed(3)),
  cold_vs_oracle: Number((recall('graphsage', 'cold') / recall('oracle', 'cold')).toFixed(3)),
  machine: machine(),
};
console.log(JSON.stringify(result));
