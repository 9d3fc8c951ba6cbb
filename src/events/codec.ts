// Events travel as UTF-8 JSON: readable with any tool, and the same bytes on the
// embedded log and on Kafka. Decoding never throws: it says what is wrong.
//
// Validation has two layers over one definition. The zod schemas are the truth (types,
// messages); every consumer validates every record, and zod's parse allocated ~40 % of
// the feature engine's garbage (a payload per field and check, then a copy of the event).
// So a record is first checked by ajv against the JSON Schema zod generates from the same
// schemas (compiled once, checks in place, allocates nothing when valid); only a record ajv
// refuses goes through zod, which decides and words the reasons. A test keeps the two
// verdicts equal on valid and mutated events.
import { Ajv } from 'ajv';
import { z } from 'zod';
import { Event } from './schemas.js';

/** Ajv's check of the JSON Schema of `Event`; the type is zod's. */
const fastCheck = compileFastCheck();

/** True when the compiled check accepts `raw` (zod must then agree: tested). */
export function passesFastCheck(raw: unknown): boolean {
  return fastCheck(raw);
}

function compileFastCheck(): (raw: unknown) => boolean {
  const schema = z.toJSONSchema(Event, { target: 'draft-7', unrepresentable: 'throw' }) as Record<
    string,
    unknown
  >;
  delete schema.$schema;
  // Straight to the branch named by `type` instead of trying all seven (oneOf). String
  // lengths count code points in both (zod since 4.x, ajv by default).
  const ajv = new Ajv({ discriminator: true, allErrors: false });
  return ajv.compile({
    ...schema,
    type: 'object',
    required: ['type'],
    discriminator: { propertyName: 'type' },
  });
}

export function encodeEvent(event: Event): Buffer {
  return Buffer.from(JSON.stringify(event), 'utf8');
}

export type Decoded =
  | { ok: true; event: Event }
  | { ok: false; kind: 'json' | 'schema'; reason: string };

export function decodeEvent(bytes: Uint8Array): Decoded {
  let raw: unknown;
  try {
    raw = JSON.parse(
      Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'),
    );
  } catch (err) {
    return { ok: false, kind: 'json', reason: `not JSON: ${(err as Error).message}` };
  }
  return validateEvent(raw);
}

export function validateEvent(raw: unknown): Decoded {
  if (fastCheck(raw)) return { ok: true, event: raw as Event };
  const parsed = Event.safeParse(raw);
  if (parsed.success) return { ok: true, event: parsed.data };
  return { ok: false, kind: 'schema', reason: describeIssues(parsed.error.issues) };
}

/** One line per problem, with the path that has it: what a person needs to fix the sender. */
export function describeIssues(
  issues: readonly { path: PropertyKey[]; message: string }[],
): string {
  return issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.map(String).join('.') : '(event)'}: ${i.message}`)
    .join('; ');
}
