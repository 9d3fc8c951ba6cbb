// The checkpoint's writer thread: commits each batch the engine sends as one LMDB transaction,
// off the engine's thread. Queueing a late checkpoint's ~30k puts there held the event loop
// 28-120 ms in one turn, every 5 s. lmdb-js shares the environment between the threads of a
// process, so the engine's own handle reads what this one commits.
import { parentPort, workerData } from 'node:worker_threads';
import { open } from 'lmdb';
import type { CheckpointBatch, WriterReply } from './checkpoint-batch.js';

const port = parentPort;
if (!port) throw new Error('checkpoint-writer runs as a worker thread');
const { path } = workerData as { path: string };
const db = open<Buffer, string>({ path, encoding: 'binary' });

port.on('message', (batch: CheckpointBatch) => {
  let reply: WriterReply;
  try {
    // A copy: lmdb-js reads a value in shared memory as zeros (it takes the address of an
    // ordinary ArrayBuffer's memory). One memcpy here, off the engine's thread.
    const bytes = Buffer.from(batch.bytes);
    db.transactionSync(() => {
      let from = 0;
      for (let i = 0; i < batch.idEnds.length; i++) {
        const to = batch.idEnds[i] as number;
        const key = `k|${batch.ids.slice(from, to)}`;
        from = to;
        const start = batch.ranges[2 * i] as number;
        const end = batch.ranges[2 * i + 1] as number;
        if (end < 0) db.removeSync(key);
        else db.putSync(key, bytes.subarray(start, end));
      }
      for (const [key, value] of batch.puts) db.putSync(key, Buffer.from(value, 'utf8'));
    });
    reply = { id: batch.id };
  } catch (err) {
    reply = {
      id: batch.id,
      error: err instanceof Error ? (err.stack ?? err.message) : String(err),
    };
  }
  port.postMessage(reply);
});
