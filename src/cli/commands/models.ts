import { type Command, InvalidArgumentError } from 'commander';
import { RankerModelStore } from '../../rank/model-store.js';
import { resolveDataDir } from '../data-dir.js';
import { rankerModelDir } from './serve.js';

export function registerModels(program: Command): void {
  const models = program
    .command('models')
    .description('list ranker versions and choose which one serves (rollback)');
  const dir = () => rankerModelDir(resolveDataDir(program.opts<{ dataDir?: string }>().dataDir));

  models
    .command('list')
    .description('ranker versions on disk, oldest first; * marks the serving one')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const store = new RankerModelStore(dir());
      const current = await store.current();
      const versions = await store.versions();
      if (opts.json) console.log(JSON.stringify({ current, versions }));
      else if (versions.length === 0)
        console.log('no ranker versions yet (run `recmaster train-rank`)');
      else for (const v of versions) console.log(`${v === current ? '*' : ' '} ${v}`);
    });

  models
    .command('rollback')
    .description('serve an earlier version: running servers swap to it within milliseconds')
    .argument('<version>', 'a version from `recmaster models list`, e.g. v000012', (v: string) => {
      if (!/^v\d{6}$/.test(v)) throw new InvalidArgumentError('must look like v000012');
      return v;
    })
    .addHelpText(
      'after',
      '\nThe online trainer continues from what serves: after a rollback its next version\n' +
        'builds on the rolled-back one only if it is restarted; stop `recmaster learn` first.\n\n' +
        'Example:\n  recmaster models rollback v000012',
    )
    .action(async (version: string) => {
      const store = new RankerModelStore(dir());
      const before = await store.current();
      await store.files.setCurrent(version);
      console.log(`serving ${version} (was ${before ?? 'none'})`);
    });
}
