// The embedded stack in one process: bus, feature engine and store, joiner, GraphSAGE training,
// the recommendation server and the samples it produces. What the demo runs, and what the
// evaluations drive with the simulator as the users (in process, unpaced, so a run is
// deterministic up to wall-clock effects on feature freshness).
import path from 'node:path';
import { LogBus } from '../bus/index.js';
import { LogFollower } from '../bus/log-follower.js';
import { EventPublisher } from '../events/publisher.js';
import type { Event, LabelledSample } from '../events/schemas.js';
import { Topics } from '../events/topics.js';
import { FeatureEngine } from '../features/engine.js';
import { InteractionGraph } from '../graph/graph.js';
import { GraphModelStore } from '../graph/model-store.js';
import { DEFAULT_SAGE_CONFIG, type SageConfig } from '../graph/sage-model.js';
import { trainSage } from '../graph/sage-trainer.js';
import { Joiner } from '../learn/joiner.js';
import { createServer, type RecommendServer, type ServerOptions } from '../serve/server.js';
import type { Recommender, RecommendRequest, RecommendResponse } from '../sim/recommender.js';
import type { EventSink } from '../sim/sink.js';
import { LmdbFeatureStore } from '../store/lmdb-store.js';
import type { FeatureStore } from '../store/store.js';

export interface StackOptions {
  dataDir: string;
  /** Default: the embedded LMDB store under dataDir. */
  store?: FeatureStore;
  /** Joiner attribution window. Default 10 min. */
  windowMs?: number;
}

export function stackPaths(dataDir: string) {
  return {
    bus: path.join(dataDir, 'bus'),
    store: path.join(dataDir, 'features', 'store'),
    engineState: path.join(dataDir, 'features', 'state'),
    joinerState: path.join(dataDir, 'joiner', 'state'),
    gnn: path.join(dataDir, 'models', 'gnn'),
    ranker: path.join(dataDir, 'models', 'ranker'),
  };
}

export class EmbeddedStack {
  server: RecommendServer | null = null;
  private readonly samplesFollower: LogFollower;

  private constructor(
    readonly paths: ReturnType<typeof stackPaths>,
    readonly bus: LogBus,
    readonly publisher: EventPublisher,
    readonly store: FeatureStore,
    private readonly ownsStore: boolean,
    readonly engine: FeatureEngine,
    readonly joiner: Joiner,
  ) {
    this.samplesFollower = new LogFollower(bus, [Topics.samples]);
  }

  static async open(opts: StackOptions): Promise<EmbeddedStack> {
    const paths = stackPaths(opts.dataDir);
    const bus = new LogBus({ dir: paths.bus, durability: 'os' });
    const publisher = new EventPublisher(bus);
    await publisher.ensureTopics();
    const store = opts.store ?? (await LmdbFeatureStore.open(paths.store));
    const engine = await FeatureEngine.open({ bus, store, stateDir: paths.engineState });
    const joiner = await Joiner.open({
      bus,
      stateDir: paths.joinerState,
      ...(opts.windowMs === undefined ? {} : { windowMs: opts.windowMs }),
    });
    return new EmbeddedStack(paths, bus, publisher, store, !opts.store, engine, joiner);
  }

  /** A simulator sink: publishes each batch, then brings the features up to date with it. */
  sink(onBatch?: (events: Event[]) => Promise<void> | void): EventSink {
    return {
      emit: async (events) => {
        await this.publisher.publish(events);
        await this.engine.catchUp();
        await onBatch?.(events);
      },
    };
  }

  /** Trains GraphSAGE on the interactions in the log so far and saves a version. */
  async trainGnn(
    epochs: number,
    onProgress?: (p: { epoch: number; step: number; steps: number; loss: number }) => void,
    /** For a new model (a warm start keeps the earlier model's config). */
    config: SageConfig = DEFAULT_SAGE_CONFIG,
  ): Promise<string> {
    const graph = new InteractionGraph();
    await new LogFollower(this.bus, [Topics.items, Topics.feedback]).catchUp((events) => {
      for (const e of events) graph.apply(e);
    });
    const store = new GraphModelStore(this.paths.gnn);
    const warm = await store.latest();
    const { model, steps, finalLoss } = await trainSage(
      graph,
      { epochs, seed: 1, ...(onProgress ? { onProgress } : {}) },
      warm?.model.config ?? config,
      warm?.model,
    );
    return store.save(model, { steps, loss: finalLoss, from: warm?.version ?? null });
  }

  async startServer(options: Partial<ServerOptions> = {}): Promise<RecommendServer> {
    this.server = await createServer({
      bus: this.bus,
      store: this.store,
      rankerDir: this.paths.ranker,
      gnnDir: this.paths.gnn,
      ...options,
    });
    return this.server;
  }

  /** Joins what the log holds now and returns the samples emitted since the last call. */
  async newSamples(endOfInput = false): Promise<LabelledSample[]> {
    await this.joiner.catchUp({ endOfInput });
    const out: LabelledSample[] = [];
    await this.samplesFollower.catchUp((events) => {
      for (const e of events) if (e.type === 'sample') out.push(e);
    });
    return out;
  }

  async close(): Promise<void> {
    await this.server?.close();
    await this.joiner.close();
    await this.engine.close();
    if (this.ownsStore) await this.store.close();
    await this.bus.close();
  }
}

/** A point in event time where the simulation's recommender changes. */
export interface Phase {
  atMs: number;
  /** Runs once, at the first request at or after atMs; returns the recommender from then on. */
  setup: () => Promise<Recommender>;
}

/**
 * The simulator's recommender that starts as the simulator's own logging policy (the warm-up
 * history) and moves through phases (the server bootstrapping, then a trained model, ...).
 */
export class PhasedRecommender implements Recommender {
  target: Recommender | null = null;
  private next = 0;

  constructor(
    private readonly fallback: () => Recommender,
    private readonly phases: readonly Phase[],
  ) {}

  async recommend(req: RecommendRequest): Promise<RecommendResponse> {
    while (this.next < this.phases.length && req.ts >= (this.phases[this.next] as Phase).atMs) {
      const phase = this.phases[this.next++] as Phase;
      this.target = await phase.setup();
    }
    return (this.target ?? this.fallback()).recommend(req);
  }
}
