// Committed consumer-group offsets, one small JSON file per group, replaced
// atomically (write a temp file, sync, rename) so a crash leaves the old or the
// new commit, never half of one.
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { RecmasterError } from '../../errors.js';
import type { Positions } from '../bus.js';

const PositionsFile = z.record(z.string(), z.record(z.string(), z.number().int().nonnegative()));

export class GroupOffsets {
  private readonly file: string;
  private readonly sync: boolean;

  constructor(dir: string, group: string, sync: boolean) {
    this.file = path.join(dir, `${group}.json`);
    this.sync = sync;
  }

  async load(): Promise<Positions> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw err;
    }
    const parsed = PositionsFile.safeParse(JSON.parse(text));
    if (!parsed.success) {
      throw new RecmasterError('E_LOG_CORRUPT', `${this.file} is not a valid offsets file`);
    }
    const out: Positions = {};
    for (const [topic, parts] of Object.entries(parsed.data)) {
      out[topic] = {};
      for (const [p, offset] of Object.entries(parts))
        (out[topic] as Record<number, number>)[Number(p)] = offset;
    }
    return out;
  }

  async save(positions: Positions): Promise<void> {
    await mkdir(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    const handle = await open(tmp, 'w');
    try {
      await handle.writeFile(JSON.stringify(positions));
      if (this.sync) await handle.datasync();
    } finally {
      await handle.close();
    }
    await rename(tmp, this.file);
  }
}
