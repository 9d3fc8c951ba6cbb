// npm run eval:mmoe-synthetic [-- --samples 20000 --epochs 20 --seeds 2 --patience 0]: the MMoE paper's
// synthetic correlation sweep alone (bench/mmoe-sweep.ts); eval:rank includes it too.
import { parseArgs } from 'node:util';
import { machine } from './common.js';
import { correlationSweep } from './mmoe-sweep.js';

const { values: args } = parseArgs({
  options: {
    samples: { type: 'string', default: '20000' },
    epochs: { type: 'string', default: '20' },
    seeds: { type: 'string', default: '2' },
    experts: { type: 'string', default: '8' },
    'expert-dim': { type: 'string', default: '16' },
    /** > 0: early stopping on the last 10 % of the training samples (epochs is then a cap). */
    patience: { type: 'string', default: '0' },
  },
});
const samples = Number(args.samples);
const epochs = Number(args.epochs);
const seeds = Number(args.seeds);
const patience = Number(args.patience);
const sweep = await correlationSweep({
  samples,
  epochs,
  seeds,
  experts: Number(args.experts),
  expertDim: Number(args['expert-dim']),
  ...(patience > 0 ? { patience } : {}),
  onRow: (row) => process.stderr.write(`${JSON.stringify(row)}\n`),
});

console.log(
  JSON.stringify({
    bench: 'eval-mmoe-synthetic',
    samples,
    epochs,
    seeds,
    experts: Number(args.experts),
    expert_dim: Number(args['expert-dim']),
    patience,
    correlation_sweep: sweep,
    machine: machine(),
  }),
);
