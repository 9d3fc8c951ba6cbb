// Walks the frames of a segment file in chunks, verifying each one. Used both to
// read records and, after a crash, to find where the valid part of a file ends.
import type { FileHandle } from 'node:fs/promises';
import { checkFrame } from './frame.js';

const CHUNK_BYTES = 1024 * 1024;

export type ScanStop =
  /** Reached `limit` exactly on a frame boundary. */
  | { kind: 'end' }
  /** The visitor asked to stop. */
  | { kind: 'stopped' }
  /** The last frame runs past `limit` (still being written, or torn). */
  | { kind: 'partial' }
  /** Bytes that are not a valid frame. */
  | { kind: 'invalid'; reason: string };

export interface ScanResult {
  /** Offset of the first record after the frames visited. */
  offset: number;
  /** File position of the first frame not visited. */
  position: number;
  stop: ScanStop;
}

/** What the visitor gets for each verified frame; `chunk` stays valid (every chunk is fresh). */
export interface FrameView {
  chunk: Buffer;
  start: number;
  end: number;
  /** Offset of the frame's first record. */
  offset: number;
  count: number;
  /** File position of the frame. */
  position: number;
}

/**
 * Visits frames from (offset, position) up to `limit` bytes, or to the end of the file when
 * the limit is Infinity (a reader's growing tail: a short read is the end, which saves asking
 * the file's size first); the visitor returns false to stop.
 */
export async function scanFrames(
  file: FileHandle,
  start: { offset: number; position: number },
  limit: number,
  visit: (frame: FrameView) => boolean,
  chunkBytes = CHUNK_BYTES,
): Promise<ScanResult> {
  let offset = start.offset;
  let position = start.position;
  let want = chunkBytes;
  while (position < limit) {
    const size = Math.min(want, limit - position);
    const { chunk, bytesRead } = await readChunk(file, size, position);
    let p = 0;
    // A full read means more is there: the next reads take whole chunks.
    want = bytesRead === size ? Math.max(CHUNK_BYTES, chunkBytes) : chunkBytes;
    while (p < bytesRead) {
      const check = checkFrame(chunk, p, bytesRead);
      if (check.kind === 'invalid') {
        return { offset, position: position + p, stop: { kind: 'invalid', reason: check.reason } };
      }
      if (check.kind === 'partial') {
        // The frame runs past this chunk: past the limit means the file ends in a
        // partial frame; otherwise read again from the frame with room for it.
        if (position + p + check.needed > limit || bytesRead < size) {
          return { offset, position: position + p, stop: { kind: 'partial' } };
        }
        want = Math.max(want, check.needed);
        break;
      }
      const keepGoing = visit({
        chunk,
        start: p,
        end: check.end,
        offset,
        count: check.count,
        position: position + p,
      });
      offset += check.count;
      p = check.end;
      if (!keepGoing) return { offset, position: position + p, stop: { kind: 'stopped' } };
    }
    position += p;
    // A short read ends at the end of the file, on a frame boundary (a frame cut short
    // returned 'partial' above).
    if (bytesRead < size) return { offset, position, stop: { kind: 'end' } };
  }
  return { offset, position, stop: { kind: 'end' } };
}

/** Read buffers of a partly filled read, kept for the next read of the same size. */
const spare = new Map<number, Buffer[]>();
const SPARES_PER_SIZE = 8;

/**
 * Reads up to `size` bytes at `position` into a fresh buffer of the length read. A follower at
 * the tail asks for 64 KiB and usually finds a few KiB: a fresh 64 KiB buffer per partition
 * per poll was ~50 MB/s of external memory at 22k events/s, which made V8 scavenge every
 * ~0.3 s ("external memory pressure"). A short read is copied out of a reused buffer instead;
 * a full one keeps its buffer.
 */
async function readChunk(
  file: FileHandle,
  size: number,
  position: number,
): Promise<{ chunk: Buffer; bytesRead: number }> {
  const free = spare.get(size);
  const buffer = free?.pop() ?? Buffer.allocUnsafeSlow(size);
  let bytesRead: number;
  try {
    ({ bytesRead } = await file.read(buffer, 0, size, position));
  } catch (err) {
    release(buffer);
    throw err;
  }
  if (bytesRead === size) return { chunk: buffer, bytesRead };
  const chunk = Buffer.allocUnsafe(bytesRead);
  buffer.copy(chunk, 0, 0, bytesRead);
  release(buffer);
  return { chunk, bytesRead };
}

function release(buffer: Buffer): void {
  // Only the chunk sizes asked for again and again (powers of two: 64 KiB at the tail, 1 MiB
  // behind); a read clipped to a segment's end has a size of its own.
  if ((buffer.length & (buffer.length - 1)) !== 0 || buffer.length > CHUNK_BYTES) return;
  let free = spare.get(buffer.length);
  if (!free) {
    free = [];
    spare.set(buffer.length, free);
  }
  if (free.length < SPARES_PER_SIZE) free.push(buffer);
}
