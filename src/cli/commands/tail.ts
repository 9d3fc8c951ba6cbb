import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { LogBus } from '../../bus/index.js';
import { busDir, resolveDataDir } from '../data-dir.js';

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a whole number >= 0');
  return n;
}

export function registerTail(program: Command): void {
  program
    .command('tail')
    .description('print records of a topic as JSON lines (the last ones, or follow new ones)')
    .argument('<topic>', 'topic name (see `recmaster topics`)')
    .option(
      '-n, --lines <n>',
      'how many of the last records of each partition to print',
      nonNegativeInt,
      10,
    )
    .option('-f, --follow', 'keep printing new records until Ctrl-C')
    .action(async (topic: string, opts: { lines: number; follow?: boolean }) => {
      const dataDir = resolveDataDir(program.opts<{ dataDir?: string }>().dataDir);
      const bus = new LogBus({ dir: busDir(dataDir) });
      const stop = new AbortController();
      process.once('SIGINT', () => stop.abort());
      try {
        const info = await bus.describe(topic);
        const next = info.partitions.map((p) => Math.max(p.startOffset, p.endOffset - opts.lines));
        do {
          let printed = 0;
          for (const p of info.partitions) {
            for (;;) {
              const records = await bus.read(topic, p.partition, next[p.partition] ?? 0, 1000);
              if (records.length === 0) break;
              for (const r of records) process.stdout.write(`${r.value.toString('utf8')}\n`);
              next[p.partition] = (records.at(-1)?.offset ?? 0) + 1;
              printed += records.length;
            }
          }
          if (opts.follow && printed === 0) await new Promise((r) => setTimeout(r, 100));
        } while (opts.follow && !stop.signal.aborted);
      } finally {
        await bus.close();
      }
    });
}
