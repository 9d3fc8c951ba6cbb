// The simulator's knobs, validated with zod so a typo or an out-of-range value fails
// loudly (the schema is strict: unknown keys are errors, not silently ignored).
import { z } from 'zod';

const int = () => z.number().int();

export const SimConfigSchema = z.strictObject({
  /** Root seed: the same seed and config give the same world and the same event stream. */
  seed: int().min(0).max(0xffff_ffff).default(42),
  /** Number of users (u0..u<users-1>); fixed for the run. */
  users: int().min(1).max(10_000_000).default(1000),
  /** Initial catalogue size (i0..i<items-1>); new items continue the numbering. */
  items: int().min(1).max(10_000_000).default(5000),
  /** Number of categories (c0..); popularity over categories is Zipf-like (c0 most popular). */
  categories: int().min(1).max(100_000).default(20),
  /** Tags per category; tag t<j> belongs to category floor(j / tagsPerCategory). */
  tagsPerCategory: int().min(1).max(10_000).default(10),
  /** Number of creators (a0..); each has a home category. */
  creators: int().min(1).max(10_000_000).default(300),
  /** Dimension of all latent vectors. */
  dim: int().min(2).max(1024).default(16),
  /**
   * Share of an item's latent-vector variance that is item-specific, i.e. NOT explained by its
   * metadata (category, tags, creator). 0 = metadata tells everything; 1 = metadata is useless.
   */
  hiddenShare: z.number().min(0).max(1).default(0.3),
  /**
   * Cosine between the click-task and watch-task weight vectors (the MMoE paper's synthetic
   * knob): 1 makes both tasks the same function, 0 makes their linear parts uncorrelated.
   */
  taskCorrelation: z.number().min(-1).max(1).default(0.7),
  /** Amplitude of the paper's sin terms added to each task signal (0 = purely linear). */
  nonlinearity: z.number().min(0).max(10).default(0.3),
  /** Items per recommendation request. */
  slateSize: int().min(1).max(1000).default(10),
  /** How many random candidates the built-in logging policy scores per request. */
  policyCandidates: int().min(1).max(100_000).default(200),
  /** Event-time rate of recommendation requests (Poisson), per second. */
  requestsPerSecond: z.number().positive().max(1e7).default(50),
  /** Event-time rate of new items (Poisson), per minute; 0 = closed catalogue. */
  newItemsPerMinute: z.number().nonnegative().max(1e7).default(30),
  /** Event-time seconds after startTime when interest drift happens; null = never. */
  driftAtS: z.number().nonnegative().nullable().default(null),
  /** Share of users who get a fresh interest vector at driftAtS. */
  driftShare: z.number().min(0).max(1).default(0.3),
  /**
   * Which run of a resumed simulation this is: event and request ids carry it, so a run that
   * continues an earlier one's log never reuses its ids. 0 (the default) leaves ids as they were.
   */
  runId: int().min(0).max(1_000_000).default(0),
  /** Event time of the start, epoch ms. */
  startTime: int()
    .nonnegative()
    .max(8.64e15)
    .default(Date.UTC(2026, 0, 1)),
  /**
   * Max random delay (ms) added to the emission of feedback events (click, watch), so the
   * stream is out of order by up to this much; their `ts` stays the true event time.
   */
  disorderMs: int().nonnegative().max(86_400_000).default(0),
});

export type SimConfig = z.output<typeof SimConfigSchema>;
export type SimConfigInput = z.input<typeof SimConfigSchema>;

/** Fills in defaults and validates; throws an Error listing every bad field. */
export function parseSimConfig(partial: unknown = {}): SimConfig {
  const result = SimConfigSchema.safeParse(partial ?? {});
  if (!result.success) {
    throw new Error(`invalid simulator config:\n${z.prettifyError(result.error)}`);
  }
  return result.data;
}
