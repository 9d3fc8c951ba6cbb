import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { LabelledSample } from '../src/events/schemas.js';
import { ClassBalancedHoldout } from '../src/learn/holdout.js';
import type { RankExample } from '../src/rank/ranker.js';

const row = (n: number, clicked: boolean) => ({
  sample: { impressionId: `imp${n}`, clicked } as LabelledSample,
  example: { itemId: `i${n}` } as RankExample,
});

describe('class-balanced holdout', () => {
  test('keeps the newest rows of each class, each with its example', () => {
    const h = new ClassBalancedHoldout(3, 5);
    // Every 10th sample is clicked: 100 samples, 10 clicks.
    for (let n = 0; n < 100; n++) h.add(row(n, n % 10 === 0));
    const ids = h.rows().map((r) => r.sample.impressionId);
    assert.deepEqual(ids, ['imp70', 'imp80', 'imp90', 'imp95', 'imp96', 'imp97', 'imp98', 'imp99']);
    assert.equal(h.size, 8);
    assert.ok(h.rows().every((r) => r.example.itemId === `i${r.sample.impressionId.slice(3)}`));
  });

  test('rows() is rebuilt after an add, and sizes are validated', () => {
    const h = new ClassBalancedHoldout(1, 1);
    h.add(row(1, true));
    const before = h.rows();
    assert.equal(before, h.rows(), 'the same array until the next add');
    h.add(row(2, true));
    assert.deepEqual(
      h.rows().map((r) => r.sample.impressionId),
      ['imp2'],
    );
    assert.throws(() => new ClassBalancedHoldout(0, 5), /integers >= 1/);
    assert.throws(() => new ClassBalancedHoldout(2, 1.5), /integers >= 1/);
  });
});
