// The heterogeneous interaction graph, built incrementally from the bus: user, item,
// category, tag and creator nodes; item–metadata edges from item upserts; user–item edges
// from clicks, weighted by the watch ratio once the watch arrives.
//
// Memory is bounded by one documented rule: each user keeps its newest `maxItemsPerUser`
// interactions and each item its newest `maxUsersPerItem`; on top of that an interaction
// older than `maxAgeMs` before the newest event seen is dropped when its list is next touched
// or sampled. Item metadata is kept for every item (it is what makes cold items recallable).
import type { Event } from '../events/schemas.js';

export interface GraphLimits {
  /** Newest interactions kept per user. Default 100. */
  maxItemsPerUser: number;
  /** Newest interactions kept per item. Default 200. */
  maxUsersPerItem: number;
  /** Interactions older than this (event time, before the newest event) age out. Default 30 days. */
  maxAgeMs: number;
}

export const DEFAULT_GRAPH_LIMITS: GraphLimits = {
  maxItemsPerUser: 100,
  maxUsersPerItem: 200,
  maxAgeMs: 30 * 86_400_000,
};

/** Weight of a click before its watch arrives; a watch sets 0.5 + 0.5 · watch ratio. */
export const CLICK_WEIGHT = 0.5;

/** Ids to dense indexes; index 0 is reserved for "unknown" (a padding and OOV row). */
export class Vocab {
  private readonly index = new Map<string, number>();
  readonly names: string[] = [''];

  /** The index of `name`, adding it when new. */
  add(name: string): number {
    let i = this.index.get(name);
    if (i === undefined) {
      i = this.names.length;
      this.names.push(name);
      this.index.set(name, i);
    }
    return i;
  }

  /** The index of `name`, or 0 (unknown). */
  get(name: string): number {
    return this.index.get(name) ?? 0;
  }

  get size(): number {
    return this.names.length;
  }
}

export interface ItemNode {
  index: number;
  id: string;
  /** Vocabulary indexes of its metadata neighbours. */
  category: number;
  tags: number[];
  creator: number;
  createdMs: number;
}

/** One user–item edge as seen from one side: the other end's index. */
export interface Edge {
  other: number;
  weight: number;
  ts: number;
}

export class InteractionGraph {
  readonly limits: GraphLimits;
  readonly categories = new Vocab();
  readonly tags = new Vocab();
  readonly creators = new Vocab();
  readonly items: ItemNode[] = [];
  readonly userIds: string[] = [];
  private readonly itemIndex = new Map<string, number>();
  private readonly userIndex = new Map<string, number>();
  private readonly userEdges: Edge[][] = [];
  private readonly itemEdges: Edge[][] = [];
  /** The newest event time applied (the clock that ages interactions out). */
  newestMs = 0;
  interactions = 0;

  constructor(limits: Partial<GraphLimits> = {}) {
    this.limits = { ...DEFAULT_GRAPH_LIMITS, ...limits };
  }

  get itemCount(): number {
    return this.items.length;
  }

  get userCount(): number {
    return this.userIds.length;
  }

  item(id: string): ItemNode | undefined {
    const i = this.itemIndex.get(id);
    return i === undefined ? undefined : this.items[i];
  }

  itemIndexOf(id: string): number | undefined {
    return this.itemIndex.get(id);
  }

  userIndexOf(id: string): number | undefined {
    return this.userIndex.get(id);
  }

  /** Applies one event; events of other types are ignored. */
  apply(event: Event): void {
    if (event.ts > this.newestMs) this.newestMs = event.ts;
    switch (event.type) {
      case 'item_upsert':
        this.upsertItem(event.itemId, event.category, event.tags, event.creator, event.createdAt);
        return;
      case 'click':
        this.interact(event.userId, event.itemId, CLICK_WEIGHT, event.ts, false);
        return;
      case 'watch': {
        const ratio = Math.min(1, Math.max(0, event.watchedS / event.durationS));
        this.interact(event.userId, event.itemId, 0.5 + 0.5 * ratio, event.ts, true);
        return;
      }
      default:
        return;
    }
  }

  upsertItem(id: string, category: string, tags: readonly string[], creator: string, ts: number) {
    const node = {
      category: this.categories.add(category),
      tags: tags.map((t) => this.tags.add(t)),
      creator: this.creators.add(creator),
    };
    const existing = this.itemIndex.get(id);
    if (existing !== undefined) {
      Object.assign(this.items[existing] as ItemNode, node);
      return;
    }
    const index = this.items.length;
    this.items.push({ index, id, createdMs: ts, ...node });
    this.itemIndex.set(id, index);
    this.itemEdges.push([]);
  }

  /**
   * Adds or refreshes the user–item edge. A watch updates the weight of an existing edge (or
   * adds one when its click is unknown, e.g. aged out); a repeated click refreshes the time.
   */
  private interact(userId: string, itemId: string, weight: number, ts: number, watch: boolean) {
    const item = this.itemIndex.get(itemId);
    if (item === undefined) return; // an item never upserted: no metadata, no node
    let user = this.userIndex.get(userId);
    if (user === undefined) {
      user = this.userIds.length;
      this.userIds.push(userId);
      this.userIndex.set(userId, user);
      this.userEdges.push([]);
    }
    const fresh = upsertEdge(
      this.userEdges[user] as Edge[],
      item,
      weight,
      ts,
      watch,
      this.limits.maxItemsPerUser,
    );
    upsertEdge(
      this.itemEdges[item] as Edge[],
      user,
      weight,
      ts,
      watch,
      this.limits.maxUsersPerItem,
    );
    if (fresh) this.interactions += 1;
  }

  /** The user's live interactions (items), newest last. */
  itemsOf(user: number): readonly Edge[] {
    return this.live(this.userEdges[user]);
  }

  /** The item's live interactions (users), newest last. */
  usersOf(item: number): readonly Edge[] {
    return this.live(this.itemEdges[item]);
  }

  /** Drops aged-out edges from the front of a list (lists are kept in time order). */
  private live(edges: Edge[] | undefined): readonly Edge[] {
    if (!edges) return [];
    const cutoff = this.newestMs - this.limits.maxAgeMs;
    let drop = 0;
    while (drop < edges.length && (edges[drop] as Edge).ts < cutoff) drop++;
    if (drop > 0) edges.splice(0, drop);
    return edges;
  }

  /** Every live user–item edge as [user, item, weight] (training positives). */
  edges(): { user: number; item: number; weight: number }[] {
    const out: { user: number; item: number; weight: number }[] = [];
    for (let u = 0; u < this.userEdges.length; u++) {
      for (const e of this.itemsOf(u)) out.push({ user: u, item: e.other, weight: e.weight });
    }
    return out;
  }
}

/** Returns true when the edge is new. Keeps the list in time order and within `cap`. */
function upsertEdge(
  list: Edge[],
  other: number,
  weight: number,
  ts: number,
  watch: boolean,
  cap: number,
): boolean {
  for (let i = list.length - 1; i >= 0; i--) {
    const e = list[i] as Edge;
    if (e.other !== other) continue;
    if (watch) e.weight = weight;
    else if (ts > e.ts) {
      // A repeated click: move it to the end as the newest interaction.
      list.splice(i, 1);
      e.ts = ts;
      list.push(e);
    }
    return false;
  }
  const edge = { other, weight, ts };
  // Usually the newest; a late event goes to its place in time order.
  let at = list.length;
  while (at > 0 && (list[at - 1] as Edge).ts > ts) at--;
  list.splice(at, 0, edge);
  if (list.length > cap) list.splice(0, list.length - cap);
  return true;
}
