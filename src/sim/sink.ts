// Where the simulator's events go. The bus adapter lives elsewhere; ArraySink is for tests.
import type { Event } from '../events/schemas.js';

export interface EventSink {
  /** Receives events in emission order; the simulator awaits it (backpressure). */
  emit(events: Event[]): Promise<void>;
}

/** Keeps every event in memory, in order. */
export class ArraySink implements EventSink {
  readonly events: Event[] = [];
  batches = 0;

  emit(events: Event[]): Promise<void> {
    for (const e of events) this.events.push(e);
    this.batches++;
    return Promise.resolve();
  }
}

/** Counts events and drops them (for throughput measurements). */
export class CountingSink implements EventSink {
  count = 0;
  batches = 0;

  emit(events: Event[]): Promise<void> {
    this.count += events.length;
    this.batches++;
    return Promise.resolve();
  }
}
