// Deterministic ids: a run's event and request ids depend only on the seed and the order
// things happen in, so two runs with the same seed produce byte-identical streams.
export class IdSource {
  private events = 0;
  private requests = 0;

  constructor(private readonly seed: number) {}

  nextEventId(): string {
    return `e${this.seed}-${(this.events++).toString(36)}`;
  }

  nextRequestId(): string {
    return `r${this.seed}-${(this.requests++).toString(36)}`;
  }
}
