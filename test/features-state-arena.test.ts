import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { StateArena } from '../src/features/state-arena.js';
import { DecayedState, SlidingWindowState, UnboundedState } from '../src/features/window-state.js';

describe('StateArena', () => {
  test('blocks do not overlap, and a freed block is handed out again', () => {
    const arena = new StateArena();
    const taken: [number, number, number][] = [];
    for (const size of [2, 3, 5, 8, 9, 100, 2, 296, 7]) {
      const cap = arena.alloc(size);
      assert.ok(cap >= size && cap <= Math.max(3, size * 1.5), `capacity ${cap} for ${size}`);
      taken.push([arena.lastChunk, arena.lastAt, cap]);
    }
    taken.forEach(([no, at, cap], i) => {
      arena.chunk(no).fill(i, at, at + cap);
    });
    taken.forEach(([no, at, cap], i) => {
      assert.ok(
        arena
          .chunk(no)
          .subarray(at, at + cap)
          .every((v) => v === i),
        `block ${i} kept its numbers`,
      );
    });
    assert.equal(arena.liveBlocks, taken.length);
    const [no, at, cap] = taken[5] as [number, number, number];
    arena.free(no, at, cap);
    assert.equal(arena.liveBlocks, taken.length - 1);
    assert.equal(arena.alloc(cap), cap);
    assert.deepEqual([arena.lastChunk, arena.lastAt], [no, at], 'the freed block comes back');
    assert.throws(() => arena.free(no, at, 5), /not a block capacity/);
    assert.throws(() => arena.alloc(1), /out of range/);
  });

  test('a block larger than a chunk gets a chunk of its own', () => {
    const arena = new StateArena();
    arena.alloc(10);
    const cap = arena.alloc(StateArena.CHUNK + 1);
    assert.ok(arena.chunk(arena.lastChunk).length >= cap);
    assert.equal(arena.lastAt, 0);
  });

  test('states sharing one arena read as states with an arena each', () => {
    // Many states grow, move to larger blocks and give blocks back in one arena, interleaved;
    // each must end exactly as the same state alone in an arena of its own.
    const shared = new StateArena();
    const make = (i: number, arena: StateArena) => {
      const options = { arena, allowedLatenessMs: 5_000 };
      if (i % 3 === 0) return new SlidingWindowState(3_600_000, 60_000, 'sum', options);
      if (i % 3 === 1) return new DecayedState(600_000, 'sum', options);
      return new UnboundedState('count', options);
    };
    const together = Array.from({ length: 60 }, (_, i) => make(i, shared));
    const alone = Array.from({ length: 60 }, (_, i) => make(i, new StateArena()));
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const t0 = 1_767_225_600_000;
    for (let e = 0; e < 20_000; e++) {
      const i = Math.floor(random() * 60);
      const ts = t0 + e * 1_000 - Math.floor(random() * 4_000);
      const value = Math.floor(random() * 5);
      const watermark = t0 + e * 1_000 - 5_000;
      assert.equal(
        together[i]?.add(ts, value, watermark),
        alone[i]?.add(ts, value, watermark),
        `event ${e}`,
      );
      // Now and then a state is dropped and a fresh one takes its place (its block reused).
      if (e % 997 === 0) {
        together[i]?.release();
        together[i] = make(i, shared);
        alone[i] = make(i, new StateArena());
      }
    }
    together.forEach((state, i) => {
      assert.deepEqual(state.serialize(), alone[i]?.serialize(), `state ${i}`);
    });
    assert.equal(shared.liveBlocks, 60);
    for (const state of together) state.release();
    assert.equal(shared.liveBlocks, 0);
  });
});
