import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { LogBus } from '../src/bus/index.js';
import { EventPublisher } from '../src/events/publisher.js';
import { buildApp, MAX_EVENTS_PER_CALL } from '../src/serve/app.js';
import { Rng } from '../src/util/rng.js';
import { tempDir } from './helpers.js';

const click = (n: number) => ({
  id: `c${n}`,
  ts: Date.UTC(2026, 0, 1) + n,
  type: 'click',
  requestId: 'r1',
  userId: 'u1',
  itemId: `i${n}`,
});

describe('HTTP app: ingest, health, metrics, OpenAPI', () => {
  let app: FastifyInstance;
  let bus: LogBus;
  let cleanup: () => Promise<void>;
  let ready = false;

  before(async () => {
    const tmp = await tempDir();
    cleanup = tmp.cleanup;
    bus = new LogBus({ dir: tmp.dir });
    const publisher = new EventPublisher(bus);
    await publisher.ensureTopics(2);
    app = await buildApp({ publisher, ready: () => ready, bodyLimit: 64 * 1024 });
  });
  after(async () => {
    await app.close();
    await bus.close();
    await cleanup();
  });

  test('health is always ok; readiness follows the server state', async () => {
    assert.equal((await app.inject({ url: '/healthz' })).statusCode, 200);
    assert.equal((await app.inject({ url: '/readyz' })).statusCode, 503);
    ready = true;
    const res = await app.inject({ url: '/readyz' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json(), { ready: true });
  });

  test('valid events are appended to the log, one or many per call', async () => {
    const one = await app.inject({ method: 'POST', url: '/events', payload: click(1) });
    assert.equal(one.statusCode, 202, one.body);
    const many = await app.inject({
      method: 'POST',
      url: '/events',
      payload: [click(2), click(3)],
    });
    assert.deepEqual(many.json(), { accepted: 2 });
    const info = await bus.describe('feedback');
    const total = info.partitions.reduce((n, p) => n + p.endOffset - p.startOffset, 0);
    assert.equal(total, 3);
  });

  test('bad events get a 400 that says what is wrong and where', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/events',
      payload: { ...click(4), userId: 42 },
    });
    assert.equal(res.statusCode, 400);
    assert.match(res.json().message, /userId/);
    const tooMany = await app.inject({
      method: 'POST',
      url: '/events',
      payload: Array.from({ length: MAX_EVENTS_PER_CALL + 1 }, (_, i) => click(i)),
    });
    assert.ok(tooMany.statusCode === 400 || tooMany.statusCode === 413, `${tooMany.statusCode}`);
    if (tooMany.statusCode === 400) assert.match(tooMany.json().message, /at most 1000/);
    const notJson = await app.inject({
      method: 'POST',
      url: '/events',
      headers: { 'content-type': 'application/json' },
      payload: '{"type": "click",',
    });
    assert.equal(notJson.statusCode, 400);
  });

  test('fuzzed bodies never yield a 5xx', async () => {
    const rng = new Rng(5).fork('fuzz');
    const atoms: unknown[] = [null, true, 0, -1, 1e308, 'x', '', [], {}, 'click', Date.now()];
    const fields = ['id', 'ts', 'type', 'requestId', 'userId', 'itemId', 'watchedS', 'extra'];
    const randomValue = (depth: number): unknown => {
      if (depth > 2 || rng.uniform() < 0.6) return atoms[rng.int(atoms.length)];
      if (rng.uniform() < 0.5)
        return Array.from({ length: rng.int(4) }, () => randomValue(depth + 1));
      const obj: Record<string, unknown> = {};
      for (let k = rng.int(6); k > 0; k--)
        obj[fields[rng.int(fields.length)] as string] = randomValue(depth + 1);
      return obj;
    };
    for (let i = 0; i < 300; i++) {
      const mutated: Record<string, unknown> = { ...click(i) };
      mutated[fields[rng.int(fields.length)] as string] = randomValue(0);
      const body = rng.uniform() < 0.5 ? JSON.stringify(mutated) : JSON.stringify(randomValue(0));
      const payload = rng.uniform() < 0.1 ? body.slice(0, rng.int(body.length + 1)) : body;
      const res = await app.inject({
        method: 'POST',
        url: '/events',
        headers: { 'content-type': rng.uniform() < 0.9 ? 'application/json' : 'text/plain' },
        payload,
      });
      assert.ok(res.statusCode < 500, `${res.statusCode} for ${payload}: ${res.body}`);
    }
  });

  test('metrics and the OpenAPI document are served', async () => {
    const metrics = await app.inject({ url: '/metrics' });
    assert.equal(metrics.statusCode, 200);
    assert.match(metrics.body, /recmaster_http_requests_total/);
    const spec = (await app.inject({ url: '/openapi.json' })).json();
    assert.equal(spec.openapi?.startsWith('3.'), true, 'an OpenAPI 3 document');
    assert.ok(spec.paths['/events']?.post, 'documents POST /events');
  });
});
