/**
 * Argument conditions after normalisation, their truth on a 64-bit value, and a solver that finds
 * a value satisfying two conditions at once (used to detect rules that overlap).
 */

export type CmpOp = 'NE' | 'LT' | 'LE' | 'EQ' | 'GE' | 'GT' | 'MASKED_EQ';

/**
 * One condition on `args[index]`. For `MASKED_EQ`, `mask` is the mask and `value` is already
 * masked (libseccomp compares `(arg & mask) == (datum & mask)`); for the others `mask` is all ones.
 */
export interface Cond {
  index: number;
  op: CmpOp;
  value: bigint;
  mask: bigint;
}

export const U64_MAX = (1n << 64n) - 1n;

/** Whether `arg` satisfies `c`. */
export function matches(c: Cond, arg: bigint): boolean {
  switch (c.op) {
    case 'EQ':
      return arg === c.value;
    case 'NE':
      return arg !== c.value;
    case 'LT':
      return arg < c.value;
    case 'LE':
      return arg <= c.value;
    case 'GT':
      return arg > c.value;
    case 'GE':
      return arg >= c.value;
    case 'MASKED_EQ':
      return (arg & c.mask) === c.value;
  }
}

type ValueSet =
  | { kind: 'range'; lo: bigint; hi: bigint }
  | { kind: 'ne'; v: bigint }
  | { kind: 'masked'; m: bigint; d: bigint };

function toSet(c: Cond): ValueSet {
  switch (c.op) {
    case 'EQ':
      return { kind: 'range', lo: c.value, hi: c.value };
    case 'NE':
      return { kind: 'ne', v: c.value };
    case 'LT':
      return { kind: 'range', lo: 0n, hi: c.value - 1n };
    case 'LE':
      return { kind: 'range', lo: 0n, hi: c.value };
    case 'GT':
      return { kind: 'range', lo: c.value + 1n, hi: U64_MAX };
    case 'GE':
      return { kind: 'range', lo: c.value, hi: U64_MAX };
    case 'MASKED_EQ':
      return { kind: 'masked', m: c.mask, d: c.value };
  }
}

/** The smallest `x >= lo` with `(x & m) == d` (`d` a subset of `m`), if any. */
function maskedAtLeast(m: bigint, d: bigint, lo: bigint): bigint | undefined {
  if (d >= lo) return d;
  const free = ~m & U64_MAX;
  const t = lo - d; // the free bits must add up to at least t (d and the free bits are disjoint)
  if ((t & ~free) === 0n) return d | t;
  // The smallest submask of `free` above t: keep t's bits above some free bit b where t has a 0,
  // set b, clear the rest; the lowest such b gives the smallest value.
  for (let b = 0n; b < 64n; b++) {
    const bit = 1n << b;
    if ((free & bit) === 0n || (t & bit) !== 0n) continue;
    const high = (t >> (b + 1n)) << (b + 1n);
    if ((high & ~free) === 0n) return d | high | bit;
  }
  return undefined;
}

function single(s: ValueSet): bigint | undefined {
  switch (s.kind) {
    case 'range':
      return s.lo <= s.hi ? s.lo : undefined;
    case 'ne':
      return s.v === 0n ? 1n : 0n;
    case 'masked':
      return s.d;
  }
}

function pair(a: ValueSet, b: ValueSet): bigint | undefined {
  if (a.kind === 'range' && b.kind === 'range') {
    // biome-ignore lint/complexity/useMathMinMax: bigints
    const lo = a.lo > b.lo ? a.lo : b.lo;
    // biome-ignore lint/complexity/useMathMinMax: bigints
    const hi = a.hi < b.hi ? a.hi : b.hi;
    return lo <= hi ? lo : undefined;
  }
  if (a.kind === 'ne' && b.kind === 'ne') return [0n, 1n, 2n].find((x) => x !== a.v && x !== b.v);
  if (a.kind === 'masked' && b.kind === 'masked') {
    return ((a.d ^ b.d) & a.m & b.m) === 0n ? a.d | b.d : undefined;
  }
  if (a.kind === 'ne' || b.kind === 'ne') {
    const [ne, other] = (a.kind === 'ne' ? [a, b] : [b, a]) as [{ kind: 'ne'; v: bigint }, ValueSet];
    if (other.kind === 'range') {
      if (other.lo > other.hi) return undefined;
      if (other.lo !== ne.v) return other.lo;
      return other.lo < other.hi ? other.lo + 1n : undefined;
    }
    if (other.kind === 'masked') {
      if (other.d !== ne.v) return other.d;
      const free = ~other.m & U64_MAX;
      return free === 0n ? undefined : other.d | (free & -free);
    }
    return undefined;
  }
  const [r, m] = (a.kind === 'range' ? [a, b] : [b, a]) as [
    { kind: 'range'; lo: bigint; hi: bigint },
    { kind: 'masked'; m: bigint; d: bigint },
  ];
  if (r.lo > r.hi) return undefined;
  const x = maskedAtLeast(m.m, m.d, r.lo);
  return x !== undefined && x <= r.hi ? x : undefined;
}

/**
 * Six argument values that satisfy every condition of both `a` and `b`, or `undefined` if no
 * such arguments exist (the two conjunctions are disjoint). Each list has at most one condition
 * per argument index.
 */
export function overlapWitness(a: readonly Cond[], b: readonly Cond[]): bigint[] | undefined {
  const args: bigint[] = [];
  for (let i = 0; i < 6; i++) {
    const sets = [...a, ...b].filter((c) => c.index === i).map(toSet);
    let v: bigint | undefined;
    if (sets.length === 0) v = 0n;
    else if (sets.length === 1) v = single(sets[0]!);
    else if (sets.length === 2) v = pair(sets[0]!, sets[1]!);
    else throw new Error('internal: more than one condition per argument in a rule');
    if (v === undefined) return undefined;
    args.push(v);
  }
  return args;
}
