// Benchmark of the embedded log: appends simulated events and compares with a
// plain sequential write of the same bytes, in the same batches, with the same
// durability, in the same run. Prints one JSON object as its last line.
//
//   npm run bench:log [-- --events 300000 --batch 1000 --reps 3]
import { mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { LogBus } from '../src/bus/index.js';
import type { Durability } from '../src/bus/log/partition.js';
import { encodeEvent } from '../src/events/codec.js';
import { EventPublisher } from '../src/events/publisher.js';
import type { Event } from '../src/events/schemas.js';
import { keyOf } from '../src/events/topics.js';
import { ArraySink, Simulator } from '../src/sim/index.js';
import { machine, median, tempDir } from './common.js';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '300000' },
    batch: { type: 'string', default: '1000' },
    reps: { type: 'string', default: '3' },
  },
});
const eventCount = Number(args.events);
const batchSize = Number(args.batch);
const reps = Number(args.reps);

const say = (msg: string) => process.stderr.write(`${msg}\n`);

async function simulatedEvents(n: number): Promise<Event[]> {
  const sink = new ArraySink();
  await new Simulator({ seed: 7 }).run({ sink, maxEvents: n });
  return sink.events;
}

interface Batch {
  records: { key: string; value: Buffer }[];
  bytes: Buffer;
}

function toBatches(events: Event[]): Batch[] {
  const out: Batch[] = [];
  for (let i = 0; i < events.length; i += batchSize) {
    const records = events
      .slice(i, i + batchSize)
      .map((e) => ({ key: keyOf(e), value: encodeEvent(e) }));
    out.push({ records, bytes: Buffer.concat(records.map((r) => r.value)) });
  }
  return out;
}

/** Seconds to append every batch through the log (one partition: one file, like the raw write). */
async function timeLog(dir: string, batches: Batch[], durability: Durability): Promise<number> {
  await rm(dir, { recursive: true, force: true });
  const bus = new LogBus({ dir, durability, retentionBytes: null, retentionMs: null });
  await bus.ensureTopic('bench', { partitions: 1 });
  await bus.append('bench', [{ key: 'warm', value: Buffer.from('{}') }]);
  const t0 = performance.now();
  for (const b of batches) await bus.append('bench', b.records);
  const seconds = (performance.now() - t0) / 1000;
  await bus.close();
  return seconds;
}

/** Seconds to write the same payload bytes to a plain file, batch by batch. */
async function timeRaw(dir: string, batches: Batch[], durability: Durability): Promise<number> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const file = await open(path.join(dir, 'raw.bin'), 'w');
  const t0 = performance.now();
  let position = 0;
  for (const b of batches) {
    await file.write(b.bytes, 0, b.bytes.length, position);
    position += b.bytes.length;
    if (durability === 'fsync') await file.datasync();
  }
  const seconds = (performance.now() - t0) / 1000;
  await file.close();
  return seconds;
}

/** The whole typed path: schema validation + JSON encoding + routing + append. */
async function timePublish(dir: string, events: Event[], durability: Durability): Promise<number> {
  await rm(dir, { recursive: true, force: true });
  const bus = new LogBus({ dir, durability, retentionBytes: null, retentionMs: null });
  const publisher = new EventPublisher(bus);
  await publisher.ensureTopics(1);
  const t0 = performance.now();
  for (let i = 0; i < events.length; i += batchSize)
    await publisher.publish(events.slice(i, i + batchSize));
  const seconds = (performance.now() - t0) / 1000;
  await bus.close();
  return seconds;
}

const { dir, cleanup } = await tempDir('recmaster-bench-log-');
try {
  say(`generating ${eventCount} simulated events...`);
  const events = await simulatedEvents(eventCount);
  const batches = toBatches(events);
  const payloadBytes = batches.reduce((n, b) => n + b.bytes.length, 0);
  const results: Record<string, number> = {};
  for (const durability of ['fsync', 'os'] as const) {
    const log: number[] = [];
    const raw: number[] = [];
    const publish: number[] = [];
    for (let r = 0; r < reps; r += 1) {
      // Interleaved, so drift in machine load hits both sides alike.
      log.push(await timeLog(path.join(dir, 'log'), batches, durability));
      raw.push(await timeRaw(path.join(dir, 'raw'), batches, durability));
      publish.push(await timePublish(path.join(dir, 'pub'), events, durability));
      say(
        `${durability} rep ${r + 1}/${reps}: log ${log.at(-1)?.toFixed(3)} s, raw ${raw.at(-1)?.toFixed(3)} s, publish ${publish.at(-1)?.toFixed(3)} s`,
      );
    }
    const prefix = durability === 'fsync' ? '' : 'os_';
    const tLog = median(log);
    const tRaw = median(raw);
    results[`${prefix}events_per_s`] = Math.round(events.length / tLog);
    results[`${prefix}bytes_per_s`] = Math.round(payloadBytes / tLog);
    results[`${prefix}raw_bytes_per_s`] = Math.round(payloadBytes / tRaw);
    results[`${prefix}ratio`] = Number((tRaw / tLog).toFixed(3));
    results[`${prefix}publish_events_per_s`] = Math.round(events.length / median(publish));
  }
  console.log(
    JSON.stringify({
      bench: 'log',
      durability:
        'fsync: fdatasync before each batch is acknowledged (survives power loss); os_*: acknowledged once written to the OS (survives kill -9, not power loss)',
      events: events.length,
      batch_events: batchSize,
      payload_bytes: payloadBytes,
      mean_event_bytes: Math.round(payloadBytes / events.length),
      reps,
      ...results,
      machine: machine(),
    }),
  );
} finally {
  await cleanup();
}
