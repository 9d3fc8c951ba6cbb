import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { RankerModelStore } from '../src/rank/model-store.js';
import { Ranker, type RankerModel } from '../src/rank/ranker.js';
import { ModelWatcher } from '../src/serve/model-watcher.js';
import { Rng } from '../src/util/rng.js';
import { smallRankerConfig, tempDir } from './helpers.js';

const config = smallRankerConfig();

async function until(what: string, ok: () => boolean, ms = 3000): Promise<number> {
  const started = performance.now();
  while (!ok()) {
    if (performance.now() - started > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
  return performance.now() - started;
}

function watcherOn(dir: string, intervalMs: number, featureSlots?: readonly string[]) {
  let serving: RankerModel | null = null;
  const watcher = new ModelWatcher({
    dir,
    rng: new Rng(1),
    intervalMs,
    featureSlots,
    swap: (model) => {
      const old = serving;
      serving = model;
      return old;
    },
  });
  return { watcher, serving: () => serving };
}

describe('model watcher', () => {
  test('a published version is swapped in at once where the directory can be watched', async () => {
    const { dir, cleanup } = await tempDir();
    const store = new RankerModelStore(dir);
    const ranker = await Ranker.create(config, new Rng(2));
    await store.save(ranker, ['a', 'b', 'c'], {});
    // Polling once a minute: only the directory watch can make the next swap this quick.
    const { watcher, serving } = watcherOn(dir, 60_000);
    try {
      watcher.start();
      const v2 = await store.save(ranker, ['a', 'b', 'c'], {});
      await until('the watch to swap v2 in', () => serving()?.version === v2);
      const v3 = await store.save(ranker, ['a', 'b', 'c'], {});
      await until('the watch to swap v3 in', () => serving()?.version === v3);
    } finally {
      watcher.stop();
      serving()?.ranker.dispose();
      ranker.dispose();
      await cleanup();
    }
  });

  test('a version trained on other feature slots is refused; the one served stays', async () => {
    const { dir, cleanup } = await tempDir();
    const store = new RankerModelStore(dir);
    const ranker = await Ranker.create(config, new Rng(2));
    const { watcher, serving } = watcherOn(dir, 60_000, ['a', 'b', 'c']);
    try {
      const good = await store.save(ranker, ['a', 'b', 'c'], {});
      assert.equal(await watcher.check(), true);
      await store.save(ranker, ['a', 'b', 'd'], {});
      assert.equal(await watcher.check(), false);
      assert.equal(serving()?.version, good, 'the good version is still served');
      assert.equal(watcher.failures, 1);
    } finally {
      serving()?.ranker.dispose();
      ranker.dispose();
      await cleanup();
    }
  });

  test('polling swaps versions in a directory that did not exist when it started', async () => {
    const { dir: parent, cleanup } = await tempDir();
    const dir = path.join(parent, 'later');
    const { watcher, serving } = watcherOn(dir, 10);
    const ranker = await Ranker.create(config, new Rng(3));
    try {
      watcher.start();
      const v1 = await new RankerModelStore(dir).save(ranker, ['a', 'b', 'c'], {});
      await until('polling to swap v1 in', () => serving()?.version === v1);
    } finally {
      watcher.stop();
      serving()?.ranker.dispose();
      ranker.dispose();
      await cleanup();
    }
  });
});
