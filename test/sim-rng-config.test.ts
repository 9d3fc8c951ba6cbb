import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSimConfig, Rng } from '../src/sim/index.js';

const draw = (r: Rng, n: number) => Array.from({ length: n }, () => r.uniform());

describe('Rng', () => {
  it('is deterministic for a seed and differs across seeds', () => {
    assert.deepEqual(draw(new Rng(7), 20), draw(new Rng(7), 20));
    assert.notDeepEqual(draw(new Rng(7), 20), draw(new Rng(8), 20));
  });

  it('forks depend on the label, not on what the parent drew', () => {
    const a = new Rng(1);
    const b = new Rng(1);
    draw(b, 1000);
    assert.deepEqual(draw(a.fork('items'), 10), draw(b.fork('items'), 10));
    assert.notDeepEqual(draw(a.fork('items'), 10), draw(a.fork('users'), 10));
  });

  it('has the right moments', () => {
    const r = new Rng(3);
    const n = 40_000;
    const mean = (f: () => number) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += f();
      return s / n;
    };
    assert.ok(Math.abs(mean(() => r.normal())) < 0.03);
    assert.ok(Math.abs(mean(() => r.normal() ** 2) - 1) < 0.04);
    assert.ok(Math.abs(mean(() => r.gamma(2.5)) - 2.5) < 0.06);
    assert.ok(Math.abs(mean(() => r.gamma(0.3)) - 0.3) < 0.02);
    assert.ok(Math.abs(mean(() => r.beta(2, 8)) - 0.2) < 0.01);
    assert.ok(Math.abs(mean(() => r.poissonInterval(4)) - 0.25) < 0.01);
    const ints = new Set(Array.from({ length: 1000 }, () => r.int(5)));
    assert.deepEqual([...ints].sort(), [0, 1, 2, 3, 4]);
    const arr = Array.from({ length: 50 }, (_, i) => i);
    assert.deepEqual(
      [...r.shuffle([...arr])].sort((x, y) => x - y),
      arr,
    );
  });
});

describe('parseSimConfig', () => {
  it('fills defaults', () => {
    const c = parseSimConfig({});
    assert.equal(c.seed, 42);
    assert.equal(c.users, 1000);
    assert.equal(c.items, 5000);
    assert.equal(c.driftAtS, null);
    assert.equal(c.startTime, Date.UTC(2026, 0, 1));
  });

  it('rejects bad values and unknown keys with the field named', () => {
    assert.throws(() => parseSimConfig({ taskCorrelation: 2 }), /taskCorrelation/);
    assert.throws(() => parseSimConfig({ users: 1.5 }), /users/);
    assert.throws(() => parseSimConfig({ usres: 10 }), /usres/);
  });
});
