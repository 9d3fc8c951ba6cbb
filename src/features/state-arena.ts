/**
 * The numbers of many small feature states in a few large Float64Arrays, handed out in blocks
 * and taken back explicitly (`free`) when a state is dropped. Why: 20 minutes into a stream an
 * engine holds ~120k sliding windows whose own arrays were ~115 MB of a ~205 MB heap and ~250k
 * heap objects, plus ~100k decayed states each boxing its two doubles; every mark-compact traced
 * them and every bucket array that grew left its old copy for the collector (heap snapshot of
 * a 20-minute run, seventeenth session in README). Here the collector sees a few chunks.
 *
 * Blocks come in size classes ~1.5× apart, each class with its own free list threaded through
 * the free blocks themselves (a block's first two numbers name the next free one), so taking and
 * giving back a block allocates nothing. A block lies within one chunk; a state keeps its chunk
 * (`chunk(no)`) and offset.
 */
export class StateArena {
  /** Numbers per chunk (8 MiB); a larger block gets a chunk of its own size. */
  static readonly CHUNK = 1 << 20;

  private readonly chunks: Float64Array[] = [];
  /** Per size class, the free list's first block (chunk number, offset); -1 when empty. */
  private readonly freeChunk: number[] = CAPS.map(() => -1);
  private readonly freeAt: number[] = CAPS.map(() => 0);
  /** Where the next fresh block starts in the last chunk. */
  private top = 0;
  /** Blocks handed out and not freed (a leak shows here). */
  private blocks = 0;
  /** Chunk number and offset of the block `alloc` handed out last. */
  lastChunk = -1;
  lastAt = 0;

  /** Blocks in use. */
  get liveBlocks(): number {
    return this.blocks;
  }

  /** Bytes of all chunks (what the arena holds outside V8's heap). */
  get bytes(): number {
    let total = 0;
    for (const c of this.chunks) total += c.byteLength;
    return total;
  }

  chunk(no: number): Float64Array {
    return this.chunks[no] as Float64Array;
  }

  /**
   * Takes a block of at least `size` (>= 2) numbers and returns its capacity; its place is in
   * lastChunk / lastAt (two numbers, not an object to allocate). Its contents are undefined.
   */
  alloc(size: number): number {
    const cls = classOf(size);
    const cap = CAPS[cls] as number;
    this.blocks += 1;
    const no = this.freeChunk[cls] as number;
    if (no >= 0) {
      const at = this.freeAt[cls] as number;
      const c = this.chunks[no] as Float64Array;
      // `| 0`: a number read from a Float64Array is a double to V8, and a double stored in a
      // field turns that field into a heap box in every state (one object more each).
      this.freeChunk[cls] = (c[at] as number) | 0;
      this.freeAt[cls] = (c[at + 1] as number) | 0;
      this.lastChunk = no;
      this.lastAt = at;
      return cap;
    }
    let last = this.chunks.length - 1;
    if (last < 0 || this.top + cap > (this.chunks[last] as Float64Array).length) {
      this.chunks.push(new Float64Array(Math.max(StateArena.CHUNK, cap)));
      last += 1;
      this.top = 0;
    }
    this.lastChunk = last;
    this.lastAt = this.top;
    this.top += cap;
    return cap;
  }

  /** Gives back the block of capacity `cap` at (chunk no, at). */
  free(no: number, at: number, cap: number): void {
    const cls = classOf(cap);
    if (CAPS[cls] !== cap) throw new Error(`not a block capacity: ${cap}`);
    const c = this.chunks[no] as Float64Array;
    c[at] = this.freeChunk[cls] as number;
    c[at + 1] = this.freeAt[cls] as number;
    this.freeChunk[cls] = no;
    this.freeAt[cls] = at;
    this.blocks -= 1;
  }
}

/** Block capacities: 2, 3, 4, 6, 8, 12, … (powers of two and 1.5 × them) up to 2^30. */
const CAPS: readonly number[] = (() => {
  const caps = [2, 3];
  for (let p = 4; p <= 2 ** 30; p *= 2) caps.push(p, p + p / 2);
  return caps;
})();

/** The smallest class whose capacity holds `size` numbers. */
function classOf(size: number): number {
  if (!(size >= 2 && size <= (CAPS[CAPS.length - 1] as number))) {
    throw new Error(`block size out of range: ${size}`);
  }
  let cls = 0;
  while ((CAPS[cls] as number) < size) cls++;
  return cls;
}

/**
 * A state whose numbers live in an arena block: `buf[at …]`. While it has no block (cap 0) `buf`
 * is a shared read-only template of the empty state's numbers, so an empty state costs no block
 * (the engine and its restore path make states that may never see an event).
 */
export abstract class ArenaNumbers {
  protected buf: Float64Array;
  protected at = 0;
  /** The block's capacity; 0 while there is none. */
  protected cap = 0;
  private no = -1;
  protected readonly arena: StateArena;

  constructor(arena: StateArena, empty: Float64Array) {
    this.arena = arena;
    this.buf = empty;
  }

  /** Makes room for `size` numbers, keeping the first `used` (moved to a larger block). */
  protected reserve(size: number, used: number): void {
    if (size <= this.cap) return;
    const arena = this.arena;
    const cap = arena.alloc(size);
    const to = arena.chunk(arena.lastChunk);
    const at = arena.lastAt;
    const from = this.buf;
    const start = this.at;
    for (let i = 0; i < used; i++) to[at + i] = from[start + i] as number;
    if (this.cap > 0) arena.free(this.no, start, this.cap);
    this.buf = to;
    this.at = at;
    this.cap = cap;
    this.no = arena.lastChunk;
  }

  /** Gives its block back; the state must not be used after. */
  release(): void {
    if (this.cap === 0) return;
    this.arena.free(this.no, this.at, this.cap);
    this.cap = 0;
    this.no = -1;
  }
}

/** For states made without an engine's arena (tests, tools): lives as long as the process. */
export const sharedArena = new StateArena();
