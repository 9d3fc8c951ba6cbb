// A segment is one file of consecutive records, named by the offset of its first
// record, so the list of file names alone locates any offset. A sparse in-memory
// index (an entry every ~64 KiB) turns "read from offset N" into a short scan.
import { type FileHandle, open } from 'node:fs/promises';
import path from 'node:path';

export const SEGMENT_SUFFIX = '.log';
const INDEX_INTERVAL_BYTES = 64 * 1024;

export function segmentFileName(baseOffset: number): string {
  return `${String(baseOffset).padStart(20, '0')}${SEGMENT_SUFFIX}`;
}

export function parseSegmentFileName(name: string): number | undefined {
  if (!name.endsWith(SEGMENT_SUFFIX)) return undefined;
  const digits = name.slice(0, -SEGMENT_SUFFIX.length);
  if (!/^\d{20}$/.test(digits)) return undefined;
  return Number(digits);
}

export class Segment {
  readonly baseOffset: number;
  readonly path: string;
  /** Bytes known to hold whole, verified records. */
  bytes: number;
  /** Offset after the last known record. */
  endOffset: number;
  /** Wall time of the last write (for age-based retention). */
  lastWriteMs: number;
  private readonly indexOffsets: number[];
  private readonly indexPositions: number[];
  private readHandle: Promise<FileHandle> | undefined;

  constructor(dir: string, baseOffset: number, lastWriteMs: number) {
    this.baseOffset = baseOffset;
    this.path = path.join(dir, segmentFileName(baseOffset));
    this.bytes = 0;
    this.endOffset = baseOffset;
    this.lastWriteMs = lastWriteMs;
    this.indexOffsets = [baseOffset];
    this.indexPositions = [0];
  }

  /** Records that record `offset` starts at byte `position`, if it extends the index usefully. */
  noteRecord(offset: number, position: number): void {
    const last = this.indexOffsets.length - 1;
    if (offset <= (this.indexOffsets[last] ?? 0)) return;
    if (position - (this.indexPositions[last] ?? 0) < INDEX_INTERVAL_BYTES) return;
    this.indexOffsets.push(offset);
    this.indexPositions.push(position);
  }

  /** The closest known (offset, position) at or before `offset`. */
  seekPoint(offset: number): { offset: number; position: number } {
    let lo = 0;
    let hi = this.indexOffsets.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((this.indexOffsets[mid] ?? 0) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return {
      offset: this.indexOffsets[lo] ?? this.baseOffset,
      position: this.indexPositions[lo] ?? 0,
    };
  }

  /** Forgets index entries past `position` (after truncating a torn tail). */
  truncateIndex(position: number): void {
    while (this.indexPositions.length > 1 && (this.indexPositions.at(-1) ?? 0) >= position) {
      this.indexPositions.pop();
      this.indexOffsets.pop();
    }
  }

  reader(): Promise<FileHandle> {
    this.readHandle ??= open(this.path, 'r');
    return this.readHandle;
  }

  async closeReader(): Promise<void> {
    const handle = this.readHandle;
    this.readHandle = undefined;
    if (handle) await (await handle).close();
  }
}
