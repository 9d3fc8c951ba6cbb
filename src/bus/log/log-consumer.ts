// A consumer-group member of the embedded log. Embedded groups have one member,
// which is assigned every partition of its topics. Delivery is at-least-once: the
// position moves on poll, the committed offset only on commit.
import type { EventEmitter } from 'node:events';
import { type FSWatcher, watch } from 'node:fs';
import { isRecmasterError, RecmasterError } from '../../errors.js';
import type { ConsumedRecord, Consumer, OffsetReset, PollOptions, Positions } from '../bus.js';
import { GroupOffsets } from './group-offsets.js';
import type { Partition } from './partition.js';

interface LogConsumerInit {
  group: string;
  reset: OffsetReset;
  partitions: Partition[];
  groupsDir: string;
  sync: boolean;
  appended: EventEmitter;
  /**
   * How often a waiting poll re-checks files another process may be appending to, when no
   * file-system event woke it first (a file system without them, or a missed one).
   */
  recheckMs: number;
  onClose: () => Promise<void>;
}

export class LogConsumer implements Consumer {
  readonly group: string;
  /** Records skipped because retention deleted them before this group read them. */
  lostToRetention = 0;
  private readonly partitions: Partition[];
  private readonly position: number[];
  private readonly offsets: GroupOffsets;
  private readonly appended: EventEmitter;
  private readonly recheckMs: number;
  private readonly onClose: () => Promise<void>;
  private readonly reset: OffsetReset;
  /** What the offsets file holds (this member holds the group lock, so nobody else writes it). */
  private committedState: Positions;
  private next = 0;
  private closed = false;
  /** Watches of the partitions' directories: another process's append wakes a waiting poll. */
  private readonly watchers: FSWatcher[] = [];
  /** Wakes the poll waiting now, if any. */
  private wake: (() => void) | undefined;

  private constructor(init: LogConsumerInit, offsets: GroupOffsets, committed: Positions) {
    this.group = init.group;
    this.partitions = init.partitions;
    this.offsets = offsets;
    this.appended = init.appended;
    this.recheckMs = init.recheckMs;
    this.onClose = init.onClose;
    this.reset = init.reset;
    this.committedState = committed;
    this.position = init.partitions.map((p) => {
      const saved = committed[p.topic]?.[p.id];
      if (saved !== undefined) return saved;
      return init.reset === 'earliest' ? p.startOffset : p.endOffset;
    });
  }

  static async create(init: LogConsumerInit): Promise<LogConsumer> {
    const offsets = new GroupOffsets(init.groupsDir, init.group, init.sync);
    const consumer = new LogConsumer(init, offsets, await offsets.load());
    if (init.reset === 'latest') {
      // A reader's end offset is only known after walking the tail.
      for (const [i, p] of init.partitions.entries()) {
        if (p.isOwner) continue;
        for (;;) {
          const batch = await p.read(consumer.position[i] ?? 0, 10_000);
          if (batch.length === 0) break;
          consumer.position[i] = (batch.at(-1) as ConsumedRecord).offset + 1;
        }
      }
    }
    consumer.watchAppends();
    return consumer;
  }

  /**
   * Another process's append is seen at once instead of at the next re-check: every 10 ms
   * (the default re-check) put 5 ms on average on each event's freshness. A partition this
   * process writes wakes its readers in-process already; one it only reads is watched
   * (inotify on Linux).
   */
  private watchAppends(): void {
    for (const p of this.partitions) {
      if (p.isOwner) continue;
      try {
        const watcher = watch(p.dir, { persistent: false }, () => this.wake?.());
        // Errors after the start (the directory removed): the timed re-check still runs.
        watcher.on('error', () => watcher.close());
        this.watchers.push(watcher);
      } catch {
        // No watch here (e.g. the inotify limit reached): the timed re-check still runs.
      }
    }
  }

  async poll(options: PollOptions = {}): Promise<ConsumedRecord[]> {
    if (this.closed) throw new RecmasterError('E_CLOSED', `consumer ${this.group} is closed`);
    const max = options.maxRecords ?? 1000;
    const deadline = Date.now() + (options.timeoutMs ?? 0);
    for (;;) {
      const out = await this.pollOnce(max);
      if (out.length > 0 || Date.now() >= deadline || this.closed) return out;
      await this.waitForAppend(Math.min(this.recheckMs, deadline - Date.now()));
    }
  }

  /**
   * Every partition is read at once, up to an equal share of `max` each: each read is a trip
   * to the thread pool, and one partition after the other a live poll of 8–12 partitions was
   * ~20 trips long. Partitions that filled their share (behind) then get what is left, in
   * round-robin order so one busy partition cannot starve the others.
   */
  private async pollOnce(max: number): Promise<ConsumedRecord[]> {
    const n = this.partitions.length;
    // Each partition's share; 0 when fewer records than partitions are wanted (then the
    // partitions are read one at a time, round-robin, as below).
    const share = Math.floor(max / Math.max(1, n));
    const first =
      share > 0
        ? await Promise.all(this.partitions.map((_, i) => this.readPartition(i, share)))
        : this.partitions.map(() => []);
    const out: ConsumedRecord[] = [];
    for (const records of first) for (const r of records) out.push(r);
    for (let k = 0; k < n && out.length < max; k += 1) {
      const i = (this.next + k) % n;
      if (share > 0 && (first[i] as ConsumedRecord[]).length < share) continue; // no more there
      for (const r of await this.readPartition(i, max - out.length)) out.push(r);
    }
    this.next = (this.next + 1) % Math.max(1, n);
    return out;
  }

  /** Up to `max` records of partition i from its position, which moves past them. */
  private async readPartition(i: number, max: number): Promise<ConsumedRecord[]> {
    const p = this.partitions[i] as Partition;
    let records: ConsumedRecord[];
    try {
      records = await p.read(this.position[i] ?? 0, max);
    } catch (err) {
      if (!isRecmasterError(err, 'E_OFFSET_OUT_OF_RANGE')) throw err;
      const restart = this.reset === 'earliest' ? p.startOffset : p.endOffset;
      this.lostToRetention += Math.max(0, p.startOffset - (this.position[i] ?? 0));
      this.position[i] = restart;
      records = await p.read(restart, max);
    }
    if (records.length > 0) this.position[i] = (records.at(-1) as ConsumedRecord).offset + 1;
    return records;
  }

  private waitForAppend(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.appended.off('append', done);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.appended.on('append', done);
      this.wake = done;
    });
  }

  positions(): Positions {
    const out: Positions = {};
    this.partitions.forEach((p, i) => {
      out[p.topic] ??= {};
      (out[p.topic] as Record<number, number>)[p.id] = this.position[i] ?? 0;
    });
    return out;
  }

  async committed(): Promise<Positions> {
    return structuredClone(this.committedState);
  }

  async commit(positions: Positions = this.positions()): Promise<void> {
    const merged = structuredClone(this.committedState);
    for (const [topic, parts] of Object.entries(positions)) {
      merged[topic] = { ...merged[topic], ...parts };
    }
    await this.offsets.save(merged);
    this.committedState = merged;
  }

  seek(topic: string, partition: number, offset: number): void {
    const i = this.partitions.findIndex((p) => p.topic === topic && p.id === partition);
    if (i < 0)
      throw new RecmasterError(
        'E_TOPIC_UNKNOWN',
        `consumer ${this.group} does not read ${topic}/${partition}`,
      );
    this.position[i] = offset;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const watcher of this.watchers) watcher.close();
    this.wake?.();
    await this.onClose();
  }
}
