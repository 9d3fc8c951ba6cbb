import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng, Truth, World } from '../src/sim/index.js';

const small = { users: 300, items: 2000 };

function pearson(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = (xs[i] as number) - mx;
    const dy = (ys[i] as number) - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxy / Math.sqrt(sxx * syy);
}

function randomPairSignals(truth: Truth, n: number) {
  const r = new Rng(99);
  const a1: number[] = [];
  const a2: number[] = [];
  for (let k = 0; k < n; k++) {
    const s = truth.signalsIdx(r.int(truth.world.userCount), r.int(truth.world.itemCount), 0);
    a1.push(s.a1);
    a2.push(s.a2);
  }
  return { a1, a2 };
}

describe('world', () => {
  it('is rebuilt identically, and new items do not depend on the number of users', () => {
    const a = new World({ ...small });
    const b = new World({ ...small, users: 17 });
    for (let k = 0; k < 20; k++) {
      const x = a.addItem();
      const y = b.addItem();
      assert.equal(x.id, `i${2000 + k}`);
      assert.deepEqual(x, y);
    }
    assert.deepEqual(new World(small).users[5], a.users[5]);
    assert.notDeepEqual(new World({ ...small, seed: 1 }).item(0).v, a.item(0).v);
  });

  it('builds items and users with the documented shapes', () => {
    const w = new World(small);
    for (let i = 0; i < 200; i++) {
      const it = w.item(i);
      assert.ok(it.tags.length >= 1 && it.tags.length <= 3);
      assert.ok(it.durationS >= 5 && it.durationS <= 600);
      assert.equal(w.creatorCategory[it.creator], it.category);
    }
    const u = w.users[0];
    assert.ok(u && u.favourites.length >= 1 && u.favourites.length <= 3);
    // Interest has ~unit variance per dim across users.
    let s2 = 0;
    for (const user of w.users) for (const x of user.interest) s2 += x * x;
    const variance = s2 / (w.userCount * w.dim);
    assert.ok(variance > 0.6 && variance < 1.5, `interest variance ${variance}`);
  });

  it('hiddenShare sets how much of v the metadata explains', () => {
    const explained = (hiddenShare: number) => {
      const w = new World({ ...small, hiddenShare });
      // Pooled least squares of v on vObs: R² ≈ 1 - h.
      let sxy = 0;
      let sxx = 0;
      let syy = 0;
      for (let i = 0; i < w.itemCount; i++) {
        const { v, vObs } = w.item(i);
        for (let d = 0; d < w.dim; d++) {
          sxy += (v[d] as number) * (vObs[d] as number);
          sxx += (vObs[d] as number) ** 2;
          syy += (v[d] as number) ** 2;
        }
      }
      return (sxy * sxy) / (sxx * syy);
    };
    assert.ok(explained(0) > 0.9999);
    const r2 = explained(0.6);
    assert.ok(Math.abs(r2 - 0.4) < 0.05, `R² ${r2}`);
  });

  it('drift changes the affected users, and only them, after driftAtS', () => {
    const cfg = { ...small, driftAtS: 100, driftShare: 0.3 };
    const w = new World(cfg);
    const truth = new Truth(w);
    assert.equal(w.driftedUsers.length, 90);
    const at = w.driftTimeMs as number;
    const drifted = new Set(w.driftedUsers);
    for (let u = 0; u < w.userCount; u++) {
      const before = truth.clickProbability(`u${u}`, 'i3', 0, at - 1);
      const after = truth.clickProbability(`u${u}`, 'i3', 0, at);
      if (drifted.has(u)) assert.notEqual(before, after);
      else assert.equal(before, after);
    }
    // New favourites differ from the old ones.
    const user = w.user(w.driftedUsers[0] as number);
    for (const f of user.drift?.favourites ?? []) assert.ok(!user.favourites.includes(f));
  });
});

describe('truth', () => {
  it('taskCorrelation = 1 makes the tasks identical', () => {
    const { a1, a2 } = randomPairSignals(
      new Truth(new World({ ...small, taskCorrelation: 1 })),
      500,
    );
    assert.deepEqual(a1, a2);
  });

  it('taskCorrelation = 0 makes the task signals nearly uncorrelated; 0.7 clearly correlated', () => {
    const zero = randomPairSignals(new Truth(new World({ ...small, taskCorrelation: 0 })), 20_000);
    const r0 = pearson(zero.a1, zero.a2);
    assert.ok(Math.abs(r0) < 0.1, `corr at rho=0: ${r0}`);
    const dflt = randomPairSignals(
      new Truth(new World({ ...small, taskCorrelation: 0.7 })),
      20_000,
    );
    const r7 = pearson(dflt.a1, dflt.a2);
    assert.ok(r7 > 0.5 && r7 < 0.9, `corr at rho=0.7: ${r7}`);
  });

  it('exposes consistent probabilities and an oracle ranking', () => {
    const w = new World(small);
    const t = new Truth(w);
    const ts = w.config.startTime;
    const p0 = t.clickProbability('u1', 'i1', 0, ts);
    const p4 = t.clickProbability('u1', 'i1', 4, ts);
    assert.ok(p0 > 0 && p0 < 1);
    assert.ok(Math.abs(p4 - p0 / Math.sqrt(5)) < 1e-12);
    const r = t.watchRatioGivenClick('u1', 'i1', ts);
    const dur = w.item(1).durationS;
    assert.ok(Math.abs(t.expectedWatchSeconds('u1', 'i1', 4, ts) - p4 * dur * r) < 1e-9);
    assert.ok(Math.abs(1 / (1 + Math.exp(-t.affinity('u1', 'i1', ts))) - p0) < 1e-12);

    const top = t.oracleTopK('u1', 5, ts);
    assert.equal(top.length, 5);
    for (let k = 1; k < top.length; k++) {
      assert.ok((top[k - 1]?.probability as number) >= (top[k]?.probability as number));
    }
    assert.ok((top[0]?.probability as number) > 0.3, 'the best item should be likely clicked');
    const sub = t.oracleTopK('u1', 2, ts, ['i1', 'i2', 'i3']);
    assert.equal(sub.length, 2);
    assert.ok(sub.every((s) => ['i1', 'i2', 'i3'].includes(s.itemId)));

    assert.throws(() => t.clickProbability('u300', 'i1', 0, ts), /unknown user id "u300"/);
    assert.throws(() => t.clickProbability('u1', 'i2000', 0, ts), /unknown item id "i2000"/);
    assert.throws(() => t.clickProbability('u1', 'x1', 0, ts), /unknown item id/);
    assert.throws(() => t.clickProbability('u1', 'i1', -1, ts), /position/);
  });

  it('computes click probabilities with chosen idiosyncrasies removed', () => {
    const all = { userNoise: true, itemHidden: true, quality: true };
    const none = { userNoise: false, itemHidden: false, quality: false };
    const w = new World({ ...small, driftAtS: 60, driftShare: 0.5 });
    const t = new Truth(w);
    const after = w.config.startTime + 120_000;
    const r = new Rng(5);
    const truthP: number[] = [];
    const partP: number[] = [];
    for (let k = 0; k < 400; k++) {
      const u = `u${r.int(w.userCount)}`;
      const i = `i${r.int(w.itemCount)}`;
      const at = k % 2 === 0 ? w.config.startTime : after; // before and after the drift
      const p = t.clickProbability(u, i, k % 5, at);
      assert.equal(t.clickProbabilityKnowing(u, i, k % 5, at, all), p);
      truthP.push(p);
      partP.push(t.clickProbabilityKnowing(u, i, k % 5, at, none));
    }
    // The shared parts carry most of the signal, not all of it.
    const c = pearson(truthP, partP);
    assert.ok(c > 0.5 && c < 0.99, `correlation ${c}`);
    // The user's own noise is a fifth of the interest's variance per dim (drifted users too).
    let sq = 0;
    let n = 0;
    for (const user of w.users) {
      for (const part of [user, user.drift].filter((x) => x !== undefined)) {
        for (let d = 0; d < w.dim; d++) {
          sq += ((part.interest[d] as number) - (part.favouriteInterest[d] as number)) ** 2;
          n++;
        }
      }
    }
    assert.ok(Math.abs(sq / n - 0.2) < 0.02, `noise variance ${sq / n}`);
    // Without a hidden share the metadata part is the whole item vector.
    const open = new Truth(new World({ ...small, hiddenShare: 0 }));
    const itemOnly = { userNoise: true, itemHidden: false, quality: true };
    for (const i of ['i0', 'i7', 'i99'])
      assert.ok(
        Math.abs(
          open.clickProbabilityKnowing('u3', i, 0, w.config.startTime, itemOnly) -
            open.clickProbability('u3', i, 0, w.config.startTime),
        ) < 1e-12,
      );
  });
});
