import { SingleBar } from 'cli-progress';
import { type Command, Option } from 'commander';
import { LogBus } from '../../bus/index.js';
import { LogFollower } from '../../bus/log-follower.js';
import type { LabelledSample } from '../../events/schemas.js';
import { Topics } from '../../events/topics.js';
import { trainOffline } from '../../learn/offline-train.js';
import { FeatureVectorizer } from '../../rank/feature-vector.js';
import { RankerModelStore, slotMismatch } from '../../rank/model-store.js';
import type { Architecture } from '../../rank/multitask.js';
import { defaultRankerConfig } from '../../rank/ranker.js';
import { Rng } from '../../util/rng.js';
import { busDir, resolveDataDir } from '../data-dir.js';
import { openShare, positiveInt } from '../parse.js';
import { rankerModelDir } from './serve.js';

interface TrainRankOptions {
  epochs: number;
  patience: number;
  validation: number;
  architecture: Architecture;
  cold?: boolean;
  json?: boolean;
  progress: boolean;
}

/** Every labelled sample in the log. */
export async function readSamples(bus: LogBus): Promise<LabelledSample[]> {
  const samples: LabelledSample[] = [];
  await new LogFollower(bus, [Topics.samples]).catchUp((events) => {
    for (const e of events) if (e.type === 'sample') samples.push(e);
  });
  return samples;
}

export function registerTrainRank(program: Command): void {
  program
    .command('train-rank')
    .description(
      'train the ranker on the labelled samples in the log (impressions the server logged, joined with feedback) and publish a new version',
    )
    .option('--epochs <n>', 'at most this many passes', positiveInt, 10)
    .option(
      '--patience <n>',
      'stop after this many epochs without a lower validation loss (both tasks)',
      positiveInt,
      2,
    )
    .option(
      '--validation <share>',
      'newest share of samples held out for validation',
      openShare,
      0.1,
    )
    .addOption(
      new Option('--architecture <kind>', 'dense part of the ranker')
        .choices(['mmoe', 'shared_bottom', 'single_task'])
        .default('mmoe'),
    )
    .option('--cold', 'start from random weights even when a version exists (default: warm start)')
    .option('--no-progress', 'no progress bar')
    .option('--json', 'print a JSON summary as the last line')
    .addHelpText(
      'after',
      '\nSamples come from `recmaster join` (impressions logged by `recmaster serve`, with their\n' +
        'feature snapshots). Models go to <data-dir>/models/ranker/v000001, ...; the new version\n' +
        'becomes current, and running servers swap it in.\n\n' +
        'Examples:\n  recmaster join --once && recmaster train-rank\n  recmaster train-rank --cold --architecture shared_bottom --json',
    )
    .action(async (opts: TrainRankOptions) => {
      const dataDir = resolveDataDir(program.opts<{ dataDir?: string }>().dataDir);
      const bus = new LogBus({ dir: busDir(dataDir), durability: 'os' });
      const store = new RankerModelStore(rankerModelDir(dataDir));
      const vectorizer = new FeatureVectorizer();
      const rng = new Rng(1);
      try {
        const samples = await readSamples(bus);
        const current = opts.cold ? null : await store.loadCurrent(rng.fork('warm'));
        const mismatch =
          current && slotMismatch(current.manifest.featureSlots, vectorizer.slotNames);
        // A model of another feature catalogue cannot be continued: start afresh, and say so.
        if (mismatch)
          process.stderr.write(
            `train-rank: the current model ${current.version} was trained on other features (${mismatch}); training a new one from scratch\n`,
          );
        const warm = mismatch ? null : current;
        const config = warm?.ranker.config ?? {
          ...defaultRankerConfig(vectorizer.width),
          architecture: opts.architecture,
        };
        const bar = opts.progress
          ? new SingleBar({
              format:
                'train-rank [{bar}] epoch {value}/{total} | loss {loss} | validation AUC {auc}',
              stream: process.stderr,
            })
          : null;
        bar?.start(opts.epochs, 0, { loss: '-', auc: '-' });
        const result = await trainOffline(samples, vectorizer, {
          config,
          rng,
          maxEpochs: opts.epochs,
          patience: opts.patience,
          validationShare: opts.validation,
          ...(warm ? { warm: warm.ranker } : {}),
          onEpoch: (e) =>
            bar?.update(e.epoch, { loss: e.loss.toFixed(4), auc: e.validationAuc.toFixed(4) }),
        });
        bar?.stop();
        const version = await store.save(result.ranker, vectorizer.slotNames, {
          trainer: 'offline',
          samples: result.trainSamples,
          validationSamples: result.validationSamples,
          validationAuc: result.validationAuc,
          bestEpoch: result.bestEpoch,
          from: warm?.version ?? null,
        });
        const summary = {
          version,
          architecture: config.architecture,
          train_samples: result.trainSamples,
          validation_samples: result.validationSamples,
          epochs: result.epochs,
          best_epoch: result.bestEpoch,
          validation_auc: Number(result.validationAuc.toFixed(4)),
          warm_start: warm?.version ?? null,
        };
        result.ranker.dispose();
        warm?.ranker.dispose();
        if (opts.json) console.log(JSON.stringify(summary));
        else
          console.log(
            `ranker ${version}: ${summary.train_samples} samples, best epoch ${summary.best_epoch}/${summary.epochs}, validation AUC ${summary.validation_auc}`,
          );
      } finally {
        await bus.close();
      }
    });
}
