/**
 * Differential test against libseccomp: the same OCI profiles are compiled by this package and,
 * through a model of runc's conversion, by libseccomp (test/c/scmp-checker.c), and both programs
 * are run by a classic-BPF interpreter on many `seccomp_data` vectors. runc's -ENOSYS stub is
 * applied on libseccomp's side as runc does.
 *
 * Our program must always give the documented semantics (the model in helpers.ts). Where
 * libseccomp's program differs, the difference is classified, and every one must be one of:
 * - a syscall with conflicting rules (conditional rules with different actions that can both
 *   match): libseccomp decides by its internal rule-tree order, we take the first listed rule;
 * - a libseccomp BPF generation bug: its program disagrees with its own rule tree, which the
 *   checker prints with seccomp_export_pfc (test/pfc.ts evaluates it);
 * - a libseccomp rule-merging bug: its rule tree disagrees with the rules (part of a rule lost).
 * One rule per syscall, and Docker's default profile, must be equal on every vector.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Cond, overlapWitness } from '../src/cond.js';
import {
  AUDIT_ARCH,
  compileSeccomp,
  defaultProfile,
  type LinuxSeccomp,
  type LinuxSeccompAction,
  type LinuxSeccompArg,
  type LinuxSeccompOperator,
  type LinuxSyscall,
  type SeccompArch,
  SYSCALL_TABLES,
} from '../src/index.js';
import { decode, disasm, type Insn, run, validate } from './bpf-interp.js';
import {
  around,
  buildChecker,
  type CheckerResult,
  checkerProfile,
  checkerResolve,
  condHolds,
  type Data,
  interesting64,
  type Model,
  type ModelCond,
  type ModelRule,
  modelEval,
  RET,
  Rng,
  runChecker,
  runcModel,
  stubAnswers,
  X32_BIT,
} from './helpers.js';
import { evalPfc, parsePfc } from './pfc.js';

const checker = buildChecker();
const skip = 'skip' in checker ? checker.skip : undefined;
const bin = 'bin' in checker ? checker.bin : '';
afterAll(() => {
  if (bin) fs.rmSync(path.dirname(bin), { recursive: true, force: true });
});

const BAD_ARCH = RET.KILL_PROCESS;
const ENOSYS = (RET.ERRNO | 38) >>> 0;
const ARCHES: readonly SeccompArch[] = ['x86_64', 'aarch64'];
const M64 = (1n << 64n) - 1n;

const ACTIONS: readonly LinuxSeccompAction[] = [
  'SCMP_ACT_ALLOW',
  'SCMP_ACT_ERRNO',
  'SCMP_ACT_KILL',
  'SCMP_ACT_KILL_PROCESS',
  'SCMP_ACT_TRAP',
  'SCMP_ACT_TRACE',
  'SCMP_ACT_LOG',
];
const OPS: readonly LinuxSeccompOperator[] = [
  'SCMP_CMP_NE',
  'SCMP_CMP_LT',
  'SCMP_CMP_LE',
  'SCMP_CMP_EQ',
  'SCMP_CMP_GE',
  'SCMP_CMP_GT',
  'SCMP_CMP_MASKED_EQ',
];

/** Names libseccomp 2.5.x knows on each arch (aarch64 rules go through its name translation). */
function knownNames(arch: SeccompArch): string[] {
  const names = Object.keys(SYSCALL_TABLES[arch]);
  if (arch === 'x86_64') return names;
  const native = checkerResolve(bin, 'x86_64', names);
  const there = checkerResolve(bin, arch, names);
  return names.filter((n) => (native.get(n) ?? -1) >= 0 && there.get(n) === SYSCALL_TABLES[arch][n]);
}

const num = (v: bigint): number | bigint =>
  v <= BigInt(Number.MAX_SAFE_INTEGER) && v % 3n !== 0n ? Number(v) : v;

interface GenOptions {
  /**
   * `single`: one rule per syscall; `consistent`: several rules per syscall, all with the same
   * action; `mixed`: several rules per syscall with random actions.
   */
  kind: 'single' | 'consistent' | 'mixed';
  /** 32: argument values and masks below 2^32 (the usual case); 64: any 64-bit values. */
  bits: 32 | 64;
}

function randomValue(rng: Rng, o: GenOptions): bigint {
  const v = interesting64(rng);
  return o.bits === 32 ? v & 0xffffffffn : v;
}

function randomArg(rng: Rng, index: number, o: GenOptions): LinuxSeccompArg {
  const op = rng.pick(OPS);
  const value = randomValue(rng, o);
  const arg: LinuxSeccompArg = { index, value: num(value), op };
  if (op === 'SCMP_CMP_MASKED_EQ') {
    // the expected value: usually within the mask, sometimes with bits outside it
    const two = rng.chance(0.7) ? randomValue(rng, o) & value : randomValue(rng, o);
    arg.valueTwo = num(two);
  }
  return arg;
}

function randomArgs(rng: Rng, o: GenOptions): LinuxSeccompArg[] {
  const n = rng.pick([0, 1, 1, 1, 2, 2, 3]);
  const args: LinuxSeccompArg[] = [];
  for (let i = 0; i < n; i++) {
    // runc splits a rule with two conditions on one argument into two rules: not for `single`.
    const index = args.length > 0 && o.kind !== 'single' && rng.chance(0.1) ? args[0]!.index : rng.int(6);
    if (o.kind === 'single' && args.some((a) => a.index === index)) continue;
    args.push(randomArg(rng, index, o));
  }
  return args;
}

/** A random profile over a small pool of syscalls, so that syscalls get several rules. */
function randomProfile(rng: Rng, pool: readonly string[], o: GenOptions): LinuxSeccomp {
  const defaultAction = rng.pick(ACTIONS);
  const s: LinuxSeccomp = { defaultAction, syscalls: [] };
  if (rng.chance(0.5)) s.defaultErrnoRet = rng.pick([1, 13, 38, 95]);
  const fixed = new Map<string, { action: LinuxSeccompAction; errnoRet: number }>();
  const unused = [...pool];
  const entries = 1 + rng.int(o.kind === 'single' ? Math.min(14, pool.length) : 14);
  const syscalls: LinuxSyscall[] = [];
  for (let e = 0; e < entries; e++) {
    let names: string[];
    if (o.kind === 'single') {
      if (unused.length === 0) break;
      names = unused.splice(rng.int(unused.length), 1);
    } else if (o.kind === 'consistent') names = [rng.pick(pool)];
    else names = Array.from({ length: 1 + rng.int(3) }, () => rng.pick(pool));
    if (rng.chance(0.05)) names.push('no_such_syscall');
    let action = rng.pick(ACTIONS);
    let errnoRet = rng.pick([1, 2, 13, 38]);
    if (o.kind === 'consistent') {
      const f = fixed.get(names[0]!) ?? { action, errnoRet };
      fixed.set(names[0]!, f);
      ({ action, errnoRet } = f);
    }
    const rule: LinuxSyscall = { names, action };
    if (o.kind === 'consistent' || rng.chance(0.7)) rule.errnoRet = errnoRet;
    const args = randomArgs(rng, o);
    if (args.length > 0) rule.args = args;
    syscalls.push(rule);
  }
  s.syscalls = syscalls;
  return s;
}

/** seccomp_data vectors aimed at the rules of `m`: their syscalls, neighbours, odd numbers, arg boundaries. */
function vectors(rng: Rng, m: Model, count: number): Data[] {
  const audit = AUDIT_ARCH[m.arch];
  const foreign = [
    AUDIT_ARCH.i386,
    AUDIT_ARCH.arm,
    m.arch === 'x86_64' ? AUDIT_ARCH.aarch64 : AUDIT_ARCH.x86_64,
  ];
  const ruleNrs = [...new Set(m.rules.map((r) => r.nr))];
  const odd = [
    0,
    1,
    (m.maxNamed ?? 0) - 1,
    m.maxNamed ?? 0,
    (m.maxNamed ?? 0) + 1,
    0x3fffffff,
    X32_BIT,
    X32_BIT + 1,
    0x7fffffff,
    0x80000000,
    0x80000005,
    0xbfffffff,
    0xc0000000,
    0xfffffffe,
    0xffffffff,
  ];
  const perArg = (nr: number, i: number): bigint[] => {
    const vals = [0n, M64];
    for (const r of m.rules) {
      if (r.nr !== nr) continue;
      for (const c of r.conds) {
        if (c.arg !== i) continue;
        vals.push(...around(c.a));
        if (c.op === 7) vals.push(c.b & c.a, (c.b & c.a) | (~c.a & M64), (c.b & c.a) ^ (c.a & -c.a));
      }
    }
    return vals;
  };
  const out: Data[] = [];
  for (let k = 0; k < count; k++) {
    let nr: number;
    const roll = rng.int(10);
    if (roll < 6 && ruleNrs.length > 0) nr = rng.pick(ruleNrs);
    else if (roll < 7 && ruleNrs.length > 0) nr = (rng.pick(ruleNrs) + rng.pick([-1, 1, X32_BIT])) >>> 0;
    else if (roll < 9) nr = rng.pick(odd) >>> 0;
    else nr = rng.chance(0.5) ? rng.int(500) : rng.u32();
    const args: bigint[] = [];
    for (let i = 0; i < 6; i++) args.push(rng.chance(0.85) ? rng.pick(perArg(nr, i)) : interesting64(rng));
    // Sometimes satisfy one rule of this syscall exactly (pushes vectors into overlaps).
    const rs = m.rules.filter((r) => r.nr === nr);
    if (rs.length > 0 && rng.chance(0.3)) {
      const r = rng.pick(rs);
      for (const c of r.conds) {
        const cands = perArg(nr, c.arg).filter((v) => condHolds(c, v));
        if (cands.length > 0) args[c.arg] = rng.pick(cands);
      }
    }
    out.push({ nr, arch: rng.chance(0.93) ? audit : rng.pick(foreign), args });
  }
  return out;
}

interface Tally {
  profiles: number;
  vectors: number;
  /** Vectors also run through libseccomp's program (its profile built). */
  compared: number;
  /** Vectors where ours and libseccomp's programs return the same action. */
  equal: number;
  /**
   * Vectors of syscalls with conflicting rules (two conditional rules with different actions
   * whose conditions can both hold): libseccomp's answer depends on its rule-tree order.
   */
  conflicted: number;
  conflictedEqual: number;
  /** Profiles libseccomp rejected (EEXIST), and how many of them we had warned about. */
  rejected: number;
  rejectedWarned: number;
  /** Profiles on which libseccomp loops forever (the checker gives up after 5 s). */
  hangs: number;
  hangsWarned: number;
  /** Determined vectors where libseccomp's BPF differs from its own rule tree (seccomp_export_pfc). */
  genBpfBugs: number;
  /** Determined vectors where libseccomp's rule tree differs from the rules (a rule lost in merging). */
  mergeBugs: number;
  examples: string[];
}

/** Compile `profiles` both ways and compare on vectors; updates `t`, throws on a real mismatch. */
function compare(rng: Rng, arch: SeccompArch, profiles: LinuxSeccomp[], perProfile: number, t: Tally): void {
  const audit = AUDIT_ARCH[arch];
  const models = profiles.map((p) => runcModel(p, arch));
  const results: CheckerResult[] = runChecker(
    bin,
    models.map((m, i) => checkerProfile(m, BAD_ARCH, i % 2 === 0 ? 1 : 2)),
  );
  profiles.forEach((p, i) => {
    const m = models[i]!;
    const warnings: string[] = [];
    const ours = compileSeccomp(p, { arch, onWarning: (w) => warnings.push(w) });
    const insns = decode(ours.filter);
    validate(insns);
    const lib = results[i]!;
    const { all: conflicts, undecided: conflicted } = conflictedSyscalls(m);
    // Our overlap warning fires exactly for profiles with conflicting rules.
    expect(warnings.some((w) => w.includes('can match both'))).toBe(conflicts.size > 0);
    t.profiles++;
    let libInsns: Insn[] | undefined;
    let pfc: ReturnType<typeof parsePfc> = [];
    if ('ok' in lib) {
      libInsns = decode(lib.ok);
      pfc = parsePfc(lib.pfc);
    } else if ('hang' in lib) {
      t.hangs++;
      if (conflicts.size > 0) t.hangsWarned++;
      t.examples.push(`libseccomp hangs on ${JSON.stringify(p, big)}`);
    } else {
      // libseccomp rejects some profiles with conflicting rules (EEXIST): runc fails to start
      // the container. Each such profile must be one we warned about.
      expect(lib.err.rc, `libseccomp error on ${JSON.stringify(p, big)}`).toBe(-17);
      t.rejected++;
      // libseccomp also rejects a rule that cannot conflict with another only because that other
      // rule never matches (e.g. a0 < 0): its rule tree conflicts even though the rules do not.
      const failing = m.rules[lib.err.rule];
      const never = m.rules.some(
        (r) =>
          r.nr === failing?.nr &&
          r.conds.some((c) => (c.op === 2 && c.a === 0n) || (c.op === 6 && c.a === M64)),
      );
      if (conflicts.size > 0 || never) t.rejectedWarned++;
    }
    for (const d of vectors(rng, m, perProfile)) {
      // 1. Ours always has the documented semantics.
      const want = modelEval(m, d, BAD_ARCH);
      const got = run(insns, d);
      t.vectors++;
      if (got !== want.action) {
        throw new Error(
          `ours ${hex(got)} != model ${hex(want.action)} for ${show(d)}\nprofile ${JSON.stringify(p, big)}\n${disasm(insns)}`,
        );
      }
      if (libInsns === undefined) continue;
      // 2. libseccomp (+ runc's -ENOSYS stub), its rule tree, and the classification of differences.
      const stub = stubAnswers(m, d);
      const theirs = stub ? ENOSYS : run(libInsns, d);
      t.compared++;
      if (theirs === got) t.equal++;
      if (want.ambiguous || conflicted.has(d.nr)) {
        t.conflicted++;
        if (theirs === got) t.conflictedEqual++;
        continue;
      }
      // The PFC has the per-syscall rules only (no x32 check); the rest is compared directly.
      const perSyscall =
        d.arch === audit && !stub && !(arch === 'x86_64' && d.nr >= X32_BIT && d.nr !== 0xffffffff);
      const intended = perSyscall ? (evalPfc(pfc, d) ?? m.def) : theirs;
      if (theirs === got) continue;
      const what = theirs !== intended ? 'genBpfBugs' : intended !== got ? 'mergeBugs' : undefined;
      if (what === undefined) throw new Error('unreachable');
      t[what]++;
      if (t.examples.length < 4) {
        t.examples.push(
          `${what}: ours ${hex(got)}, libseccomp ${hex(theirs)}, its rule tree ${hex(intended)}, for ${show(d)}\n` +
            `profile ${JSON.stringify(p, big)}\nlibseccomp rule tree:\n${'ok' in lib ? lib.pfc : ''}`,
        );
      }
    }
  });
}

/**
 * Syscalls with two conditional rules whose actions differ and whose conditions can both hold,
 * among the rules before the first unconditional one (libseccomp ignores conditional rules after
 * it). `decided`: those without an unconditional rule, where libseccomp's answer then depends on
 * its rule-tree order (README.md); with one, the unconditional rule decides, but libseccomp may
 * still reject the profile or hang.
 */
function conflictedSyscalls(m: Model): { all: Set<number>; undecided: Set<number> } {
  const all = new Set<number>();
  const undecided = new Set<number>();
  const byNr = new Map<number, ModelRule[]>();
  for (const r of m.rules) byNr.set(r.nr, [...(byNr.get(r.nr) ?? []), r]);
  for (const [nr, rs] of byNr) {
    const conds = rs.map((r) => r.conds.map(toCond).filter((c) => !(c.op === 'MASKED_EQ' && c.mask === 0n)));
    const first = conds.findIndex((c) => c.length === 0);
    const n = first < 0 ? rs.length : first;
    for (let j = 0; j < n && !all.has(nr); j++) {
      for (let i = 0; i < j; i++) {
        if (rs[i]!.action !== rs[j]!.action && overlapWitness(conds[i]!, conds[j]!) !== undefined) {
          all.add(nr);
          if (first < 0) undecided.add(nr);
          break;
        }
      }
    }
  }
  return { all, undecided };
}

const OP_NAMES = ['', 'NE', 'LT', 'LE', 'EQ', 'GE', 'GT', 'MASKED_EQ'] as const;
function toCond(c: ModelCond): Cond {
  const op = OP_NAMES[c.op] as Cond['op'];
  return op === 'MASKED_EQ'
    ? { index: c.arg, op, mask: c.a, value: c.b & c.a }
    : { index: c.arg, op, mask: (1n << 64n) - 1n, value: c.a };
}

const hex = (v: number) => `0x${v.toString(16)}`;
const big = (_k: string, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v);
const show = (d: Data) =>
  `nr=${d.nr} arch=${hex(d.arch)} args=[${d.args.map((a) => `0x${a.toString(16)}`).join(',')}]`;

const tally = (): Tally => ({
  profiles: 0,
  vectors: 0,
  compared: 0,
  equal: 0,
  conflicted: 0,
  conflictedEqual: 0,
  rejected: 0,
  rejectedWarned: 0,
  hangs: 0,
  hangsWarned: 0,
  genBpfBugs: 0,
  mergeBugs: 0,
  examples: [],
});

function report(arch: string, what: string, t: Tally): string {
  return (
    `${arch} ${what}: ${t.profiles} profiles, ${t.vectors} vectors, ${t.compared} compared, ${t.equal} equal; ` +
    `${t.conflicted} on conflicting rules (${t.conflictedEqual} equal), ${t.rejected} profiles rejected by ` +
    `libseccomp, ${t.hangs} on which it hangs; libseccomp bugs: ${t.genBpfBugs} BPF generation, ${t.mergeBugs} rule merging`
  );
}

describe.skipIf(skip !== undefined)('same actions as libseccomp', () => {
  for (const arch of ARCHES) {
    describe(arch, () => {
      const names = () => knownNames(arch);

      it('agrees with libseccomp on the syscall tables', () => {
        const all = Object.keys(SYSCALL_TABLES[arch]);
        const lib = checkerResolve(bin, arch, all);
        const known = all.filter((n) => (lib.get(n) ?? -1) >= 0);
        // libseccomp 2.5.4 lacks only syscalls newer than itself; the ones it has must agree.
        expect(known.length).toBeGreaterThan(all.length - 25);
        for (const n of known) expect(lib.get(n), n).toBe(SYSCALL_TABLES[arch][n]);
      });

      const random = (what: string, seed: number, o: GenOptions, check: (t: Tally) => void) =>
        it(`random profiles, ${what}`, () => {
          const rng = new Rng(seed + (arch === 'x86_64' ? 0 : 1000));
          const pool = names();
          const t = tally();
          for (let batch = 0; batch < 4; batch++) {
            const small = [
              ...new Set(Array.from({ length: o.kind === 'single' ? 14 : 6 }, () => rng.pick(pool))),
            ];
            const profiles = Array.from({ length: 100 }, () => randomProfile(rng, small, o));
            compare(rng, arch, profiles, 50, t);
          }
          console.log(report(arch, what, t));
          if (t.examples.length > 0) console.log(t.examples[0]);
          expect(t.vectors).toBe(20_000);
          check(t);
        });

      random('one rule per syscall: all equal', 11, { kind: 'single', bits: 64 }, (t) => {
        expect(t.equal).toBe(t.vectors);
      });
      random('same-action rules, 32-bit values', 12, { kind: 'consistent', bits: 32 }, (t) => {
        expect(t.conflicted).toBe(0);
        expect(t.compared - t.equal).toBe(t.genBpfBugs + t.mergeBugs);
        expect(t.equal).toBeGreaterThan(t.vectors * 0.99);
      });
      random('same-action rules, 64-bit values', 13, { kind: 'consistent', bits: 64 }, (t) => {
        expect(t.conflicted).toBe(0);
        expect(t.compared - t.equal).toBe(t.genBpfBugs + t.mergeBugs);
        expect(t.equal).toBeGreaterThan(t.vectors * 0.99);
      });
      random('rules with different actions', 14, { kind: 'mixed', bits: 64 }, (t) => {
        expect(t.rejectedWarned).toBe(t.rejected);
        expect(t.hangsWarned).toBe(t.hangs);
        expect(t.compared - t.equal).toBe(t.genBpfBugs + t.mergeBugs + t.conflicted - t.conflictedEqual);
      });

      it("Docker's default profile: every syscall number, boundary arguments", () => {
        const rng = new Rng(5);
        const known = new Set(names());
        // Keep the names libseccomp 2.5.4 can express on this arch, so both sides get the same rules.
        const p = defaultProfile(arch);
        p.syscalls = (p.syscalls ?? []).map((s) => ({ ...s, names: s.names.filter((n) => known.has(n)) }));
        const m = runcModel(p, arch);
        const [res] = runChecker(bin, [checkerProfile(m, BAD_ARCH, 2)]);
        if (res === undefined || !('ok' in res)) throw new Error(`libseccomp failed: ${JSON.stringify(res)}`);
        const lib = decode(res.ok);
        const ours = decode(compileSeccomp(p, { arch }).filter);
        const argVals = [
          0n,
          1n,
          8n,
          37n,
          38n,
          39n,
          40n,
          41n,
          0x20000n,
          0x20008n,
          0xffffffffn,
          0x100000000n,
          M64,
        ];
        argVals.push(
          0x7e020000n,
          0x10000000n,
          0x20000000n,
          0x00020000n,
          0x01000000n,
          0x00000100n | 0x00000011n,
        );
        let n = 0;
        for (let nr = 0; nr <= 1100; nr++) {
          for (let k = 0; k < 24; k++) {
            const a0 = k < argVals.length ? argVals[k]! : interesting64(rng);
            const d: Data = { nr, arch: AUDIT_ARCH[arch], args: [a0, rng.pick(argVals), 0n, 0n, 0n, 0n] };
            const theirs = stubAnswers(m, d) ? ENOSYS : run(lib, d);
            expect(run(ours, d), show(d)).toBe(theirs);
            n++;
          }
        }
        for (const nr of [
          0x3fffffff,
          X32_BIT,
          X32_BIT + 59,
          0x80000000,
          0xc0000000,
          0xfffffffe,
          0xffffffff,
        ]) {
          const d: Data = { nr, arch: AUDIT_ARCH[arch], args: [0n, 0n, 0n, 0n, 0n, 0n] };
          expect(run(ours, d), show(d)).toBe(stubAnswers(m, d) ? ENOSYS : run(lib, d));
        }
        expect(n).toBeGreaterThan(20_000);
      });
    });
  }
});

it.runIf(skip !== undefined)(`libseccomp cross-check skipped: ${skip}`, () => {});
