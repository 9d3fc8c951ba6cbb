// Events travel as UTF-8 JSON: readable with any tool, and the same bytes on the
// embedded log and on Kafka. Decoding never throws: it says what is wrong.
import { Event } from './schemas.js';

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
