import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KeyTimes } from '../src/features/key-times.js';

test('key times: each slot keeps its own two times, through growth and reuse', () => {
  const times = new KeyTimes();
  const slots: number[] = [];
  // Past the first array (1,024 slots): the values must survive its growth.
  for (let i = 0; i < 3000; i++) slots.push(times.take(1e12 + i, -i));
  assert.equal(new Set(slots).size, 3000, 'no slot handed out twice');
  for (let i = 0; i < 3000; i++) {
    assert.equal(times.newest(slots[i] as number), 1e12 + i);
    assert.equal(times.expiresFrom(slots[i] as number), -i);
  }
  times.setNewest(slots[5] as number, 7);
  times.setExpiresFrom(slots[5] as number, Number.NEGATIVE_INFINITY);
  assert.equal(times.newest(slots[5] as number), 7);
  assert.equal(times.expiresFrom(slots[5] as number), Number.NEGATIVE_INFINITY);
  assert.equal(times.newest(slots[4] as number), 1e12 + 4, 'a neighbour is untouched');
  assert.equal(times.expiresFrom(slots[6] as number), -6, 'a neighbour is untouched');

  times.give(slots[10] as number);
  times.give(slots[20] as number);
  assert.equal(times.live, 2998);
  const again = [times.take(1, 2), times.take(3, 4)].sort((a, b) => a - b);
  assert.deepEqual(again, [slots[10], slots[20]], 'slots given back are reused');
  assert.equal(times.newest(again[0] as number) + times.newest(again[1] as number), 4);
  assert.equal(times.live, 3000);
  assert.throws(() => times.give(3000), /not a slot in use/);
});
