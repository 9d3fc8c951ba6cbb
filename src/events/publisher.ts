// Typed writing side of the bus: validates, encodes, and routes each event to its
// topic and key. A caller that builds an invalid event gets an error, never a
// silent drop.
import type { AppendResult, Bus } from '../bus/bus.js';
import { RecmasterError } from '../errors.js';
import { encodeEvent, validateEvent } from './codec.js';
import type { Event } from './schemas.js';
import { keyOf, Topics, topicOf } from './topics.js';

export interface PublisherOptions {
  /** Check every event against its schema before appending. Default true. */
  validate?: boolean;
}

export class EventPublisher {
  private readonly bus: Bus;
  private readonly validate: boolean;

  constructor(bus: Bus, options: PublisherOptions = {}) {
    this.bus = bus;
    this.validate = options.validate ?? true;
  }

  /** Creates every topic the system uses, so consumers can start before producers. */
  async ensureTopics(partitions?: number): Promise<void> {
    for (const topic of Object.values(Topics)) {
      await this.bus.ensureTopic(topic, partitions === undefined ? {} : { partitions });
    }
  }

  /** Appends the events (grouped per topic, order kept per key); resolves when durable. */
  async publish(events: readonly Event[]): Promise<AppendResult[]> {
    const byTopic = new Map<string, { key: string; value: Uint8Array; index: number }[]>();
    events.forEach((event, index) => {
      if (this.validate) {
        const checked = validateEvent(event);
        if (!checked.ok) {
          throw new RecmasterError(
            'E_EVENT_INVALID',
            `refusing to publish event ${event.id ?? '?'}: ${checked.reason}`,
          );
        }
      }
      const topic = topicOf(event);
      const list = byTopic.get(topic) ?? [];
      byTopic.set(topic, list);
      list.push({ key: keyOf(event), value: encodeEvent(event), index });
    });
    const results: AppendResult[] = new Array(events.length);
    const append = async (
      topic: string,
      records: { key: string; value: Uint8Array; index: number }[],
    ) => {
      const appended = await this.bus.append(topic, records);
      records.forEach((r, i) => {
        results[r.index] = appended[i] as AppendResult;
      });
    };
    // Items first: a reader that sees an impression or click of an item can then be
    // sure the item's upsert is already readable (the feature engine relies on it).
    const items = byTopic.get(Topics.items);
    if (items) await append(Topics.items, items);
    await Promise.all(
      [...byTopic].filter(([t]) => t !== Topics.items).map(([t, r]) => append(t, r)),
    );
    return results;
  }
}
