// The live dashboard (issue 7): its routes through inject(), and the page itself in headless
// Chromium (Debian's package, driven by playwright-core through its executable path; no browser
// is ever downloaded). Without /usr/bin/chromium the browser part is skipped, except under CI,
// where it must run.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { type Browser, chromium, type Page } from 'playwright-core';
import { LogBus } from '../src/bus/index.js';
import type {
  DashboardPoint,
  DashboardSource,
  DashboardState,
  ExplainedItem,
} from '../src/dashboard/contract.js';
import { registerDashboard } from '../src/dashboard/routes.js';
import { EventPublisher } from '../src/events/publisher.js';
import { buildApp } from '../src/serve/app.js';
import { tempDir } from './helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const IN_CI = Boolean(process.env.CI) && process.env.CI !== 'false' && process.env.CI !== '0';
const PREFILLED = 40;
const CHART_IDS = ['rps', 'latency', 'freshness', 'auc', 'engagement', 'cold'];

/**
 * Test fixture: a DashboardSource over an in-memory array. It starts with PREFILLED points one
 * second apart (a drift marker and a second model version among them) and, once started, gains a
 * point every 300 ms.
 */
class GrowingSource implements DashboardSource {
  readonly startedAt = Date.now() - PREFILLED * 1000;
  readonly points: DashboardPoint[] = [];
  readonly versions: DashboardState['versions'] = [];
  readonly markers: DashboardState['markers'] = [];
  requests = 0;
  samples = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor() {
    for (let i = PREFILLED; i >= 1; i--) this.add(Date.now() - i * 1000);
  }

  private add(t: number): void {
    const i = this.points.length;
    const wave = Math.sin(i / 4);
    const rps = 200 + 40 * wave;
    this.requests += Math.round(rps);
    this.samples += Math.round(rps * 0.8);
    if (i === 2) this.versions.push({ t, version: 'v000001', reason: 'initial' });
    if (i === 15) this.markers.push({ t, name: 'drift', detail: 'interests shifted' });
    if (i === 25) this.versions.push({ t, version: 'v000002', reason: 'online update' });
    this.points.push({
      t,
      rps,
      p50Ms: 4 + wave,
      p99Ms: 14 + 3 * wave,
      freshnessP99Ms: i < 3 ? null : 40 + 10 * wave,
      aucOnline: i < 5 ? null : i < 15 ? 0.74 : 0.7 + Math.min(0.05, (i - 15) * 0.004),
      aucFrozen: i < 5 ? null : i < 15 ? 0.74 : 0.66,
      ctr: 0.08 + 0.01 * wave,
      watchS: 12 + 2 * Math.cos(i / 5),
      coldShare: 0.1 + 0.05 * wave,
    });
    if (this.points.length > 600) this.points.shift();
  }

  start(): void {
    this.timer = setInterval(() => this.add(Date.now()), 300);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  state(): DashboardState {
    return {
      startedAt: this.startedAt,
      points: [...this.points],
      versions: [...this.versions],
      markers: [...this.markers],
      totals: {
        requests: this.requests,
        errors: 3,
        modelVersion: this.versions.at(-1)?.version ?? 'none',
        samples: this.samples,
      },
    };
  }

  async explain(userId: string) {
    if (userId !== 'u1' && userId !== 'u 2/é') return null;
    const items: ExplainedItem[] = Array.from({ length: 10 }, (_, i) => ({
      itemId: `i${100 + i}`,
      position: i,
      source: i % 3 === 0 ? 'popular' : 'gnn',
      cold: i === 4,
      scores: { click: (30 - 2 * i) / 100, watchSeconds: 20 - i, final: (20 - i) / 20 },
      ...(i % 2 === 0 ? { category: 'sports' } : {}),
    }));
    return { userId, modelVersion: 'v000002', items };
  }
}

describe('dashboard routes', () => {
  let app: FastifyInstance;
  let bus: LogBus;
  let cleanup: () => Promise<void>;
  const source = new GrowingSource();

  before(async () => {
    // On the real app, to check the routes live next to its error handler and OpenAPI document.
    const tmp = await tempDir();
    cleanup = tmp.cleanup;
    bus = new LogBus({ dir: tmp.dir });
    app = await buildApp({ publisher: new EventPublisher(bus) });
    registerDashboard(app, source);
    await app.ready();
  });
  after(async () => {
    await app.close();
    await bus.close();
    await cleanup();
  });

  test('/ redirects to the page, which loads uPlot and the dashboard from local assets', async () => {
    const root = await app.inject({ url: '/' });
    assert.equal(root.statusCode, 302);
    assert.equal(root.headers.location, '/dashboard');
    const page = await app.inject({ url: '/dashboard' });
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    assert.match(page.body, /\/dashboard\/assets\/uPlot\.iife\.min\.js/);
    for (const [name, type] of [
      ['uPlot.iife.min.js', /^text\/javascript/],
      ['uPlot.min.css', /^text\/css/],
      ['dashboard.js', /^text\/javascript/],
      ['dashboard.css', /^text\/css/],
    ] as const) {
      const res = await app.inject({ url: `/dashboard/assets/${name}` });
      assert.equal(res.statusCode, 200, name);
      assert.match(String(res.headers['content-type']), type, name);
      assert.ok(res.body.length > 100, `${name} has content`);
    }
    assert.equal(
      (await app.inject({ url: '/dashboard/assets/..%2Fpackage.json' })).statusCode,
      404,
    );
    assert.equal((await app.inject({ url: '/dashboard/assets/routes.ts' })).statusCode, 404);
  });

  test('/api/dashboard returns the state; ?since= only the newer points', async () => {
    const all = (await app.inject({ url: '/api/dashboard' })).json() as DashboardState;
    assert.equal(all.points.length, PREFILLED);
    assert.equal(all.markers[0]?.name, 'drift');
    assert.equal(all.totals.modelVersion, 'v000002');
    const cut = all.points[PREFILLED - 5]?.t;
    const newer = (await app.inject({ url: `/api/dashboard?since=${cut}` })).json();
    assert.equal(newer.points.length, 4);
    assert.equal(newer.versions.length, 2, 'versions and markers always come whole');
    const bad = await app.inject({ url: '/api/dashboard?since=soon' });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().message, /since/);
  });

  test('one user: recommendations with why; an unknown one a 404 with a clear message', async () => {
    const res = await app.inject({ url: '/api/users/u1/recommendations' });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.equal(body.items.length, 10);
    assert.deepEqual(body.items[4].scores, { click: 0.22, watchSeconds: 16, final: 0.8 });
    const odd = await app.inject({
      url: `/api/users/${encodeURIComponent('u 2/é')}/recommendations`,
    });
    assert.equal(odd.statusCode, 200, odd.body);
    const missing = await app.inject({ url: '/api/users/nobody/recommendations' });
    assert.equal(missing.statusCode, 404);
    assert.deepEqual(missing.json(), {
      error: 'not_found',
      message: 'no recommendations for user "nobody"',
    });
  });

  test('user ids are validated: 1 to 128 characters', async () => {
    // Fastify refuses path parameters over 100 characters (414) unless the app raises
    // routerOptions.maxParamLength, as it must for 128-character ids.
    const wide = Fastify({ logger: false, routerOptions: { maxParamLength: 512 } });
    registerDashboard(wide, source);
    try {
      const longest = await wide.inject({ url: `/api/users/${'x'.repeat(128)}/recommendations` });
      assert.equal(longest.statusCode, 404, 'a 128-character id is looked up');
      const long = await wide.inject({ url: `/api/users/${'x'.repeat(129)}/recommendations` });
      assert.equal(long.statusCode, 400);
      assert.match(long.json().message, /^params\/userId: /);
      const empty = await wide.inject({ url: '/api/users//recommendations' });
      assert.equal(empty.statusCode, 400, empty.body);
    } finally {
      await wide.close();
    }
  });

  test('the API routes are in the OpenAPI document; the page and assets are not', async () => {
    const doc = (await app.inject({ url: '/openapi.json' })).json();
    assert.ok(doc.paths['/api/dashboard'], 'GET /api/dashboard documented');
    assert.ok(doc.paths['/api/users/{userId}/recommendations'], 'recommendations documented');
    assert.equal(doc.paths['/dashboard'], undefined);
  });
});

const skipBrowser =
  !existsSync(CHROMIUM) && !IN_CI
    ? `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH); under CI=true this test fails instead`
    : false;

/** Runs in the page: per chart, painted canvas pixels, those in the first series' colour and in the drift marker's, and a hash of the pixels. */
const CANVAS_STATS = `[...document.querySelectorAll('figure.chart')].map((fig) => {
  const canvas = fig.querySelector('canvas');
  if (!canvas) return { id: fig.id, canvas: false, painted: 0, series: 0, drift: 0, hash: 0 };
  const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  const near = (i, c) =>
    px[i + 3] > 200 && Math.abs(px[i] - c[0]) + Math.abs(px[i + 1] - c[1]) + Math.abs(px[i + 2] - c[2]) < 40;
  const series = rgb(fig.dataset.colors.split(',')[0]);
  const drift = rgb(window.dashboard.colors.drift);
  const stats = { id: fig.id, canvas: true, painted: 0, series: 0, drift: 0, hash: 0 };
  for (let i = 0; i < px.length; i += 4) {
    if (px[i + 3] > 0) stats.painted++;
    if (near(i, series)) stats.series++;
    if (near(i, drift)) stats.drift++;
    stats.hash = (Math.imul(stats.hash, 31) + px[i] + 7 * px[i + 1] + 13 * px[i + 2] + px[i + 3]) | 0;
  }
  return stats;
})`;

interface CanvasStats {
  id: string;
  canvas: boolean;
  painted: number;
  series: number;
  drift: number;
  hash: number;
}

describe('dashboard page in headless Chromium', { skip: skipBrowser }, () => {
  let app: FastifyInstance;
  let browser: Browser;
  let page: Page;
  let base: string;
  const source = new GrowingSource();
  const pageErrors: string[] = [];
  const failedRequests: string[] = [];

  before(async () => {
    app = Fastify({ logger: false });
    registerDashboard(app, source);
    await app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    source.start();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      // Failed requests are checked by URL below (the unknown user's 404 is expected).
      if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) {
        pageErrors.push(msg.text());
      }
    });
    page.on('response', (res) => {
      if (res.status() >= 400)
        failedRequests.push(`${res.status()} ${new URL(res.url()).pathname}`);
    });
  });
  after(async () => {
    source.stop();
    await browser?.close();
    await app.close();
  });

  const points = async (id: string) =>
    Number(await page.locator(`#chart-${id}`).getAttribute('data-points'));

  test('every chart renders its series on a canvas, with the drift marker drawn', async () => {
    await page.goto(`${base}/`);
    assert.equal(new URL(page.url()).pathname, '/dashboard');
    await page.waitForFunction(
      `document.querySelectorAll('figure.chart[data-points]').length === ${CHART_IDS.length} &&
       [...document.querySelectorAll('figure.chart')].every((f) => Number(f.dataset.points) >= ${PREFILLED})`,
      undefined,
      { timeout: 5000 },
    );
    const stats = (await page.evaluate(CANVAS_STATS)) as CanvasStats[];
    assert.deepEqual(
      stats.map((s) => s.id),
      CHART_IDS.map((id) => `chart-${id}`),
    );
    for (const s of stats) {
      assert.ok(s.canvas, `${s.id} has a canvas`);
      assert.ok(s.painted > 1000, `${s.id} is not blank (${s.painted} painted pixels)`);
      assert.ok(
        s.series > 100,
        `${s.id} draws its first series (${s.series} pixels in its colour)`,
      );
      assert.ok(s.drift > 50, `${s.id} draws the drift marker (${s.drift} red pixels)`);
      const fig = page.locator(`#${s.id}`);
      assert.equal(await fig.getAttribute('data-markers'), '1', `${s.id} marker count`);
      assert.equal(await fig.getAttribute('data-versions'), '2', `${s.id} version lines`);
    }
    assert.match((await page.locator('#markers').textContent()) ?? '', /drift\s*interests shifted/);
    assert.match((await page.locator('#versions').textContent()) ?? '', /v000002\s*online update/);
    assert.equal(await page.locator('#stat-version').textContent(), 'v000002');
    assert.equal(await page.locator('#stat-errors').textContent(), '3 (0.0%)');
  });

  test('the charts and headline numbers update as points arrive', async () => {
    const before = {
      points: await points('rps'),
      requests: await page.locator('#stat-requests').textContent(),
      hash: ((await page.evaluate(CANVAS_STATS)) as CanvasStats[])[0]?.hash,
    };
    await page.waitForFunction(
      `Number(document.getElementById('chart-rps').dataset.points) >= ${before.points + 3}`,
      undefined,
      { timeout: 6000 },
    );
    const later = await points('rps');
    assert.ok(later >= before.points + 3, `rps chart grew from ${before.points} to ${later}`);
    for (const id of CHART_IDS) assert.equal(await points(id), later, `${id} has every point`);
    const requests = await page.locator('#stat-requests').textContent();
    assert.notEqual(requests, before.requests, 'the request count changed');
    const hash = ((await page.evaluate(CANVAS_STATS)) as CanvasStats[])[0]?.hash;
    assert.notEqual(hash, before.hash, 'the rps canvas was redrawn with different pixels');
    assert.equal(await page.locator('#status').getAttribute('data-state'), 'live');
  });

  test('a user lookup shows the explained list; an unknown user a not-found message', async () => {
    await page.fill('#user-id', 'u1');
    await page.click('#lookup-form button');
    const rows = page.locator('#lookup-table tbody tr');
    await rows.first().waitFor({ timeout: 3000 });
    assert.equal(await rows.count(), 10);
    const first = await rows.first().locator('td').allTextContents();
    assert.deepEqual(first, ['1', 'i100 (sports)', 'popular', '', '0.300', '20.0', '1.000']);
    assert.equal(await rows.nth(4).locator('td').nth(3).textContent(), 'cold');
    assert.match((await page.locator('#lookup-table caption').textContent()) ?? '', /u1.*v000002/);

    await page.fill('#user-id', 'nobody');
    await page.click('#lookup-form button');
    const message = page.locator('#lookup-message[data-kind="error"]');
    await message.waitFor({ timeout: 3000 });
    assert.equal(await message.textContent(), 'no recommendations for user "nobody"');
    assert.equal(await page.locator('#lookup-table').isHidden(), true, 'the old table is hidden');
    assert.deepEqual(pageErrors, [], 'no errors in the page');
    assert.deepEqual(failedRequests, ['404 /api/users/nobody/recommendations']);
  });
});
