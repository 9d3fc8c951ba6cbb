import assert from 'node:assert/strict';
import { readdir, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Rng } from '../src/util/rng.js';
import {
  ExactIndex,
  isVectorIndexError,
  type SearchFilter,
  type SearchHit,
  UsearchIndex,
  type VectorIndex,
  type VectorIndexOptions,
  type VectorItem,
} from '../src/vectors/index.js';
import { tempDir } from './helpers.js';

const DIM = 16;

function gaussian(rng: Rng, dim: number): Float32Array {
  const v = new Float32Array(dim);
  for (let i = 0; i < dim; i += 1) v[i] = rng.normal();
  return v;
}

function unit(dim: number, axis: number, scale = 1): Float32Array {
  const v = new Float32Array(dim);
  v[axis] = scale;
  return v;
}

const CATEGORIES = ['news', 'music', 'sport', 'games', 'food', 'travel', 'tech', 'art'];

/** Random items with a category and a creation time; 'rare' holds about 1% of them. */
function randomItems(n: number, dim: number, seed: number): VectorItem[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, i) => ({
    id: `item${i}`,
    vector: gaussian(rng, dim),
    attrs: {
      category: i % 100 === 7 ? 'rare' : (CATEGORIES[rng.int(CATEGORIES.length)] as string),
      createdMs: 1_000 * rng.int(1_000),
    },
  }));
}

function ids(hits: SearchHit[]): string[] {
  return hits.map((h) => h.id);
}

function overlap(a: SearchHit[], b: SearchHit[]): number {
  const set = new Set(ids(b));
  return a.filter((h) => set.has(h.id)).length;
}

/** With a message always: node's assert.ok without one re-parses the source, which can hang under tsx. */
function near(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} vs ${expected}`);
}

async function rejects(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isVectorIndexError(err), `expected a VectorIndexError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.match(err.message, message);
    return true;
  });
}

/** Each implementation with how close its scores are to the exact inner product. */
const implementations: [string, (o: VectorIndexOptions) => Promise<VectorIndex>, number][] = [
  ['usearch', (o) => UsearchIndex.open({ ...o, quantization: 'f32' }), 1e-6],
  ['usearch-bf16', (o) => UsearchIndex.open(o), 1e-2], // the defaults
  ['exact', (o) => ExactIndex.open(o), 1e-6],
];

for (const [name, open, tolerance] of implementations) {
  describe(`${name} vector index`, () => {
    test('add, search, upsert, remove', async () => {
      const index = await open({ dim: 4 });
      await index.upsert([
        { id: 'a', vector: unit(4, 0) },
        { id: 'b', vector: unit(4, 1) },
        { id: 'c', vector: unit(4, 2, 0.25) },
      ]);
      assert.equal(await index.size(), 3);
      assert.equal(await index.has('b'), true);
      const hits = await index.search(new Float32Array([0.2, 1, 0.4, 0]), 3);
      assert.deepEqual(ids(hits), ['b', 'a', 'c']);
      near((hits[0] as SearchHit).score, 1, tolerance, 'score is the inner product');
      near((hits[2] as SearchHit).score, 0.1, tolerance, 'score of c');

      // Upsert replaces the vector: 'a' now points where 'c' did, but further.
      await index.upsert([{ id: 'a', vector: unit(4, 2) }]);
      assert.equal(await index.size(), 3);
      assert.deepEqual(ids(await index.search(unit(4, 2), 2)), ['a', 'c']);
      assert.deepEqual(ids(await index.search(unit(4, 0), 1)).length, 1);
      // Within one batch the last occurrence of an id wins.
      await index.upsert([
        { id: 'd', vector: unit(4, 0) },
        { id: 'd', vector: unit(4, 3) },
      ]);
      assert.equal(await index.size(), 4);
      assert.deepEqual(ids(await index.search(unit(4, 3), 1)), ['d']);

      assert.equal(await index.remove(['a', 'zzz', 'a']), 1);
      assert.equal(await index.size(), 3);
      assert.equal(await index.has('a'), false);
      assert.equal(ids(await index.search(unit(4, 2), 10)).includes('a'), false);
      assert.equal((await index.search(unit(4, 2), 10)).length, 3, 'k larger than the index');
      // A removed id can come back, and its freed slot serves another id.
      await index.upsert([
        { id: 'e', vector: unit(4, 1, 2) },
        { id: 'a', vector: unit(4, 0, 3) },
      ]);
      assert.equal(await index.size(), 5);
      assert.deepEqual(ids(await index.search(unit(4, 0), 1)), ['a']);
      assert.deepEqual(ids(await index.search(unit(4, 1), 1)), ['e']);
      await index.close();
    });

    test('rejects bad input with clear errors, changing nothing', async () => {
      const index = await open({ dim: DIM, metric: 'cosine' });
      const ok = { id: 'ok', vector: gaussian(new Rng(1), DIM) };
      const nan = gaussian(new Rng(2), DIM);
      nan[5] = Number.NaN;
      await rejects(
        index.upsert([ok, { id: 'short', vector: new Float32Array(DIM - 1) }]),
        'E_VECTOR_INVALID',
        /"short" has 15 values, the index has dim 16/,
      );
      await rejects(
        index.upsert([ok, { id: 'nan', vector: nan }]),
        'E_VECTOR_INVALID',
        /"nan" has a non-finite value \(NaN\) at position 5/,
      );
      await rejects(
        index.upsert([{ id: 'inf', vector: unit(DIM, 0, Number.POSITIVE_INFINITY) }]),
        'E_VECTOR_INVALID',
        /non-finite value \(Infinity\)/,
      );
      await rejects(
        index.upsert([{ id: 'zero', vector: new Float32Array(DIM) }]),
        'E_VECTOR_INVALID',
        /all zeros/,
      );
      await rejects(
        index.upsert([{ id: '', vector: ok.vector }]),
        'E_VECTOR_INVALID',
        /id must be a non-empty string/,
      );
      await rejects(
        index.upsert([{ id: 'arr', vector: [1, 2] as unknown as Float32Array }]),
        'E_VECTOR_INVALID',
        /must be a Float32Array/,
      );
      assert.equal(await index.size(), 0, 'a rejected batch changes nothing');
      await index.upsert([ok]);
      await rejects(index.search(new Float32Array(8), 1), 'E_VECTOR_INVALID', /query has 8/);
      await rejects(index.search(nan, 1), 'E_VECTOR_INVALID', /query has a non-finite/);
      await rejects(index.search(ok.vector, 0), 'E_VECTOR_INVALID', /k must be a positive/);
      await rejects(index.search(ok.vector, 1.5), 'E_VECTOR_INVALID', /k must be a positive/);
      await index.close();
      await rejects(index.search(ok.vector, 1), 'E_VECTOR_CLOSED', /closed/);
      await rejects(open({ dim: 0 }), 'E_VECTOR_INVALID', /dim must be a positive integer/);
    });

    test('cosine scores are cosine similarities', async () => {
      const index = await open({ dim: 2, metric: 'cosine' });
      await index.upsert([
        { id: 'x', vector: new Float32Array([10, 0]) },
        { id: 'xy', vector: new Float32Array([0.1, 0.1]) },
      ]);
      const hits = await index.search(new Float32Array([3, 0]), 2);
      assert.deepEqual(ids(hits), ['x', 'xy']);
      near((hits[0] as SearchHit).score, 1, tolerance, 'cosine of parallel vectors');
      near((hits[1] as SearchHit).score, Math.SQRT1_2, tolerance, 'cosine at 45 degrees');
      await index.close();
    });

    test('persists across close and reopen; refuses another dim or kind', async () => {
      const { dir, cleanup } = await tempDir();
      try {
        const items = randomItems(500, DIM, 3);
        const first = await open({ dim: DIM, dir });
        await first.upsert(items);
        await first.remove(['item0', 'item1']);
        await first.save();
        await first.upsert([{ id: 'late', vector: unit(DIM, 0, 9), attrs: { category: 'x' } }]);
        const query = gaussian(new Rng(4), DIM);
        const filter: SearchFilter = { categories: ['news', 'x'], minCreatedMs: 100_000 };
        const before = await first.search(query, 20, filter);
        await first.close(); // saves the late upsert too

        const second = await open({ dim: DIM, dir });
        assert.equal(await second.size(), 499);
        assert.equal(await second.has('item0'), false);
        assert.equal(await second.has('late'), true);
        assert.deepEqual(await second.search(query, 20, filter), before);
        assert.deepEqual(ids(await second.search(unit(DIM, 0), 1, { categories: ['x'] })), [
          'late',
        ]);
        // Freed slots are reused after a reopen without clobbering live items.
        await second.upsert([{ id: 'new', vector: unit(DIM, 1, 9) }]);
        assert.equal(await second.size(), 500);
        assert.deepEqual(ids(await second.search(unit(DIM, 1), 1)), ['new']);
        assert.deepEqual(ids(await second.search(unit(DIM, 0), 1)), ['late']);
        await second.close();

        await rejects(open({ dim: 8, dir }), 'E_VECTOR_CONFIG', /dim 16.*asked for .* dim 8/);
        await rejects(open({ dim: DIM, dir, metric: 'cosine' }), 'E_VECTOR_CONFIG', /metric/);
        const [other, kind] = name === 'exact' ? [UsearchIndex, 'exact'] : [ExactIndex, 'usearch'];
        await rejects(
          other.open({ dim: DIM, dir }),
          'E_VECTOR_CONFIG',
          new RegExp(`a ${kind} index`),
        );
        // After the failed opens the directory is free again.
        const third = await open({ dim: DIM, dir });
        assert.equal(await third.size(), 500);
        await third.close();
      } finally {
        await cleanup();
      }
    });

    test('one writer per directory; a crash mid-save leaves the last save readable', async () => {
      const { dir, cleanup } = await tempDir();
      try {
        const index = await open({ dim: DIM, dir });
        await index.upsert(randomItems(50, DIM, 5));
        await index.save();
        await assert.rejects(open({ dim: DIM, dir }), /already held/);
        await index.close();

        // What a crash half-way through the next save leaves behind.
        await writeFile(path.join(dir, 'items-999.json'), '{"slots": [1, 2');
        await writeFile(path.join(dir, 'index-999.usearch'), 'garbage');
        await writeFile(path.join(dir, 'MANIFEST.json.tmp'), '{');
        const reopened = await open({ dim: DIM, dir });
        assert.equal(await reopened.size(), 50);
        await reopened.close();
        const files = await readdir(dir);
        assert.ok(!files.some((f) => f.includes('999') || f.endsWith('.tmp')), files.join());

        // A file cut short is reported, not loaded.
        const items = files.find((f) => f.startsWith('items-')) as string;
        await truncate(path.join(dir, items), 10);
        await rejects(open({ dim: DIM, dir }), 'E_VECTOR_CORRUPT', /should hold \d+ bytes/);
      } finally {
        await cleanup();
      }
    });
  });
}

describe('usearch HNSW against exact search', () => {
  const N = 3000;
  const items = randomItems(N, 64, 11);
  const queries = Array.from({ length: 100 }, (_, i) => gaussian(new Rng(1000 + i), 64));
  let hnsw: UsearchIndex;
  let exact: ExactIndex;

  test('build both', async () => {
    // One build thread: a deterministic graph, so the recall figures do not vary run to run.
    hnsw = await UsearchIndex.open({
      dim: 64,
      quantization: 'f32',
      connectivity: 16,
      expansionSearch: 64,
      threads: 1,
    });
    exact = await ExactIndex.open({ dim: 64 });
    await hnsw.upsert(items);
    await exact.upsert(items);
    assert.equal(await hnsw.size(), N);
  });

  test('recall@10 >= 0.95 on random vectors, same scores', async () => {
    let found = 0;
    for (const q of queries) {
      const [a, e] = [await hnsw.search(q, 10), await exact.search(q, 10)];
      found += overlap(a, e);
      const exactScore = new Map(e.map((h) => [h.id, h.score]));
      for (const h of a)
        if (exactScore.has(h.id))
          near(h.score, exactScore.get(h.id) as number, 1e-4, `score of ${h.id}`);
    }
    const recall = found / (queries.length * 10);
    assert.ok(recall >= 0.95, `recall@10 ${recall}`);
  });

  test('filtered search: every hit passes, as many as exist, same as exact', async () => {
    const byId = new Map(items.map((it) => [it.id, it]));
    const filters: SearchFilter[] = [
      { categories: ['news'] },
      { categories: ['rare'] }, // ~1% of items: forces repeated over-fetch
      { categories: ['news', 'music', 'nope'], minCreatedMs: 500_000 },
      { minCreatedMs: 990_000 }, // ~1%, and the index cannot estimate it up front
      { categories: ['absent'] },
    ];
    for (const [i, q] of queries.slice(0, 20).entries()) {
      const top = await exact.search(q, 30);
      filters.push({ excludeIds: new Set(ids(top)), categories: i % 2 ? ['sport'] : undefined });
    }
    let found = 0;
    let wanted = 0;
    for (const [i, filter] of filters.entries()) {
      const q = queries[i % queries.length] as Float32Array;
      const [a, e] = [await hnsw.search(q, 20, filter), await exact.search(q, 20, filter)];
      assert.equal(a.length, e.length, `as many hits as exact for ${JSON.stringify(filter)}`);
      for (const h of a) {
        const attrs = byId.get(h.id)?.attrs ?? {};
        const why = `${h.id} ${JSON.stringify(attrs)} passes ${JSON.stringify(filter)}`;
        if (filter.categories) assert.ok(filter.categories.includes(attrs.category as string), why);
        if (filter.minCreatedMs !== undefined)
          assert.ok((attrs.createdMs as number) >= filter.minCreatedMs, why);
        if (filter.excludeIds) assert.ok(!(filter.excludeIds as Set<string>).has(h.id), why);
      }
      found += overlap(a, e);
      wanted += e.length;
    }
    assert.ok(found / wanted >= 0.95, `filtered recall ${found / wanted}`);
  });

  test('bf16 storage: same ranking quality, approximate scores, kept across reopen', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const small = await UsearchIndex.open({
        dim: 64,
        dir,
        quantization: 'bf16',
        connectivity: 12,
        threads: 1,
      });
      await small.upsert(items);
      let found = 0;
      for (const q of queries.slice(0, 50)) {
        const [a, e] = [await small.search(q, 10), await exact.search(q, 10)];
        found += overlap(a, e);
        // bf16 keeps 8 significant bits per value: scores are good to about 1%.
        const [top, truth] = [(a[0] as SearchHit).score, (e[0] as SearchHit).score];
        near(top, truth, 0.01 * Math.abs(truth) + 0.01, 'bf16 score');
      }
      assert.ok(found / 500 >= 0.95, `bf16 recall@10 ${found / 500}`);
      await small.close();
      const reopened = await UsearchIndex.open({ dim: 64, dir });
      assert.deepEqual(reopened.settings, { connectivity: 12, quantization: 'bf16' });
      assert.equal((await reopened.search(queries[0] as Float32Array, 10)).length, 10);
      await reopened.close();
    } finally {
      await cleanup();
    }
  });

  test('repeated upserts of the same ids (remove + add churn) keep the index whole', async () => {
    const rng = new Rng(21);
    const some = items.slice(0, 1000);
    for (let round = 0; round < 5; round += 1)
      await hnsw.upsert(some.map((it) => ({ ...it, vector: gaussian(rng, 64) })));
    assert.equal(await hnsw.size(), N);
    const last = { id: 'item3', vector: unit(64, 5, 50) };
    await hnsw.upsert([last]);
    assert.deepEqual(ids(await hnsw.search(unit(64, 5), 1)), ['item3']);
    await hnsw.close();
    await exact.close();
  });
});
