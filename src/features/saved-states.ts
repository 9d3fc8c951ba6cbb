/**
 * Where the states saved before they changed lie (FeatureEngine's copy-on-write checkpoints):
 * per key a chain of [code, start, end, next] records in one growable Int32Array, reused from
 * checkpoint to checkpoint. It replaced a Map of one small array per key: those lived as long
 * as a checkpoint (~2 s late in a long stream) and ~20k of them were promoted each time.
 */
export class SavedStates {
  private list = new Int32Array(4 * 4096);
  private count = 0;

  /** Forgets every chain (a checkpoint begins). */
  reset(): void {
    this.count = 0;
  }

  /**
   * Adds a record in front of the chain starting at `head` (-1: none); returns the new head.
   * `start` and `end` are -1 for a state that did not exist at the snapshot.
   */
  push(head: number, code: number, start: number, end: number): number {
    const at = this.count;
    if (at + 4 > this.list.length) {
      const grown = new Int32Array(this.list.length * 2);
      grown.set(this.list);
      this.list = grown;
    }
    this.list[at] = code;
    this.list[at + 1] = start;
    this.list[at + 2] = end;
    this.list[at + 3] = head;
    this.count = at + 4;
    return at;
  }

  /** The record of `code` in the chain starting at `head`, or -1. */
  find(head: number, code: number): number {
    const list = this.list;
    for (let at = head; at >= 0; at = list[at + 3] as number) if (list[at] === code) return at;
    return -1;
  }

  /** The saved bytes' start of the record at `at` (-1: the state did not exist). */
  start(at: number): number {
    return this.list[at + 1] as number;
  }

  end(at: number): number {
    return this.list[at + 2] as number;
  }
}
