// The built-in logging policy, used when no server is attached: a stochastic ranker that
// only knows category-level interest (metadata), never the truth. Its Gumbel noise makes it
// a softmax sampler over candidates, so logged data covers more than the top items.
import type { Impression } from '../events/schemas.js';
import type { Rng } from '../util/rng.js';
import type { IdSource } from './ids.js';
import type { Recommender, RecommendRequest, RecommendResponse } from './recommender.js';
import type { World } from './world.js';

export const POLICY_MODEL_VERSION = 'sim-policy';

export class LoggingPolicy implements Recommender {
  private readonly sqrtDim: number;
  // Per-request scratch space, reused to keep allocation out of the hot path.
  private seen = new Uint32Array(0);
  private stamp = 0;
  private readonly catAff: Float64Array;
  private readonly catStamp: Uint32Array;

  constructor(
    private readonly world: World,
    private readonly rng: Rng,
    private readonly ids: IdSource,
    private readonly candidates = world.config.policyCandidates,
  ) {
    this.sqrtDim = Math.sqrt(world.dim);
    this.catAff = new Float64Array(world.config.categories);
    this.catStamp = new Uint32Array(world.config.categories);
  }

  recommend(req: RecommendRequest): Promise<RecommendResponse> {
    return Promise.resolve(this.recommendSync(req));
  }

  recommendSync(req: RecommendRequest): RecommendResponse & { impressions: Impression[] } {
    const userIndex = this.world.userIndex(req.userId);
    const u = this.world.interestAt(userIndex, req.ts);
    const n = this.world.itemCount;
    const stamp = this.nextStamp(n);
    const k = Math.min(req.count, n);
    const topItems: number[] = [];
    const topScores: number[] = [];

    const consider = (item: number) => {
      const cat = this.world.item(item).category;
      if (this.catStamp[cat] !== stamp) {
        const c = this.world.categoryVecs[cat] as Float64Array;
        let s = 0;
        for (let d = 0; d < c.length; d++) s += (u[d] as number) * (c[d] as number);
        this.catAff[cat] = s / this.sqrtDim;
        this.catStamp[cat] = stamp;
      }
      const score = (this.catAff[cat] as number) + this.rng.gumbel();
      // Insertion into a short sorted list: k is small (the slate size).
      if (topScores.length === k && score <= (topScores[k - 1] as number)) return;
      let p = topScores.length === k ? k - 1 : topScores.length;
      while (p > 0 && (topScores[p - 1] as number) < score) {
        topScores[p] = topScores[p - 1] as number;
        topItems[p] = topItems[p - 1] as number;
        p--;
      }
      topScores[p] = score;
      topItems[p] = item;
    };

    if (this.candidates >= n) {
      for (let i = 0; i < n; i++) consider(i);
    } else {
      // Distinct random candidates (rejection is cheap: candidates << catalogue).
      for (let got = 0; got < this.candidates; ) {
        const i = this.rng.int(n);
        if (this.seen[i] === stamp) continue;
        this.seen[i] = stamp;
        consider(i);
        got++;
      }
    }

    const requestId = this.ids.nextRequestId();
    const items = topItems.map((i, position) => ({ itemId: this.world.item(i).id, position }));
    const impressions = items.map(
      (it): Impression => ({
        id: this.ids.nextEventId(),
        ts: req.ts,
        type: 'impression',
        requestId,
        userId: req.userId,
        itemId: it.itemId,
        position: it.position,
        modelVersion: POLICY_MODEL_VERSION,
        source: POLICY_MODEL_VERSION,
        scores: {},
        features: {},
      }),
    );
    return { requestId, modelVersion: POLICY_MODEL_VERSION, items, impressions };
  }

  private nextStamp(n: number): number {
    if (this.seen.length < n) {
      const grown = new Uint32Array(Math.max(n, this.seen.length * 2));
      grown.set(this.seen);
      this.seen = grown;
    }
    this.stamp = (this.stamp + 1) >>> 0;
    if (this.stamp === 0) {
      this.seen.fill(0);
      this.catStamp.fill(0);
      this.stamp = 1;
    }
    return this.stamp;
  }
}
