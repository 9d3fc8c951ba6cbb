// Shared by the benchmarks: the machine they ran on, robust summaries, scratch space.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export function machine(): {
  cpus: number;
  cpu: string;
  mem_gib: number;
  node: string;
  platform: string;
} {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpu: cpus[0]?.model ?? 'unknown',
    mem_gib: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()}-${os.arch()}`,
  };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? (s[mid] ?? 0) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
}

/** Scratch directory on the same disk as the project's data (not tmpfs), removed after. */
export async function tempDir(
  prefix: string,
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const base = process.env.RECMASTER_BENCH_DIR ?? path.resolve('.bench-tmp');
  await mkdir(base, { recursive: true });
  const dir = await mkdtemp(path.join(base, prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
