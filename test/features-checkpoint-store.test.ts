// The checkpoint store against a real LMDB directory: what one writer-thread transaction
// saves, a reopened store reads back; removals remove; a closed store refuses to save.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type CheckpointChanges,
  CheckpointStore,
  SavedKeyEncoder,
} from '../src/features/checkpoint.js';
import { keyWrites } from '../src/features/checkpoint-batch.js';
import { type AggregateFeature, FEATURES } from '../src/features/definitions.js';
import {
  createState,
  type FeatureState,
  LastNState,
  type NumericState,
} from '../src/features/window-state.js';
import { tempDir } from './helpers.js';

const aggregates = FEATURES.filter((f): f is AggregateFeature => f.kind === 'aggregate');

/** Keys with a few fed states each (key i: i + 1 events), encoded as the engine encodes them. */
function encodeKeys(encoder: SavedKeyEncoder, ids: string[], removed: Set<string>) {
  const ranges: number[] = [];
  const states = new Map<string, [string, string, FeatureState][]>();
  ids.forEach((id, i) => {
    const start = encoder.begin();
    const kept: [string, string, FeatureState][] = [];
    if (!removed.has(id)) {
      for (const def of aggregates.slice(0, 3)) {
        const state = createState(def, { allowedLatenessMs: 1000 });
        for (let e = 0; e <= i; e++) {
          if (state instanceof LastNState) state.add(1000 * e, `i${e}`, 0);
          else (state as NumericState).add(1000 * e, 1, 0);
        }
        encoder.add('behaviour/0', def.name, state);
        kept.push(['behaviour/0', def.name, state]);
      }
    }
    ranges.push(start, encoder.end());
    states.set(id, kept);
  });
  return { keys: keyWrites(ids, ranges, encoder.written()), states };
}

function changes(keys: CheckpointChanges['keys'], offset: number, labels: string[]) {
  return {
    meta: {
      behaviour: { behaviour: { 0: offset } },
      items: {},
      streams: { 'behaviour/0': { maxTs: 5000, processed: offset } },
      counters: { events: offset },
    },
    keys,
    categories: new Map([['i1', 'sports']]),
    labels,
  } satisfies CheckpointChanges;
}

test('checkpoint store: one save on the writer thread reads back after reopening', async () => {
  const { dir, cleanup } = await tempDir();
  try {
    const ids = Array.from({ length: 2000 }, (_, i) => `item:i${i}é`);
    const encoder = new SavedKeyEncoder();
    const first = encodeKeys(encoder, ids, new Set());
    let store = await CheckpointStore.open(dir);
    await store.save(changes(first.keys, 10, encoder.labels));
    await store.close();

    store = await CheckpointStore.open(dir);
    assert.deepEqual(store.meta()?.behaviour, { behaviour: { 0: 10 } });
    assert.deepEqual([...store.categories()], [['i1', 'sports']]);
    const read = new Map(store.keys());
    assert.equal(read.size, ids.length);
    for (const id of ids) {
      const expected = first.states.get(id)?.map(([s, f, st]) => [s, f, st.serialize()]);
      assert.deepEqual(read.get(id), expected, id);
    }

    // A second checkpoint: some keys removed, one rewritten; the rest stay as they were.
    encoder.clear();
    const second = encodeKeys(encoder, ['item:i3é', 'item:i5é'], new Set(['item:i3é']));
    await store.save(changes(second.keys, 20, encoder.labels));
    await store.close();

    store = await CheckpointStore.open(dir);
    const after = new Map(store.keys());
    assert.equal(after.size, ids.length - 1);
    assert.equal(after.has('item:i3é'), false);
    assert.deepEqual(
      after.get('item:i5é'),
      second.states.get('item:i5é')?.map(([s, f, st]) => [s, f, st.serialize()]),
    );
    assert.notDeepEqual(after.get('item:i5é'), read.get('item:i5é'));
    assert.deepEqual(after.get('item:i7é'), read.get('item:i7é'));
    assert.deepEqual(store.meta()?.behaviour, { behaviour: { 0: 20 } });
    await store.close();
    await assert.rejects(store.save(changes(second.keys, 30, encoder.labels)), /closed/);
  } finally {
    await cleanup();
  }
});
