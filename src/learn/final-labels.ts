// Holds labelled samples until their labels are final. The joiner emits a click as soon as its
// watch arrives but a non-click only when the attribution window closes, so in arrival order the
// newest samples are mostly clicks; whoever learns from them (the online trainer) or scores them
// (the learning loop's rolling AUC) takes them here instead, once a sample `delayMs` newer by
// event time has arrived, in impression order.
import { RecmasterError } from '../errors.js';
import type { LabelledSample } from '../events/schemas.js';

export class FinalLabels {
  private waiting: LabelledSample[] = [];
  /** The newest sample time seen. */
  private clock = Number.NEGATIVE_INFINITY;

  /** `option` names the setting in the error a bad delay gets. */
  constructor(
    readonly delayMs: number,
    option = 'delayMs',
  ) {
    // NaN would hold every sample forever (no impression time plus NaN is ever reached).
    if (!(Number.isFinite(delayMs) && delayMs >= 0))
      throw new RecmasterError('E_CONFIG', `${option} must be a number >= 0, got ${delayMs}`);
  }

  /** Samples still waiting. */
  get size(): number {
    return this.waiting.length;
  }

  /**
   * Takes new samples; returns those now final, in impression order (all that wait when
   * `endOfInput`). With no delay, the new samples as they came.
   */
  add(samples: readonly LabelledSample[], endOfInput = false): LabelledSample[] {
    if (this.delayMs <= 0) return [...samples];
    for (const s of samples) {
      this.waiting.push(s);
      if (s.ts > this.clock) this.clock = s.ts;
    }
    const ready: LabelledSample[] = [];
    const keep: LabelledSample[] = [];
    for (const s of this.waiting)
      (endOfInput || s.impressionTs + this.delayMs <= this.clock ? ready : keep).push(s);
    this.waiting = keep;
    return ready.sort((a, b) => a.impressionTs - b.impressionTs);
  }
}
