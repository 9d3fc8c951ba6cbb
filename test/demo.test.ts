// The main job end to end, as README's first command runs it (small world, short run): the
// first run prepares models and runs live; a second run resumes from the same data directory.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { tempDir } from './helpers.js';

const run = promisify(execFile);
const main = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

interface Summary {
  requests: number;
  errors: number;
  p99_ms: number;
  model_versions: { published: number; served: number; refused: number };
  feature_freshness_p99_ms: number;
  auc_online: number | null;
  auc_frozen: number | null;
  ctr: number | null;
  cold_share: number | null;
  samples: number;
}

/** Node's arguments to run the demo on a small world in `dir`, with `more` options. */
function demoArgs(dir: string, ...more: string[]): string[] {
  return [
    '--import',
    'tsx',
    main,
    '-d',
    dir,
    'demo',
    ...['--users', '150', '--items', '400', '--warmup', '400', '--bootstrap', '300'],
    ...['--rate', '8', '--port', '0', '--json'],
    ...more,
  ];
}

async function demo(dir: string, durationS: number) {
  const { stdout, stderr } = await run(
    process.execPath,
    demoArgs(dir, '--drift-at', '5', '--duration', String(durationS)),
    { timeout: 240_000, env: { ...process.env, LOG_LEVEL: 'warn' }, maxBuffer: 64 * 1024 * 1024 },
  );
  const last = stdout.trim().split('\n').at(-1) ?? '';
  return { summary: JSON.parse(last) as Summary, stderr };
}

describe('recmaster demo', () => {
  test('Ctrl-C while the first run trains its ranker stops it, without going live', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const child = spawn(process.execPath, demoArgs(dir), {
        env: { ...process.env, LOG_LEVEL: 'warn' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk: string) => {
        if (
          !/training the first ranker/.test(stderr) &&
          /training the first ranker/.test(stderr + chunk)
        )
          child.kill('SIGINT');
        stderr += chunk;
      });
      child.stdout.resume();
      const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      clearTimeout(killer);
      assert.match(stderr, /stopping \(state is kept/);
      assert.equal(code, 0, `exit code ${code}: ${stderr.slice(-500)}`);
      assert.match(stderr, /stopped the loops/, 'stopped where it would have gone live');
    } finally {
      await cleanup();
    }
  });

  test('runs the whole loop, reports it as JSON, and resumes on a second run', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      // Over a minute live: the trainer learns once labels are final (the 60 s join window).
      const first = await demo(dir, 75);
      const s = first.summary;
      assert.match(first.stderr, /training GraphSAGE/, 'the first run trains GraphSAGE');
      assert.match(first.stderr, /first ranker v000001 published/, 'and a first ranker');
      assert.ok(s.requests >= 300, `${s.requests} live requests in 75 s at 8/s`);
      assert.equal(s.errors, 0, 'no failed request');
      assert.ok(s.p99_ms > 0 && s.p99_ms < 2000, `p99 ${s.p99_ms} ms`);
      assert.ok(s.samples > 0, `${s.samples} labelled samples reached the learning loop`);
      assert.ok(
        s.model_versions.served >= 1,
        `versions served: ${JSON.stringify(s.model_versions)}`,
      );
      assert.ok(
        s.cold_share !== null && s.cold_share > 0,
        `fresh items are recommended (cold share ${s.cold_share})`,
      );
      const state = JSON.parse(await readFile(path.join(dir, 'demo.json'), 'utf8')) as {
        runs: number;
      };
      assert.equal(state.runs, 1);
      const frozen = await readdir(path.join(dir, 'models', 'ranker-frozen'));
      assert.ok(frozen.includes('v000001'), 'the first ranker is kept for the frozen arm');

      const second = await demo(dir, 8);
      assert.match(second.stderr, /resuming/, 'the second run resumes');
      assert.doesNotMatch(second.stderr, /training GraphSAGE/, 'without training from scratch');
      assert.ok(second.summary.requests > 0, 'and serves');
      assert.equal(second.summary.errors, 0, 'without errors');
    } finally {
      await cleanup();
    }
  });
});
