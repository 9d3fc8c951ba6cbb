// What an impression logs of the ranker's input, and how training reads it back: the dense
// feature values by slot name, the user's recent clicks and the item's metadata as the server
// saw them. Training rebuilds its examples from these snapshots only, never by recomputing
// features later (training–serving consistency by construction).
import type { FeatureSnapshot } from '../events/schemas.js';
import type { FeatureVectorizer } from './feature-vector.js';
import type { RankExample, RankItem } from './ranker.js';

/** Keys of the non-numeric parts (numeric slots are named `${entity}.${feature}`). */
const RECENT_CLICKS = 'ctx.recent_clicks';
const CATEGORY = 'item.category';
const CREATOR = 'item.creator';
const TAGS = 'item.tags';

/** The snapshot of candidate `row` of a request's feature matrix. */
export function impressionSnapshot(
  vectorizer: FeatureVectorizer,
  features: Float32Array,
  row: number,
  item: RankItem,
  recentClicks: readonly string[],
): FeatureSnapshot {
  const snapshot: FeatureSnapshot = vectorizer.toSnapshot(features, row * vectorizer.width);
  snapshot[RECENT_CLICKS] = [...recentClicks];
  snapshot[CATEGORY] = [item.category];
  snapshot[CREATOR] = [item.creator];
  snapshot[TAGS] = [...item.tags];
  return snapshot;
}

const ids = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];

/** A logged impression (or labelled sample) back into the ranker's example. */
export function exampleFromSnapshot(
  vectorizer: FeatureVectorizer,
  logged: { userId: string; itemId: string; position: number; features: FeatureSnapshot },
): RankExample {
  const f = logged.features;
  return {
    userId: logged.userId,
    itemId: logged.itemId,
    category: ids(f[CATEGORY])[0] ?? '',
    creator: ids(f[CREATOR])[0] ?? '',
    tags: ids(f[TAGS]),
    recentClicks: ids(f[RECENT_CLICKS]),
    features: vectorizer.fromSnapshot(f),
    position: logged.position,
  };
}
