// What the server keeps in memory from the event stream, besides the GNN: the interaction
// graph (through GnnRecall when a model is loaded, so new items are embedded at once), a
// decayed popularity ranking, the newest items, and what each user was recently shown.
import type { Event } from '../events/schemas.js';
import type { GnnRecall } from '../graph/gnn-recall.js';
import type { InteractionGraph } from '../graph/graph.js';

/** Clicks lose half their weight in popularity after this long (event time). */
const POPULARITY_HALF_LIFE_MS = 3_600_000;
/** The popularity ranking is recomputed at most this often (event time). */
const POPULARITY_REFRESH_MS = 1000;

/** Decayed click counts per item, with a cached best-first list. */
export class PopularItems {
  private readonly score = new Map<string, number>();
  private readonly at = new Map<string, number>();
  private ranked: string[] = [];
  private rankedAt = Number.NEGATIVE_INFINITY;
  private newest = 0;

  click(itemId: string, ts: number): void {
    const last = this.at.get(itemId) ?? ts;
    const decayed = (this.score.get(itemId) ?? 0) * 2 ** (-(ts - last) / POPULARITY_HALF_LIFE_MS);
    this.score.set(itemId, decayed + 1);
    this.at.set(itemId, Math.max(ts, last));
    this.newest = Math.max(this.newest, ts);
  }

  /** Items best first (as of the newest click, refreshed at most once a second of event time). */
  top(): readonly string[] {
    if (this.newest - this.rankedAt >= POPULARITY_REFRESH_MS) {
      const now = this.newest;
      const scored: [string, number][] = [];
      for (const [id, s] of this.score)
        scored.push([id, s * 2 ** (-(now - (this.at.get(id) ?? now)) / POPULARITY_HALF_LIFE_MS)]);
      scored.sort((a, b) => b[1] - a[1]);
      this.ranked = scored.slice(0, 2000).map(([id]) => id);
      this.rankedAt = now;
    }
    return this.ranked;
  }
}

/** The newest items by creation time (a bounded list, newest last). */
export class FreshItems {
  private readonly items: { id: string; createdMs: number }[] = [];

  constructor(private readonly capacity = 1000) {}

  upsert(id: string, createdMs: number): void {
    const existing = this.items.findIndex((x) => x.id === id);
    if (existing >= 0) this.items.splice(existing, 1);
    // Keep sorted by creation time: upserts arrive nearly in order, so this is short.
    let p = this.items.length;
    while (p > 0 && (this.items[p - 1]?.createdMs ?? 0) > createdMs) p--;
    this.items.splice(p, 0, { id, createdMs });
    if (this.items.length > this.capacity) this.items.shift();
  }

  /** Items created at or after `sinceMs`, newest first. */
  since(sinceMs: number): string[] {
    const out: string[] = [];
    for (let k = this.items.length - 1; k >= 0; k--) {
      const it = this.items[k] as { id: string; createdMs: number };
      if (it.createdMs < sinceMs) break;
      out.push(it.id);
    }
    return out;
  }
}

/** What each user was shown lately (so a refresh shows something new), bounded per user. */
export class ShownItems {
  private readonly byUser = new Map<string, string[]>();

  constructor(
    private readonly perUser = 200,
    private readonly maxUsers = 200_000,
  ) {}

  add(userId: string, itemIds: readonly string[]): void {
    let list = this.byUser.get(userId);
    if (list) this.byUser.delete(userId); // re-insert: the map's order is least recently used first
    list ??= [];
    list.push(...itemIds);
    if (list.length > this.perUser) list.splice(0, list.length - this.perUser);
    this.byUser.set(userId, list);
    if (this.byUser.size > this.maxUsers) {
      const oldest = this.byUser.keys().next().value;
      if (oldest !== undefined) this.byUser.delete(oldest);
    }
  }

  of(userId: string): readonly string[] {
    return this.byUser.get(userId) ?? [];
  }
}

export class LiveState {
  readonly popular = new PopularItems();
  readonly fresh = new FreshItems();
  readonly shown = new ShownItems();

  constructor(
    readonly graph: InteractionGraph,
    private gnn: GnnRecall | null = null,
  ) {}

  get recall(): GnnRecall | null {
    return this.gnn;
  }

  /** From now on events go through `gnn` (which updates the same graph and its index). */
  attachGnn(gnn: GnnRecall): void {
    if (gnn.graph !== this.graph) throw new Error('the GNN recall must use the live graph');
    this.gnn = gnn;
  }

  async apply(events: readonly Event[]): Promise<void> {
    for (const e of events) {
      if (e.type === 'item_upsert') this.fresh.upsert(e.itemId, e.createdAt);
      if (e.type === 'click') this.popular.click(e.itemId, e.ts);
    }
    if (this.gnn) await this.gnn.apply(events);
    else for (const e of events) this.graph.apply(e);
  }
}
