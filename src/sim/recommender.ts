// Who picks the slate: the built-in logging policy, or a real server over HTTP. A server
// logs its own impressions, so in that mode the simulator only sends feedback and items.
import { z } from 'zod';
import type { Event, Impression } from '../events/schemas.js';
import type { EventSink } from './sink.js';

export interface RecommendRequest {
  userId: string;
  count: number;
  /** Event time of the request, epoch ms. */
  ts: number;
}

export interface RecommendResponse {
  requestId: string;
  modelVersion: string;
  items: { itemId: string; position: number }[];
  /**
   * Impressions the simulator must emit itself (the local policy has no log of its own).
   * Absent when the recommender is a server that logs impressions on its side.
   */
  impressions?: Impression[];
}

export interface Recommender {
  recommend(req: RecommendRequest): Promise<RecommendResponse>;
}

const id = z.string().min(1).max(128);

/** What we accept from a server: extra fields are allowed, ids must fit our event schemas. */
const RecommendResponseSchema = z.looseObject({
  requestId: id,
  modelVersion: z.string().min(1).max(64),
  items: z.array(
    z.looseObject({
      itemId: id,
      position: z.number().int().nonnegative().max(10_000),
    }),
  ),
});

export interface HttpOptions {
  /** e.g. http://127.0.0.1:8080 (no trailing path). */
  baseUrl: string;
  /** Per-request timeout; default 5000 ms. */
  timeoutMs?: number;
  headers?: Record<string, string>;
}

async function post(opts: HttpOptions, path: string, body: unknown): Promise<Response> {
  const url = `${opts.baseUrl.replace(/\/+$/, '')}${path}`;
  const timeoutMs = opts.timeoutMs ?? 5000;
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...opts.headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const e = err as Error;
    if (e.name === 'TimeoutError') throw new Error(`POST ${url} timed out after ${timeoutMs} ms`);
    throw new Error(`POST ${url} failed: ${e.message}`, { cause: err });
  }
  if (!res.ok) {
    const text = await res.text().catch(() => '');
    let message = text;
    try {
      const parsed = JSON.parse(text) as { error?: unknown; message?: unknown };
      const m = parsed.error ?? parsed.message;
      if (typeof m === 'string') message = m;
      else if (m !== undefined) message = JSON.stringify(m);
    } catch {
      // not JSON: keep the text
    }
    throw new Error(`POST ${url} → HTTP ${res.status}: ${message.slice(0, 500) || res.statusText}`);
  }
  return res;
}

export class HttpRecommender implements Recommender {
  constructor(private readonly opts: HttpOptions) {}

  async recommend(req: RecommendRequest): Promise<RecommendResponse> {
    const res = await post(this.opts, '/recommend', {
      userId: req.userId,
      count: req.count,
      context: { ts: req.ts },
    });
    const body: unknown = await res.json();
    const parsed = RecommendResponseSchema.safeParse(body);
    if (!parsed.success) {
      throw new Error(`bad /recommend response:\n${z.prettifyError(parsed.error)}`);
    }
    const { requestId, modelVersion, items } = parsed.data;
    return {
      requestId,
      modelVersion,
      items: items.map((i) => ({ itemId: i.itemId, position: i.position })),
    };
  }
}

export class HttpEventSink implements EventSink {
  constructor(private readonly opts: HttpOptions) {}

  async emit(events: Event[]): Promise<void> {
    if (events.length === 0) return;
    const res = await post(this.opts, '/events', events);
    await res.arrayBuffer(); // drain the body so the connection can be reused
  }
}
