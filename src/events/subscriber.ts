// Typed reading side of the bus. Every record is decoded and validated; one that
// fails goes to the group's dead-letter topic with the reason and is counted, and the
// consumer carries on. Nothing invalid is dropped silently or crashes the reader.
import type { Bus, ConsumedRecord, Consumer, PollOptions, Positions } from '../bus/bus.js';
import { deadLetterCounter } from '../util/metrics.js';
import { decodeEvent } from './codec.js';
import type { Event } from './schemas.js';
import { deadLetterTopic } from './topics.js';

export interface DeadLetter {
  sourceTopic: string;
  partition: number;
  offset: number;
  kind: 'json' | 'schema';
  reason: string;
  /** The original bytes: as text when they are valid UTF-8, else base64. */
  payload: string;
  payloadEncoding: 'utf8' | 'base64';
  deadAt: number;
}

export interface ReceivedEvent {
  event: Event;
  record: ConsumedRecord;
}

export class EventSubscriber {
  readonly consumer: Consumer;
  private readonly bus: Bus;
  deadLetters = 0;

  private constructor(bus: Bus, consumer: Consumer) {
    this.bus = bus;
    this.consumer = consumer;
  }

  static async create(
    bus: Bus,
    options: { group: string; topics: string[]; reset?: 'earliest' | 'latest' },
  ): Promise<EventSubscriber> {
    return new EventSubscriber(bus, await bus.consumer(options));
  }

  /** Valid events in log order per partition; invalid ones are already dead-lettered. */
  async poll(options?: PollOptions): Promise<ReceivedEvent[]> {
    const records = await this.consumer.poll(options);
    const out: ReceivedEvent[] = [];
    const dead: DeadLetter[] = [];
    for (const record of records) {
      const decoded = decodeEvent(record.value);
      if (decoded.ok) out.push({ event: decoded.event, record });
      else dead.push(toDeadLetter(record, decoded.kind, decoded.reason));
    }
    if (dead.length > 0) {
      // Dead letters are durable before the caller can commit past them.
      await this.bus.append(
        deadLetterTopic(this.consumer.group),
        dead.map((d) => ({ key: d.sourceTopic, value: Buffer.from(JSON.stringify(d)) })),
      );
      for (const d of dead) deadLetterCounter.inc({ topic: d.sourceTopic, kind: d.kind });
      this.deadLetters += dead.length;
    }
    return out;
  }

  /** Commits what was polled so far, or the given positions. */
  commit(positions?: Positions): Promise<void> {
    return this.consumer.commit(positions);
  }

  close(): Promise<void> {
    return this.consumer.close();
  }
}

function toDeadLetter(record: ConsumedRecord, kind: 'json' | 'schema', reason: string): DeadLetter {
  const text = record.value.toString('utf8');
  const isText = Buffer.from(text, 'utf8').equals(record.value);
  return {
    sourceTopic: record.topic,
    partition: record.partition,
    offset: record.offset,
    kind,
    reason,
    payload: isText ? text : record.value.toString('base64'),
    payloadEncoding: isText ? 'utf8' : 'base64',
    deadAt: Date.now(),
  };
}
