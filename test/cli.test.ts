// The `recmaster` command end to end, as a user runs it (through tsx, from source).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { decodeEvent } from '../src/events/codec.js';
import { tempDir } from './helpers.js';

const run = promisify(execFile);
const main = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url));

function recmaster(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, ['--import', 'tsx', main, ...args], { timeout: 60_000 });
}

async function fails(args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    await recmaster(args);
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
  assert.fail(`recmaster ${args.join(' ')} should have failed`);
}

describe('recmaster CLI', () => {
  test('the installed command and bench:features run Node with the heap flags `npm start` uses', async () => {
    const shebang = (await readFile(main, 'utf8')).split('\n')[0] ?? '';
    const pkg = JSON.parse(
      await readFile(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8'),
    ) as { scripts: Record<string, string> };
    const start = pkg.scripts.start ?? '';
    const shebangFlags = /^#!\/usr\/bin\/env -S node (.+)$/.exec(shebang)?.[1]?.split(' ');
    const startFlags = /^node (.+) dist\/cli\/main\.js demo$/.exec(start)?.[1]?.split(' ');
    assert.ok(shebangFlags, `unexpected shebang: ${shebang}`);
    assert.deepEqual(shebangFlags, startFlags);
    // The bench that measured them runs the engine (and its reader process) with the same.
    const benchFlags = /^node (.+) --import tsx bench\/features\.ts$/
      .exec(pkg.scripts['bench:features'] ?? '')?.[1]
      ?.split(' ');
    assert.deepEqual(benchFlags, startFlags);
    assert.ok(shebangFlags.includes('--initial-old-space-size=256'));
  });

  test('every subcommand has help text', async () => {
    const top = await recmaster(['--help']);
    for (const sub of [
      'simulate',
      'features',
      'join',
      'train-gnn',
      'train-rank',
      'learn',
      'models',
      'serve',
      'topics',
      'tail',
    ]) {
      assert.match(top.stdout, new RegExp(`\\b${sub}\\b`));
      const help = await recmaster([sub, '--help']);
      assert.match(help.stdout, /Usage: recmaster/);
    }
  });

  test('simulate streams events into the log; topics and tail show them', async () => {
    const { dir, cleanup } = await tempDir();
    const { stdout } = await recmaster([
      '-d',
      dir,
      'simulate',
      '--duration',
      '30',
      '--users',
      '200',
      '--items',
      '500',
      '--json',
    ]);
    const summary = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}');
    assert.equal(summary.itemUpserts, 500 + summary.newItems);
    assert.ok(summary.impressions > 0 && summary.clicks > 0, JSON.stringify(summary));

    const topics = JSON.parse((await recmaster(['-d', dir, 'topics', '--json'])).stdout);
    const count = (name: string) =>
      topics.topics
        .find((t: { name: string }) => t.name === name)
        .partitions.reduce((n: number, p: { endOffset: number }) => n + p.endOffset, 0);
    assert.equal(count('impressions'), summary.impressions);
    assert.equal(count('feedback'), summary.clicks + summary.watches);
    assert.equal(count('items'), summary.itemUpserts);

    const tail = await recmaster(['-d', dir, 'tail', 'feedback', '-n', '3']);
    const lines = tail.stdout.trim().split('\n');
    assert.ok(lines.length > 0 && lines.length <= 12, `${lines.length} lines`);
    for (const line of lines) assert.ok(decodeEvent(Buffer.from(line)).ok, line);

    // The world is recorded so later stages can rebuild the truth.
    const config = JSON.parse(await readFile(path.join(dir, 'sim.json'), 'utf8'));
    assert.equal(config.users, 200);

    // A second run refuses to mix two simulations in one log, unless told to start over.
    const again = await fails(['-d', dir, 'simulate', '--duration', '5']);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already holds a simulation.*--reset/);
    await recmaster(['-d', dir, 'simulate', '--duration', '5', '--reset', '--json']);
    await cleanup();
  });

  test('bad options get a clear message and a non-zero exit', async () => {
    const { dir, cleanup } = await tempDir();
    const bad = await fails(['-d', dir, 'simulate', '--users', '0']);
    assert.match(bad.stderr, /users/);
    assert.match(bad.stderr, /E_CONFIG/);
    const notNumber = await fails(['-d', dir, 'simulate', '--speed', 'fast']);
    assert.match(notNumber.stderr, /speed must be a number/);
    const unknown = await fails(['-d', dir, 'tail', 'nope']);
    assert.match(unknown.stderr, /no topic nope/);
    const delay = await fails(['-d', dir, 'learn', '--label-delay', '-5']);
    assert.match(delay.stderr, /label-delay.*must be a number >= 0/);
    await cleanup();
  });

  test('train-gnn saves a model version, then warm-starts the next from it', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const empty = await fails(['-d', dir, 'train-gnn']);
      assert.match(empty.stderr, /no interactions/);
      await recmaster([
        '-d',
        dir,
        'simulate',
        '--duration',
        '120',
        '--users',
        '200',
        '--items',
        '500',
      ]);
      const first = JSON.parse(
        (await recmaster(['-d', dir, 'train-gnn', '--max-steps', '3', '--json'])).stdout
          .trim()
          .split('\n')
          .at(-1) as string,
      );
      assert.equal(first.version, 'v000001');
      assert.equal(first.warmStartFrom, null);
      assert.ok(first.interactions > 0 && first.steps === 3, JSON.stringify(first));
      const second = JSON.parse(
        (await recmaster(['-d', dir, 'train-gnn', '--max-steps', '2', '--json'])).stdout
          .trim()
          .split('\n')
          .at(-1) as string,
      );
      assert.equal(second.version, 'v000002');
      assert.equal(second.warmStartFrom, 'v000001');
      const manifest = JSON.parse(
        await readFile(path.join(dir, 'models', 'gnn', 'v000002', 'model.json'), 'utf8'),
      );
      assert.equal(manifest.training.warmStartFrom, 'v000001');
    } finally {
      await cleanup();
    }
  });
});
