/**
 * OCI `linux.seccomp` -> classic BPF program for `seccomp(SECCOMP_SET_MODE_FILTER)`.
 *
 * The program has the behaviour of the one runc builds with libseccomp (plus runc's -ENOSYS
 * stub); README.md states the rules and where they differ. Layout:
 *
 *   ld [4]; jeq AUDIT_ARCH_<target> ? next : ret <bad arch>
 *   ld [0]
 *   binary search over ranges of syscall numbers (jge), whose leaves are `ret <action>` or the
 *   argument checks of one syscall (64-bit compares as two 32-bit halves, rules tried in order).
 */
import { assemble, Block, BPF, BPF_MAXINSNS } from './bpf.js';
import { type CmpOp, type Cond, overlapWitness, U64_MAX } from './cond.js';
import { SeccompError } from './errors.js';
import { AUDIT_ARCH, maxSyscallNumber, nativeArch, type SeccompArch, syscallNumber } from './tables/index.js';
import type { LinuxSeccomp, LinuxSeccompAction } from './types.js';

/** `SECCOMP_RET_*` action values (the high 16 bits; ERRNO and TRACE carry 16 bits of data). */
export const SECCOMP_RET = Object.freeze({
  KILL_PROCESS: 0x80000000,
  KILL_THREAD: 0x00000000,
  TRAP: 0x00030000,
  ERRNO: 0x00050000,
  USER_NOTIF: 0x7fc00000,
  TRACE: 0x7ff00000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
} as const);

/** `SECCOMP_FILTER_FLAG_*` bits. */
export const SECCOMP_FILTER_FLAG = Object.freeze({
  TSYNC: 1,
  LOG: 2,
  SPEC_ALLOW: 4,
  NEW_LISTENER: 8,
  TSYNC_ESRCH: 16,
  WAIT_KILLABLE_RECV: 32,
} as const);

const EPERM = 1;
const ENOSYS = 38;

export interface CompileOptions {
  /** Target architecture; default: that of the running process. */
  arch?: SeccompArch | undefined;
  /** Called for each thing that is accepted but ignored (unknown syscall names, foreign arches, ...). */
  onWarning?: ((message: string) => void) | undefined;
  /**
   * What a syscall made through another ABI gets: `seccomp_data.arch` other than the target's
   * (i386 or 32-bit ARM programs), or an x32 syscall number on x86_64. Default
   * `SCMP_ACT_KILL_PROCESS`; libseccomp's (and so runc's) default is `SCMP_ACT_KILL_THREAD`.
   */
  badArchAction?:
    | Exclude<LinuxSeccompAction, 'SCMP_ACT_NOTIFY' | 'SCMP_ACT_ERRNO' | 'SCMP_ACT_TRACE'>
    | undefined;
  /**
   * runc's -ENOSYS stub, used unless the default action is ALLOW, LOG or TRACE: syscall numbers
   * above a limit return ENOSYS instead of the default action, so that programs fall back from
   * syscalls that the profile does not know. `'profile'` (default, as runc): the limit is the
   * highest syscall number the profile names on this architecture. `'table'`: the highest number
   * in this package's table. `'off'`: no stub.
   */
  enosys?: 'profile' | 'table' | 'off' | undefined;
}

export interface CompiledSeccomp {
  /** `struct sock_filter[]`, 8 bytes per instruction, host byte order. */
  filter: Buffer;
  /** `SECCOMP_FILTER_FLAG_*` bits for `seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)`. */
  flags: number;
}

/** A rule for one syscall after normalisation. */
interface Rule {
  action: number;
  conds: Cond[];
  /** JSON path of the syscalls[] entry. */
  path: string;
  name: string;
}

const OPS: Readonly<Record<string, CmpOp>> = Object.freeze({
  SCMP_CMP_NE: 'NE',
  SCMP_CMP_LT: 'LT',
  SCMP_CMP_LE: 'LE',
  SCMP_CMP_EQ: 'EQ',
  SCMP_CMP_GE: 'GE',
  SCMP_CMP_GT: 'GT',
  SCMP_CMP_MASKED_EQ: 'MASKED_EQ',
});

const FLAGS: Readonly<Record<string, number>> = Object.freeze({
  SECCOMP_FILTER_FLAG_TSYNC: SECCOMP_FILTER_FLAG.TSYNC,
  SECCOMP_FILTER_FLAG_LOG: SECCOMP_FILTER_FLAG.LOG,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: SECCOMP_FILTER_FLAG.SPEC_ALLOW,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: SECCOMP_FILTER_FLAG.WAIT_KILLABLE_RECV,
});

const ARCHES = new Set([
  'SCMP_ARCH_X86',
  'SCMP_ARCH_X86_64',
  'SCMP_ARCH_X32',
  'SCMP_ARCH_ARM',
  'SCMP_ARCH_AARCH64',
  'SCMP_ARCH_LOONGARCH64',
  'SCMP_ARCH_M68K',
  'SCMP_ARCH_MIPS',
  'SCMP_ARCH_MIPS64',
  'SCMP_ARCH_MIPS64N32',
  'SCMP_ARCH_MIPSEL',
  'SCMP_ARCH_MIPSEL64',
  'SCMP_ARCH_MIPSEL64N32',
  'SCMP_ARCH_PPC',
  'SCMP_ARCH_PPC64',
  'SCMP_ARCH_PPC64LE',
  'SCMP_ARCH_S390',
  'SCMP_ARCH_S390X',
  'SCMP_ARCH_SH',
  'SCMP_ARCH_SHEB',
  'SCMP_ARCH_PARISC',
  'SCMP_ARCH_PARISC64',
  'SCMP_ARCH_RISCV64',
]);

/** The SCMP_ARCH_* of each target, and the other ABIs its kernel can run (which we do not filter). */
const TARGET_ARCH: Readonly<Record<SeccompArch, { self: string; others: readonly string[] }>> = Object.freeze(
  {
    x86_64: { self: 'SCMP_ARCH_X86_64', others: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] },
    aarch64: { self: 'SCMP_ARCH_AARCH64', others: ['SCMP_ARCH_ARM'] },
  },
);

const X32_SYSCALL_BIT = 0x40000000;

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (v === undefined) return 'undefined';
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

/** Human name of an action value, for warnings. */
export function actionName(action: number): string {
  const hi = (action & 0xffff0000) >>> 0;
  const data = action & 0xffff;
  switch (hi) {
    case SECCOMP_RET.KILL_PROCESS:
      return 'KILL_PROCESS';
    case SECCOMP_RET.KILL_THREAD:
      return 'KILL_THREAD';
    case SECCOMP_RET.TRAP:
      return 'TRAP';
    case SECCOMP_RET.ERRNO:
      return `ERRNO(${data})`;
    case SECCOMP_RET.TRACE:
      return `TRACE(${data})`;
    case SECCOMP_RET.LOG:
      return 'LOG';
    case SECCOMP_RET.ALLOW:
      return 'ALLOW';
    default:
      return `0x${action.toString(16)}`;
  }
}

function errnoData(v: unknown, path: string): number {
  if (v === undefined) return EPERM;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff) {
    throw new SeccompError('Invalid', path, `must be an integer from 0 to 65535, got ${describe(v)}`);
  }
  return v;
}

/** The `SECCOMP_RET_*` value of an OCI action (runc's mapping; errnoRet defaults to EPERM). */
export function actionValue(action: unknown, errnoRet: unknown, path: string, errnoPath: string): number {
  switch (action) {
    case 'SCMP_ACT_KILL':
    case 'SCMP_ACT_KILL_THREAD':
      return SECCOMP_RET.KILL_THREAD;
    case 'SCMP_ACT_KILL_PROCESS':
      return SECCOMP_RET.KILL_PROCESS;
    case 'SCMP_ACT_TRAP':
      return SECCOMP_RET.TRAP;
    case 'SCMP_ACT_ERRNO':
      return (SECCOMP_RET.ERRNO | errnoData(errnoRet, errnoPath)) >>> 0;
    case 'SCMP_ACT_TRACE':
      return (SECCOMP_RET.TRACE | errnoData(errnoRet, errnoPath)) >>> 0;
    case 'SCMP_ACT_LOG':
      return SECCOMP_RET.LOG;
    case 'SCMP_ACT_ALLOW':
      return SECCOMP_RET.ALLOW;
    case 'SCMP_ACT_NOTIFY':
      throw new SeccompError(
        'Unsupported',
        path,
        'SCMP_ACT_NOTIFY is not supported (no seccomp user-notification agent support)',
      );
    default:
      throw new SeccompError('Invalid', path, `unknown action ${describe(action)}`);
  }
}

function u64(v: unknown, path: string, warn: (m: string) => void): bigint {
  if (typeof v === 'bigint') {
    if (v < 0n || v > U64_MAX)
      throw new SeccompError('Invalid', path, `must be an unsigned 64-bit integer, got ${v}`);
    return v;
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
    throw new SeccompError('Invalid', path, `must be an unsigned 64-bit integer, got ${describe(v)}`);
  }
  if (v > 2 ** 64) throw new SeccompError('Invalid', path, `must be an unsigned 64-bit integer, got ${v}`);
  if (!Number.isSafeInteger(v)) {
    const big = v === 2 ** 64 ? U64_MAX : BigInt(v);
    warn(`${path}: ${v} is above 2^53 and may have lost precision in JSON parsing; using ${big}`);
    return big;
  }
  return BigInt(v);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function list(v: unknown, path: string): readonly unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new SeccompError('Invalid', path, `must be an array, got ${describe(v)}`);
  return v;
}

/**
 * Compile `section` (the OCI `linux.seccomp` object) into a seccomp BPF program for `opts.arch`.
 * Throws {@link SeccompError} for invalid or unsupported input; things runc ignores (unknown
 * syscall names, ...) are reported through `opts.onWarning` and skipped.
 */
export function compileSeccomp(section: LinuxSeccomp, opts: CompileOptions = {}): CompiledSeccomp {
  const root = 'linux.seccomp';
  const warn = opts.onWarning ?? (() => {});
  const arch = opts.arch ?? nativeArch();
  if (arch !== 'x86_64' && arch !== 'aarch64') {
    throw new SeccompError(
      'Unsupported',
      root,
      `no seccomp support for architecture ${describe(arch ?? process.arch)}`,
    );
  }
  if (!isObject(section))
    throw new SeccompError('Invalid', root, `must be an object, got ${describe(section)}`);

  const defaultAction = section.defaultAction;
  if (defaultAction === undefined) throw new SeccompError('Invalid', `${root}.defaultAction`, 'required');
  const def = actionValue(
    defaultAction,
    section.defaultErrnoRet,
    `${root}.defaultAction`,
    `${root}.defaultErrnoRet`,
  );

  const badArch = actionValue(
    opts.badArchAction ?? 'SCMP_ACT_KILL_PROCESS',
    undefined,
    'badArchAction',
    'badArchAction',
  );

  // architectures: the target is always filtered (libseccomp adds the native arch itself).
  const target = TARGET_ARCH[arch];
  list(section.architectures, `${root}.architectures`).forEach((a, i) => {
    const p = `${root}.architectures[${i}]`;
    if (typeof a !== 'string' || !ARCHES.has(a))
      throw new SeccompError('Invalid', p, `unknown architecture ${describe(a)}`);
    if (target.others.includes(a)) {
      warn(`${p}: ${a} is not supported; its system calls get the bad-architecture action`);
    }
  });

  // flags: runc sets SPEC_ALLOW when the field is absent (not when it is an empty list).
  let flags = 0;
  if (section.flags === undefined) flags = SECCOMP_FILTER_FLAG.SPEC_ALLOW;
  list(section.flags, `${root}.flags`).forEach((f, i) => {
    const p = `${root}.flags[${i}]`;
    const bit = typeof f === 'string' && Object.hasOwn(FLAGS, f) ? FLAGS[f] : undefined;
    if (bit === undefined) throw new SeccompError('Invalid', p, `unknown flag ${describe(f)}`);
    if (bit === SECCOMP_FILTER_FLAG.WAIT_KILLABLE_RECV) {
      warn(`${p}: ${f} ignored: it only applies to SCMP_ACT_NOTIFY listeners, which are not supported`);
      return;
    }
    flags |= bit;
  });

  // syscalls: validate everything, then expand to per-syscall rules like runc does.
  const rules = new Map<number, Rule[]>();
  let maxNamed: number | undefined;
  const unknown = new Set<string>();
  list(section.syscalls, `${root}.syscalls`).forEach((s, i) => {
    const p = `${root}.syscalls[${i}]`;
    if (!isObject(s)) throw new SeccompError('Invalid', p, `must be an object, got ${describe(s)}`);
    const names = list(s.names, `${p}.names`);
    const action = actionValue(s.action, s.errnoRet, `${p}.action`, `${p}.errnoRet`);
    const conds: Cond[] = list(s.args, `${p}.args`).map((a, j) => parseArg(a, `${p}.args[${j}]`, warn));
    // libseccomp takes one condition per argument; runc turns a rule that has several conditions
    // on the same argument into one rule per condition (so they are ORed, not ANDed).
    const indexes = conds.map((c) => c.index);
    const alternatives = new Set(indexes).size === indexes.length ? [conds] : conds.map((c) => [c]);
    names.forEach((n, j) => {
      const np = `${p}.names[${j}]`;
      if (typeof n !== 'string' || n === '') {
        throw new SeccompError('Invalid', np, `must be a syscall name, got ${describe(n)}`);
      }
      const nr = syscallNumber(n, arch);
      if (nr !== undefined && (maxNamed === undefined || nr > maxNamed)) maxNamed = nr;
      if (action === def) return; // runc skips rules whose action is the default action
      if (nr === undefined) {
        if (!unknown.has(n)) warn(`${np}: unknown syscall ${describe(n)} on ${arch}, ignored`);
        unknown.add(n);
        return;
      }
      let bucket = rules.get(nr);
      if (bucket === undefined) {
        bucket = [];
        rules.set(nr, bucket);
      }
      for (const alt of alternatives) {
        // MASKED_EQ with a zero mask is always true; libseccomp drops it.
        bucket.push({
          action,
          conds: alt.filter((c) => !(c.op === 'MASKED_EQ' && c.mask === 0n)),
          path: p,
          name: n,
        });
      }
    });
  });

  const decisions = new Map<number, Decision>();
  for (const [nr, rs] of rules) decisions.set(nr, decide(rs, warn));

  let stubLimit: number | undefined;
  const permissive =
    def === SECCOMP_RET.ALLOW || def === SECCOMP_RET.LOG || (def & 0xffff0000) >>> 0 === SECCOMP_RET.TRACE;
  const mode = opts.enosys ?? 'profile';
  if (!permissive && mode !== 'off') {
    // runc: no stub when the largest named syscall is number 0.
    stubLimit = mode === 'table' ? maxSyscallNumber(arch) : maxNamed === 0 ? undefined : maxNamed;
  }

  const program = generate(arch, def, badArch, decisions, stubLimit);
  const filter = assemble(program);
  const length = filter.length / 8;
  if (length > BPF_MAXINSNS) {
    throw new SeccompError(
      'TooLarge',
      `${root}.syscalls`,
      `the filter needs ${length} BPF instructions, more than the kernel's limit of ${BPF_MAXINSNS}`,
    );
  }
  return { filter, flags };
}

function parseArg(a: unknown, p: string, warn: (m: string) => void): Cond {
  if (!isObject(a)) throw new SeccompError('Invalid', p, `must be an object, got ${describe(a)}`);
  const index = a.index;
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > 5) {
    throw new SeccompError(
      'Invalid',
      `${p}.index`,
      `must be an argument index from 0 to 5, got ${describe(index)}`,
    );
  }
  const op = typeof a.op === 'string' && Object.hasOwn(OPS, a.op) ? OPS[a.op] : undefined;
  if (op === undefined) throw new SeccompError('Invalid', `${p}.op`, `unknown operator ${describe(a.op)}`);
  const value = u64(a.value, `${p}.value`, warn);
  if (op === 'MASKED_EQ') {
    const two = a.valueTwo === undefined ? 0n : u64(a.valueTwo, `${p}.valueTwo`, warn);
    return { index, op, mask: value, value: two & value };
  }
  if (a.valueTwo !== undefined) u64(a.valueTwo, `${p}.valueTwo`, warn);
  return { index, op, value, mask: U64_MAX };
}

/** What happens to one syscall number. */
type Decision = { kind: 'action'; action: number } | { kind: 'rules'; rules: Rule[] };

/**
 * The conflict rule (README.md, "Several rules for one syscall"): the first unconditional rule
 * wins over everything; otherwise the conditional rules are tried in profile order and the first
 * that matches decides. Warns about conditional rules with different actions that can match the
 * same call (before the first unconditional rule: libseccomp ignores rules after that one), as
 * libseccomp orders those its own way, may lose parts of them, or rejects the profile.
 */
function decide(rs: Rule[], warn: (m: string) => void): Decision {
  const first = rs.findIndex((r) => r.conds.length === 0);
  const uncond = rs[first];
  const conditional = first < 0 ? rs : rs.slice(0, first);
  for (let j = 1; j < conditional.length; j++) {
    const b = conditional[j]!;
    for (let i = 0; i < j; i++) {
      const a = conditional[i]!;
      if (a.action === b.action) continue;
      if (overlapWitness(a.conds, b.conds) === undefined) continue;
      const here =
        uncond === undefined
          ? 'the earlier rule wins here, libseccomp may decide otherwise or reject the profile'
          : `the unconditional rule ${uncond.path} decides here, but libseccomp may reject the profile`;
      warn(
        `${b.path}: the arguments of ${b.name} can match both this rule (${actionName(b.action)}) and ` +
          `${a.path} (${actionName(a.action)}); ${here}`,
      );
      break;
    }
  }
  return uncond !== undefined ? { kind: 'action', action: uncond.action } : { kind: 'rules', rules: rs };
}

const argLo = (i: number) => 16 + 8 * i;
const argHi = (i: number) => 20 + 8 * i;
const lo32 = (v: bigint) => Number(v & 0xffffffffn);
const hi32 = (v: bigint) => Number(v >> 32n);

/** Blocks that go to `pass` if `c` holds, else to `fail` (hi word first, as libseccomp). */
function condBlocks(c: Cond, pass: Block, fail: Block): Block {
  const i = c.index;
  const vh = hi32(c.value);
  const vl = lo32(c.value);
  const all = 0xffffffff;
  switch (c.op) {
    case 'EQ': {
      const low = Block.jump(argLo(i), all, BPF.JMP_JEQ_K, vl, pass, fail, 't');
      return Block.jump(argHi(i), all, BPF.JMP_JEQ_K, vh, low, fail, 't');
    }
    case 'NE': {
      const low = Block.jump(argLo(i), all, BPF.JMP_JEQ_K, vl, fail, pass);
      return Block.jump(argHi(i), all, BPF.JMP_JEQ_K, vh, low, pass, 't');
    }
    case 'GT':
    case 'GE': {
      const low = Block.jump(
        argLo(i),
        all,
        c.op === 'GT' ? BPF.JMP_JGT_K : BPF.JMP_JGE_K,
        vl,
        pass,
        fail,
        't',
      );
      const eq = Block.jump(undefined, all, BPF.JMP_JEQ_K, vh, low, fail, 't');
      return Block.jump(argHi(i), all, BPF.JMP_JGT_K, vh, pass, eq, 'f');
    }
    case 'LT':
    case 'LE': {
      // LT: !(lo >= v); LE: !(lo > v)
      const low = Block.jump(argLo(i), all, c.op === 'LT' ? BPF.JMP_JGE_K : BPF.JMP_JGT_K, vl, fail, pass);
      const eq = Block.jump(undefined, all, BPF.JMP_JEQ_K, vh, low, pass, 't');
      return Block.jump(argHi(i), all, BPF.JMP_JGT_K, vh, fail, eq, 'f');
    }
    case 'MASKED_EQ': {
      const mh = hi32(c.mask);
      const ml = lo32(c.mask);
      let next = pass;
      if (ml !== 0) next = Block.jump(argLo(i), ml, BPF.JMP_JEQ_K, vl, next, fail, 't');
      if (mh !== 0) next = Block.jump(argHi(i), mh, BPF.JMP_JEQ_K, vh, next, fail, 't');
      return next;
    }
  }
}

/** Argument checks of one syscall: rules in order, the first whose conditions all hold decides. */
function rulesBlocks(rs: readonly Rule[], def: number): Block {
  const rets = new Map<number, Block>();
  const ret = (k: number) => {
    let b = rets.get(k);
    if (b === undefined) {
      b = Block.ret(k);
      rets.set(k, b);
    }
    return b;
  };
  let fail = ret(def);
  for (let i = rs.length - 1; i >= 0; i--) {
    const r = rs[i]!;
    let entry = ret(r.action);
    for (let c = r.conds.length - 1; c >= 0; c--) entry = condBlocks(r.conds[c]!, entry, fail);
    fail = entry;
  }
  return fail;
}

type Target = { kind: 'ret'; k: number } | { kind: 'rules'; rules: Rule[] };
interface Segment {
  lo: number;
  hi: number;
  target: Target;
}

function segments(
  arch: SeccompArch,
  def: number,
  badArch: number,
  decisions: Map<number, Decision>,
  stubLimit: number | undefined,
): Segment[] {
  const enosys = (SECCOMP_RET.ERRNO | ENOSYS) >>> 0;
  const out: Segment[] = [];
  const push = (lo: number, hi: number, target: Target) => {
    if (lo > hi) return;
    const last = out[out.length - 1];
    if (
      last &&
      last.hi + 1 === lo &&
      last.target.kind === 'ret' &&
      target.kind === 'ret' &&
      last.target.k === target.k
    ) {
      last.hi = hi;
    } else out.push({ lo, hi, target });
  };
  /** Syscall numbers lo..hi go through the rules (default action when a number has none). */
  const byRules = (lo: number, hi: number) => {
    const nrs = [...decisions.keys()].filter((n) => n >= lo && n <= hi).sort((a, b) => a - b);
    let at = lo;
    for (const n of nrs) {
      push(at, n - 1, { kind: 'ret', k: def });
      const d = decisions.get(n)!;
      push(n, n, d.kind === 'action' ? { kind: 'ret', k: d.action } : { kind: 'rules', rules: d.rules });
      at = n + 1;
    }
    push(at, hi, { kind: 'ret', k: def });
  };
  const ENOSYS_T: Target = { kind: 'ret', k: enosys };
  const BAD: Target = { kind: 'ret', k: badArch };
  if (arch === 'x86_64') {
    // runc's stub only looks at numbers without the x32 bit; libseccomp then sends numbers with
    // the x32 bit to the bad-arch action, except -1 (0xffffffff) which tracers use to skip a call.
    const x32 = X32_SYSCALL_BIT;
    if (stubLimit !== undefined && stubLimit < x32 - 1) {
      byRules(0, stubLimit);
      push(stubLimit + 1, x32 - 1, ENOSYS_T);
    } else byRules(0, x32 - 1);
    push(x32, 0x7fffffff, BAD);
    push(0x80000000, 0xbfffffff, stubLimit !== undefined ? ENOSYS_T : BAD);
    push(0xc0000000, 0xfffffffe, BAD);
    byRules(0xffffffff, 0xffffffff);
  } else if (stubLimit !== undefined) {
    byRules(0, stubLimit);
    push(stubLimit + 1, 0xffffffff, ENOSYS_T);
  } else byRules(0, 0xffffffff);
  return out;
}

function searchTree(segs: readonly Segment[], def: number): Block {
  if (segs.length === 1) {
    const t = segs[0]!.target;
    return t.kind === 'ret' ? Block.ret(t.k) : rulesBlocks(t.rules, def);
  }
  const mid = segs.length >> 1;
  const right = searchTree(segs.slice(mid), def);
  const left = searchTree(segs.slice(0, mid), def);
  return Block.jump(undefined, 0xffffffff, BPF.JMP_JGE_K, segs[mid]!.lo, right, left, 'f');
}

function generate(
  arch: SeccompArch,
  def: number,
  badArch: number,
  decisions: Map<number, Decision>,
  stubLimit: number | undefined,
): Block {
  const segs = segments(arch, def, badArch, decisions, stubLimit);
  const dispatch = Block.seq([{ code: BPF.LD_W_ABS, k: 0 }], searchTree(segs, def));
  return Block.jump(4, 0xffffffff, BPF.JMP_JEQ_K, AUDIT_ARCH[arch], dispatch, Block.ret(badArch), 'f');
}
