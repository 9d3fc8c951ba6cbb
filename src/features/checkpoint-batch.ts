// The engine's side of the checkpoint writer thread (checkpoint-writer.ts): one batch of key
// writes per checkpoint, committed there as one transaction.
import { Worker } from 'node:worker_threads';

/** A checkpoint's key writes, in a form that crosses to the thread without a copy per key. */
export interface KeyWrites {
  /** Every key's id, one after the other; `idEnds[i]` is where key i's id ends. */
  ids: string;
  idEnds: Int32Array;
  /** Key i's value is bytes [ranges[2i], ranges[2i + 1]); an end of -1 removes the key. */
  ranges: Int32Array;
  /** In shared memory, or it is copied whole to the thread. */
  bytes: Uint8Array;
}

/** Packs keys' ids and their [start, end] byte ranges (end -1: remove) for the thread. */
export function keyWrites(
  ids: readonly string[],
  ranges: readonly number[],
  bytes: Uint8Array,
): KeyWrites {
  const idEnds = new Int32Array(ids.length);
  let length = 0;
  for (let i = 0; i < ids.length; i++) {
    length += (ids[i] as string).length;
    idEnds[i] = length;
  }
  return { ids: ids.join(''), idEnds, ranges: Int32Array.from(ranges), bytes };
}

export interface CheckpointBatch extends KeyWrites {
  id: number;
  /** Other keys and their values as UTF-8 (categories, labels, meta). */
  puts: [string, string][];
}

export interface WriterReply {
  id: number;
  error?: string;
}

/** Starts the writer thread for one LMDB path; batches commit in the order sent. */
export class CheckpointWriter {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
  /** Settles once every batch sent so far has (the thread writes them in order). */
  private settled: Promise<unknown> = Promise.resolve();
  private nextId = 0;
  private failed: Error | undefined;

  constructor(path: string) {
    this.worker = startWorker(path);
    // Keeps the process alive only while a batch is being written.
    this.worker.unref();
    this.worker.on('message', ({ id, error }: WriterReply) => {
      const waiter = this.waiting.get(id);
      this.waiting.delete(id);
      if (this.waiting.size === 0) this.worker.unref();
      if (error === undefined) waiter?.resolve();
      else waiter?.reject(new Error(`checkpoint write failed: ${error}`));
    });
    const fail = (err: Error) => {
      this.failed ??= err;
      for (const waiter of this.waiting.values()) waiter.reject(err);
      this.waiting.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`checkpoint writer thread exited (${code})`)));
  }

  /** Commits the batch (durably, as one transaction) on the writer thread. */
  write(batch: Omit<CheckpointBatch, 'id'>): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    const written = new Promise<void>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.ref();
      this.worker.postMessage({ ...batch, id });
    });
    this.settled = written.catch(() => undefined);
    return written;
  }

  /** Stops the thread once the batches sent are written. */
  async close(): Promise<void> {
    await this.settled;
    this.failed ??= new Error('checkpoint writer closed');
    await this.worker.terminate();
  }
}

/**
 * The compiled writer beside this file; under tsx (tests, benchmarks) its TypeScript source,
 * through tsx's loader, which a worker thread does not inherit from its parent
 * (privatenumber/tsx#354).
 */
function startWorker(path: string): Worker {
  const here = import.meta.url;
  const options = { workerData: { path } };
  if (!here.endsWith('.ts')) return new Worker(new URL('./checkpoint-writer.js', here), options);
  const entry = new URL('./checkpoint-writer.ts', here).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  return new Worker(
    `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`,
    { ...options, eval: true },
  );
}
