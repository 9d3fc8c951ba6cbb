// How long a follower waits before polling again: the base interval while polls find
// something, doubling (up to a cap) while they come back empty. An empty poll of the log
// still lists and reads every partition of its topics, so polling an idle log every 10 ms
// kept ~0.2 of a core busy (measured on the server with nothing arriving).

export class IdleBackoff {
  private wait: number;

  constructor(
    private readonly baseMs: number,
    private readonly maxMs: number,
  ) {
    if (!(baseMs > 0) || !(maxMs >= baseMs))
      throw new Error(`backoff: need 0 < base (${baseMs}) ≤ max (${maxMs})`);
    this.wait = baseMs;
  }

  /** After a poll: the wait before the next one (0 when it found something: poll again now). */
  next(found: boolean): number {
    if (found) {
      this.wait = this.baseMs;
      return 0;
    }
    const wait = this.wait;
    this.wait = Math.min(this.maxMs, this.wait * 2);
    return wait;
  }
}
