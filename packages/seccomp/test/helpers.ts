import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LinuxSeccomp, SeccompArch } from '../src/index.js';
import { AUDIT_ARCH, syscallNumber } from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Compile test/c/<name>.c into a temp dir; `{ bin }` or `{ skip: reason }`. */
export function buildC(name: string, libs: string[] = []): { bin: string } | { skip: string } {
  const gcc = spawnSync('gcc', ['--version']);
  if (gcc.error || gcc.status !== 0) return { skip: 'gcc is not installed' };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-seccomp-'));
  const bin = path.join(dir, name);
  const r = spawnSync('gcc', ['-O2', '-Wall', '-o', bin, path.join(here, 'c', `${name}.c`), ...libs], {
    encoding: 'utf8',
  });
  if (r.status !== 0)
    return { skip: `cannot build ${name}.c: ${r.stderr.trim().split('\n').slice(-3).join(' / ')}` };
  return { bin };
}

/** The libseccomp checker, or a reason to skip (install: apt-get install -y libseccomp-dev). */
export function buildChecker(): { bin: string } | { skip: string } {
  if (!fs.existsSync('/usr/include/seccomp.h'))
    return { skip: 'libseccomp-dev is not installed (no seccomp.h)' };
  return buildC('scmp-checker', ['-lseccomp']);
}

// ---------------------------------------------------------------------------------------------
// A model of what runc does with an OCI section (specconv + seccomp_linux.go), kept apart from
// the implementation under test: it produces the rules runc hands to libseccomp and the
// semantics this package documents.

export const RET = {
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0,
  TRAP: 0x30000,
  ERRNO: 0x50000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const;

/** libseccomp's enum scmp_compare. */
export const SCMP_CMP = { NE: 1, LT: 2, LE: 3, EQ: 4, GE: 5, GT: 6, MASKED_EQ: 7 } as const;

export interface ModelCond {
  arg: number;
  op: number;
  a: bigint;
  b: bigint;
}
export interface ModelRule {
  nr: number;
  name: string;
  action: number;
  conds: ModelCond[];
}
export interface Model {
  arch: SeccompArch;
  def: number;
  rules: ModelRule[];
  /** Largest syscall number the profile names on this arch (runc's -ENOSYS limit). */
  maxNamed: number | undefined;
}

export function ociAction(action: string, errnoRet: number | undefined): number {
  switch (action) {
    case 'SCMP_ACT_KILL':
    case 'SCMP_ACT_KILL_THREAD':
      return RET.KILL_THREAD;
    case 'SCMP_ACT_KILL_PROCESS':
      return RET.KILL_PROCESS;
    case 'SCMP_ACT_TRAP':
      return RET.TRAP;
    case 'SCMP_ACT_ERRNO':
      return (RET.ERRNO | (errnoRet ?? 1)) >>> 0;
    case 'SCMP_ACT_TRACE':
      return (RET.TRACE | (errnoRet ?? 1)) >>> 0;
    case 'SCMP_ACT_LOG':
      return RET.LOG;
    case 'SCMP_ACT_ALLOW':
      return RET.ALLOW;
    default:
      throw new Error(`model: action ${action}`);
  }
}

export function runcModel(s: LinuxSeccomp, arch: SeccompArch): Model {
  const def = ociAction(s.defaultAction, s.defaultErrnoRet);
  const rules: ModelRule[] = [];
  let maxNamed: number | undefined;
  for (const sc of s.syscalls ?? []) {
    const action = ociAction(sc.action, sc.errnoRet);
    const conds: ModelCond[] = (sc.args ?? []).map((a) => ({
      arg: a.index,
      op: SCMP_CMP[a.op.slice('SCMP_CMP_'.length) as keyof typeof SCMP_CMP],
      a: BigInt(a.value),
      b: BigInt(a.valueTwo ?? 0),
    }));
    const dup = new Set(conds.map((c) => c.arg)).size !== conds.length;
    for (const name of sc.names) {
      const nr = syscallNumber(name, arch);
      if (nr !== undefined && (maxNamed === undefined || nr > maxNamed)) maxNamed = nr;
      if (action === def || nr === undefined) continue;
      if (dup) for (const c of conds) rules.push({ nr, name, action, conds: [c] });
      else rules.push({ nr, name, action, conds });
    }
  }
  return { arch, def, rules, maxNamed };
}

const M64 = (1n << 64n) - 1n;

export function condHolds(c: ModelCond, v: bigint): boolean {
  switch (c.op) {
    case SCMP_CMP.NE:
      return v !== c.a;
    case SCMP_CMP.LT:
      return v < c.a;
    case SCMP_CMP.LE:
      return v <= c.a;
    case SCMP_CMP.EQ:
      return v === c.a;
    case SCMP_CMP.GE:
      return v >= c.a;
    case SCMP_CMP.GT:
      return v > c.a;
    case SCMP_CMP.MASKED_EQ:
      return (v & c.a) === (c.b & c.a & M64);
    default:
      throw new Error(`op ${c.op}`);
  }
}

const isUncond = (r: ModelRule) => r.conds.every((c) => c.op === SCMP_CMP.MASKED_EQ && c.a === 0n);

export interface Data {
  nr: number;
  arch: number;
  args: bigint[];
}

export const X32_BIT = 0x40000000;
const ENOSYS_RET = (RET.ERRNO | 38) >>> 0;

/** runc's -ENOSYS stub (patchbpf), prepended to libseccomp's program: does it answer for `d`? */
export function stubAnswers(m: Model, d: Data): boolean {
  if (d.arch !== AUDIT_ARCH[m.arch]) return false;
  if (m.def === RET.ALLOW || m.def === RET.LOG || (m.def & 0xffff0000) >>> 0 === RET.TRACE) return false;
  if (m.maxNamed === undefined || m.maxNamed === 0) return false;
  if (m.arch === 'x86_64' && (d.nr & X32_BIT) !== 0) return false;
  return d.nr >>> 0 > m.maxNamed;
}

/**
 * The documented semantics, and whether libseccomp's answer is determined by them for `d`
 * (`ambiguous`: two conditional rules with different actions both match).
 */
export function modelEval(m: Model, d: Data, badArch: number): { action: number; ambiguous: boolean } {
  if (d.arch !== AUDIT_ARCH[m.arch]) return { action: badArch, ambiguous: false };
  if (stubAnswers(m, d)) return { action: ENOSYS_RET, ambiguous: false };
  const nr = d.nr >>> 0;
  if (m.arch === 'x86_64' && nr >= X32_BIT && nr !== 0xffffffff) return { action: badArch, ambiguous: false };
  const rs = m.rules.filter((r) => r.nr === nr);
  const u = rs.find(isUncond);
  if (u) return { action: u.action, ambiguous: false };
  const hits = rs.filter((r) => r.conds.every((c) => condHolds(c, d.args[c.arg] ?? 0n)));
  if (hits.length === 0) return { action: m.def, ambiguous: false };
  return { action: hits[0]!.action, ambiguous: new Set(hits.map((h) => h.action)).size > 1 };
}

/** The checker's input for `m` (syscall numbers on x86_64, names on aarch64: libseccomp translates). */
export function checkerProfile(m: Model, badArch: number, optimize: 1 | 2): string {
  const lines = ['profile', `arch ${m.arch}`, `optimize ${optimize}`, `default ${m.def.toString(16)}`];
  lines.push(`badarch ${badArch.toString(16)}`);
  for (const r of m.rules) {
    const sys = m.arch === 'x86_64' ? String(r.nr) : r.name;
    const args = r.conds.map((c) => `${c.arg} ${c.op} ${c.a} ${c.b}`).join(' ');
    lines.push(`rule ${r.action.toString(16)} ${sys} ${r.conds.length}${args ? ` ${args}` : ''}`);
  }
  lines.push('end');
  return lines.join('\n');
}

export type CheckerResult =
  | { ok: Buffer; pfc: string }
  | { err: { rule: number; rc: number } }
  /** libseccomp did not finish building the filter within 5 s. */
  | { hang: true };

export function runChecker(bin: string, profiles: readonly string[]): CheckerResult[] {
  const out = execFileSync(bin, [], {
    input: `${profiles.join('\n')}\n`,
    encoding: 'utf8',
    maxBuffer: 1 << 30,
  });
  const lines = out.trim().split('\n');
  if (lines.length !== profiles.length)
    throw new Error(`checker printed ${lines.length} lines for ${profiles.length}`);
  return lines.map((l) => {
    const [kind, a, b] = l.split(' ');
    if (kind === 'ok')
      return { ok: Buffer.from(a ?? '', 'hex'), pfc: Buffer.from(b ?? '', 'hex').toString() };
    if (kind === 'hang') return { hang: true };
    if (kind !== 'err') throw new Error(`checker: ${l}`);
    return { err: { rule: Number(a), rc: Number(b) } };
  });
}

/** libseccomp's numbers for `names` on `arch` (negative: unknown to it). */
export function checkerResolve(
  bin: string,
  arch: SeccompArch,
  names: readonly string[],
): Map<string, number> {
  const out = execFileSync(bin, ['resolve', arch], { input: `${names.join('\n')}\n`, encoding: 'utf8' });
  return new Map(
    out
      .trim()
      .split('\n')
      .map((l) => {
        const [n, v] = l.split(' ');
        return [n ?? '', Number(v)] as const;
      }),
  );
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness (the tests are reproducible; the seed is printed on failure).

export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  /** mulberry32 */
  u32(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  int(n: number): number {
    return this.u32() % n;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }
}

/** 64-bit values with interesting high and low halves. */
export function interesting64(rng: Rng): bigint {
  const halves = [0, 1, 2, 0x7f, 0x80, 0xff, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, rng.u32()];
  switch (rng.int(4)) {
    case 0:
      return BigInt(rng.pick(halves));
    case 1:
      return (BigInt(rng.pick(halves)) << 32n) | BigInt(rng.pick(halves));
    case 2:
      return rng.u64();
    default:
      return BigInt(rng.int(64));
  }
}

/** Values at and around `v` in both halves, wrapped to 64 bits. */
export function around(v: bigint): bigint[] {
  const hi = v >> 32n;
  const lo = v & 0xffffffffn;
  const out = [v - 1n, v, v + 1n];
  for (const dh of [-1n, 0n, 1n])
    for (const dl of [-1n, 0n, 1n]) out.push(((hi + dh) << 32n) | ((lo + dl) & 0xffffffffn));
  return out.map((x) => x & M64);
}
