import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SavedStates } from '../src/features/saved-states.js';

test('SavedStates keeps one chain per key, past its first capacity, until reset', () => {
  const saved = new SavedStates();
  // 3,000 keys × 3 states: 36k ints, more than the 16k it starts with.
  const heads: number[] = [];
  for (let round = 0; round < 3; round++) {
    for (let key = 0; key < 3000; key++) {
      const code = key * 10 + round;
      const start = round === 1 ? -1 : code * 2;
      heads[key] = saved.push(heads[key] ?? -1, code, start, start < 0 ? -1 : code * 2 + 1);
    }
  }
  for (let key = 0; key < 3000; key++) {
    for (let round = 0; round < 3; round++) {
      const at = saved.find(heads[key] as number, key * 10 + round);
      assert.ok(at >= 0, `key ${key} round ${round}`);
      const code = key * 10 + round;
      assert.equal(saved.start(at), round === 1 ? -1 : code * 2);
      assert.equal(saved.end(at), round === 1 ? -1 : code * 2 + 1);
    }
    // Another key's code is not in this chain.
    assert.equal(saved.find(heads[key] as number, ((key + 1) % 3000) * 10), -1);
  }
  assert.equal(saved.find(-1, 0), -1);
  saved.reset();
  const head = saved.push(-1, 7, 1, 2);
  assert.equal(saved.find(head, 7), head);
  assert.equal(saved.find(head, 0), -1);
});
