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
    const chunk = Buffer.allocUnsafe(size);
    const { bytesRead } = await file.read(chunk, 0, size, position);
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
