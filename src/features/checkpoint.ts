// The engine's checkpoint: every window state it changed, the item catalogue it
// learned, and the consumer positions those states correspond to, written in one LMDB
// transaction. Incremental (only what changed since the last checkpoint), so it stays
// cheap while the state grows. Restoring it and replaying the log from its positions
// gives exactly the state an uninterrupted run had. A key's states are encoded by the
// engine beforehand (spread over many event-loop turns), so the transaction itself is
// only a series of copies, made on lmdb-js's writer thread. The encoding is binary (float64
// bit for bit, or varints where those are exact: window-state.ts): as JSON it took ~45 µs a
// key and made each checkpoint a freshness spike; checkpoints written as JSON still restore.
import { mkdir } from 'node:fs/promises';
import { type Database, open } from 'lmdb';
import type { Positions } from '../bus/bus.js';
import { RecmasterError } from '../errors.js';
import { BinaryReader, BinaryWriter, encodeString } from '../util/binary.js';
import { type FeatureState, readStateBinary, type StateJson } from './window-state.js';

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
  /**
   * `${entity}:${key}` → its states (SavedKeyEncoder), or null when all were dropped. The
   * bytes may be views into the encoder's buffer, valid until it is cleared.
   */
  keys: Iterable<[string, Buffer | null]>;
  /** itemId → category. */
  categories: Map<string, string>;
}

/** First byte of a binary key (a JSON one starts with '['). */
const BINARY_V1 = 0xb1;

/**
 * Encodes keys' live states, one after the other into one buffer, reused from checkpoint to
 * checkpoint: a late checkpoint is ~30k keys and ~24 MB, and a Buffer of its own for each
 * key was as many objects promoted and that much external memory to collect every 5 s.
 */
export class SavedKeyEncoder {
  private readonly w = new BinaryWriter(1 << 20);
  private start = 0;
  private count = 0;
  /** Stream ids and feature names, encoded once (a few dozen of them, in every key). */
  private readonly labels = new Map<string, Buffer>();

  /** Forgets every key encoded: views of them must no longer be in use. */
  clear(): void {
    this.w.reset();
  }

  /** Starts a key; returns where its bytes begin. */
  begin(): number {
    this.start = this.w.length;
    this.w.u8(BINARY_V1);
    this.count = 0;
    return this.start;
  }

  add(streamId: string, feature: string, state: FeatureState): void {
    this.w.raw(this.label(streamId));
    this.w.raw(this.label(feature));
    state.writeTo(this.w);
    this.count += 1;
  }

  /** Adds one state's bytes written by `writeOne`, from where they lie in `from`. */
  addFrom(from: BinaryWriter, start: number, end: number): void {
    this.w.copyFrom(from, start, end);
    this.count += 1;
  }

  /** Writes to `w` the bytes `add` would write for one state (to save it before it changes). */
  writeOne(w: BinaryWriter, streamId: string, feature: string, state: FeatureState): void {
    w.raw(this.label(streamId));
    w.raw(this.label(feature));
    state.writeTo(w);
  }

  private label(s: string): Buffer {
    let bytes = this.labels.get(s);
    if (bytes === undefined) {
      bytes = encodeString(s);
      this.labels.set(s, bytes);
    }
    return bytes;
  }

  /** Ends the key; returns where its bytes end, or -1 (nothing kept) when it had no state. */
  end(): number {
    if (this.count > 0) return this.w.length;
    this.w.rewind(this.start);
    return -1;
  }

  /** The bytes of a key (a view, not a copy: valid until `clear`). */
  view(start: number, end: number): Buffer {
    return this.w.slice(start, end);
  }
}

/** A key's saved states, from either encoding. */
export function decodeSavedKey(bytes: Buffer): SavedKey {
  if (bytes[0] !== BINARY_V1) return JSON.parse(bytes.toString('utf8')) as SavedKey;
  const r = new BinaryReader(bytes, 1);
  const saved: SavedKey = [];
  while (!r.done) saved.push([r.str(), r.str(), readStateBinary(r)]);
  return saved;
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

  /**
   * Atomically records the changes (durable when it resolves). The writes are queued in one
   * event turn, which lmdb-js commits as one transaction (its documented event-turn batching)
   * on its writer thread; a transaction callback runs the B-tree updates on this thread
   * (8,000 keys of 1.3 KB, a live checkpoint's size: the event loop stalled 17 ms against
   * 2.5 ms, in isolation).
   */
  async save(changes: CheckpointChanges): Promise<void> {
    const writes: Promise<boolean>[] = [];
    for (const [id, saved] of changes.keys) {
      writes.push(saved === null ? this.db.remove(`k|${id}`) : this.db.put(`k|${id}`, saved));
    }
    for (const [itemId, category] of changes.categories) {
      writes.push(this.db.put(`c|${itemId}`, Buffer.from(category)));
    }
    writes.push(this.db.put('meta', json(changes.meta)));
    await Promise.all(writes);
  }

  meta(): CheckpointMeta | undefined {
    return parse(this.db.get('meta')) as CheckpointMeta | undefined;
  }

  *keys(): Generator<[string, SavedKey]> {
    for (const { key, value } of this.db.getRange({ start: 'k|', end: 'k}' })) {
      try {
        yield [key.slice(2), decodeSavedKey(value)];
      } catch (err) {
        throw new RecmasterError(
          'E_STORE_FORMAT',
          `checkpoint key ${key} is unreadable: delete the state directory to rebuild from the log`,
          { cause: err },
        );
      }
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
