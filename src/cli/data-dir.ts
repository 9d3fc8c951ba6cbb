import path from 'node:path';

/** Where embedded state lives: --data-dir, else $RECMASTER_DATA_DIR, else ./data. */
export function resolveDataDir(option: string | undefined): string {
  return path.resolve(option ?? process.env.RECMASTER_DATA_DIR ?? 'data');
}

export function busDir(dataDir: string): string {
  return path.join(dataDir, 'bus');
}
