// The online-learning loop in process, with a frozen twin to compare against: users are split
// by a hash of their id between the online arm (served by the model the trainer keeps
// updating) and the frozen arm (served by the model as it was when the loop started).
//
// Evaluation is progressive: every labelled sample is scored by both models before the
// trainer sees it, so "rolling AUC" is always on data the online model has not trained on
// (the standard way to evaluate a model that learns from the stream it is judged on).
import type { LabelledSample } from '../events/schemas.js';
import { FinalLabels } from '../learn/final-labels.js';
import type { OnlineTrainer, StepResult } from '../learn/online-trainer.js';
import { examplesOf } from '../learn/samples.js';
import type { FeatureVectorizer } from '../rank/feature-vector.js';
import { auc } from '../rank/metrics.js';
import { Ranker } from '../rank/ranker.js';
import type {
  RecommendRequest,
  RecommendResult,
  RecommendService,
} from '../serve/recommend-service.js';
import { Rng } from '../util/rng.js';

export type Arm = 'online' | 'frozen';

/** Which arm a user is in: a stable hash, `frozenShare` of users frozen. */
export function armOf(userId: string, frozenShare: number): Arm {
  return hashShare(userId) < frozenShare ? 'frozen' : 'online';
}

function hashShare(id: string): number {
  let h = 2166136261;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 16777619);
  return (h >>> 0) / 2 ** 32;
}

/**
 * Routes each user's requests to their arm's service: usable as the simulator's recommender
 * (in-process evaluations) and as the HTTP app's (the demo).
 */
export class ArmRouter {
  constructor(
    private readonly arms: Record<Arm, RecommendService>,
    private readonly frozenShare: number,
  ) {}

  recommend(req: RecommendRequest): Promise<RecommendResult> {
    return this.arms[armOf(req.userId, this.frozenShare)].recommend(req);
  }
}

/** A scored sample, kept for the rolling windows. */
interface Scored {
  /** Impression time. */
  ts: number;
  /** When the label became final (the sample's own time): when both models scored it. */
  labelledAt: number;
  clicked: number;
  online: number;
  frozen: number;
  arm: Arm;
  /** The simulator's true click probability of the impression; NaN without a truth. */
  truth: number;
  /**
   * The click score the serving model gave the impression when it chose it (NaN if not
   * logged): the arm's own prediction at serving time. `online` and `frozen` are scored when
   * the label arrives, a non-click a join window after a click; a trainer without a label
   * delay has by then learned from the labels in between (optimistic for it; see eval:drift).
   */
  served: number;
}

export interface LoopPoint {
  /** Impression time of the newest sample in the window. */
  ts: number;
  samples: number;
  aucOnline: number | null;
  aucFrozen: number | null;
}

export interface LoopVersion {
  version: string;
  /** Samples seen when it was published. */
  samples: number;
  ts: number;
}

export interface LearningLoopOptions {
  /** Samples per rolling-AUC window. Default 2,000. */
  window?: number;
  /**
   * The true click probability of a sample's impression, when the users are simulated:
   * kept with each scored sample, so an evaluation can measure AUCs without the noise of
   * drawn clicks (expectedAuc).
   */
  clickTruth?: (sample: LabelledSample) => number;
  /**
   * Hold each sample until one `finalAfterMs` newer (by event time) has arrived, then score
   * and learn from it, in impression order: set it to the join window. Both models then score
   * every sample the same time after its impression, with nothing learned from after it. On
   * arrival (0, the default) a click is scored and learned a window before its impression's
   * non-clicks: the online model learns clicks first (the trainer's labelDelayMs says what
   * that does) and scores non-clicks with a newer version than clicks, which eval:drift
   * measured as ~0.04 of click AUC in its favour.
   */
  finalAfterMs?: number;
}

export class LearningLoop {
  private readonly scored: Scored[] = [];
  /** Samples per rolling-AUC window. */
  readonly window: number;
  private readonly clickTruth: ((sample: LabelledSample) => number) | undefined;
  /** Samples waiting for their labels to be final (finalAfterMs). */
  private readonly final: FinalLabels;
  readonly versions: LoopVersion[] = [];
  readonly refusals: StepResult[] = [];
  private readonly counts = {
    samples: 0,
    online: { impressions: 0, clicks: 0, watchS: 0 },
    frozen: { impressions: 0, clicks: 0, watchS: 0 },
  };

  constructor(
    private readonly trainer: OnlineTrainer,
    private readonly frozen: Ranker,
    /**
     * The online arm's service, when each published version should be swapped into it here
     * (in-process evaluations); null when the server follows the model directory instead.
     */
    private readonly onlineService: RecommendService | null,
    private readonly vectorizer: FeatureVectorizer,
    private readonly frozenShare: number,
    options: LearningLoopOptions = {},
  ) {
    this.window = options.window ?? 2000;
    this.clickTruth = options.clickTruth;
    this.final = new FinalLabels(options.finalAfterMs ?? 0, 'finalAfterMs');
  }

  /**
   * Scores, counts and learns from new samples (once final, with finalAfterMs); swaps each
   * published version in. `endOfInput`: no more samples will come, release all that wait.
   */
  async learn(newSamples: readonly LabelledSample[], endOfInput = false): Promise<void> {
    const samples = this.final.add(newSamples, endOfInput);
    if (samples.length === 0) return;
    const data = examplesOf(this.vectorizer, samples);
    const predict = (r: Ranker) =>
      r.predict(r.inputs(data.examples), data.examples.length)[0] as Float32Array;
    const online = predict(this.trainer.model);
    const frozen = predict(this.frozen);
    for (const [i, s] of samples.entries()) {
      const arm = armOf(s.userId, this.frozenShare);
      this.scored.push({
        ts: s.impressionTs,
        labelledAt: s.ts,
        clicked: s.clicked ? 1 : 0,
        online: online[i] as number,
        frozen: frozen[i] as number,
        arm,
        truth: this.clickTruth ? this.clickTruth(s) : Number.NaN,
        served: s.scores?.click ?? Number.NaN,
      });
      const c = this.counts[arm];
      c.impressions++;
      if (s.clicked) c.clicks++;
      c.watchS += s.watchedS;
      this.counts.samples++;
      for (const step of await this.trainer.add(s)) {
        if (step.version && this.onlineService) {
          const copy = await Ranker.create(
            this.trainer.model.config,
            new Rng(this.versions.length),
            undefined,
            this.trainer.model.weights(),
          );
          this.onlineService.setModel({ version: step.version, ranker: copy })?.ranker.dispose();
        }
        if (step.version)
          this.versions.push({
            version: step.version,
            samples: this.counts.samples,
            ts: s.impressionTs,
          });
        else if (step.refused) this.refusals.push(step);
      }
    }
    const keep = Math.max(200_000, this.window * 50);
    if (this.scored.length > keep) this.scored.splice(0, this.scored.length - keep);
  }

  /** AUC of both models over the newest `window` samples (or those in [from, to) by time). */
  rollingAuc(from = Number.NEGATIVE_INFINITY, to = Number.POSITIVE_INFINITY): LoopPoint {
    const inRange = this.scored.filter((s) => s.ts >= from && s.ts < to);
    const w = inRange.slice(-this.window);
    const labels = w.map((s) => s.clicked);
    const positives = labels.reduce((a, b) => a + b, 0);
    const ok = positives > 0 && positives < labels.length;
    return {
      ts: w.at(-1)?.ts ?? 0,
      samples: w.length,
      aucOnline: ok
        ? auc(
            w.map((s) => s.online),
            labels,
          )
        : null,
      aucFrozen: ok
        ? auc(
            w.map((s) => s.frozen),
            labels,
          )
        : null,
    };
  }

  /** The scored samples kept, in the order their labels arrived (newest last). */
  history(): readonly Scored[] {
    return this.scored;
  }

  /** Click-through of each arm's impressions in [from, to) by impression time. */
  ctrBetween(from: number, to = Number.POSITIVE_INFINITY): Record<Arm, number | null> {
    const out: Record<Arm, number | null> = { online: null, frozen: null };
    for (const arm of ['online', 'frozen'] as const) {
      const w = this.scored.filter((s) => s.arm === arm && s.ts >= from && s.ts < to);
      out[arm] = w.length === 0 ? null : w.reduce((a, s) => a + s.clicked, 0) / w.length;
    }
    return out;
  }

  stats() {
    const rate = (c: { impressions: number; clicks: number }) =>
      c.impressions === 0 ? null : c.clicks / c.impressions;
    const watch = (c: { impressions: number; watchS: number }) =>
      c.impressions === 0 ? null : c.watchS / c.impressions;
    return {
      samples: this.counts.samples,
      versions: this.versions.length,
      refused: this.refusals.length,
      ctrOnline: rate(this.counts.online),
      ctrFrozen: rate(this.counts.frozen),
      watchOnline: watch(this.counts.online),
      watchFrozen: watch(this.counts.frozen),
    };
  }
}
