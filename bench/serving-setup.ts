// Shared by bench:serve, bench:serve-inprocess and bench:swap: a prepared data directory
// (simulated history, its features, a quickly trained GraphSAGE, an untrained serving-size
// ranker) and the server started as its own process on a free port.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
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
import { type SimConfigInput, Simulator } from '../src/sim/index.js';
import { PublisherSink } from '../src/sim/publisher-sink.js';
import { LmdbFeatureStore } from '../src/store/lmdb-store.js';
import { Rng } from '../src/util/rng.js';
import { tempDir } from './common.js';

export async function prepareServingData(
  dataDir: string,
  sim: SimConfigInput,
  durationS: number,
  log: (msg: string) => void,
): Promise<Simulator> {
  const bus = new LogBus({ dir: busDir(dataDir), durability: 'os' });
  const publisher = new EventPublisher(bus);
  await publisher.ensureTopics();
  let t = performance.now();
  const simulator = new Simulator(sim);
  const stats = await simulator.run({ sink: new PublisherSink(publisher), durationS });
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
  await new GraphModelStore(gnnModelDir(dataDir)).save(model, { note: 'benchmark' });
  log(`GraphSAGE (100 steps) in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const vectorizer = new FeatureVectorizer();
  const ranker = await Ranker.create(
    defaultRankerConfig(vectorizer.width, {
      users: simulator.config.users,
      items: simulator.config.items,
    }),
    new Rng(1),
  );
  await new RankerModelStore(rankerModelDir(dataDir)).save(ranker, vectorizer.slotNames, {
    note: 'benchmark (untrained)',
  });
  ranker.dispose();
  await bus.close();
  return simulator;
}

/**
 * bench:serve's data (the world of `users` and `items`, 300 simulated seconds of history): in
 * `keep` when given, prepared there once and reused (a `prepared` marker file says it is
 * complete), else in a temporary directory that `cleanup` removes.
 */
export async function servingData(
  keep: string | undefined,
  world: { users: number; items: number },
  log: (msg: string) => void,
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const kept = keep ? path.resolve(keep) : undefined;
  const { dir, cleanup } = kept ? { dir: kept, cleanup: async () => {} } : await tempDir('serve-');
  if (!kept || !existsSync(path.join(kept, 'prepared'))) {
    await prepareServingData(dir, { ...world, seed: 11, requestsPerSecond: 200 }, 300, log);
    await writeFile(path.join(dir, 'prepared'), `${new Date().toISOString()}\n`);
  }
  return { dir, cleanup };
}

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

export interface ServerProcess {
  base: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** `recmaster serve` on the data directory, in its own process; resolves once ready. */
export async function startServerProcess(dataDir: string): Promise<ServerProcess> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      ...(process.env.SERVE_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      '--import',
      'tsx',
      // SERVE_CLI=dist/cli/main.js profiles the built server (line numbers in profiles).
      process.env.SERVE_CLI ?? 'src/cli/main.ts',
      '-d',
      dataDir,
      'serve',
      '--port',
      String(port),
    ],
    { stdio: ['ignore', 'ignore', 'inherit'], env: { LOG_LEVEL: 'warn', ...process.env } },
  );
  const base = `http://127.0.0.1:${port}`;
  // The server must not outlive the benchmark, even when the benchmark crashes.
  const killChild = () => child.kill('SIGKILL');
  process.once('exit', killChild);
  const stop = async () => {
    process.off('exit', killChild);
    if (child.exitCode !== null) return;
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  };
  const deadline = Date.now() + 300_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server exited (${child.exitCode})`);
    const ok = await fetch(`${base}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return { base, child, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new Error('the server did not become ready in 300 s');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
