// The demo's numbers, second by second: what the dashboard draws and what `--json` reports.
// Request latency and cold share come from the recommender wrapper (every answered request),
// freshness from the feature engine, AUC, CTR and versions from the learning loop.
import { build as buildHistogram, type Histogram } from 'hdr-histogram-js';
import type {
  DashboardPoint,
  DashboardSource,
  DashboardState,
  ExplainedItem,
} from '../dashboard/contract.js';
import type { FeatureEngine } from '../features/engine.js';
import type { LearningLoop } from '../loop/learning-loop.js';
import type { Recommender } from '../serve/app.js';
import type { RecommendResult, RecommendService } from '../serve/recommend-service.js';

const MAX_POINTS = 600;

const histogram = (): Histogram =>
  buildHistogram({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });

export class LiveStats implements DashboardSource {
  readonly startedAt = Date.now();
  private readonly points: DashboardPoint[] = [];
  private readonly versions: DashboardState['versions'] = [];
  private readonly markers: DashboardState['markers'] = [];
  private readonly second = histogram();
  private readonly all = histogram();
  private secondRequests = 0;
  private secondItems = 0;
  private secondCold = 0;
  private requests = 0;
  private errors = 0;
  private items = 0;
  private cold = 0;
  private servedVersion = 'none';
  private servedCount = 0;
  private timer: NodeJS.Timeout | undefined;
  loop: LearningLoop | null = null;

  constructor(
    private readonly engine: FeatureEngine,
    private readonly lookup: () => RecommendService | null,
  ) {}

  /** Wraps a recommender so every request is counted and timed. */
  observe(inner: Recommender): Recommender {
    return {
      recommend: async (req) => {
        const t = performance.now();
        try {
          const res = await inner.recommend(req);
          this.record(performance.now() - t, res);
          return res;
        } catch (err) {
          this.errors++;
          throw err;
        }
      },
    };
  }

  private record(ms: number, res: RecommendResult): void {
    const us = Math.max(1, Math.round(ms * 1000));
    this.second.recordValue(us);
    this.all.recordValue(us);
    this.secondRequests++;
    this.requests++;
    const cold = res.items.filter((i) => i.cold).length;
    this.secondItems += res.items.length;
    this.secondCold += cold;
    this.items += res.items.length;
    this.cold += cold;
    // The online arm's versions (the frozen arm's never changes). One timeline entry per
    // 5 s at most: the trainer publishes every 100 samples, which would draw a solid wall.
    if (!res.modelVersion.endsWith('-frozen') && res.modelVersion !== this.servedVersion) {
      this.servedVersion = res.modelVersion;
      this.servedCount++;
      const now = Date.now();
      const last = this.versions.at(-1);
      if (last && now - last.t < 5000) {
        last.version = res.modelVersion;
        last.reason = `served (${this.servedCount} versions so far)`;
      } else
        this.versions.push({
          t: now,
          version: res.modelVersion,
          reason: `served (${this.servedCount} versions so far)`,
        });
      if (this.versions.length > 200) this.versions.shift();
    }
  }

  marker(name: string, detail?: string): void {
    this.markers.push({ t: Date.now(), name, ...(detail ? { detail } : {}) });
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    const engine = this.engine.stats();
    this.engine.resetFreshness();
    const auc = this.loop?.rollingAuc();
    // Click-through over the newest samples: the loop takes them once their labels are final
    // (finalAfterMs; a click is labelled at once, a non-click when the window closes).
    const recent = (this.loop?.history() ?? []).slice(-2000);
    const q = (p: number) =>
      this.secondRequests === 0
        ? 0
        : Number((this.second.getValueAtPercentile(p) / 1000).toFixed(2));
    this.points.push({
      t: Date.now(),
      rps: this.secondRequests,
      p50Ms: q(50),
      p99Ms: q(99),
      freshnessP99Ms: engine.events > 0 ? engine.freshnessP99Ms : null,
      aucOnline: auc?.aucOnline ?? null,
      aucFrozen: auc?.aucFrozen ?? null,
      ctr: recent.length === 0 ? null : recent.reduce((a, s) => a + s.clicked, 0) / recent.length,
      watchS: this.loop?.stats().watchOnline ?? null,
      coldShare: this.secondItems === 0 ? null : this.secondCold / this.secondItems,
    });
    if (this.points.length > MAX_POINTS) this.points.shift();
    this.second.reset();
    this.secondRequests = 0;
    this.secondItems = 0;
    this.secondCold = 0;
  }

  state(): DashboardState {
    return {
      startedAt: this.startedAt,
      points: [...this.points],
      versions: [...this.versions],
      markers: [...this.markers],
      totals: {
        requests: this.requests,
        errors: this.errors,
        modelVersion: this.servedVersion,
        samples: this.loop?.stats().samples ?? 0,
      },
    };
  }

  async explain(userId: string) {
    const service = this.lookup();
    if (!service) return null;
    const res = await service.recommend({ userId, count: 10, log: false });
    const graph = service.graph;
    const items: ExplainedItem[] = res.items.map((i) => {
      const node = graph.item(i.itemId);
      return {
        ...i,
        ...(node ? { category: graph.categories.names[node.category] ?? '' } : {}),
      };
    });
    return { userId, modelVersion: res.modelVersion, items };
  }

  /** The summary `recmaster demo --json` prints. */
  summary() {
    const loop = this.loop?.stats();
    const settled = this.loop?.ctrBetween(Number.NEGATIVE_INFINITY) ?? {
      online: null,
      frozen: null,
    };
    const auc = this.loop?.rollingAuc();
    return {
      requests: this.requests,
      errors: this.errors,
      p50_ms: Number((this.all.getValueAtPercentile(50) / 1000).toFixed(2)),
      p99_ms: Number((this.all.getValueAtPercentile(99) / 1000).toFixed(2)),
      model_versions: {
        published: loop?.versions ?? 0,
        served: this.servedCount,
        refused: loop?.refused ?? 0,
      },
      feature_freshness_p99_ms: Math.max(0, ...this.points.map((p) => p.freshnessP99Ms ?? 0)),
      auc_online: auc?.aucOnline ?? null,
      auc_frozen: auc?.aucFrozen ?? null,
      // Over samples whose labels are final (clicks are labelled at once, non-clicks a window
      // later: the newest samples would overstate it).
      ctr: settled.online,
      ctr_frozen: settled.frozen,
      cold_share: this.items === 0 ? null : this.cold / this.items,
      samples: loop?.samples ?? 0,
    };
  }
}
