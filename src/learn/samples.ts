// Labelled samples as the ranker's training examples, rebuilt from the impression's feature
// snapshot only (rank/snapshot.ts): what the server saw is what training uses.
import type { LabelledSample } from '../events/schemas.js';
import type { FeatureVectorizer } from '../rank/feature-vector.js';
import type { RankExample } from '../rank/ranker.js';
import { exampleFromSnapshot } from '../rank/snapshot.js';
import { fnv1a } from '../util/fnv.js';

export interface LabelledExamples {
  examples: RankExample[];
  clicked: Float32Array;
  watchedS: Float32Array;
}

export function examplesOf(
  vectorizer: FeatureVectorizer,
  samples: readonly LabelledSample[],
): LabelledExamples {
  return {
    examples: samples.map((s) => exampleFromSnapshot(vectorizer, s)),
    clicked: Float32Array.from(samples, (s) => (s.clicked ? 1 : 0)),
    watchedS: Float32Array.from(samples, (s) => (s.clicked ? s.watchedS : 0)),
  };
}

/** Samples without a snapshot (logged by the simulator's own policy) cannot be trained on. */
export function hasSnapshot(sample: LabelledSample): boolean {
  return Object.keys(sample.features).length > 0;
}

/** A stable 1-in-`every` choice by impression id (FNV-1a): holdouts that do not move. */
export function inHoldout(impressionId: string, every: number): boolean {
  return fnv1a(impressionId) % every === 0;
}
