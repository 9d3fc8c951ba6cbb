import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Event } from '../src/events/schemas.js';
import { ArraySink, HttpEventSink, HttpRecommender, Simulator } from '../src/sim/index.js';

async function body(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

describe('HTTP recommender and sink', () => {
  let server: Server;
  let base = '';
  let served = 0;
  const requests: { userId: string; count: number; context: { ts: number } }[] = [];
  const received: unknown[][] = [];

  before(async () => {
    server = createServer((req, res) => {
      const reply = (status: number, json: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(json));
      };
      if (req.url === '/slow/recommend') return; // never answers
      body(req).then((b) => {
        if (req.url === '/recommend') {
          requests.push(b as (typeof requests)[number]);
          const items = [0, 1, 2, 3, 4].map((i) => ({ itemId: `i${i}`, position: i, score: 0.5 }));
          items.push({ itemId: 'not-an-item', position: 5, score: 0.1 });
          reply(200, { requestId: `srv-${served++}`, modelVersion: 'mmoe-7', items });
        } else if (req.url === '/events') {
          received.push(b as unknown[]);
          reply(202, { accepted: (b as unknown[]).length });
        } else if (req.url === '/bad/recommend') {
          reply(200, { requestId: 'x', items: [] });
        } else if (req.url === '/bad/events') {
          reply(503, { error: 'bus is full' });
        } else {
          reply(404, { error: 'no route' });
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it('in server mode the simulator emits only feedback and items, with the server requestIds', async () => {
    const sim = new Simulator(
      { users: 20, items: 50, requestsPerSecond: 20, newItemsPerMinute: 60 },
      { recommender: new HttpRecommender({ baseUrl: base }) },
    );
    const local = new ArraySink();
    const stats = await sim.run({ sink: local, durationS: 10 });
    assert.ok(stats.requests > 150);
    assert.equal(requests.length, stats.requests);
    assert.equal(requests[0]?.count, 10);
    assert.ok(Number.isInteger(requests[0]?.context.ts));
    assert.equal(stats.unknownItems, stats.requests, 'the unknown item is skipped');
    assert.equal(stats.impressions, 0);
    assert.ok(stats.clicks > 0);
    const types = new Set(local.events.map((e) => e.type));
    assert.deepEqual([...types].sort(), ['click', 'item_upsert', 'watch']);
    for (const e of local.events) {
      Event.parse(e);
      if (e.type === 'click') assert.match(e.requestId, /^srv-\d+$/);
    }

    // The same kind of stream through HttpEventSink arrives intact.
    await new HttpEventSink({ baseUrl: base }).emit(local.events.slice(0, 100));
    assert.deepEqual(received.at(-1), local.events.slice(0, 100));
  });

  it('reports server errors, bad responses and timeouts clearly', async () => {
    await assert.rejects(
      new HttpEventSink({ baseUrl: `${base}/bad` }).emit([
        { id: 'e1', ts: 1, type: 'marker', name: 'x', detail: {} },
      ]),
      /HTTP 503: bus is full/,
    );
    await assert.rejects(
      new HttpRecommender({ baseUrl: `${base}/bad` }).recommend({ userId: 'u1', count: 3, ts: 1 }),
      /bad \/recommend response[\s\S]*modelVersion/,
    );
    await assert.rejects(
      new HttpRecommender({ baseUrl: `${base}/slow`, timeoutMs: 100 }).recommend({
        userId: 'u1',
        count: 3,
        ts: 1,
      }),
      /timed out after 100 ms/,
    );
  });
});
