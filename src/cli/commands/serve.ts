import path from 'node:path';
import { type Command, Option } from 'commander';
import { LogBus } from '../../bus/index.js';
import { createServer } from '../../serve/server.js';
import { logger } from '../../util/logger.js';
import { busDir, resolveDataDir } from '../data-dir.js';
import { port, share } from '../parse.js';
import { featuresPaths, openStore } from './features.js';
import { gnnModelDir } from './train-gnn.js';

interface ServeOptions {
  host: string;
  port: number;
  store: 'embedded' | 'redis';
  redisUrl: string;
  exploreShare: number;
}

export function rankerModelDir(dataDir: string): string {
  return path.join(dataDir, 'models', 'ranker');
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description(
      'run the recommendation server: POST /recommend, POST /events, /healthz, /readyz, /metrics, /openapi.json',
    )
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port to listen on (0 = any free port)', port, 8080)
    .addOption(
      new Option('--store <kind>', 'feature store to read')
        .choices(['embedded', 'redis'])
        .default('embedded'),
    )
    .option('--redis-url <url>', 'Redis for --store redis', 'redis://127.0.0.1:6379')
    .option('--explore-share <share>', 'share of each slate reserved for fresh items', share, 0.1)
    .addHelpText(
      'after',
      '\nThe server rebuilds its graph from the log, loads the current GraphSAGE and ranker\n' +
        'models (ranker versions are swapped in as they are published), and follows the log.\n' +
        'Run `recmaster features` alongside it so features stay fresh.\n\n' +
        'Examples:\n  recmaster serve --port 8080\n' +
        '  curl -s localhost:8080/recommend -H content-type:application/json -d \'{"userId":"u1","count":10}\'',
    )
    .action(async (opts: ServeOptions) => {
      const dataDir = resolveDataDir(program.opts<{ dataDir?: string }>().dataDir);
      const bus = new LogBus({ dir: busDir(dataDir), durability: 'os' });
      const store = await openStore(opts, featuresPaths(dataDir).store);
      const server = await createServer({
        bus,
        store,
        rankerDir: rankerModelDir(dataDir),
        gnnDir: gnnModelDir(dataDir),
        service: { exploreShare: opts.exploreShare },
      });
      const address = await server.app.listen({ host: opts.host, port: opts.port });
      logger.info(
        { address, ranker: server.service.modelVersion, gnn: server.gnnVersion },
        'serving',
      );
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await server.close();
      await store.close();
      await bus.close();
    });
}
