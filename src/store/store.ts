// The feature store boundary: rows of feature values keyed by entity, written by the
// feature engine and read by the server. One getMany is one round trip, so a ranking
// request gets its user and hundreds of candidate items in one call.
import type { Entity } from '../features/definitions.js';

export type FeatureValue = number | string[] | null;

export interface FeatureRow {
  values: Record<string, FeatureValue>;
  /** The newest event time (ms) included in these values. */
  eventTimeMs: number;
}

export interface RowRef {
  entity: Entity;
  /** userId, itemId, or `${userId}|${category}` for user_category. */
  key: string;
}

export interface RowWrite extends RowRef {
  /** null deletes the row (its state expired). */
  row: FeatureRow | null;
}

export interface FeatureStore {
  readonly kind: string;
  /** Resolves once every row is visible to readers. */
  write(rows: readonly RowWrite[]): Promise<void>;
  /** Rows in the order asked, null where absent. One round trip. */
  getMany(refs: readonly RowRef[]): Promise<(FeatureRow | null)[]>;
  /** Every row as [`${entity}:${key}`, row] (inspection, tests); not for the serving path. */
  scan(): AsyncIterable<[string, FeatureRow]>;
  close(): Promise<void>;
}

export function rowKey(ref: RowRef): string {
  return `${ref.entity}:${ref.key}`;
}

/** What a ranking request needs: the user's row and each candidate item's row, in one call. */
export async function getForRanking(
  store: FeatureStore,
  userId: string,
  itemIds: readonly string[],
): Promise<{ user: FeatureRow | null; items: (FeatureRow | null)[] }> {
  const refs: RowRef[] = [{ entity: 'user', key: userId }];
  for (const key of itemIds) refs.push({ entity: 'item', key });
  const rows = await store.getMany(refs);
  return { user: rows[0] ?? null, items: rows.slice(1) };
}
