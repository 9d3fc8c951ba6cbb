// npm run bench:swap — hot model swaps under load. The server runs in its own process; a load
// client (worker thread) sends recommendation requests at a fixed rate; this process is the
// online trainer: it reads the impressions the server logs, labels them from the simulator's
// truth, and takes a step + publishes a version every 100 samples. For each version: from the
// moment the step's last (100th) sample reached the trainer to the moment the server swapped
// it in (the server stamps that moment, epoch ms, and /readyz reports it: a request after it
// is served by the new version). The bench learns of the swap by polling /readyz every 5 ms;
// that moment (`publish_to_observed_*`) adds the poll interval and the poll's own wait in the
// server's queue of requests, which is not time the new version was not serving. Failed
// requests are counted over the whole run. The same load without the trainer, first, is the
// baseline for request latency.
//
//   npm run bench:swap [-- --rate 100 --seconds 30 --users 2000 --items 5000]
import { parseArgs } from 'node:util';
import { build as buildHistogram } from 'hdr-histogram-js';
import { LogBus } from '../src/bus/index.js';
import { LogFollower } from '../src/bus/log-follower.js';
import { rankerModelDir } from '../src/cli/commands/serve.js';
import { busDir } from '../src/cli/data-dir.js';
import type { LabelledSample } from '../src/events/schemas.js';
import { Topics } from '../src/events/topics.js';
import { OnlineTrainer } from '../src/learn/online-trainer.js';
import { FeatureVectorizer } from '../src/rank/feature-vector.js';
import { RankerModelStore } from '../src/rank/model-store.js';
import { Rng } from '../src/util/rng.js';
import { machine, tempDir } from './common.js';
import { runLoadInWorker } from './load-worker.js';
import { prepareServingData, startServerProcess } from './serving-setup.js';

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '100' },
    seconds: { type: 'string', default: '30' },
    users: { type: 'string', default: '2000' },
    items: { type: 'string', default: '5000' },
  },
});
const rate = Number(args.rate);
const seconds = Number(args.seconds);
const users = Number(args.users);
const log = (msg: string) => process.stderr.write(`[bench:swap] ${msg}\n`);

async function serving(base: string): Promise<{ modelVersion?: string; modelSinceMs?: number }> {
  const r = await fetch(`${base}/readyz`);
  return (await r.json()) as { modelVersion?: string; modelSinceMs?: number };
}

/** Epoch ms with sub-millisecond resolution, comparable with the server's stamps. */
const epochMs = () => performance.timeOrigin + performance.now();

async function main() {
  const { dir, cleanup } = await tempDir('swap-');
  try {
    const sim = await prepareServingData(
      dir,
      { users, items: Number(args.items), seed: 13, requestsPerSecond: 50 },
      300,
      log,
    );
    const server = await startServerProcess(dir);
    const bus = new LogBus({ dir: busDir(dir), durability: 'os' });
    const trainer = await OnlineTrainer.open({
      store: new RankerModelStore(rankerModelDir(dir)),
      vectorizer: new FeatureVectorizer(),
      rng: new Rng(3),
      stepEvery: 100,
      // Labels here are simulated draws; the guardrail still checks finiteness and the holdout.
    });
    const follower = new LogFollower(bus, [Topics.impressions]);
    await follower.catchUp(() => {}); // start after what was logged before the run
    const observed = buildHistogram({
      lowestDiscernibleValue: 1,
      highestTrackableValue: 60_000_000,
      numberOfSignificantValueDigits: 3,
    });
    const latency = buildHistogram({
      lowestDiscernibleValue: 1,
      highestTrackableValue: 60_000_000,
      numberOfSignificantValueDigits: 3,
    });
    // The trainer's share: train + guardrail + save, from the 100th sample to the new pointer.
    const stepLatency = buildHistogram({
      lowestDiscernibleValue: 1,
      highestTrackableValue: 60_000_000,
      numberOfSignificantValueDigits: 3,
    });
    // Where the time goes: the step's parts, and the server's share (pointer to serving).
    const partNames = ['trainMs', 'guardMs', 'saveMs', 'serverMs'] as const;
    const parts = Object.fromEntries(
      partNames.map((n) => [
        n,
        buildHistogram({
          lowestDiscernibleValue: 1,
          highestTrackableValue: 60_000_000,
          numberOfSignificantValueDigits: 3,
        }),
      ]),
    ) as Record<(typeof partNames)[number], ReturnType<typeof buildHistogram>>;
    const record = (h: ReturnType<typeof buildHistogram>, ms: number) =>
      h.recordValue(Math.max(1, Math.round(ms * 1000)));
    const rng = new Rng(9);
    let swaps = 0;
    let refused = 0;
    let notSeen = 0;
    let samples = 0;
    const load = (durationS: number) =>
      runLoadInWorker({
        origin: server.base,
        path: '/recommend',
        method: 'POST',
        rate,
        seconds: durationS,
        users,
        count: 20,
      });
    log('warm-up 5 s');
    await load(5);
    // Baseline in the same run: the same load with no trainer running and no swaps.
    log(`baseline: load at ${rate}/s for ${Math.min(15, seconds)} s, no trainer`);
    const baseline = await load(Math.min(15, seconds));
    await follower.catchUp(() => {}); // the baseline's impressions are not trained on
    log(`load at ${rate}/s for ${seconds} s while the trainer publishes`);
    const loaded = load(seconds);
    let done = false;
    // Ends the trainer loop either way; a failed load surfaces where `loaded` is awaited below.
    loaded.then(
      () => {
        done = true;
      },
      () => {
        done = true;
      },
    );
    try {
      while (!done) {
        const events = await follower.poll(2000);
        if (events.length === 0) {
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        for (const e of events) {
          if (done) break;
          if (e.type !== 'impression') continue;
          const p = sim.truth.clickProbability(e.userId, e.itemId, e.position, e.ts);
          const clicked = rng.uniform() < p;
          const sample: LabelledSample = {
            id: `s:${e.id}`,
            ts: e.ts,
            type: 'sample',
            impressionId: e.id,
            impressionTs: e.ts,
            requestId: e.requestId,
            userId: e.userId,
            itemId: e.itemId,
            position: e.position,
            modelVersion: e.modelVersion,
            clicked,
            watchedS: clicked ? 60 * sim.truth.watchRatioGivenClick(e.userId, e.itemId, e.ts) : 0,
            features: e.features,
          };
          samples++;
          const labelledAt = epochMs();
          const [step] = await trainer.add(sample); // labels are final here: no label delay
          if (!step) continue;
          if (!step.version) {
            refused++;
            continue;
          }
          record(stepLatency, step.stepMs);
          for (const n of ['trainMs', 'guardMs', 'saveMs'] as const)
            record(parts[n], step.parts[n]);
          // Wait for the server to report the new version.
          const deadline = labelledAt + 5000;
          let since: number | undefined;
          while (epochMs() < deadline) {
            const now = await serving(server.base);
            if (now.modelVersion === step.version) {
              since = now.modelSinceMs;
              record(observed, epochMs() - labelledAt);
              break;
            }
            await new Promise((r) => setTimeout(r, 5));
          }
          if (since !== undefined) {
            swaps++;
            const total = since - labelledAt;
            record(latency, total);
            record(parts.serverMs, total - step.stepMs);
          } else notSeen++;
        }
      }
    } finally {
      const result = await loaded;
      trainer.dispose();
      await server.stop();
      await bus.close();
      const ms = (q: number) => Number((latency.getValueAtPercentile(q) / 1000).toFixed(2));
      console.log(
        JSON.stringify({
          bench: 'swap',
          rate,
          seconds,
          samples,
          published: swaps + notSeen,
          swaps,
          refused,
          not_served_within_5s: notSeen,
          failed_requests: result.errors,
          requests: result.sent,
          request_p50_ms: result.p50_ms,
          request_p99_ms: result.p99_ms,
          baseline_request_p50_ms: baseline.p50_ms,
          baseline_request_p99_ms: baseline.p99_ms,
          baseline_failed_requests: baseline.errors,
          request_p99_over_baseline: Number(
            (result.p99_ms / Math.max(baseline.p99_ms, 0.1)).toFixed(2),
          ),
          publish_to_serve_p50_ms: ms(50),
          publish_to_serve_p99_ms: ms(99),
          publish_to_serve_max_ms: Number((latency.maxValue / 1000).toFixed(2)),
          publish_to_observed_p50_ms: Number((observed.getValueAtPercentile(50) / 1000).toFixed(2)),
          publish_to_observed_p99_ms: Number((observed.getValueAtPercentile(99) / 1000).toFixed(2)),
          trainer_step_p50_ms: Number((stepLatency.getValueAtPercentile(50) / 1000).toFixed(2)),
          trainer_step_p99_ms: Number((stepLatency.getValueAtPercentile(99) / 1000).toFixed(2)),
          // p50 / p99 of each part of publish-to-serve (ms).
          parts: Object.fromEntries(
            partNames.map((n) => [
              n,
              [50, 99].map((q) => Number((parts[n].getValueAtPercentile(q) / 1000).toFixed(2))),
            ]),
          ),
          error_samples: result.error_samples,
          goal: { failed_requests: 0, publish_to_serve_p99_ms: 100 },
          machine: machine(),
        }),
      );
    }
  } finally {
    await cleanup();
  }
}

await main();
