// Feature definitions as data: what a feature is keyed by, which events feed it, what each event
// contributes, how contributions are aggregated and over which event-time window, and how long
// an idle key's state is kept. No functions live in a definition, so the embedded engine and the
// Flink SQL compiler (a later issue) consume the same objects and a parity test can compare them
// value by value.
//
// Conventions both engines must follow (the parity contract):
// - Time is event time (`ts`, epoch ms). Windows are aligned to the epoch (offset 0, UTC), as
//   Flink's HOP/TUMBLE are by default.
// - A sliding window of `sizeMs` hopping by `slideMs` read "as of" t is the hop window
//   [e - sizeMs, e) with e = (floor(t / slideMs) + 1) * slideMs: the window that ends with the
//   slide containing t. A tumbling window is the sliding window with slideMs = sizeMs.
// - A decayed window weighs an event at time ti read at t >= ti by 2^(-(t - ti) / halfLifeMs).
// - An unbounded window keeps everything since the key's state was created (or expired by TTL).
// - `ttlMs`: a key's state is dropped when no event for it arrived in the last ttlMs of event
//   time (measured against the watermark). Reads of a dropped key give the empty value.
// - Watermark: the engine's, not a definition's: watermark = newest event time seen minus the
//   allowed lateness (Flink: WATERMARK FOR ts AS ts - INTERVAL ...). A windowed event older than
//   the window as of the watermark is late and not counted (see window-state.ts); decayed,
//   unbounded and last-N features take late events (order-independent closed forms).
// - Derived features are computed at read time from the values of other features of the same
//   entity and the same window; they keep no state and have no TTL of their own.
import { z } from 'zod';
import { RecmasterError } from '../errors.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** What a feature is keyed by. */
export const Entity = z.enum(['user', 'item', 'user_category']);
export type Entity = z.infer<typeof Entity>;

/**
 * The key fields of each entity, as data. `user_category` needs `category`, which no behaviour
 * event carries: the engine must look it up from the latest `item_upsert` of the event's `itemId`
 * seen so far (a lookup join on the `items` topic, as of processing). An event whose item has no
 * known category yet is not counted for a `user_category` feature (the engine counts it as
 * `unknown_category`); both engines must do the same for parity.
 */
export const ENTITY_KEYS = {
  user: { fields: ['userId'], joins: [] },
  item: { fields: ['itemId'], joins: [] },
  user_category: {
    fields: ['userId', 'category'],
    joins: [{ field: 'category', from: 'item_upsert', on: 'itemId', as: 'latest' }],
  },
} as const satisfies Record<
  Entity,
  {
    fields: readonly string[];
    joins: readonly { field: string; from: 'item_upsert'; on: 'itemId'; as: 'latest' }[];
  }
>;

/** Behaviour events a feature can be fed by (all carry userId and itemId). */
export const SourceEvent = z.enum(['impression', 'click', 'watch']);
export type SourceEvent = z.infer<typeof SourceEvent>;

/** Numeric fields of each source event that a feature may read. */
export const NUMERIC_FIELDS = {
  impression: ['position'],
  click: [],
  watch: ['watchedS', 'durationS'],
} as const satisfies Record<SourceEvent, readonly string[]>;

const NumericField = z.enum(['position', 'watchedS', 'durationS']);
type NumericField = z.infer<typeof NumericField>;

const featureName = z
  .string()
  .regex(/^[a-z][a-z0-9_]*$/, 'lower snake case: [a-z][a-z0-9_]*')
  .max(64);
const positiveMs = z.number().int().positive();

/**
 * What one event contributes to a `sum`: a field, or a ratio of two fields clamped to
 * [0, clampMax] (e.g. watchedS / durationS, clamped to 1: a rewatch counts as complete).
 */
export const Contribution = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('field'), field: NumericField }),
  z.strictObject({
    kind: z.literal('ratio'),
    numerator: NumericField,
    denominator: NumericField,
    clampMax: z.number().finite().positive().optional(),
  }),
]);
export type Contribution = z.infer<typeof Contribution>;

/**
 * How contributions are aggregated. `count`: 1 per event. `sum`: the contribution. `last_n`: the
 * item ids of the n most recent events in event time (ties in arrival order), newest last;
 * `dedupeConsecutive` collapses an item repeated back to back (a double click) into its latest
 * occurrence: exact for events that arrive in time order; an out-of-order event is inserted at
 * its time position and compared with its predecessor only.
 */
export const Aggregation = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('count') }),
  z.strictObject({ kind: z.literal('sum'), value: Contribution }),
  z.strictObject({
    kind: z.literal('last_n'),
    n: z.number().int().positive().max(1000),
    dedupeConsecutive: z.boolean(),
  }),
]);
export type Aggregation = z.infer<typeof Aggregation>;

/** The most slide buckets one sliding window may keep per key. */
export const MAX_BUCKETS = 2048;

export const Window = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('sliding'), sizeMs: positiveMs, slideMs: positiveMs }),
  z.strictObject({ kind: z.literal('tumbling'), sizeMs: positiveMs }),
  z.strictObject({ kind: z.literal('decayed'), halfLifeMs: positiveMs }),
  z.strictObject({ kind: z.literal('unbounded') }),
]);
export type Window = z.infer<typeof Window>;

/** A feature computed by the engine from events. */
export const AggregateFeature = z
  .strictObject({
    kind: z.literal('aggregate'),
    name: featureName,
    description: z.string().min(1).max(300),
    entity: Entity,
    sources: z.array(SourceEvent).min(1),
    aggregation: Aggregation,
    window: Window,
    ttlMs: positiveMs,
  })
  .superRefine((def, ctx) => {
    const { window: w, aggregation: agg } = def;
    if (new Set(def.sources).size !== def.sources.length) {
      ctx.addIssue({ code: 'custom', path: ['sources'], message: 'sources repeat an event type' });
    }
    if (w.kind === 'sliding') {
      if (w.sizeMs % w.slideMs !== 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['window', 'slideMs'],
          message: `slideMs must divide sizeMs (${w.sizeMs})`,
        });
      } else if (w.sizeMs / w.slideMs > MAX_BUCKETS) {
        ctx.addIssue({
          code: 'custom',
          path: ['window', 'slideMs'],
          message: `sizeMs / slideMs must be at most ${MAX_BUCKETS} buckets`,
        });
      }
    }
    if ((w.kind === 'sliding' || w.kind === 'tumbling') && def.ttlMs < w.sizeMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['ttlMs'],
        message: `ttlMs must be at least the window size (${w.sizeMs})`,
      });
    }
    if (agg.kind === 'last_n' && w.kind !== 'unbounded') {
      ctx.addIssue({
        code: 'custom',
        path: ['window', 'kind'],
        message: 'last_n keeps the n newest events: its window must be unbounded',
      });
    }
    if (agg.kind === 'sum') {
      const fields: NumericField[] =
        agg.value.kind === 'field'
          ? [agg.value.field]
          : [agg.value.numerator, agg.value.denominator];
      for (const source of def.sources) {
        const has: readonly string[] = NUMERIC_FIELDS[source];
        for (const field of fields) {
          if (!has.includes(field)) {
            ctx.addIssue({
              code: 'custom',
              path: ['aggregation', 'value'],
              message: `source event ${source} has no numeric field ${field}`,
            });
          }
        }
      }
    }
  });
export type AggregateFeature = z.infer<typeof AggregateFeature>;

/**
 * A feature computed at read time from two others: (numerator + prior.mean * prior.weight) /
 * (denominator + prior.weight). Without a prior (or weight 0) and a zero denominator the value is
 * null ("no data"). Use a prior for CTRs (Bayesian smoothing: a key with few impressions stays
 * near the prior mean) and none for plain means (completion = sum of ratios / count).
 */
export const DerivedFeature = z.strictObject({
  kind: z.literal('derived'),
  name: featureName,
  description: z.string().min(1).max(300),
  entity: Entity,
  op: z.literal('ratio'),
  numerator: featureName,
  denominator: featureName,
  prior: z
    .strictObject({
      mean: z.number().finite().nonnegative(),
      weight: z.number().finite().nonnegative(),
    })
    .optional(),
});
export type DerivedFeature = z.infer<typeof DerivedFeature>;

export const FeatureDefinition = z.discriminatedUnion('kind', [AggregateFeature, DerivedFeature]);
export type FeatureDefinition = z.infer<typeof FeatureDefinition>;

function sameWindow(a: Window, b: Window): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * A catalogue: every definition valid, names unique, derived features referring to aggregate
 * features of the same entity and the same window.
 */
export const FeatureCatalogue = z.array(FeatureDefinition).superRefine((defs, ctx) => {
  const byName = new Map<string, FeatureDefinition>();
  defs.forEach((def, i) => {
    if (byName.has(def.name)) {
      ctx.addIssue({
        code: 'custom',
        path: [i, 'name'],
        message: `duplicate feature name ${JSON.stringify(def.name)}`,
      });
    } else {
      byName.set(def.name, def);
    }
  });
  defs.forEach((def, i) => {
    if (def.kind !== 'derived') return;
    const refs: AggregateFeature[] = [];
    for (const field of ['numerator', 'denominator'] as const) {
      const ref = byName.get(def[field]);
      if (ref === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: [i, field],
          message: `unknown feature ${JSON.stringify(def[field])}`,
        });
      } else if (ref.kind !== 'aggregate') {
        ctx.addIssue({
          code: 'custom',
          path: [i, field],
          message: `${JSON.stringify(def[field])} is derived: a ratio refers to aggregate features`,
        });
      } else if (ref.entity !== def.entity) {
        ctx.addIssue({
          code: 'custom',
          path: [i, field],
          message: `${JSON.stringify(def[field])} is keyed by ${ref.entity}, not ${def.entity}`,
        });
      } else if (ref.aggregation.kind === 'last_n') {
        ctx.addIssue({
          code: 'custom',
          path: [i, field],
          message: `${JSON.stringify(def[field])} is a sequence, not a number`,
        });
      } else {
        refs.push(ref);
      }
    }
    const [num, den] = refs;
    if (num !== undefined && den !== undefined && !sameWindow(num.window, den.window)) {
      ctx.addIssue({
        code: 'custom',
        path: [i, 'denominator'],
        message: `numerator and denominator must share one window`,
      });
    }
  });
});

/** Parses a catalogue or throws E_CONFIG naming the offending field (`features[3].window.sizeMs`). */
export function parseCatalogue(input: unknown): FeatureDefinition[] {
  const parsed = FeatureCatalogue.safeParse(input);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((issue) => {
    const where = issue.path
      .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
      .join('');
    return `features${where}: ${issue.message}`;
  });
  throw new RecmasterError('E_CONFIG', `invalid feature definitions:\n${lines.join('\n')}`);
}

// ---------------------------------------------------------------------------------------------
// The catalogue.
//
// Slides (bucket widths) per window size, the accuracy/cost trade-off of a sliding window: a read
// is exact at the slide boundary and the window edge moves in steps of one slide.
//   1 min  -> 5 s slides   (12 buckets)
//   1 h    -> 1 min slides (60 buckets)
//   24 h   -> 15 min slides (96 buckets; 5-min slides would cost 288 per key and feature for an
//             edge step of 0.35 % instead of 1 % of the window)
// TTL: twice the window for windowed features (an idle key reads 0 anyway after one window),
// ten half-lives for decayed ones (weight < 0.1 %), 30 days for sequences.
// ---------------------------------------------------------------------------------------------

export const SLIDES = {
  '1m': { sizeMs: MINUTE, slideMs: 5_000 },
  '1h': { sizeMs: HOUR, slideMs: MINUTE },
  '24h': { sizeMs: DAY, slideMs: 15 * MINUTE },
} as const;
type Span = keyof typeof SLIDES;

function sliding(span: Span): Window {
  return { kind: 'sliding', ...SLIDES[span] };
}

function windowed(
  name: string,
  description: string,
  entity: Entity,
  sources: SourceEvent[],
  aggregation: Aggregation,
  span: Span,
): AggregateFeature {
  const window = sliding(span);
  return {
    kind: 'aggregate',
    name,
    description,
    entity,
    sources,
    aggregation,
    window,
    ttlMs: 2 * SLIDES[span].sizeMs,
  };
}

const count: Aggregation = { kind: 'count' };
const watchedSeconds: Aggregation = { kind: 'sum', value: { kind: 'field', field: 'watchedS' } };
const watchRatio: Aggregation = {
  kind: 'sum',
  value: { kind: 'ratio', numerator: 'watchedS', denominator: 'durationS', clampMax: 1 },
};
const spans: Span[] = ['1m', '1h', '24h'];
/** Prior for click-through rates: about the logging policy's CTR, worth a few impressions. */
const USER_CTR_PRIOR = { mean: 0.05, weight: 20 };
const ITEM_CTR_PRIOR = { mean: 0.05, weight: 100 };

/** `<entity>_ctr_<span>`: clicks / impressions over the span, smoothed towards the prior. */
function smoothedCtr(
  entity: 'user' | 'item',
  span: Span,
  prior: { mean: number; weight: number },
): DerivedFeature {
  return {
    kind: 'derived',
    name: `${entity}_ctr_${span}`,
    description: `the ${entity}'s click-through rate, last ${span}, smoothed towards ${prior.mean}`,
    entity,
    op: 'ratio',
    numerator: `${entity}_clicks_${span}`,
    denominator: `${entity}_impressions_${span}`,
    prior,
  };
}

const catalogue: FeatureDefinition[] = [
  ...spans.flatMap((s): FeatureDefinition[] => [
    windowed(`user_clicks_${s}`, `clicks by the user, last ${s}`, 'user', ['click'], count, s),
    windowed(
      `user_impressions_${s}`,
      `items shown to the user, last ${s}`,
      'user',
      ['impression'],
      count,
      s,
    ),
    windowed(
      `user_watch_s_${s}`,
      `seconds watched by the user, last ${s}`,
      'user',
      ['watch'],
      watchedSeconds,
      s,
    ),
  ]),
  ...(['1h', '24h'] as const).map((s) => smoothedCtr('user', s, USER_CTR_PRIOR)),
  windowed(
    'user_watches_24h',
    'watch events of the user, last 24h',
    'user',
    ['watch'],
    count,
    '24h',
  ),
  windowed(
    'user_completion_sum_24h',
    'sum of watchedS / durationS (clamped to 1) over the user’s watches, last 24h',
    'user',
    ['watch'],
    watchRatio,
    '24h',
  ),
  {
    kind: 'derived',
    name: 'user_completion_24h',
    description: 'the user’s average completion ratio, last 24h (null without watches)',
    entity: 'user',
    op: 'ratio',
    numerator: 'user_completion_sum_24h',
    denominator: 'user_watches_24h',
  },
  {
    kind: 'aggregate',
    name: 'user_last_clicks',
    description: 'ids of the 50 items the user clicked last, oldest first',
    entity: 'user',
    sources: ['click'],
    aggregation: { kind: 'last_n', n: 50, dedupeConsecutive: true },
    window: { kind: 'unbounded' },
    ttlMs: 30 * DAY,
  },
  {
    kind: 'aggregate',
    name: 'user_category_affinity',
    description: 'clicks by the user on items of the category, decayed with a 24h half-life',
    entity: 'user_category',
    sources: ['click'],
    aggregation: count,
    window: { kind: 'decayed', halfLifeMs: DAY },
    ttlMs: 10 * DAY,
  },
  ...(['1h', '24h'] as const).flatMap((s): FeatureDefinition[] => [
    windowed(
      `item_impressions_${s}`,
      `times the item was shown, last ${s}`,
      'item',
      ['impression'],
      count,
      s,
    ),
    windowed(`item_clicks_${s}`, `clicks on the item, last ${s}`, 'item', ['click'], count, s),
    smoothedCtr('item', s, ITEM_CTR_PRIOR),
  ]),
  {
    kind: 'aggregate',
    name: 'item_watches_decayed',
    description: 'watch events of the item, decayed with a 24h half-life',
    entity: 'item',
    sources: ['watch'],
    aggregation: count,
    window: { kind: 'decayed', halfLifeMs: DAY },
    ttlMs: 10 * DAY,
  },
  {
    kind: 'aggregate',
    name: 'item_watch_ratio_sum_decayed',
    description: 'sum of watchedS / durationS (clamped to 1) on the item, 24h half-life',
    entity: 'item',
    sources: ['watch'],
    aggregation: watchRatio,
    window: { kind: 'decayed', halfLifeMs: DAY },
    ttlMs: 10 * DAY,
  },
  {
    kind: 'derived',
    name: 'item_watch_ratio',
    description: 'the item’s average watch ratio (decayed mean), smoothed towards 0.3 by 5 watches',
    entity: 'item',
    op: 'ratio',
    numerator: 'item_watch_ratio_sum_decayed',
    denominator: 'item_watches_decayed',
    prior: { mean: 0.3, weight: 5 },
  },
  {
    kind: 'aggregate',
    name: 'item_popularity',
    description: 'clicks on the item, decayed with a 6h half-life',
    entity: 'item',
    sources: ['click'],
    aggregation: count,
    window: { kind: 'decayed', halfLifeMs: 6 * HOUR },
    ttlMs: 60 * HOUR,
  },
];

/** The feature catalogue, validated at import: a bad definition fails loudly at startup. */
export const FEATURES: readonly FeatureDefinition[] = Object.freeze(parseCatalogue(catalogue));

/** Definitions by name. */
export const FEATURES_BY_NAME: ReadonlyMap<string, FeatureDefinition> = new Map(
  FEATURES.map((f) => [f.name, f]),
);

/**
 * The value of a derived ratio from its inputs' values (the one formula both engines implement).
 */
export function ratioValue(
  def: DerivedFeature,
  numerator: number,
  denominator: number,
): number | null {
  const weight = def.prior?.weight ?? 0;
  const mean = def.prior?.mean ?? 0;
  const den = denominator + weight;
  if (den === 0) return null;
  return (numerator + mean * weight) / den;
}

/**
 * What one event contributes to a `sum` (the other formula both engines implement). A missing
 * field or a zero denominator contributes 0; a ratio is clamped to [0, clampMax].
 */
export function contributionOf(
  value: Contribution,
  event: Partial<Record<NumericField, number>>,
): number {
  if (value.kind === 'field') return event[value.field] ?? 0;
  const num = event[value.numerator] ?? 0;
  const den = event[value.denominator] ?? 0;
  if (den === 0) return 0;
  const ratio = Math.max(0, num / den);
  return value.clampMax === undefined ? ratio : Math.min(ratio, value.clampMax);
}
