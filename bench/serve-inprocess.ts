import { parseArgs } from 'node:util';
import { LogBus } from '../src/bus/index.js';
import { featuresPaths } from '../src/cli/commands/features.js';
import { rankerModelDir } from '../src/cli/commands/serve.js';
import { gnnModelDir } from '../src/cli/commands/train-gnn.js';
import { busDir } from '../src/cli/data-dir.js';
import { createServer } from '../src/serve/server.js';
import { LmdbFeatureStore } from '../src/store/lmdb-store.js';
import { registry } from '../src/util/metrics.js';
import { Rng } from '../src/util/rng.js';
import { machine } from './common.js';
import { servingData } from './serving-setup.js';

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '2500' },
    warmup: { type: 'string', default: '300' },
    items: { type: 'string', default: '100000' },
    users: { type: 'string', default: '20000' },
    dir: { type: 'string' },
  },
});
const requests = Number(args.requests);
const warmup = Number(args.warmup);
const users = Number(args.users);
if (!(requests > 0) || !(warmup >= 0)) throw new Error('--requests must be > 0, --warmup ≥ 0');
const log = (msg: string) => process.stderr.write(`[bench:serve-inprocess] ${msg}\n`);

const PHASES = ['recall', 'features', 'rank', 'log'] as const;

/** Seconds spent in each phase so far (the service's histogram sums). */
async function phaseSums(): Promise<Record<string, number>> {
  const metric = registry.getSingleMetric('recmaster_recommend_phase_seconds');
  const out: Record<string, number> = {};
  // A histogram's values carry the series name (`_bucket`, `_sum`, `_count`).
  for (const v of ((await metric?.get())?.values ?? []) as {
    metricName?: string;
    labels: Record<string, unknown>;
    value: number;
  }[])
    if (v.metricName?.endsWith('_sum')) out[String(v.labels.phase)] = v.value;
  return out;
}

async function main(): Promise<void> {
  const { dir, cleanup } = await servingData(args.dir, { users, items: Number(args.items) }, log);
  try {
    const bus = new LogBus({ dir: busDir(dir), durability: 'os' });
    const store = await LmdbFeatureStore.open(featuresPaths(dir).store);
    const server = await createServer({
      bus,
      store,
      rankerDir: rankerModelDir(dir),
      gnnDir: gnnModelDir(dir),
    });
    try {
      const rng = new Rng(3);
      const ask = () => server.service.recommend({ userId: `u${rng.int(users)}`, count: 20 });
      log(`${warmup} warm-up requests, then ${requests} timed`);
      for (let i = 0; i < warmup; i++) await ask();
      const before = await phaseSums();
      const cpu = process.cpuUsage();
      const started = performance.now();
      for (let i = 0; i < requests; i++) await ask();
      const wallMs = performance.now() - started;
      const used = process.cpuUsage(cpu);
      const after = await phaseSums();
      const perRequest = (x: number) => Number((x / requests).toFixed(3));
      console.log(
        JSON.stringify({
          bench: 'serve-inprocess',
          machine: machine(),
          requests,
          candidates: 500,
          count: 20,
          ms_per_request: perRequest(wallMs),
          // The whole process: the service's thread plus GC and I/O threads.
          cpu_ms_per_request: perRequest((used.user + used.system) / 1000),
          phase_mean_ms: Object.fromEntries(
            PHASES.map((p) => [p, perRequest(((after[p] ?? 0) - (before[p] ?? 0)) * 1000)]),
          ),
        }),
      );
    } finally {
      await server.close();
      await store.close();
      await bus.close();
    }
  } finally {
    await cleanup();
  }
}

await main();
