// One Prometheus registry for the process; every module registers its metrics here
// so the server's /metrics shows them all.
import { Counter, Registry } from 'prom-client';

export const registry = new Registry();

export const deadLetterCounter = new Counter({
  name: 'recmaster_dead_letters_total',
  help: 'Invalid events sent to a dead-letter topic instead of being processed',
  labelNames: ['topic', 'kind'] as const,
  registers: [registry],
});
