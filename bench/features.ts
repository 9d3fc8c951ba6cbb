// Benchmark of the feature pipeline: a simulator process streams events into the log at a
// sustained rate while the engine (this process) follows it into the feature store, once
// with the embedded store and once with a real redis-server. Reports throughput, freshness
// (wall time from an event entering the log to its features being visible in the store)
// and the latency of the ranking read (one user + 500 items, one call), timed in a reader
// process of its own, as the server reads the store, and in the engine's process too
// (as in the one-process demo). JSON on the last line.
//
//   npm run bench:features [-- --seconds 40 --speed 40 --batch 2000 --max-batch 20000]
//   npm run bench:features -- --gets 2000 --warmup-gets 200   (ranking reads timed, untimed first)
//   npm run bench:features -- --entities user,user_category   (only those entities' features)
//   npm run bench:features -- --partitions 4   (topics of 4 partitions instead of 1)
//
// The default speed, 40× event time, streams ~22k events/s: the rate the goals name.
import { execFile, spawn } from 'node:child_process';
import { setPriority } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { LogBus } from '../src/bus/index.js';
import { Entity, FEATURES } from '../src/features/definitions.js';
import { FeatureEngine } from '../src/features/engine.js';
import { LmdbFeatureStore } from '../src/store/lmdb-store.js';
import { RedisFeatureStore } from '../src/store/redis-store.js';
import type { FeatureStore } from '../src/store/store.js';
import { startRedis } from '../test/redis-server.js';
import { machine, tempDir } from './common.js';
import { type RankingReadTimes, timeRankingReads } from './ranking-reads.js';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '40' },
    speed: { type: 'string', default: '40' },
    gets: { type: 'string', default: '2000' },
    /** Ranking reads before the timed ones, in each process (its read path compiles). */
    'warmup-gets': { type: 'string', default: '200' },
    'sim-nice': { type: 'string', default: '0' },
    'sim-durability': { type: 'string', default: 'fsync' },
    /** The engine's records per poll and per batch when behind (its defaults if not given). */
    batch: { type: 'string' },
    'max-batch': { type: 'string' },
    /**
     * Only the features of these entities (comma list): an engine doing part of the work, to
     * see how its share of the two cores sets the freshness tail.
     */
    entities: { type: 'string' },
    /** Partitions of each topic the simulator creates (the log's default, 1, if not given). */
    partitions: { type: 'string' },
  },
});
/** A number > 0 (or an integer, when `integer`), or a clear error naming the option. */
function positive(
  name: 'seconds' | 'speed' | 'gets' | 'batch' | 'max-batch' | 'partitions',
  integer = false,
) {
  const n = Number(args[name]);
  if (!(n > 0) || !Number.isFinite(n) || (integer && !Number.isInteger(n)))
    throw new Error(
      `--${name} must be ${integer ? 'an integer' : 'a number'} > 0, got ${args[name]}`,
    );
  return n;
}
const wallSeconds = positive('seconds');
const speed = positive('speed');
const getCount = positive('gets', true);
const warmupGets = Number(args['warmup-gets']);
if (!Number.isInteger(warmupGets) || warmupGets < 0)
  throw new Error(`--warmup-gets must be an integer >= 0, got ${args['warmup-gets']}`);
const simNice = Number(args['sim-nice']);
if (!Number.isInteger(simNice) || simNice < -20 || simNice > 19)
  throw new Error(`--sim-nice must be an integer from -20 to 19, got ${args['sim-nice']}`);
// Records per poll and per batch when behind: the engine's defaults unless given.
const batchSize = args.batch === undefined ? undefined : positive('batch', true);
const maxBatch = args['max-batch'] === undefined ? undefined : positive('max-batch', true);
const partitions = args.partitions === undefined ? undefined : positive('partitions', true);
const entities =
  args.entities === undefined
    ? undefined
    : args.entities.split(',').map((name) => {
        const parsed = Entity.safeParse(name.trim());
        if (!parsed.success)
          throw new Error(
            `--entities takes a comma list of ${Entity.options.join(', ')}, got ${name}`,
          );
        return parsed.data;
      });
const features = entities && FEATURES.filter((f) => entities.includes(f.entity));
const cli = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));
const readerScript = fileURLToPath(new URL('./features-reader.ts', import.meta.url));
const say = (msg: string) => process.stderr.write(`${msg}\n`);

/** Starts `recmaster simulate` in its own process, paced to `speed`× event time. */
function startSimulator(dataDir: string): { done: Promise<void> } {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      cli,
      '-d',
      dataDir,
      'simulate',
      '--speed',
      String(speed),
      '--duration',
      String(wallSeconds * speed),
      '--durability',
      args['sim-durability'],
      '--json',
      ...(partitions === undefined ? [] : ['--partitions', String(partitions)]),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  if (simNice !== 0 && child.pid !== undefined) setPriority(child.pid, simNice);
  let out = '';
  child.stdout.on('data', (d) => {
    out += String(d);
  });
  return {
    done: new Promise((resolve, reject) =>
      child.on('exit', (code) =>
        code === 0 ? resolve() : reject(new Error(`simulator failed: ${out}`)),
      ),
    ),
  };
}

/** The ranking reads timed by `bench/features-reader.ts` in a process of its own. */
async function timeInReader(kind: string, at: string): Promise<RankingReadTimes | null> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [
      // This process's own Node flags (`npm run bench:features` gives `npm start`'s heap
      // flags, as the server runs, and `--import tsx`).
      ...process.execArgv,
      readerScript,
      '--store',
      kind,
      '--at',
      at,
      '--gets',
      String(getCount),
      '--warmup',
      String(warmupGets),
    ],
    { encoding: 'utf8' },
  );
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? 'null') as RankingReadTimes | null;
}

/** `readerAt`: where a reader process finds the store (LMDB directory or Redis URL). */
async function runOnce(store: FeatureStore, dir: string, readerAt: string) {
  const dataDir = path.join(dir, store.kind);
  const sim = startSimulator(dataDir);
  // Wait for the simulator to create its topics before the engine subscribes.
  const bus = new LogBus({ dir: path.join(dataDir, 'bus') });
  for (let i = 0; i < 200 && (await bus.topics()).length < 6; i += 1)
    await new Promise((r) => setTimeout(r, 50));
  const engine = await FeatureEngine.open({
    bus,
    store,
    stateDir: path.join(dataDir, 'state'),
    batchSize,
    maxBatch,
    features,
  });
  const stop = new AbortController();
  const started = performance.now();
  // CPU of this process (engine, LMDB's writer thread, GC) per event: steadier than the
  // freshness percentiles on a shared machine, and what freshness depends on at this rate.
  const cpuAtStart = process.cpuUsage();
  let warm = false;
  const following = engine.run(stop.signal, () => {
    if (!warm && performance.now() - started > 3000) {
      warm = true; // the first seconds include start-up (catching up with the simulator's first batches)
      engine.resetFreshness();
    }
  });
  await sim.done;
  stop.abort();
  await following;
  const seconds = (performance.now() - started) / 1000;
  await engine.catchUp();
  const cpu = process.cpuUsage(cpuAtStart);
  const stats = engine.stats();

  // The ranking read (one user and 500 candidate items, in one call): here, beside the
  // engine's state, and in a reader process of its own, as the server reads the store.
  const sameProcess = await timeRankingReads(store, getCount, warmupGets);
  const reader = await timeInReader(store.kind, readerAt);
  await engine.close();
  await bus.close();
  return {
    events: stats.events,
    eventsPerS: Math.round(stats.events / seconds),
    cpuUsPerEvent: Number(((cpu.user + cpu.system) / Math.max(1, stats.events)).toFixed(1)),
    cpuCores: Number(((cpu.user + cpu.system) / 1e6 / seconds).toFixed(2)),
    freshnessP50: stats.freshnessP50Ms,
    freshnessP99: stats.freshnessP99Ms,
    freshnessMax: stats.freshnessMaxMs,
    lateEvents: stats.lateEvents,
    eventsPerBatch: Math.round(stats.events / Math.max(1, stats.batches)),
    rowsPerEvent: Number((stats.rowsWritten / Math.max(1, stats.events)).toFixed(2)),
    checkpoints: stats.checkpoints,
    checkpointPauseMaxMs: stats.checkpointPauseMaxMs,
    getP50Ms: reader?.p50Ms ?? null,
    getP99Ms: reader?.p99Ms ?? null,
    getSameProcessP50Ms: sameProcess?.p50Ms ?? null,
    getSameProcessP99Ms: sameProcess?.p99Ms ?? null,
  };
}

const { dir, cleanup } = await tempDir('recmaster-bench-features-');
const redis = await startRedis();
try {
  say(`embedded store: simulator at ${speed}x for ${wallSeconds} s...`);
  const lmdb = await LmdbFeatureStore.open(path.join(dir, 'embedded-store'));
  const embedded = await runOnce(lmdb, dir, path.join(dir, 'embedded-store'));
  await lmdb.close();
  say(JSON.stringify(embedded));
  say(`redis store: simulator at ${speed}x for ${wallSeconds} s...`);
  const redisStore = await RedisFeatureStore.open(redis.url);
  const viaRedis = await runOnce(redisStore, dir, redis.url);
  await redisStore.close();
  say(JSON.stringify(viaRedis));
  console.log(
    JSON.stringify({
      bench: 'features',
      wall_seconds: wallSeconds,
      speed,
      entities: entities ?? 'all',
      partitions: partitions ?? 'default',
      events_per_s: embedded.eventsPerS,
      cpu_us_per_event: embedded.cpuUsPerEvent,
      cpu_cores: embedded.cpuCores,
      freshness_p50_ms: embedded.freshnessP50,
      freshness_p99_ms: embedded.freshnessP99,
      freshness_max_ms: embedded.freshnessMax,
      batch_get_p50_ms: embedded.getP50Ms,
      batch_get_p99_ms: embedded.getP99Ms,
      batch_get_same_process_p50_ms: embedded.getSameProcessP50Ms,
      batch_get_same_process_p99_ms: embedded.getSameProcessP99Ms,
      redis_events_per_s: viaRedis.eventsPerS,
      redis_cpu_us_per_event: viaRedis.cpuUsPerEvent,
      redis_freshness_p50_ms: viaRedis.freshnessP50,
      redis_freshness_p99_ms: viaRedis.freshnessP99,
      redis_freshness_max_ms: viaRedis.freshnessMax,
      redis_batch_get_p50_ms: viaRedis.getP50Ms,
      redis_batch_get_p99_ms: viaRedis.getP99Ms,
      redis_batch_get_same_process_p50_ms: viaRedis.getSameProcessP50Ms,
      redis_batch_get_same_process_p99_ms: viaRedis.getSameProcessP99Ms,
      late_events: embedded.lateEvents + viaRedis.lateEvents,
      checkpoint_pause_max_ms: Math.max(
        embedded.checkpointPauseMaxMs,
        viaRedis.checkpointPauseMaxMs,
      ),
      machine: machine(),
    }),
  );
} finally {
  await redis.stop();
  await cleanup();
}
