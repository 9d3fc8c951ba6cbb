// Measures the simulator alone: unpaced events/s and the logging policy's CTR for the
// default config. Prints one JSON object.   npm run bench:sim [-- <event-time seconds>]
import { CountingSink, Simulator } from '../src/sim/index.js';
import { machine } from './common.js';

const durationS = Number(process.argv[2] ?? 600);
const sim = new Simulator({});
const sink = new CountingSink();
const t0 = performance.now();
const stats = await sim.run({ sink, durationS });
const wallS = (performance.now() - t0) / 1000;
console.log(
  JSON.stringify({
    bench: 'sim',
    ...stats,
    wallS: Number(wallS.toFixed(2)),
    eventsPerS: Math.round(stats.events / wallS),
    ctr: Number((stats.clicks / stats.impressions).toFixed(4)),
    batches: sink.batches,
    machine: machine(),
  }),
);
