// On-disk framing of one record in a segment file:
//
//   u32 LE  body length
//   u32 LE  crc32c(body)
//   body:   f64 LE append time (ms) · u16 LE key length · key (utf8) · value
//
// The length lets a reader hop from record to record; the checksum tells a whole
// record from a torn or garbage tail (a zero-filled tail fails the length check).
import { crc32c } from '@node-rs/crc32';

export const HEADER_BYTES = 8;
const BODY_FIXED_BYTES = 10;
/** Larger than any sane event; a length beyond it can only be garbage. */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;

export interface EncodedRecord {
  key: Buffer;
  value: Uint8Array;
}

export function frameSize(keyBytes: number, valueBytes: number): number {
  return HEADER_BYTES + BODY_FIXED_BYTES + keyBytes + valueBytes;
}

/** Writes one frame at `pos` of `out` (which must have room) and returns the next position. */
export function writeFrame(
  out: Buffer,
  pos: number,
  key: Buffer,
  value: Uint8Array,
  appendTime: number,
): number {
  const bodyStart = pos + HEADER_BYTES;
  const bodyLen = BODY_FIXED_BYTES + key.length + value.length;
  out.writeDoubleLE(appendTime, bodyStart);
  out.writeUInt16LE(key.length, bodyStart + 8);
  key.copy(out, bodyStart + BODY_FIXED_BYTES);
  out.set(value, bodyStart + BODY_FIXED_BYTES + key.length);
  out.writeUInt32LE(bodyLen, pos);
  out.writeUInt32LE(crc32c(out.subarray(bodyStart, bodyStart + bodyLen)), pos + 4);
  return bodyStart + bodyLen;
}

export type FrameCheck =
  | { kind: 'ok'; end: number }
  /** Not enough bytes yet: the frame runs past what we have. */
  | { kind: 'partial' }
  /** Bytes are there but do not form a valid frame. */
  | { kind: 'invalid'; reason: string };

/** Checks the frame starting at `pos`, looking at bytes up to `limit`. */
export function checkFrame(buf: Buffer, pos: number, limit: number): FrameCheck {
  if (pos + HEADER_BYTES > limit) return { kind: 'partial' };
  const bodyLen = buf.readUInt32LE(pos);
  if (bodyLen < BODY_FIXED_BYTES || bodyLen > MAX_BODY_BYTES) {
    return { kind: 'invalid', reason: `implausible record length ${bodyLen}` };
  }
  const end = pos + HEADER_BYTES + bodyLen;
  if (end > limit) return { kind: 'partial' };
  const expected = buf.readUInt32LE(pos + 4);
  const actual = crc32c(buf.subarray(pos + HEADER_BYTES, end));
  if (expected !== actual) return { kind: 'invalid', reason: 'checksum mismatch' };
  const keyLen = buf.readUInt16LE(pos + HEADER_BYTES + 8);
  if (BODY_FIXED_BYTES + keyLen > bodyLen)
    return { kind: 'invalid', reason: 'key overruns record' };
  return { kind: 'ok', end };
}

export interface DecodedFrame {
  appendTime: number;
  key: string;
  value: Buffer;
}

/** Decodes a frame already accepted by checkFrame. The value is a view: copy to keep it. */
export function decodeFrame(buf: Buffer, pos: number, end: number): DecodedFrame {
  const body = pos + HEADER_BYTES;
  const appendTime = buf.readDoubleLE(body);
  const keyLen = buf.readUInt16LE(body + 8);
  const keyStart = body + BODY_FIXED_BYTES;
  return {
    appendTime,
    key: buf.toString('utf8', keyStart, keyStart + keyLen),
    value: buf.subarray(keyStart + keyLen, end),
  };
}
