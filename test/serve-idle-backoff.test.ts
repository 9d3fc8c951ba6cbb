import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IdleBackoff } from '../src/serve/idle-backoff.js';

test('idle backoff: doubles while polls are empty, up to the cap; back to the base on data', () => {
  const b = new IdleBackoff(10, 80);
  assert.deepEqual(
    [false, false, false, false, false].map((found) => b.next(found)),
    [10, 20, 40, 80, 80],
  );
  assert.equal(b.next(true), 0, 'found something: poll again at once');
  assert.equal(b.next(false), 10, 'the first empty poll after data waits the base');
  assert.throws(() => new IdleBackoff(10, 5), /base/);
  assert.throws(() => new IdleBackoff(0, 5), /base/);
});
