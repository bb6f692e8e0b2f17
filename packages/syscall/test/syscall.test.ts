// Real-kernel tests of @tsc/syscall: in-process calls through koffi, the syscall
// table against the kernel headers, errno names, sealed memfds, signals and pidfds.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import koffi from 'koffi';
import { afterAll, describe, expect, it } from 'vitest';
import {
  AT,
  call,
  closeFd,
  Errno,
  errnoDescription,
  errnoName,
  errnoNumber,
  getSeals,
  isSysError,
  O,
  parseSignal,
  pidfdOpen,
  pidfdSendSignal,
  pidfdTryWait,
  SEAL,
  SIGNALS,
  SYSCALLS,
  SysError,
  sealedMemfd,
  sealedMemfdFromFile,
} from '../src/index.js';

const isRoot = process.getuid?.() === 0;
const X86_HEADER = '/usr/include/x86_64-linux-gnu/asm/unistd_64.h';
const GENERIC_HEADER = '/usr/include/asm-generic/unistd.h';

const libc = koffi.load('libc.so.6');
const strerror = libc.func('const char *strerror(int errnum)') as (n: number) => string;
const posixSpawn = libc.func(
  'int posix_spawn(_Out_ int *pid, const char *path, void *fa, void *attr, const char **argv, const char **envp)',
) as (
  pid: number[],
  path: string,
  fa: null,
  attr: null,
  argv: (string | null)[],
  envp: (string | null)[],
) => number;

/** Catch what `fn` throws (and fail when it does not throw). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected an exception');
}

/** Parse `#define __NR_<name> <value>` lines; values may name other macros (aliases). */
function parseDefines(text: string): Map<string, string[]> {
  const defs = new Map<string, string[]>();
  for (const m of text.matchAll(/^\s*#\s*define\s+(__NR(?:3264)?_\w+)\s+(\S+)\s*$/gm)) {
    const [, name, value] = m as unknown as [string, string, string];
    const list = defs.get(name) ?? [];
    list.push(value);
    defs.set(name, list);
  }
  return defs;
}

/** Resolve a macro to a number when every definition agrees; undefined when unknown or ambiguous. */
function resolve(defs: Map<string, string[]>, name: string, depth = 0): number | undefined {
  const values = defs.get(name);
  if (!values || depth > 8) return undefined;
  const nums = new Set<number>();
  for (const v of values) {
    const stripped = v.replace(/^\((.*)\)$/, '$1');
    let n: number | undefined;
    if (/^\d+$/.test(stripped)) n = Number(stripped);
    else if (/^__NR(3264)?_\w+$/.test(stripped)) n = resolve(defs, stripped, depth + 1);
    if (n === undefined) return undefined;
    nums.add(n);
  }
  return nums.size === 1 ? [...nums][0] : undefined;
}

describe('call()', () => {
  it('returns the kernel result: getpid is our pid', () => {
    expect(call('getpid', [])).toBe(process.pid);
  });

  it.runIf(isRoot)('throws a SysError naming the op, errno and description', () => {
    const e = thrown(() =>
      call('mount', ['none', '/nonexistent-dir-xyz', 'tmpfs', 0, null], {
        op: 'mount tmpfs on /nonexistent-dir-xyz',
      }),
    );
    expect(e).toBeInstanceOf(SysError);
    expect(isSysError(e)).toBe(true);
    const se = e as SysError;
    expect(se.errno).toBe(2);
    expect(se.code).toBe('ENOENT');
    expect(se.syscall).toBe('mount');
    expect(se.op).toBe('mount tmpfs on /nonexistent-dir-xyz');
    expect(se.name).toBe('SysError');
    expect(se.message).toBe('mount tmpfs on /nonexistent-dir-xyz: ENOENT (no such file or directory)');
  });

  it('defaults op to the syscall name and keeps a path', () => {
    const se = thrown(() => call('close', [987_654], { path: '/x' })) as SysError;
    expect(se.message).toBe('close: EBADF (bad file descriptor)');
    expect(se.errno).toBe(Errno.EBADF);
    expect(se.path).toBe('/x');
  });

  it('isSysError rejects look-alikes and accepts a SysError from another copy (brand, not class)', () => {
    expect(isSysError(new Error('x'))).toBe(false);
    expect(isSysError({ errno: 1, code: 'EPERM' })).toBe(false);
    expect(isSysError(null)).toBe(false);
    expect(isSysError('EPERM')).toBe(false);
    const foreign = Object.assign(new Error('y'), { [Symbol.for('@tsc/syscall.SysError')]: true });
    expect(isSysError(foreign)).toBe(true);
  });

  it('passes strings and buffers: write then read through a pipe-like file', () => {
    const file = `${os.tmpdir()}/tsc-syscall-${process.pid}`;
    const fd = call('openat', [AT.FDCWD, file, O.WRONLY | O.CREAT | O.TRUNC | O.CLOEXEC, 0o600]);
    try {
      expect(call('write', [fd, Buffer.from('hello'), 5])).toBe(5);
    } finally {
      closeFd(fd);
    }
    const rfd = call('openat', [AT.FDCWD, file, O.RDONLY | O.CLOEXEC, 0]);
    try {
      const buf = Buffer.alloc(16);
      expect(call('read', [rfd, buf, buf.length])).toBe(5);
      expect(buf.subarray(0, 5).toString()).toBe('hello');
    } finally {
      closeFd(rfd);
      fs.rmSync(file, { force: true });
    }
    // closeFd ignores EBADF only.
    expect(() => closeFd(rfd)).not.toThrow();
  });
});

describe('SYSCALLS table', () => {
  it.runIf(fs.existsSync(X86_HEADER))('x86_64 numbers match asm/unistd_64.h', () => {
    const defs = parseDefines(fs.readFileSync(X86_HEADER, 'utf8'));
    let checked = 0;
    const missing: string[] = [];
    for (const [key, d] of Object.entries(SYSCALLS)) {
      expect(d.name).toBe(key);
      const nr = resolve(defs, `__NR_${d.name}`);
      if (nr === undefined) {
        missing.push(d.name);
        continue;
      }
      expect({ name: d.name, nr: d.nr.x86_64 }).toEqual({ name: d.name, nr });
      checked++;
    }
    expect(missing).toEqual([]);
    expect(checked).toBe(Object.keys(SYSCALLS).length);
  });

  it.runIf(fs.existsSync(GENERIC_HEADER))('aarch64 numbers match asm-generic/unistd.h', () => {
    const defs = parseDefines(fs.readFileSync(GENERIC_HEADER, 'utf8'));
    // Sanity of the parser: a plain entry and a __NR3264 alias.
    expect(resolve(defs, '__NR_openat')).toBe(56);
    expect(resolve(defs, '__NR_fcntl')).toBe(25);
    let checked = 0;
    const unknown: string[] = [];
    for (const d of Object.values(SYSCALLS)) {
      const nr = resolve(defs, `__NR_${d.name}`);
      if (nr === undefined) {
        unknown.push(d.name);
        continue;
      }
      expect({ name: d.name, nr: d.nr.aarch64 }).toEqual({ name: d.name, nr });
      checked++;
    }
    // Only syscalls aarch64 does not have may be missing (none of ours should be).
    expect(unknown).toEqual([]);
    expect(checked).toBeGreaterThan(Object.keys(SYSCALLS).length * 0.9);
  });

  it('numbers are unique per architecture and argument lists have at most six entries', () => {
    for (const arch of ['x86_64', 'aarch64'] as const) {
      const nrs = Object.values(SYSCALLS).map((d) => d.nr[arch]);
      expect(new Set(nrs).size).toBe(nrs.length);
    }
    for (const d of Object.values(SYSCALLS)) expect(d.args.length).toBeLessThanOrEqual(6);
  });
});

describe('errno', () => {
  const nodeErrno = os.constants.errno as Record<string, number>;

  it('every known name agrees with node (os.constants.errno) and the description with strerror', () => {
    let known = 0;
    let withNode = 0;
    for (let n = 1; n < 200; n++) {
      const name = errnoName(n);
      if (name === `E${n}`) {
        expect(errnoDescription(n)).toBe(`error ${n}`);
        continue;
      }
      known++;
      // libuv's list (node) lacks a few rare ones (ENOTBLK, EKEY*, EOWNERDEAD): strerror still checks them.
      if (name in nodeErrno) {
        expect({ n, name, node: nodeErrno[name] }).toEqual({ n, name, node: n });
        withNode++;
      }
      expect(errnoNumber(name)).toBe(n);
      expect({ n, d: errnoDescription(n) }).toEqual({ n, d: strerror(n).toLowerCase() });
    }
    expect(known).toBeGreaterThan(60);
    expect(withNode).toBeGreaterThan(known - 8);
  });

  it('every node errno whose number is in the table maps back to the same number', () => {
    for (const [name, n] of Object.entries(nodeErrno)) {
      const mine = errnoNumber(name);
      if (mine !== undefined) expect({ name, mine }).toEqual({ name, mine: n });
    }
    for (const [name, n] of Object.entries(Errno)) expect({ name, n: nodeErrno[name] }).toEqual({ name, n });
    expect(errnoNumber('ENOPE')).toBeUndefined();
    expect(errnoName(4095)).toBe('E4095');
  });
});

describe('sealedMemfd', () => {
  const fds: number[] = [];
  afterAll(() => {
    for (const fd of fds) closeFd(fd);
  });

  it('is sealed against writes, growth and shrinking, and its seals are sealed', () => {
    const fd = sealedMemfd('tsc-test', Buffer.from('payload'));
    fds.push(fd);
    const seals = getSeals(fd);
    for (const s of [SEAL.SEAL, SEAL.SHRINK, SEAL.GROW, SEAL.WRITE]) expect(seals & s).toBe(s);
    expect(fs.readFileSync(`/proc/self/fd/${fd}`, 'utf8')).toBe('payload');
    const e = thrown(() => call('write', [fd, Buffer.from('x'), 1])) as SysError;
    expect(isSysError(e)).toBe(true);
    expect(e.code).toBe('EPERM');
    // Adding (or removing) seals is refused too: F_SEAL_SEAL.
    const e2 = thrown(() => call('fcntl', [fd, 1033, SEAL.EXEC])) as SysError;
    expect(e2.code).toBe('EPERM');
    // Writing through a fresh open of /proc/self/fd/N fails as well.
    expect(() => fs.writeFileSync(`/proc/self/fd/${fd}`, 'x', { flag: 'r+' })).toThrow(/EPERM|EACCES/);
    expect(fs.readFileSync(`/proc/self/fd/${fd}`, 'utf8')).toBe('payload');
    // CLOEXEC: a child does not inherit it.
    expect(call('fcntl', [fd, 1, 0]) & 1).toBe(1);
  });

  it('sealedMemfdFromFile copies a whole file and seals it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-memfd-'));
    try {
      const file = path.join(dir, 'blob');
      const bytes = Buffer.alloc(3 * 1024 * 1024 + 17);
      for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31 + (i >> 11)) & 0xff;
      fs.writeFileSync(file, bytes);
      const fd = sealedMemfdFromFile('tsc-file', file);
      fds.push(fd);
      expect(fs.readFileSync(`/proc/self/fd/${fd}`).equals(bytes)).toBe(true);
      const seals = getSeals(fd);
      for (const s of [SEAL.SEAL, SEAL.SHRINK, SEAL.GROW, SEAL.WRITE]) expect(seals & s).toBe(s);
      expect((thrown(() => call('write', [fd, Buffer.from('x'), 1])) as SysError).code).toBe('EPERM');
      // A missing file: the open's error, and no memfd left open.
      expect(() => sealedMemfdFromFile('tsc-missing', path.join(dir, 'nope'))).toThrow(/ENOENT/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('can be executed through /proc/self/fd/N', () => {
    const fd = sealedMemfd('tsc-echo', fs.readFileSync('/bin/echo'));
    fds.push(fd);
    const r = spawnSync(`/proc/self/fd/${fd}`, ['sealed', 'hello'], { encoding: 'utf8' });
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('sealed hello\n');
  });
});

describe('parseSignal', () => {
  it('parses numbers, names with and without SIG, any case, and real-time signals', () => {
    expect(parseSignal(9)).toBe(9);
    expect(parseSignal('9')).toBe(9);
    expect(parseSignal(' 15 ')).toBe(15);
    expect(parseSignal('KILL')).toBe(9);
    expect(parseSignal('SIGKILL')).toBe(9);
    expect(parseSignal('sigterm')).toBe(15);
    expect(parseSignal('Hup')).toBe(1);
    expect(parseSignal('RTMIN')).toBe(34);
    expect(parseSignal('RTMIN+2')).toBe(36);
    expect(parseSignal('SIGRTMIN+30')).toBe(64);
    expect(parseSignal('RTMAX')).toBe(64);
    expect(parseSignal('rtmax-3')).toBe(61);
    expect(parseSignal(64)).toBe(64);
    for (const [name, n] of Object.entries(SIGNALS)) expect(os.constants.signals[name as 'SIGINT']).toBe(n);
  });

  it('rejects what is not a signal', () => {
    for (const bad of ['NOPE', 'SIGFOO', '', 'SIG', '9x', 'RTMIN+31', 'RTMAX-64', '-1', '1.5', 'toString'])
      expect({ bad, v: parseSignal(bad) }).toEqual({ bad, v: undefined });
    for (const bad of [0, -1, 65, 1.5, Number.NaN])
      expect({ bad, v: parseSignal(bad) }).toEqual({ bad, v: undefined });
  });
});

describe('pidfd helpers', () => {
  // Children made with posix_spawn through koffi are unknown to libuv, so only
  // our waitid(P_PIDFD) reaps them (a node:child_process child would race libuv).
  function spawnRaw(argv: string[]): number {
    const pid = [0];
    const rc = posixSpawn(pid, argv[0]!, null, null, [...argv, null], [null]);
    expect(rc).toBe(0);
    return pid[0]!;
  }

  async function waitExit(pidfd: number, ms = 10_000) {
    const until = Date.now() + ms;
    for (;;) {
      const info = pidfdTryWait(pidfd);
      if (info) return info;
      if (Date.now() > until) throw new Error('child did not exit');
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  it('opens, signals and reaps a running child', async () => {
    const pid = spawnRaw(['/bin/sleep', '100']);
    const pidfd = pidfdOpen(pid);
    try {
      expect(pidfdTryWait(pidfd)).toBeUndefined();
      // posix_spawn returns once the child is inside execve; wait until it is sleep.
      for (let i = 0; i < 500 && !fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('sleep'); i++)
        await new Promise((r) => setTimeout(r, 2));
      expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toBe('/bin/sleep\0' + '100\0');
      expect(pidfdTryWait(pidfd)).toBeUndefined();
      pidfdSendSignal(pidfd, parseSignal('TERM')!);
      const info = await waitExit(pidfd);
      expect(info).toEqual({ status: 128 + 15, signal: 15, coreDumped: false });
      // Reaped: no process behind the pidfd any more.
      expect(fs.existsSync(`/proc/${pid}`)).toBe(false);
      expect((thrown(() => pidfdSendSignal(pidfd, 0)) as SysError).code).toBe('ESRCH');
      expect((thrown(() => pidfdTryWait(pidfd)) as SysError).code).toBe('ECHILD');
    } finally {
      closeFd(pidfd);
    }
  });

  it('decodes a normal exit code', async () => {
    const pid = spawnRaw(['/bin/sh', '-c', 'exit 3']);
    const pidfd = pidfdOpen(pid);
    try {
      expect(await waitExit(pidfd)).toEqual({ status: 3, coreDumped: false });
    } finally {
      closeFd(pidfd);
    }
  });

  it('pidfdOpen of a process that does not exist throws ESRCH', () => {
    const e = thrown(() => pidfdOpen(0x3ffffff0)) as SysError;
    expect(e.code).toBe('ESRCH');
    expect(e.op).toBe(`pidfd_open ${0x3ffffff0}`);
  });
});
