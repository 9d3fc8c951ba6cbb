// Seeded randomness for the simulator. Everything random in the simulated world goes
// through this class so that a seed fully determines the event stream.
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { xoroshiro128plusFromState } from 'pure-rand/generator/xoroshiro128plus';
import type { RandomGenerator } from 'pure-rand/types/RandomGenerator';

/** FNV-1a over the string, then murmur3's finaliser so nearby keys give unrelated states. */
function hash32(key: string, salt: number): number {
  let h = (0x811c9dc5 ^ Math.imul(salt, 0x9e3779b1)) | 0;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

const TWO_PI = 2 * Math.PI;

export class Rng {
  /**
   * The stream's name: the root seed plus the fork labels that led here. A fork's state
   * depends only on this key, never on how many numbers the parent has drawn, so adding
   * users cannot shift the items' stream (and vice versa).
   */
  readonly key: string;
  private readonly gen: RandomGenerator;
  private spare = Number.NaN;

  constructor(seedOrKey: number | string) {
    this.key = typeof seedOrKey === 'number' ? `seed:${seedOrKey}` : seedOrKey;
    // The full 128-bit state comes from the key (pure-rand's own seeding only uses 32 bits).
    const state = [1, 2, 3, 4].map((salt) => hash32(this.key, salt));
    if (!state.some((s) => s !== 0)) state[0] = 1; // all-zero is xoroshiro's one bad state
    this.gen = xoroshiro128plusFromState(state);
    for (let i = 0; i < 8; i++) this.gen.next();
  }

  /** An independent sub-stream named `label`, stable whatever this stream has drawn. */
  fork(label: string | number): Rng {
    return new Rng(`${this.key}/${label}`);
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return uniformFloat64(this.gen);
  }

  /** Uniform in (0, 1]: safe to take the log of. */
  uniformPositive(): number {
    return 1 - uniformFloat64(this.gen);
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal, Box-Muller (the second value of each pair is kept for the next call). */
  normal(): number {
    if (!Number.isNaN(this.spare)) {
      const s = this.spare;
      this.spare = Number.NaN;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniformPositive()));
    const theta = TWO_PI * this.uniform();
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** Gamma(shape, 1), Marsaglia-Tsang; shape < 1 uses the boost Gamma(a+1)·U^(1/a). */
  gamma(shape: number): number {
    if (!(shape > 0)) throw new RangeError(`gamma shape must be > 0, got ${shape}`);
    if (shape < 1) return this.gamma(shape + 1) * this.uniformPositive() ** (1 / shape);
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      const x = this.normal();
      let v = 1 + c * x;
      if (v <= 0) continue;
      v = v * v * v;
      const u = this.uniformPositive();
      const x2 = x * x;
      if (u < 1 - 0.0331 * x2 * x2) return d * v;
      if (Math.log(u) < 0.5 * x2 + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /** Beta(a, b) as X/(X+Y) of two gammas. */
  beta(a: number, b: number): number {
    const x = this.gamma(a);
    const y = this.gamma(b);
    const s = x + y;
    // Both can underflow to 0 for tiny shapes; fall back to the mean.
    return s > 0 ? x / s : a / (a + b);
  }

  /** Gap to the next arrival of a Poisson process with `rate` events per unit time. */
  poissonInterval(rate: number): number {
    if (!(rate > 0)) return Number.POSITIVE_INFINITY;
    return -Math.log(this.uniformPositive()) / rate;
  }

  /** Standard Gumbel noise: argmax(score + Gumbel) samples from softmax(score). */
  gumbel(): number {
    // uniform() < 1 always (multiples of 2^-53), so only 0 needs a guard.
    return -Math.log(-Math.log(this.uniform() || Number.MIN_VALUE));
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty array');
    return items[this.int(items.length)] as T;
  }

  /** Index drawn with probability proportional to `cumulative` weights (ascending, last = total). */
  pickCumulative(cumulative: ArrayLike<number>): number {
    const n = cumulative.length;
    const x = this.uniform() * (cumulative[n - 1] as number);
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((cumulative[mid] as number) > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Fisher-Yates in place; returns the same array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = items[i] as T;
      items[i] = items[j] as T;
      items[j] = t;
    }
    return items;
  }

  /** A vector of `dim` independent N(0, 1) draws. */
  normalVector(dim: number): Float64Array {
    const v = new Float64Array(dim);
    for (let d = 0; d < dim; d++) v[d] = this.normal();
    return v;
  }
}

/** Running sums of weights, for Rng.pickCumulative. */
export function cumulative(weights: ArrayLike<number>): Float64Array {
  const out = new Float64Array(weights.length);
  let s = 0;
  for (let i = 0; i < weights.length; i++) {
    s += weights[i] as number;
    out[i] = s;
  }
  return out;
}
