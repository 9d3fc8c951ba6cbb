// Reads topics from offset 0 onwards without a consumer group: for processes whose state is
// rebuilt from the log at every start (a server's graph and popularity), so there is nothing
// to commit. Decodes events; records that do not decode are skipped here (the consumers that
// own them dead-letter them).
import { decodeEvent } from '../events/codec.js';
import type { Event } from '../events/schemas.js';
import type { Bus } from './bus.js';

export class LogFollower {
  /** Next offset per topic and partition. */
  private readonly next = new Map<string, number[]>();
  private readonly known = new Set<string>();
  skipped = 0;

  constructor(
    private readonly bus: Bus,
    private readonly topics: readonly string[],
  ) {}

  /**
   * Reads what is new in every topic (topic by topic, in the order given: items before
   * feedback, so an interaction's item is known) and returns the events; empty when caught up.
   */
  async poll(maxPerPartition = 5000): Promise<Event[]> {
    const out: Event[] = [];
    // Listing topics reads a directory: only done while some topic does not exist yet.
    if (this.topics.some((t) => !this.known.has(t)))
      for (const t of await this.bus.topics()) this.known.add(t);
    for (const topic of this.topics) {
      if (!this.known.has(topic)) continue;
      const info = await this.bus.describe(topic);
      const next = this.next.get(topic) ?? [];
      this.next.set(topic, next);
      for (const p of info.partitions) {
        const from = Math.max(next[p.partition] ?? 0, p.startOffset);
        if (from >= p.endOffset) continue;
        const records = await this.bus.read(topic, p.partition, from, maxPerPartition);
        for (const r of records) {
          const decoded = decodeEvent(r.value);
          if (decoded.ok) out.push(decoded.event);
          else this.skipped++;
        }
        next[p.partition] = (records.at(-1)?.offset ?? from - 1) + 1;
      }
    }
    return out;
  }

  /** Reads until caught up with the log as it is now, handing over each batch. */
  async catchUp(onEvents: (events: Event[]) => Promise<void> | void): Promise<number> {
    let total = 0;
    for (;;) {
      const events = await this.poll();
      if (events.length === 0) return total;
      await onEvents(events);
      total += events.length;
    }
  }
}
