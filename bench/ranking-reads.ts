// The ranking read timed by bench:features: one user and 500 candidate items in one call,
// over the keys a store holds. Shared by the bench's own process and the reader process
// (features-reader.ts) so both time exactly the same calls.
import { build as buildHistogram } from 'hdr-histogram-js';
import { type FeatureStore, getForRanking } from '../src/store/store.js';

export interface RankingReadTimes {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/**
 * Times `gets` ranking reads after `warmup` untimed ones (the first calls of a process
 * compile its read path). Null when the store has no user or no item rows (bench
 * --entities): there is no ranking read to time.
 */
export async function timeRankingReads(
  store: FeatureStore,
  gets: number,
  warmup: number,
): Promise<RankingReadTimes | null> {
  const users: string[] = [];
  const items: string[] = [];
  for await (const [key] of store.scan()) {
    if (key.startsWith('user:')) users.push(key.slice(5));
    else if (key.startsWith('item:')) items.push(key.slice(5));
  }
  if (users.length === 0 || items.length === 0) return null;
  const histogram = buildHistogram({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 10_000_000,
    numberOfSignificantValueDigits: 3,
  });
  for (let i = -warmup; i < gets; i += 1) {
    // The warm-up reads other candidates than the timed ones (i < 0).
    const k = i < 0 ? gets - i : i;
    const user = users[k % users.length] as string;
    const candidates = Array.from(
      { length: 500 },
      (_, j) => items[(k * 7919 + j * 104_729) % items.length] as string,
    );
    const t0 = process.hrtime.bigint();
    const got = await getForRanking(store, user, candidates);
    if (i >= 0) histogram.recordValue(Number((process.hrtime.bigint() - t0) / 1000n)); // µs
    if (got.items.length !== 500) throw new Error('batch get returned the wrong number of rows');
  }
  return {
    p50Ms: histogram.getValueAtPercentile(50) / 1000,
    p99Ms: histogram.getValueAtPercentile(99) / 1000,
    maxMs: histogram.maxValue / 1000,
  };
}
