// What the live dashboard needs from the demo (issue 7): a snapshot of the recent history, and
// recommendations for one user with the reasons. The demo implements DashboardSource; the routes
// in ./routes.ts serve it as JSON and the page in ./page/ draws it.

/** One second of wall time. Numbers that cannot be computed yet are null (never NaN). */
export interface DashboardPoint {
  /** Epoch ms. */
  t: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  freshnessP99Ms: number | null;
  /** Rolling AUC of the online-learning model and of the frozen one on the same impressions. */
  aucOnline: number | null;
  aucFrozen: number | null;
  /** Simulated click-through rate, and mean watch seconds per impression. */
  ctr: number | null;
  watchS: number | null;
  /** Share of recommended items that were cold. */
  coldShare: number | null;
}

export interface DashboardState {
  startedAt: number;
  /** Newest last, at most ~600. */
  points: DashboardPoint[];
  /** Model versions published/served. */
  versions: { t: number; version: string; reason: string }[];
  /** Events worth a vertical line, e.g. drift. */
  markers: { t: number; name: string; detail?: string }[];
  totals: { requests: number; errors: number; modelVersion: string; samples: number };
}

export interface ExplainedItem {
  itemId: string;
  /** 0-based rank in the list. */
  position: number;
  /** The recall source that proposed the item (e.g. gnn, popular, fresh). */
  source: string;
  cold: boolean;
  /** The ranker's task scores: click probability, expected watch seconds, and the fused score. */
  scores: { click: number; watchSeconds: number; final: number };
  category?: string;
}

export interface DashboardSource {
  state(): DashboardState;
  /** Recommendations for one user with why (no impression is logged for these lookups). */
  explain(
    userId: string,
  ): Promise<{ userId: string; modelVersion: string; items: ExplainedItem[] } | null>;
}
