import path from 'node:path';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { LogBus } from '../../bus/index.js';
import { RecmasterError } from '../../errors.js';
import { decodeEvent } from '../../events/codec.js';
import { Topics } from '../../events/topics.js';
import { InteractionGraph } from '../../graph/graph.js';
import { GraphModelStore } from '../../graph/model-store.js';
import { DEFAULT_SAGE_CONFIG } from '../../graph/sage-model.js';
import { trainSage } from '../../graph/sage-trainer.js';
import { logger } from '../../util/logger.js';
import { busDir, resolveDataDir } from '../data-dir.js';
import { positiveInt } from '../parse.js';

interface TrainGnnOptions {
  epochs: number;
  dim: number;
  batchSize: number;
  maxSteps?: number;
  cold?: boolean;
  json?: boolean;
  progress: boolean;
}

export function gnnModelDir(dataDir: string): string {
  return path.join(dataDir, 'models', 'gnn');
}

/** Builds the interaction graph from everything the log holds now (items and feedback). */
export async function graphFromLog(
  bus: LogBus,
  onRecords?: (n: number) => void,
): Promise<InteractionGraph> {
  const graph = new InteractionGraph();
  const topics = await bus.topics();
  // Items first: an interaction needs its item's node (the publisher orders them so as well).
  for (const topic of [Topics.items, Topics.feedback]) {
    if (!topics.includes(topic)) continue;
    const info = await bus.describe(topic);
    for (const p of info.partitions) {
      for (let offset = p.startOffset; offset < p.endOffset; ) {
        const records = await bus.read(topic, p.partition, offset, 5000);
        if (records.length === 0) break;
        for (const r of records) {
          const decoded = decodeEvent(r.value);
          if (decoded.ok) graph.apply(decoded.event); // invalid records are the consumers' dead letters
        }
        offset = (records.at(-1)?.offset ?? offset) + 1;
        onRecords?.(records.length);
      }
    }
  }
  return graph;
}

export function registerTrainGnn(program: Command): void {
  program
    .command('train-gnn')
    .description(
      'train the GraphSAGE recall model on the interaction graph in the log and save a new model version',
    )
    .option('--epochs <n>', 'passes over the interactions', positiveInt, 6)
    .option('--dim <n>', 'embedding width (a new model only)', positiveInt, DEFAULT_SAGE_CONFIG.dim)
    .option('--batch-size <n>', 'interactions per training step', positiveInt, 1024)
    .option('--max-steps <n>', 'stop after this many steps', positiveInt)
    .option('--cold', 'start from random weights even when a model exists (default: warm start)')
    .option('--no-progress', 'no progress bar')
    .option('--json', 'print a JSON summary as the last line')
    .addHelpText(
      'after',
      '\nModels are saved under <data-dir>/models/gnn/v000001, v000002, ... A run warm-starts\n' +
        'from the newest version (known rows kept, new categories/tags/creators added).\n\n' +
        'Examples:\n  recmaster simulate --duration 3600 && recmaster train-gnn\n' +
        '  recmaster train-gnn --epochs 2 --json',
    )
    .action(async (opts: TrainGnnOptions, cmd: Command) => {
      const dataDir = resolveDataDir(cmd.optsWithGlobals().dataDir as string | undefined);
      const bus = new LogBus({ dir: busDir(dataDir) });
      const store = new GraphModelStore(gnnModelDir(dataDir));
      const started = performance.now();
      try {
        let read = 0;
        const graph = await graphFromLog(bus, (n) => {
          read += n;
        });
        if (graph.interactions === 0) {
          throw new RecmasterError(
            'E_CONFIG',
            `no interactions in ${busDir(dataDir)}: run \`recmaster simulate\` first`,
          );
        }
        logger.info(
          {
            records: read,
            users: graph.userCount,
            items: graph.itemCount,
            interactions: graph.interactions,
          },
          'graph built',
        );
        const warm = opts.cold ? null : await store.latest();
        if (warm && warm.model.dim !== opts.dim && opts.dim !== DEFAULT_SAGE_CONFIG.dim) {
          throw new RecmasterError(
            'E_CONFIG',
            `--dim ${opts.dim} differs from the model to warm-start (${warm.model.dim}): add --cold`,
          );
        }
        const config = warm ? warm.model.config : { ...DEFAULT_SAGE_CONFIG, dim: opts.dim };
        const showBar = opts.progress && process.stderr.isTTY && !opts.json;
        const bar = new SingleBar({
          format:
            'training |{bar}| {percentage}% · step {value}/{total} · epoch {epoch} · loss {loss}',
          hideCursor: true,
        });
        let barStarted = false;
        let lastLog = 0;
        const result = await trainSage(
          graph,
          {
            epochs: opts.epochs,
            batchSize: opts.batchSize,
            ...(opts.maxSteps ? { maxSteps: opts.maxSteps } : {}),
            onProgress: ({ epoch, step, steps, loss }) => {
              if (showBar) {
                if (!barStarted) bar.start(steps, 0, { epoch: 1, loss: '-' });
                barStarted = true;
                bar.update(step, { epoch: epoch + 1, loss: loss.toFixed(4) });
              } else if (performance.now() - lastLog > 5000 || step === steps) {
                lastLog = performance.now();
                logger.info({ epoch: epoch + 1, step, steps, loss }, 'training');
              }
            },
          },
          config,
          warm?.model,
        );
        if (barStarted) bar.stop();
        const version = await store.save(result.model, {
          steps: result.steps,
          finalLoss: result.finalLoss,
          trainSeconds: result.seconds,
          users: graph.userCount,
          items: graph.itemCount,
          interactions: graph.interactions,
          warmStartFrom: warm?.version ?? null,
        });
        const summary = {
          version,
          dir: path.join(gnnModelDir(dataDir), version),
          warmStartFrom: warm?.version ?? null,
          users: graph.userCount,
          items: graph.itemCount,
          interactions: graph.interactions,
          steps: result.steps,
          finalLoss: Number(result.finalLoss.toFixed(5)),
          trainSeconds: Number(result.seconds.toFixed(1)),
          seconds: Number(((performance.now() - started) / 1000).toFixed(1)),
        };
        if (opts.json) console.log(JSON.stringify(summary));
        else logger.info(summary, 'model saved');
      } finally {
        await bus.close();
      }
    });
}
