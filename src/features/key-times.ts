/**
 * Two event times per key of the feature engine (its newest event, and the earliest time one
 * of its states can expire), in one Float64Array by slot. As fields of the key objects they
 * were two heap numbers per key: V8 boxes a double field unless it holds a small integer, and
 * event times in ms never do (with a key's sweep slice, also boxed then, 138k heap numbers in a
 * 20-minute run's snapshot: the largest group of objects the engine still made for the
 * collector to trace). A key holds its slot, a small
 * integer, and gives it back when it is dropped.
 */
export class KeyTimes {
  private times = new Float64Array(2 * 1024);
  /** Slots given back, reused first (small integers: the array stays unboxed). */
  private readonly free: number[] = [];
  /** The next slot never handed out. */
  private top = 0;

  /** Slots in use (a leak shows here). */
  get live(): number {
    return this.top - this.free.length;
  }

  /** Takes a slot; both its times start as `newest` and `expiresFrom`. */
  take(newest: number, expiresFrom: number): number {
    let slot = this.free.pop();
    if (slot === undefined) {
      slot = this.top;
      this.top += 1;
      if (2 * this.top > this.times.length) {
        const grown = new Float64Array(2 * this.times.length);
        grown.set(this.times);
        this.times = grown;
      }
    }
    this.times[2 * slot] = newest;
    this.times[2 * slot + 1] = expiresFrom;
    return slot;
  }

  give(slot: number): void {
    if (!(slot >= 0 && slot < this.top))
      throw new RangeError(`KeyTimes.give: ${slot} is not a slot in use`);
    this.free.push(slot);
  }

  newest(slot: number): number {
    return this.times[2 * slot] as number;
  }

  setNewest(slot: number, t: number): void {
    this.times[2 * slot] = t;
  }

  expiresFrom(slot: number): number {
    return this.times[2 * slot + 1] as number;
  }

  setExpiresFrom(slot: number, t: number): void {
    this.times[2 * slot + 1] = t;
  }
}
