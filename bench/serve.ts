import { parseArgs } from 'node:util';
import { Rng } from '../src/util/rng.js';
import { machine } from './common.js';
import { runLoad } from './load-client.js';
import { servingData, startServerProcess } from './serving-setup.js';

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '300' },
    seconds: { type: 'string', default: '30' },
    items: { type: 'string', default: '100000' },
    users: { type: 'string', default: '20000' },
    count: { type: 'string', default: '20' },
    /** Reuse (or create and keep) a prepared data directory: for profiling runs. */
    dir: { type: 'string' },
  },
});
const rate = Number(args.rate);
const seconds = Number(args.seconds);
const items = Number(args.items);
const users = Number(args.users);
const count = Number(args.count);
const log = (msg: string) => process.stderr.write(`[bench:serve] ${msg}\n`);

async function load(
  origin: string,
  route: string,
  durationS: number,
  body?: (k: number) => string,
) {
  return runLoad({
    origin,
    path: route,
    method: body ? 'POST' : 'GET',
    ...(body ? { body } : {}),
    rate,
    seconds: durationS,
  });
}

/** The server's recommend-phase histogram totals (seconds, count) from its /metrics. */
async function phaseTotals(
  origin: string,
): Promise<Record<string, { sum: number; count: number }>> {
  const text = await (await fetch(`${origin}/metrics`)).text();
  const out: Record<string, { sum: number; count: number }> = {};
  for (const m of text.matchAll(
    /^recmaster_recommend_phase_seconds_(sum|count)\{phase="(\w+)"\} (\S+)$/gm,
  )) {
    const [, what, phase, value] = m as unknown as [string, 'sum' | 'count', string, string];
    out[phase] ??= { sum: 0, count: 0 };
    out[phase][what] = Number(value);
  }
  return out;
}

async function main(): Promise<void> {
  const { dir, cleanup } = await servingData(args.dir, { users, items }, log);
  try {
    const server = await startServerProcess(dir);
    const base = server.base;
    try {
      const rng = new Rng(5);
      const recommendBody = () => JSON.stringify({ userId: `u${rng.int(users)}`, count });
      log('warm-up 5 s');
      await load(base, '/recommend', 5, recommendBody);
      log(`POST /recommend at ${rate}/s for ${seconds} s`);
      const before = await phaseTotals(base);
      const recommend = await load(base, '/recommend', seconds, recommendBody);
      const after = await phaseTotals(base);
      log(`GET /healthz at ${rate}/s for ${Math.min(seconds, 15)} s`);
      const health = await load(base, '/healthz', Math.min(seconds, 15));
      console.log(
        JSON.stringify({
          bench: 'serve',
          machine: machine(),
          rate,
          seconds,
          catalogue_items: items,
          candidates: 500,
          count,
          ...recommend,
          healthz_p50_ms: health.p50_ms,
          healthz_p99_ms: health.p99_ms,
          healthz_errors: health.errors,
          p99_over_healthz_p99: Number((recommend.p99_ms / Math.max(health.p99_ms, 1)).toFixed(2)),
          // The server's own account of a request's time, per phase (mean ms over the run).
          phase_mean_ms: Object.fromEntries(
            Object.entries(after).map(([phase, a]) => {
              const b = before[phase] ?? { sum: 0, count: 0 };
              const n = a.count - b.count;
              return [phase, n > 0 ? Number((((a.sum - b.sum) / n) * 1000).toFixed(3)) : null];
            }),
          ),
          goal: { p99_ms: 15, at_rate: 300, errors: 0 },
        }),
      );
    } finally {
      await server.stop();
    }
  } finally {
    await cleanup();
  }
}

await main();
