// npm run eval:drift — interest drift, online learning against the same model frozen.
//
// Timeline in simulated time (all in process, the simulator's users asking the real serving
// path):  [0, warmup) the simulator's own policy  →  GraphSAGE trained  →  [warmup, +bootstrap)
// the server shows recall candidates in random order  →  a ranker trained offline on those
// samples  →  the loop: users split by hash into an online arm (model updated every 100
// samples by the online trainer, swapped in as published) and a frozen arm (that first
// ranker, never updated)  →  at driftAt a share of users get new interests  →  the end.
//
// AUC is progressive (each sample scored by both models before the trainer learns from it),
// over all labelled samples of the loop in impression order, in windows of --window samples:
//   auc_before          online model, the last --before-samples (10,000) samples before the
//                       drift; it used to be the last window alone (2,000 samples, ~120
//                       clicks), whose noise (± 0.025) set how high the bar to recover was:
//                       samples_to_recover ranged 2,000–106,600 between runs with it
//   *_se                the standard errors (Hanley–McNeil) of auc_before and of one window's
//                       AUC: a trailing window meets the bar by chance when the gap is ~1 SE
//   auc_*_after         all post-drift samples after the first window (robust); *_last_window
//                       the newest window alone
//   samples_to_recover  labelled samples after the drift until the online model's AUC over
//                       the trailing window of post-drift samples is back to 0.98 × auc_before
//                       (null if never; at least --window by construction)
//   ctr_*_after         simulated click-through of each arm's impressions after the drift
//   expected_*          the same AUCs and recovery against the simulator's true click
//                       probabilities (expectedAuc: pairs weighted by p_i (1 - p_j)) instead of
//                       the clicks drawn from them; oracle_* ranks by those probabilities;
//                       window_*_sd_measured is one window's spread, measured over the frozen
//                       model's windows before the drift (it does not change there)
//   served_online/frozen each arm on its own impressions by the scores it served them with:
//                       what each model knew when it chose what users saw (the arms' samples
//                       differ, so this compares less directly than the progressive scores)
//   *_late_labelled     a diagnostic: samples labelled as late as non-clicks, where both
//                       classes were scored by an equally up-to-date online model. With
//                       --label-delay-s 0 the online model's click AUC before the drift read
//                       0.02-0.05 above its expected AUC over all samples and not over these
//
//   npm run eval:drift [-- --users 1000 --items 2000 --rps 10 --drift-share 0.6 --window 2000
//                         --before-samples 10000 --label-delay-s 120]
import { parseArgs } from 'node:util';
import type { LabelledSample } from '../src/events/schemas.js';
import { trainOffline } from '../src/learn/offline-train.js';
import { OnlineTrainer } from '../src/learn/online-trainer.js';
import { ArmRouter, LearningLoop } from '../src/loop/learning-loop.js';
import { EmbeddedStack, PhasedRecommender } from '../src/loop/stack.js';
import { FeatureVectorizer } from '../src/rank/feature-vector.js';
import { auc, aucStandardError, expectedAuc } from '../src/rank/metrics.js';
import { RankerModelStore } from '../src/rank/model-store.js';
import { defaultRankerConfig, Ranker } from '../src/rank/ranker.js';
import { Simulator } from '../src/sim/index.js';
import { Rng } from '../src/util/rng.js';
import { machine, tempDir } from './common.js';

const { values: args } = parseArgs({
  options: {
    users: { type: 'string', default: '1000' },
    items: { type: 'string', default: '2000' },
    rps: { type: 'string', default: '10' },
    'warmup-s': { type: 'string', default: '1200' },
    'bootstrap-s': { type: 'string', default: '1800' },
    'before-s': { type: 'string', default: '900' },
    'after-s': { type: 'string', default: '1800' },
    'drift-share': { type: 'string', default: '0.6' },
    'frozen-share': { type: 'string', default: '0.5' },
    window: { type: 'string', default: '2000' },
    'before-samples': { type: 'string', default: '10000' },
    seed: { type: 'string', default: '23' },
    /**
     * How long the loop holds a sample before scoring it and learning from it (LearningLoop
     * finalAfterMs), seconds. 120, the join window: every sample is scored by both models the
     * same time after its impression, in impression order, the online model having learned
     * nothing from after it. 0 scores and learns each sample as it arrives (clicks ~2 minutes
     * before their impression's non-clicks): the online model then learns clicks first, scores
     * a non-click with a version 2 minutes newer than a click, and its click AUC read
     * 0.02–0.05 above its expected AUC (the frozen model's did not).
     */
    'label-delay-s': { type: 'string', default: '120' },
  },
});
const say = (msg: string) => process.stderr.write(`[eval:drift] ${msg}\n`);
const n = (k: keyof typeof args) => Number(args[k]);

async function main() {
  const { dir, cleanup } = await tempDir('eval-drift-');
  const stack = await EmbeddedStack.open({ dataDir: dir, windowMs: 120_000 });
  const vectorizer = new FeatureVectorizer();
  const seed = n('seed');
  const startTime = Date.UTC(2026, 0, 1);
  const loopAt = startTime + (n('warmup-s') + n('bootstrap-s')) * 1000;
  const driftAt = loopAt + n('before-s') * 1000;
  const endAt = driftAt + n('after-s') * 1000;
  const window = n('window');
  let loop: LearningLoop | null = null;
  let trainer: OnlineTrainer | null = null;
  try {
    const recommender = new PhasedRecommender(
      () => sim.policy,
      [
        {
          atMs: startTime + n('warmup-s') * 1000,
          setup: async () => {
            say('warm-up done: training GraphSAGE');
            await stack.trainGnn(3);
            say('the server takes over (bootstrap: uniform over recall)');
            return (await stack.startServer({ seed })).service;
          },
        },
        {
          atMs: loopAt,
          setup: async () => {
            const samples = (await stack.newSamples()).filter(
              (s) => s.modelVersion === 'bootstrap',
            );
            say(`training the first ranker on ${samples.length} bootstrap samples`);
            const first = await trainOffline(samples, vectorizer, {
              config: defaultRankerConfig(vectorizer.width, {
                users: n('users'),
                items: n('items'),
              }),
              rng: new Rng(seed).fork('offline'),
              maxEpochs: 6,
              patience: 1,
            });
            const store = new RankerModelStore(`${dir}/models/online`);
            const v1 = await store.save(first.ranker, vectorizer.slotNames, {
              trainer: 'offline',
            });
            say(
              `first ranker ${v1} (validation AUC ${first.validationAuc.toFixed(4)}); online vs frozen from now`,
            );
            trainer = await OnlineTrainer.open({
              store,
              vectorizer,
              rng: new Rng(seed).fork('online'),
              // The loop holds samples until final (finalAfterMs) and hands them over in order.
            });
            const server = stack.server;
            if (!server) throw new Error('no server');
            const frozen = await Ranker.create(
              first.ranker.config,
              new Rng(1),
              undefined,
              first.ranker.weights(),
            );
            server.service.setModel({ version: v1, ranker: first.ranker });
            const frozenService = server.pinned({ version: `${v1}-frozen`, ranker: frozen });
            loop = new LearningLoop(
              trainer,
              frozen,
              server.service,
              vectorizer,
              n('frozen-share'),
              {
                window,
                clickTruth: (s) =>
                  sim.truth.clickProbability(s.userId, s.itemId, s.position, s.impressionTs),
                finalAfterMs: n('label-delay-s') * 1000,
              },
            );
            return new ArmRouter(
              { online: server.service, frozen: frozenService },
              n('frozen-share'),
            );
          },
        },
      ],
    );
    const sim: Simulator = new Simulator(
      {
        users: n('users'),
        items: n('items'),
        seed,
        startTime,
        requestsPerSecond: n('rps'),
        newItemsPerMinute: 5,
        driftAtS: (driftAt - startTime) / 1000,
        driftShare: n('drift-share'),
      },
      { recommender },
    );
    let lastSay = 0;
    const learnFrom = (s: LabelledSample) =>
      s.modelVersion !== 'bootstrap' && s.modelVersion !== 'sim-policy';
    await sim.run({
      durationS: (endAt - startTime) / 1000,
      sink: stack.sink(async () => {
        if (!loop) return;
        await loop.learn((await stack.newSamples()).filter(learnFrom));
        if (performance.now() - lastSay > 10_000) {
          lastSay = performance.now();
          const p = loop.rollingAuc();
          say(
            `t=${sim.stats.simulatedS.toFixed(0)} s: ${loop.stats().samples} samples, ${loop.versions.length} versions, ` +
              `rolling AUC online ${p.aucOnline?.toFixed(4)} frozen ${p.aucFrozen?.toFixed(4)}`,
          );
        }
      }),
    });
    const finalLoop = loop as LearningLoop | null;
    if (!finalLoop) throw new Error('the run ended before the loop started');
    await finalLoop.learn((await stack.newSamples(true)).filter(learnFrom), true);

    const after = finalLoop.rollingAuc(driftAt);
    // In impression order, not the order labels arrived in: a click is labelled at once, its
    // impression's negatives only when the attribution window closes (2 min later), so in
    // arrival order the first window after the drift held its first 2 minutes of clicks and
    // few of their negatives (it read as no dip at all), and the last samples before it
    // were mostly negatives.
    const byImpression = [...finalLoop.history()].sort((a, b) => a.ts - b.ts);
    const post = byImpression.filter((s) => s.ts >= driftAt);
    const pre = byImpression.filter((s) => s.ts < driftAt).slice(-n('before-samples'));
    type Scored = (typeof post)[number];
    /** Click AUC of one arm's scores over some samples; null without a click among them. */
    type Arm = 'online' | 'frozen';
    /** A score: either model's at labelling time, or the serving arm's own at serving time. */
    type Score = Arm | 'served';
    const aucOf = (samples: Scored[], score: Score) =>
      samples.some((s) => s.clicked === 1)
        ? auc(
            samples.map((s) => s[score]),
            samples.map((s) => s.clicked),
          )
        : null;
    const aucBefore = aucOf(pre, 'online');
    const clicksIn = (samples: Scored[]) => samples.reduce((a, s) => a + s.clicked, 0);
    const seOf = (a: number | null, positives: number, total: number) =>
      a === null || positives === 0 || positives === total
        ? null
        : aucStandardError(a, positives, total - positives);
    const preClicks = clicksIn(pre);
    const r4 = (x: number | null) => (x === null ? null : Number(x.toFixed(4)));
    // One window's noise, at the bar and at the click rate before the drift.
    const windowClicks = Math.max(1, Math.round((preClicks / Math.max(1, pre.length)) * window));
    /** The same AUCs against the simulator's true probabilities instead of drawn clicks. */
    const expectedOf = (samples: Scored[], score: Score | 'truth') => {
      const a = expectedAuc(
        samples.map((s) => s[score]),
        samples.map((s) => s.truth),
      );
      return Number.isNaN(a) ? null : a;
    };
    const expectedBefore = expectedOf(pre, 'online');
    /** Samples after the drift until a trailing window's AUC is back to 0.98 × before. */
    const recoverAt = (
      aucOfWindow: (w: Scored[]) => number | null,
      before: number | null,
      samples = post,
    ) => {
      const target = 0.98 * (before ?? 1);
      for (let k = window; k <= samples.length; k += 100) {
        const a = aucOfWindow(samples.slice(k - window, k));
        if (a !== null && a >= target) return k;
      }
      return null;
    };
    /** Consecutive whole windows of some samples. */
    const windowsOf = (samples: Scored[]) =>
      Array.from({ length: Math.floor(samples.length / window) }, (_, i) =>
        samples.slice(i * window, (i + 1) * window),
      );
    const sd = (xs: (number | null)[]) => {
      const v = xs.filter((x): x is number => x !== null);
      if (v.length < 2) return null;
      const m = v.reduce((a, b) => a + b, 0) / v.length;
      return Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1));
    };
    // One window's noise, measured: the frozen model does not change before the drift, so
    // its windows there differ only by the samples drawn (and, for clicks, by the draws).
    const frozenWindowsBefore = windowsOf(
      byImpression.filter((s) => s.ts >= loopAt && s.ts < driftAt),
    );
    const windowsAfter = windowsOf(post).slice(0, 15);
    /**
     * Each arm on its own impressions, by the scores it served them with: no model has seen
     * anything after the impression (the progressive scores above are taken when the label
     * arrives). Samples are that arm's only, so a window spans twice the time.
     */
    const servedBy = (arm: Arm) => {
      const own = (samples: Scored[]) =>
        samples.filter((s) => s.arm === arm && Number.isFinite(s.served));
      const before = own(byImpression.filter((s) => s.ts < driftAt)).slice(
        -Math.round(n('before-samples') / 2),
      );
      const after = own(post);
      const expectedBeforeArm = expectedOf(before, 'served');
      const windows = windowsOf(after).slice(0, 15);
      return {
        samples_before: before.length,
        auc_before: r4(aucOf(before, 'served')),
        expected_auc_before: r4(expectedBeforeArm),
        auc_after: r4(aucOf(after.slice(window), 'served')),
        expected_auc_after: r4(expectedOf(after.slice(window), 'served')),
        samples_to_recover: recoverAt((w) => aucOf(w, 'served'), aucOf(before, 'served'), after),
        expected_samples_to_recover: recoverAt(
          (w) => expectedOf(w, 'served'),
          expectedBeforeArm,
          after,
        ),
        expected_auc_windows_after: windows.map((w) => r4(expectedOf(w, 'served'))),
        oracle_expected_auc_windows_after: windows.map((w) => r4(expectedOf(w, 'truth'))),
      };
    };
    const negativeDelay = Math.min(
      ...pre.filter((s) => s.clicked === 0).map((s) => s.labelledAt - s.ts),
    );
    const lateBefore = byImpression
      .filter((s) => s.ts >= loopAt && s.ts < driftAt)
      .filter((s) => s.labelledAt - s.ts >= negativeDelay);
    const firstWindow = post.slice(0, window);
    const dip = (score: Arm) => aucOf(firstWindow, score);
    // All post-drift samples after the first window: ~100× the samples of one window, so the
    // online-vs-frozen difference is not one window's noise.
    const settled = post.slice(window);
    const settledAuc = (score: Arm) => aucOf(settled, score);
    const ctr = finalLoop.ctrBetween(driftAt);
    const ctrBefore = finalLoop.ctrBetween(loopAt, driftAt);
    const stats = finalLoop.stats();
    console.log(
      JSON.stringify({
        bench: 'eval-drift',
        drift_share: n('drift-share'),
        frozen_share: n('frozen-share'),
        window,
        label_delay_s: n('label-delay-s'),
        before_samples: pre.length,
        auc_before: r4(aucBefore),
        auc_before_se: r4(seOf(aucBefore, preClicks, pre.length)),
        auc_frozen_before: r4(aucOf(pre, 'frozen')),
        window_auc_se: r4(seOf(0.98 * (aucBefore ?? 1), windowClicks, window)),
        first_window_after: {
          samples: firstWindow.length,
          clicks: clicksIn(firstWindow),
          expected_clicks: Number(firstWindow.reduce((a, s) => a + s.truth, 0).toFixed(1)),
        },
        auc_online_first_window_after: r4(dip('online')),
        auc_frozen_first_window_after: r4(dip('frozen')),
        auc_online_after: r4(settledAuc('online')),
        auc_frozen_after: r4(settledAuc('frozen')),
        auc_online_last_window: r4(after.aucOnline),
        auc_frozen_last_window: r4(after.aucFrozen),
        samples_to_recover: recoverAt((w) => aucOf(w, 'online'), aucBefore),
        frozen_samples_to_recover: recoverAt((w) => aucOf(w, 'frozen'), aucBefore),
        // Against the simulator's truth (expectedAuc): no click-draw noise.
        expected_auc_before: r4(expectedBefore),
        expected_auc_frozen_before: r4(expectedOf(pre, 'frozen')),
        oracle_expected_auc_before: r4(expectedOf(pre, 'truth')),
        expected_auc_online_after: r4(expectedOf(settled, 'online')),
        expected_auc_frozen_after: r4(expectedOf(settled, 'frozen')),
        oracle_expected_auc_after: r4(expectedOf(settled, 'truth')),
        // Diagnostic: a sample is scored when its label is final, a negative 2 minutes after its
        // impression and a click sooner; among samples labelled as late as negatives, both
        // classes were scored by an equally up-to-date online model.
        late_labelled_before: lateBefore.length,
        late_labelled_clicks_before: clicksIn(lateBefore),
        auc_before_late_labelled: r4(aucOf(lateBefore, 'online')),
        expected_auc_before_late_labelled: r4(expectedOf(lateBefore, 'online')),
        auc_frozen_before_late_labelled: r4(aucOf(lateBefore, 'frozen')),
        expected_auc_frozen_before_late_labelled: r4(expectedOf(lateBefore, 'frozen')),
        window_auc_sd_measured: r4(sd(frozenWindowsBefore.map((w) => aucOf(w, 'frozen')))),
        window_expected_auc_sd_measured: r4(
          sd(frozenWindowsBefore.map((w) => expectedOf(w, 'frozen'))),
        ),
        expected_samples_to_recover: recoverAt((w) => expectedOf(w, 'online'), expectedBefore),
        frozen_expected_samples_to_recover: recoverAt(
          (w) => expectedOf(w, 'frozen'),
          expectedBefore,
        ),
        served_online: servedBy('online'),
        served_frozen: servedBy('frozen'),
        expected_auc_windows_after: {
          online: windowsAfter.map((w) => r4(expectedOf(w, 'online'))),
          frozen: windowsAfter.map((w) => r4(expectedOf(w, 'frozen'))),
          oracle: windowsAfter.map((w) => r4(expectedOf(w, 'truth'))),
        },
        samples_after_drift: post.length,
        ctr_online_before: r4(ctrBefore.online),
        ctr_frozen_before: r4(ctrBefore.frozen),
        ctr_online_after: r4(ctr.online),
        ctr_frozen_after: r4(ctr.frozen),
        versions_published: stats.versions,
        versions_refused: stats.refused,
        samples: stats.samples,
        goal: { samples_to_recover_max: 3000, frozen_worse: true },
        machine: machine(),
      }),
    );
  } finally {
    (trainer as OnlineTrainer | null)?.dispose();
    await stack.close();
    await cleanup();
  }
}

await main();
