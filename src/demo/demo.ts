// `recmaster demo`: the whole loop on one machine, in one process.
//
// First run (an empty data directory):
//   1. warm-up history: the simulator's users with the simulator's own policy (unpaced),
//      features computed as it goes;
//   2. GraphSAGE trained on that history; the server starts (HTTP, with the dashboard);
//   3. bootstrap logging: the server shows recall candidates in random order (unpaced, in
//      process) and logs them with their feature snapshots; the joiner labels them;
//   4. the first ranker trained offline on those samples and published.
// Then, every run: the live phase in real time. The simulated users ask the server over HTTP
// and send their clicks and watches to POST /events; the feature engine, the joiner and the
// online trainer (a new version every 100 samples, hot-swapped by the server) run alongside.
// Users are split by hash: half are served by the learning model, half by the first ranker
// frozen, so the dashboard can show what learning buys. Interest drift hits a share of the
// users at --drift-at seconds into the live phase.
//
// Ctrl-C (or --duration) stops it cleanly: every component checkpoints, and the next run
// resumes from the log, the features, the joiner's state and the newest models.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { registerDashboard } from '../dashboard/routes.js';
import { RecmasterError } from '../errors.js';
import type { Marker } from '../events/schemas.js';
import { GraphModelStore } from '../graph/model-store.js';
import { trainOffline } from '../learn/offline-train.js';
import { OnlineTrainer } from '../learn/online-trainer.js';
import { ArmRouter, LearningLoop } from '../loop/learning-loop.js';
import { EmbeddedStack, PhasedRecommender } from '../loop/stack.js';
import { FeatureVectorizer } from '../rank/feature-vector.js';
import { RankerModelStore } from '../rank/model-store.js';
import { defaultRankerConfig } from '../rank/ranker.js';
import type { RecommendServer } from '../serve/server.js';
import { HttpEventSink, HttpRecommender, Simulator } from '../sim/index.js';
import { Rng } from '../util/rng.js';
import { LiveStats } from './live-stats.js';

export interface DemoOptions {
  dataDir: string;
  users: number;
  items: number;
  /** Live requests per second. */
  rate: number;
  seed: number;
  host: string;
  port: number;
  /** Seconds into the live phase when interest drift happens (null: never). */
  driftAt: number | null;
  driftShare: number;
  /** Simulated seconds of warm-up history and of bootstrap logging (first run only). */
  warmupS: number;
  bootstrapS: number;
  /** Live seconds before stopping (null: until the signal). */
  durationS: number | null;
  frozenShare: number;
  signal: AbortSignal;
  /** Progress for people (stderr). */
  say: (msg: string) => void;
  /** Called once the server listens. */
  onListening?: (url: string) => void;
}

interface DemoState {
  runs: number;
  /** Event time the last run reached: the next one continues from there. */
  eventTimeMs: number;
  seed: number;
  users: number;
  items: number;
}

const DEMO_STATE = 'demo.json';
/** The joiner's attribution window, which is also how long labels take to be final. */
const LABEL_DELAY_MS = 60_000;

async function readState(dataDir: string): Promise<DemoState | null> {
  try {
    return JSON.parse(await readFile(path.join(dataDir, DEMO_STATE), 'utf8')) as DemoState;
  } catch {
    return null;
  }
}

export async function runDemo(opts: DemoOptions): Promise<ReturnType<LiveStats['summary']>> {
  const { say } = opts;
  const previous = await readState(opts.dataDir);
  if (
    previous &&
    (previous.users !== opts.users || previous.items !== opts.items || previous.seed !== opts.seed)
  )
    throw new Error(
      `${opts.dataDir} holds a demo of ${previous.users} users, ${previous.items} items, seed ${previous.seed}: ` +
        'use the same options to resume it, or another --data-dir to start a new one',
    );
  // A one-minute attribution window: labels (negatives especially) are final a minute after
  // the impression, so the live model learns within a minute; watches longer than that count
  // as clicks with no watch time.
  const stack = await EmbeddedStack.open({ dataDir: opts.dataDir, windowMs: LABEL_DELAY_MS });
  const vectorizer = new FeatureVectorizer();
  // Told the slots, the stores refuse models of another feature catalogue (a directory from
  // a build that had other features) with a clear error instead of failing every request.
  const slots = vectorizer.slotNames;
  const rankers = new RankerModelStore(stack.paths.ranker, undefined, slots);
  const startTime = previous ? previous.eventTimeMs + 1000 : Date.UTC(2026, 0, 1);
  const world = {
    users: opts.users,
    items: opts.items,
    seed: opts.seed,
    runId: (previous?.runs ?? 0) + 1,
    newItemsPerMinute: 10,
  };
  let trainer: OnlineTrainer | null = null;
  let lastEventMs = startTime;
  try {
    // 1-4: the first run prepares models; a resumed run has them.
    let server: RecommendServer;
    if (!(await new GraphModelStore(stack.paths.gnn).latest()) || !(await rankers.current())) {
      server = await prepare(stack, opts, vectorizer, rankers, world, startTime);
      lastEventMs = startTime + (opts.warmupS + opts.bootstrapS) * 1000;
    } else {
      say('resuming: models found in the data directory');
      server = await stack.startServer({ seed: opts.seed });
    }

    // The live phase.
    // The frozen arm serves the first ranker, kept apart from the online versions (which are
    // pruned to the newest 50); a demo directory from before that falls back to the current one.
    const first =
      (await frozenStore(stack, slots).loadCurrent(new Rng(opts.seed).fork('frozen'))) ??
      (await rankers.loadCurrent(new Rng(opts.seed).fork('frozen')));
    if (!first) throw new Error('no ranker to serve');
    trainer = await OnlineTrainer.open({
      store: rankers,
      vectorizer,
      rng: new Rng(opts.seed).fork('online'),
    });
    const frozenService = server.pinned({
      version: `${first.version}-frozen`,
      ranker: first.ranker,
    });
    const liveStats = new LiveStats(stack.engine, () => server.service);
    // Samples are scored and learned from once final, in impression order: on arrival the
    // first minute would be clicks only, and the dashboard's online AUC would score non-clicks
    // with a newer version than clicks (eval:drift measured ~0.04 of optimism).
    const loop = new LearningLoop(trainer, first.ranker, null, vectorizer, opts.frozenShare, {
      finalAfterMs: LABEL_DELAY_MS,
    });
    liveStats.loop = loop;
    server.route(
      liveStats.observe(
        new ArmRouter({ online: server.service, frozen: frozenService }, opts.frozenShare),
      ),
    );
    await registerDashboard(server.app, liveStats);
    let url: string;
    try {
      url = await server.app.listen({ host: opts.host, port: opts.port });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE')
        throw new RecmasterError(
          'E_CONFIG',
          `port ${opts.port} on ${opts.host} is in use: pass --port <another> (or 0 for any free port)`,
        );
      throw err;
    }
    opts.onListening?.(url);
    liveStats.start();

    const liveStart = lastEventMs + 1000;
    const sim = new Simulator(
      {
        ...world,
        runId: world.runId + 1000, // the live phase's own ids, apart from this run's warm-up
        startTime: liveStart,
        requestsPerSecond: opts.rate,
        driftAtS: opts.driftAt,
        driftShare: opts.driftShare,
        slateSize: 10,
      },
      { recommender: new HttpRecommender({ baseUrl: url }) },
    );
    const http = new HttpEventSink({ baseUrl: url });
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    // A stop asked for while the first run prepared its models has fired already: the listener
    // would never be called, and the demo would go on live.
    if (opts.signal.aborted) onAbort();
    else opts.signal.addEventListener('abort', onAbort);
    const timer = opts.durationS === null ? undefined : setTimeout(onAbort, opts.durationS * 1000);
    const loops = [
      stack.engine.run(stop.signal),
      (async () => {
        while (!stop.signal.aborted) {
          const samples = (await stack.newSamples()).filter(
            (s) => s.modelVersion !== 'bootstrap' && s.modelVersion !== 'sim-policy',
          );
          await loop.learn(samples);
          await new Promise((r) => setTimeout(r, 500));
        }
      })(),
    ];
    say(
      `live: ${opts.rate} requests/s from ${opts.users} simulated users; dashboard at ${url}/dashboard`,
    );
    try {
      await sim.run({
        speed: 1,
        signal: stop.signal,
        drain: false,
        sink: {
          emit: async (events) => {
            for (const e of events)
              if (e.type === 'marker')
                liveStats.marker((e as Marker).name, JSON.stringify(e.detail));
            await http.emit(events);
            lastEventMs = Math.max(lastEventMs, ...events.map((e) => e.ts));
          },
        },
      });
    } finally {
      clearTimeout(timer);
      opts.signal.removeEventListener('abort', onAbort);
      stop.abort();
      const t = performance.now();
      await Promise.all(loops);
      // Events that arrived since the engine's last step: into the store before stopping, so
      // the next run does not start with a backlog.
      await stack.engine.catchUp();
      say(`stopped the loops in ${Math.round(performance.now() - t)} ms`);
      liveStats.stop();
    }
    return liveStats.summary();
  } finally {
    trainer?.dispose();
    const closing = performance.now();
    await stack.close();
    say(`closed the stack (checkpoints written) in ${Math.round(performance.now() - closing)} ms`);
    const state: DemoState = {
      runs: world.runId,
      eventTimeMs: lastEventMs,
      seed: opts.seed,
      users: opts.users,
      items: opts.items,
    };
    await writeFile(path.join(opts.dataDir, DEMO_STATE), `${JSON.stringify(state, null, 2)}\n`);
  }
}

function frozenStore(stack: EmbeddedStack, featureSlots?: readonly string[]): RankerModelStore {
  return new RankerModelStore(`${stack.paths.ranker}-frozen`, 0, featureSlots);
}

/** Steps 1-4 of the first run: history, GraphSAGE, bootstrap logging, the first ranker. */
async function prepare(
  stack: EmbeddedStack,
  opts: DemoOptions,
  vectorizer: FeatureVectorizer,
  rankers: RankerModelStore,
  world: { users: number; items: number; seed: number; runId: number; newItemsPerMinute: number },
  startTime: number,
): Promise<RecommendServer> {
  const { say } = opts;
  let server: RecommendServer | null = null;
  const recommender = new PhasedRecommender(
    () => sim.policy,
    [
      {
        atMs: startTime + opts.warmupS * 1000,
        setup: async () => {
          say('training GraphSAGE on the warm-up history');
          let last = 0;
          const version = await stack.trainGnn(3, (p) => {
            if (performance.now() - last > 2000) {
              last = performance.now();
              say(
                `  GraphSAGE epoch ${p.epoch + 1}, step ${p.step}/${p.steps}, loss ${p.loss.toFixed(4)}`,
              );
            }
          });
          say(
            `GraphSAGE ${version}; the server logs bootstrap impressions (random order over recall)`,
          );
          server = await stack.startServer({ seed: opts.seed });
          return server.service;
        },
      },
    ],
  );
  const sim: Simulator = new Simulator(
    { ...world, startTime, requestsPerSecond: Math.max(10, opts.rate), slateSize: 10 },
    { recommender },
  );
  let last = 0;
  await sim.run({
    durationS: opts.warmupS + opts.bootstrapS,
    sink: stack.sink(),
    signal: opts.signal,
    onProgress: (s) => {
      if (performance.now() - last > 2000) {
        last = performance.now();
        const phase = s.simulatedS < opts.warmupS ? 'warm-up history' : 'bootstrap logging';
        say(
          `  ${phase}: ${s.simulatedS.toFixed(0)}/${opts.warmupS + opts.bootstrapS} simulated s, ${s.requests} requests`,
        );
      }
    },
  });
  if (opts.signal.aborted) throw new Error('stopped during the first run’s preparation');
  const samples = (await stack.newSamples(true)).filter((s) => s.modelVersion === 'bootstrap');
  say(`training the first ranker on ${samples.length} labelled impressions`);
  const trained = await trainOffline(samples, vectorizer, {
    config: defaultRankerConfig(vectorizer.width, { users: opts.users, items: opts.items }),
    rng: new Rng(opts.seed).fork('first-ranker'),
    maxEpochs: 5,
    patience: 1,
    onEpoch: (e) =>
      say(
        `  epoch ${e.epoch}: loss ${e.loss.toFixed(4)}, validation AUC ${e.validationAuc.toFixed(4)}`,
      ),
  });
  const training = {
    trainer: 'offline',
    samples: trained.trainSamples,
    validationAuc: trained.validationAuc,
  };
  const slots = vectorizer.slotNames;
  const version = await rankers.save(trained.ranker, slots, training);
  await frozenStore(stack).save(trained.ranker, slots, { ...training, copyOf: version });
  trained.ranker.dispose();
  say(`first ranker ${version} published`);
  const started = server as RecommendServer | null;
  if (!started) throw new Error('the bootstrap phase did not start the server');
  await started.watcher.check();
  return started;
}
