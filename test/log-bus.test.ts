import assert from 'node:assert/strict';
import { appendFile, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { LogBus } from '../src/bus/index.js';
import { isRecmasterError } from '../src/errors.js';
import { tempDir } from './helpers.js';

const text = (s: string) => Buffer.from(s);

async function readAll(bus: LogBus, topic: string, partition: number, from = 0): Promise<string[]> {
  const out: string[] = [];
  let offset = from;
  for (;;) {
    const batch = await bus.read(topic, partition, offset, 500);
    if (batch.length === 0) return out;
    for (const r of batch) {
      assert.equal(r.offset, offset, 'offsets are consecutive');
      offset += 1;
      out.push(r.value.toString());
    }
  }
}

async function segmentFiles(dir: string, topic: string, partition: number): Promise<string[]> {
  const names = await readdir(path.join(dir, topic, String(partition)));
  return names.filter((n) => n.endsWith('.log')).sort();
}

describe('embedded log bus', () => {
  test('appends and reads back in order per key, across partitions', async () => {
    const { dir, cleanup } = await tempDir();
    const bus = new LogBus({ dir, defaultPartitions: 3 });
    const records = Array.from({ length: 300 }, (_, i) => ({
      key: `user${i % 7}`,
      value: text(`v${i}`),
    }));
    const results = await bus.append('t', records);
    assert.equal(results.length, 300);
    const seen = new Map<string, number[]>();
    for (let p = 0; p < 3; p += 1) {
      for (const v of await readAll(bus, 't', p)) {
        const i = Number(v.slice(1));
        const key = `user${i % 7}`;
        seen.set(key, [...(seen.get(key) ?? []), i]);
      }
    }
    let total = 0;
    for (const list of seen.values()) {
      total += list.length;
      assert.deepEqual(
        list,
        [...list].sort((a, b) => a - b),
        'per-key order is kept',
      );
    }
    assert.equal(total, 300);
    // Same key, same partition.
    const partitionsOfKey0 = new Set(results.filter((_, i) => i % 7 === 0).map((r) => r.partition));
    assert.equal(partitionsOfKey0.size, 1);
    await bus.close();
    // A second process-equivalent opening the directory sees everything.
    const again = new LogBus({ dir });
    const info = await again.describe('t');
    assert.equal(
      info.partitions.reduce((n, p) => n + p.endOffset, 0),
      300,
    );
    await again.close();
    await cleanup();
  });

  test('consumer groups resume from the committed offset, uncommitted records come again', async () => {
    const { dir, cleanup } = await tempDir();
    const bus = new LogBus({ dir, defaultPartitions: 2 });
    await bus.append(
      't',
      Array.from({ length: 100 }, (_, i) => ({ key: `k${i}`, value: text(String(i)) })),
    );
    const c1 = await bus.consumer({ group: 'g', topics: ['t'] });
    const first = await c1.poll({ maxRecords: 40 });
    assert.equal(first.length, 40);
    await c1.commit();
    const second = await c1.poll({ maxRecords: 30 });
    assert.equal(second.length, 30);
    await c1.close(); // without committing the second batch

    const c2 = await bus.consumer({ group: 'g', topics: ['t'] });
    const rest: string[] = [];
    for (;;) {
      const batch = await c2.poll({ maxRecords: 1000 });
      if (batch.length === 0) break;
      rest.push(...batch.map((r) => r.value.toString()));
    }
    assert.equal(rest.length, 60, 'everything after the commit is delivered again');
    const firstValues = new Set(first.map((r) => r.value.toString()));
    assert.ok(
      rest.every((v) => !firstValues.has(v)),
      'nothing committed comes back',
    );
    await assert.rejects(bus.consumer({ group: 'g', topics: ['t'] }), (e) =>
      isRecmasterError(e, 'E_LOG_LOCKED'),
    );
    await c2.close();
    // Another group starts on its own, from the beginning.
    const other = await bus.consumer({ group: 'other', topics: ['t'] });
    assert.equal((await other.poll({ maxRecords: 1000 })).length, 100);
    await bus.close();
    await cleanup();
  });

  test('a waiting poll wakes up when a record is appended', async () => {
    const { dir, cleanup } = await tempDir();
    const bus = new LogBus({ dir, defaultPartitions: 1 });
    const consumer = await bus.consumer({ group: 'g', topics: ['t'], reset: 'latest' });
    const started = Date.now();
    const polled = consumer.poll({ timeoutMs: 5000 });
    setTimeout(() => void bus.append('t', [{ key: 'a', value: text('hello') }]), 30);
    const got = await polled;
    assert.equal(got[0]?.value.toString(), 'hello');
    assert.ok(Date.now() - started < 4000);
    await bus.close();
    await cleanup();
  });

  test('rolls segments and deletes old ones by size; a lagging group skips what is gone', async () => {
    const { dir, cleanup } = await tempDir();
    const bus = new LogBus({
      dir,
      defaultPartitions: 1,
      segmentBytes: 4096,
      retentionBytes: 16 * 1024,
    });
    const lagging = await bus.consumer({ group: 'lag', topics: ['t'] });
    await lagging.commit(); // committed at 0
    for (let i = 0; i < 200; i += 1) {
      await bus.append('t', [{ key: 'k', value: text(`${i}:${'y'.repeat(200)}`) }]);
    }
    const files = await segmentFiles(dir, 't', 0);
    const info = await bus.describe('t');
    const p0 = info.partitions[0];
    assert.ok(p0);
    assert.ok(files.length > 1 && files.length <= 6, `segments kept: ${files.length}`);
    assert.ok(p0.bytes <= 16 * 1024 + 4096, `bytes kept ${p0.bytes}`);
    assert.ok(p0.startOffset > 0);
    assert.equal(p0.endOffset, 200);
    await assert.rejects(bus.read('t', 0, 0), (e) => isRecmasterError(e, 'E_OFFSET_OUT_OF_RANGE'));
    const got = await lagging.poll({ maxRecords: 1000 });
    assert.equal(got[0]?.offset, p0.startOffset);
    assert.equal(got.at(-1)?.offset, 199);
    await bus.close();
    await cleanup();
  });

  test('deletes segments by age', async () => {
    const { dir, cleanup } = await tempDir();
    const bus = new LogBus({
      dir,
      defaultPartitions: 1,
      segmentBytes: 1024,
      retentionBytes: null,
      retentionMs: 50,
    });
    for (let i = 0; i < 20; i += 1)
      await bus.append('t', [{ key: 'k', value: text('z'.repeat(300)) }]);
    const before = (await bus.describe('t')).partitions[0]?.startOffset ?? 0;
    await new Promise((r) => setTimeout(r, 80));
    for (let i = 0; i < 5; i += 1)
      await bus.append('t', [{ key: 'k', value: text('z'.repeat(300)) }]);
    const after = (await bus.describe('t')).partitions[0]?.startOffset ?? 0;
    assert.ok(after > before, `old segments deleted (start ${before} -> ${after})`);
    await bus.close();
    await cleanup();
  });

  test('a torn tail is detected and cut off; appends continue after the last whole record', async () => {
    const { dir, cleanup } = await tempDir();
    let bus = new LogBus({ dir, defaultPartitions: 1 });
    await bus.append(
      't',
      Array.from({ length: 10 }, (_, i) => ({ key: 'k', value: text(`r${i}`) })),
    );
    await bus.close();
    const [file] = await segmentFiles(dir, 't', 0);
    assert.ok(file);
    const segPath = path.join(dir, 't', '0', file);
    const whole = await readFile(segPath);
    // Half of a copy of the last frame: a write cut short by a crash.
    await appendFile(segPath, whole.subarray(whole.length - 12, whole.length - 3));

    // A reader never sees the half record.
    const reader = new LogBus({ dir });
    assert.deepEqual(
      await readAll(reader, 't', 0),
      Array.from({ length: 10 }, (_, i) => `r${i}`),
    );
    await reader.close();

    const reports: number[] = [];
    bus = new LogBus({ dir, onRecovery: (_t, _p, r) => reports.push(r.truncatedBytes) });
    const [res] = await bus.append('t', [{ key: 'k', value: text('after') }]);
    assert.deepEqual(reports, [9]);
    assert.equal(res?.offset, 10);
    assert.deepEqual((await readAll(bus, 't', 0)).slice(-2), ['r9', 'after']);
    await bus.close();
    // Garbage (not a frame at all) after the records is cut too.
    await appendFile(segPath, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    bus = new LogBus({ dir });
    await bus.append('t', [{ key: 'k', value: text('again') }]);
    assert.equal((await readAll(bus, 't', 0)).length, 12);
    await bus.close();
    await cleanup();
  });

  test('damage before the tail is reported, never read as data', async () => {
    const { dir, cleanup } = await tempDir();
    const bus = new LogBus({ dir, defaultPartitions: 1, segmentBytes: 512 });
    for (let i = 0; i < 30; i += 1)
      await bus.append('t', [{ key: 'k', value: text(`value-${i}-${'q'.repeat(50)}`) }]);
    await bus.close();
    const [first] = await segmentFiles(dir, 't', 0);
    assert.ok(first);
    const segPath = path.join(dir, 't', '0', first);
    const bytes = await readFile(segPath);
    bytes[30] = (bytes[30] ?? 0) ^ 0xff; // flip bits inside the first record's body
    await writeFile(segPath, bytes);
    const reader = new LogBus({ dir });
    await assert.rejects(reader.read('t', 0, 0), (e) => isRecmasterError(e, 'E_LOG_CORRUPT'));
    await reader.close();
    await cleanup();
  });

  test('a poll takes an equal share from each partition, then fills up from the busy ones', async () => {
    const { dir, cleanup } = await tempDir();
    const bus = new LogBus({ dir, defaultPartitions: 4 });
    const placed = await bus.append(
      't',
      Array.from({ length: 200 }, (_, i) => ({ key: `k${i}`, value: text(`v${i}`) })),
    );
    const perPartition = [0, 1, 2, 3].map((p) => placed.filter((r) => r.partition === p).length);
    assert.ok(
      perPartition.every((n) => n >= 3),
      `records in every partition: ${perPartition}`,
    );
    const consumer = await bus.consumer({ group: 'g', topics: ['t'] });
    const first = await consumer.poll({ maxRecords: 8 });
    assert.deepEqual(
      [0, 1, 2, 3].map((p) => first.filter((r) => r.partition === p).length),
      [2, 2, 2, 2],
    );
    const second = await consumer.poll({ maxRecords: 3 });
    assert.ok(second.length > 0 && second.length <= 3, 'never more than asked');
    let rest = 0;
    for (let got = await consumer.poll({ maxRecords: 1000 }); got.length > 0; ) {
      rest += got.length;
      got = await consumer.poll({ maxRecords: 1000 });
    }
    const positions = consumer.positions().t ?? {};
    assert.deepEqual(
      [0, 1, 2, 3].map((p) => positions[p]),
      perPartition,
      'every record consumed once',
    );
    assert.equal(first.length + second.length + rest, 200, 'and only once');
    // One busy partition, the others idle: the poll fills up from it.
    await bus.append(
      't',
      Array.from({ length: 120 }, () => ({ key: 'k0', value: text('busy') })),
    );
    assert.equal((await consumer.poll({ maxRecords: 100 })).length, 100);
    await consumer.close();
    await bus.close();
    await cleanup();
  });

  test('one writer per topic; readers follow another writer', async () => {
    const { dir, cleanup } = await tempDir();
    const writer = new LogBus({ dir, defaultPartitions: 1 });
    await writer.append('t', [{ key: 'k', value: text('one') }]);
    const second = new LogBus({ dir });
    await assert.rejects(second.append('t', [{ key: 'k', value: text('x') }]), (e) =>
      isRecmasterError(e, 'E_LOG_LOCKED'),
    );
    const follower = await second.consumer({ group: 'f', topics: ['t'] });
    assert.deepEqual(
      (await follower.poll()).map((r) => r.value.toString()),
      ['one'],
    );
    await writer.append('t', [{ key: 'k', value: text('two') }]);
    const next = await follower.poll({ timeoutMs: 2000 });
    assert.deepEqual(
      next.map((r) => r.value.toString()),
      ['two'],
    );
    await second.close();
    await writer.close();
    await cleanup();
  });

  test("a waiting follower wakes on another writer's append, not at its next re-check", async () => {
    // The re-check is pushed out of reach: only the watch of the partition's directory can
    // end this poll before its 30 s timeout.
    const { dir, cleanup } = await tempDir();
    const writer = new LogBus({ dir, defaultPartitions: 1 });
    await writer.append('t', [{ key: 'k', value: text('one') }]);
    const reader = new LogBus({ dir, recheckMs: 60_000 });
    const follower = await reader.consumer({ group: 'f', topics: ['t'] });
    assert.deepEqual(
      (await follower.poll()).map((r) => r.value.toString()),
      ['one'],
    );
    const started = Date.now();
    const polled = follower.poll({ timeoutMs: 30_000 });
    setTimeout(() => void writer.append('t', [{ key: 'k', value: text('two') }]), 50);
    assert.deepEqual(
      (await polled).map((r) => r.value.toString()),
      ['two'],
    );
    assert.ok(Date.now() - started < 10_000, `woke after ${Date.now() - started} ms`);
    assert.throws(
      () => new LogBus({ dir, recheckMs: 0 }),
      (e) => isRecmasterError(e, 'E_CONFIG'),
    );
    await reader.close();
    await writer.close();
    await cleanup();
  });

  test("records read at a follower's tail stay intact while later reads go on", async () => {
    // Tail reads go through reused buffers; what a poll returned must never be overwritten.
    const { dir, cleanup } = await tempDir();
    const writer = new LogBus({ dir, defaultPartitions: 2 });
    await writer.append('t', [{ key: 'k', value: text('first') }]);
    const reader = new LogBus({ dir });
    const follower = await reader.consumer({ group: 'f', topics: ['t'] });
    const kept: { value: Buffer; want: string }[] = [];
    const expected = new Set(['first']);
    for (let round = 0; round < 60; round += 1) {
      const batch = Array.from({ length: 1 + (round % 5) }, (_, i) => {
        const body = `r${round}-${i}-${'x'.repeat((round * 7 + i) % 50)}`;
        expected.add(body);
        return { key: `k${i}`, value: text(body) };
      });
      await writer.append('t', batch);
      for (const r of await follower.poll({ timeoutMs: 1000, maxRecords: 1000 }))
        kept.push({ value: r.value, want: r.value.toString() });
    }
    for (;;) {
      const rest = await follower.poll({ maxRecords: 1000 });
      if (rest.length === 0) break;
      for (const r of rest) kept.push({ value: r.value, want: r.value.toString() });
    }
    assert.equal(kept.length, expected.size);
    for (const { value, want } of kept) {
      assert.equal(value.toString(), want, 'a value changed after it was returned');
      assert.ok(expected.has(want));
    }
    await reader.close();
    await writer.close();
    await cleanup();
  });

  test('a follower at the tail moves on to the segments the writer rolls to', async () => {
    // At the tail a follower lists the directory only to look for a newer segment.
    const { dir, cleanup } = await tempDir();
    const writer = new LogBus({ dir, defaultPartitions: 1, segmentBytes: 512 });
    await writer.append('t', [{ key: 'k', value: text('r0') }]);
    const reader = new LogBus({ dir });
    const follower = await reader.consumer({ group: 'f', topics: ['t'] });
    const seen = (await follower.poll()).map((r) => r.value.toString());
    assert.deepEqual(await follower.poll(), [], 'at the tail');
    for (let i = 1; i <= 60; i += 1)
      await writer.append('t', [{ key: 'k', value: text(`r${i}-${'x'.repeat(40)}`) }]);
    assert.ok((await segmentFiles(dir, 't', 0)).length >= 4, 'the writer rolled');
    for (let polls = 0; seen.length < 61 && polls < 100; polls += 1)
      for (const r of await follower.poll({ timeoutMs: 100 })) seen.push(r.value.toString());
    assert.deepEqual(
      seen,
      Array.from({ length: 61 }, (_, i) => (i === 0 ? 'r0' : `r${i}-${'x'.repeat(40)}`)),
    );
    await reader.close();
    await writer.close();
    await cleanup();
  });

  test('rejects bad names and oversized records with clear errors', async () => {
    const { dir, cleanup } = await tempDir();
    const bus = new LogBus({ dir });
    await assert.rejects(bus.append('../evil', []), (e) => isRecmasterError(e, 'E_CONFIG'));
    await assert.rejects(bus.read('missing', 0, 0), (e) => isRecmasterError(e, 'E_TOPIC_UNKNOWN'));
    await assert.rejects(
      bus.append('t', [{ key: 'k', value: Buffer.alloc(17 * 1024 * 1024) }]),
      (e) => isRecmasterError(e, 'E_RECORD_TOO_LARGE'),
    );
    await bus.close();
    await cleanup();
  });
});
