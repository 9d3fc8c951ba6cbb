// Runs the load client in a worker thread, so the process driving a benchmark (training,
// polling) cannot delay the requests it sends.
import { parentPort, Worker, workerData } from 'node:worker_threads';
import { type LoadOptions, type LoadResult, runLoad } from './load-client.js';

interface WorkerLoad extends Omit<LoadOptions, 'body'> {
  /** POST bodies: JSON of {userId: `u${random below users}`, count}. */
  users?: number;
  count?: number;
}

if (parentPort && workerData) {
  const opts = workerData as WorkerLoad;
  let seed = 12345;
  const random = () => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  const users = opts.users;
  const result = await runLoad({
    ...opts,
    ...(users === undefined
      ? {}
      : {
          body: () =>
            JSON.stringify({ userId: `u${Math.floor(random() * users)}`, count: opts.count ?? 20 }),
        }),
  });
  parentPort.postMessage(result);
}

/** runLoad in a worker thread; POST bodies are random users' recommendation requests. */
export function runLoadInWorker(opts: WorkerLoad): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./load-worker-boot.mjs', import.meta.url), {
      workerData: opts,
    });
    worker.once('message', (r: LoadResult) => resolve(r));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`load worker exited with ${code}`));
    });
  });
}
