import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { RankerConfig } from '../src/rank/ranker.js';

/** A fresh temporary directory, removed by the returned cleanup. */
export async function tempDir(
  prefix = 'recmaster-test-',
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A small MMoE ranker config for tests; each test overrides only what it is about. */
export function smallRankerConfig(overrides: Partial<RankerConfig> = {}): RankerConfig {
  return {
    architecture: 'mmoe',
    idDim: 4,
    rows: { user: 64, item: 128, category: 16, creator: 16, tag: 16 },
    featureWidth: 3,
    experts: 2,
    expertDim: 4,
    towerDim: 4,
    fusion: { clickWeight: 1, watchWeight: 0.5 },
    ...overrides,
  };
}
