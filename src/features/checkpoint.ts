// The engine's checkpoint: every window state it changed, the item catalogue it
// learned, and the consumer positions those states correspond to, written in one LMDB
// transaction. Incremental (only what changed since the last checkpoint), so it stays
// cheap while the state grows. Restoring it and replaying the log from its positions
// gives exactly the state an uninterrupted run had. Values are JSON bytes encoded by the
// engine beforehand (spread over many event-loop turns), so the transaction itself is
// only a series of copies.
import { mkdir } from 'node:fs/promises';
import { type Database, open } from 'lmdb';
import type { Positions } from '../bus/bus.js';
import type { StateJson } from './window-state.js';

export interface StreamMeta {
  /** Newest event time seen in this stream (its watermark is this minus the lateness). */
  maxTs: number | null;
  /** Records processed in this stream (drives its deterministic TTL sweeps). */
  processed: number;
}

export interface CheckpointMeta {
  behaviour: Positions;
  items: Positions;
  streams: Record<string, StreamMeta>;
  counters: Record<string, number>;
}

/** Every state of one key: [stream id, feature name, state]. */
export type SavedKey = [string, string, StateJson][];

export interface CheckpointChanges {
  meta: CheckpointMeta;
  /** `${entity}:${key}` → its states as JSON bytes (encodeSavedKey), or null when all were dropped. */
  keys: Map<string, Buffer | null>;
  /** itemId → category. */
  categories: Map<string, string>;
}

export function encodeSavedKey(saved: SavedKey): Buffer {
  return Buffer.from(JSON.stringify(saved));
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const parse = (bytes: Buffer | undefined): unknown =>
  bytes === undefined ? undefined : JSON.parse(bytes.toString('utf8'));

export class CheckpointStore {
  private readonly db: Database<Buffer, string>;

  private constructor(db: Database<Buffer, string>) {
    this.db = db;
  }

  static async open(path: string): Promise<CheckpointStore> {
    await mkdir(path, { recursive: true });
    return new CheckpointStore(open<Buffer, string>({ path, encoding: 'binary' }));
  }

  /** Atomically records the changes (durable when it resolves). */
  async save(changes: CheckpointChanges): Promise<void> {
    await this.db.transaction(() => {
      for (const [id, saved] of changes.keys) {
        if (saved === null) void this.db.remove(`k|${id}`);
        else void this.db.put(`k|${id}`, saved);
      }
      for (const [itemId, category] of changes.categories) {
        void this.db.put(`c|${itemId}`, Buffer.from(category));
      }
      void this.db.put('meta', json(changes.meta));
    });
  }

  meta(): CheckpointMeta | undefined {
    return parse(this.db.get('meta')) as CheckpointMeta | undefined;
  }

  *keys(): Generator<[string, SavedKey]> {
    for (const { key, value } of this.db.getRange({ start: 'k|', end: 'k}' })) {
      yield [key.slice(2), parse(value) as SavedKey];
    }
  }

  *categories(): Generator<[string, string]> {
    for (const { key, value } of this.db.getRange({ start: 'c|', end: 'c}' })) {
      yield [key.slice(2), value.toString('utf8')];
    }
  }

  async clear(): Promise<void> {
    await this.db.clearAsync();
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
