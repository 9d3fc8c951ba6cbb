import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LogBus } from '../src/bus/index.js';
import { isRecmasterError } from '../src/errors.js';
import { decodeEvent, encodeEvent, passesFastCheck } from '../src/events/codec.js';
import { EventPublisher } from '../src/events/publisher.js';
import { Event } from '../src/events/schemas.js';
import { type DeadLetter, EventSubscriber } from '../src/events/subscriber.js';
import { deadLetterTopic, Topics } from '../src/events/topics.js';
import { registry } from '../src/util/metrics.js';
import { tempDir } from './helpers.js';

const ts = Date.UTC(2026, 0, 1);
const click = (n: number): Event => ({
  id: `c${n}`,
  ts: ts + n,
  type: 'click',
  requestId: `r${n}`,
  userId: `u${n % 3}`,
  itemId: `i${n}`,
});
const item: Event = {
  id: 'e1',
  ts,
  type: 'item_upsert',
  itemId: 'i1',
  category: 'c1',
  tags: ['t1', 't2'],
  creator: 'a1',
  durationS: 42,
  createdAt: ts,
};

/** One valid event of each type. */
const events: Event[] = [
  item,
  {
    id: 'e2',
    ts,
    type: 'impression',
    requestId: 'r1',
    userId: 'u1',
    itemId: 'i1',
    position: 0,
    modelVersion: 'v1',
    source: 'ann',
    scores: { ctr: 0.1, watch: 12, final: 0.5 },
    features: { user_ctr_1h: 0.05, recent: ['i2', 'i3'] },
  },
  click(1),
  {
    id: 'e4',
    ts,
    type: 'watch',
    requestId: 'r1',
    userId: 'u1',
    itemId: 'i1',
    watchedS: 30,
    durationS: 42,
  },
  {
    id: 'e5',
    ts,
    type: 'sample',
    impressionId: 'e2',
    impressionTs: ts,
    requestId: 'r1',
    userId: 'u1',
    itemId: 'i1',
    position: 0,
    modelVersion: 'v1',
    clicked: true,
    watchedS: 30,
    durationS: 42,
    features: {},
  },
  {
    id: 'e6',
    ts,
    type: 'model_published',
    model: 'ranker',
    version: 'v2',
    reason: 'trained on 100 samples',
  },
  { id: 'e7', ts, type: 'marker', name: 'drift', detail: { share: 0.3 } },
];

describe('event model', () => {
  test('every event type round-trips through the codec', () => {
    for (const e of events) {
      const decoded = decodeEvent(encodeEvent(e));
      assert.ok(decoded.ok, `${e.type} decodes`);
      assert.deepEqual(decoded.event, e);
    }
  });

  test('the fast check (ajv) and zod give the same verdict on valid and mutated events', () => {
    const values: unknown[] = [
      undefined,
      null,
      true,
      0,
      -1,
      1.5,
      8.64e15,
      8.64e15 + 2,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      '',
      'x',
      'x'.repeat(129),
      '😀'.repeat(128),
      '😀'.repeat(129),
      [],
      ['a'],
      [1, 'b'],
      Array(300).fill('t'),
      {},
      { a: 1 },
      { a: 'x' },
      { a: [1, 'x'] },
      { ['k'.repeat(200)]: 1 },
    ];
    let compared = 0;
    for (const e of events) {
      assert.ok(passesFastCheck(e), `${e.type}: a valid event passes the fast check`);
      for (const key of [...Object.keys(e), 'surprise']) {
        const { [key]: _, ...without } = e as Record<string, unknown>;
        const variants: Record<string, unknown>[] = [
          without,
          ...values.map((value) => ({ ...e, [key]: value })),
        ];
        for (const v of variants) {
          const zodSays = Event.safeParse(v).success;
          assert.equal(passesFastCheck(v), zodSays, `${e.type}.${key} = ${String(v[key])}`);
          compared++;
        }
      }
    }
    for (const v of [null, 'click', 3, [], { type: 'click' }, { type: 'teleport' }])
      assert.equal(passesFastCheck(v), Event.safeParse(v).success);
    assert.ok(compared > 1000, `${compared} mutations compared`);
  });

  test('invalid events are described, not thrown', () => {
    const notJson = decodeEvent(Buffer.from('{oops'));
    assert.equal(notJson.ok, false);
    assert.equal(!notJson.ok && notJson.kind, 'json');
    const missing = decodeEvent(
      Buffer.from(JSON.stringify({ ...item, durationS: -1, category: undefined })),
    );
    assert.equal(missing.ok, false);
    assert.match(!missing.ok ? missing.reason : '', /durationS/);
    assert.match(!missing.ok ? missing.reason : '', /category/);
    const extra = decodeEvent(Buffer.from(JSON.stringify({ ...click(1), surprise: 1 })));
    assert.equal(extra.ok, false, 'unknown fields are refused (strict objects)');
    const unknownType = decodeEvent(Buffer.from(JSON.stringify({ id: 'x', ts, type: 'teleport' })));
    assert.equal(unknownType.ok, false);
  });

  test('the publisher refuses invalid events with an error', async () => {
    const { dir, cleanup } = await tempDir();
    const bus = new LogBus({ dir });
    const publisher = new EventPublisher(bus);
    const bad = { ...click(1), userId: '' } as Event;
    await assert.rejects(publisher.publish([bad]), (e) => isRecmasterError(e, 'E_EVENT_INVALID'));
    await bus.close();
    await cleanup();
  });

  test('invalid records go to the dead-letter topic with the reason; the consumer carries on', async () => {
    const { dir, cleanup } = await tempDir();
    const bus = new LogBus({ dir, defaultPartitions: 2 });
    const publisher = new EventPublisher(bus);
    await publisher.ensureTopics();
    await publisher.publish([click(1), click(2)]);
    await bus.append(Topics.feedback, [
      { key: 'u1', value: Buffer.from('not json at all') },
      { key: 'u1', value: Buffer.from(JSON.stringify({ ...click(3), itemId: 7 })) },
      { key: 'u1', value: Buffer.from([0xff, 0xfe, 0x00]) },
    ]);
    await publisher.publish([click(4)]);

    const before = await deadLetterCount();
    const sub = await EventSubscriber.create(bus, { group: 'g', topics: [Topics.feedback] });
    const received = [];
    for (;;) {
      const batch = await sub.poll({ maxRecords: 2 });
      if (batch.length === 0 && sub.deadLetters + received.length >= 6) break;
      if (batch.length === 0) continue;
      received.push(...batch.map((r) => r.event.id));
    }
    await sub.commit();
    assert.deepEqual(received.sort(), ['c1', 'c2', 'c4']);
    assert.equal(sub.deadLetters, 3);
    assert.equal((await deadLetterCount()) - before, 3);

    const dead: DeadLetter[] = [];
    for (let p = 0; p < 2; p += 1) {
      for (const r of await bus.read(deadLetterTopic('g'), p, 0))
        dead.push(JSON.parse(r.value.toString()));
    }
    assert.equal(dead.length, 3);
    const kinds = dead.map((d) => d.kind).sort();
    assert.deepEqual(kinds, ['json', 'json', 'schema']);
    const schemaDead = dead.find((d) => d.kind === 'schema');
    assert.match(schemaDead?.reason ?? '', /itemId/);
    assert.equal(schemaDead?.sourceTopic, Topics.feedback);
    assert.ok(
      dead.some((d) => d.payloadEncoding === 'base64'),
      'binary garbage is kept as base64',
    );
    await bus.close();
    await cleanup();
  });
});

async function deadLetterCount(): Promise<number> {
  const metric = await registry.getSingleMetric('recmaster_dead_letters_total')?.get();
  return (metric?.values ?? []).reduce((n, v) => n + v.value, 0);
}
