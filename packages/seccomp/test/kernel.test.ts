/**
 * Real-kernel test: the compiled filters are loaded with seccomp(2) in a child (test/c/seccomp-exec.c)
 * which then execs a probe making harmless syscalls (test/c/syscall-probe.c) or ordinary commands.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type CompileOptions,
  compileSeccomp,
  defaultProfile,
  type LinuxSeccomp,
  nativeArch,
} from '../src/index.js';
import { buildC } from './helpers.js';

const arch = nativeArch();
const exec = buildC('seccomp-exec');
const probe = buildC('syscall-probe');
const skip =
  arch === undefined
    ? `no seccomp tables for ${process.arch}`
    : 'skip' in exec
      ? exec.skip
      : 'skip' in probe
        ? probe.skip
        : undefined;
const execBin = 'bin' in exec ? exec.bin : '';
const probeBin = 'bin' in probe ? probe.bin : '';
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-seccomp-kernel-'));
afterAll(() => {
  for (const d of [dir, execBin && path.dirname(execBin), probeBin && path.dirname(probeBin)]) {
    if (d) fs.rmSync(d, { recursive: true, force: true });
  }
});

let n = 0;
/** Run `argv` under the filter compiled from `section`. */
function under(section: LinuxSeccomp, argv: string[], opts: CompileOptions = {}) {
  const { filter, flags } = compileSeccomp(section, { arch, ...opts });
  const file = path.join(dir, `filter-${n++}.bpf`);
  fs.writeFileSync(file, filter);
  const r = spawnSync(execBin, [file, String(flags), ...argv], { encoding: 'utf8' });
  if (r.status === 125) throw new Error(`seccomp-exec: ${r.stderr}`);
  return r;
}

/** errno of each probe under `section` (0: success). */
function probes(section: LinuxSeccomp, names: string[], opts: CompileOptions = {}): Record<string, number> {
  const r = under(section, [probeBin, ...names], opts);
  expect(r.status, r.stderr).toBe(0);
  return Object.fromEntries(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => {
        const [k, v] = l.split(' ');
        return [k ?? '', Number(v)];
      }),
  );
}

const EPERM = 1;
const ESRCH = 3;
const ENOSYS = 38;

const DENIED = [
  'unshare-user',
  'unshare-mnt',
  'mount',
  'umount2',
  'pivot_root',
  'keyctl',
  'add_key',
  'request_key',
  'reboot',
  'swapon',
  'init_module',
  'kexec_load',
  'bpf',
  'perf_event_open',
  'clock_settime',
  'settimeofday',
  'open_by_handle_at',
  'setns',
  'personality-bsd',
  'userfaultfd',
  'clone-newuser',
  'socket-vsock',
  'socket-alg',
];

describe.skipIf(skip !== undefined)("Docker's default profile in the kernel", () => {
  it('denies the privileged syscalls with EPERM', () => {
    const got = probes(defaultProfile(arch!), DENIED);
    expect(got).toEqual(Object.fromEntries(DENIED.map((d) => [d, EPERM])));
  });

  it('allows the ordinary ones', () => {
    const got = probes(defaultProfile(arch!), [
      'getpid',
      'fork',
      'socket-inet',
      'personality-query',
      'ptrace',
      'clone3',
      'nr-1000',
      'nr-467',
    ]);
    expect(got).toEqual({
      getpid: 0,
      fork: 0,
      'socket-inet': 0,
      'personality-query': 0,
      ptrace: ESRCH, // allowed: the kernel looks for the (nonexistent) tracee
      clone3: ENOSYS, // the profile's own rule: libc falls back to clone
      'nr-1000': ENOSYS, // above every syscall the profile names: runc's -ENOSYS stub
      'nr-467': ENOSYS, // open_tree_attr (Linux 6.15), above every syscall the profile names
    });
  });

  it('without the -ENOSYS stub, unknown syscalls get the default errno', () => {
    const got = probes(defaultProfile(arch!), ['nr-1000', 'nr-467'], { enosys: 'off' });
    expect(got).toEqual({ 'nr-1000': EPERM, 'nr-467': EPERM });
  });

  it('runs ls, and makes unshare(1) fail', () => {
    const ls = under(defaultProfile(arch!), ['ls', '/']);
    expect(ls.status, ls.stderr).toBe(0);
    expect(ls.stdout.split('\n')).toContain('proc');
    const unshare = under(defaultProfile(arch!), ['unshare', '-U', 'true']);
    expect(unshare.status).not.toBe(0);
    expect(unshare.stderr).toMatch(/Operation not permitted/);
  });

  it('grants more with CAP_SYS_ADMIN (mount reaches the kernel, clone3 is allowed)', () => {
    const p = defaultProfile(arch!, { capabilities: ['CAP_SYS_ADMIN'] });
    const got = probes(p, ['mount', 'clone3', 'keyctl']);
    expect(got.mount).not.toBe(EPERM); // ENOENT: the mount point does not exist
    expect(got.clone3).not.toBe(ENOSYS); // EFAULT/EINVAL from the kernel
    expect(got.keyctl).toBe(EPERM);
  });

  it.runIf(arch === 'x86_64')('kills an x32 syscall (bad-arch action: SIGSYS)', () => {
    const r = under(defaultProfile(arch!), [probeBin, 'getpid', 'x32-getpid']);
    expect(r.stdout).toBe('getpid 0\n');
    expect(r.signal).toBe('SIGSYS');
  });

  it('applies the flags (LOG, SPEC_ALLOW, TSYNC) and every action', () => {
    const p: LinuxSeccomp = {
      defaultAction: 'SCMP_ACT_ALLOW',
      flags: ['SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW', 'SECCOMP_FILTER_FLAG_TSYNC'],
      syscalls: [
        { names: ['setns'], action: 'SCMP_ACT_ERRNO', errnoRet: 42 },
        { names: ['keyctl'], action: 'SCMP_ACT_LOG' },
        { names: ['bpf'], action: 'SCMP_ACT_TRACE' }, // no tracer: the call fails with ENOSYS
        // Only with a0 == 0x7fffffff (our probe), so the process itself is not in danger.
        {
          names: ['ptrace'],
          action: 'SCMP_ACT_KILL_PROCESS',
          args: [{ index: 1, value: 0x7fffffff, op: 'SCMP_CMP_EQ' }],
        },
      ],
    };
    const got = probes(p, ['setns', 'keyctl', 'bpf', 'getpid']);
    expect(got).toEqual({ setns: 42, keyctl: 126 /* ENOKEY: logged and allowed */, bpf: ENOSYS, getpid: 0 });
    const killed = under(p, [probeBin, 'getpid', 'ptrace']);
    expect(killed.stdout).toBe('getpid 0\n');
    expect(killed.signal).toBe('SIGSYS');
  });

  it('compares 64-bit arguments in the kernel as in the interpreter', () => {
    // personality(0xffffffff) queries; allow only values whose high half is 0 and low half < 0x10.
    const p: LinuxSeccomp = {
      defaultAction: 'SCMP_ACT_ERRNO',
      defaultErrnoRet: 77,
      syscalls: [
        {
          names: ['execve', 'brk', 'mmap', 'munmap', 'mprotect', 'arch_prctl', 'set_tid_address'],
          action: 'SCMP_ACT_ALLOW',
        },
        {
          names: ['openat', 'read', 'close', 'fstat', 'newfstatat', 'pread64', 'write', 'exit_group'],
          action: 'SCMP_ACT_ALLOW',
        },
        {
          names: ['set_robust_list', 'rseq', 'prlimit64', 'getrandom', 'access', 'faccessat'],
          action: 'SCMP_ACT_ALLOW',
        },
        { names: ['getpid'], action: 'SCMP_ACT_ALLOW' },
        {
          names: ['personality'],
          action: 'SCMP_ACT_ALLOW',
          args: [{ index: 0, value: 0xffffffff, op: 'SCMP_CMP_EQ' }],
        },
      ],
    };
    const got = probes(p, ['getpid', 'personality-query', 'personality-bsd', 'setns']);
    expect(got).toEqual({ getpid: 0, 'personality-query': 0, 'personality-bsd': 77, setns: 77 });
  });
});

it.runIf(skip !== undefined)(`kernel tests skipped: ${skip}`, () => {});
