// The embedded feature store: LMDB through lmdb-js. Memory-mapped B+tree, so reads
// are in-process memory lookups (no round trip at all), writes are transactions that
// become visible atomically, and other processes on the same disk can read it too.
//
// A list value (a user's last 50 clicks) is kept under a key of its own and written only
// when it changed: a row is rewritten on every event of its key, its list only on a click,
// and packing the unchanged list into every user row was the engine's third largest cost
// 20 minutes into a stream (msgpack's packArray, ~7 % of its thread). The row and its
// lists are put in the same transaction, and reads put them back together.
import { mkdir } from 'node:fs/promises';
import { type Database, open } from 'lmdb';
import {
  type FeatureRow,
  type FeatureStore,
  type FeatureValue,
  type RowRef,
  type RowWrite,
  rowKey,
} from './store.js';

const STRUCTURES_KEY = Symbol.for('recmaster.structures');

/** A row as stored: `apart` names its list values, stored under listKey (null in `values`). */
interface StoredRow extends FeatureRow {
  apart?: string[];
}

/**
 * Lists sort after every row (`entity:key`; entities are lowercase words). The row key's
 * length makes one row's list keys a range no other row's share, whatever its characters.
 */
const LIST_PREFIX = '~';
const listKey = (key: string, name: string) => `${LIST_PREFIX}${key.length}:${key}/${name}`;

export class LmdbFeatureStore implements FeatureStore {
  readonly kind = 'embedded';
  private readonly db: Database<StoredRow | string[], string>;
  /**
   * Per row with lists, each list as last written by this store (a copy): what a write
   * compares with. Empty after opening, so a row's first write puts its lists (the one
   * writer, the engine, replays from its checkpoint after a restart).
   */
  private readonly lists = new Map<string, Map<string, string[]>>();

  private constructor(db: Database<StoredRow | string[], string>) {
    this.db = db;
  }

  static async open(path: string): Promise<LmdbFeatureStore> {
    await mkdir(path, { recursive: true });
    // noSync: a crash may lose the last writes, which the engine replays from the log.
    // Shared structures: rows of one entity share a msgpack record definition kept in the
    // database, instead of each value carrying its own (reads decode about 3x faster).
    return new LmdbFeatureStore(
      open<StoredRow | string[], string>({
        path,
        noSync: true,
        cache: false,
        sharedStructuresKey: STRUCTURES_KEY,
      }),
    );
  }

  async write(rows: readonly RowWrite[]): Promise<void> {
    if (rows.length === 0) return;
    // Queued in one event turn, so lmdb-js commits them in one transaction (its documented
    // event-turn batching) on its writer thread. A transaction callback runs the B-tree
    // updates on this thread instead (`executeTxnCallbacks`, ~9 % of the engine's profile).
    const writes: Promise<boolean>[] = [];
    for (const r of rows) {
      const key = rowKey(r);
      if (r.row === null) this.remove(key, writes);
      else writes.push(this.db.put(key, this.storedForm(key, r.row, writes)));
    }
    await Promise.all(writes);
  }

  /** The row with its lists set apart; puts those that changed since last written. */
  private storedForm(key: string, row: FeatureRow, writes: Promise<boolean>[]): StoredRow {
    let known = this.lists.get(key);
    let values: Record<string, FeatureValue> | undefined;
    let apart: string[] | undefined;
    for (const name in row.values) {
      const value = row.values[name];
      if (!Array.isArray(value)) continue;
      values ??= { ...row.values };
      values[name] = null;
      if (apart === undefined) apart = [name];
      else apart.push(name);
      if (!sameList(known?.get(name), value)) {
        const copy = [...value];
        if (known === undefined) {
          known = new Map();
          this.lists.set(key, known);
        }
        known.set(name, copy);
        writes.push(this.db.put(listKey(key, name), copy));
      }
    }
    // A list that is no more (its value now null or a number) goes. One written before this
    // store was opened is left to go with its row (remove): it is never read, as the row
    // does not name it.
    if (known !== undefined && known.size > (apart?.length ?? 0)) {
      for (const name of known.keys()) {
        if (Array.isArray(row.values[name])) continue;
        known.delete(name);
        writes.push(this.db.remove(listKey(key, name)));
      }
    }
    return values === undefined ? row : { values, eventTimeMs: row.eventTimeMs, apart };
  }

  /** Removes a row and every list kept for it. */
  private remove(key: string, writes: Promise<boolean>[]): void {
    this.lists.delete(key);
    const prefix = listKey(key, '');
    for (const at of this.db.getKeys({ start: prefix, end: `${prefix}\uffff` })) {
      writes.push(this.db.remove(at));
    }
    writes.push(this.db.remove(key));
  }

  /** A stored row as read: its lists back in place. */
  private whole(stored: StoredRow | string[] | undefined, key: string): FeatureRow | null {
    if (stored === undefined || Array.isArray(stored)) return null;
    if (stored.apart === undefined) return stored;
    // Put in the row's transaction, and read in the row's read transaction (lmdb-js renews
    // it on a new event turn or after a commit, neither within this call): a list named is there.
    for (const name of stored.apart) {
      const list = this.db.get(listKey(key, name));
      stored.values[name] = Array.isArray(list) ? list : [];
    }
    return { values: stored.values, eventTimeMs: stored.eventTimeMs };
  }

  async getMany(refs: readonly RowRef[]): Promise<(FeatureRow | null)[]> {
    const out: (FeatureRow | null)[] = new Array(refs.length);
    for (let i = 0; i < refs.length; i += 1) {
      const key = rowKey(refs[i] as RowRef);
      out[i] = this.whole(this.db.get(key), key);
    }
    return out;
  }

  async *scan(): AsyncIterable<[string, FeatureRow]> {
    // Rows only: not the shared structures (a symbol key), not the lists (read with their row).
    for (const { key, value } of this.db.getRange({ end: LIST_PREFIX })) {
      if (typeof key !== 'string') continue;
      const row = this.whole(value, key);
      if (row !== null) yield [key, row];
    }
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

function sameList(known: readonly string[] | undefined, list: readonly string[]): boolean {
  if (known === undefined || known.length !== list.length) return false;
  for (let i = 0; i < list.length; i += 1) if (known[i] !== list[i]) return false;
  return true;
}
