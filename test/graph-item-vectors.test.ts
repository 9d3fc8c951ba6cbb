import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ItemVectors } from '../src/graph/item-vectors.js';

test('item vectors: rows by index, growing past the capacity, dot in dimension order', () => {
  const table = new ItemVectors(3, 2);
  table.set(0, Float32Array.of(1, 2, 3));
  table.set(5, Float32Array.of(-1, 0.5, 2)); // beyond the capacity: grows, keeps row 0
  const q = Float32Array.of(0.5, -1, 2);
  assert.equal(table.dot(0, q), 0.5 - 2 + 6);
  assert.equal(table.dot(5, q), -0.5 - 0.5 + 4);
  assert.deepEqual(
    [0, 1, 4, 5, 6, -1].map((i) => table.has(i)),
    [true, false, false, true, false, false],
  );
  table.set(0, Float32Array.of(0, 0, 1)); // a re-embedded item replaces its row
  assert.equal(table.dot(0, q), 2);
  assert.throws(() => table.set(1, Float32Array.of(1, 2)), /2 values, expected 3/);
  assert.throws(() => new ItemVectors(0), /dimension/);
});
