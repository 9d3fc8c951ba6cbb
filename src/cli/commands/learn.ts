import type { Command } from 'commander';
import { LogBus } from '../../bus/index.js';
import { EventSubscriber } from '../../events/subscriber.js';
import { Topics } from '../../events/topics.js';
import { OnlineTrainer } from '../../learn/online-trainer.js';
import { FeatureVectorizer } from '../../rank/feature-vector.js';
import { RankerModelStore } from '../../rank/model-store.js';
import { logger } from '../../util/logger.js';
import { Rng } from '../../util/rng.js';
import { busDir, resolveDataDir } from '../data-dir.js';
import { nonNegative, positiveInt } from '../parse.js';
import { rankerModelDir } from './serve.js';

export function registerLearn(program: Command): void {
  program
    .command('learn')
    .description(
      'the online trainer: a training step every N labelled samples, each published as a new ranker version (guardrailed)',
    )
    .option('--step-every <n>', 'samples per training step and version', positiveInt, 100)
    .option(
      '--max-auc-drop <x>',
      'refuse a version this far below the serving one on the holdout',
      Number,
      0.02,
    )
    .option(
      '--label-delay <s>',
      "learn from a sample once a sample this many event-time seconds newer has arrived, in impression order: set it to the joiner's --window (clicks are labelled at once, non-clicks when the window closes; learning them in arrival order teaches that everything is clicked); 0 learns on arrival",
      nonNegative,
      600,
    )
    .addHelpText(
      'after',
      '\nConsumes the samples topic (consumer group "learner") from where it left off; continues\n' +
        'from the serving ranker version (train one first with `recmaster train-rank`).\n\n' +
        'Example:\n  recmaster learn --step-every 100',
    )
    .action(async (opts: { stepEvery: number; maxAucDrop: number; labelDelay: number }) => {
      const dataDir = resolveDataDir(program.opts<{ dataDir?: string }>().dataDir);
      const bus = new LogBus({ dir: busDir(dataDir), durability: 'os' });
      const trainer = await OnlineTrainer.open({
        store: new RankerModelStore(rankerModelDir(dataDir)),
        vectorizer: new FeatureVectorizer(),
        rng: new Rng(Date.now() >>> 0),
        stepEvery: opts.stepEvery,
        maxAucDrop: opts.maxAucDrop,
        labelDelayMs: opts.labelDelay * 1000,
      });
      const sub = await EventSubscriber.create(bus, { group: 'learner', topics: [Topics.samples] });
      const stop = new AbortController();
      process.once('SIGINT', () => stop.abort());
      process.once('SIGTERM', () => stop.abort());
      try {
        while (!stop.signal.aborted) {
          const received = await sub.poll({ maxRecords: 1000, timeoutMs: 100 });
          for (const { event } of received) {
            if (event.type !== 'sample') continue;
            for (const step of await trainer.add(event)) {
              if (step.version) logger.info({ ...step }, 'published');
              else logger.warn({ ...step }, 'refused by the guardrail');
            }
          }
          if (received.length > 0) await sub.consumer.commit();
        }
      } finally {
        logger.info(trainer.stats(), 'learner stopped');
        trainer.dispose();
        await sub.close();
        await bus.close();
      }
    });
}
