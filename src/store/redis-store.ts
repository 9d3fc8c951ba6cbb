// The feature store on Redis: one string (a compact msgpack row, see row-codec.ts) per row, written with one MSET per batch
// (in a MULTI with the DEL of expired rows when there are any: readers see a batch all at
// once), read with one MGET.
import { Redis } from 'ioredis';
import { RowCodec } from './row-codec.js';
import { type FeatureRow, type FeatureStore, type RowRef, type RowWrite, rowKey } from './store.js';

export class RedisFeatureStore implements FeatureStore {
  readonly kind = 'redis';
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly codec = new RowCodec();

  private constructor(redis: Redis, prefix: string) {
    this.redis = redis;
    this.prefix = prefix;
  }

  /** Connects (and fails fast with a clear error when Redis is not there). */
  static async open(url: string, prefix = 'rm:f:'): Promise<RedisFeatureStore> {
    const redis = new Redis(url, {
      lazyConnect: true,
      maxRetriesPerRequest: 2,
      enableAutoPipelining: false,
    });
    await redis.connect();
    return new RedisFeatureStore(redis, prefix);
  }

  async write(rows: readonly RowWrite[]): Promise<void> {
    if (rows.length === 0) return;
    const sets: (string | Buffer)[] = [];
    const dels: string[] = [];
    for (const r of rows) {
      const key = this.prefix + rowKey(r);
      if (r.row === null) dels.push(key);
      else sets.push(key, this.codec.encode(r.entity, r.row));
    }
    // One MSET (atomic by itself) instead of a command per row: far less client overhead.
    if (dels.length === 0) {
      await this.redis.mset(sets);
      return;
    }
    const tx = this.redis.multi();
    if (sets.length > 0) tx.mset(sets);
    tx.del(dels);
    const results = await tx.exec();
    const failed = results?.find(([err]) => err !== null);
    if (results === null || failed) throw failed?.[0] ?? new Error('redis transaction aborted');
  }

  async getMany(refs: readonly RowRef[]): Promise<(FeatureRow | null)[]> {
    if (refs.length === 0) return [];
    const values = await this.redis.mgetBuffer(refs.map((r) => this.prefix + rowKey(r)));
    return values.map((v) => (v === null ? null : this.codec.decode(v)));
  }

  async *scan(): AsyncIterable<[string, FeatureRow]> {
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length === 0) continue;
      const values = await this.redis.mgetBuffer(keys);
      for (const [i, v] of values.entries()) {
        if (v !== null) yield [(keys[i] as string).slice(this.prefix.length), this.codec.decode(v)];
      }
    } while (cursor !== '0');
  }

  async close(): Promise<void> {
    await this.redis.quit();
  }
}
