// Ranking metrics shared by the offline evaluation, the online trainer's guardrail and the
// dashboard: AUC (with ties counted half), user-grouped AUC, NDCG@k and RMSE; and for the
// evaluations on simulated users, the AUC expected over the simulator's true click probabilities.

/**
 * Area under the ROC curve: the probability that a random positive scores above a random
 * negative, ties counting one half. O(n log n). NaN when either class is missing.
 */
export function auc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = scores.length;
  if (labels.length !== n) throw new Error(`auc: ${n} scores but ${labels.length} labels`);
  const order = Array.from({ length: n }, (_, i) => i).sort(
    (a, b) => (scores[a] as number) - (scores[b] as number),
  );
  let positives = 0;
  let rankSum = 0;
  for (let i = 0; i < n; ) {
    // A run of tied scores shares the mean of its ranks (1-based).
    let j = i;
    while (j + 1 < n && scores[order[j + 1] as number] === scores[order[i] as number]) j++;
    const meanRank = (i + j + 2) / 2;
    for (let k = i; k <= j; k++) {
      if ((labels[order[k] as number] as number) > 0) {
        positives += 1;
        rankSum += meanRank;
      }
    }
    i = j + 1;
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return Number.NaN;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/**
 * User-grouped AUC: each user's AUC over their own impressions, weighted by their number of
 * impressions; users with only positives or only negatives are skipped (their AUC is undefined).
 */
export function groupedAuc(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  groups: ArrayLike<string>,
): number {
  const byGroup = new Map<string, number[]>();
  for (let i = 0; i < scores.length; i++) {
    const g = groups[i] as string;
    const list = byGroup.get(g) ?? [];
    list.push(i);
    byGroup.set(g, list);
  }
  let weighted = 0;
  let weight = 0;
  for (const idx of byGroup.values()) {
    const value = auc(
      idx.map((i) => scores[i] as number),
      idx.map((i) => labels[i] as number),
    );
    if (Number.isNaN(value)) continue;
    weighted += value * idx.length;
    weight += idx.length;
  }
  return weight === 0 ? Number.NaN : weighted / weight;
}

/**
 * NDCG@k of a ranking by `scores` against graded relevance `gains` (e.g. true watch seconds).
 * Tied scores count as ranked in random order (each rank of a tied run gets the run's mean
 * gain: the expected DCG): breaking ties by position in the input let a constant score look
 * perfect whenever the input happened to list the relevant items first.
 */
export function ndcgAtK(scores: ArrayLike<number>, gains: ArrayLike<number>, k: number): number {
  const n = scores.length;
  if (gains.length !== n) throw new Error(`ndcg: ${n} scores but ${gains.length} gains`);
  const byScore = Array.from({ length: n }, (_, i) => i).sort(
    (a, b) => (scores[b] as number) - (scores[a] as number),
  );
  const ideal = Array.from({ length: n }, (_, i) => gains[i] as number).sort((a, b) => b - a);
  let dcg = 0;
  let idcg = 0;
  for (let r = 0; r < Math.min(k, n); r++) idcg += (ideal[r] as number) / Math.log2(r + 2);
  for (let r = 0; r < Math.min(k, n); ) {
    let j = r;
    const score = scores[byScore[r] as number] as number;
    while (j + 1 < n && scores[byScore[j + 1] as number] === score) j++;
    let mean = 0;
    for (let t = r; t <= j; t++) mean += gains[byScore[t] as number] as number;
    mean /= j - r + 1;
    for (let t = r; t <= j && t < k; t++) dcg += mean / Math.log2(t + 2);
    r = j + 1;
  }
  return idcg === 0 ? Number.NaN : dcg / idcg;
}

export function rmse(predicted: ArrayLike<number>, actual: ArrayLike<number>): number {
  if (predicted.length !== actual.length || predicted.length === 0)
    throw new Error(`rmse: ${predicted.length} predictions for ${actual.length} values`);
  let sum = 0;
  for (let i = 0; i < predicted.length; i++) {
    const d = (predicted[i] as number) - (actual[i] as number);
    sum += d * d;
  }
  return Math.sqrt(sum / predicted.length);
}

/**
 * Standard error of an AUC estimated from `positives` and `negatives` (Hanley & McNeil, 1982:
 * the exponential-score approximation). Its size is set mostly by the rarer class: at a 6 %
 * click rate 2,000 samples give ~0.025 around an AUC of 0.75.
 */
export function aucStandardError(aucValue: number, positives: number, negatives: number): number {
  if (!(positives >= 1 && negatives >= 1))
    throw new Error(`aucStandardError: needs both classes, got ${positives} and ${negatives}`);
  const a = aucValue;
  const q1 = a / (2 - a);
  const q2 = (2 * a * a) / (1 + a);
  const v =
    (a * (1 - a) + (positives - 1) * (q1 - a * a) + (negatives - 1) * (q2 - a * a)) /
    (positives * negatives);
  return Math.sqrt(Math.max(0, v));
}

/**
 * The AUC of `scores` expected over the labels, when sample i is positive with probability
 * probabilities[i] (the simulator's truth): over all ordered pairs i ≠ j, weighted by
 * p_i (1 − p_j), the share where i scores above j, ties counting one half. With 0/1
 * probabilities it is exactly `auc`. It measures the same ranking against the same samples
 * without the Bernoulli noise of drawn clicks, which at a 6 % click rate dominates an
 * AUC over a few thousand samples (see aucStandardError). NaN when no pair has weight.
 */
export function expectedAuc(scores: ArrayLike<number>, probabilities: ArrayLike<number>): number {
  const n = scores.length;
  if (probabilities.length !== n)
    throw new Error(`expectedAuc: ${n} scores but ${probabilities.length} probabilities`);
  const order = Array.from({ length: n }, (_, i) => i).sort(
    (a, b) => (scores[a] as number) - (scores[b] as number),
  );
  let negativesBelow = 0; // Σ (1 − p_j) over samples scored strictly lower
  let above = 0;
  let positives = 0;
  let negatives = 0;
  let selfPairs = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1] as number] === scores[order[i] as number]) j++;
    let groupP = 0;
    let groupN = 0;
    let groupSelf = 0;
    for (let k = i; k <= j; k++) {
      const p = probabilities[order[k] as number] as number;
      if (!(p >= 0 && p <= 1)) throw new Error(`expectedAuc: probability ${p} outside [0, 1]`);
      above += p * negativesBelow;
      groupP += p;
      groupN += 1 - p;
      groupSelf += p * (1 - p);
    }
    // Pairs within a run of tied scores count one half (a sample is not paired with itself).
    above += 0.5 * (groupP * groupN - groupSelf);
    negativesBelow += groupN;
    positives += groupP;
    negatives += groupN;
    selfPairs += groupSelf;
    i = j + 1;
  }
  const pairs = positives * negatives - selfPairs;
  return pairs > 0 ? above / pairs : Number.NaN;
}
