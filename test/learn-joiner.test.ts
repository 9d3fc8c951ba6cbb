import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cp } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Bus, LogBus } from '../src/bus/index.js';
import { decodeEvent } from '../src/events/codec.js';
import { EventPublisher } from '../src/events/publisher.js';
import type { Click, Event, Impression, LabelledSample, Watch } from '../src/events/schemas.js';
import { Topics } from '../src/events/topics.js';
import { Joiner, type JoinerOptions, type JoinerStats } from '../src/learn/joiner.js';
import { type SimConfigInput, Simulator } from '../src/sim/index.js';
import type { EventSink } from '../src/sim/sink.js';
import { tempDir } from './helpers.js';

const runner = fileURLToPath(new URL('./fixtures/joiner-runner.ts', import.meta.url));
const WINDOW_MS = 60_000;
const world: SimConfigInput = {
  users: 50,
  items: 200,
  seed: 11,
  requestsPerSecond: 2,
  disorderMs: 3000,
};

/** Runs the simulator into memory (no bus), keeping every event. */
async function simulateEvents(durationS: number, config: SimConfigInput = world): Promise<Event[]> {
  const kept: Event[] = [];
  const sink: EventSink = {
    emit: async (events) => {
      kept.push(...events);
    },
  };
  await new Simulator(config).run({ sink, durationS });
  return kept;
}

/** Publishes the events in the simulator's batches of `chunk`, like a live producer. */
async function publishAll(bus: Bus, events: Event[], chunk = 500): Promise<void> {
  const publisher = new EventPublisher(bus);
  await publisher.ensureTopics();
  for (let i = 0; i < events.length; i += chunk)
    await publisher.publish(events.slice(i, i + chunk));
}

async function readSamples(bus: Bus): Promise<LabelledSample[]> {
  const out: LabelledSample[] = [];
  const info = await bus.describe(Topics.samples);
  for (const p of info.partitions) {
    for (let offset = p.startOffset; offset < p.endOffset; ) {
      const batch = await bus.read(Topics.samples, p.partition, offset, 5000);
      if (batch.length === 0) break;
      for (const r of batch) {
        const decoded = decodeEvent(r.value);
        assert.ok(decoded.ok, `sample at ${p.partition}/${r.offset} is a valid event`);
        assert.equal(decoded.event.type, 'sample');
        out.push(decoded.event as LabelledSample);
      }
      offset = (batch.at(-1) as { offset: number }).offset + 1;
    }
  }
  return out;
}

async function join(
  bus: Bus,
  stateDir: string,
  options: Partial<JoinerOptions> = {},
): Promise<JoinerStats> {
  const joiner = await Joiner.open({ bus, stateDir, windowMs: WINDOW_MS, ...options });
  await joiner.catchUp({ endOfInput: true });
  const stats = joiner.stats();
  await joiner.close();
  return stats;
}

interface Expected {
  clicked: boolean;
  watchedS: number;
  durationS?: number;
  ts: number;
}

/**
 * The join by brute force over the whole stream: feedback counts when it has the
 * impression's (request, item) and falls in [.., impression ts + window).
 */
function bruteForce(events: Event[], windowMs: number) {
  const byPair = new Map<string, (Click | Watch)[]>();
  for (const e of events) {
    if (e.type !== 'click' && e.type !== 'watch') continue;
    const key = `${e.requestId}|${e.itemId}`;
    const list = byPair.get(key) ?? [];
    list.push(e);
    byPair.set(key, list);
  }
  const expected = new Map<string, Expected>();
  let outsideWindow = 0;
  for (const e of events) {
    if (e.type !== 'impression' || expected.has(e.id)) continue;
    const end = e.ts + windowMs;
    const feedback = byPair.get(`${e.requestId}|${e.itemId}`) ?? [];
    const watch = feedback.find((f): f is Watch => f.type === 'watch' && f.ts < end);
    const click = feedback.find((f) => f.type === 'click' && f.ts < end);
    outsideWindow += feedback.filter((f) => f.ts >= end).length;
    if (watch) {
      expected.set(e.id, {
        clicked: true,
        watchedS: watch.watchedS,
        durationS: watch.durationS,
        ts: watch.ts,
      });
    } else {
      expected.set(e.id, { clicked: click !== undefined, watchedS: 0, ts: end });
    }
  }
  return { expected, outsideWindow };
}

function checkAgainst(samples: LabelledSample[], events: Event[], windowMs: number): void {
  const { expected } = bruteForce(events, windowMs);
  const impressions = new Map<string, Impression>();
  for (const e of events) if (e.type === 'impression') impressions.set(e.id, e);
  const seen = new Set<string>();
  for (const s of samples) {
    assert.ok(!seen.has(s.impressionId), `impression ${s.impressionId} has one sample only`);
    seen.add(s.impressionId);
    const want = expected.get(s.impressionId);
    assert.ok(want, `sample ${s.id} is of a known impression`);
    const got: Expected = { clicked: s.clicked, watchedS: s.watchedS, ts: s.ts };
    if (s.durationS !== undefined) got.durationS = s.durationS;
    assert.deepEqual(got, want, `label of impression ${s.impressionId}`);
    const imp = impressions.get(s.impressionId) as Impression;
    assert.equal(s.id, `s:${imp.id}`);
    assert.deepEqual(
      [s.requestId, s.userId, s.itemId, s.position, s.modelVersion, s.features, s.scores],
      [
        imp.requestId,
        imp.userId,
        imp.itemId,
        imp.position,
        imp.modelVersion,
        imp.features,
        imp.scores,
      ],
    );
  }
  assert.equal(seen.size, expected.size, 'every impression yields a sample');
}

describe('joiner', () => {
  test('samples match a brute-force join of an out-of-order simulated stream', async () => {
    const { dir, cleanup } = await tempDir();
    const events = await simulateEvents(600);
    const bus = new LogBus({ dir: path.join(dir, 'bus'), durability: 'os', defaultPartitions: 4 });
    await publishAll(bus, events);
    const stats = await join(bus, path.join(dir, 'state'));
    const samples = await readSamples(bus);
    await bus.close();

    const { expected, outsideWindow } = bruteForce(events, WINDOW_MS);
    checkAgainst(samples, events, WINDOW_MS);
    const positives = [...expected.values()].filter((e) => e.clicked).length;
    const watched = [...expected.values()].filter((e) => e.durationS !== undefined).length;
    assert.ok(positives > 50, `${positives} positives`);
    assert.ok(watched > 20 && watched < positives, `${watched} of ${positives} with a watch`);
    assert.ok(outsideWindow > 0, 'some watches come after the window closed');
    assert.equal(stats.impressions, expected.size);
    assert.equal(stats.positive, positives);
    assert.equal(stats.negative, expected.size - positives);
    // Feedback outside its window is late, or unmatched when it comes so long after the
    // impression (a long watch) that the joiner no longer remembers it.
    assert.equal(
      stats.lateFeedback + stats.unmatchedFeedback,
      outsideWindow,
      'exactly the feedback outside its window is not joined',
    );
    assert.ok(stats.lateFeedback > 0, 'some feedback came after its window closed');
    assert.equal(stats.lateImpressions, 0);
    assert.equal(stats.duplicates, 0);
    assert.equal(stats.pending, 0);
    assert.equal(stats.held, 0);
    await cleanup();
  });

  test('re-delivered events are counted as duplicates and change nothing', async () => {
    const { dir, cleanup } = await tempDir();
    const events = await simulateEvents(300);
    // Every 4th impression, click or watch is delivered again, shortly after the first time.
    const stream: Event[] = [];
    let redelivered = 0;
    let behaviour = 0;
    for (let i = 0; i < events.length; i += 200) {
      const chunk = events.slice(i, i + 200);
      stream.push(...chunk);
      for (const e of chunk) {
        if (e.type !== 'impression' && e.type !== 'click' && e.type !== 'watch') continue;
        behaviour += 1;
        if (behaviour % 4 === 0) {
          stream.push(e);
          redelivered += 1;
        }
      }
    }
    const bus = new LogBus({ dir: path.join(dir, 'bus'), durability: 'os', defaultPartitions: 4 });
    await publishAll(bus, stream, 100);
    const stats = await join(bus, path.join(dir, 'state'), { batchSize: 150 });
    const samples = await readSamples(bus);
    await bus.close();
    assert.ok(redelivered > 500, `${redelivered} re-deliveries`);
    assert.equal(stats.duplicates, redelivered);
    checkAgainst(samples, events, WINDOW_MS);
    assert.equal(
      stats.lateFeedback + stats.unmatchedFeedback,
      bruteForce(events, WINDOW_MS).outsideWindow,
    );
    await cleanup();
  });

  test('late and unmatched feedback and late impressions are counted, not merged', async () => {
    const { dir, cleanup } = await tempDir();
    const bus = new LogBus({ dir: path.join(dir, 'bus'), durability: 'os', defaultPartitions: 1 });
    const publisher = new EventPublisher(bus);
    await publisher.ensureTopics();
    const t0 = Date.UTC(2026, 0, 1);
    let n = 0;
    const imp = (r: string, i: string, at: number): Impression => ({
      id: `imp-${r}-${i}`,
      ts: t0 + at,
      type: 'impression',
      requestId: r,
      userId: 'u1',
      itemId: i,
      position: 0,
      modelVersion: 'v1',
      source: 'test',
      scores: {},
      features: { f: at },
    });
    const click = (r: string, i: string, at: number): Click => ({
      id: `e${n++}`,
      ts: t0 + at,
      type: 'click',
      requestId: r,
      userId: 'u1',
      itemId: i,
    });
    const watch = (r: string, i: string, at: number, watchedS: number): Watch => ({
      ...click(r, i, at),
      type: 'watch',
      watchedS,
      durationS: 40,
    });
    const stateDir = path.join(dir, 'state');
    let joiner = await Joiner.open({ bus, stateDir, windowMs: 60_000, allowedLatenessMs: 5000 });
    // One catch-up per phase: within a poll, a topic's records are read before the other's.
    const phase = async (...events: Event[]) => {
      await publisher.publish(events);
      await joiner.catchUp();
      return joiner.stats();
    };
    await phase(imp('r1', 'a', 0), imp('r1', 'b', 0), click('r1', 'b', 2000));
    // Both streams pass 65 s: the watermark (60 s) closes the windows of a and b.
    let s = await phase(imp('r2', 'c', 70_000), click('r2', 'c', 71_000));
    assert.equal(s.watermark, t0 + 65_000);
    assert.deepEqual([s.samples, s.positive, s.pending], [2, 1, 1]);
    // In their windows by event time, but after the windows closed: late.
    s = await phase(click('r1', 'a', 3000), watch('r1', 'b', 30_000, 12), click('r9', 'z', 72_000));
    assert.deepEqual([s.lateFeedback, s.held], [2, 1], 'late feedback; r9 held for its impression');

    // A restart in between: open impressions, held feedback and dedupe memory survive.
    await joiner.close();
    joiner = await Joiner.open({ bus, stateDir, windowMs: 60_000, allowedLatenessMs: 5000 });
    s = await phase(click('r1', 'a', 3000)); // same content, new id: late again
    assert.deepEqual([s.lateFeedback, s.held, s.pending], [3, 1, 1]);

    s = await phase(imp('r3', 'd', 140_000), click('r3', 'd', 140_500));
    assert.equal(s.unmatchedFeedback, 1, 'r9 never got its impression');
    assert.deepEqual([s.samples, s.positive], [3, 2], 'c closed with its click');
    s = await phase(imp('r0', 'e', 10_000), watch('r3', 'd', 200_000, 30));
    assert.equal(s.lateImpressions, 1, 'an impression whose window already closed');
    assert.equal(s.lateFeedback, 4, 'a watch outside its window');
    assert.equal(s.pending, 1, 'd is still open');
    // Feedback before its impression is held, then joined; a click after its watch is absorbed.
    s = await phase(click('r7', 'g', 151_000));
    assert.equal(s.held, 1);
    const clickF = click('r6', 'f', 150_200);
    s = await phase(
      imp('r7', 'g', 150_800),
      imp('r6', 'f', 150_000),
      watch('r6', 'f', 150_500, 7),
      clickF,
    );
    assert.deepEqual([s.held, s.lateFeedback, s.duplicates], [0, 4, 0]);
    s = await phase(clickF, imp('r7', 'g', 150_800));
    assert.equal(s.duplicates, 2);
    await joiner.catchUp({ endOfInput: true });
    s = joiner.stats();
    await joiner.close();

    const samples = new Map((await readSamples(bus)).map((x) => [x.requestId + x.itemId, x]));
    await bus.close();
    const label = (key: string) => {
      const x = samples.get(key);
      assert.ok(x, `a sample for ${key}`);
      return [x.clicked, x.watchedS, x.durationS, x.ts - t0];
    };
    assert.deepEqual(label('r1a'), [false, 0, undefined, 60_000]);
    assert.deepEqual(label('r1b'), [true, 0, undefined, 60_000]);
    assert.deepEqual(label('r2c'), [true, 0, undefined, 130_000]);
    assert.deepEqual(label('r3d'), [true, 0, undefined, 200_000]);
    assert.deepEqual(label('r6f'), [true, 7, 40, 150_500]);
    assert.deepEqual(label('r7g'), [true, 0, undefined, 210_800]);
    assert.equal(samples.size, 6, 'no sample for the late impression');
    assert.deepEqual(
      {
        impressions: s.impressions,
        clicks: s.clicks,
        watches: s.watches,
        samples: s.samples,
        positive: s.positive,
        negative: s.negative,
        pending: s.pending,
        held: s.held,
      },
      {
        impressions: 6,
        clicks: 8,
        watches: 3,
        samples: 6,
        positive: 5,
        negative: 1,
        pending: 0,
        held: 0,
      },
    );
    await cleanup();
  });

  test('kill -9 mid-stream and restart: every sample exactly once, as in an uninterrupted run', async () => {
    const { dir, cleanup } = await tempDir();
    const events = await simulateEvents(600, { ...world, seed: 23 });
    const busDir = path.join(dir, 'bus');
    const bus = new LogBus({ dir: busDir, durability: 'os', defaultPartitions: 4 });
    await publishAll(bus, events);
    await bus.close();
    // The reference joins a copy of the same log, in one go and in bigger batches.
    await cp(busDir, path.join(dir, 'ref-bus'), { recursive: true });
    const refBus = new LogBus({
      dir: path.join(dir, 'ref-bus'),
      durability: 'os',
      defaultPartitions: 4,
    });
    await join(refBus, path.join(dir, 'ref-state'));
    const reference = await readSamples(refBus);
    await refBus.close();
    checkAgainst(reference, events, WINDOW_MS);

    const stateDir = path.join(dir, 'crash-state');
    for (const steps of [4, 12]) {
      assert.equal(await runRunner(busDir, stateDir, steps), 'killed', `killed after ${steps}`);
    }
    assert.equal(await runRunner(busDir, stateDir, Number.POSITIVE_INFINITY), 'done');
    const crashBus = new LogBus({ dir: busDir, durability: 'os', defaultPartitions: 4 });
    const crashed = await readSamples(crashBus);
    await crashBus.close();
    const ids = crashed.map((x) => x.impressionId);
    assert.equal(new Set(ids).size, ids.length, 'no sample emitted twice');
    const byId = (list: LabelledSample[]) =>
      [...list].sort((a, b) => (a.impressionId < b.impressionId ? -1 : 1));
    assert.equal(crashed.length, reference.length, 'no sample lost');
    assert.deepEqual(byId(crashed), byId(reference));
    await cleanup();
  });
});

/**
 * Runs the joiner in a child; kills it with SIGKILL after `steps` batches once it has
 * checkpointed and emitted samples (or lets it finish).
 */
function runRunner(busDir: string, stateDir: string, steps: number): Promise<'killed' | 'done'> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', runner, busDir, stateDir, String(WINDOW_MS)],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let stderr = '';
    let killed = false;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      const lines = out.match(/^STEP \d+ \d+$/gm) ?? [];
      const last = (lines.at(-1) ?? 'STEP 0 0').split(' ');
      if (!killed && lines.length >= steps && Number(last[1]) > 0 && Number(last[2]) > 0) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (d) => {
      stderr += String(d);
    });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve('killed');
      else if (code === 0 && out.includes('DONE')) resolve('done');
      else reject(new Error(`runner failed (${code ?? signal}): ${stderr}`));
    });
  });
}
