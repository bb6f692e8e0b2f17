import { describe, expect, it } from 'vitest';
import {
  AUDIT_ARCH,
  type CompileOptions,
  compileSeccomp,
  defaultProfile,
  type LinuxSeccomp,
  type SeccompArch,
  SeccompError,
  SYSCALL_TABLES,
  syscallName,
  syscallNumber,
} from '../src/index.js';
import { decode, run, validate } from './bpf-interp.js';
import { type Data, interesting64, modelEval, RET, Rng, runcModel } from './helpers.js';

const ALLOW = RET.ALLOW;
const EPERM_RET = (RET.ERRNO | 1) >>> 0;
const ENOSYS_RET = (RET.ERRNO | 38) >>> 0;
const X86 = AUDIT_ARCH.x86_64;

function compile(s: LinuxSeccomp, opts: CompileOptions = {}) {
  const warnings: string[] = [];
  const out = compileSeccomp(s, { arch: 'x86_64', onWarning: (w) => warnings.push(w), ...opts });
  const insns = decode(out.filter);
  validate(insns);
  return {
    ...out,
    warnings,
    length: insns.length,
    run: (nr: number, args: bigint[] = [], arch: number = X86) => run(insns, { nr, arch, args }),
  };
}

const nr = (name: string) => syscallNumber(name, 'x86_64')!;

function error(f: () => unknown): SeccompError {
  try {
    f();
  } catch (e) {
    if (e instanceof SeccompError) return e;
    throw e;
  }
  throw new Error('did not throw');
}

describe('validation', () => {
  const base: LinuxSeccomp = { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [] };
  const withRule = (rule: object) => ({
    ...base,
    syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW' }, rule],
  });
  const cases: Array<[string, unknown, SeccompError['code'], string, string]> = [
    [
      'unknown operator',
      withRule({
        names: ['write'],
        action: 'SCMP_ACT_ALLOW',
        args: [{ index: 0, value: 1, op: 'SCMP_CMP_FOO' }],
      }),
      'Invalid',
      'linux.seccomp.syscalls[1].args[0].op',
      'linux.seccomp.syscalls[1].args[0].op: unknown operator "SCMP_CMP_FOO"',
    ],
    [
      'argument index 6',
      withRule({
        names: ['write'],
        action: 'SCMP_ACT_ALLOW',
        args: [{ index: 6, value: 1, op: 'SCMP_CMP_EQ' }],
      }),
      'Invalid',
      'linux.seccomp.syscalls[1].args[0].index',
      'must be an argument index from 0 to 5, got 6',
    ],
    [
      'negative value',
      withRule({
        names: ['write'],
        action: 'SCMP_ACT_ALLOW',
        args: [{ index: 0, value: -1, op: 'SCMP_CMP_EQ' }],
      }),
      'Invalid',
      'linux.seccomp.syscalls[1].args[0].value',
      'must be an unsigned 64-bit integer, got -1',
    ],
    [
      'value above 2^64-1',
      withRule({
        names: ['write'],
        action: 'SCMP_ACT_ALLOW',
        args: [{ index: 0, value: 1n << 64n, op: 'SCMP_CMP_EQ' }],
      }),
      'Invalid',
      'linux.seccomp.syscalls[1].args[0].value',
      'must be an unsigned 64-bit integer',
    ],
    [
      'unknown action',
      withRule({ names: ['write'], action: 'SCMP_ACT_NOPE' }),
      'Invalid',
      'linux.seccomp.syscalls[1].action',
      'unknown action "SCMP_ACT_NOPE"',
    ],
    [
      'errnoRet out of range',
      withRule({ names: ['write'], action: 'SCMP_ACT_ERRNO', errnoRet: 70000 }),
      'Invalid',
      'linux.seccomp.syscalls[1].errnoRet',
      'must be an integer from 0 to 65535, got 70000',
    ],
    [
      'empty name',
      withRule({ names: [''], action: 'SCMP_ACT_ALLOW' }),
      'Invalid',
      'linux.seccomp.syscalls[1].names[0]',
      'must be a syscall name',
    ],
    [
      'names not a list',
      withRule({ names: 'write', action: 'SCMP_ACT_ALLOW' }),
      'Invalid',
      'linux.seccomp.syscalls[1].names',
      'must be an array',
    ],
    [
      'SCMP_ACT_NOTIFY rule',
      withRule({ names: ['write'], action: 'SCMP_ACT_NOTIFY' }),
      'Unsupported',
      'linux.seccomp.syscalls[1].action',
      'SCMP_ACT_NOTIFY is not supported',
    ],
    [
      'SCMP_ACT_NOTIFY default',
      { defaultAction: 'SCMP_ACT_NOTIFY' },
      'Unsupported',
      'linux.seccomp.defaultAction',
      'SCMP_ACT_NOTIFY',
    ],
    ['missing default action', { syscalls: [] }, 'Invalid', 'linux.seccomp.defaultAction', 'required'],
    [
      'unknown architecture',
      { ...base, architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_Z80'] },
      'Invalid',
      'linux.seccomp.architectures[1]',
      'unknown architecture "SCMP_ARCH_Z80"',
    ],
    [
      'unknown flag',
      { ...base, flags: ['SECCOMP_FILTER_FLAG_NOPE'] },
      'Invalid',
      'linux.seccomp.flags[0]',
      'unknown flag',
    ],
    [
      'defaultErrnoRet not an integer',
      { ...base, defaultErrnoRet: 1.5 },
      'Invalid',
      'linux.seccomp.defaultErrnoRet',
      'must be an integer from 0 to 65535, got 1.5',
    ],
  ];
  for (const [what, section, code, path, message] of cases) {
    it(what, () => {
      const e = error(() => compileSeccomp(section as LinuxSeccomp, { arch: 'x86_64' }));
      expect(e.code).toBe(code);
      expect(e.path).toBe(path);
      expect(e.message.startsWith(`${path}: `)).toBe(true);
      expect(e.message).toContain(message.replace(`${path}: `, ''));
    });
  }

  it('rejects an unsupported target architecture', () => {
    const e = error(() => compileSeccomp(base, { arch: 'riscv64' as SeccompArch }));
    expect(e.code).toBe('Unsupported');
  });
});

describe('warnings', () => {
  it('skips unknown syscall names once, like runc', () => {
    const c = compile({
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [
        { names: ['read', 'no_such_call', 'chown32'], action: 'SCMP_ACT_ALLOW' },
        { names: ['no_such_call'], action: 'SCMP_ACT_ALLOW' },
      ],
    });
    expect(c.warnings).toEqual([
      'linux.seccomp.syscalls[0].names[1]: unknown syscall "no_such_call" on x86_64, ignored',
      'linux.seccomp.syscalls[0].names[2]: unknown syscall "chown32" on x86_64, ignored',
    ]);
    expect(c.run(nr('read'))).toBe(ALLOW);
  });

  it('names the other ABIs of the target that are not filtered', () => {
    const c = compile({
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32', 'SCMP_ARCH_AARCH64'],
    });
    expect(c.warnings).toEqual([
      'linux.seccomp.architectures[1]: SCMP_ARCH_X86 is not supported; its system calls get the bad-architecture action',
      'linux.seccomp.architectures[2]: SCMP_ARCH_X32 is not supported; its system calls get the bad-architecture action',
    ]);
    expect(c.run(nr('read'), [], AUDIT_ARCH.i386)).toBe(RET.KILL_PROCESS);
  });

  it('drops WAIT_KILLABLE_RECV (it needs a notify listener)', () => {
    const c = compile({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'] });
    expect(c.flags).toBe(0);
    expect(c.warnings[0]).toMatch(/WAIT_KILLABLE_RECV ignored/);
  });

  it('warns about values that lost precision in JSON', () => {
    const c = compile({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [
        {
          names: ['write'],
          action: 'SCMP_ACT_ERRNO',
          args: [{ index: 0, value: 2 ** 64, op: 'SCMP_CMP_EQ' }],
        },
      ],
    });
    expect(c.warnings[0]).toMatch(/above 2\^53 .* using 18446744073709551615/);
    expect(c.run(nr('write'), [(1n << 64n) - 1n])).toBe(EPERM_RET);
  });

  it('warns about rules with different actions that can match the same call', () => {
    const c = compile({
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [
        { names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 10, op: 'SCMP_CMP_LT' }] },
        { names: ['socket'], action: 'SCMP_ACT_KILL', args: [{ index: 1, value: 3, op: 'SCMP_CMP_EQ' }] },
        // disjoint from the first: no warning for this one
        {
          names: ['socket'],
          action: 'SCMP_ACT_LOG',
          args: [
            { index: 0, value: 10, op: 'SCMP_CMP_GE' },
            { index: 1, value: 3, op: 'SCMP_CMP_NE' },
          ],
        },
      ],
    });
    expect(c.warnings).toEqual([
      'linux.seccomp.syscalls[1]: the arguments of socket can match both this rule (KILL_THREAD) and ' +
        'linux.seccomp.syscalls[0] (ALLOW); the earlier rule wins here, libseccomp may decide otherwise or reject the profile',
    ]);
    expect(c.run(nr('socket'), [2n, 3n])).toBe(ALLOW); // first listed wins
    expect(c.run(nr('socket'), [20n, 3n])).toBe(RET.KILL_THREAD);
    expect(c.run(nr('socket'), [20n, 1n])).toBe(RET.LOG);
  });
});

describe('flags', () => {
  it('SPEC_ALLOW when absent (as runc), nothing for an empty list, the bits otherwise', () => {
    expect(compile({ defaultAction: 'SCMP_ACT_ALLOW' }).flags).toBe(4);
    expect(compile({ defaultAction: 'SCMP_ACT_ALLOW', flags: [] }).flags).toBe(0);
    expect(
      compile({
        defaultAction: 'SCMP_ACT_ALLOW',
        flags: ['SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_LOG'],
      }).flags,
    ).toBe(3);
  });
});

describe('semantics', () => {
  it('maps every action', () => {
    const c = compile(
      {
        defaultAction: 'SCMP_ACT_ERRNO',
        defaultErrnoRet: 13,
        syscalls: [
          { names: ['read'], action: 'SCMP_ACT_ALLOW' },
          { names: ['write'], action: 'SCMP_ACT_ERRNO' },
          { names: ['open'], action: 'SCMP_ACT_ERRNO', errnoRet: 0 },
          { names: ['close'], action: 'SCMP_ACT_KILL' },
          { names: ['stat'], action: 'SCMP_ACT_KILL_THREAD' },
          { names: ['fstat'], action: 'SCMP_ACT_KILL_PROCESS' },
          { names: ['lstat'], action: 'SCMP_ACT_TRAP' },
          { names: ['poll'], action: 'SCMP_ACT_TRACE' },
          { names: ['lseek'], action: 'SCMP_ACT_TRACE', errnoRet: 77 },
          { names: ['mmap'], action: 'SCMP_ACT_LOG' },
        ],
      },
      { enosys: 'off' },
    );
    expect(c.run(nr('read'))).toBe(0x7fff0000);
    expect(c.run(nr('write'))).toBe(0x00050001);
    expect(c.run(nr('open'))).toBe(0x00050000);
    expect(c.run(nr('close'))).toBe(0);
    expect(c.run(nr('stat'))).toBe(0);
    expect(c.run(nr('fstat'))).toBe(0x80000000);
    expect(c.run(nr('lstat'))).toBe(0x00030000);
    expect(c.run(nr('poll'))).toBe(0x7ff00001);
    expect(c.run(nr('lseek'))).toBe(0x7ff0004d);
    expect(c.run(nr('mmap'))).toBe(0x7ffc0000);
    expect(c.run(nr('munmap'))).toBe(0x0005000d);
  });

  it('compares 64-bit arguments by halves, for every operator', () => {
    const v = 0x1_0000_0005n;
    const ops = [
      'SCMP_CMP_NE',
      'SCMP_CMP_LT',
      'SCMP_CMP_LE',
      'SCMP_CMP_EQ',
      'SCMP_CMP_GE',
      'SCMP_CMP_GT',
    ] as const;
    const truth = {
      SCMP_CMP_NE: (a: bigint) => a !== v,
      SCMP_CMP_LT: (a: bigint) => a < v,
      SCMP_CMP_LE: (a: bigint) => a <= v,
      SCMP_CMP_EQ: (a: bigint) => a === v,
      SCMP_CMP_GE: (a: bigint) => a >= v,
      SCMP_CMP_GT: (a: bigint) => a > v,
    };
    const probes = [
      0n,
      4n,
      5n,
      6n,
      0xffffffffn,
      0x1_0000_0004n,
      v,
      0x1_0000_0006n,
      0x2_0000_0000n,
      0x2_0000_0005n,
      (1n << 64n) - 1n,
    ];
    for (const op of ops) {
      for (const index of [0, 3, 5]) {
        const c = compile({
          defaultAction: 'SCMP_ACT_ERRNO',
          syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index, value: v, op }] }],
        });
        for (const a of probes) {
          const args = [0n, 0n, 0n, 0n, 0n, 0n];
          args[index] = a;
          expect(c.run(nr('read'), args), `${op} a${index}=${a}`).toBe(truth[op](a) ? ALLOW : EPERM_RET);
        }
      }
    }
  });

  it('MASKED_EQ masks the expected value too, and a zero mask matches everything', () => {
    const c = compile({
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [
        // (a0 & 0xff00000000ff) == (0x1234000000ab & 0xff00000000ff) == 0x1200000000ab
        {
          names: ['read'],
          action: 'SCMP_ACT_ALLOW',
          args: [{ index: 0, value: 0xff00000000ff, valueTwo: 0x1234000000ab, op: 'SCMP_CMP_MASKED_EQ' }],
        },
        {
          names: ['write'],
          action: 'SCMP_ACT_ALLOW',
          args: [{ index: 1, value: 0, valueTwo: 7, op: 'SCMP_CMP_MASKED_EQ' }],
        },
      ],
    });
    expect(c.run(nr('read'), [0x1200000000abn])).toBe(ALLOW);
    expect(c.run(nr('read'), [0x12ffff0000abn])).toBe(ALLOW);
    expect(c.run(nr('read'), [0x1234000000acn])).toBe(EPERM_RET);
    expect(c.run(nr('read'), [0x1334000000abn])).toBe(EPERM_RET);
    expect(c.run(nr('write'), [0n, 12345n])).toBe(ALLOW);
  });

  it('ANDs the conditions of a rule, ORs the rules (same argument twice: one rule per condition, as runc)', () => {
    const c = compile({
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [
        {
          names: ['read'],
          action: 'SCMP_ACT_ALLOW',
          args: [
            { index: 0, value: 1, op: 'SCMP_CMP_EQ' },
            { index: 1, value: 2, op: 'SCMP_CMP_EQ' },
          ],
        },
        { names: ['read'], action: 'SCMP_ACT_ALLOW', args: [{ index: 2, value: 3, op: 'SCMP_CMP_EQ' }] },
        {
          names: ['write'],
          action: 'SCMP_ACT_ALLOW',
          args: [
            { index: 0, value: 1, op: 'SCMP_CMP_EQ' },
            { index: 0, value: 2, op: 'SCMP_CMP_EQ' },
          ],
        },
      ],
    });
    expect(c.run(nr('read'), [1n, 2n, 0n])).toBe(ALLOW);
    expect(c.run(nr('read'), [1n, 0n, 0n])).toBe(EPERM_RET);
    expect(c.run(nr('read'), [0n, 0n, 3n])).toBe(ALLOW);
    expect(c.run(nr('write'), [1n])).toBe(ALLOW);
    expect(c.run(nr('write'), [2n])).toBe(ALLOW);
    expect(c.run(nr('write'), [3n])).toBe(EPERM_RET);
  });

  it('first unconditional rule wins; it overrides conditional rules; rules with the default action are skipped', () => {
    const c = compile({
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [
        { names: ['read'], action: 'SCMP_ACT_KILL', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }] },
        { names: ['read', 'write'], action: 'SCMP_ACT_LOG' },
        { names: ['write', 'close'], action: 'SCMP_ACT_ALLOW' },
        { names: ['close'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }] },
        { names: ['close'], action: 'SCMP_ACT_TRAP', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }] },
      ],
    });
    expect(c.run(nr('read'), [1n])).toBe(RET.LOG);
    expect(c.run(nr('write'))).toBe(RET.LOG);
    expect(c.run(nr('close'), [1n])).toBe(ALLOW);
    expect(c.warnings).toEqual([]);
  });

  it('checks seccomp_data.arch, and on x86_64 the x32 bit (except -1)', () => {
    const c = compile({
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: ['read'], action: 'SCMP_ACT_ERRNO' }],
    });
    expect(c.run(0)).toBe(EPERM_RET);
    expect(c.run(1)).toBe(ALLOW);
    expect(c.run(0, [], AUDIT_ARCH.i386)).toBe(RET.KILL_PROCESS);
    expect(c.run(0, [], AUDIT_ARCH.aarch64)).toBe(RET.KILL_PROCESS);
    expect(c.run(0x40000000)).toBe(RET.KILL_PROCESS);
    expect(c.run(0x7fffffff)).toBe(RET.KILL_PROCESS);
    expect(c.run(0xffffffff)).toBe(ALLOW);
    const t = compile({ defaultAction: 'SCMP_ACT_ALLOW' }, { badArchAction: 'SCMP_ACT_KILL_THREAD' });
    expect(t.run(0x40000000)).toBe(RET.KILL_THREAD);
    const a = compile({ defaultAction: 'SCMP_ACT_ALLOW' }, { arch: 'aarch64' });
    expect(a.run(0, [], AUDIT_ARCH.aarch64)).toBe(ALLOW);
    expect(a.run(0x40000000, [], AUDIT_ARCH.aarch64)).toBe(ALLOW);
    expect(a.run(0, [], X86)).toBe(RET.KILL_PROCESS);
  });

  it("applies runc's -ENOSYS stub above the highest named syscall", () => {
    const s: LinuxSeccomp = {
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [
        { names: ['read', 'chown32'], action: 'SCMP_ACT_ALLOW' },
        { names: ['getpid'], action: 'SCMP_ACT_ERRNO' }, // the default action: no rule, but named
      ],
    };
    const c = compile(s);
    const limit = nr('getpid');
    expect(c.run(limit)).toBe(EPERM_RET);
    expect(c.run(limit + 1)).toBe(ENOSYS_RET);
    expect(c.run(0x3fffffff)).toBe(ENOSYS_RET);
    expect(c.run(0x40000000 + limit + 1)).toBe(RET.KILL_PROCESS); // x32 bit: no stub, bad arch
    expect(c.run(0x80000000)).toBe(ENOSYS_RET); // runc's stub only tests the x32 bit
    expect(c.run(0xc0000000)).toBe(RET.KILL_PROCESS);
    expect(c.run(0xffffffff)).toBe(EPERM_RET);
    const table = compile(s, { enosys: 'table' });
    expect(table.run(limit + 1)).toBe(EPERM_RET);
    expect(table.run(469)).toBe(EPERM_RET);
    expect(table.run(470)).toBe(ENOSYS_RET);
    const off = compile(s, { enosys: 'off' });
    expect(off.run(1000)).toBe(EPERM_RET);
    for (const d of ['SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_TRACE'] as const) {
      expect(compile({ ...s, defaultAction: d }).run(1000)).not.toBe(ENOSYS_RET);
    }
    expect(compile({ ...s, defaultAction: 'SCMP_ACT_KILL_PROCESS' }).run(1000)).toBe(ENOSYS_RET);
    const a = compile(s, { arch: 'aarch64' });
    const aLimit = syscallNumber('getpid', 'aarch64')!;
    expect(a.run(aLimit + 1, [], AUDIT_ARCH.aarch64)).toBe(ENOSYS_RET);
    expect(a.run(0xffffffff, [], AUDIT_ARCH.aarch64)).toBe(ENOSYS_RET);
  });
});

describe('program size', () => {
  it('uses ja trampolines for long jumps and stays correct', () => {
    // Every syscall with three argument rules: far more than 255 instructions between the
    // search tree and its leaves.
    const rng = new Rng(7);
    const names = Object.keys(SYSCALL_TABLES.x86_64);
    const s: LinuxSeccomp = {
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: names.map((n, i) => ({
        names: [n],
        action: i % 3 === 0 ? 'SCMP_ACT_ALLOW' : 'SCMP_ACT_LOG',
        args: [{ index: i % 6, value: BigInt(i), op: i % 2 === 0 ? 'SCMP_CMP_EQ' : 'SCMP_CMP_GT' }],
      })),
    };
    const c = compile(s);
    expect(c.length).toBeGreaterThan(1000);
    expect(c.length).toBeLessThanOrEqual(4096);
    const m = runcModel(s, 'x86_64');
    const insns = decode(c.filter);
    expect(insns.some((i) => i.code === 0x05)).toBe(true); // ja
    for (let k = 0; k < 10_000; k++) {
      const d: Data = {
        nr: rng.int(480),
        arch: X86,
        args: Array.from({ length: 6 }, () => BigInt(rng.int(500))),
      };
      expect(run(insns, d)).toBe(modelEval(m, d, RET.KILL_PROCESS).action);
    }
  });

  it('refuses programs over 4096 instructions', () => {
    const s: LinuxSeccomp = {
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: Array.from({ length: 1100 }, (_, i) => ({
        names: ['ioctl'],
        action: 'SCMP_ACT_ALLOW' as const,
        args: [{ index: 1, value: 0x5400 + i, op: 'SCMP_CMP_EQ' as const }],
      })),
    };
    const e = error(() => compileSeccomp(s, { arch: 'x86_64' }));
    expect(e.code).toBe('TooLarge');
    expect(e.message).toMatch(/^linux\.seccomp\.syscalls: the filter needs \d+ BPF instructions/);
  });
});

describe('defaultProfile', () => {
  for (const arch of ['x86_64', 'aarch64'] as const) {
    it(`${arch}: compiles without warnings into a small program`, () => {
      const warnings: string[] = [];
      const { filter, flags } = compileSeccomp(defaultProfile(arch), {
        arch,
        onWarning: (w) => warnings.push(w),
      });
      expect(warnings).toEqual([]);
      expect(filter.length / 8).toBeLessThan(400);
      expect(flags).toBe(4);
    });

    it(`${arch}: denies privileged syscalls, allows ordinary ones`, () => {
      const insns = decode(compileSeccomp(defaultProfile(arch), { arch }).filter);
      const act = (name: string, args: bigint[] = []) => {
        const n = syscallNumber(name, arch);
        if (n === undefined) throw new Error(`${name} on ${arch}`);
        return run(insns, { nr: n, arch: AUDIT_ARCH[arch], args });
      };
      for (const n of [
        'unshare',
        'mount',
        'umount2',
        'pivot_root',
        'keyctl',
        'add_key',
        'request_key',
        'reboot',
        'swapon',
        'init_module',
        'finit_module',
        'kexec_load',
        'bpf',
        'perf_event_open',
        'clock_settime',
        'settimeofday',
        'open_by_handle_at',
        'setns',
        'userfaultfd',
        'kcmp',
        'process_madvise',
        'syslog',
        'acct',
        'vhangup',
        'fsopen',
        'move_mount',
        'open_tree',
        'quotactl',
        'sethostname',
        'setdomainname',
        'mbind',
      ]) {
        expect(act(n), n).toBe(EPERM_RET);
      }
      for (const n of [
        'read',
        'write',
        'openat',
        'close',
        'execve',
        'wait4',
        'getpid',
        'mmap',
        'futex',
        'ptrace',
        'process_vm_readv',
        'chroot',
        'exit_group',
        'statx',
        'io_uring_setup',
      ]) {
        if (n === 'io_uring_setup')
          expect(act(n), n).toBe(EPERM_RET); // not in Docker's list since 2023
        else expect(act(n), n).toBe(ALLOW);
      }
      expect(act('personality', [0n])).toBe(ALLOW);
      expect(act('personality', [0xffffffffn])).toBe(ALLOW);
      expect(act('personality', [0x0040000n])).toBe(EPERM_RET);
      expect(act('socket', [2n])).toBe(ALLOW); // AF_INET
      expect(act('socket', [39n])).toBe(ALLOW);
      expect(act('socket', [38n])).toBe(EPERM_RET); // AF_ALG
      expect(act('socket', [40n])).toBe(EPERM_RET); // AF_VSOCK
      expect(act('clone', [0x11n])).toBe(ALLOW); // SIGCHLD
      expect(act('clone', [0x10000000n | 0x11n])).toBe(EPERM_RET); // CLONE_NEWUSER
      expect(act('clone', [0x00020000n])).toBe(EPERM_RET); // CLONE_NEWNS
      expect(act('clone3')).toBe(ENOSYS_RET);
      if (arch === 'x86_64') expect(act('arch_prctl')).toBe(ALLOW);
    });
  }

  it('follows the capability set like Docker', () => {
    const names = (caps: string[]) =>
      new Set((defaultProfile('x86_64', { capabilities: caps }).syscalls ?? []).flatMap((s) => s.names));
    const none = names([]);
    expect(none.has('chroot')).toBe(false);
    expect(names(['CAP_SYS_CHROOT']).has('chroot')).toBe(true);
    const admin = defaultProfile('x86_64', { capabilities: ['CAP_SYS_ADMIN'] });
    const insns = decode(compileSeccomp(admin, { arch: 'x86_64' }).filter);
    const act = (n: string, args: bigint[] = []) => run(insns, { nr: nr(n), arch: X86, args });
    expect(act('mount')).toBe(ALLOW);
    expect(act('clone', [0x10000000n])).toBe(ALLOW);
    expect(act('clone3')).toBe(ALLOW);
    expect(act('reboot')).toBe(EPERM_RET);
    expect(names(['CAP_SYS_PTRACE']).has('kcmp')).toBe(true);
    expect(names(['CAP_SYS_TIME']).has('clock_settime')).toBe(true);
  });
});

describe('tables', () => {
  it('maps names and numbers', () => {
    expect(syscallNumber('read', 'x86_64')).toBe(0);
    expect(syscallNumber('read', 'aarch64')).toBe(63);
    expect(syscallNumber('open', 'aarch64')).toBeUndefined();
    expect(syscallNumber('toString', 'x86_64')).toBeUndefined();
    expect(syscallName(59, 'x86_64')).toBe('execve');
    expect(syscallName(221, 'aarch64')).toBe('execve');
    expect(syscallNumber('fchmodat2', 'x86_64')).toBe(452);
    for (const arch of ['x86_64', 'aarch64'] as const) {
      const nums = Object.values(SYSCALL_TABLES[arch]);
      expect(new Set(nums).size).toBe(nums.length);
      expect(Math.max(...nums)).toBe(469);
    }
  });
});

it('random 64-bit values never break the program structure', () => {
  const rng = new Rng(99);
  for (let k = 0; k < 200; k++) {
    const s: LinuxSeccomp = {
      defaultAction: 'SCMP_ACT_ERRNO',
      syscalls: [
        {
          names: ['read', 'write'],
          action: 'SCMP_ACT_ALLOW',
          args: [
            {
              index: rng.int(6),
              value: interesting64(rng),
              valueTwo: interesting64(rng),
              op: 'SCMP_CMP_MASKED_EQ',
            },
          ],
        },
      ],
    };
    compile(s, { arch: rng.chance(0.5) ? 'x86_64' : 'aarch64' });
  }
});
