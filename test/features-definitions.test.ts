import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isRecmasterError } from '../src/errors.js';
import {
  contributionOf,
  FEATURES,
  FEATURES_BY_NAME,
  type FeatureDefinition,
  parseCatalogue,
  ratioValue,
} from '../src/features/definitions.js';

const clicks: FeatureDefinition = {
  kind: 'aggregate',
  name: 'clicks_1h',
  description: 'clicks, last hour',
  entity: 'user',
  sources: ['click'],
  aggregation: { kind: 'count' },
  window: { kind: 'sliding', sizeMs: 3_600_000, slideMs: 60_000 },
  ttlMs: 7_200_000,
};
const impressions: FeatureDefinition = {
  ...clicks,
  name: 'impressions_1h',
  sources: ['impression'],
};
const ctr: FeatureDefinition = {
  kind: 'derived',
  name: 'ctr_1h',
  description: 'ctr',
  entity: 'user',
  op: 'ratio',
  numerator: 'clicks_1h',
  denominator: 'impressions_1h',
  prior: { mean: 0.05, weight: 20 },
};

/** The E_CONFIG message of a refused catalogue. */
function refusal(defs: unknown): string {
  try {
    parseCatalogue(defs);
  } catch (err) {
    assert.ok(isRecmasterError(err, 'E_CONFIG'), String(err));
    return err.message;
  }
  assert.fail('the catalogue should have been refused');
}

describe('feature definitions', () => {
  test('the catalogue validates and covers the issue’s list', () => {
    assert.doesNotThrow(() => parseCatalogue(JSON.parse(JSON.stringify(FEATURES))));
    const names = FEATURES.map((f) => f.name);
    assert.equal(new Set(names).size, names.length);
    for (const name of [
      'user_clicks_1m',
      'user_clicks_1h',
      'user_clicks_24h',
      'user_impressions_1m',
      'user_impressions_24h',
      'user_watch_s_1m',
      'user_watch_s_1h',
      'user_watch_s_24h',
      'user_ctr_24h',
      'user_completion_24h',
      'user_last_clicks',
      'user_category_affinity',
      'item_impressions_1h',
      'item_impressions_24h',
      'item_clicks_1h',
      'item_clicks_24h',
      'item_ctr_1h',
      'item_ctr_24h',
      'item_watch_ratio',
      'item_popularity',
    ]) {
      assert.ok(FEATURES_BY_NAME.has(name), `missing ${name}`);
    }
    assert.equal(FEATURES_BY_NAME.get('user_category_affinity')?.entity, 'user_category');
    const last = FEATURES_BY_NAME.get('user_last_clicks');
    assert.ok(last?.kind === 'aggregate' && last.aggregation.kind === 'last_n');
    assert.equal(last.aggregation.n, 50);
  });

  test('definitions are plain data: they survive a JSON round trip unchanged', () => {
    assert.deepEqual(JSON.parse(JSON.stringify(FEATURES)), FEATURES);
  });

  test('a duplicate name is refused, naming the field', () => {
    const msg = refusal([clicks, impressions, { ...impressions }]);
    assert.match(msg, /features\[2\]\.name: duplicate feature name "impressions_1h"/);
  });

  test('an unknown reference is refused, naming the field', () => {
    const msg = refusal([clicks, impressions, { ...ctr, denominator: 'views_1h' }]);
    assert.match(msg, /features\[2\]\.denominator: unknown feature "views_1h"/);
  });

  test('a negative or fractional window is refused, naming the field', () => {
    const neg = refusal([{ ...clicks, window: { kind: 'sliding', sizeMs: -1, slideMs: 60_000 } }]);
    assert.match(neg, /features\[0\]\.window\.sizeMs/);
    const half = refusal([{ ...clicks, window: { kind: 'decayed', halfLifeMs: 0 } }]);
    assert.match(half, /features\[0\]\.window\.halfLifeMs/);
    const uneven = refusal([
      { ...clicks, window: { kind: 'sliding', sizeMs: 3_600_000, slideMs: 7_000 } },
    ]);
    assert.match(uneven, /features\[0\]\.window\.slideMs: slideMs must divide sizeMs/);
  });

  test('inconsistent definitions are refused', () => {
    // A ratio across windows, across entities, of a sequence; a field the source lacks; TTL < window.
    const day = {
      ...impressions,
      window: { kind: 'sliding', sizeMs: 86_400_000, slideMs: 900_000 },
      ttlMs: 86_400_000,
    };
    assert.match(refusal([clicks, day, { ...ctr, denominator: day.name }]), /share one window/);
    assert.match(
      refusal([clicks, { ...impressions, entity: 'item' }, ctr]),
      /features\[2\]\.denominator: "impressions_1h" is keyed by item/,
    );
    assert.match(
      refusal([
        {
          ...clicks,
          aggregation: { kind: 'sum', value: { kind: 'field', field: 'watchedS' } },
        },
      ]),
      /features\[0\]\.aggregation\.value: source event click has no numeric field watchedS/,
    );
    assert.match(refusal([{ ...clicks, ttlMs: 60_000 }]), /features\[0\]\.ttlMs/);
    assert.match(
      refusal([{ ...clicks, aggregation: { kind: 'last_n', n: 5, dedupeConsecutive: false } }]),
      /features\[0\]\.window\.kind: last_n/,
    );
    assert.match(refusal([{ ...clicks, extra: 1 }]), /features\[0\]/);
    assert.match(refusal([{ ...clicks, name: 'Clicks' }]), /features\[0\]\.name/);
  });

  test('ratio and contribution formulas', () => {
    assert.ok(ctr.kind === 'derived');
    assert.equal(ratioValue(ctr, 0, 0), 0.05);
    assert.equal(ratioValue(ctr, 3, 10), (3 + 1) / 30);
    assert.equal(ratioValue({ ...ctr, prior: undefined }, 0, 0), null);
    assert.equal(ratioValue({ ...ctr, prior: undefined }, 1, 4), 0.25);
    const ratio = {
      kind: 'ratio',
      numerator: 'watchedS',
      denominator: 'durationS',
      clampMax: 1,
    } as const;
    assert.equal(contributionOf(ratio, { watchedS: 30, durationS: 120 }), 0.25);
    assert.equal(contributionOf(ratio, { watchedS: 300, durationS: 120 }), 1);
    assert.equal(contributionOf({ kind: 'field', field: 'watchedS' }, { watchedS: 12.5 }), 12.5);
  });
});
