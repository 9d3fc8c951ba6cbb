// npm run bench:serve — a real HTTP load client (bench/load-client.ts, open loop) at a fixed rate against the
// server in its own process on 127.0.0.1, with a 100k-item catalogue: recall 500 candidates,
// rank them, return 20. The same client against /healthz in the same run is the baseline.
//
// Setup (not timed): simulate a history into a fresh log, compute its features, train a small
// GraphSAGE (a step cap: recall quality does not matter here, its cost does) and publish an
// untrained ranker of the serving size. Options: --rate 300 --seconds 30 --items 100000
// --dir <d> (keep the prepared data there and reuse it next time).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { LogBus } from '../src/bus/index.js';
import { LogFollower } from '../src/bus/log-follower.js';
import { featuresPaths } from '../src/cli/commands/features.js';
import { rankerModelDir } from '../src/cli/commands/serve.js';
import { gnnModelDir } from '../src/cli/commands/train-gnn.js';
import { busDir } from '../src/cli/data-dir.js';
import { EventPublisher } from '../src/events/publisher.js';
import { Topics } from '../src/events/topics.js';
import { FeatureEngine } from '../src/features/engine.js';
import { InteractionGraph } from '../src/graph/graph.js';
import { GraphModelStore } from '../src/graph/model-store.js';
import { trainSage } from '../src/graph/sage-trainer.js';
import { FeatureVectorizer } from '../src/rank/feature-vector.js';
import { RankerModelStore } from '../src/rank/model-store.js';
import { defaultRankerConfig, Ranker } from '../src/rank/ranker.js';
import { Simulator } from '../src/sim/index.js';
import { PublisherSink } from '../src/sim/publisher-sink.js';
import { LmdbFeatureStore } from '../src/store/lmdb-store.js';
import { Rng } from '../src/util/rng.js';
import { machine, tempDir } from './common.js';
import { runLoad } from './load-client.js';

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '300' },
    seconds: { type: 'string', default: '30' },
    items: { type: 'string', default: '100000' },
    users: { type: 'string', default: '20000' },
    count: { type: 'string', default: '20' },
    /** Reuse (or create and keep) a prepared data directory: for profiling runs. */
    dir: { type: 'string' },
  },
});
const rate = Number(args.rate);
const seconds = Number(args.seconds);
const items = Number(args.items);
const users = Number(args.users);
const count = Number(args.count);
const log = (msg: string) => process.stderr.write(`[bench:serve] ${msg}\n`);

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function prepare(dataDir: string): Promise<void> {
  const bus = new LogBus({ dir: busDir(dataDir), durability: 'os' });
  const publisher = new EventPublisher(bus);
  await publisher.ensureTopics();
  let t = performance.now();
  const sim = new Simulator({ users, items, seed: 11, requestsPerSecond: 200 });
  const stats = await sim.run({ sink: new PublisherSink(publisher), durationS: 300 });
  log(`simulated ${stats.events} events in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  t = performance.now();
  const paths = featuresPaths(dataDir);
  const store = await LmdbFeatureStore.open(paths.store);
  const engine = await FeatureEngine.open({ bus, store, stateDir: paths.state });
  await engine.catchUp();
  await engine.close();
  await store.close();
  log(`features in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  t = performance.now();
  const graph = new InteractionGraph();
  await new LogFollower(bus, [Topics.items, Topics.feedback]).catchUp((events) => {
    for (const e of events) graph.apply(e);
  });
  const { model } = await trainSage(graph, { epochs: 1, maxSteps: 100, seed: 1 });
  await new GraphModelStore(gnnModelDir(dataDir)).save(model, { note: 'bench:serve' });
  log(`GraphSAGE (100 steps) in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const vectorizer = new FeatureVectorizer();
  const ranker = await Ranker.create(defaultRankerConfig(vectorizer.width), new Rng(1));
  await new RankerModelStore(rankerModelDir(dataDir)).save(
    ranker,
    vectorizer.slots.map((s) => s.name),
    { note: 'bench:serve (untrained: latency only)' },
  );
  ranker.dispose();
  await bus.close();
}

async function load(
  origin: string,
  route: string,
  durationS: number,
  body?: (k: number) => string,
) {
  return runLoad({
    origin,
    path: route,
    method: body ? 'POST' : 'GET',
    ...(body ? { body } : {}),
    rate,
    seconds: durationS,
  });
}

async function main(): Promise<void> {
  const kept = args.dir ? path.resolve(args.dir) : undefined;
  const { dir, cleanup } = kept ? { dir: kept, cleanup: async () => {} } : await tempDir('serve-');
  try {
    if (!kept || !existsSync(path.join(kept, 'prepared'))) {
      await prepare(dir);
      await writeFile(path.join(dir, 'prepared'), `${new Date().toISOString()}\n`);
    }
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [
        ...(process.env.SERVE_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
        '--import',
        'tsx',
        'src/cli/main.ts',
        '-d',
        dir,
        'serve',
        '--port',
        String(port),
      ],
      { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, LOG_LEVEL: 'warn' } },
    );
    const base = `http://127.0.0.1:${port}`;
    try {
      const deadline = Date.now() + 300_000;
      for (;;) {
        if (child.exitCode !== null) throw new Error(`the server exited (${child.exitCode})`);
        const ok = await fetch(`${base}/readyz`).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) break;
        if (Date.now() > deadline) throw new Error('the server did not become ready');
        await new Promise((r) => setTimeout(r, 500));
      }
      const rng = new Rng(5);
      const recommendBody = () => JSON.stringify({ userId: `u${rng.int(users)}`, count });
      log('warm-up 5 s');
      await load(base, '/recommend', 5, recommendBody);
      log(`POST /recommend at ${rate}/s for ${seconds} s`);
      const recommend = await load(base, '/recommend', seconds, recommendBody);
      log(`GET /healthz at ${rate}/s for ${Math.min(seconds, 15)} s`);
      const health = await load(base, '/healthz', Math.min(seconds, 15));
      console.log(
        JSON.stringify({
          bench: 'serve',
          machine: machine(),
          rate,
          seconds,
          catalogue_items: items,
          candidates: 500,
          count,
          ...recommend,
          healthz_p50_ms: health.p50_ms,
          healthz_p99_ms: health.p99_ms,
          healthz_errors: health.errors,
          p99_over_healthz_p99: Number((recommend.p99_ms / Math.max(health.p99_ms, 1)).toFixed(2)),
          goal: { p99_ms: 15, at_rate: 300, errors: 0 },
        }),
      );
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  } finally {
    await cleanup();
  }
}

await main();
