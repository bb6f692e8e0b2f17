import { expect, it } from 'vitest';
import { type CmpOp, type Cond, matches, overlapWitness, U64_MAX } from '../src/cond.js';
import { around, interesting64, Rng } from './helpers.js';

const OPS: readonly CmpOp[] = ['NE', 'LT', 'LE', 'EQ', 'GE', 'GT', 'MASKED_EQ'];

function randomCond(rng: Rng, index: number): Cond {
  const op = rng.pick(OPS);
  // Small values and masks too, so that intersections are often empty or tiny.
  const v = rng.chance(0.5) ? BigInt(rng.int(8)) : interesting64(rng);
  if (op !== 'MASKED_EQ') return { index, op, value: v, mask: U64_MAX };
  const mask = rng.chance(0.3) ? BigInt(rng.int(8)) : rng.chance(0.2) ? U64_MAX : interesting64(rng);
  return { index, op, value: (rng.chance(0.5) ? BigInt(rng.int(8)) : interesting64(rng)) & mask, mask };
}

it('overlapWitness: every witness satisfies both rules; no common value is ever found when it says none', () => {
  const rng = new Rng(42);
  let found = 0;
  let none = 0;
  let counterexamples = 0;
  for (let k = 0; k < 10_000; k++) {
    const a = [randomCond(rng, 0)];
    const b = [randomCond(rng, 0)];
    if (rng.chance(0.3)) a.push(randomCond(rng, 1));
    if (rng.chance(0.3)) b.push(randomCond(rng, 2));
    const w = overlapWitness(a, b);
    const holds = (cs: Cond[], args: bigint[]) => cs.every((c) => matches(c, args[c.index] ?? 0n));
    if (w !== undefined) {
      found++;
      expect(
        holds(a, w) && holds(b, w),
        JSON.stringify({ a, b, w }, (_, v) => (typeof v === 'bigint' ? `${v}` : v)),
      ).toBe(true);
      continue;
    }
    none++;
    // Try the values around every datum and mask of both sides, and random ones.
    const cands = [
      0n,
      1n,
      U64_MAX,
      ...[...a, ...b].flatMap((c) => [...around(c.value), c.value | (~c.mask & U64_MAX)]),
    ];
    for (let j = 0; j < 20; j++) cands.push(interesting64(rng));
    for (const x of cands) {
      const args = [x, x, x, x, x, x];
      if (holds(a, args) && holds(b, args)) counterexamples++;
    }
  }
  expect(counterexamples).toBe(0);
  expect(found).toBeGreaterThan(2500);
  expect(none).toBeGreaterThan(1000);
});

it('overlapWitness finds masked values inside ranges', () => {
  const masked = (mask: bigint, value: bigint): Cond => ({
    index: 0,
    op: 'MASKED_EQ',
    mask,
    value: value & mask,
  });
  const cmp = (op: CmpOp, value: bigint): Cond => ({ index: 0, op, value, mask: U64_MAX });
  // x & 0xf0 == 0x30, x >= 0x1_0000_0000 -> 0x1_0000_0030
  expect(overlapWitness([masked(0xf0n, 0x30n)], [cmp('GE', 0x1_0000_0000n)])).toEqual([
    0x1_0000_0030n,
    0n,
    0n,
    0n,
    0n,
    0n,
  ]);
  // x & 0xff == 0x05, x >= 0x206 -> 0x305; x < 5 -> none
  expect(overlapWitness([masked(0xffn, 0x05n)], [cmp('GE', 0x206n)])?.[0]).toBe(0x305n);
  expect(overlapWitness([masked(0xffn, 0x05n)], [cmp('LT', 0x05n)])).toBeUndefined();
  // x & 0xffff_0000_0000_00ff == 0x8000_0000_0000_0001, x <= 0x7fff... -> none
  expect(
    overlapWitness(
      [masked(0xffff_0000_0000_00ffn, 0x8000_0000_0000_0001n)],
      [cmp('LE', 0x7fff_ffff_ffff_ffffn)],
    ),
  ).toBeUndefined();
  // x & ~1 == 4 (x in {4, 5}), x != 4 -> 5
  expect(overlapWitness([masked(U64_MAX - 1n, 4n)], [cmp('NE', 4n)])?.[0]).toBe(5n);
  // all bits fixed and equal to the excluded value: none
  expect(overlapWitness([masked(U64_MAX, 4n)], [cmp('NE', 4n)])).toBeUndefined();
  // x < 0 never holds
  expect(overlapWitness([cmp('LT', 0n)], [])).toBeUndefined();
});
