import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FeatureSnapshot } from '../src/events/schemas.js';
import { FEATURES } from '../src/features/definitions.js';
import { FeatureVectorizer } from '../src/rank/feature-vector.js';
import type { FeatureRow } from '../src/store/store.js';

const user: FeatureRow = {
  eventTimeMs: 1,
  values: { user_clicks_1h: 3, user_ctr_1h: 0.07, user_last_clicks: ['i1', 'i2'] },
};
const item: FeatureRow = {
  eventTimeMs: 1,
  values: { item_impressions_24h: 99, item_ctr_24h: null },
};

describe('feature vectors for the ranker', () => {
  const v = new FeatureVectorizer();

  test('one slot per numeric feature and a missing flag per entity; sequences are left out', () => {
    const numeric = FEATURES.filter(
      (f) => !(f.kind === 'aggregate' && f.aggregation.kind === 'last_n'),
    ).length;
    // + a missing flag per entity, the request context (GNN score) and its missing flag
    assert.equal(v.width, numeric + 3 + 2);
    assert.ok(!v.slots.some((s) => s.feature === 'user_last_clicks'), 'no sequence slot');
  });

  test('counts are log1p, ratios as they are, missing values and rows are 0 with a flag', () => {
    const x = v.vectors(user, [item, null]);
    const at = (row: number, name: string) =>
      x[row * v.width + v.slots.findIndex((s) => s.name === name)];
    assert.equal(at(0, 'user.user_clicks_1h'), Math.fround(Math.log1p(3)));
    assert.equal(at(0, 'user.user_ctr_1h'), Math.fround(0.07));
    assert.equal(at(0, 'item.item_impressions_24h'), Math.fround(Math.log1p(99)));
    assert.equal(at(0, 'item.item_ctr_24h'), 0, 'null reads 0');
    assert.equal(at(0, 'item.missing'), 0);
    assert.equal(at(1, 'item.missing'), 1, 'an absent item row is flagged');
    assert.equal(at(1, 'item.item_impressions_24h'), 0);
    assert.equal(at(0, 'user_category.missing'), 1, 'no user×category row given');
    assert.equal(at(0, 'ctx.missing'), 1, 'no context given');
    const withContext = v.vectors(user, [item, item], [], {
      gnn_score: Float32Array.of(0.5, Number.NaN),
    });
    const ctx = (row: number, name: string) =>
      withContext[row * v.width + v.slots.findIndex((s) => s.name === name)];
    assert.equal(ctx(0, 'ctx.gnn_score'), 0.5);
    assert.equal(ctx(0, 'ctx.missing'), 0);
    assert.equal(ctx(1, 'ctx.gnn_score'), 0, 'a NaN score reads 0 ...');
    assert.equal(ctx(1, 'ctx.missing'), 1, '... and is flagged');
  });

  test('a logged snapshot is a valid event field and gives back the same vector', () => {
    const x = v.vectors(user, [item]);
    const snapshot = v.toSnapshot(x);
    assert.ok(FeatureSnapshot.safeParse(snapshot).success, 'fits the impression schema');
    assert.deepEqual(v.fromSnapshot(snapshot), x);
    // Unknown names are ignored; absent ones read 0.
    const partial = v.fromSnapshot({ 'user.user_clicks_1h': 2, 'gone.feature': 5 });
    assert.equal(partial[v.slots.findIndex((s) => s.name === 'user.user_clicks_1h')], 2);
    assert.equal(
      partial.reduce((s, a) => s + a, 0),
      2,
    );
  });
});
