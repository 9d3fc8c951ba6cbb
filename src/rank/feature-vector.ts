// Real-time features as the ranker's dense input, one definition for serving and training:
// the server turns store rows into a vector, logs it with the impression as a named snapshot,
// and training turns the snapshot back into the same vector (training–serving consistency by
// construction, not by recomputation).
//
// Transforms follow the catalogue: counts and sums (and decayed counts) → log1p, ratios as they
// are, a missing value → 0 with a per-entity "row missing" flag. Sequences (last-N ids) are not
// dense features: the ranker pools their embeddings separately.
//
// Request context comes last: `ctx.gnn_score`, the GraphSAGE affinity of the user's query and
// the item's vector (recall's own score, computed for every candidate, whichever source found
// it), with `ctx.missing` set when there is none (no GNN model, or a user without history).
import { FEATURES, type FeatureDefinition } from '../features/definitions.js';
import type { FeatureRow } from '../store/store.js';

export type Transform = 'log1p' | 'identity';

/** Per-request values that are not in the feature store (see the header). */
export const CONTEXT_FEATURES = ['gnn_score'] as const;
export type ContextFeature = (typeof CONTEXT_FEATURES)[number];

export interface VectorSlot {
  /** `${entity}.${feature}` or `${entity}.missing`. */
  name: string;
  entity: 'user' | 'item' | 'user_category' | 'ctx';
  feature: string | null;
  transform: Transform;
}

export class FeatureVectorizer {
  readonly slots: readonly VectorSlot[];
  /** The slots' names, in order: what a saved model lists, and what loading one checks. */
  readonly slotNames: readonly string[];
  private readonly index: ReadonlyMap<string, number>;
  private readonly byEntity: Record<VectorSlot['entity'], EntitySlots>;
  private readonly ctxMissing: number;

  constructor(features: readonly FeatureDefinition[] = FEATURES) {
    const slots: VectorSlot[] = [];
    for (const entity of ['user', 'item', 'user_category'] as const) {
      for (const f of features) {
        if (f.entity !== entity) continue;
        if (f.kind === 'aggregate' && f.aggregation.kind === 'last_n') continue;
        slots.push({
          name: `${entity}.${f.name}`,
          entity,
          feature: f.name,
          transform: f.kind === 'derived' ? 'identity' : 'log1p',
        });
      }
      slots.push({ name: `${entity}.missing`, entity, feature: null, transform: 'identity' });
    }
    for (const feature of CONTEXT_FEATURES)
      slots.push({ name: `ctx.${feature}`, entity: 'ctx', feature, transform: 'identity' });
    slots.push({ name: 'ctx.missing', entity: 'ctx', feature: null, transform: 'identity' });
    this.slots = slots;
    this.slotNames = slots.map((s) => s.name);
    this.index = new Map(slots.map((s, i) => [s.name, i]));
    this.ctxMissing = slots.findIndex((s) => s.name === 'ctx.missing');
    const of = (entity: VectorSlot['entity']): EntitySlots => {
      const mine = slots.map((s, i) => ({ s, i })).filter(({ s }) => s.entity === entity);
      return {
        index: mine.map(({ i }) => i),
        feature: mine.map(({ s }) => s.feature),
        log1p: mine.map(({ s }) => s.transform === 'log1p'),
      };
    };
    this.byEntity = {
      user: of('user'),
      item: of('item'),
      user_category: of('user_category'),
      ctx: of('ctx'),
    };
  }

  get width(): number {
    return this.slots.length;
  }

  /**
   * Rows [n, width] for one user and n candidate items; `userCategory[i]` is the user's
   * user×category row for item i's category (null or absent when unknown).
   */
  vectors(
    user: FeatureRow | null,
    items: readonly (FeatureRow | null)[],
    userCategory: readonly (FeatureRow | null)[] = [],
    /** Per-candidate context values by feature name (CONTEXT_FEATURES); absent → missing. */
    context: Readonly<Partial<Record<ContextFeature, ArrayLike<number>>>> | null = null,
  ): Float32Array {
    const width = this.width;
    const out = new Float32Array(items.length * width);
    // The user's slots are the same for every item: computed once, then copied.
    const userPart = new Float32Array(width);
    this.fill(userPart, 0, this.byEntity.user, user);
    for (let i = 0; i < items.length; i++) {
      const at = i * width;
      out.set(userPart, at);
      this.fill(out, at, this.byEntity.item, items[i] ?? null);
      this.fill(out, at, this.byEntity.user_category, userCategory[i] ?? null);
      const ctx = this.byEntity.ctx;
      let missing = context === null;
      for (let k = 0; k < ctx.index.length; k++) {
        const feature = ctx.feature[k] as ContextFeature | null;
        if (feature === null) continue;
        const v = context?.[feature]?.[i];
        const ok = typeof v === 'number' && Number.isFinite(v);
        if (!ok) missing = true;
        out[at + (ctx.index[k] as number)] = ok ? v : 0;
      }
      out[at + this.ctxMissing] = missing ? 1 : 0;
    }
    return out;
  }

  /** Writes one entity's slots of one row (the hot loop of every ranking request). */
  private fill(out: Float32Array, at: number, slots: EntitySlots, row: FeatureRow | null): void {
    const values = row?.values;
    for (let k = 0; k < slots.index.length; k++) {
      const s = slots.index[k] as number;
      const feature = slots.feature[k] as string | null;
      if (feature === null) out[at + s] = row ? 0 : 1;
      else {
        const v = values?.[feature];
        out[at + s] =
          typeof v !== 'number' || !Number.isFinite(v)
            ? 0
            : slots.log1p[k]
              ? Math.log1p(Math.max(0, v))
              : v;
      }
    }
  }

  /** One vector as a named snapshot, for the impression log. */
  toSnapshot(vector: Float32Array, offset = 0): Record<string, number> {
    const snapshot: Record<string, number> = {};
    this.slots.forEach((slot, s) => {
      snapshot[slot.name] = vector[offset + s] as number;
    });
    return snapshot;
  }

  /**
   * A logged snapshot back to a vector. Names the catalogue no longer has are ignored; slots the
   * snapshot lacks (a feature added since it was logged) read as missing: 0.
   */
  fromSnapshot(snapshot: Readonly<Record<string, unknown>>, out = new Float32Array(this.width)) {
    out.fill(0);
    for (const [name, value] of Object.entries(snapshot)) {
      const s = this.index.get(name);
      if (s !== undefined && typeof value === 'number' && Number.isFinite(value)) out[s] = value;
    }
    return out;
  }
}

/** One entity's slots as parallel arrays: slot position, feature name (null: "missing"), transform. */
interface EntitySlots {
  index: number[];
  feature: (string | null)[];
  log1p: boolean[];
}
