// The engine's checkpoint: every window state it changed, the item catalogue it
// learned, and the consumer positions those states correspond to, written in one LMDB
// transaction. Incremental (only what changed since the last checkpoint), so it stays
// cheap while the state grows. Restoring it and replaying the log from its positions
// gives exactly the state an uninterrupted run had. A key's states are encoded by the
// engine beforehand (spread over many event-loop turns), so the transaction itself is
// only a series of copies, made on a writer thread of ours (checkpoint-writer.ts). The
// encoding is binary (float64 bit for bit, or varints where those are exact:
// window-state.ts): as JSON it took ~45 µs a key and made each checkpoint a freshness spike;
// checkpoints written as JSON still restore.
import { mkdir } from 'node:fs/promises';
import { type Database, open } from 'lmdb';
import type { Positions } from '../bus/bus.js';
import { RecmasterError } from '../errors.js';
import { BinaryReader, BinaryWriter } from '../util/binary.js';
import { CheckpointWriter, type KeyWrites } from './checkpoint-batch.js';
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
   * `${entity}:${key}` → its states (SavedKeyEncoder's bytes), or a removal when all were
   * dropped. The bytes may be the encoder's own, valid until it is cleared.
   */
  keys: KeyWrites;
  /** itemId → category. */
  categories: Map<string, string>;
  /**
   * The stream ids and feature names the keys' states are labelled with, by code
   * (SavedKeyEncoder.labels): read when saved, so it holds every code the keys use.
   */
  labels: readonly string[];
}

/** First byte of a binary key (a JSON one starts with '['): states labelled by strings. */
const BINARY_V1 = 0xb1;
/** States labelled by codes into the checkpoint's label list (stored once, under `labels`). */
const BINARY_V2 = 0xb2;

/**
 * Encodes keys' live states, one after the other into one buffer, reused from checkpoint to
 * checkpoint: a late checkpoint is ~30k keys and ~24 MB, and a Buffer of its own for each
 * key was as many objects promoted and that much external memory to collect every 5 s.
 */
export class SavedKeyEncoder {
  /** Shared memory: the checkpoint's writer thread reads the keys' bytes where they are. */
  private readonly w = new BinaryWriter(1 << 20, { shared: true });
  private start = 0;
  private count = 0;
  /**
   * Stream ids and feature names (a few dozen, in front of every state) by code: as strings
   * they were a third of a checkpoint's bytes. Only ever appended to, and saved with every
   * checkpoint, so a key written by an earlier checkpoint still reads.
   */
  readonly labels: string[] = [];
  private readonly codes = new Map<string, number>();

  /** Takes over the labels of a restored checkpoint: before encoding anything. */
  seed(labels: readonly string[]): void {
    if (this.labels.length > 0) throw new Error('SavedKeyEncoder.seed: labels already in use');
    for (const label of labels) this.code(label);
  }

  /** Forgets every key encoded: views of them must no longer be in use. */
  clear(): void {
    this.w.reset();
  }

  /** Starts a key; returns where its bytes begin. */
  begin(): number {
    this.start = this.w.length;
    this.w.u8(BINARY_V2);
    this.count = 0;
    return this.start;
  }

  add(streamId: string, feature: string, state: FeatureState): void {
    this.writeOne(this.w, streamId, feature, state);
    this.count += 1;
  }

  /** Adds one state's bytes written by `writeOne`, from where they lie in `from`. */
  addFrom(from: BinaryWriter, start: number, end: number): void {
    this.w.copyFrom(from, start, end);
    this.count += 1;
  }

  /** Writes to `w` the bytes `add` would write for one state (to save it before it changes). */
  writeOne(w: BinaryWriter, streamId: string, feature: string, state: FeatureState): void {
    w.uvar(this.code(streamId));
    w.uvar(this.code(feature));
    state.writeTo(w);
  }

  private code(label: string): number {
    let code = this.codes.get(label);
    if (code === undefined) {
      code = this.labels.length;
      this.labels.push(label);
      this.codes.set(label, code);
    }
    return code;
  }

  /** Ends the key; returns where its bytes end, or -1 (nothing kept) when it had no state. */
  end(): number {
    if (this.count > 0) return this.w.length;
    this.w.rewind(this.start);
    return -1;
  }

  /**
   * Every key's bytes since `clear`, key after key at the offsets `begin` and `end` gave (not
   * a copy: valid until the next `clear`).
   */
  written(): Buffer {
    return this.w.written();
  }
}

/** A key's saved states, from any of its encodings; `labels` as saved with the checkpoint. */
export function decodeSavedKey(bytes: Buffer, labels: readonly string[] = []): SavedKey {
  if (bytes[0] !== BINARY_V1 && bytes[0] !== BINARY_V2)
    return JSON.parse(bytes.toString('utf8')) as SavedKey;
  const r = new BinaryReader(bytes, 1);
  const label =
    bytes[0] === BINARY_V1
      ? () => r.str()
      : () => {
          const code = r.uvar();
          const s = labels[code];
          if (s === undefined)
            throw new RecmasterError(
              'E_STORE_FORMAT',
              `label code ${code} is not in the checkpoint`,
            );
          return s;
        };
  const saved: SavedKey = [];
  while (!r.done) saved.push([label(), label(), readStateBinary(r)]);
  return saved;
}

const parse = (bytes: Buffer | undefined): unknown =>
  bytes === undefined ? undefined : JSON.parse(bytes.toString('utf8'));

export class CheckpointStore {
  private readonly db: Database<Buffer, string>;
  private readonly writer: CheckpointWriter;

  private constructor(db: Database<Buffer, string>, writer: CheckpointWriter) {
    this.db = db;
    this.writer = writer;
  }

  static async open(path: string): Promise<CheckpointStore> {
    await mkdir(path, { recursive: true });
    const db = open<Buffer, string>({ path, encoding: 'binary' });
    return new CheckpointStore(db, new CheckpointWriter(path));
  }

  /**
   * Atomically records the changes (durable when it resolves): one transaction on the writer
   * thread. Queueing a late checkpoint's ~30k puts for lmdb-js here held the event loop
   * 28–120 ms in one turn, and a transaction callback would have run the B-tree updates on
   * this thread.
   */
  async save(changes: CheckpointChanges): Promise<void> {
    const puts: [string, string][] = [];
    for (const [itemId, category] of changes.categories) puts.push([`c|${itemId}`, category]);
    puts.push(['labels', JSON.stringify(changes.labels)]);
    puts.push(['meta', JSON.stringify(changes.meta)]);
    await this.writer.write({ ...changes.keys, puts });
  }

  meta(): CheckpointMeta | undefined {
    return parse(this.db.get('meta')) as CheckpointMeta | undefined;
  }

  /** The label list the keys' codes index (empty for checkpoints written before codes). */
  labels(): string[] {
    return (parse(this.db.get('labels')) as string[] | undefined) ?? [];
  }

  *keys(): Generator<[string, SavedKey]> {
    const labels = this.labels();
    for (const { key, value } of this.db.getRange({ start: 'k|', end: 'k}' })) {
      try {
        yield [key.slice(2), decodeSavedKey(value, labels)];
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
    await this.writer.close();
    await this.db.close();
  }
}
