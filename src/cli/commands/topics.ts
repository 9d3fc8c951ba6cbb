import type { Command } from 'commander';
import { LogBus } from '../../bus/index.js';
import { busDir, resolveDataDir } from '../data-dir.js';

export function registerTopics(program: Command): void {
  program
    .command('topics')
    .description('list the topics of the embedded log with their partitions, offsets and sizes')
    .option('--json', 'print one JSON object instead of a table')
    .action(async (opts: { json?: boolean }) => {
      const dataDir = resolveDataDir(program.opts<{ dataDir?: string }>().dataDir);
      const bus = new LogBus({ dir: busDir(dataDir) });
      try {
        const infos = [];
        for (const name of await bus.topics()) infos.push(await bus.describe(name));
        if (opts.json) {
          console.log(JSON.stringify({ dataDir, topics: infos }));
          return;
        }
        if (infos.length === 0) {
          console.log(`no topics in ${busDir(dataDir)} (run \`recmaster simulate\` first)`);
          return;
        }
        const rows = infos.map((t) => {
          const records = t.partitions.reduce((n, p) => n + (p.endOffset - p.startOffset), 0);
          const bytes = t.partitions.reduce((n, p) => n + p.bytes, 0);
          const ends = t.partitions.map((p) => p.endOffset).join(',');
          return {
            topic: t.name,
            partitions: t.partitions.length,
            records,
            'end offsets': ends,
            MiB: (bytes / 2 ** 20).toFixed(2),
          };
        });
        console.table(rows);
      } finally {
        await bus.close();
      }
    });
}
