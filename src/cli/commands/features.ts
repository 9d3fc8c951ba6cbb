import { rm } from 'node:fs/promises';
import path from 'node:path';
import { type Command, Option } from 'commander';
import { LogBus } from '../../bus/index.js';
import { RecmasterError } from '../../errors.js';
import { FeatureEngine } from '../../features/engine.js';
import { LmdbFeatureStore } from '../../store/lmdb-store.js';
import { RedisFeatureStore } from '../../store/redis-store.js';
import type { FeatureStore } from '../../store/store.js';
import { logger } from '../../util/logger.js';
import { busDir, resolveDataDir } from '../data-dir.js';
import { nonNegative } from '../parse.js';

interface FeaturesOptions {
  store: 'embedded' | 'redis';
  redisUrl: string;
  latenessMs: number;
  once?: boolean;
  rebuild?: boolean;
  json?: boolean;
}

export function featuresPaths(dataDir: string): { state: string; store: string } {
  return {
    state: path.join(dataDir, 'features', 'state'),
    store: path.join(dataDir, 'features', 'store'),
  };
}

export function registerFeatures(program: Command): void {
  program
    .command('features')
    .description(
      'run the streaming feature engine: behaviour events from the log become windowed features in the feature store',
    )
    .addOption(
      new Option('--store <kind>', 'where feature rows go')
        .choices(['embedded', 'redis'])
        .default('embedded'),
    )
    .option('--redis-url <url>', 'Redis for --store redis', 'redis://127.0.0.1:6379')
    .option(
      '--lateness-ms <ms>',
      'allowed lateness of events behind their stream',
      nonNegative,
      5000,
    )
    .option('--once', 'process what the log holds now, then exit (backfill)')
    .option('--rebuild', 'forget the engine state and rebuild every feature from offset 0')
    .option('--json', 'print a JSON summary as the last line')
    .addHelpText(
      'after',
      '\nExamples:\n  recmaster features                  # follow the log until Ctrl-C\n' +
        '  recmaster features --once --rebuild # recompute everything from the log\n' +
        '  recmaster features --store redis --redis-url redis://127.0.0.1:6379',
    )
    .action(async (opts: FeaturesOptions) => {
      const dataDir = resolveDataDir(program.opts<{ dataDir?: string }>().dataDir);
      await runFeatures(dataDir, opts);
    });
}

/** The feature store a command was told to use (embedded LMDB under the data dir, or Redis). */
export async function openStore(
  opts: { store: 'embedded' | 'redis'; redisUrl: string },
  dir: string,
): Promise<FeatureStore> {
  if (opts.store === 'embedded') return LmdbFeatureStore.open(dir);
  try {
    return await RedisFeatureStore.open(opts.redisUrl);
  } catch (err) {
    throw new RecmasterError(
      'E_CONFIG',
      `cannot reach Redis at ${opts.redisUrl}: ${(err as Error).message}`,
    );
  }
}

async function runFeatures(dataDir: string, opts: FeaturesOptions): Promise<void> {
  const paths = featuresPaths(dataDir);
  if (opts.rebuild) {
    await rm(paths.state, { recursive: true, force: true });
    if (opts.store === 'embedded') await rm(paths.store, { recursive: true, force: true });
  }
  const bus = new LogBus({ dir: busDir(dataDir) });
  const store = await openStore(opts, paths.store);
  const engine = await FeatureEngine.open({
    bus,
    store,
    stateDir: paths.state,
    allowedLatenessMs: opts.latenessMs,
  });
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const started = performance.now();
  let lastLog = 0;
  const report = () => {
    const now = performance.now();
    if (now - lastLog < 5000) return;
    lastLog = now;
    const s = engine.stats();
    logger.info(
      {
        events: s.events,
        late: s.lateEvents,
        rows: s.rowsWritten,
        freshnessP99Ms: s.freshnessP99Ms,
      },
      'features',
    );
  };
  try {
    if (opts.once) await engine.catchUp();
    else await engine.run(stop.signal, report);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    const stats = engine.stats();
    await engine.close();
    await store.close();
    await bus.close();
    const seconds = (performance.now() - started) / 1000;
    const summary = { ...stats, seconds: Number(seconds.toFixed(2)), store: opts.store };
    if (opts.json) console.log(JSON.stringify(summary));
    else {
      console.log(
        `${stats.events} events → ${stats.rowsWritten} row writes in ${summary.seconds} s; ` +
          `${stats.lateEvents} late, ${stats.deadLetters} dead letters, ${stats.items} items known; ` +
          `freshness p50 ${stats.freshnessP50Ms} ms, p99 ${stats.freshnessP99Ms} ms (${opts.store} store)`,
      );
    }
  }
}
