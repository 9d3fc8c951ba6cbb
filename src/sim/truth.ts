// The oracle: true click probability and watch time of any (user, item, position, time),
// following the MMoE paper's synthetic two-task setup on x = u ⊙ v.
import { Rng } from '../util/rng.js';
import type { World } from './world.js';

/**
 * Constants of the truth. Under the built-in logging policy a1 has mean ≈ 1.2 and sd ≈ 1.4
 * (random pairs: mean ≈ 0.1, sd ≈ 1.3), so b_ctr = -4.8 gives an overall CTR of ≈ 6.5 % with
 * the default config, while s_ctr = 1.5 keeps a wide spread of true probabilities (≈ 1 % for
 * a random item, > 50 % for the oracle's best). b_w = -0.5 gives a mean watch ratio given a
 * click of ≈ 0.6. Measured with bench/sim.ts (npm run bench:sim).
 */
export const TRUTH = {
  /** Click logit intercept. */
  bCtr: -4.8,
  /** Click logit slope on the click-task signal a1. */
  sCtr: 1.5,
  /** Click logit slope on latent quality. */
  sQ: 0.5,
  /** Watch-ratio logit intercept. */
  bW: -0.5,
  /** Watch-ratio logit slope on the watch-task signal a2. */
  sW: 1,
  /** Watch-ratio logit slope on latent quality. */
  sQ2: 0.5,
  /** Beta concentration of watched/duration: Beta(r·κ, (1-r)·κ) has mean r. */
  kappa: 10,
  /** Number of sin terms per task (the paper's m). */
  sinTerms: 2,
} as const;

/** Probability that the user looks at slot `position` (0-based): (1+pos)^-0.5. */
export function examination(position: number): number {
  return 1 / Math.sqrt(1 + position);
}

export function sigmoid(z: number): number {
  return 1 / (1 + Math.exp(-z));
}

export interface TaskSignals {
  /** Click-task signal a1. */
  a1: number;
  /** Watch-task signal a2. */
  a2: number;
}

export interface OracleItem {
  itemId: string;
  /** True click probability at position 0. */
  probability: number;
}

export class Truth {
  readonly w1: Float64Array;
  readonly w2: Float64Array;
  /** The sin terms' frequencies and phases, shared by both tasks (as in the paper). */
  readonly alpha: readonly number[];
  readonly beta: readonly number[];
  private readonly dim: number;
  private readonly nonlinearity: number;

  constructor(readonly world: World) {
    const { dim, taskCorrelation: rho, nonlinearity, seed } = world.config;
    this.dim = dim;
    this.nonlinearity = nonlinearity;
    const r = new Rng(seed).fork('truth');
    this.w1 = new Float64Array(dim).fill(1 / Math.sqrt(dim));
    // w⊥: a random direction with its w1 component removed, normalised.
    const perp = r.normalVector(dim);
    const proj = dot(perp, this.w1);
    for (let d = 0; d < dim; d++) perp[d] = (perp[d] as number) - proj * (this.w1[d] as number);
    const norm = Math.sqrt(dot(perp, perp));
    this.w2 = new Float64Array(dim);
    const s = Math.sqrt(Math.max(0, 1 - rho * rho));
    for (let d = 0; d < dim; d++) {
      this.w2[d] = rho * (this.w1[d] as number) + (s * (perp[d] as number)) / norm;
    }
    this.alpha = Array.from({ length: TRUTH.sinTerms }, () => r.range(0.5, 2));
    this.beta = Array.from({ length: TRUTH.sinTerms }, () => r.range(0, 2 * Math.PI));
  }

  /** Task signals a_t = w_t·x + Σ nonlinearity·sin(α_i·w_t·x + β_i), x = u(t) ⊙ v. */
  signalsIdx(userIndex: number, itemIndex: number, tMs: number): TaskSignals {
    return this.signalsOf(this.world.interestAt(userIndex, tMs), this.world.item(itemIndex).v);
  }

  private signalsOf(u: Float64Array, v: Float64Array): TaskSignals {
    let l1 = 0;
    let l2 = 0;
    for (let d = 0; d < this.dim; d++) {
      const x = (u[d] as number) * (v[d] as number);
      l1 += (this.w1[d] as number) * x;
      l2 += (this.w2[d] as number) * x;
    }
    let a1 = l1;
    let a2 = l2;
    for (let i = 0; i < this.alpha.length; i++) {
      const al = this.alpha[i] as number;
      const be = this.beta[i] as number;
      a1 += this.nonlinearity * Math.sin(al * l1 + be);
      a2 += this.nonlinearity * Math.sin(al * l2 + be);
    }
    return { a1, a2 };
  }

  /**
   * The click probability as a predictor would compute it that knows only some of the world's
   * per-entity idiosyncrasies (each `false` replaces one by its mean): the user's own noise
   * (else the interest is its favourite categories' part), the item's hidden share (else the
   * vector is its metadata part, sqrt(1-h)·vObs), the item's quality (else 0). All `true` is
   * clickProbability. A ceiling for rankers that learn each user and item from a few clicks.
   */
  clickProbabilityKnowing(
    userId: string,
    itemId: string,
    position: number,
    tMs: number,
    known: { userNoise: boolean; itemHidden: boolean; quality: boolean },
  ): number {
    checkPosition(position);
    const user = this.world.interestsAt(this.world.userIndex(userId), tMs);
    const item = this.world.item(this.world.itemIndex(itemId));
    const u = known.userNoise ? user.interest : user.favouriteInterest;
    const keep = Math.sqrt(1 - this.world.config.hiddenShare);
    const v = known.itemHidden ? item.v : item.vObs.map((x) => keep * x);
    const q = known.quality ? item.quality : 0;
    const { a1 } = this.signalsOf(u, v);
    return examination(position) * sigmoid(TRUTH.bCtr + TRUTH.sCtr * a1 + TRUTH.sQ * q);
  }

  /** Position-free click logit: b_ctr + s_ctr·a1 + s_q·q. */
  affinityIdx(userIndex: number, itemIndex: number, tMs: number): number {
    const { a1 } = this.signalsIdx(userIndex, itemIndex, tMs);
    return TRUTH.bCtr + TRUTH.sCtr * a1 + TRUTH.sQ * this.world.item(itemIndex).quality;
  }

  clickProbabilityIdx(userIndex: number, itemIndex: number, position: number, tMs: number) {
    return examination(position) * sigmoid(this.affinityIdx(userIndex, itemIndex, tMs));
  }

  /** Mean watched share of the duration, given a click: sigmoid(b_w + s_w·a2 + s_q2·q). */
  watchRatioIdx(userIndex: number, itemIndex: number, tMs: number): number {
    const { a2 } = this.signalsIdx(userIndex, itemIndex, tMs);
    return sigmoid(TRUTH.bW + TRUTH.sW * a2 + TRUTH.sQ2 * this.world.item(itemIndex).quality);
  }

  /** Click probability and watch ratio in one pass (what the simulator needs per impression). */
  outcomeIdx(userIndex: number, itemIndex: number, position: number, tMs: number) {
    const { a1, a2 } = this.signalsIdx(userIndex, itemIndex, tMs);
    const q = this.world.item(itemIndex).quality;
    return {
      click: examination(position) * sigmoid(TRUTH.bCtr + TRUTH.sCtr * a1 + TRUTH.sQ * q),
      watchRatio: sigmoid(TRUTH.bW + TRUTH.sW * a2 + TRUTH.sQ2 * q),
    };
  }

  // The public, id-based API. Unknown ids throw with the valid range in the message.

  signals(userId: string, itemId: string, tMs: number): TaskSignals {
    return this.signalsIdx(this.world.userIndex(userId), this.world.itemIndex(itemId), tMs);
  }

  affinity(userId: string, itemId: string, tMs: number): number {
    return this.affinityIdx(this.world.userIndex(userId), this.world.itemIndex(itemId), tMs);
  }

  clickProbability(userId: string, itemId: string, position: number, tMs: number): number {
    checkPosition(position);
    const u = this.world.userIndex(userId);
    return this.clickProbabilityIdx(u, this.world.itemIndex(itemId), position, tMs);
  }

  watchRatioGivenClick(userId: string, itemId: string, tMs: number): number {
    return this.watchRatioIdx(this.world.userIndex(userId), this.world.itemIndex(itemId), tMs);
  }

  /** Unconditional expected watched seconds: P(click)·duration·r. */
  expectedWatchSeconds(userId: string, itemId: string, position: number, tMs: number): number {
    checkPosition(position);
    const u = this.world.userIndex(userId);
    const i = this.world.itemIndex(itemId);
    const o = this.outcomeIdx(u, i, position, tMs);
    return o.click * this.world.item(i).durationS * o.watchRatio;
  }

  /**
   * The k items with the highest true click probability at position 0 for this user at tMs,
   * best first. Candidates default to every item the world has generated so far.
   */
  oracleTopK(userId: string, k: number, tMs: number, candidateItemIds?: readonly string[]) {
    const u = this.world.userIndex(userId);
    const candidates = candidateItemIds
      ? candidateItemIds.map((id) => this.world.itemIndex(id))
      : Array.from({ length: this.world.itemCount }, (_, i) => i);
    const scored = candidates.map((i) => ({ i, logit: this.affinityIdx(u, i, tMs) }));
    scored.sort((a, b) => b.logit - a.logit || a.i - b.i);
    return scored.slice(0, Math.max(0, k)).map(
      ({ i, logit }): OracleItem => ({
        itemId: this.world.item(i).id,
        probability: examination(0) * sigmoid(logit),
      }),
    );
  }
}

function checkPosition(position: number): void {
  if (!Number.isInteger(position) || position < 0) {
    throw new RangeError(`position must be a non-negative integer, got ${position}`);
  }
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let d = 0; d < a.length; d++) s += (a[d] as number) * (b[d] as number);
  return s;
}
