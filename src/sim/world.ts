// The latent world: category/tag/creator vectors, items with metadata and a latent vector,
// users with interest vectors that may drift. Deterministic from the config alone, so
// another process can rebuild the same world (and the same new items, in the same order).

import { cumulative, Rng } from '../util/rng.js';
import { parseSimConfig, type SimConfig, type SimConfigInput } from './config.js';

/** Zipf exponent of category popularity (c0 most popular). */
const CATEGORY_ZIPF = 0.8;
/** Probability that each of an item's tags comes from the item's own category. */
const OWN_CATEGORY_TAG = 0.85;
/** Share of a user's interest variance that is noise, not favourite categories. */
const USER_NOISE = 0.2;
/** Lognormal duration: median 60 s, log-sd 0.8, clipped to [5, 600] s. */
const DURATION = { median: 60, logSd: 0.8, min: 5, max: 600 };
/** Sigma of the lognormal user activity weight (mildly skewed request rates). */
const ACTIVITY_LOG_SD = 0.5;

export interface WorldItem {
  readonly index: number;
  readonly id: string;
  readonly category: number;
  readonly tags: readonly number[];
  readonly creator: number;
  readonly durationS: number;
  /** Latent quality q ~ N(0, 1). */
  readonly quality: number;
  /** The metadata-explained part of the latent vector (unit variance per dim). */
  readonly vObs: Float64Array;
  /** The latent vector: sqrt(1-h)·vObs + sqrt(h)·e. */
  readonly v: Float64Array;
}

export interface WorldUser {
  readonly index: number;
  readonly id: string;
  readonly favourites: readonly number[];
  readonly interest: Float64Array;
  /** The favourite categories' part of `interest`, without the user's own noise. */
  readonly favouriteInterest: Float64Array;
  /** Relative request rate. */
  readonly activity: number;
  /** Set when this user drifts at driftAtS. */
  readonly drift?: {
    readonly favourites: readonly number[];
    readonly interest: Float64Array;
    readonly favouriteInterest: Float64Array;
  };
}

export const categoryId = (k: number) => `c${k}`;
export const tagId = (j: number) => `t${j}`;
export const creatorId = (m: number) => `a${m}`;
export const itemId = (n: number) => `i${n}`;
export const userId = (n: number) => `u${n}`;

function parseIndex(id: string, prefix: string): number {
  if (id.length < 2 || id[0] !== prefix) return -1;
  const digits = id.slice(1);
  if (!/^(0|[1-9]\d*)$/.test(digits)) return -1;
  return Number(digits);
}

export class World {
  readonly config: SimConfig;
  readonly dim: number;
  readonly categoryVecs: Float64Array[];
  readonly tagVecs: Float64Array[];
  readonly tagCategory: Int32Array;
  readonly creatorVecs: Float64Array[];
  readonly creatorCategory: Int32Array;
  readonly users: readonly WorldUser[];
  /** Event time (epoch ms) at which drifted users switch interest; null = never. */
  readonly driftTimeMs: number | null;
  /** Indices of users who drift, ascending. */
  readonly driftedUsers: readonly number[];

  private readonly rng: Rng;
  private readonly categoryCum: Float64Array;
  private readonly tagsByCategory: number[][];
  private readonly creatorsByCategory: number[][];
  private readonly items: WorldItem[] = [];

  constructor(config: SimConfigInput | SimConfig = {}) {
    const c = parseSimConfig(config);
    this.config = c;
    this.dim = c.dim;
    this.rng = new Rng(c.seed);

    const catRng = this.rng.fork('categories');
    this.categoryVecs = Array.from({ length: c.categories }, () => catRng.normalVector(c.dim));
    this.categoryCum = cumulative(
      Array.from({ length: c.categories }, (_, k) => (k + 1) ** -CATEGORY_ZIPF),
    );

    const tagRng = this.rng.fork('tags');
    const nTags = c.categories * c.tagsPerCategory;
    this.tagVecs = Array.from({ length: nTags }, () => tagRng.normalVector(c.dim));
    this.tagCategory = Int32Array.from({ length: nTags }, (_, j) =>
      Math.floor(j / c.tagsPerCategory),
    );
    this.tagsByCategory = Array.from({ length: c.categories }, (_, k) =>
      Array.from({ length: c.tagsPerCategory }, (_, i) => k * c.tagsPerCategory + i),
    );

    // Every category gets a creator first (when there are enough), the rest follow popularity.
    const creatorRng = this.rng.fork('creators');
    this.creatorVecs = [];
    this.creatorCategory = new Int32Array(c.creators);
    this.creatorsByCategory = Array.from({ length: c.categories }, () => []);
    for (let m = 0; m < c.creators; m++) {
      this.creatorVecs.push(creatorRng.normalVector(c.dim));
      const home = m < c.categories ? m : creatorRng.pickCumulative(this.categoryCum);
      this.creatorCategory[m] = home;
      this.creatorsByCategory[home]?.push(m);
    }

    const users: WorldUser[] = [];
    for (let n = 0; n < c.users; n++) users.push(this.makeUser(n));

    // Drift: an exact, seeded share of users; each gets new favourites and fresh noise.
    this.driftTimeMs = c.driftAtS === null ? null : c.startTime + Math.round(c.driftAtS * 1000);
    const drifted: number[] = [];
    if (this.driftTimeMs !== null && c.driftShare > 0) {
      const order = this.rng.fork('drift').shuffle(Array.from({ length: c.users }, (_, i) => i));
      drifted.push(...order.slice(0, Math.round(c.driftShare * c.users)).sort((a, b) => a - b));
      for (const n of drifted) {
        const user = users[n] as WorldUser;
        const r = this.rng.fork(`drift/${n}`);
        const favourites = this.pickFavourites(r, user.favourites);
        users[n] = { ...user, drift: { favourites, ...this.interestFrom(r, favourites) } };
      }
    }
    this.users = users;
    this.driftedUsers = drifted;

    this.ensureItems(c.items);
  }

  get itemCount(): number {
    return this.items.length;
  }

  get userCount(): number {
    return this.users.length;
  }

  /** Generates items up to `count` (in index order; item n depends only on config and n). */
  ensureItems(count: number): void {
    while (this.items.length < count) this.items.push(this.makeItem(this.items.length));
  }

  /** Generates the next new item (the simulator calls this when an item arrives). */
  addItem(): WorldItem {
    const item = this.makeItem(this.items.length);
    this.items.push(item);
    return item;
  }

  item(index: number): WorldItem {
    const item = this.items[index];
    if (!item) throw new Error(`unknown item index ${index} (world has ${this.items.length})`);
    return item;
  }

  user(index: number): WorldUser {
    const user = this.users[index];
    if (!user) throw new Error(`unknown user index ${index} (world has ${this.users.length})`);
    return user;
  }

  /** Index of item id `i<n>`, or -1 when it is malformed or not (yet) in the world. */
  findItem(id: string): number {
    const n = parseIndex(id, 'i');
    return n >= 0 && n < this.items.length ? n : -1;
  }

  itemIndex(id: string): number {
    const n = this.findItem(id);
    if (n < 0) {
      throw new Error(`unknown item id "${id}" (world has i0..i${this.items.length - 1})`);
    }
    return n;
  }

  userIndex(id: string): number {
    const n = parseIndex(id, 'u');
    if (n < 0 || n >= this.users.length) {
      throw new Error(`unknown user id "${id}" (world has u0..u${this.users.length - 1})`);
    }
    return n;
  }

  /** The user's interest vector at event time `tMs` (drifted users switch at driftTimeMs). */
  interestAt(userIndex: number, tMs: number): Float64Array {
    return this.interestsAt(userIndex, tMs).interest;
  }

  /** The user's interest at `tMs` with its favourite-category part (drift included). */
  interestsAt(
    userIndex: number,
    tMs: number,
  ): { interest: Float64Array; favouriteInterest: Float64Array } {
    const user = this.user(userIndex);
    if (user.drift && this.driftTimeMs !== null && tMs >= this.driftTimeMs) return user.drift;
    return user;
  }

  private makeUser(n: number): WorldUser {
    const r = this.rng.fork(`user/${n}`);
    const favourites = this.pickFavourites(r, []);
    const { interest, favouriteInterest } = this.interestFrom(r, favourites);
    const activity = Math.exp(ACTIVITY_LOG_SD * r.normal() - ACTIVITY_LOG_SD ** 2 / 2);
    return { index: n, id: userId(n), favourites, interest, favouriteInterest, activity };
  }

  /** 1-3 distinct categories by popularity, avoiding `exclude` when there are others left. */
  private pickFavourites(r: Rng, exclude: readonly number[]): number[] {
    const k = this.config.categories;
    const available = k - exclude.length;
    const avoid = available > 0 ? new Set(exclude) : new Set<number>();
    const want = Math.min(1 + r.int(3), available > 0 ? available : k);
    const picked: number[] = [];
    for (let attempt = 0; picked.length < want && attempt < 1000; attempt++) {
      const cat = r.pickCumulative(this.categoryCum);
      if (!avoid.has(cat) && !picked.includes(cat)) picked.push(cat);
    }
    if (picked.length === 0) picked.push(r.int(k));
    return picked;
  }

  /** sqrt(1-η)·Σ w_k c_k + sqrt(η)·noise with Σ w_k² = 1, so every dim has unit variance. */
  private interestFrom(
    r: Rng,
    favourites: readonly number[],
  ): { interest: Float64Array; favouriteInterest: Float64Array } {
    const weights = favourites.map(() => r.gamma(1));
    const norm = Math.sqrt(weights.reduce((s, w) => s + w * w, 0));
    const u = new Float64Array(this.dim);
    const a = Math.sqrt(1 - USER_NOISE);
    favourites.forEach((cat, i) => {
      const c = this.categoryVecs[cat] as Float64Array;
      const w = (a * (weights[i] as number)) / norm;
      for (let d = 0; d < this.dim; d++) u[d] = (u[d] as number) + w * (c[d] as number);
    });
    const favouriteInterest = Float64Array.from(u);
    const b = Math.sqrt(USER_NOISE);
    for (let d = 0; d < this.dim; d++) u[d] = (u[d] as number) + b * r.normal();
    return { interest: u, favouriteInterest };
  }

  private makeItem(n: number): WorldItem {
    const c = this.config;
    const r = this.rng.fork(`item/${n}`);
    const category = r.pickCumulative(this.categoryCum);

    const nTags = 1 + r.int(3);
    const tags: number[] = [];
    for (let attempt = 0; tags.length < nTags && attempt < 50; attempt++) {
      const tag =
        r.uniform() < OWN_CATEGORY_TAG
          ? r.pick(this.tagsByCategory[category] as number[])
          : r.int(this.tagVecs.length);
      if (!tags.includes(tag)) tags.push(tag);
    }

    const own = this.creatorsByCategory[category] as number[];
    // Only when creators < categories can a category have no creator of its own.
    const creator = own.length > 0 ? r.pick(own) : r.int(c.creators);

    const raw = DURATION.median * Math.exp(DURATION.logSd * r.normal());
    const durationS = Math.round(Math.min(DURATION.max, Math.max(DURATION.min, raw)) * 10) / 10;
    const quality = r.normal();

    // v_obs = sqrt(.5)·c + sqrt(.3)·(tag mean · sqrt(#tags)) + sqrt(.2)·r: unit variance per dim.
    const vObs = new Float64Array(c.dim);
    const cv = this.categoryVecs[category] as Float64Array;
    const rv = this.creatorVecs[creator] as Float64Array;
    const tagScale = Math.sqrt(0.3) / Math.sqrt(tags.length);
    for (let d = 0; d < c.dim; d++) {
      let tagSum = 0;
      for (const t of tags) tagSum += (this.tagVecs[t] as Float64Array)[d] as number;
      vObs[d] =
        Math.sqrt(0.5) * (cv[d] as number) + tagScale * tagSum + Math.sqrt(0.2) * (rv[d] as number);
    }
    const h = c.hiddenShare;
    const v = new Float64Array(c.dim);
    for (let d = 0; d < c.dim; d++) {
      v[d] = Math.sqrt(1 - h) * (vObs[d] as number) + Math.sqrt(h) * r.normal();
    }
    return { index: n, id: itemId(n), category, tags, creator, durationS, quality, vObs, v };
  }
}
