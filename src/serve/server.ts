// The recommendation server, composed: the live state rebuilt from the log and then followed,
// the GNN recall from the current GraphSAGE model (every item embedded into an in-memory
// usearch index at start), the ranker from the current ranker version (hot-swapped when the
// pointer moves), and the HTTP app.
import type { FastifyInstance } from 'fastify';
import type { Bus } from '../bus/bus.js';
import { LogFollower } from '../bus/log-follower.js';
import { EventPublisher } from '../events/publisher.js';
import { Topics } from '../events/topics.js';
import { GnnRecall } from '../graph/gnn-recall.js';
import { InteractionGraph } from '../graph/graph.js';
import { GraphModelStore } from '../graph/model-store.js';
import { FeatureVectorizer } from '../rank/feature-vector.js';
import type { RankerModel } from '../rank/ranker.js';
import type { FeatureStore } from '../store/store.js';
import { logger } from '../util/logger.js';
import { Rng } from '../util/rng.js';
import { UsearchIndex } from '../vectors/index.js';
import { buildApp, type Recommender } from './app.js';
import { IdleBackoff } from './idle-backoff.js';
import { LiveState } from './live-state.js';
import { ModelWatcher } from './model-watcher.js';
import { RecommendService, type RecommendServiceOptions } from './recommend-service.js';

export interface ServerOptions {
  bus: Bus;
  store: FeatureStore;
  rankerDir: string;
  gnnDir: string;
  /** How often the log is polled for new items and feedback once caught up. Default 10 ms. */
  followEveryMs?: number;
  /** While polls find nothing, the wait doubles up to this (default 80 ms; see IdleBackoff). */
  followIdleMaxMs?: number;
  /** How often the ranker's `current` pointer is checked. Default 10 ms. */
  modelPollMs?: number;
  seed?: number;
  service?: Partial<Pick<RecommendServiceOptions, 'budget' | 'exploreShare' | 'freshWindowMs'>>;
}

export interface RecommendServer {
  app: FastifyInstance;
  service: RecommendService;
  live: LiveState;
  watcher: ModelWatcher;
  /** The GraphSAGE version serving recall (null: no GNN model yet, ANN recall is off). */
  gnnVersion: string | null;
  /**
   * Another recommender over the same live state, store and impression log with a model of
   * its own that never changes (the frozen arm of an online-vs-frozen comparison).
   */
  pinned(model: RankerModel): RecommendService;
  /** Routes POST /recommend to another recommender (e.g. an online/frozen arm router). */
  route(recommender: Recommender): void;
  close(): Promise<void>;
}

export async function createServer(opts: ServerOptions): Promise<RecommendServer> {
  const rng = new Rng(opts.seed ?? 7);
  const graph = new InteractionGraph();
  const live = new LiveState(graph);
  const follower = new LogFollower(opts.bus, [Topics.items, Topics.feedback]);
  const started = performance.now();
  const replayed = await follower.catchUp((events) => live.apply(events));

  const gnnModel = await new GraphModelStore(opts.gnnDir).latest();
  let index: UsearchIndex | null = null;
  if (gnnModel) {
    index = await UsearchIndex.open({ dim: gnnModel.model.vectorDim });
    const gnn = new GnnRecall(graph, index, gnnModel.model);
    await gnn.embedAll();
    live.attachGnn(gnn);
  }
  logger.info(
    {
      events: replayed,
      items: graph.itemCount,
      users: graph.userCount,
      gnn: gnnModel?.version ?? null,
      ms: Math.round(performance.now() - started),
    },
    'server state rebuilt from the log',
  );

  const publisher = new EventPublisher(opts.bus);
  await publisher.ensureTopics();
  const serviceOptions = {
    live,
    store: opts.store,
    vectorizer: new FeatureVectorizer(),
    // Impressions are built by typed code from validated parts: re-validating 20 of them
    // per request with zod cost 0.4 ms (measured), so this publisher skips it.
    publisher: new EventPublisher(opts.bus, { validate: false }),
    ...opts.service,
  };
  const service = new RecommendService({ ...serviceOptions, rng: rng.fork('service') });
  const watcher = new ModelWatcher({
    dir: opts.rankerDir,
    rng: rng.fork('models'),
    swap: (model) => service.setModel(model),
    intervalMs: opts.modelPollMs ?? 10,
    featureSlots: serviceOptions.vectorizer.slotNames,
  });
  await watcher.check();
  watcher.start();

  // Follow the log: new items are embedded and clicks change candidates within milliseconds
  // while events flow (within followIdleMaxMs after a quiet spell).
  let stopped = false;
  const following = (async () => {
    const every = opts.followEveryMs ?? 10;
    const backoff = new IdleBackoff(every, Math.max(every, opts.followIdleMaxMs ?? 80));
    while (!stopped) {
      try {
        const events = await follower.poll();
        const wait = backoff.next(events.length > 0);
        if (events.length > 0) await live.apply(events);
        else await new Promise((r) => setTimeout(r, wait));
      } catch (err) {
        logger.error({ err }, 'following the log failed; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  })();

  let routed: Recommender = service;
  const app = await buildApp({
    publisher,
    recommender: { recommend: (req) => routed.recommend(req) },
    modelVersion: () => service.modelVersion,
    modelSinceMs: () => service.modelSinceMs,
  });
  return {
    app,
    service,
    live,
    watcher,
    gnnVersion: gnnModel?.version ?? null,
    route(recommender) {
      routed = recommender;
    },
    pinned(model) {
      const pinned = new RecommendService({
        ...serviceOptions,
        rng: rng.fork(`pinned/${model.version}`),
      });
      pinned.setModel(model);
      return pinned;
    },
    async close() {
      stopped = true;
      watcher.stop();
      await app.close();
      await following;
      await index?.close();
      service.setModel(null)?.ranker.dispose();
    },
  };
}
