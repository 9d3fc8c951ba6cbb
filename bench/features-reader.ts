// bench:features' ranking reads in a process of their own, as the server reads the store
// (`recmaster serve` beside `recmaster features`, or beside Flink at scale): the reads are
// then timed without the engine's heap and its collections in the same process.
//
//   node --max-semi-space-size=64 --initial-old-space-size=256 --import tsx bench/features-reader.ts \
//     --store embedded|redis --at <LMDB directory | redis:// URL> [--gets 2000 --warmup 200]
//
// Prints one JSON object: { p50Ms, p99Ms, maxMs } (null when there is nothing to rank).
import { parseArgs } from 'node:util';
import { LmdbFeatureStore } from '../src/store/lmdb-store.js';
import { RedisFeatureStore } from '../src/store/redis-store.js';
import { timeRankingReads } from './ranking-reads.js';

const { values: args } = parseArgs({
  options: {
    store: { type: 'string' },
    at: { type: 'string' },
    gets: { type: 'string', default: '2000' },
    warmup: { type: 'string', default: '200' },
    help: { type: 'boolean', short: 'h' },
  },
});
const usage =
  'usage: features-reader.ts --store embedded|redis --at <LMDB directory | redis:// URL> [--gets 2000 --warmup 200]';
if (args.help) {
  console.log(usage);
  process.exit(0);
}
const count = (name: 'gets' | 'warmup', min: number) => {
  const n = Number(args[name]);
  if (!Number.isInteger(n) || n < min)
    throw new Error(`--${name} must be an integer >= ${min}, got ${args[name]}\n${usage}`);
  return n;
};
const gets = count('gets', 1);
const warmup = count('warmup', 0);
if ((args.store !== 'embedded' && args.store !== 'redis') || !args.at)
  throw new Error(`--store embedded|redis and --at are required\n${usage}`);
const store =
  args.store === 'redis'
    ? await RedisFeatureStore.open(args.at)
    : await LmdbFeatureStore.open(args.at);
try {
  console.log(JSON.stringify(await timeRankingReads(store, gets, warmup)));
} finally {
  await store.close();
}
