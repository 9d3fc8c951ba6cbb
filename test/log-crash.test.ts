// kill -9 of a process in the middle of appending: every acknowledged record must
// be there after restart, the tail must be clean, nothing half-written readable.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LogBus } from '../src/bus/index.js';
import { tempDir } from './helpers.js';

const writerScript = fileURLToPath(new URL('./fixtures/log-writer.ts', import.meta.url));

interface Ack {
  partition: number;
  offset: number;
  value: string;
}

/** Runs the writer until it has acknowledged `minAcks` records, then SIGKILLs it. */
function runAndKill(
  dir: string,
  durability: string,
  padding: number,
  minAcks: number,
): Promise<Ack[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', writerScript, dir, durability, String(padding)],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let buffered = '';
    let stderr = '';
    const acks: Ack[] = [];
    let killScheduled = false;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? ''; // only whole lines count as acknowledged
      for (const line of lines) {
        const m = /^ACK (\d+) (\d+) (.*)$/.exec(line);
        if (m) acks.push({ partition: Number(m[1]), offset: Number(m[2]), value: m[3] ?? '' });
      }
      if (!killScheduled && acks.length >= minAcks) {
        killScheduled = true;
        // Land the kill at an arbitrary moment of the write loop.
        setTimeout(() => child.kill('SIGKILL'), Math.floor(Math.random() * 20));
      }
    });
    child.stderr.on('data', (d) => {
      stderr += String(d);
    });
    child.on('exit', (_code, signal) => {
      if (signal === 'SIGKILL') resolve(acks);
      else reject(new Error(`writer exited on its own (${signal ?? _code}): ${stderr}`));
    });
    setTimeout(() => child.kill('SIGKILL'), 60_000).unref();
  });
}

const cases = [
  { durability: 'os', padding: 200, minAcks: 3000 },
  { durability: 'fsync', padding: 200, minAcks: 3000 },
  // Batches of several MB: the kill often lands inside a write and leaves a torn tail.
  { durability: 'os', padding: 400_000, minAcks: 400 },
] as const;

for (const { durability, padding, minAcks } of cases) {
  describe(`kill -9 while appending (durability ${durability}, records up to ${padding} B)`, () => {
    test('every acknowledged record survives, intact, and the log continues', async (t) => {
      const { dir, cleanup } = await tempDir();
      // Two crashes in a row: recovery after a crash must itself be crash-safe.
      const acks = [
        ...(await runAndKill(dir, durability, padding, minAcks)),
        ...(await runAndKill(dir, durability, padding, minAcks)),
      ];
      assert.ok(acks.length >= 2 * minAcks);

      const recoveries: number[] = [];
      const bus = new LogBus({ dir, onRecovery: (_t, _p, r) => recoveries.push(r.truncatedBytes) });
      const stored = new Map<string, string>();
      const info = await bus.describe('crash');
      for (const p of info.partitions) {
        let offset = p.startOffset;
        for (;;) {
          const batch = await bus.read('crash', p.partition, offset, 1000);
          if (batch.length === 0) break;
          for (const r of batch) {
            assert.equal(r.offset, offset, 'no gaps');
            offset += 1;
            const value = r.value.toString();
            // Every stored record is whole: its padding length matches its sequence number.
            const m = /^(k\d+):(\d+):(x*)$/.exec(value);
            assert.ok(m, `record ${p.partition}/${r.offset} is well-formed`);
            const seq = Number(m[2]);
            assert.equal(m[3]?.length, seq % padding);
            stored.set(`${p.partition}/${r.offset}`, `${m[1]}:${seq}:${m[3]?.length}`);
          }
        }
      }
      // Offsets keep counting across runs, so every ack names one position.
      const lastAckPerPartition = new Map<number, number>();
      for (const ack of acks) {
        lastAckPerPartition.set(
          ack.partition,
          Math.max(lastAckPerPartition.get(ack.partition) ?? -1, ack.offset),
        );
      }
      for (const ack of acks) {
        assert.equal(
          stored.get(`${ack.partition}/${ack.offset}`),
          ack.value,
          `acked record ${ack.partition}/${ack.offset}`,
        );
      }
      for (const [partition, last] of lastAckPerPartition) {
        const end = info.partitions[partition]?.endOffset ?? 0;
        assert.ok(
          end > last,
          `partition ${partition} holds its last acked offset ${last} (end ${end})`,
        );
      }
      // The log takes new appends right after the surviving records.
      const [res] = await bus.append('crash', [{ key: 'k1', value: Buffer.from('k1:1000000:') }]);
      assert.ok(res);
      assert.equal(res.offset, info.partitions[res.partition]?.endOffset);
      await bus.close();
      await cleanup();
      t.diagnostic(
        `acked ${acks.length}, stored ${stored.size}, torn tails cut: ${recoveries.length}`,
      );
    });
  });
}
