// Structured logs (pino) to stderr, so stdout stays free for a command's output
// (JSON summaries, tailed events). LOG_LEVEL picks the level.
import { pino } from 'pino';

export const logger = pino(
  { level: process.env.LOG_LEVEL ?? 'info', base: { pid: process.pid } },
  pino.destination({ fd: 2, sync: false }),
);

export type Logger = typeof logger;
