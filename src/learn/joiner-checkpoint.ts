// The joiner's checkpoint: its open impressions, held feedback and dedupe memory, the
// input positions they correspond to, and the `samples` topic's end offsets at that
// moment, written in one LMDB transaction. Incremental (only what changed since the last
// checkpoint: an entry is put when it changes and removed when it is closed or
// forgotten), so a checkpoint costs what the last few seconds of stream cost, not what
// the whole window holds. Values are JSON bytes encoded by the joiner when the
// checkpoint starts, so the transaction itself is only a series of copies.
import { mkdir } from 'node:fs/promises';
import { type Database, open } from 'lmdb';
import type { Positions } from '../bus/bus.js';

export interface JoinerCheckpointMeta {
  /** Format of the entries, for a later change of it. */
  version: 1;
  /** The settings the state was built with (a restart must use the same). */
  windowMs: number;
  allowedLatenessMs: number;
  /** Next offsets of the impression and feedback partitions. */
  inputs: Positions;
  /** End offset of each `samples` partition right after the samples of this state were appended. */
  samplesEnd: Record<number, number>;
  /** Newest event time per input stream (`topic/partition`), null while it had none. */
  streams: Record<string, number | null>;
  /** Whether input streams that never had a record no longer hold the watermark back. */
  ignoreEmptyStreams: boolean;
  /** Event-time watermark (null before every stream had an event). */
  watermark: number | null;
  counters: Record<string, number>;
}

/** One-letter entry kinds: open impression, held feedback, closed impression, stray feedback, suppressed sample. */
export type EntryKind = 'p' | 'o' | 'c' | 's' | 'x';

export interface JoinerCheckpointChanges {
  meta: JoinerCheckpointMeta;
  /** `${kind}|${key}` → JSON bytes, or null when the entry is gone. */
  entries: Map<string, Buffer | null>;
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

export class JoinerCheckpointStore {
  private readonly db: Database<Buffer, string>;

  private constructor(db: Database<Buffer, string>) {
    this.db = db;
  }

  static async open(path: string): Promise<JoinerCheckpointStore> {
    await mkdir(path, { recursive: true });
    return new JoinerCheckpointStore(open<Buffer, string>({ path, encoding: 'binary' }));
  }

  /** Atomically records the changes (durable when it resolves). */
  async save(changes: JoinerCheckpointChanges): Promise<void> {
    await this.db.transaction(() => {
      for (const [key, value] of changes.entries) {
        if (value === null) void this.db.remove(key);
        else void this.db.put(key, value);
      }
      void this.db.put('meta', json(changes.meta));
    });
  }

  meta(): JoinerCheckpointMeta | undefined {
    const bytes = this.db.get('meta');
    return bytes === undefined
      ? undefined
      : (JSON.parse(bytes.toString('utf8')) as JoinerCheckpointMeta);
  }

  /** Every entry of one kind: [key without the kind prefix, parsed value]. */
  *entries<T>(kind: EntryKind): Generator<[string, T]> {
    for (const { key, value } of this.db.getRange({ start: `${kind}|`, end: `${kind}}` })) {
      yield [key.slice(2), JSON.parse(value.toString('utf8')) as T];
    }
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
