// Deterministic ids: a run's event and request ids depend only on the seed and the order
// things happen in, so two runs with the same seed produce byte-identical streams.
export class IdSource {
  private events = 0;
  private requests = 0;

  private readonly prefix: string;

  constructor(seed: number, runId = 0) {
    this.prefix = runId === 0 ? `${seed}` : `${seed}.${runId}`;
  }

  nextEventId(): string {
    return `e${this.prefix}-${(this.events++).toString(36)}`;
  }

  nextRequestId(): string {
    return `r${this.prefix}-${(this.requests++).toString(36)}`;
  }
}
