// A little-endian byte writer and reader for compact snapshots (the feature engine's
// checkpoint). Numbers go in as float64 bit for bit, or as varints when they are non-negative
// safe integers, so a state restored from them continues exactly as the original would have;
// strings as UTF-8 with a length.
import { RecmasterError } from '../errors.js';

export class BinaryWriter {
  private buf: Buffer;
  private view: DataView;
  private at = 0;
  private readonly shared: boolean;

  /**
   * `shared`: in a SharedArrayBuffer, so that what was written can be handed to a worker
   * thread without a copy (`written`).
   */
  constructor(initialBytes = 64 * 1024, options: { shared?: boolean } = {}) {
    this.shared = options.shared ?? false;
    this.buf = this.alloc(initialBytes);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  /** Starts a new value, reusing the buffer. */
  reset(): void {
    this.at = 0;
  }

  private room(bytes: number): void {
    if (this.at + bytes <= this.buf.length) return;
    const grown = this.alloc(Math.max(this.buf.length * 2, this.at + bytes));
    this.buf.copy(grown, 0, 0, this.at);
    this.buf = grown;
    this.view = new DataView(grown.buffer, grown.byteOffset, grown.byteLength);
  }

  u8(n: number): void {
    this.room(1);
    this.view.setUint8(this.at, n);
    this.at += 1;
  }

  u32(n: number): void {
    this.room(4);
    this.view.setUint32(this.at, n, true);
    this.at += 4;
  }

  f64(n: number): void {
    this.room(8);
    this.view.setFloat64(this.at, n, true);
    this.at += 8;
  }

  /** A non-negative safe integer in 7-bit groups, low first (1 byte below 128). */
  uvar(n: number): void {
    if (!(Number.isSafeInteger(n) && n >= 0))
      throw new RangeError(`uvar: ${n} is not a non-negative safe integer`);
    this.room(8);
    while (n >= 128) {
      this.buf[this.at++] = (n % 128) | 128;
      n = Math.floor(n / 128);
    }
    this.buf[this.at++] = n;
  }

  str(s: string): void {
    const max = Buffer.byteLength(s, 'utf8');
    this.u32(max);
    this.room(max);
    this.at += this.buf.write(s, this.at, 'utf8');
  }

  /** Bytes written since the last reset. */
  get length(): number {
    return this.at;
  }

  /** Copies bytes another writer wrote, from start to end (offsets since its last reset). */
  copyFrom(other: BinaryWriter, start: number, end: number): void {
    other.checkRange('copyFrom', start, end);
    this.room(end - start);
    other.buf.copy(this.buf, this.at, start, end);
    this.at += end - start;
  }

  /** Goes back to an earlier length, dropping what was written after it. */
  rewind(to: number): void {
    if (!(to >= 0 && to <= this.at))
      throw new RangeError(`rewind: ${to} is not within 0..${this.at}`);
    this.at = to;
  }

  /** Throws unless start..end lies within what was written since the last reset. */
  private checkRange(what: string, start: number, end: number): void {
    if (!(start >= 0 && start <= end && end <= this.at))
      throw new RangeError(`${what}: ${start}..${end} is not within 0..${this.at}`);
  }

  /** A copy of what was written since the last reset. */
  bytes(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.at));
  }

  /** What was written since the last reset, not copied (valid until written over). */
  written(): Buffer {
    return this.buf.subarray(0, this.at);
  }

  private alloc(bytes: number): Buffer {
    return this.shared ? Buffer.from(new SharedArrayBuffer(bytes)) : Buffer.allocUnsafe(bytes);
  }
}

export class BinaryReader {
  private readonly buf: Buffer;
  private readonly view: DataView;
  private at: number;

  constructor(buf: Buffer, start = 0) {
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.at = start;
  }

  private need(bytes: number): void {
    if (this.at + bytes > this.buf.length) {
      throw new RecmasterError('E_STORE_FORMAT', `snapshot truncated at byte ${this.at}`);
    }
  }

  get done(): boolean {
    return this.at >= this.buf.length;
  }

  u8(): number {
    this.need(1);
    const n = this.view.getUint8(this.at);
    this.at += 1;
    return n;
  }

  u32(): number {
    this.need(4);
    const n = this.view.getUint32(this.at, true);
    this.at += 4;
    return n;
  }

  f64(): number {
    this.need(8);
    const n = this.view.getFloat64(this.at, true);
    this.at += 8;
    return n;
  }

  uvar(): number {
    let n = 0;
    let scale = 1;
    for (;;) {
      const b = this.u8();
      n += (b & 127) * scale;
      if (b < 128) return n;
      scale *= 128;
      if (scale > 2 ** 56)
        throw new RecmasterError('E_STORE_FORMAT', `varint too long at byte ${this.at}`);
    }
  }

  str(): string {
    const length = this.u32();
    this.need(length);
    const s = this.buf.toString('utf8', this.at, this.at + length);
    this.at += length;
    return s;
  }
}
