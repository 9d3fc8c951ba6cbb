// The guardrail's rolling holdout, kept per class: the newest `positives` clicked samples and
// the newest `negatives` others. Why not simply the newest N: the guard compares click AUCs,
// which do not depend on how the classes are mixed, and whose noise comes mostly from the
// rarer class. At a 5 % CTR the newest 2,000 samples hold ~100 clicks; 200 clicks and 600
// others are twice the clicks in 800 rows, so the check is sharper and scoring it, which every
// step does, is cheaper. The clicks then span a longer stretch of the stream than the others;
// both models are scored on the same rows, so the comparison stays paired.
import type { LabelledSample } from '../events/schemas.js';
import type { RankExample } from '../rank/ranker.js';

export interface HoldoutRow {
  sample: LabelledSample;
  /** Built once when the sample arrives (rebuilding the examples each step cost half of it). */
  example: RankExample;
}

export class ClassBalancedHoldout {
  private readonly clicked: HoldoutRow[] = [];
  private readonly others: HoldoutRow[] = [];
  private all: HoldoutRow[] | null = null;

  constructor(
    readonly positives: number,
    readonly negatives: number,
  ) {
    if (
      !(
        Number.isInteger(positives) &&
        positives >= 1 &&
        Number.isInteger(negatives) &&
        negatives >= 1
      )
    )
      throw new RangeError(
        `holdout sizes must be integers >= 1, got ${positives} and ${negatives}`,
      );
  }

  add(row: HoldoutRow): void {
    const [list, cap] = row.sample.clicked
      ? [this.clicked, this.positives]
      : [this.others, this.negatives];
    list.push(row);
    if (list.length > cap) list.shift();
    this.all = null;
  }

  get size(): number {
    return this.clicked.length + this.others.length;
  }

  /** Every row, clicked ones first (the same array until the next add). */
  rows(): readonly HoldoutRow[] {
    this.all ??= [...this.clicked, ...this.others];
    return this.all;
  }
}
