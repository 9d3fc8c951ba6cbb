// What the ranker knows of a candidate item (its metadata as names), built once per item and
// kept until the item is upserted again, by graph index. Building it for 500 candidates on
// every request (names looked up, a tags array allocated) cost ~0.5 ms of a request.
import type { InteractionGraph, ItemNode } from '../graph/graph.js';
import type { RankItem } from '../rank/ranker.js';

export class ItemMetaCache {
  /** By graph index: the item, and the node's tags array it was built from. */
  private readonly byIndex: ({ tags: readonly number[]; item: RankItem } | undefined)[] = [];

  constructor(private readonly graph: InteractionGraph) {}

  /** The item's metadata; an item not in the graph has none (empty names). */
  of(itemId: string, node: ItemNode | undefined): RankItem {
    if (!node) return { itemId, category: '', creator: '', tags: [] };
    const cached = this.byIndex[node.index];
    // An upsert gives the node a new tags array: identity tells whether this is current.
    if (cached !== undefined && cached.tags === node.tags) return cached.item;
    const { categories, creators, tags } = this.graph;
    const item: RankItem = {
      itemId: node.id,
      category: categories.names[node.category] ?? '',
      creator: creators.names[node.creator] ?? '',
      tags: node.tags.map((t) => tags.names[t] ?? ''),
    };
    // Grown densely: a store far past the end would turn the array into a dictionary.
    while (this.byIndex.length <= node.index) this.byIndex.push(undefined);
    this.byIndex[node.index] = { tags: node.tags, item };
    return item;
  }
}
