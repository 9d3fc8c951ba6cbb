import path from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { LogBus } from '../../bus/index.js';
import { RecmasterError } from '../../errors.js';
import { Joiner, type JoinerStats } from '../../learn/joiner.js';
import { logger } from '../../util/logger.js';
import { busDir, resolveDataDir } from '../data-dir.js';
import { nonNegative } from '../parse.js';

interface JoinOptions {
  window: number;
  lateness: number;
  once?: boolean;
  final?: boolean;
  json?: boolean;
  progress: boolean;
}

function positive(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a number > 0');
  return n;
}

export function joinerPaths(dataDir: string): { state: string } {
  return { state: path.join(dataDir, 'joiner', 'state') };
}

export function registerJoin(program: Command): void {
  program
    .command('join')
    .description(
      'join impressions with their clicks and watches into labelled samples on the `samples` topic ' +
        '(exactly once, also across crashes)',
    )
    .option(
      '--window <s>',
      'attribution window after an impression, event-time seconds',
      positive,
      600,
    )
    .option(
      '--lateness <ms>',
      'how far an event may lag the newest event of its partition and still be joined',
      nonNegative,
      5000,
    )
    .option('--once', 'join what the log holds now, then exit (open windows are kept for later)')
    .option(
      '--final',
      'with --once: the log is complete, so close every open window (the last impressions become samples)',
    )
    .option('--json', 'print a JSON summary as the last line')
    .option('--no-progress', 'no progress line on stderr')
    .addHelpText(
      'after',
      '\nExamples:\n  recmaster join                     # follow the log until Ctrl-C\n' +
        '  recmaster join --once --final      # join a finished simulation completely\n' +
        '  recmaster join --window 120 --lateness 10000 --json\n' +
        '\nA sample is emitted when its watch arrives, or when the watermark (the slowest input\n' +
        'partition minus the lateness) passes the end of its window; feedback after that is\n' +
        'counted as late, never merged. The state (in <data dir>/joiner/state) remembers the\n' +
        'window and lateness it was built with: keep them, or delete it and the samples topic.',
    )
    .action(async (opts: JoinOptions) => {
      const dataDir = resolveDataDir(program.opts<{ dataDir?: string }>().dataDir);
      await runJoin(dataDir, opts);
    });
}

function describeWatermark(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString().replace('.000Z', 'Z');
}

async function runJoin(dataDir: string, opts: JoinOptions): Promise<void> {
  if (opts.final && !opts.once) {
    throw new RecmasterError('E_CONFIG', '--final only makes sense with --once');
  }
  const bus = new LogBus({
    dir: busDir(dataDir),
    onRecovery: (topic, partition, r) =>
      logger.warn({ topic, partition, ...r }, 'cut a torn tail off the log after a crash'),
  });
  let joiner: Joiner;
  try {
    joiner = await Joiner.open({
      bus,
      stateDir: joinerPaths(dataDir).state,
      windowMs: Math.round(opts.window * 1000),
      allowedLatenessMs: Math.round(opts.lateness),
    });
  } catch (err) {
    await bus.close();
    throw err;
  }
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const started = performance.now();
  const live = opts.progress && process.stderr.isTTY && !opts.json;
  let lastShown = 0;
  let shown = false;
  const progress = (s: JoinerStats) => {
    const now = performance.now();
    if (now - lastShown < (live ? 200 : 5000)) return;
    lastShown = now;
    if (live) {
      const share = s.samples > 0 ? ((100 * s.positive) / s.samples).toFixed(1) : '0.0';
      process.stderr.write(
        `\rjoining · ${s.impressions} impressions · ${s.clicks} clicks · ${s.watches} watches · ` +
          `${s.samples} samples (${share} % positive) · ${s.pending} open · ` +
          `watermark ${describeWatermark(s.watermark)}\u001b[K`,
      );
      shown = true;
    } else if (opts.progress) {
      logger.info(
        {
          impressions: s.impressions,
          samples: s.samples,
          positive: s.positive,
          pending: s.pending,
          lateFeedback: s.lateFeedback,
          watermark: s.watermark,
        },
        'joining',
      );
    }
  };
  try {
    if (opts.once) await joiner.catchUp({ endOfInput: opts.final ?? false, onBatch: progress });
    else await joiner.run(stop.signal, progress);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (shown) process.stderr.write('\n');
    const stats = joiner.stats();
    await joiner.close();
    await bus.close();
    const seconds = Number(((performance.now() - started) / 1000).toFixed(2));
    const summary = {
      ...stats,
      seconds,
      windowS: opts.window,
      latenessMs: opts.lateness,
      interrupted: stop.signal.aborted,
    };
    if (opts.json) console.log(JSON.stringify(summary));
    else {
      console.log(
        `${stats.samples} samples (${stats.positive} positive, ${stats.negative} negative) from ` +
          `${stats.impressions} impressions, ${stats.clicks} clicks, ${stats.watches} watches in ${seconds} s; ` +
          `${stats.duplicates} duplicates, ${stats.lateFeedback} late and ${stats.unmatchedFeedback} unmatched feedback, ` +
          `${stats.lateImpressions} late impressions; ${stats.pending} impressions still open ` +
          `(watermark ${describeWatermark(stats.watermark)})`,
      );
    }
  }
}
