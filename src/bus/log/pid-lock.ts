// A lock file holding the owner's pid: one writer per topic and one member per
// consumer group on a data directory. A lock left by a dead process (kill -9) is
// taken over, since nothing else would ever release it.
import { open, readFile, unlink } from 'node:fs/promises';
import { RecmasterError } from '../../errors.js';

const held = new Set<string>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function acquirePidLock(file: string, what: string): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      const handle = await open(file, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      held.add(file);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(owner) && owner > 0 && isAlive(owner)) {
      const who = owner === process.pid ? 'this process' : `process ${owner}`;
      throw new RecmasterError(
        'E_LOG_LOCKED',
        `${what} is already held by ${who} (lock file ${file})`,
      );
    }
    await unlink(file).catch(() => undefined);
  }
  throw new RecmasterError('E_LOG_LOCKED', `could not take ${what} (lock file ${file})`);
}

export async function releasePidLock(file: string): Promise<void> {
  if (!held.delete(file)) return;
  await unlink(file).catch(() => undefined);
}
