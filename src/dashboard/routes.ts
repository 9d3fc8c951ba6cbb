// The live dashboard's routes: the page, its static files (uPlot comes from node_modules, never a
// CDN, so the demo works offline), the state as JSON for the page's 1 s polling, and one user's
// explained recommendations.
//
// Registered as an encapsulated plugin: it brings its own zod compilers and error handler, so it
// works on any Fastify app (the ingest app's error handler explains event bodies, not these).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { DashboardSource } from './contract.js';

export const DASHBOARD_PATH = '/dashboard';

export interface DashboardOptions {
  /** Redirect `/` to the dashboard. Default true. */
  redirectRoot?: boolean;
}

/**
 * The page's folder. The files are not TypeScript, so tsc does not copy them: from
 * src/dashboard/ (tsx) they sit next to this module, and from dist/dashboard/ (tsc) the same
 * relative path to the package root leads back to src/dashboard/page/.
 */
export function pageDir(): string {
  const candidates = [
    new URL('./page/', import.meta.url),
    new URL('../../src/dashboard/page/', import.meta.url),
  ].map((u) => fileURLToPath(u));
  const found = candidates.find((dir) => existsSync(path.join(dir, 'index.html')));
  if (!found) throw new Error(`dashboard page not found in ${candidates.join(' or ')}`);
  return found;
}

/** The static files, by the name the page asks for. */
function assets(): Map<string, { file: string; type: string }> {
  const dir = pageDir();
  const require = createRequire(import.meta.url);
  const js = 'text/javascript; charset=utf-8';
  const css = 'text/css; charset=utf-8';
  const list: [string, string, string][] = [
    ['index.html', path.join(dir, 'index.html'), 'text/html; charset=utf-8'],
    ['dashboard.js', path.join(dir, 'dashboard.js'), js],
    ['dashboard.css', path.join(dir, 'dashboard.css'), css],
    ['uPlot.iife.min.js', require.resolve('uplot/dist/uPlot.iife.min.js'), js],
    ['uPlot.min.css', require.resolve('uplot/dist/uPlot.min.css'), css],
  ];
  for (const [, file] of list) {
    if (!existsSync(file)) throw new Error(`dashboard asset missing: ${file}`);
  }
  return new Map(list.map(([name, file, type]) => [name, { file, type }]));
}

const ErrorBody = z.object({ error: z.string(), message: z.string() });

/** The explain response (ExplainedItem in ./contract.ts), validated on the way out. */
const Explained = z.object({
  userId: z.string(),
  modelVersion: z.string(),
  items: z.array(
    z.object({
      itemId: z.string(),
      position: z.number().int(),
      source: z.string(),
      cold: z.boolean(),
      scores: z.object({ click: z.number(), watchSeconds: z.number(), final: z.number() }),
      category: z.string().optional(),
    }),
  ),
});

/**
 * Adds the dashboard to an app: `GET /dashboard` (the page; `/` redirects to it),
 * `GET /dashboard/assets/:name`, `GET /api/dashboard[?since=ms]` and
 * `GET /api/users/:userId/recommendations`. The routes exist once the app is ready
 * (`ready()`, `listen()` or the first `inject()`).
 */
export function registerDashboard(
  app: FastifyInstance,
  source: DashboardSource,
  options: DashboardOptions = {},
): void {
  const files = assets();

  app.register(async (child) => {
    child.setValidatorCompiler(validatorCompiler);
    child.setSerializerCompiler(serializerCompiler);
    child.setErrorHandler((err: FastifyError, _req, reply) => {
      if (hasZodFastifySchemaValidationErrors(err)) {
        const where = err.validationContext ?? 'request';
        const message = err.validation
          .map((v) => `${where}${v.instancePath}: ${v.message}`)
          .join('; ');
        return reply.code(400).send({ error: 'invalid_request', message });
      }
      const status = err.statusCode ?? 500;
      if (status >= 400 && status < 500) {
        return reply.code(status).send({ error: err.code ?? 'bad_request', message: err.message });
      }
      reply.log.error(err);
      return reply.code(500).send({ error: 'internal', message: 'internal error' });
    });
    const zapp = child.withTypeProvider<ZodTypeProvider>();

    const sendFile = async (name: string, reply: FastifyReply) => {
      const asset = files.get(name);
      if (!asset) {
        return reply.code(404).send({ error: 'not_found', message: `no dashboard asset ${name}` });
      }
      reply.header('content-type', asset.type);
      reply.header('cache-control', 'no-cache');
      reply.header('x-content-type-options', 'nosniff');
      return reply.send(await readFile(asset.file));
    };

    if (options.redirectRoot ?? true) {
      zapp.get('/', { schema: { hide: true } }, (_req, reply) => reply.redirect(DASHBOARD_PATH));
    }
    zapp.get(`${DASHBOARD_PATH}/`, { schema: { hide: true } }, (_req, reply) =>
      reply.redirect(DASHBOARD_PATH),
    );
    zapp.get(DASHBOARD_PATH, { schema: { hide: true } }, (_req, reply) =>
      sendFile('index.html', reply),
    );
    zapp.get(
      `${DASHBOARD_PATH}/assets/:name`,
      { schema: { hide: true, params: z.object({ name: z.string() }) } },
      (req, reply) => sendFile(req.params.name, reply),
    );

    zapp.get(
      '/api/dashboard',
      {
        schema: {
          description:
            'The live dashboard state (DashboardState in src/dashboard/contract.ts): one point per second, newest last, model versions, markers such as drift, totals. With `since` (epoch ms), only the points newer than it.',
          querystring: z.object({ since: z.coerce.number().optional() }),
        },
      },
      async (req) => {
        const state = source.state();
        const since = req.query.since;
        if (since === undefined) return state;
        return { ...state, points: state.points.filter((p) => p.t > since) };
      },
    );

    zapp.get(
      '/api/users/:userId/recommendations',
      {
        schema: {
          description:
            "One user's recommendations with why each item was chosen (recall source, task scores). No impression is logged for these lookups.",
          params: z.object({ userId: z.string().min(1).max(128) }),
          response: { 200: Explained, 400: ErrorBody, 404: ErrorBody },
        },
      },
      async (req, reply) => {
        const { userId } = req.params;
        const result = await source.explain(userId);
        if (!result) {
          return reply
            .code(404)
            .send({ error: 'not_found', message: `no recommendations for user "${userId}"` });
        }
        return result;
      },
    );
  });
}
