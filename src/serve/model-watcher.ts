// Follows a model directory's `current` pointer and hands each new version to the server,
// which swaps it in between two requests. Polling a tiny file every few milliseconds is
// cheap, works across processes on one disk, and (unlike fs.watch) behaves the same on
// every platform and on network file systems, so polling is what guarantees a swap. Where
// fs.watch works (inotify on Linux), a change in the directory also checks at once: the
// poll's wait was half the interval on average (measured in bench:swap's server part).
import { type FSWatcher, watch } from 'node:fs';
import { RankerModelStore } from '../rank/model-store.js';
import type { RankerModel } from '../rank/ranker.js';
import { logger } from '../util/logger.js';
import type { Rng } from '../util/rng.js';

const WATCH_RETRY_MS = 1000;

export interface ModelWatcherOptions {
  dir: string;
  rng: Rng;
  /** Called with each newly loaded model; returns the model it replaced (disposed here). */
  swap: (model: RankerModel) => RankerModel | null;
  intervalMs?: number;
  /** The slots the server's vectorizer makes: versions trained on others are refused. */
  featureSlots?: readonly string[];
}

export class ModelWatcher {
  private readonly store: RankerModelStore;
  private served: string | null = null;
  private timer: NodeJS.Timeout | undefined;
  private watcher: FSWatcher | undefined;
  private busy = false;
  /** A check was asked for while one ran: run another when it ends. */
  private again = false;
  private watchTriedMs = 0;
  swaps = 0;
  failures = 0;

  constructor(private readonly opts: ModelWatcherOptions) {
    this.store = new RankerModelStore(opts.dir, undefined, opts.featureSlots);
  }

  get version(): string | null {
    return this.served;
  }

  /** Loads the current version if it changed; true when a new model was swapped in. */
  async check(): Promise<boolean> {
    const current = await this.store.current();
    if (current === null || current === this.served) return false;
    try {
      const loaded = await this.store.load(current, this.opts.rng);
      const old = this.opts.swap({ version: loaded.version, ranker: loaded.ranker });
      old?.ranker.dispose();
      this.served = current;
      this.swaps++;
      return true;
    } catch (err) {
      // A version that does not load is not served; the last good one stays.
      this.failures++;
      this.served = current;
      logger.error({ err, version: current }, 'model version refused; keeping the previous one');
      return false;
    }
  }

  start(): void {
    const interval = this.opts.intervalMs ?? 10;
    const tick = async () => {
      if (this.busy) {
        this.again = true;
        return;
      }
      this.busy = true;
      try {
        do {
          this.again = false;
          await this.check();
        } while (this.again);
      } catch (err) {
        logger.warn({ err }, 'model check failed');
      } finally {
        this.busy = false;
      }
    };
    this.timer = setInterval(() => {
      // The directory may not exist yet (no model published): try watching again now and then.
      if (this.watcher === undefined && Date.now() - this.watchTriedMs >= WATCH_RETRY_MS)
        this.watch(tick);
      void tick();
    }, interval);
    this.timer.unref();
    this.watch(tick);
  }

  private watch(onChange: () => void): void {
    this.watchTriedMs = Date.now();
    try {
      this.watcher = watch(this.opts.dir, { persistent: false }, onChange);
      // A watch that breaks (directory removed, too many watches) leaves the polling.
      this.watcher.on('error', () => this.unwatch());
    } catch {
      // No watching here (missing directory, unsupported file system): polling alone.
    }
  }

  private unwatch(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }

  stop(): void {
    clearInterval(this.timer);
    this.unwatch();
  }
}
