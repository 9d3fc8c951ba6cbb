// String ids and their attributes on dense integer slots. A slot is the usearch key of
// an item (or its row in the exact index); freed slots are reused, so keys stay dense
// (0..n): that keeps the exact index's matrix compact, and usearch 2.25's identity-hashed
// key table is only fast for dense keys. Attributes live in typed columns so a filter
// is a few array reads per candidate.
import { z } from 'zod';
import { VectorIndexError } from './errors.js';
import type { SearchFilter, VectorAttrs } from './vector-index.js';

/** A compiled filter: which slots pass, and how many live items may pass (an upper bound). */
export interface SlotFilter {
  accept: (slot: number) => boolean;
  eligible: number;
  /** Live items excluded by id. */
  excluded: number;
}

const NO_CATEGORY = -1;

export const slotTableJson = z.object({
  slots: z.array(z.number().int().nonnegative()),
  ids: z.array(z.string().min(1)),
  categoryNames: z.array(z.string()),
  /** Index into categoryNames, or -1. */
  categories: z.array(z.number().int()),
  createdMs: z.array(z.number().nullable()),
});
export type SlotTableJson = z.infer<typeof slotTableJson>;

export class SlotTable {
  private ids: (string | undefined)[] = [];
  private readonly slotById = new Map<string, number>();
  private free: number[] = [];
  private category = new Int32Array(1024).fill(NO_CATEGORY);
  private created = new Float64Array(1024).fill(Number.NaN);
  private readonly categoryNames: string[] = [];
  private readonly categoryCode = new Map<string, number>();
  private readonly categoryCount: number[] = [];

  get size(): number {
    return this.slotById.size;
  }

  /** One past the highest slot ever used: slots are in [0, slotLimit). */
  get slotLimit(): number {
    return this.ids.length;
  }

  slotOf(id: string): number | undefined {
    return this.slotById.get(id);
  }

  idAt(slot: number): string | undefined {
    return this.ids[slot];
  }

  /** Gives `id` a slot (its old one if present) and records its attributes. */
  assign(id: string, attrs: VectorAttrs | undefined): { slot: number; existed: boolean } {
    let slot = this.slotById.get(id);
    const existed = slot !== undefined;
    if (slot === undefined) {
      slot = this.free.pop() ?? this.ids.length;
      if (slot === this.ids.length) this.ids.push(undefined);
      this.ensureColumns(slot + 1);
      this.ids[slot] = id;
      this.slotById.set(id, slot);
    } else {
      this.clearAttrs(slot);
    }
    const category = attrs?.category;
    if (category !== undefined) {
      const code = this.codeOf(category);
      this.category[slot] = code;
      this.categoryCount[code] = (this.categoryCount[code] ?? 0) + 1;
    }
    this.created[slot] = attrs?.createdMs ?? Number.NaN;
    return { slot, existed };
  }

  /** Frees the slot of `id`; returns it, or undefined if `id` was absent. */
  release(id: string): number | undefined {
    const slot = this.slotById.get(id);
    if (slot === undefined) return undefined;
    this.clearAttrs(slot);
    this.created[slot] = Number.NaN;
    this.ids[slot] = undefined;
    this.slotById.delete(id);
    this.free.push(slot);
    return slot;
  }

  /** null when the filter lets everything through. */
  compile(filter: SearchFilter | undefined): SlotFilter | null {
    if (filter === undefined) return null;
    const checks: ((slot: number) => boolean)[] = [];
    let eligible = this.size;
    let excludedCount = 0;

    if (filter.categories !== undefined) {
      const wanted = new Uint8Array(this.categoryNames.length);
      eligible = 0;
      for (const name of new Set(filter.categories)) {
        const code = this.categoryCode.get(name);
        if (code === undefined) continue;
        wanted[code] = 1;
        eligible += this.categoryCount[code] ?? 0;
      }
      const category = this.category;
      checks.push((slot) => wanted[category[slot] as number] === 1);
    }
    if (filter.minCreatedMs !== undefined) {
      const min = filter.minCreatedMs;
      const created = this.created;
      // NaN (no createdMs) fails the comparison, as documented.
      checks.push((slot) => (created[slot] as number) >= min);
    }
    if (filter.excludeIds !== undefined) {
      const excluded = new Set<number>();
      for (const id of filter.excludeIds) {
        const slot = this.slotById.get(id);
        if (slot !== undefined) excluded.add(slot);
      }
      excludedCount = excluded.size;
      if (excluded.size > 0) {
        eligible = Math.max(0, Math.min(eligible, this.size - excluded.size));
        checks.push((slot) => !excluded.has(slot));
      }
    }
    if (checks.length === 0) return null;
    const [a, b, c] = checks;
    let accept: (slot: number) => boolean;
    if (checks.length === 1 && a) accept = a;
    else if (checks.length === 2 && a && b) accept = (s) => a(s) && b(s);
    else if (a && b && c) accept = (s) => a(s) && b(s) && c(s);
    else throw new Error('unreachable: at most three filter checks');
    return { accept, eligible, excluded: excludedCount };
  }

  toJSON(): SlotTableJson {
    const out: SlotTableJson = {
      slots: [],
      ids: [],
      categoryNames: [...this.categoryNames],
      categories: [],
      createdMs: [],
    };
    for (const [id, slot] of this.slotById) {
      out.slots.push(slot);
      out.ids.push(id);
      out.categories.push(this.category[slot] as number);
      const created = this.created[slot] as number;
      out.createdMs.push(Number.isNaN(created) ? null : created);
    }
    return out;
  }

  static fromJSON(raw: unknown, where: string): SlotTable {
    const parsed = slotTableJson.safeParse(raw);
    const json = parsed.data;
    const n = json?.slots.length ?? 0;
    if (
      !json ||
      json.ids.length !== n ||
      json.categories.length !== n ||
      json.createdMs.length !== n
    )
      throw new VectorIndexError('E_VECTOR_CORRUPT', `${where} is not a valid item table`);
    const table = new SlotTable();
    for (const name of json.categoryNames) table.codeOf(name);
    let limit = 0;
    for (const slot of json.slots) limit = Math.max(limit, slot + 1);
    table.ids = new Array(limit).fill(undefined);
    table.ensureColumns(limit);
    for (let i = 0; i < n; i += 1) {
      const slot = json.slots[i] as number;
      const id = json.ids[i] as string;
      const code = json.categories[i] as number;
      if (
        table.ids[slot] !== undefined ||
        table.slotById.has(id) ||
        code >= table.categoryNames.length
      )
        throw new VectorIndexError('E_VECTOR_CORRUPT', `${where}: duplicate slot or id "${id}"`);
      table.ids[slot] = id;
      table.slotById.set(id, slot);
      if (code >= 0) {
        table.category[slot] = code;
        table.categoryCount[code] = (table.categoryCount[code] ?? 0) + 1;
      }
      table.created[slot] = json.createdMs[i] ?? Number.NaN;
    }
    // Lowest slots last, so they are reused first and the slot range stays tight.
    for (let slot = limit - 1; slot >= 0; slot -= 1)
      if (table.ids[slot] === undefined) table.free.push(slot);
    return table;
  }

  private codeOf(category: string): number {
    let code = this.categoryCode.get(category);
    if (code === undefined) {
      code = this.categoryNames.length;
      this.categoryNames.push(category);
      this.categoryCode.set(category, code);
      this.categoryCount.push(0);
    }
    return code;
  }

  private clearAttrs(slot: number): void {
    const code = this.category[slot] as number;
    if (code !== NO_CATEGORY) {
      this.categoryCount[code] = (this.categoryCount[code] ?? 1) - 1;
      this.category[slot] = NO_CATEGORY;
    }
  }

  private ensureColumns(n: number): void {
    if (n <= this.category.length) return;
    let cap = this.category.length;
    while (cap < n) cap *= 2;
    const category = new Int32Array(cap).fill(NO_CATEGORY);
    category.set(this.category);
    const created = new Float64Array(cap).fill(Number.NaN);
    created.set(this.created);
    this.category = category;
    this.created = created;
  }
}
