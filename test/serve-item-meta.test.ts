import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InteractionGraph } from '../src/graph/graph.js';
import { ItemMetaCache } from '../src/serve/item-meta.js';

test('item metadata for the ranker: built once per item, rebuilt after an upsert', () => {
  const graph = new InteractionGraph();
  graph.upsertItem('i1', 'music', ['jazz', 'live'], 'ann', 0);
  graph.upsertItem('i2', 'news', [], 'bob', 0);
  const metas = new ItemMetaCache(graph);
  const first = metas.of('i1', graph.item('i1'));
  assert.deepEqual(first, {
    itemId: 'i1',
    category: 'music',
    creator: 'ann',
    tags: ['jazz', 'live'],
  });
  assert.equal(metas.of('i1', graph.item('i1')), first, 'the same object while unchanged');
  assert.deepEqual(metas.of('i2', graph.item('i2')).tags, []);

  graph.upsertItem('i1', 'sport', ['live'], 'cy', 1);
  assert.deepEqual(metas.of('i1', graph.item('i1')), {
    itemId: 'i1',
    category: 'sport',
    creator: 'cy',
    tags: ['live'],
  });
  assert.deepEqual(metas.of('nope', undefined), {
    itemId: 'nope',
    category: '',
    creator: '',
    tags: [],
  });
});
