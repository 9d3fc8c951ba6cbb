// Where each event type lives on the bus and what it is keyed by. Feedback and
// impressions are both keyed by user, so a joiner sees one user's impressions and
// clicks in the same partition (as it would on Kafka).
import type { Event, EventType } from './schemas.js';

export const Topics = {
  items: 'items',
  impressions: 'impressions',
  feedback: 'feedback',
  samples: 'samples',
  models: 'models',
  markers: 'markers',
} as const;

/**
 * Each consumer group dead-letters into a topic of its own: the embedded log has one
 * writer per topic, and several consumer processes may each meet bad records.
 */
export function deadLetterTopic(group: string): string {
  return `dead-letter.${group}`;
}

export type TopicName = (typeof Topics)[keyof typeof Topics];

const topicOfType: Record<EventType, TopicName> = {
  item_upsert: Topics.items,
  impression: Topics.impressions,
  click: Topics.feedback,
  watch: Topics.feedback,
  sample: Topics.samples,
  model_published: Topics.models,
  marker: Topics.markers,
};

export function topicOf(event: Event): TopicName {
  return topicOfType[event.type];
}

export function keyOf(event: Event): string {
  switch (event.type) {
    case 'item_upsert':
      return event.itemId;
    case 'impression':
    case 'click':
    case 'watch':
    case 'sample':
      return event.userId;
    case 'model_published':
      return event.model;
    case 'marker':
      return event.name;
  }
}
