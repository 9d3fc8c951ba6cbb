// One partition of a topic: an ordered list of segment files. In a process that
// writes it, the partition owns the tail (recovers it after a crash, group-commits
// appends, rolls and deletes segments). In a process that only reads it, the same
// class follows the files another process is writing and never shows a record
// whose bytes are not all there and checksummed.
import { type FileHandle, mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { RecmasterError } from '../../errors.js';
import type { ConsumedRecord } from '../bus.js';
import {
  encodeFrame,
  type FrameRecord,
  forEachRecord,
  MAX_RECORD_BYTES,
  recordBytes,
  TARGET_FRAME_BYTES,
} from './frame.js';
import { scanFrames } from './scan.js';
import { parseSegmentFileName, Segment, segmentFileName } from './segment.js';

/** First read of a reader's growing tail: a live poll finds a few KiB there (grown as needed). */
const TAIL_CHUNK_BYTES = 64 * 1024;

export type Durability = 'os' | 'fsync';

export interface PartitionOptions {
  /** Roll to a new segment file past this size. */
  segmentBytes: number;
  /** Delete the oldest segments while the partition is larger than this (null: keep all). */
  retentionBytes: number | null;
  /** Delete segments whose last write is older than this (null: keep all). */
  retentionMs: number | null;
  /**
   * 'os': an append is acknowledged once the OS has the bytes (survives kill -9 of
   * the process, not a power cut). 'fsync': once fdatasync returned (survives both).
   * Either way appends are group-committed: one write (and one sync) per batch.
   */
  durability: Durability;
}

export interface RecoveryReport {
  truncatedBytes: number;
  reason: string | undefined;
}

interface PendingBatch {
  frames: Buffer[];
  firstOffset: number;
  count: number;
  resolve: (firstOffset: number) => void;
  reject: (err: unknown) => void;
}

export class Partition {
  readonly topic: string;
  readonly id: number;
  readonly dir: string;
  private readonly options: PartitionOptions;
  private segments: Segment[] = [];
  /** This process owns the tail (holds the topic's writer lock). */
  private owner = false;
  /** Set when a write failed: offsets were handed out that never reached disk. */
  private failed: unknown;
  private writeHandle: FileHandle | undefined;
  private nextOffset = 0;
  private pending: PendingBatch[] = [];
  private flushing: Promise<void> | undefined;
  private closed = false;
  private readonly onAppend: () => void;

  constructor(
    topic: string,
    id: number,
    dir: string,
    options: PartitionOptions,
    onAppend: () => void,
  ) {
    this.topic = topic;
    this.id = id;
    this.dir = dir;
    this.options = options;
    this.onAppend = onAppend;
  }

  /** Lists the segment files (as a reader: the tail is found lazily while reading). */
  async load(): Promise<void> {
    // Readers call this on every poll at the end of the log: one readdir, and mkdir only
    // the first time (it was half of an idle poll's syscalls).
    const names = await readdir(this.dir).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
      await mkdir(this.dir, { recursive: true });
      return readdir(this.dir);
    });
    const bases = names
      .map(parseSegmentFileName)
      .filter((b): b is number => b !== undefined)
      .sort((a, b) => a - b);
    const known = new Map(this.segments.map((s) => [s.baseOffset, s]));
    const segments: Segment[] = [];
    for (const base of bases) {
      const existing = known.get(base);
      if (existing) {
        segments.push(existing);
        continue;
      }
      const info = await stat(path.join(this.dir, segmentFileName(base))).catch(() => undefined);
      if (!info) continue; // deleted by retention between readdir and stat
      segments.push(new Segment(this.dir, base, info.mtimeMs));
    }
    for (const old of this.segments) if (!segments.includes(old)) await old.closeReader();
    // Sealed segments end where the next begins.
    for (let i = 0; i + 1 < segments.length; i += 1) {
      const seg = segments[i] as Segment;
      const next = segments[i + 1] as Segment;
      if (seg.endOffset !== next.baseOffset) {
        seg.endOffset = next.baseOffset;
        seg.bytes = (await stat(seg.path)).size;
      }
    }
    this.segments = segments;
  }

  /**
   * Takes over the tail for writing: verifies the last segment frame by frame and
   * truncates anything after the last whole record (a torn write from a crash).
   */
  async openForWrite(): Promise<RecoveryReport> {
    await this.load();
    if (this.segments.length === 0) await this.createSegment(0);
    const last = this.segments.at(-1) as Segment;
    const file = await open(last.path, 'r+');
    const size = (await file.stat()).size;
    const start = last.seekPoint(last.endOffset);
    const result = await scanFrames(file, start, size, (frame) => {
      last.noteRecord(frame.offset, frame.position);
      return true;
    });
    let report: RecoveryReport = { truncatedBytes: 0, reason: undefined };
    if (result.position < size) {
      const reason = result.stop.kind === 'invalid' ? result.stop.reason : 'incomplete record';
      report = { truncatedBytes: size - result.position, reason };
      await file.truncate(result.position);
      await file.datasync();
      last.truncateIndex(result.position);
    }
    last.bytes = result.position;
    last.endOffset = result.offset;
    this.nextOffset = result.offset;
    this.writeHandle = file;
    this.owner = true;
    return report;
  }

  get startOffset(): number {
    return this.segments[0]?.baseOffset ?? 0;
  }

  /** Offset after the last record this process knows of (exact for the writer). */
  get endOffset(): number {
    return this.segments.at(-1)?.endOffset ?? 0;
  }

  get bytes(): number {
    return this.segments.reduce((sum, s) => sum + s.bytes, 0);
  }

  get isOwner(): boolean {
    return this.owner;
  }

  /** Appends records; resolves with the first record's offset once durable. */
  append(records: readonly FrameRecord[], appendTime: number): Promise<number> {
    if (this.closed) return Promise.reject(new RecmasterError('E_CLOSED', 'the bus is closed'));
    if (!this.owner) throw new Error(`${this.topic}/${this.id} was not opened for writing`);
    if (this.failed !== undefined) {
      return Promise.reject(
        new RecmasterError(
          'E_CLOSED',
          `${this.topic}/${this.id} refuses writes after a failed write`,
          {
            cause: this.failed,
          },
        ),
      );
    }
    const sizes = records.map(recordBytes);
    const tooBig = sizes.findIndex(
      (n, i) => n > MAX_RECORD_BYTES || Buffer.byteLength((records[i] as FrameRecord).key) > 0xffff,
    );
    if (tooBig >= 0) {
      return Promise.reject(
        new RecmasterError(
          'E_RECORD_TOO_LARGE',
          `${this.topic}: a record of ${sizes[tooBig]} bytes exceeds the limit of ${MAX_RECORD_BYTES} bytes (keys at most 65535)`,
        ),
      );
    }
    const frames: Buffer[] = [];
    for (let from = 0; from < records.length; ) {
      let to = from + 1;
      let bytes = sizes[from] ?? 0;
      while (to < records.length && bytes + (sizes[to] ?? 0) <= TARGET_FRAME_BYTES)
        bytes += sizes[to++] ?? 0;
      frames.push(encodeFrame(records, sizes, from, to, appendTime));
      from = to;
    }
    const firstOffset = this.nextOffset;
    this.nextOffset += records.length;
    return new Promise<number>((resolve, reject) => {
      this.pending.push({ frames, firstOffset, count: records.length, resolve, reject });
      this.flushing ??= this.flushLoop();
    });
  }

  /** Group commit: whatever queued while the previous write was in flight goes out as one write. */
  private async flushLoop(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.pending;
        this.pending = [];
        try {
          await this.writeBatch(batch);
          for (const b of batch) b.resolve(b.firstOffset);
        } catch (err) {
          for (const b of batch) b.reject(err);
          // Offsets handed out for a failed write are gone: the log must not have gaps.
          for (const b of this.pending) b.reject(err);
          this.pending = [];
          this.failed = err;
          throw err;
        }
        this.onAppend();
      }
    } catch {
      // Already reported to every caller; the partition now refuses writes.
    } finally {
      this.flushing = undefined;
    }
  }

  private async writeBatch(batch: PendingBatch[]): Promise<void> {
    const buffers = batch.flatMap((b) => b.frames);
    const total = buffers.reduce((n, b) => n + b.length, 0);
    let active = this.segments.at(-1) as Segment;
    if (active.bytes > 0 && active.bytes + total > this.options.segmentBytes) {
      active = await this.roll();
    }
    const file = this.writeHandle as FileHandle;
    let written = 0;
    let pending = buffers;
    while (written < total) {
      const { bytesWritten } = await file.writev(pending, active.bytes + written);
      written += bytesWritten;
      if (written < total) pending = remainingAfter(buffers, written);
    }
    if (this.options.durability === 'fsync') await file.datasync();
    let position = active.bytes;
    for (const b of batch) {
      active.noteRecord(b.firstOffset, position);
      for (const f of b.frames) position += f.length;
    }
    active.bytes += total;
    active.endOffset += batch.reduce((n, b) => n + b.count, 0);
    active.lastWriteMs = Date.now();
  }

  private async roll(): Promise<Segment> {
    const old = this.writeHandle as FileHandle;
    if (this.options.durability === 'fsync') await old.datasync();
    await old.close();
    const base = (this.segments.at(-1) as Segment).endOffset;
    const seg = await this.createSegment(base);
    this.writeHandle = await open(seg.path, 'r+');
    await this.applyRetention();
    return seg;
  }

  private async createSegment(base: number): Promise<Segment> {
    const seg = new Segment(this.dir, base, Date.now());
    const handle = await open(seg.path, 'wx');
    if (this.options.durability === 'fsync') await handle.sync();
    await handle.close();
    if (this.options.durability === 'fsync') await syncDir(this.dir);
    this.segments.push(seg);
    return seg;
  }

  /** Drops whole sealed segments, oldest first; the active segment always stays. */
  async applyRetention(now = Date.now()): Promise<number> {
    const { retentionBytes, retentionMs } = this.options;
    let removed = 0;
    while (this.segments.length > 1) {
      const oldest = this.segments[0] as Segment;
      const tooBig = retentionBytes !== null && this.bytes > retentionBytes;
      const tooOld = retentionMs !== null && now - oldest.lastWriteMs > retentionMs;
      if (!tooBig && !tooOld) break;
      this.segments.shift();
      await oldest.closeReader();
      await unlink(oldest.path).catch(() => undefined);
      removed += 1;
    }
    return removed;
  }

  /** Reads up to `maxRecords` records from `offset`; fewer (or none) at the end of the log. */
  async read(
    offset: number,
    maxRecords: number,
    maxBytes = 4 * 1024 * 1024,
  ): Promise<ConsumedRecord[]> {
    if (!this.owner && offset >= this.endOffset) {
      // A reader at the tail reads the last segment it knows first: a new segment (or one
      // removed by retention) only matters once that one stops growing. Listing the
      // directory on every poll was a third of a live follower's file system calls.
      const last = this.segments.at(-1);
      if (last) {
        const tail = await this.readKnown(offset, maxRecords, maxBytes);
        if (tail.length > 0) return tail;
      }
      await this.load();
      // Still the same last segment: nothing new (reading it again was a wasted trip).
      if (last && this.segments.at(-1) === last) return [];
    }
    return this.readKnown(offset, maxRecords, maxBytes);
  }

  private async readKnown(
    offset: number,
    maxRecords: number,
    maxBytes: number,
  ): Promise<ConsumedRecord[]> {
    if (offset < this.startOffset) {
      throw new RecmasterError(
        'E_OFFSET_OUT_OF_RANGE',
        `${this.topic}/${this.id}: offset ${offset} was deleted by retention (log starts at ${this.startOffset})`,
      );
    }
    const out: ConsumedRecord[] = [];
    let bytes = 0;
    let next = offset;
    for (let i = this.findSegment(next); i >= 0 && i < this.segments.length; i += 1) {
      const seg = this.segments[i] as Segment;
      const isLast = i === this.segments.length - 1;
      const file = await seg.reader();
      // A reader reads the growing tail to wherever its frames verify, in small chunks
      // (a poll usually finds a few KiB there).
      const tail = !this.owner && isLast;
      const limit = tail ? Number.POSITIVE_INFINITY : seg.bytes;
      if (!isLast && next >= seg.endOffset) continue;
      let start = seg.seekPoint(next);
      // Past everything verified so far: resume from the frontier, not an older index entry.
      if (next >= seg.endOffset && seg.endOffset > start.offset) {
        start = { offset: seg.endOffset, position: seg.bytes };
      }
      const result = await scanFrames(
        file,
        start,
        limit,
        (frame) => {
          seg.noteRecord(frame.offset, frame.position);
          if (frame.offset + frame.count <= next) return true;
          forEachRecord(frame.chunk, frame.start, (i, key, value, appendTime) => {
            const offset = frame.offset + i;
            if (offset < next) return true;
            out.push({ topic: this.topic, partition: this.id, offset, key, value, appendTime });
            bytes += value.length;
            return out.length < maxRecords;
          });
          return out.length < maxRecords && bytes < maxBytes;
        },
        tail ? TAIL_CHUNK_BYTES : undefined,
      );
      if (tail && result.offset > seg.endOffset) {
        seg.endOffset = result.offset;
        seg.bytes = result.position;
      }
      if (result.stop.kind === 'invalid' && (this.owner || !isLast)) {
        throw new RecmasterError(
          'E_LOG_CORRUPT',
          `${seg.path}: ${result.stop.reason} at byte ${result.position}; the log is damaged before its tail`,
        );
      }
      next = result.offset;
      if (out.length >= maxRecords || bytes >= maxBytes || isLast) break;
    }
    return out;
  }

  private findSegment(offset: number): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    if (hi < 0) return -1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.segments[mid] as Segment).baseOffset <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Waits for queued appends, then releases files. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await this.flushing;
    if (this.writeHandle) {
      if (this.failed === undefined && this.options.durability === 'fsync') {
        await this.writeHandle.datasync();
      }
      await this.writeHandle.close();
      this.writeHandle = undefined;
    }
    this.owner = false;
    for (const s of this.segments) await s.closeReader();
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The unwritten rest of `buffers` after a short write of `written` bytes. */
function remainingAfter(buffers: Buffer[], written: number): Buffer[] {
  const out: Buffer[] = [];
  let skip = written;
  for (const b of buffers) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}
