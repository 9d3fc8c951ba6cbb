import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  auc,
  aucStandardError,
  expectedAuc,
  groupedAuc,
  ndcgAtK,
  rmse,
} from '../src/rank/metrics.js';
import { Rng } from '../src/util/rng.js';

/** The definition itself: pairs of (positive, negative), ties counting one half. O(n²). */
function pairwiseAuc(scores: number[], labels: number[]): number {
  let wins = 0;
  let pairs = 0;
  for (let i = 0; i < scores.length; i++) {
    for (let j = 0; j < scores.length; j++) {
      if (!(labels[i] === 1 && labels[j] === 0)) continue;
      pairs += 1;
      const a = scores[i] as number;
      const b = scores[j] as number;
      wins += a > b ? 1 : a === b ? 0.5 : 0;
    }
  }
  return wins / pairs;
}

/** The expected AUC by its definition: ordered pairs i ≠ j weighted by p_i (1 − p_j). O(n²). */
function pairwiseExpectedAuc(scores: number[], p: number[]): number {
  let wins = 0;
  let pairs = 0;
  for (let i = 0; i < scores.length; i++) {
    for (let j = 0; j < scores.length; j++) {
      if (i === j) continue;
      const w = (p[i] as number) * (1 - (p[j] as number));
      const a = scores[i] as number;
      const b = scores[j] as number;
      pairs += w;
      wins += w * (a > b ? 1 : a === b ? 0.5 : 0);
    }
  }
  return wins / pairs;
}

describe('ranking metrics', () => {
  test('the expected AUC equals its pairwise definition, and the AUC itself for 0/1 probabilities', () => {
    const rng = new Rng(5);
    for (let trial = 0; trial < 20; trial++) {
      const n = 5 + rng.int(60);
      const scores = Array.from({ length: n }, () => Math.round(rng.uniform() * 8) / 8);
      const p = Array.from({ length: n }, () => rng.uniform() * 0.3);
      const got = expectedAuc(scores, p);
      const want = pairwiseExpectedAuc(scores, p);
      assert.ok(Math.abs(got - want) < 1e-12, `trial ${trial}: ${got} vs ${want}`);
      const labels = Array.from({ length: n }, (_, i) => (i < 2 ? i : rng.uniform() < 0.3 ? 1 : 0));
      assert.ok(Math.abs(expectedAuc(scores, labels) - auc(scores, labels)) < 1e-12);
    }
    assert.equal(expectedAuc([0.5, 0.5, 0.5], [0.1, 0.2, 0.3]), 0.5, 'one score: one half');
    assert.ok(Number.isNaN(expectedAuc([1, 2], [0, 0])), 'no positive weight: undefined');
    assert.throws(() => expectedAuc([1, 2], [0.5, 1.5]), /outside \[0, 1\]/);
    assert.throws(() => expectedAuc([1, 2], [0.5]), /2 scores but 1 probabilities/);
  });

  test('the expected AUC is what AUCs over drawn clicks average to, with far less spread', () => {
    // 2,000 samples at a ~6 % click rate, scores that know the probability only partly.
    const rng = new Rng(8);
    const n = 2000;
    const p = Array.from({ length: n }, () => 0.12 * rng.uniform() ** 2 + 0.01);
    const scores = p.map((q) => q + 0.04 * rng.uniform());
    const expected = expectedAuc(scores, p);
    const drawn: number[] = [];
    for (let draw = 0; draw < 300; draw++)
      drawn.push(
        auc(
          scores,
          p.map((q) => (rng.uniform() < q ? 1 : 0)),
        ),
      );
    const mean = drawn.reduce((a, b) => a + b, 0) / drawn.length;
    const sd = Math.sqrt(drawn.reduce((a, b) => a + (b - mean) ** 2, 0) / (drawn.length - 1));
    assert.ok(
      Math.abs(mean - expected) < 3 * (sd / Math.sqrt(drawn.length)) + 1e-3,
      `${mean} vs ${expected}`,
    );
    assert.ok(sd > 0.01, `drawn clicks spread the AUC (${sd})`);
    assert.ok(expected > 0.6 && expected < 0.9, `${expected}`);
  });

  test('AUC equals the pairwise definition, ties included', () => {
    const rng = new Rng(3);
    for (let trial = 0; trial < 20; trial++) {
      const n = 5 + rng.int(60);
      // Coarse scores make ties common.
      const scores = Array.from({ length: n }, () => Math.round(rng.uniform() * 8) / 8);
      const labels = Array.from({ length: n }, (_, i) => (i < 2 ? i : rng.uniform() < 0.3 ? 1 : 0));
      const got = auc(scores, labels);
      assert.ok(Math.abs(got - pairwiseAuc(scores, labels)) < 1e-12, `trial ${trial}: ${got}`);
    }
    assert.equal(auc([1, 2, 3], [0, 1, 1]), 1);
    assert.equal(auc([3, 2, 1], [0, 1, 1]), 0);
    assert.ok(Number.isNaN(auc([1, 2], [1, 1])), 'one class only: undefined');
    assert.throws(() => auc([1, 2], [1]), /2 scores but 1 labels/);
  });

  test('the AUC standard error matches the spread of AUCs over repeated samples', () => {
    // Scores: positives ~ N(1, 1), negatives ~ N(0, 1) (true AUC ≈ 0.76); 120 clicks in 2,000.
    const rng = new Rng(11);
    const aucs: number[] = [];
    for (let trial = 0; trial < 300; trial++) {
      const labels = Array.from({ length: 2000 }, (_, i) => (i < 120 ? 1 : 0));
      const scores = labels.map((y) => y + rng.normal());
      aucs.push(auc(scores, labels));
    }
    const mean = aucs.reduce((a, b) => a + b, 0) / aucs.length;
    const sd = Math.sqrt(aucs.reduce((a, b) => a + (b - mean) ** 2, 0) / (aucs.length - 1));
    const se = aucStandardError(mean, 120, 1880);
    assert.ok(Math.abs(se - sd) / sd < 0.2, `formula ${se} against observed ${sd}`);
    assert.ok(se > 0.015 && se < 0.03, `${se}`);
    assert.throws(() => aucStandardError(0.7, 0, 10), /both classes/);
  });

  test('grouped AUC weights users by impressions and skips one-class users', () => {
    const scores = [0.9, 0.1, 0.2, 0.8, 0.5, 0.4];
    const labels = [1, 0, 1, 0, 1, 1];
    const users = ['a', 'a', 'b', 'b', 'c', 'c'];
    // a: 1.0 over 2 impressions, b: 0.0 over 2, c: skipped (positives only).
    assert.equal(groupedAuc(scores, labels, users), 0.5);
  });

  test('NDCG@k is 1 for the ideal order and lower otherwise; RMSE is the root mean square', () => {
    const gains = [3, 2, 0, 1];
    assert.equal(ndcgAtK([4, 3, 1, 2], gains, 4), 1);
    const worst = ndcgAtK([1, 2, 4, 3], gains, 4);
    assert.ok(worst > 0 && worst < 1, `${worst}`);
    assert.ok(Number.isNaN(ndcgAtK([1, 2], [0, 0], 2)), 'no gain at all: undefined');
    assert.equal(rmse([1, 2, 3], [1, 2, 5]), Math.sqrt(4 / 3));
  });

  test('NDCG@k counts tied scores as randomly ordered, wherever the relevant item is listed', () => {
    const tied = [0.5, 0.5, 0.5, 0.5];
    const first = ndcgAtK(tied, [3, 0, 0, 0], 4);
    const last = ndcgAtK(tied, [0, 0, 0, 3], 4);
    assert.equal(first, last, 'a constant score does not depend on the input order');
    // Expected DCG with the gain equally likely at each rank, over the ideal DCG of 3.
    const expected = (0.75 * (1 + 1 / Math.log2(3) + 1 / Math.log2(4) + 1 / Math.log2(5))) / 3;
    assert.ok(Math.abs(first - expected) < 1e-12, `${first} vs ${expected}`);
    // A tie that straddles k: each of its ranks inside the cut gets the tie's mean gain.
    const straddle = ndcgAtK([0.9, 0.5, 0.5], [0, 2, 0], 2);
    assert.ok(Math.abs(straddle - 1 / Math.log2(3) / 2) < 1e-12, `${straddle}`);
  });
});
