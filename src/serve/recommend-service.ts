// One recommendation: recall from several sources, drop what the user has seen, fetch every
// feature in one store call, rank with the current model, reserve a share of the slate for
// fresh items, and log exactly what was shown (with the feature values used) as impressions.
//
// Recall sources, in priority order (an item found by several keeps the first):
//   ann      GraphSAGE user query against the vector index (warm and cold items alike)
//   i2i      co-visitation: items clicked by the users who clicked the user's last clicks
//   fresh    the newest items (created within freshWindowMs), whatever their history
//   popular  decayed click popularity: tops up the budget, and all of it for unknown users
// Exploration: floor(count × exploreShare) slots (default 10 %) go to the best-ranked fresh
// items not already in the slate, so new items get the impressions that let them learn.
// Without a ranker model yet ("bootstrap"), candidates are shown in random order: uniform
// logging over recall, which is what the first ranker learns from without position bias
// from an earlier model.
import { Histogram } from 'prom-client';
import type { EventPublisher } from '../events/publisher.js';
import type { Impression } from '../events/schemas.js';
import type { InteractionGraph } from '../graph/graph.js';
import type { FeatureVectorizer } from '../rank/feature-vector.js';
import type { RankerModel } from '../rank/ranker.js';
import { impressionSnapshot } from '../rank/snapshot.js';
import type { FeatureRow, FeatureStore, RowRef } from '../store/store.js';
import { registry } from '../util/metrics.js';
import type { Rng } from '../util/rng.js';
import { ItemMetaCache } from './item-meta.js';
import type { LiveState } from './live-state.js';

export type RecallSource = 'ann' | 'i2i' | 'fresh' | 'popular';

export interface CandidateBudget {
  total: number;
  ann: number;
  i2i: number;
  fresh: number;
}

export interface RecommendServiceOptions {
  live: LiveState;
  store: FeatureStore;
  vectorizer: FeatureVectorizer;
  /** Where impressions are logged; null logs nothing (lookups, tests). */
  publisher: EventPublisher | null;
  rng: Rng;
  budget?: Partial<CandidateBudget>;
  exploreShare?: number;
  /** Items created this recently count as fresh. Default 1 h. */
  freshWindowMs?: number;
  /** Recent clicks given to the ranker (newest). Default 20. */
  recentClicks?: number;
}

export interface RecommendRequest {
  userId: string;
  count: number;
  /** Event time of the request (epoch ms); default: now. Simulations pass their clock. */
  ts?: number;
  /** Log the shown items as impressions (default true); lookups pass false. */
  log?: boolean;
}

export interface RecommendedItem {
  itemId: string;
  position: number;
  source: RecallSource;
  /** The item had no interactions when it was recommended. */
  cold: boolean;
  scores: { click: number; watchSeconds: number; final: number };
}

export interface RecommendResult {
  requestId: string;
  userId: string;
  modelVersion: string;
  items: RecommendedItem[];
  candidates: number;
}

export const BOOTSTRAP_VERSION = 'bootstrap';

/**
 * Where a recommendation's time goes, per phase: recall (seen items, the user's query, the
 * sources), features (item metadata and the store's rows), rank (GraphSAGE scores, feature
 * vectors, the model, the slate), log (the impressions). Wall time, so awaits count.
 */
const phaseSeconds = new Histogram({
  name: 'recmaster_recommend_phase_seconds',
  help: 'Time of each phase of a recommendation (recall, features, rank, log)',
  labelNames: ['phase'] as const,
  buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1],
  registers: [registry],
});
const DEFAULT_BUDGET: CandidateBudget = { total: 500, ann: 300, i2i: 150, fresh: 50 };
/** How many of the user's last clicks seed item-to-item recall, and how wide it looks. */
const I2I_SEEDS = 5;
const I2I_USERS = 30;
const I2I_ITEMS = 30;

export class RecommendService {
  private model: RankerModel | null = null;
  private readonly budget: CandidateBudget;
  private readonly exploreShare: number;
  private readonly freshWindowMs: number;
  private readonly recentClicks: number;
  private readonly requestPrefix: string;
  private requests = 0;
  private readonly metas: ItemMetaCache;

  constructor(private readonly opts: RecommendServiceOptions) {
    this.budget = { ...DEFAULT_BUDGET, ...opts.budget };
    this.exploreShare = opts.exploreShare ?? 0.1;
    this.freshWindowMs = opts.freshWindowMs ?? 3_600_000;
    this.recentClicks = opts.recentClicks ?? 20;
    this.requestPrefix = `r${Date.now().toString(36)}${process.pid.toString(36)}`;
    this.metas = new ItemMetaCache(opts.live.graph);
  }

  /** The interaction graph recall reads (item metadata for explanations). */
  get graph(): InteractionGraph {
    return this.opts.live.graph;
  }

  private modelSince: number | undefined;

  get modelVersion(): string {
    return this.model?.version ?? BOOTSTRAP_VERSION;
  }

  /**
   * When the serving model started serving (epoch ms, sub-millisecond): comparable across
   * processes on one machine, so a publisher can tell how long a version took to serve
   * without its own polling delay in the figure.
   */
  get modelSinceMs(): number | undefined {
    return this.modelSince;
  }

  /** Swaps the ranker between requests (scoring reads it once, synchronously). */
  setModel(model: RankerModel | null): RankerModel | null {
    const old = this.model;
    this.model = model;
    this.modelSince = model ? performance.timeOrigin + performance.now() : undefined;
    return old;
  }

  async recommend(req: RecommendRequest): Promise<RecommendResult> {
    const { live } = this.opts;
    let mark = performance.now();
    const phase = (name: 'recall' | 'features' | 'rank' | 'log') => {
      const now = performance.now();
      phaseSeconds.observe({ phase: name }, (now - mark) / 1000);
      mark = now;
    };
    const ts = req.ts ?? Date.now();
    const requestId = `${this.requestPrefix}-${(this.requests++).toString(36)}`;
    const seen = this.seenBy(req.userId);
    // The user's GraphSAGE query, once: ANN recall and the ranker's GNN score both use it.
    const query = live.recall?.query(req.userId) ?? null;
    const candidates = await this.recall(req.userId, seen, ts, query);
    phase('recall');
    const itemIds = candidates.map((c) => c.itemId);
    const { graph } = live;
    // Each candidate's graph index, looked up once (a lookup in a 100k-item map is mostly
    // cache misses); everything per item below reads by index.
    const indexes = Int32Array.from(itemIds, (id) => graph.itemIndexOf(id) ?? -1);
    const nodes = Array.from(indexes, (i) => (i < 0 ? undefined : graph.items[i]));
    const metas = nodes.map((node, i) => this.metas.of(itemIds[i] as string, node));
    const rows = await this.features(
      req.userId,
      itemIds,
      metas.map((m) => m.category),
    );
    phase('features');
    const recent = ids(rows.user?.values.user_last_clicks).slice(-this.recentClicks);
    const gnnScore = query && live.recall ? live.recall.scores(query, indexes) : null;
    const vectors = this.opts.vectorizer.vectors(
      rows.user,
      rows.items,
      rows.userCategory,
      gnnScore ? { gnn_score: gnnScore } : null,
    );

    // Read the model once: a swap during the awaits above cannot mix two models.
    const model = this.model;
    const scores = model
      ? model.ranker.scoreQuery({
          userId: req.userId,
          recentClicks: recent,
          items: metas,
          features: vectors,
        })
      : itemIds.map(() => ({ click: 0, watchSeconds: 0, final: this.opts.rng.uniform() }));
    const finals = Float64Array.from(scores, (s) => s.final);
    const order = itemIds
      .map((_, i) => i)
      .sort((a, b) => (finals[b] as number) - (finals[a] as number));
    const freshSince = ts - this.freshWindowMs;
    const fresh = nodes.map((node) => node !== undefined && node.createdMs >= freshSince);
    const slate = this.withExploration(order, fresh, req.count);

    const items = slate.map((i, position): RecommendedItem => {
      const node = nodes[i];
      return {
        itemId: itemIds[i] as string,
        position,
        source: (candidates[i] as Candidate).source,
        cold: node === undefined || graph.usersOf(node.index).length === 0,
        scores: scores[i] as RecommendedItem['scores'],
      };
    });
    const version = model?.version ?? BOOTSTRAP_VERSION;
    phase('rank');
    if (req.log !== false) {
      live.shown.add(
        req.userId,
        items.map((it) => it.itemId),
      );
      if (this.opts.publisher) {
        const impressions = slate.map(
          (i, position): Impression => ({
            id: `${requestId}:${position}`,
            ts,
            type: 'impression',
            requestId,
            userId: req.userId,
            itemId: itemIds[i] as string,
            position,
            modelVersion: version,
            source: (candidates[i] as Candidate).source,
            scores: { ...(scores[i] as RecommendedItem['scores']) },
            features: impressionSnapshot(
              this.opts.vectorizer,
              vectors,
              i,
              metas[i] as (typeof metas)[number],
              recent,
            ),
          }),
        );
        await this.opts.publisher.publish(impressions);
      }
      phase('log');
    }
    return {
      requestId,
      userId: req.userId,
      modelVersion: version,
      items,
      candidates: itemIds.length,
    };
  }

  /** Items the user clicked (graph) or was shown lately (this server). */
  private seenBy(userId: string): Set<string> {
    const { graph, shown } = this.opts.live;
    const seen = new Set<string>(shown.of(userId));
    const u = graph.userIndexOf(userId);
    if (u !== undefined)
      for (const e of graph.itemsOf(u)) seen.add((graph.items[e.other] as { id: string }).id);
    return seen;
  }

  private async recall(
    userId: string,
    seen: Set<string>,
    ts: number,
    query: Float32Array | null,
  ): Promise<Candidate[]> {
    const { live } = this.opts;
    const out: Candidate[] = [];
    const taken = new Set<string>();
    const take = (id: string, source: RecallSource) => {
      if (seen.has(id) || taken.has(id)) return false;
      taken.add(id);
      out.push({ itemId: id, source });
      return true;
    };
    const { total, ann, i2i, fresh } = this.budget;
    if (live.recall && query) {
      const hits = await live.recall.search(query, ann, { excludeIds: seen });
      for (const h of hits) take(h.id, 'ann');
    }
    let n = 0;
    for (const id of this.coVisited(userId)) {
      if (n >= i2i || out.length >= total) break;
      if (take(id, 'i2i')) n++;
    }
    n = 0;
    for (const id of live.fresh.since(ts - this.freshWindowMs)) {
      if (n >= fresh || out.length >= total) break;
      if (take(id, 'fresh')) n++;
    }
    for (const id of live.popular.top()) {
      if (out.length >= total) break;
      take(id, 'popular');
    }
    return out;
  }

  /** Items co-clicked with the user's latest clicks, most co-visited first. */
  private coVisited(userId: string): string[] {
    const { graph } = this.opts.live;
    const u = graph.userIndexOf(userId);
    if (u === undefined) return [];
    const mine = graph.itemsOf(u);
    const counts = new Map<number, number>();
    for (let s = mine.length - 1; s >= 0 && s >= mine.length - I2I_SEEDS; s--) {
      const seed = (mine[s] as { other: number }).other;
      const users = graph.usersOf(seed);
      for (let k = users.length - 1; k >= 0 && k >= users.length - I2I_USERS; k--) {
        const other = (users[k] as { other: number }).other;
        if (other === u) continue;
        const items = graph.itemsOf(other);
        for (let j = items.length - 1; j >= 0 && j >= items.length - I2I_ITEMS; j--) {
          const e = items[j] as { other: number; weight: number };
          if (e.other !== seed) counts.set(e.other, (counts.get(e.other) ?? 0) + e.weight);
        }
      }
    }
    return [...counts.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([i]) => (graph.items[i] as { id: string }).id);
  }

  private async features(
    userId: string,
    itemIds: readonly string[],
    categories: readonly string[],
  ) {
    const refs: RowRef[] = [{ entity: 'user', key: userId }];
    for (const key of itemIds) refs.push({ entity: 'item', key });
    const distinct = [...new Set(categories)];
    for (const c of distinct) refs.push({ entity: 'user_category', key: `${userId}|${c}` });
    const rows = await this.opts.store.getMany(refs);
    const byCategory = new Map<string, FeatureRow | null>(
      distinct.map((c, k) => [c, rows[1 + itemIds.length + k] ?? null]),
    );
    return {
      user: rows[0] ?? null,
      items: rows.slice(1, 1 + itemIds.length),
      userCategory: categories.map((c) => byCategory.get(c) ?? null),
    };
  }

  /** The top `count` of `order`, with floor(count × exploreShare) slots for the best fresh items. */
  private withExploration(order: readonly number[], fresh: readonly boolean[], count: number) {
    const k = Math.min(count, order.length);
    const slate = order.slice(0, k);
    const explore = Math.floor(count * this.exploreShare);
    if (explore === 0) return slate;
    const isFresh = (i: number) => fresh[i] === true;
    const have = slate.filter(isFresh).length;
    const extra: number[] = [];
    for (let p = k; p < order.length && extra.length < explore - have; p++)
      if (isFresh(order[p] as number)) extra.push(order[p] as number);
    // Fresh items replace the lowest-ranked non-fresh ones; the slate stays in ranked order.
    let replace = extra.length;
    for (let p = slate.length - 1; p >= 0 && replace > 0; p--) {
      if (!isFresh(slate[p] as number)) {
        slate.splice(p, 1);
        replace--;
      }
    }
    const rank = new Map(order.map((i, r) => [i, r]));
    return [...slate, ...extra.slice(0, extra.length - replace)].sort(
      (a, b) => (rank.get(a) as number) - (rank.get(b) as number),
    );
  }
}

interface Candidate {
  itemId: string;
  source: RecallSource;
}

function ids(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}
