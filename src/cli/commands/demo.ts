import type { Command } from 'commander';
import { runDemo } from '../../demo/demo.js';
import { resolveDataDir } from '../data-dir.js';
import { nonNegative, positiveInt, share } from '../parse.js';

interface DemoCliOptions {
  users: number;
  items: number;
  rate: number;
  seed: number;
  host: string;
  port: number;
  driftAt: number;
  driftShare: number;
  warmup: number;
  bootstrap: number;
  duration?: number;
  json?: boolean;
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'the whole loop on this machine: simulated users ask the server over HTTP while features, recall, ranking and online learning run live; dashboard in the browser',
    )
    .option('--users <n>', 'simulated users', positiveInt, 2000)
    .option('--items <n>', 'initial catalogue size (new items keep arriving)', positiveInt, 5000)
    .option('--rate <n>', 'recommendation requests per second', positiveInt, 20)
    .option('--seed <n>', 'world seed (same seed, same users and items)', nonNegative, 42)
    .option('--host <host>', 'address the server listens on', '127.0.0.1')
    .option(
      '--port <port>',
      'port of the server and dashboard (0 = any free port)',
      nonNegative,
      8080,
    )
    .option(
      '--drift-at <s>',
      'live seconds until a share of users change interests (0 = never)',
      nonNegative,
      300,
    )
    .option('--drift-share <share>', 'share of users whose interests drift', share, 0.5)
    .option(
      '--warmup <s>',
      'simulated seconds of history before the first models (first run)',
      positiveInt,
      1800,
    )
    .option(
      '--bootstrap <s>',
      'simulated seconds of bootstrap logging for the first ranker (first run)',
      positiveInt,
      600,
    )
    .option(
      '--duration <s>',
      'stop after this many live seconds (default: until Ctrl-C)',
      positiveInt,
    )
    .option('--json', 'print a JSON summary as the last line (for scripts and CI)')
    .addHelpText(
      'after',
      '\nThe first run builds a history and trains the first models (a few minutes on 2 cores,\n' +
        'with progress); later runs with the same --data-dir resume where the last one stopped.\n' +
        'Open the printed dashboard URL to watch it learn. Ctrl-C stops cleanly.\n\n' +
        'Examples:\n  recmaster demo\n  recmaster demo --duration 90 --json\n' +
        '  recmaster -d /tmp/small demo --users 300 --items 800 --warmup 600 --bootstrap 300',
    )
    .action(async (opts: DemoCliOptions) => {
      const dataDir = resolveDataDir(program.opts<{ dataDir?: string }>().dataDir);
      const stop = new AbortController();
      const onSignal = () => {
        process.stderr.write('\nstopping (state is kept; run again to resume)...\n');
        stop.abort();
      };
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      const say = (msg: string) => process.stderr.write(`[demo] ${msg}\n`);
      try {
        const summary = await runDemo({
          dataDir,
          users: opts.users,
          items: opts.items,
          rate: opts.rate,
          seed: opts.seed,
          host: opts.host,
          port: opts.port,
          driftAt: opts.driftAt > 0 ? opts.driftAt : null,
          driftShare: opts.driftShare,
          warmupS: opts.warmup,
          bootstrapS: opts.bootstrap,
          durationS: opts.duration ?? null,
          frozenShare: 0.5,
          signal: stop.signal,
          say,
          onListening: (url) => say(`dashboard: ${url}/dashboard`),
        });
        if (opts.json) console.log(JSON.stringify(summary));
        else say(`stopped: ${JSON.stringify(summary)}`);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
