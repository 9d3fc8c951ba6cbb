// An open-loop HTTP load client at a fixed rate: request k is due at start + k / rate, sent
// when due whatever happened to earlier ones, and its latency counts from when it was due
// (so a stalled server is charged for the requests it delayed: no coordinated omission).
// Closed-loop or per-second-quota clients (autocannon's overallRate sends each second's quota
// in a burst) measure their own bursts as much as the server.
import { build as buildHistogram } from 'hdr-histogram-js';
import { Pool } from 'undici';

export interface LoadOptions {
  origin: string;
  path: string;
  method: 'GET' | 'POST';
  /** Body of request k (POST). */
  body?: (k: number) => string;
  rate: number;
  seconds: number;
  /** Open connections (enough for rate × worst latency). Default 64. */
  connections?: number;
  timeoutMs?: number;
}

export interface LoadResult {
  sent: number;
  ok: number;
  errors: number;
  /** Achieved completions per second. */
  qps: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  max_ms: number;
  /** The first few error messages, for the reader. */
  error_samples: string[];
}

export async function runLoad(opts: LoadOptions): Promise<LoadResult> {
  const pool = new Pool(opts.origin, {
    connections: opts.connections ?? 64,
    keepAliveTimeout: 10_000,
  });
  const latency = buildHistogram({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  const total = Math.round(opts.rate * opts.seconds);
  const intervalMs = 1000 / opts.rate;
  const timeoutMs = opts.timeoutMs ?? 5000;
  let ok = 0;
  let errors = 0;
  const samples: string[] = [];
  const inflight = new Set<Promise<void>>();
  const start = performance.now();

  const send = (k: number, due: number) => {
    const p = (async () => {
      try {
        const res = await pool.request({
          path: opts.path,
          method: opts.method,
          headers: opts.body ? { 'content-type': 'application/json' } : {},
          ...(opts.body ? { body: opts.body(k) } : {}),
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        });
        const text = await res.body.text();
        if (res.statusCode >= 200 && res.statusCode < 300) ok++;
        else {
          errors++;
          if (samples.length < 5) samples.push(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
        }
      } catch (err) {
        errors++;
        if (samples.length < 5) samples.push((err as Error).message);
      } finally {
        latency.recordValue(Math.max(1, Math.round((performance.now() - due) * 1000)));
      }
    })();
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  };

  let next = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (next < total && start + next * intervalMs <= now) {
        send(next, start + next * intervalMs);
        next++;
      }
      if (next >= total) resolve();
      else setTimeout(tick, Math.max(0, start + next * intervalMs - performance.now()));
    };
    tick();
  });
  await Promise.all(inflight);
  const elapsedS = (performance.now() - start) / 1000;
  await pool.close();
  const ms = (q: number) => Number((latency.getValueAtPercentile(q) / 1000).toFixed(2));
  return {
    sent: total,
    ok,
    errors,
    qps: Number((ok / elapsedS).toFixed(1)),
    p50_ms: ms(50),
    p90_ms: ms(90),
    p99_ms: ms(99),
    max_ms: Number((latency.maxValue / 1000).toFixed(2)),
    error_samples: samples,
  };
}
