// The HTTP app (Fastify: schema-first routes, fast JSON, inject() for tests without a socket,
// and a zod type provider so one schema validates, types and documents each route).
// Routes: recommendations, event ingest, health, readiness, Prometheus metrics and the
// OpenAPI document.
//
// Bad input never becomes a 5xx: a body that is not JSON, too large, or fails the event
// schema gets a 4xx with a message saying what is wrong and where.
import swagger from '@fastify/swagger';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { Counter, Histogram } from 'prom-client';
import { z } from 'zod';
import { validateEvent } from '../events/codec.js';
import type { EventPublisher } from '../events/publisher.js';
import { Event } from '../events/schemas.js';
import { registry } from '../util/metrics.js';
import type { RecommendResult } from './recommend-service.js';

/** What answers POST /recommend (serve/recommend-service.ts). */
export interface Recommender {
  recommend(req: { userId: string; count: number; ts?: number }): Promise<RecommendResult>;
}

export interface AppOptions {
  publisher: EventPublisher;
  /** Absent: POST /recommend answers 503 (an ingest-only server). */
  recommender?: Recommender;
  /** Whether the server can take traffic (models loaded, stores reachable). */
  ready?: () => boolean;
  /** The model version serving now (reported by /readyz). */
  modelVersion?: () => string;
  /** Since when it serves, epoch ms (reported by /readyz). */
  modelSinceMs?: () => number | undefined;
  /** Largest request body, bytes. Default 1 MiB. */
  bodyLimit?: number;
}

/** At most this many items per recommendation. */
export const MAX_RECOMMEND_COUNT = 200;

const RecommendBody = z.strictObject({
  userId: z.string().min(1).max(128),
  count: z.number().int().min(1).max(MAX_RECOMMEND_COUNT).default(10),
  context: z
    .strictObject({
      /** Event time of the request (epoch ms); simulations pass their clock. Default: now. */
      ts: z.number().int().nonnegative().max(8.64e15).optional(),
    })
    .optional(),
});

const Readiness = z.object({
  ready: z.boolean(),
  modelVersion: z.string().optional(),
  /** When that version started serving (epoch ms, fractional). */
  modelSinceMs: z.number().optional(),
});

const RecommendResponse = z.object({
  requestId: z.string(),
  userId: z.string(),
  modelVersion: z.string(),
  candidates: z.number().int(),
  items: z.array(
    z.object({
      itemId: z.string(),
      position: z.number().int(),
      source: z.string(),
      cold: z.boolean(),
      scores: z.object({ click: z.number(), watchSeconds: z.number(), final: z.number() }),
    }),
  ),
});

/** At most this many events per ingest call (one log append). */
export const MAX_EVENTS_PER_CALL = 1000;

const requests = new Counter({
  name: 'recmaster_http_requests_total',
  help: 'HTTP requests by route and status class',
  labelNames: ['route', 'status'] as const,
  registers: [registry],
});
const latency = new Histogram({
  name: 'recmaster_http_request_seconds',
  help: 'HTTP request latency by route',
  labelNames: ['route'] as const,
  buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1],
  registers: [registry],
});

const ErrorBody = z.object({ error: z.string(), message: z.string() });

/**
 * What is wrong with a rejected body, for a person: a union schema only says "invalid input",
 * so events are re-checked one by one against their own type's schema.
 */
function explain(body: unknown, err: { validation: { instancePath: string; message?: string }[] }) {
  if (Array.isArray(body)) {
    if (body.length === 0) return 'an empty list: send at least one event';
    if (body.length > MAX_EVENTS_PER_CALL)
      return `${body.length} events: at most ${MAX_EVENTS_PER_CALL} per call`;
    for (const [i, item] of body.entries()) {
      const checked = validateEvent(item);
      if (!checked.ok) return `events[${i}]: ${checked.reason}`;
    }
  } else if (body !== null && typeof body === 'object') {
    const checked = validateEvent(body);
    if (!checked.ok) return checked.reason;
  } else {
    return 'the body must be an event object or a list of events';
  }
  return err.validation.map((v) => `${v.instancePath || '(body)'}: ${v.message}`).join('; ');
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    // Ids may be 128 characters (events allow it); Fastify's default path-parameter cap is 100.
    routerOptions: { maxParamLength: 512 },
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  await app.register(swagger, {
    openapi: {
      info: { title: 'RecMaster', version: '0.1.0', description: 'A real-time recommender.' },
    },
    transform: jsonSchemaTransform,
  });

  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unknown';
    requests.inc({ route, status: `${Math.floor(reply.statusCode / 100)}xx` });
    latency.observe({ route }, reply.elapsedTime / 1000);
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (hasZodFastifySchemaValidationErrors(err)) {
      const message =
        req.routeOptions.url === '/events'
          ? explain(req.body, err)
          : err.validation.map((v) => `${v.instancePath || '(body)'}: ${v.message}`).join('; ');
      return reply.code(400).send({ error: 'invalid_request', message });
    }
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      return reply.code(status).send({ error: err.code ?? 'bad_request', message: err.message });
    }
    reply.log.error(err);
    return reply.code(500).send({ error: 'internal', message: 'internal error' });
  });

  const zapp = app.withTypeProvider<ZodTypeProvider>();

  zapp.get(
    '/healthz',
    { schema: { response: { 200: z.object({ status: z.literal('ok') }) } } },
    async () => ({ status: 'ok' as const }),
  );

  zapp.get(
    '/readyz',
    {
      schema: {
        response: {
          200: Readiness,
          503: Readiness,
        },
      },
    },
    async (_req, reply) => {
      const ready = options.ready?.() ?? true;
      const version = options.modelVersion?.();
      const since = options.modelSinceMs?.();
      return reply.code(ready ? 200 : 503).send({
        ready,
        ...(version === undefined ? {} : { modelVersion: version }),
        ...(since === undefined ? {} : { modelSinceMs: since }),
      });
    },
  );

  zapp.get('/metrics', { schema: { hide: true } }, async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });

  zapp.post(
    '/recommend',
    {
      schema: {
        description:
          'Ranked items for a user: recall (GNN ANN, item-to-item, fresh, popular) minus what the user has seen, ranked by the multi-task model; logged as impressions.',
        body: RecommendBody,
        response: { 200: RecommendResponse, 400: ErrorBody, 503: ErrorBody },
      },
    },
    async (req, reply) => {
      if (!options.recommender || !(options.ready?.() ?? true))
        return reply
          .code(503)
          .send({ error: 'not_ready', message: 'the server is not ready to recommend yet' });
      const { userId, count, context } = req.body;
      return options.recommender.recommend({
        userId,
        count,
        ...(context?.ts === undefined ? {} : { ts: context.ts }),
      });
    },
  );

  zapp.post(
    '/events',
    {
      schema: {
        description: `Ingest events (validated; at most ${MAX_EVENTS_PER_CALL} per call, appended to the log in one batch).`,
        body: z.union([Event, z.array(Event).min(1).max(MAX_EVENTS_PER_CALL)]),
        response: { 202: z.object({ accepted: z.number().int() }), 400: ErrorBody },
      },
    },
    async (req, reply) => {
      const events = Array.isArray(req.body) ? req.body : [req.body];
      await options.publisher.publish(events);
      return reply.code(202).send({ accepted: events.length });
    },
  );

  zapp.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  return app;
}
