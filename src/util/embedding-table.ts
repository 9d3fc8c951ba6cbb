// A sparse embedding table with row-wise Adagrad: each training step touches few rows, so
// gradients are summed per row and only those rows (and their optimiser state) change. Used by
// GraphSAGE's category/tag/creator tables and the ranker's hashed ID embeddings. Row 0 is
// reserved ("unknown" / padding) and never moves.
import { fnv1a } from './fnv.js';

export class EmbeddingTable {
  readonly weights: Float32Array;
  private readonly acc: Float32Array;
  private readonly pending = new Map<number, Float32Array>();
  private nonFinite = false;

  /**
   * `weights` is [rows, dim] and is updated in place (pass an existing array to train it).
   * Adagrad's accumulators start at `initialAccumulator`, which bounds the first steps.
   */
  constructor(
    readonly dim: number,
    weights: Float32Array,
    readonly learningRate: number,
    initialAccumulator = 0.1,
  ) {
    if (weights.length % dim !== 0)
      throw new Error(`embedding table: ${weights.length} values is not a multiple of dim ${dim}`);
    this.weights = weights;
    this.acc = new Float32Array(weights.length).fill(initialAccumulator);
  }

  /**
   * False once a step has written a non-finite value (checked on the rows it touched, so a
   * guard need not scan the whole table; weights passed in are assumed finite).
   */
  get finite(): boolean {
    return !this.nonFinite;
  }

  get rows(): number {
    return this.weights.length / this.dim;
  }

  /** A view of one row. */
  row(r: number): Float32Array {
    return this.weights.subarray(r * this.dim, (r + 1) * this.dim);
  }

  /** Adds `scale · grad[from .. from + dim)` to row `r`'s gradient for the next step. */
  accumulate(r: number, grad: ArrayLike<number>, from: number, scale = 1): void {
    if (r === 0) return; // the reserved row stays as it is
    const d = this.dim;
    let g = this.pending.get(r);
    if (!g) {
      g = new Float32Array(d);
      this.pending.set(r, g);
    }
    for (let j = 0; j < d; j++) g[j] = (g[j] as number) + scale * (grad[from + j] as number);
  }

  /** One Adagrad step on every row with an accumulated gradient; clears them. */
  step(): void {
    const d = this.dim;
    const w = this.weights;
    const acc = this.acc;
    for (const [r, g] of this.pending) {
      const base = r * d;
      for (let j = 0; j < d; j++) {
        const gj = g[j] as number;
        if (gj === 0) continue; // no step, and no 0/0 with a zero accumulator
        const a = (acc[base + j] as number) + gj * gj;
        acc[base + j] = a;
        const next = (w[base + j] as number) - (this.learningRate * gj) / Math.sqrt(a);
        w[base + j] = next;
        if (!Number.isFinite(next)) this.nonFinite = true;
      }
    }
    this.pending.clear();
  }
}

/** A stable row in [1, rows) for an id (FNV-1a), for hashed ID embeddings; row 0 stays reserved. */
export function hashedRow(id: string, rows: number): number {
  if (rows < 2) throw new Error('a hashed table needs at least 2 rows (row 0 is reserved)');
  return 1 + (fnv1a(id) % (rows - 1));
}
