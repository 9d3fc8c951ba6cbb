import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Packr } from 'msgpackr';
import { isRecmasterError } from '../src/errors.js';
import { FEATURES } from '../src/features/definitions.js';
import { RowCodec } from '../src/store/row-codec.js';
import type { FeatureRow, FeatureValue } from '../src/store/store.js';

function fullRow(entity: string, eventTimeMs: number): FeatureRow {
  const values: Record<string, FeatureValue> = {};
  FEATURES.filter((f) => f.entity === entity).forEach((f, i) => {
    values[f.name] = f.name === 'user_last_clicks' ? ['i1', 'i2'] : i % 3 === 0 ? null : i + 0.1;
  });
  return { values, eventTimeMs };
}

describe('row codec', () => {
  const codec = new RowCodec();

  test('rows with exactly their entity’s features round-trip, compactly', () => {
    for (const entity of ['user', 'item', 'user_category'] as const) {
      const row = fullRow(entity, 1_767_226_800_123);
      const bytes = codec.encode(entity, row);
      assert.deepEqual(codec.decode(bytes), row);
      assert.ok(bytes.length < Buffer.byteLength(JSON.stringify(row)) / 2, `${entity} not compact`);
    }
  });

  test('a row of another shape is stored whole and still round-trips', () => {
    const partial: FeatureRow = { values: { item_clicks_1h: 3 }, eventTimeMs: 5 };
    assert.deepEqual(codec.decode(codec.encode('item', partial)), partial);
    const extra = fullRow('item', 6);
    extra.values.not_a_feature = 1;
    assert.deepEqual(codec.decode(codec.encode('item', extra)), extra);
  });

  test('a row from another catalogue is refused with a clear error', () => {
    const foreign = new Packr({ useRecords: false }).pack([12345, 1, 2, 3]);
    assert.throws(
      () => codec.decode(foreign),
      (err) => isRecmasterError(err, 'E_STORE_FORMAT') && /rebuild/.test(err.message),
    );
  });
});
