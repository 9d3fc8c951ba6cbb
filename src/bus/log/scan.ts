// Walks the frames of a segment file in chunks, verifying each one. Used both to
// read records and, after a crash, to find where the valid part of a file ends.
import type { FileHandle } from 'node:fs/promises';
import { checkFrame, HEADER_BYTES, MAX_BODY_BYTES } from './frame.js';

const CHUNK_BYTES = 256 * 1024;

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
  /** Offset of the first frame not visited. */
  offset: number;
  /** File position of that frame. */
  position: number;
  stop: ScanStop;
}

/**
 * Visits frames from (offset, position) until `limit` bytes. The visitor gets the
 * chunk and the frame's bounds inside it (views stay valid: every chunk is fresh)
 * and returns false to stop after that frame.
 */
export async function scanFrames(
  file: FileHandle,
  start: { offset: number; position: number },
  limit: number,
  visit: (
    chunk: Buffer,
    frameStart: number,
    frameEnd: number,
    offset: number,
    position: number,
  ) => boolean,
): Promise<ScanResult> {
  let offset = start.offset;
  let position = start.position;
  while (position < limit) {
    const wanted = Math.min(CHUNK_BYTES, limit - position);
    const chunk = Buffer.allocUnsafe(wanted);
    const { bytesRead } = await file.read(chunk, 0, wanted, position);
    let p = 0;
    let grow = 0;
    while (p < bytesRead) {
      const check = checkFrame(chunk, p, bytesRead);
      if (check.kind === 'invalid') {
        return { offset, position: position + p, stop: { kind: 'invalid', reason: check.reason } };
      }
      if (check.kind === 'partial') {
        if (position + p + HEADER_BYTES <= limit && p + HEADER_BYTES <= bytesRead) {
          grow = HEADER_BYTES + Math.min(chunk.readUInt32LE(p), MAX_BODY_BYTES);
        }
        break;
      }
      const keepGoing = visit(chunk, p, check.end, offset, position + p);
      offset += 1;
      p = check.end;
      if (!keepGoing) return { offset, position: position + p, stop: { kind: 'stopped' } };
    }
    position += p;
    if (p < bytesRead || bytesRead < wanted) {
      // A frame straddles the chunk end: re-read from its start with room for it,
      // unless it runs past the limit (then the file ends in a partial frame).
      if (position + Math.max(grow, HEADER_BYTES) > limit || bytesRead < wanted) {
        return { offset, position, stop: { kind: 'partial' } };
      }
      if (grow > CHUNK_BYTES) {
        const big = Buffer.allocUnsafe(grow);
        const got = (await file.read(big, 0, grow, position)).bytesRead;
        const check = checkFrame(big, 0, got);
        if (check.kind === 'invalid') {
          return { offset, position, stop: { kind: 'invalid', reason: check.reason } };
        }
        if (check.kind === 'partial') return { offset, position, stop: { kind: 'partial' } };
        const keepGoing = visit(big, 0, check.end, offset, position);
        offset += 1;
        position += check.end;
        if (!keepGoing) return { offset, position, stop: { kind: 'stopped' } };
      }
    }
  }
  return { offset, position, stop: { kind: 'end' } };
}
