import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { open } from 'lmdb';
import { LmdbFeatureStore } from '../src/store/lmdb-store.js';
import type { FeatureRow, RowWrite } from '../src/store/store.js';
import { tempDir } from './helpers.js';

const user = (key: string, clicks: number, last: string[] | null): RowWrite => ({
  entity: 'user',
  key,
  row: { values: { user_clicks_1h: clicks, user_last_clicks: last }, eventTimeMs: clicks },
});
const item = (key: string, clicks: number): RowWrite => ({
  entity: 'item',
  key,
  row: { values: { item_clicks_1h: clicks }, eventTimeMs: clicks },
});

async function scanAll(store: LmdbFeatureStore): Promise<Map<string, FeatureRow>> {
  const rows = new Map<string, FeatureRow>();
  for await (const [key, row] of store.scan()) rows.set(key, row);
  return rows;
}

/** Every key in the database, as LMDB holds them (the store's own layout). */
function rawKeys(dir: string): string[] {
  const db = open({ path: dir, readOnly: true });
  try {
    return [...db.getKeys()].filter((k): k is string => typeof k === 'string');
  } finally {
    void db.close();
  }
}

describe('embedded feature store', () => {
  test('rows with lists read back whole as the lists change, stay and go', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    const store = await LmdbFeatureStore.open(dir);
    const refs = [
      { entity: 'user', key: 'u1' },
      { entity: 'item', key: 'i1' },
      { entity: 'user', key: 'u2' },
    ] as const;
    const read = async () => (await store.getMany(refs)).map((r) => r?.values ?? null);

    await store.write([user('u1', 1, ['a']), item('i1', 7), user('u2', 2, [])]);
    assert.deepEqual(await read(), [
      { user_clicks_1h: 1, user_last_clicks: ['a'] },
      { item_clicks_1h: 7 },
      { user_clicks_1h: 2, user_last_clicks: [] },
    ]);
    // The list unchanged (another array, equal), then changed, then back to an earlier one.
    for (const [clicks, last] of [
      [3, ['a']],
      [4, ['a', 'b']],
      [5, ['a']],
    ] as const) {
      await store.write([user('u1', clicks, [...last])]);
      assert.deepEqual((await store.getMany([refs[0]]))[0], {
        values: { user_clicks_1h: clicks, user_last_clicks: last },
        eventTimeMs: clicks,
      });
    }
    // A null value (not a list) replaces the list.
    await store.write([user('u2', 6, null)]);
    assert.deepEqual((await read())[2], { user_clicks_1h: 6, user_last_clicks: null });

    const scanned = await scanAll(store);
    assert.deepEqual([...scanned.keys()].sort(), ['item:i1', 'user:u1', 'user:u2']);
    assert.deepEqual(scanned.get('user:u1')?.values.user_last_clicks, ['a']);

    await store.write([{ entity: 'user', key: 'u1', row: null }]);
    assert.equal((await store.getMany([refs[0]]))[0], null);
    await store.close();
    // Nothing left behind: u1's list went with its row, u2's when it became null.
    assert.deepEqual(rawKeys(dir).sort(), ['item:i1', 'user:u2']);
  });

  test('a store opened again reads the lists an earlier one wrote, and writes them on', async (t) => {
    const { dir, cleanup } = await tempDir();
    t.after(cleanup);
    const first = await LmdbFeatureStore.open(path.join(dir, 'store'));
    await first.write([user('u1', 1, ['a', 'b'])]);
    await first.close();
    const second = await LmdbFeatureStore.open(path.join(dir, 'store'));
    assert.deepEqual((await second.getMany([{ entity: 'user', key: 'u1' }]))[0]?.values, {
      user_clicks_1h: 1,
      user_last_clicks: ['a', 'b'],
    });
    await second.write([user('u1', 2, ['a', 'b', 'c'])]);
    await second.write([user('u1', 3, ['a', 'b', 'c'])]);
    assert.deepEqual((await scanAll(second)).get('user:u1'), {
      values: { user_clicks_1h: 3, user_last_clicks: ['a', 'b', 'c'] },
      eventTimeMs: 3,
    });
    await second.close();
    // A list this store did not write, no more a list: not read, and gone with its row.
    const third = await LmdbFeatureStore.open(path.join(dir, 'store'));
    await third.write([user('u1', 4, null)]);
    assert.equal(
      (await third.getMany([{ entity: 'user', key: 'u1' }]))[0]?.values.user_last_clicks,
      null,
    );
    await third.write([{ entity: 'user', key: 'u1', row: null }]);
    await third.close();
    assert.deepEqual(rawKeys(path.join(dir, 'store')), []);
  });
});
