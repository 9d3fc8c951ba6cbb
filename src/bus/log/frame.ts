// On-disk framing. Records are written in batches (as Kafka does), one frame per
// batch, so a batch is checksummed once and lands all-or-nothing:
//
//   u32 LE  body length
//   u32 LE  crc32c(body)
//   body:   u32 LE record count (>= 1) · f64 LE append time (ms)
//           then per record: u16 LE key length · u32 LE value length · key (utf8) · value
//
// The length lets a reader hop from frame to frame; the checksum tells a whole
// frame from a torn or garbage tail (a zero-filled tail fails the length check).
import { crc32c } from '@node-rs/crc32';

export const HEADER_BYTES = 8;
const BODY_FIXED_BYTES = 12;
const RECORD_FIXED_BYTES = 6;
/** The largest single record (key + value) the log accepts. */
export const MAX_RECORD_BYTES = 16 * 1024 * 1024;
/** Appends are cut into frames of about this size (a frame holds at least one record). */
export const TARGET_FRAME_BYTES = 1024 * 1024;
/** Larger than any frame we write; a length beyond it can only be garbage. */
const MAX_BODY_BYTES = MAX_RECORD_BYTES + TARGET_FRAME_BYTES + 64;

export interface FrameRecord {
  key: string;
  value: Uint8Array;
}

export function recordBytes(r: FrameRecord): number {
  return RECORD_FIXED_BYTES + Buffer.byteLength(r.key, 'utf8') + r.value.length;
}

/** Encodes records [from, to) as one frame. `sizes` are their recordBytes. */
export function encodeFrame(
  records: readonly FrameRecord[],
  sizes: readonly number[],
  from: number,
  to: number,
  appendTime: number,
): Buffer {
  let bodyLen = BODY_FIXED_BYTES;
  for (let i = from; i < to; i += 1) bodyLen += sizes[i] ?? 0;
  const out = Buffer.allocUnsafe(HEADER_BYTES + bodyLen);
  out.writeUInt32LE(bodyLen, 0);
  out.writeUInt32LE(to - from, HEADER_BYTES);
  out.writeDoubleLE(appendTime, HEADER_BYTES + 4);
  let pos = HEADER_BYTES + BODY_FIXED_BYTES;
  for (let i = from; i < to; i += 1) {
    const r = records[i] as FrameRecord;
    const keyLen = out.write(r.key, pos + RECORD_FIXED_BYTES, 'utf8');
    out.writeUInt16LE(keyLen, pos);
    out.writeUInt32LE(r.value.length, pos + 2);
    pos += RECORD_FIXED_BYTES + keyLen;
    out.set(r.value, pos);
    pos += r.value.length;
  }
  out.writeUInt32LE(crc32c(out.subarray(HEADER_BYTES)), 4);
  return out;
}

export type FrameCheck =
  | { kind: 'ok'; end: number; count: number }
  /** Not enough bytes yet: the frame runs past what we have. */
  | { kind: 'partial'; needed: number }
  /** Bytes are there but do not form a valid frame. */
  | { kind: 'invalid'; reason: string };

/** Checks the frame starting at `pos`, looking at bytes up to `limit`. */
export function checkFrame(buf: Buffer, pos: number, limit: number): FrameCheck {
  if (pos + HEADER_BYTES > limit) return { kind: 'partial', needed: HEADER_BYTES };
  const bodyLen = buf.readUInt32LE(pos);
  if (bodyLen < BODY_FIXED_BYTES + RECORD_FIXED_BYTES || bodyLen > MAX_BODY_BYTES) {
    return { kind: 'invalid', reason: `implausible frame length ${bodyLen}` };
  }
  const end = pos + HEADER_BYTES + bodyLen;
  if (end > limit) return { kind: 'partial', needed: HEADER_BYTES + bodyLen };
  const body = pos + HEADER_BYTES;
  if (buf.readUInt32LE(pos + 4) !== crc32c(buf.subarray(body, end))) {
    return { kind: 'invalid', reason: 'checksum mismatch' };
  }
  const count = buf.readUInt32LE(body);
  // The checksum vouches for the bytes; this vouches for the writer's arithmetic.
  let p = body + BODY_FIXED_BYTES;
  for (let i = 0; i < count && p <= end; i += 1) {
    p += RECORD_FIXED_BYTES + buf.readUInt16LE(p) + buf.readUInt32LE(p + 2);
  }
  if (count === 0 || p !== end) return { kind: 'invalid', reason: 'records do not fill the frame' };
  return { kind: 'ok', end, count };
}

/** Calls `visit` for each record of a frame accepted by checkFrame; values are views into `buf`. */
export function forEachRecord(
  buf: Buffer,
  pos: number,
  visit: (index: number, key: string, value: Buffer, appendTime: number) => boolean,
): void {
  const body = pos + HEADER_BYTES;
  const count = buf.readUInt32LE(body);
  const appendTime = buf.readDoubleLE(body + 4);
  let p = body + BODY_FIXED_BYTES;
  for (let i = 0; i < count; i += 1) {
    const keyLen = buf.readUInt16LE(p);
    const valueLen = buf.readUInt32LE(p + 2);
    const keyStart = p + RECORD_FIXED_BYTES;
    const valueStart = keyStart + keyLen;
    p = valueStart + valueLen;
    if (
      !visit(i, buf.toString('utf8', keyStart, valueStart), buf.subarray(valueStart, p), appendTime)
    )
      return;
  }
}
