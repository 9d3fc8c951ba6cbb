// The simulator's events onto the bus: each batch is published (validated, routed to
// its topic) and the simulator waits until it is durable, which is its backpressure.
import type { EventPublisher } from '../events/publisher.js';
import type { Event } from '../events/schemas.js';
import type { EventSink } from './sink.js';

export class PublisherSink implements EventSink {
  private readonly publisher: EventPublisher;

  constructor(publisher: EventPublisher) {
    this.publisher = publisher;
  }

  async emit(events: Event[]): Promise<void> {
    await this.publisher.publish(events);
  }
}
