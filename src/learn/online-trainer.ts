// The online trainer: labelled samples arrive one by one; every `stepEvery` of them (default
// 100) the ranker takes a training pass over them and the result is published as a new model
// version, unless the guardrail refuses it.
//
// Guardrail: a version with non-finite weights, or whose click AUC on a rolling holdout is
// more than `maxAucDrop` below the serving version's AUC on the same holdout, is not
// published; the working model goes back to the serving version's weights and learning
// carries on from there. The holdout is every `holdoutEvery`-th sample by impression id
// (never trained on): the newest 200 clicked and 600 other ones by default (holdout.ts says why
// per class).
import type { LabelledSample } from '../events/schemas.js';
import type { FeatureVectorizer } from '../rank/feature-vector.js';
import { auc } from '../rank/metrics.js';
import { checkSlots, type RankerModelStore } from '../rank/model-store.js';
import { Ranker, type RankerWeights } from '../rank/ranker.js';
import { exampleFromSnapshot } from '../rank/snapshot.js';
import { allFinite } from '../util/finite.js';
import type { Rng } from '../util/rng.js';
import { FinalLabels } from './final-labels.js';
import { ClassBalancedHoldout } from './holdout.js';
import { examplesOf, hasSnapshot, inHoldout } from './samples.js';

export interface OnlineTrainerOptions {
  store: RankerModelStore;
  vectorizer: FeatureVectorizer;
  rng: Rng;
  stepEvery?: number;
  learningRate?: number;
  holdoutEvery?: number;
  /** The holdout keeps the newest this many clicked samples (default 200)… */
  holdoutPositives?: number;
  /** …and the newest this many others (default 600). */
  holdoutNegatives?: number;
  /** Refuse a version whose holdout AUC is this much below the serving one's. Default 0.02. */
  maxAucDrop?: number;
  /** The holdout needs this many samples with both labels before AUC is compared. */
  minHoldout?: number;
  /**
   * Hold samples until their labels are final: a sample is learned from once a sample
   * `labelDelayMs` newer (by event time) has arrived, in impression-time order. Set it to the
   * joiner's attribution window. Why: the joiner emits a click as soon as its watch arrives but
   * a non-click only when the window closes, so in arrival order the newest samples are mostly
   * clicks, and a model stepping on them learns that everything is clicked (measured: online AUC
   * fell to 0.25 within 1,600 samples). Default 0 (samples are final when they arrive).
   */
  labelDelayMs?: number;
  /** Adagrad rate of the ID embeddings during online steps. Default 0.05. */
  sparseLearningRate?: number;
}

export interface StepResult {
  /** The published version, or null when refused. */
  version: string | null;
  refused: string | null;
  samples: number;
  loss: number;
  holdoutAuc: number | null;
  servingAuc: number | null;
  /** Wall ms from the step's last sample to the version being published (or refused). */
  stepMs: number;
  /** Where stepMs went: the gradient step, the guardrail's holdout check, writing the version. */
  parts: { trainMs: number; guardMs: number; saveMs: number };
}

export interface OnlineTrainerStats {
  samples: number;
  skipped: number;
  steps: number;
  published: number;
  refused: number;
  holdout: number;
  /** Samples held until their labels are final. */
  waiting: number;
  servingVersion: string | null;
}

export class OnlineTrainer {
  private readonly buffer: LabelledSample[] = [];
  /** Holdout scores of the serving model, and of the last candidate, by impression id. */
  private servingScores = new Map<string, number>();
  private candidateScores = new Map<string, number>();
  private readonly holdout: ClassBalancedHoldout;
  private readonly stepEvery: number;
  private readonly learningRate: number;
  private readonly holdoutEvery: number;
  private readonly maxAucDrop: number;
  private readonly minHoldout: number;
  private readonly counts = { samples: 0, skipped: 0, steps: 0, published: 0, refused: 0 };

  private constructor(
    private readonly opts: OnlineTrainerOptions,
    /** The model being trained. */
    private working: Ranker,
    /** The last published weights (what servers run): where a refused step goes back to. */
    private servingWeights: RankerWeights,
    private servingVersion: string | null,
    /** Samples waiting for their labels to be final (labelDelayMs). */
    private readonly final: FinalLabels,
  ) {
    this.stepEvery = opts.stepEvery ?? 100;
    this.learningRate = opts.learningRate ?? 0.001;
    this.holdoutEvery = opts.holdoutEvery ?? 10;
    this.holdout = new ClassBalancedHoldout(
      opts.holdoutPositives ?? 200,
      opts.holdoutNegatives ?? 600,
    );
    this.maxAucDrop = opts.maxAucDrop ?? 0.02;
    this.minHoldout = opts.minHoldout ?? 300;
  }

  /** Continues from the serving version, or from `initial` when there is none. */
  static async open(
    opts: OnlineTrainerOptions,
    initial?: () => Promise<Ranker>,
  ): Promise<OnlineTrainer> {
    const final = new FinalLabels(opts.labelDelayMs ?? 0, 'labelDelayMs');
    const current = await opts.store.loadCurrent(opts.rng.fork('load'));
    if (current)
      checkSlots(
        `the serving ranker ${current.version}`,
        current.manifest.featureSlots,
        opts.vectorizer.slotNames,
      );
    let base: Ranker;
    if (current) base = current.ranker;
    else if (initial) base = await initial();
    else throw new Error('no ranker version to continue from: run `recmaster train-rank` first');
    const weights = base.weights();
    base.dispose();
    const working = await Ranker.create(
      base.config,
      opts.rng.fork('working'),
      opts.sparseLearningRate ?? 0.05,
      weights,
    );
    return new OnlineTrainer(opts, working, weights, current?.version ?? null, final);
  }

  get model(): Ranker {
    return this.working;
  }

  stats(): OnlineTrainerStats {
    return {
      ...this.counts,
      waiting: this.final.size,
      holdout: this.holdout.size,
      servingVersion: this.servingVersion,
    };
  }

  /** Takes one sample; returns the results of the steps it completed (usually none). */
  async add(sample: LabelledSample): Promise<StepResult[]> {
    if (!hasSnapshot(sample)) {
      this.counts.skipped++;
      return [];
    }
    const steps: StepResult[] = [];
    for (const s of this.final.add([sample])) steps.push(...(await this.take(s)));
    return steps;
  }

  private async take(sample: LabelledSample): Promise<StepResult[]> {
    this.counts.samples++;
    if (inHoldout(sample.impressionId, this.holdoutEvery)) {
      this.holdout.add({ sample, example: exampleFromSnapshot(this.opts.vectorizer, sample) });
      return [];
    }
    this.buffer.push(sample);
    if (this.buffer.length < this.stepEvery) return [];
    return [await this.step()];
  }

  private async step(): Promise<StepResult> {
    const started = performance.now();
    const batch = this.buffer.splice(0, this.buffer.length);
    const data = examplesOf(this.opts.vectorizer, batch);
    this.counts.steps++;
    const parts = { trainMs: 0, guardMs: 0, saveMs: 0 };
    let mark = performance.now();
    const lap = (part: keyof typeof parts) => {
      const now = performance.now();
      parts[part] += now - mark;
      mark = now;
    };
    this.scoreNewHoldout();
    lap('guardMs');
    let loss = Number.NaN;
    let refused: string | null = null;
    try {
      loss = await this.working.train(data.examples, data.clicked, data.watchedS, {
        epochs: 1,
        batchSize: batch.length,
        learningRate: this.learningRate,
        rng: this.opts.rng.fork(`step${this.counts.steps}`),
      });
    } catch (err) {
      refused = `training failed: ${(err as Error).message}`;
    }
    lap('trainMs');
    const weights = this.working.weights();
    if (!refused && !(this.working.tablesFinite && netFinite(weights)))
      refused = 'non-finite weights';
    let holdoutAuc: number | null = null;
    let servingAuc: number | null = null;
    if (!refused) {
      [holdoutAuc, servingAuc] = this.compareOnHoldout();
      if (holdoutAuc !== null && servingAuc !== null && holdoutAuc < servingAuc - this.maxAucDrop)
        refused = `holdout AUC ${holdoutAuc.toFixed(4)} < serving ${servingAuc.toFixed(4)} - ${this.maxAucDrop}`;
    }
    lap('guardMs');
    if (refused) {
      this.counts.refused++;
      // Back to the serving weights; learning goes on from the last good version.
      const back = await Ranker.create(
        this.working.config,
        this.opts.rng.fork('revert'),
        this.opts.sparseLearningRate ?? 0.05,
        this.servingWeights,
      );
      this.working.dispose();
      this.working = back;
      return {
        version: null,
        refused,
        samples: batch.length,
        loss,
        holdoutAuc,
        servingAuc,
        stepMs: performance.now() - started,
        parts,
      };
    }
    const version = await this.opts.store.save(
      this.working,
      this.opts.vectorizer.slotNames,
      {
        trainer: 'online',
        samples: this.counts.samples,
        step: this.counts.steps,
        loss,
        holdoutAuc,
        from: this.servingVersion,
      },
      true,
      weights,
    );
    lap('saveMs');
    this.servingWeights = weights;
    // The candidate just published is the serving model now: its holdout scores carry over.
    this.servingScores = this.candidateScores;
    this.candidateScores = new Map();
    this.servingVersion = version;
    this.counts.published++;
    return {
      version,
      refused: null,
      samples: batch.length,
      loss,
      holdoutAuc,
      servingAuc,
      stepMs: performance.now() - started,
      parts,
    };
  }

  /**
   * Scores holdout samples that came in since the last step with the working model, which at
   * that moment is the serving one (a step either publishes it or goes back to it), so the
   * serving model never needs its own copy to be compared against.
   */
  private scoreNewHoldout(): void {
    const fresh = this.holdout
      .rows()
      .filter(({ sample }) => !this.servingScores.has(sample.impressionId));
    if (fresh.length === 0) return;
    const ex = fresh.map((r) => r.example);
    const [p] = this.working.predict(this.working.inputs(ex, undefined, true), ex.length);
    fresh.forEach(({ sample: s }, k) => {
      // A non-finite score means the working model is broken already (its step will be
      // refused): leave the sample unscored until a published model scores it.
      const score = p?.[k] as number;
      if (Number.isFinite(score)) this.servingScores.set(s.impressionId, score);
    });
  }

  /**
   * [working AUC, serving AUC] on the holdout, or nulls while it is too small or one-sided.
   * Serving scores are kept between steps (the serving model changes only when a version is
   * published, and then it is the candidate just scored), so a step scores the holdout once.
   */
  private compareOnHoldout(): [number | null, number | null] {
    const rows = this.holdout.rows();
    if (rows.length < this.minHoldout) return [null, null];
    const [working] = this.working.predict(
      this.working.inputs(
        rows.map((r) => r.example),
        undefined,
        true,
      ),
      rows.length,
    );
    this.candidateScores = new Map(
      rows.map(({ sample }, i) => [sample.impressionId, working?.[i] as number]),
    );
    // Both models on the same samples: those the serving model has a score for.
    const both = rows.flatMap(({ sample: s }, i) => {
      const serving = this.servingScores.get(s.impressionId);
      return serving === undefined
        ? []
        : [{ clicked: s.clicked ? 1 : 0, serving, working: working?.[i] as number }];
    });
    const positives = both.reduce((a, b) => a + b.clicked, 0);
    if (both.length < this.minHoldout || positives === 0 || positives === both.length)
      return [null, null];
    const labels = both.map((b) => b.clicked);
    return [
      auc(
        both.map((b) => b.working),
        labels,
      ),
      auc(
        both.map((b) => b.serving),
        labels,
      ),
    ];
  }

  dispose(): void {
    this.working.dispose();
  }
}

/** The dense net's weights (small); the ID tables track their own finiteness as they step. */
function netFinite(w: RankerWeights): boolean {
  for (const a of w.net.values()) if (!allFinite(a)) return false;
  return true;
}
