import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EmbeddingTable, hashedRow } from '../src/util/embedding-table.js';

describe('embedding table (row-wise Adagrad)', () => {
  test('only rows with gradients move; gradients of a row are summed before one step', () => {
    const table = new EmbeddingTable(2, new Float32Array(8).fill(1), 0.1, 0);
    table.accumulate(1, [1, 0], 0);
    table.accumulate(1, [0, 0, 1, 0], 2, 2); // a slice of a wider gradient, scaled
    table.accumulate(0, [5, 5], 0); // the reserved row never moves
    table.step();
    // Adagrad from zero state: a step of lr · g / |g| per component.
    assert.deepEqual(
      Array.from(table.row(1)).map((v) => Number(v.toFixed(6))),
      [0.9, 1],
    );
    assert.deepEqual(Array.from(table.row(0)), [1, 1]);
    assert.deepEqual(Array.from(table.row(2)), [1, 1]);
    table.step(); // nothing pending: nothing changes
    assert.deepEqual(
      Array.from(table.row(1)).map((v) => Number(v.toFixed(6))),
      [0.9, 1],
    );
    assert.throws(() => new EmbeddingTable(3, new Float32Array(8), 0.1), /multiple of dim 3/);
  });

  test('a step that writes a non-finite value marks the table (a guard need not scan it)', () => {
    const table = new EmbeddingTable(2, new Float32Array(8).fill(1), 0.1, 0);
    table.accumulate(1, [1, 1], 0);
    table.step();
    assert.equal(table.finite, true, 'finite after a normal step');
    table.accumulate(2, [Number.NaN, 0], 0);
    table.step();
    assert.equal(table.finite, false, 'a NaN gradient made row 2 NaN');
    assert.ok(Number.isNaN(table.row(2)[0] as number), 'the NaN is in the row');
  });

  test('hashed rows are stable, in range and never the reserved row', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const r = hashedRow(`item-${i}`, 64);
      assert.ok(r >= 1 && r < 64, `row ${r}`);
      assert.equal(hashedRow(`item-${i}`, 64), r);
      seen.add(r);
    }
    assert.ok(seen.size > 55, `${seen.size} of 63 rows used`);
    assert.throws(() => hashedRow('x', 1), /at least 2 rows/);
  });
});
