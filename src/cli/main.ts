#!/usr/bin/env -S node --max-semi-space-size=64 --initial-old-space-size=256
// The `recmaster` command: a thin composition root; each subcommand lives in commands/.
// The shebang runs the installed command with the heap the live engine was measured with
// (README, bench:features): young objects die in a 64 MiB young generation, and a 256 MiB
// initial old generation makes full collections every ~30 s instead of every ~4 s at 22k
// events/s. `node dist/cli/main.js` ignores it: pass the flags there (as `npm start` does).
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { isRecmasterError } from '../errors.js';
import { registerDemo } from './commands/demo.js';
import { registerFeatures } from './commands/features.js';
import { registerJoin } from './commands/join.js';
import { registerLearn } from './commands/learn.js';
import { registerModels } from './commands/models.js';
import { registerServe } from './commands/serve.js';
import { registerSimulate } from './commands/simulate.js';
import { registerTail } from './commands/tail.js';
import { registerTopics } from './commands/topics.js';
import { registerTrainGnn } from './commands/train-gnn.js';
import { registerTrainRank } from './commands/train-rank.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const program = new Command()
  .name('recmaster')
  .description(
    'A real-time recommender: simulated users, a durable event log, features, recall, ranking, online learning.',
  )
  .version(pkg.version)
  .option(
    '-d, --data-dir <dir>',
    'where embedded state lives (default: $RECMASTER_DATA_DIR or ./data)',
  )
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

registerDemo(program);
registerSimulate(program);
registerFeatures(program);
registerJoin(program);
registerTrainGnn(program);
registerTrainRank(program);
registerLearn(program);
registerModels(program);
registerServe(program);
registerTopics(program);
registerTail(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) process.exit(err.exitCode);
  if (isRecmasterError(err)) {
    console.error(`recmaster: ${err.message} [${err.code}]`);
    process.exit(1);
  }
  throw err;
}
