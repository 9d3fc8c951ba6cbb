// npm run eval:rank — the ranker on logged impressions from the real serving path, in one run:
//
// 1. The simulator's users first get the simulator's own policy (the warm-up history); then
//    GraphSAGE is trained on that history and the recommendation server takes over, in
//    process. Without a ranker it shows recall candidates in random order ("bootstrap":
//    uniform logging over recall), and logs every impression with its feature snapshot.
// 2. The joiner labels the impressions; samples are split by time (the first 75 % train,
//    the newest 25 % test).
// 3. MMoE, shared-bottom and single-task rankers are trained on the same samples (early
//    stopping on the newest 10 % of the training part) and evaluated on the test samples at
//    their logged positions: click AUC, user-grouped AUC, and NDCG@10 of watched seconds
//    within each request; the oracle ranks by the simulator's true click probability and
//    expected watch time at the impression's time. The oracle is also scored without each
//    per-entity idiosyncrasy the simulator draws (a user's own interest noise, an item's
//    hidden share, its quality) and without all three (`oracle_auc_ctr_without`): what is
//    left is what metadata and favourite categories tell, a ceiling for a ranker that learns
//    each user and item from a few clicks.
//    A logistic factorisation model on the same samples, without features, is the simple
//    baseline (bench/factorisation-baseline.ts).
// 4. The MMoE paper's synthetic correlation sweep (bench/mmoe-sweep.ts).
//
//   npm run eval:rank [-- --users 2000 --items 3000 --warmup-s 1800 --log-s 2400 --rps 10
//                        --id-dim 8 --sweep-samples 12000 --sweep-epochs 60 --sweep-seeds 2
//                        --hidden-share 0.3 --nonlinearity 0.3 --stop-on loss|click_auc]
import { parseArgs } from 'node:util';
import { positiveInt } from '../src/cli/parse.js';
import type { LabelledSample } from '../src/events/schemas.js';
import { DEFAULT_SAGE_CONFIG } from '../src/graph/sage-model.js';
import { trainOffline } from '../src/learn/offline-train.js';
import { examplesOf } from '../src/learn/samples.js';
import { EmbeddedStack, PhasedRecommender } from '../src/loop/stack.js';
import { FeatureVectorizer } from '../src/rank/feature-vector.js';
import { auc, groupedAuc, ndcgAtK } from '../src/rank/metrics.js';
import type { Architecture } from '../src/rank/multitask.js';
import { defaultRankerConfig } from '../src/rank/ranker.js';
import { Simulator } from '../src/sim/index.js';
import { Rng } from '../src/util/rng.js';
import { machine, tempDir } from './common.js';
import { factorisationScores } from './factorisation-baseline.js';
import { correlationSweep } from './mmoe-sweep.js';

const { values: args } = parseArgs({
  options: {
    users: { type: 'string', default: '2000' },
    items: { type: 'string', default: '3000' },
    'warmup-s': { type: 'string', default: '1800' },
    'log-s': { type: 'string', default: '2400' },
    rps: { type: 'string', default: '10' },
    epochs: { type: 'string', default: '6' },
    seed: { type: 'string', default: '17' },
    'sweep-samples': { type: 'string', default: '12000' },
    /** The sweep's most epochs: each model stops early on its own validation samples. */
    'sweep-epochs': { type: 'string', default: '60' },
    'sweep-seeds': { type: 'string', default: '2' },
    /** 'false': GraphSAGE without item ID rows (what recall and ctx.gnn_score were before). */
    'gnn-id-embeddings': { type: 'string', default: 'true' },
    /** The rankers' ID embedding width (the serving default is 8: the first layer's cost). */
    'id-dim': { type: 'string' },
    /** Simulator knobs (default: the simulator's): what share of appeal metadata hides, and
     *  the strength of the sin terms in the true affinity. For finding what limits the ratio. */
    'hidden-share': { type: 'string' },
    nonlinearity: { type: 'string' },
    /** What the rankers' early stopping watches: 'loss' (as train-rank) or 'click_auc'. */
    'stop-on': { type: 'string', default: 'loss' },
  },
});
const say = (msg: string) => process.stderr.write(`[eval:rank] ${msg}\n`);
const warmupS = Number(args['warmup-s']);
const logS = Number(args['log-s']);

/** Per-request NDCG@10 of watched seconds, averaged over requests with any watch. */
function watchNdcg(samples: readonly LabelledSample[], scores: ArrayLike<number>): number {
  const byRequest = new Map<string, number[]>();
  samples.forEach((s, i) => {
    const list = byRequest.get(s.requestId) ?? [];
    list.push(i);
    byRequest.set(s.requestId, list);
  });
  let sum = 0;
  let n = 0;
  for (const idx of byRequest.values()) {
    const gains = idx.map((i) => (samples[i] as LabelledSample).watchedS);
    if (!gains.some((g) => g > 0)) continue;
    sum += ndcgAtK(
      idx.map((i) => scores[i] as number),
      gains,
      10,
    );
    n++;
  }
  return n === 0 ? 0 : sum / n;
}

/** An option's value through one of the CLI's parsers, its complaint naming the option. */
function option<T>(name: string, value: string, parse: (v: string) => T): T {
  try {
    return parse(value);
  } catch (err) {
    throw new Error(`--${name} ${(err as Error).message}, got "${value}"`);
  }
}

const stopOn = option('stop-on', args['stop-on'], (v) => {
  if (v !== 'click_auc' && v !== 'loss') throw new Error("must be 'click_auc' or 'loss'");
  return v;
});

/** The rankers' ID width: --id-dim, else the serving default. */
const idDim =
  args['id-dim'] === undefined
    ? defaultRankerConfig(1).idDim
    : option('id-dim', args['id-dim'], positiveInt);

async function main() {
  const { dir, cleanup } = await tempDir('eval-rank-');
  const stack = await EmbeddedStack.open({ dataDir: dir, windowMs: 300_000 });
  try {
    const users = Number(args.users);
    const seed = Number(args.seed);
    const startTime = Date.UTC(2026, 0, 1);
    const switcher = new PhasedRecommender(
      () => sim.policy,
      [
        {
          atMs: startTime + warmupS * 1000,
          setup: async () => {
            say(`warm-up done at ${sim.stats.simulatedS.toFixed(0)} s: training GraphSAGE`);
            const version = await stack.trainGnn(3, undefined, {
              ...DEFAULT_SAGE_CONFIG,
              idEmbeddings: args['gnn-id-embeddings'] !== 'false',
            });
            say(`GraphSAGE ${version}; the server takes over (bootstrap: uniform over recall)`);
            return (await stack.startServer({ seed })).service;
          },
        },
      ],
    );
    const sim: Simulator = new Simulator(
      {
        users,
        items: Number(args.items),
        seed,
        startTime,
        requestsPerSecond: Number(args.rps),
        newItemsPerMinute: 5,
        ...(args['hidden-share'] === undefined
          ? {}
          : { hiddenShare: Number(args['hidden-share']) }),
        ...(args.nonlinearity === undefined ? {} : { nonlinearity: Number(args.nonlinearity) }),
      },
      { recommender: switcher },
    );
    let lastSay = 0;
    const started = performance.now();
    await sim.run({
      sink: stack.sink(),
      durationS: warmupS + logS,
      onProgress: (s) => {
        if (performance.now() - lastSay > 10_000) {
          lastSay = performance.now();
          say(`simulated ${s.simulatedS.toFixed(0)} s, ${s.requests} requests`);
        }
      },
    });
    const samples = (await stack.newSamples(true))
      .filter((s) => s.modelVersion === 'bootstrap')
      .sort((a, b) => a.impressionTs - b.impressionTs);
    say(
      `${samples.length} labelled server impressions (${((performance.now() - started) / 1000).toFixed(0)} s)`,
    );
    const cut = Math.floor(samples.length * 0.75);
    const train = samples.slice(0, cut);
    const test = samples.slice(cut);
    const vectorizer = new FeatureVectorizer();
    const testData = examplesOf(vectorizer, test);
    const clicks = testData.clicked;
    const groups = test.map((s) => s.userId);

    const oracleP = test.map((s) =>
      sim.truth.clickProbability(s.userId, s.itemId, s.position, s.impressionTs),
    );
    const oracleW = test.map((s) =>
      sim.truth.expectedWatchSeconds(s.userId, s.itemId, s.position, s.impressionTs),
    );
    const results: Record<string, { auc: number; grouped: number; watch: number; s: number }> = {};
    for (const architecture of ['mmoe', 'shared_bottom', 'single_task'] as Architecture[]) {
      const t = performance.now();
      const trained = await trainOffline(train, vectorizer, {
        config: {
          ...defaultRankerConfig(vectorizer.width, { users, items: Number(args.items) }),
          idDim,
          architecture,
        },
        rng: new Rng(Number(args.seed)).fork(architecture),
        maxEpochs: Number(args.epochs),
        stopOn,
        patience: 1,
        onEpoch: (e) =>
          say(
            `${architecture} epoch ${e.epoch}: loss ${e.loss.toFixed(4)}, validation AUC ${e.validationAuc.toFixed(4)}`,
          ),
      });
      const r = trained.ranker;
      const [p, w] = r.predict(r.inputs(testData.examples), testData.examples.length);
      results[architecture] = {
        auc: auc(p, clicks),
        grouped: groupedAuc(p, clicks, groups),
        watch: watchNdcg(test, w),
        s: (performance.now() - t) / 1000,
      };
      r.dispose();
    }
    say('factorisation baseline');
    const factorisation = factorisationScores(train, test, {
      seed: Number(args.seed),
      onEpoch: (e, loss) => say(`factorisation epoch ${e}: validation loss ${loss.toFixed(4)}`),
    });
    const oracle = {
      auc: auc(oracleP, clicks),
      grouped: groupedAuc(oracleP, clicks, groups),
      watch: watchNdcg(test, oracleW),
    };
    // The oracle that does not know some per-entity idiosyncrasies: how much of its AUC rests
    // on what a ranker can only learn per user or per item from their few clicks.
    const knowing = (known: { userNoise: boolean; itemHidden: boolean; quality: boolean }) =>
      auc(
        test.map((s) =>
          sim.truth.clickProbabilityKnowing(s.userId, s.itemId, s.position, s.impressionTs, known),
        ),
        clicks,
      );
    const partialOracle = {
      without_user_noise: knowing({ userNoise: false, itemHidden: true, quality: true }),
      without_item_hidden: knowing({ userNoise: true, itemHidden: false, quality: true }),
      without_item_quality: knowing({ userNoise: true, itemHidden: true, quality: false }),
      shared_parts_only: knowing({ userNoise: false, itemHidden: false, quality: false }),
    };
    say('MMoE synthetic correlation sweep');
    const sweep = await correlationSweep({
      samples: Number(args['sweep-samples']),
      epochs: Number(args['sweep-epochs']),
      seeds: Number(args['sweep-seeds']),
      experts: 8,
      expertDim: 16,
      // Early stopping: the click task overfits within a few epochs, MMoE faster, so a fixed
      // epoch count compares how fast each overfits (README, eval:mmoe-synthetic).
      patience: 3,
      onRow: (row) => say(JSON.stringify(row)),
    });
    const r4 = (x: number) => Number(x.toFixed(4));
    const mmoe = results.mmoe as { auc: number; grouped: number; watch: number };
    console.log(
      JSON.stringify({
        bench: 'eval-rank',
        id_dim: idDim,
        stop_on: stopOn,
        sim: { hidden_share: sim.config.hiddenShare, nonlinearity: sim.config.nonlinearity },
        train_samples: train.length,
        test_samples: test.length,
        test_ctr: r4(clicks.reduce((a, b) => a + b, 0) / clicks.length),
        auc_ctr: r4(mmoe.auc),
        oracle_auc_ctr: r4(oracle.auc),
        auc_ctr_over_oracle: r4(mmoe.auc / oracle.auc),
        // Oracle AUCs with idiosyncrasies replaced by their means (Truth.clickProbabilityKnowing).
        oracle_auc_ctr_without: Object.fromEntries(
          Object.entries(partialOracle).map(([k, v]) => [k, r4(v)]),
        ),
        auc_ctr_over_shared_parts_oracle: r4(mmoe.auc / partialOracle.shared_parts_only),
        auc_ctr_shared_bottom: r4((results.shared_bottom as { auc: number }).auc),
        auc_ctr_single_task: r4((results.single_task as { auc: number }).auc),
        // Logistic factorisation on the same samples, no features (factorisation-baseline.ts).
        auc_ctr_factorisation: r4(auc(factorisation, clicks)),
        grouped_auc_ctr_factorisation: r4(groupedAuc(factorisation, clicks, groups)),
        grouped_auc_ctr: r4(mmoe.grouped),
        oracle_grouped_auc_ctr: r4(oracle.grouped),
        grouped_auc_ctr_shared_bottom: r4((results.shared_bottom as { grouped: number }).grouped),
        grouped_auc_ctr_single_task: r4((results.single_task as { grouped: number }).grouped),
        watch_metric_name: 'mean NDCG@10 of watched seconds per request',
        watch_metric: r4(mmoe.watch),
        oracle_watch_metric: r4(oracle.watch),
        watch_metric_shared_bottom: r4((results.shared_bottom as { watch: number }).watch),
        watch_metric_single_task: r4((results.single_task as { watch: number }).watch),
        train_s: Object.fromEntries(
          Object.entries(results).map(([k, v]) => [k, Number(v.s.toFixed(1))]),
        ),
        correlation_sweep: sweep,
        goal: { auc_ctr_over_oracle: 0.97 },
        machine: machine(),
      }),
    );
  } finally {
    await stack.close();
    await cleanup();
  }
}

await main();
