import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SingleBar } from 'cli-progress';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { LogBus } from '../../bus/index.js';
import type { Durability } from '../../bus/log/partition.js';
import { RecmasterError } from '../../errors.js';
import { EventPublisher } from '../../events/publisher.js';
import {
  HttpEventSink,
  HttpRecommender,
  parseSimConfig,
  type SimConfig,
  type SimStats,
  Simulator,
} from '../../sim/index.js';
import { PublisherSink } from '../../sim/publisher-sink.js';
import type { EventSink } from '../../sim/sink.js';
import { logger } from '../../util/logger.js';
import { busDir, resolveDataDir } from '../data-dir.js';
import { positiveInt } from '../parse.js';

const number = (what: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${what} must be a number`);
  return n;
};

interface SimulateOptions {
  seed?: number;
  users?: number;
  items?: number;
  duration: number;
  events?: number;
  speed: number;
  realTime?: boolean;
  rps?: number;
  newItemsPerMin?: number;
  driftAt?: number;
  driftShare?: number;
  hiddenShare?: number;
  taskCorrelation?: number;
  disorderMs?: number;
  target?: string;
  durability: Durability;
  partitions?: number;
  reset?: boolean;
  json?: boolean;
  progress: boolean;
}

export function registerSimulate(program: Command): void {
  program
    .command('simulate')
    .description(
      'stream simulated user behaviour (item upserts, impressions, clicks, watches, drift) into the embedded log, ' +
        'or act as the users of a running server with --target',
    )
    .option(
      '--seed <n>',
      'random seed: the same seed and options give the same events',
      number('seed'),
    )
    .option('--users <n>', 'number of users (default 1000)', number('users'))
    .option('--items <n>', 'initial catalogue size (default 5000)', number('items'))
    .option('--duration <s>', 'event-time seconds to simulate', number('duration'), 300)
    .option('--events <n>', 'stop after exactly this many events', number('events'))
    .option(
      '--speed <x>',
      'event-time seconds per wall-clock second (0 = as fast as possible)',
      number('speed'),
      0,
    )
    .option('--real-time', 'event time is wall-clock time: starts now, speed 1')
    .option(
      '--rps <n>',
      'recommendation requests per event-time second (default 50)',
      number('rps'),
    )
    .option(
      '--new-items-per-min <n>',
      'new items (metadata only) per event-time minute (default 30)',
      number('rate'),
    )
    .option(
      '--drift-at <s>',
      'event-time second at which a share of users change interests',
      number('drift-at'),
    )
    .option(
      '--drift-share <x>',
      'share of users whose interests drift (default 0.3)',
      number('drift-share'),
    )
    .option(
      '--hidden-share <x>',
      'share of item affinity not visible in metadata (default 0.3)',
      number('hidden-share'),
    )
    .option(
      '--task-correlation <x>',
      'cosine between click and watch task weights, -1..1 (default 0.7)',
      number('corr'),
    )
    .option(
      '--disorder-ms <n>',
      'max delay that shuffles feedback out of event-time order (default 0)',
      number('disorder'),
    )
    .option(
      '--target <url>',
      'act as the users of a running server (POST /recommend, POST /events) instead of the log',
    )
    .addOption(
      new Option('--durability <mode>', 'when an append counts as done')
        .choices(['os', 'fsync'])
        .default('fsync'),
    )
    .option(
      '--partitions <n>',
      'partitions of each topic this run creates (default 1; a topic that exists keeps its own)',
      positiveInt,
    )
    .option('--reset', "delete the data directory's log and simulation first")
    .option('--json', 'print a JSON summary as the last line')
    .option('--no-progress', 'no progress bar')
    .addHelpText(
      'after',
      '\nExamples:\n  recmaster simulate --duration 600            # 10 simulated minutes, as fast as possible\n' +
        '  recmaster simulate --real-time --duration 60  # one real minute\n' +
        '  recmaster simulate --drift-at 300 --drift-share 0.5 --json',
    )
    .action(async (opts: SimulateOptions) => {
      const dataDir = resolveDataDir(program.opts<{ dataDir?: string }>().dataDir);
      await runSimulate(dataDir, opts);
    });
}

function toConfig(opts: SimulateOptions): SimConfig {
  const input: Record<string, unknown> = {
    seed: opts.seed,
    users: opts.users,
    items: opts.items,
    requestsPerSecond: opts.rps,
    newItemsPerMinute: opts.newItemsPerMin,
    driftAtS: opts.driftAt,
    driftShare: opts.driftShare,
    hiddenShare: opts.hiddenShare,
    taskCorrelation: opts.taskCorrelation,
    disorderMs: opts.disorderMs,
    startTime: opts.realTime ? Date.now() : undefined,
  };
  for (const k of Object.keys(input)) if (input[k] === undefined) delete input[k];
  try {
    return parseSimConfig(input);
  } catch (err) {
    throw new RecmasterError('E_CONFIG', (err as Error).message);
  }
}

/** The simulation a data directory holds, so later stages can rebuild the same world and truth. */
async function claimDataDir(dataDir: string, config: SimConfig, reset: boolean): Promise<void> {
  const file = path.join(dataDir, 'sim.json');
  await mkdir(dataDir, { recursive: true });
  if (reset) {
    await rm(busDir(dataDir), { recursive: true, force: true });
    await rm(file, { force: true });
  }
  const existing = await readFile(file, 'utf8').catch(() => undefined);
  if (existing !== undefined) {
    throw new RecmasterError(
      'E_CONFIG',
      `${dataDir} already holds a simulation (see ${file}); pass --reset to start over or --data-dir for another directory`,
    );
  }
  await writeFile(file, `${JSON.stringify(config, null, 2)}\n`);
}

async function runSimulate(dataDir: string, opts: SimulateOptions): Promise<void> {
  if (opts.speed < 0) throw new RecmasterError('E_CONFIG', '--speed must be >= 0');
  if (opts.duration <= 0) throw new RecmasterError('E_CONFIG', '--duration must be > 0');
  const config = toConfig(opts);
  const speed = opts.realTime ? 1 : opts.speed;
  let sink: EventSink;
  let simulator: Simulator;
  let bus: LogBus | undefined;
  if (opts.target) {
    const http = { baseUrl: opts.target };
    simulator = new Simulator(config, { recommender: new HttpRecommender(http) });
    sink = new HttpEventSink(http);
  } else {
    await claimDataDir(dataDir, config, opts.reset ?? false);
    bus = new LogBus({
      dir: busDir(dataDir),
      durability: opts.durability,
      onRecovery: (topic, partition, r) =>
        logger.warn({ topic, partition, ...r }, 'cut a torn tail off the log after a crash'),
    });
    const publisher = new EventPublisher(bus);
    await publisher.ensureTopics(opts.partitions);
    sink = new PublisherSink(publisher);
    simulator = new Simulator(config);
  }

  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const showBar = opts.progress && process.stderr.isTTY && !opts.json;
  const bar = new SingleBar({
    format:
      'simulating |{bar}| {percentage}% · {simulated}/{total} event-time s · {events} events · {rate} ev/s',
    hideCursor: true,
  });
  const wallStart = performance.now();
  let lastLog = 0;
  const progress = (s: SimStats) => {
    const wall = (performance.now() - wallStart) / 1000;
    const rate = Math.round(s.events / Math.max(wall, 1e-3));
    if (showBar) {
      bar.update(Math.min(s.simulatedS, opts.duration), {
        simulated: Math.floor(s.simulatedS),
        events: s.events,
        rate,
      });
    } else if (wall - lastLog >= 5) {
      lastLog = wall;
      logger.info(
        { simulatedS: Math.floor(s.simulatedS), events: s.events, eventsPerS: rate },
        'simulating',
      );
    }
  };
  if (showBar) bar.start(opts.duration, 0, { simulated: 0, events: 0, rate: 0 });
  let stats: SimStats;
  try {
    stats = await simulator.run({
      sink,
      durationS: opts.duration,
      ...(opts.events === undefined ? {} : { maxEvents: opts.events }),
      speed,
      signal: stop.signal,
      onProgress: progress,
    });
  } finally {
    if (showBar) bar.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await bus?.close();
  }
  const wallS = (performance.now() - wallStart) / 1000;
  const summary = {
    ...stats,
    ctr: stats.impressions > 0 ? Number((stats.clicks / stats.impressions).toFixed(4)) : 0,
    wallS: Number(wallS.toFixed(2)),
    eventsPerS: Math.round(stats.events / Math.max(wallS, 1e-3)),
    interrupted: stop.signal.aborted,
    dataDir: opts.target ? undefined : dataDir,
    target: opts.target,
  };
  if (opts.json) {
    console.log(JSON.stringify(summary));
  } else {
    console.log(
      `${stats.events} events in ${summary.wallS} s (${summary.eventsPerS}/s): ${stats.requests} requests, ` +
        `${stats.impressions} impressions, ${stats.clicks} clicks (CTR ${(summary.ctr * 100).toFixed(2)} %), ` +
        `${stats.watches} watches, ${stats.newItems} new items, ${stats.markers} markers` +
        (opts.target ? ` → ${opts.target}` : ` → ${busDir(dataDir)} (see \`recmaster topics\`)`),
    );
  }
}
