// Benchmark of the feature pipeline: a simulator process streams events into the log at a
// sustained rate while the engine (this process) follows it into the feature store, once
// with the embedded store and once with a real redis-server. Reports throughput, freshness
// (wall time from an event entering the log to its features being visible in the store)
// and the latency of the ranking read (one user + 500 items, one call). JSON on the last line.
//
//   npm run bench:features [-- --seconds 40 --speed 40 --batch 2000 --max-batch 20000]
//   npm run bench:features -- --entities user,user_category   (only those entities' features)
//   npm run bench:features -- --partitions 4   (topics of 4 partitions instead of 1)
//
// The default speed, 40× event time, streams ~22k events/s: the rate the goals name.
import { spawn } from 'node:child_process';
import { setPriority } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build as buildHistogram } from 'hdr-histogram-js';
import { LogBus } from '../src/bus/index.js';
import { Entity, FEATURES } from '../src/features/definitions.js';
import { FeatureEngine } from '../src/features/engine.js';
import { LmdbFeatureStore } from '../src/store/lmdb-store.js';
import { RedisFeatureStore } from '../src/store/redis-store.js';
import { type FeatureStore, getForRanking } from '../src/store/store.js';
import { startRedis } from '../test/redis-server.js';
import { machine, tempDir } from './common.js';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '40' },
    speed: { type: 'string', default: '40' },
    gets: { type: 'string', default: '2000' },
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

async function runOnce(store: FeatureStore, dir: string) {
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

  // The ranking read: one user and 500 candidate items, in one call.
  const users: string[] = [];
  const items: string[] = [];
  for await (const [key] of store.scan()) {
    if (key.startsWith('user:')) users.push(key.slice(5));
    else if (key.startsWith('item:')) items.push(key.slice(5));
  }
  const gets = buildHistogram({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 10_000_000,
    numberOfSignificantValueDigits: 3,
  });
  // Without user or item rows (--entities) there is no ranking read to time.
  const readable = users.length > 0 && items.length > 0;
  for (let i = 0; readable && i < getCount; i += 1) {
    const user = users[i % users.length] as string;
    const candidates = Array.from(
      { length: 500 },
      (_, j) => items[(i * 7919 + j * 104_729) % items.length] as string,
    );
    const t0 = process.hrtime.bigint();
    const got = await getForRanking(store, user, candidates);
    gets.recordValue(Number((process.hrtime.bigint() - t0) / 1000n)); // µs
    if (got.items.length !== 500) throw new Error('batch get returned the wrong number of rows');
  }
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
    getP50Ms: readable ? gets.getValueAtPercentile(50) / 1000 : null,
    getP99Ms: readable ? gets.getValueAtPercentile(99) / 1000 : null,
  };
}

const { dir, cleanup } = await tempDir('recmaster-bench-features-');
const redis = await startRedis();
try {
  say(`embedded store: simulator at ${speed}x for ${wallSeconds} s...`);
  const lmdb = await LmdbFeatureStore.open(path.join(dir, 'embedded-store'));
  const embedded = await runOnce(lmdb, dir);
  await lmdb.close();
  say(JSON.stringify(embedded));
  say(`redis store: simulator at ${speed}x for ${wallSeconds} s...`);
  const redisStore = await RedisFeatureStore.open(redis.url);
  const viaRedis = await runOnce(redisStore, dir);
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
      redis_events_per_s: viaRedis.eventsPerS,
      redis_cpu_us_per_event: viaRedis.cpuUsPerEvent,
      redis_freshness_p50_ms: viaRedis.freshnessP50,
      redis_freshness_p99_ms: viaRedis.freshnessP99,
      redis_freshness_max_ms: viaRedis.freshnessMax,
      redis_batch_get_p50_ms: viaRedis.getP50Ms,
      redis_batch_get_p99_ms: viaRedis.getP99Ms,
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
