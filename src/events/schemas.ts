// The events the system carries, as zod schemas: one source of truth for the
// TypeScript types, runtime validation at every boundary, and (later) the OpenAPI
// document of the ingest endpoint.
import { z } from 'zod';

const id = z.string().min(1).max(128);
/** Event time in epoch milliseconds (the time the thing happened, not when we saw it). */
const eventTime = z.number().int().nonnegative().max(8.64e15);
const seconds = z.number().finite().nonnegative();

/** Fields every event has: `id` for de-duplication, `ts` for event-time processing. */
const envelope = {
  id,
  ts: eventTime,
};

/** A new or changed item, metadata only (what a cold item is known by). */
export const ItemUpsert = z.strictObject({
  ...envelope,
  type: z.literal('item_upsert'),
  itemId: id,
  category: id,
  tags: z.array(id).max(32),
  creator: id,
  durationS: z.number().finite().positive().max(86_400),
  createdAt: eventTime,
});

/** Feature values the ranker saw, flattened: numbers or short numeric/id sequences. */
export const FeatureSnapshot = z.record(
  z.string().max(128),
  z.union([z.number().finite(), z.array(z.union([z.number().finite(), id])).max(256)]),
);

/** One item shown to one user in one response, as the server logged it. */
export const Impression = z.strictObject({
  ...envelope,
  type: z.literal('impression'),
  requestId: id,
  userId: id,
  itemId: id,
  position: z.number().int().nonnegative().max(10_000),
  modelVersion: z.string().min(1).max(64),
  /** Which recall source found the item (ann, i2i, fresh, popular, sim-policy, ...). */
  source: z.string().min(1).max(32),
  scores: z.record(z.string().max(32), z.number().finite()),
  features: FeatureSnapshot,
});

export const Click = z.strictObject({
  ...envelope,
  type: z.literal('click'),
  requestId: id,
  userId: id,
  itemId: id,
});

/** Emitted once when the user stops watching an item they clicked. */
export const Watch = z.strictObject({
  ...envelope,
  type: z.literal('watch'),
  requestId: id,
  userId: id,
  itemId: id,
  watchedS: seconds,
  durationS: z.number().finite().positive(),
});

/** An impression joined with its feedback: what the online trainer learns from. */
export const LabelledSample = z.strictObject({
  ...envelope,
  type: z.literal('sample'),
  /** The impression's event id: the sample is emitted at most once per impression. */
  impressionId: id,
  /** Event time of the impression (`ts` is when the label became final). */
  impressionTs: eventTime,
  requestId: id,
  userId: id,
  itemId: id,
  position: z.number().int().nonnegative(),
  modelVersion: z.string().min(1).max(64),
  clicked: z.boolean(),
  /** Seconds watched; 0 when there was no watch (a negative, or a click whose watch came too late). */
  watchedS: seconds,
  /** The item's duration as the watch reported it; absent when no watch was joined. */
  durationS: z.number().finite().positive().optional(),
  features: FeatureSnapshot,
  /**
   * The serving model's scores for the impression, as it logged them (absent in samples from
   * before they were carried): what that model predicted when it chose, not later.
   */
  scores: z.record(z.string().max(32), z.number().finite()).optional(),
});

/** A model version was published (by the trainer) or rolled back (by an operator). */
export const ModelPublished = z.strictObject({
  ...envelope,
  type: z.literal('model_published'),
  model: z.string().min(1).max(64),
  version: z.string().min(1).max(64),
  reason: z.string().max(256),
});

/** Something worth drawing on a timeline (drift started, a run began, ...). */
export const Marker = z.strictObject({
  ...envelope,
  type: z.literal('marker'),
  name: z.string().min(1).max(64),
  detail: z.record(z.string().max(64), z.union([z.string().max(256), z.number().finite()])),
});

export const Event = z.discriminatedUnion('type', [
  ItemUpsert,
  Impression,
  Click,
  Watch,
  LabelledSample,
  ModelPublished,
  Marker,
]);

export type ItemUpsert = z.infer<typeof ItemUpsert>;
export type Impression = z.infer<typeof Impression>;
export type Click = z.infer<typeof Click>;
export type Watch = z.infer<typeof Watch>;
export type LabelledSample = z.infer<typeof LabelledSample>;
export type ModelPublished = z.infer<typeof ModelPublished>;
export type Marker = z.infer<typeof Marker>;
export type FeatureSnapshot = z.infer<typeof FeatureSnapshot>;
export type Event = z.infer<typeof Event>;
export type EventType = Event['type'];

/** Feedback is what users do to what they were shown. */
export type Feedback = Click | Watch;
