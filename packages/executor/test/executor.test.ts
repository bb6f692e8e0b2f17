// Real-kernel tests of the static C executor: programs run in real processes.
// They need root (namespaces, sethostname, capset) and the built binary:
// `pnpm build` puts it in dist/, which is why this file imports dist.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import type { Socket } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import {
  AT,
  bufferAddress,
  CLONE,
  CLOSE_RANGE,
  call,
  closeFd,
  Errno,
  O,
  PR,
  pidfdOpen,
  pidfdTryWait,
  SYSCALLS,
} from '@tsc/syscall';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EXECUTOR_PATH,
  type ExecutorMessage,
  executorImage,
  Program,
  ProgramError,
  type SpawnOptions,
  spawnExecutor,
} from '../dist/index.js';

const isRoot = process.getuid?.() === 0;
const built = fs.existsSync(EXECUTOR_PATH);
const ENV = ['PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'LC_ALL=C'];
let tmp = '';

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-executor-'));
});
afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** Everything a readable stream yields until it ends. */
function collect(s: Readable | null): { text: () => string; done: Promise<string> } {
  const chunks: Buffer[] = [];
  const done = new Promise<string>((resolve) => {
    if (!s) return resolve('');
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks).toString()));
    s.on('error', () => resolve(Buffer.concat(chunks).toString()));
  });
  return { text: () => Buffer.concat(chunks).toString(), done };
}

/** Run a program to the end: its messages, its exit code and what it wrote to stdout. */
async function run(p: Program, opts: SpawnOptions = {}) {
  const ex = spawnExecutor({ stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  const out = collect(ex.stdout);
  const err = collect(ex.stderr);
  ex.send(p);
  const messages: ExecutorMessage[] = [];
  for (let m = await ex.next(); m; m = await ex.next()) messages.push(m);
  const code = await ex.exited();
  return { pid: ex.pid, messages, code, stdout: await out.done, stderr: await err.done };
}

/** Feed raw bytes to an executor (for programs the builder would never make). */
async function runRaw(bytes: Buffer) {
  const memfd = executorImage();
  const child: ChildProcess = spawn(`/proc/self/fd/${memfd}`, ['3'], {
    argv0: 'nsinit-executor',
    stdio: ['ignore', 'pipe', 'ignore', 'pipe'],
    env: {},
  });
  closeFd(memfd);
  const sock = child.stdio[3] as Socket;
  const received: Buffer[] = [];
  sock.on('data', (c: Buffer) => received.push(c));
  sock.on('error', () => {});
  const out = collect(child.stdout);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  sock.end(bytes);
  const { code, signal } = await exit;
  await new Promise((r) => (sock.closed ? r(null) : sock.on('close', r)));
  const raw = Buffer.concat(received);
  const words = [];
  for (let at = 0; at + 16 <= raw.length; at += 16)
    words.push([
      raw.readUInt32LE(at),
      raw.readUInt32LE(at + 4),
      raw.readInt32LE(at + 8),
      raw.readInt32LE(at + 12),
    ]);
  return { code, signal, stdout: await out.done, messages: words };
}

/** Reap a child of this process (made with CLONE_PARENT) through a pidfd. */
async function reap(pid: number, ms = 10_000) {
  const pidfd = pidfdOpen(pid);
  try {
    const until = Date.now() + ms;
    for (;;) {
      const info = pidfdTryWait(pidfd);
      if (info) return info;
      if (Date.now() > until) throw new Error(`process ${pid} did not exit`);
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    closeFd(pidfd);
  }
}

function write(p: Program, fd: number | ReturnType<Program['reg']>, text: string, what = `write ${text}`) {
  p.syscall('write', [fd, Buffer.from(text), text.length], { what });
}

function exec(p: Program, argv: string[], what = `exec ${argv.join(' ')}`) {
  p.syscall('execve', [argv[0]!, p.stringArray(argv), p.stringArray(ENV)], { what });
}

describe.runIf(isRoot && built)('executor', () => {
  describe('syscall ops and registers', () => {
    it('writes to a pipe (its stdout)', async () => {
      const p = new Program();
      write(p, 1, 'hello ');
      write(p, 1, 'pipe');
      const r = await run(p);
      expect(r).toMatchObject({ code: 0, messages: [], stdout: 'hello pipe' });
    });

    it('keeps results in registers: openat → fd → write through it → close', async () => {
      const file = path.join(tmp, 'regs.txt');
      const p = new Program();
      const fd = p.reg();
      const n = p.reg();
      p.syscall('openat', [AT.FDCWD, file, O.WRONLY | O.CREAT | O.TRUNC | O.CLOEXEC, 0o640], {
        what: 'open the file',
        out: fd,
      });
      // write returns 3 into n; the next write uses n as its length: only "123" of "12345".
      p.syscall('write', [fd, Buffer.from('abc'), 3], { what: 'write abc', out: n });
      p.syscall('write', [fd, Buffer.from('12345'), n], { what: 'write n bytes' });
      p.syscall('close', [fd], { what: 'close it' });
      // The fd is closed: a write through the register now fails with EBADF (ignored).
      p.syscall('write', [fd, Buffer.from('zz'), 2], {
        what: 'write after close',
        onError: 'ignore',
        errno: 9,
      });
      const r = await run(p);
      expect(r).toMatchObject({ code: 0, messages: [] });
      expect(fs.readFileSync(file, 'utf8')).toBe('abc123');
      expect(fs.statSync(file).mode & 0o777).toBe(0o640 & ~process.umask());
    });
  });

  describe('errors', () => {
    it('reports the failing op and exits 122 without running later ops', async () => {
      const p = new Program();
      write(p, 1, 'A');
      p.syscall('openat', [AT.FDCWD, '/nonexistent-tsc/file', O.RDONLY, 0], {
        what: 'open the missing file',
      });
      write(p, 1, 'B');
      const r = await run(p);
      expect(r.messages).toEqual([{ type: 'error', index: 1, errno: 2, code: 122 }]);
      expect(r.code).toBe(122);
      expect(r.stdout).toBe('A');
      const e = new ProgramError(p, 1, 2);
      expect(e.message).toBe('open the missing file: ENOENT (no such file or directory)');
      expect(e).toMatchObject({ step: 1, errno: 2, code: 'ENOENT', syscall: 'openat', name: 'SysError' });
    });

    it("onError 'ignore' tolerates the matching errno only", async () => {
      const ok = new Program();
      const r1 = ok.reg();
      ok.syscall('openat', [AT.FDCWD, '/nonexistent-tsc', O.RDONLY, 0], {
        what: 'open',
        onError: 'ignore',
        errno: Errno.ENOENT,
        out: r1,
      });
      write(ok, 1, 'after');
      expect(await run(ok)).toMatchObject({ code: 0, messages: [], stdout: 'after' });

      const any = new Program();
      any.syscall('openat', [AT.FDCWD, '/nonexistent-tsc', O.RDONLY, 0], { what: 'open', onError: 'ignore' });
      write(any, 1, 'after');
      expect(await run(any)).toMatchObject({ code: 0, stdout: 'after' });

      const wrong = new Program();
      wrong.syscall('openat', [AT.FDCWD, '/nonexistent-tsc', O.RDONLY, 0], {
        what: 'open',
        onError: 'ignore',
        errno: Errno.EACCES,
      });
      write(wrong, 1, 'after');
      const r = await run(wrong);
      expect(r).toMatchObject({ code: 122, stdout: '' });
      expect(r.messages).toEqual([{ type: 'error', index: 0, errno: 2, code: 122 }]);
    });

    it('skipTo skips exactly the ops in between; a non-matching errno still fails', async () => {
      const file = path.join(tmp, 'skip.txt');
      const build = (errno?: number) => {
        const p = new Program();
        const fd = p.reg();
        const l = p.label();
        p.syscall('openat', [AT.FDCWD, file, O.WRONLY | O.CREAT | O.TRUNC | O.CLOEXEC, 0o600], {
          what: 'open',
          out: fd,
        });
        write(p, fd, 'a');
        p.syscall('openat', [AT.FDCWD, '/nonexistent-tsc', O.RDONLY, 0], {
          what: 'open missing',
          onError: { skipTo: l },
          ...(errno === undefined ? {} : { errno }),
        });
        write(p, fd, 'b');
        write(p, fd, 'c');
        p.place(l);
        write(p, fd, 'd');
        const end = p.label();
        p.syscall('getpid', [], { what: 'never fails', onError: { skipTo: end } });
        write(p, fd, 'e');
        p.place(end);
        write(p, fd, 'f');
        return p;
      };
      expect(await run(build())).toMatchObject({ code: 0, messages: [] });
      expect(fs.readFileSync(file, 'utf8')).toBe('adef');
      expect(await run(build(Errno.ENOENT))).toMatchObject({ code: 0, messages: [] });
      expect(fs.readFileSync(file, 'utf8')).toBe('adef');
      const r = await run(build(Errno.EPERM));
      expect(r).toMatchObject({ code: 122, messages: [{ type: 'error', index: 2, errno: 2, code: 122 }] });
      expect(fs.readFileSync(file, 'utf8')).toBe('a');
    });

    it('jump skips forward unconditionally; an exit op ends the program with its code', async () => {
      const p = new Program();
      const l = p.label();
      write(p, 1, 'x');
      p.jump(l, { what: 'jump' });
      write(p, 1, 'y');
      p.exit(9, { what: 'exit 9' });
      p.place(l);
      write(p, 1, 'z');
      p.exit(4, { what: 'exit 4' });
      write(p, 1, 'never');
      expect(await run(p)).toMatchObject({ code: 4, messages: [], stdout: 'xz' });
    });
  });

  describe('clone', () => {
    it("'report' with CLONE_PARENT|NEWUTS|NEWPID: the child is ours, pid 1 in its namespace, with its own hostname", async () => {
      const hostBefore = os.hostname();
      const file = path.join(tmp, 'uts.txt');
      const name = `tsc-uts-${process.pid}`;
      const p = new Program();
      p.clone(CLONE.PARENT | CLONE.NEWUTS | CLONE.NEWPID, 'report', { what: 'clone the child' });
      p.syscall('sethostname', [name, name.length], { what: 'set the hostname' });
      const fd = p.reg();
      p.syscall('openat', [AT.FDCWD, file, O.WRONLY | O.CREAT | O.TRUNC | O.CLOEXEC, 0o600], {
        what: 'open the output',
        out: fd,
      });
      p.syscall('dup3', [fd, 1, 0], { what: 'output to stdout' });
      exec(p, ['/bin/sh', '-c', 'hostname; echo $$']);
      const r = await run(p, { stdio: ['ignore', 'ignore', 'inherit'] });
      expect(r.code).toBe(0);
      expect(r.messages).toHaveLength(1);
      const m = r.messages[0]!;
      expect(m).toMatchObject({ type: 'pid', index: 0 });
      if (m.type !== 'pid') throw new Error('no pid');
      expect(m.pid).toBeGreaterThan(0);
      expect(m.pid).not.toBe(r.pid);
      // CLONE_PARENT: the child's parent is this (test) process (alive or a zombie until we reap it).
      const ppid = fs.readFileSync(`/proc/${m.pid}/status`, 'utf8').match(/^PPid:\s+(\d+)$/m)?.[1];
      expect(Number(ppid)).toBe(process.pid);
      expect(await reap(m.pid)).toEqual({ status: 0, coreDumped: false });
      expect(fs.readFileSync(file, 'utf8')).toBe(`${name}\n1\n`);
      expect(os.hostname()).toBe(hostBefore);
      expect(hostBefore).not.toBe(name);
    });

    it("'wait': the executor reports the wait status and exits with the child's code", async () => {
      const p = new Program();
      p.clone(CLONE.NEWPID, 'wait', { what: 'clone' });
      exec(p, ['/bin/sh', '-c', 'exit 5']);
      const r = await run(p);
      expect(r.code).toBe(5);
      expect(r.messages.map((m) => m.type)).toEqual(['pid', 'exited']);
      expect(r.messages[1]).toEqual({ type: 'exited', index: 0, waitStatus: 5 << 8 });

      const killed = new Program();
      killed.clone(0, 'wait', { what: 'clone' });
      exec(killed, ['/bin/sh', '-c', 'kill -TERM $$; sleep 5']);
      const k = await run(killed);
      expect(k.messages[1]).toEqual({ type: 'exited', index: 0, waitStatus: 15 });
      expect(k.code).toBe(128 + 15);
    });

    it("'wait' with CLONE_PARENT cannot wait for its sibling: reported as an error, not as an exit", async () => {
      const p = new Program();
      p.clone(CLONE.PARENT, 'wait', { what: 'clone a sibling' });
      exec(p, ['/bin/sh', '-c', 'exit 6']);
      const r = await run(p);
      const pidMsg = r.messages.find((m) => m.type === 'pid');
      if (pidMsg?.type !== 'pid') throw new Error('no pid message');
      expect(await reap(pidMsg.pid)).toEqual({ status: 6, coreDumped: false });
      expect(r.messages.filter((m) => m.type === 'exited')).toEqual([]);
      expect(r.messages).toContainEqual({ type: 'error', index: 0, errno: 10, code: 122 }); // ECHILD
      expect(r.code).toBe(122);
    });
  });

  describe('sync', () => {
    async function atSync(reply: number) {
      const p = new Program();
      write(p, 1, 'a');
      p.sync(7, { what: 'wait for the parent' });
      write(p, 1, 'b');
      const ex = spawnExecutor({ stdio: ['ignore', 'pipe', 'ignore'] });
      const out = collect(ex.stdout);
      ex.send(p);
      expect(await ex.next()).toEqual({ type: 'sync', index: 1, id: 7 });
      await new Promise((r) => setTimeout(r, 100));
      // Stopped at the sync point: 'a' is out, 'b' is not, and it sleeps reading the socket.
      expect(out.text()).toBe('a');
      const state = fs.readFileSync(`/proc/${ex.pid}/stat`, 'utf8').replace(/^.*\) /, '')[0];
      expect(state).toBe('S');
      ex.reply(reply);
      expect(await ex.next()).toBeUndefined();
      return { code: await ex.exited(), stdout: await out.done };
    }

    it('stops until the parent replies 0, then goes on', async () => {
      expect(await atSync(0)).toEqual({ code: 0, stdout: 'ab' });
    });

    it('a non-zero reply makes it exit with that code without running later ops', async () => {
      expect(await atSync(3)).toEqual({ code: 3, stdout: 'a' });
    });

    it('a killed executor reports 128 + the signal', async () => {
      const p = new Program();
      p.sync(1, { what: 'wait' });
      const ex = spawnExecutor({ stdio: ['ignore', 'ignore', 'ignore'] });
      ex.send(p);
      expect(await ex.next()).toMatchObject({ type: 'sync' });
      ex.kill();
      expect(await ex.exited()).toBe(137);
    });

    it('exits 121 when the parent goes away at a sync point', async () => {
      const p = new Program();
      p.sync(1, { what: 'wait' });
      write(p, 1, 'never');
      const ex = spawnExecutor({ stdio: ['ignore', 'pipe', 'ignore'] });
      const out = collect(ex.stdout);
      ex.send(p);
      expect(await ex.next()).toMatchObject({ type: 'sync' });
      ex.close();
      expect(await ex.exited()).toBe(121);
      expect(await out.done).toBe('');
    });
  });

  describe('bad programs', () => {
    // A valid base: op 0 writes X, op 1 writes Y. Each crafted defect is in op 1 (or the
    // header/relocations), so "X" on stdout would mean something ran before validation.
    function base() {
      const p = new Program();
      write(p, 1, 'X');
      write(p, 1, 'Y');
      p.pointerBlock([p.cstring('s')]);
      return p.encode();
    }
    const OP1 = 24 + 72;
    const dataLen = (b: Buffer) => b.readUInt32LE(12);
    const relocAt = (b: Buffer) => 24 + 2 * 72 + dataLen(b);

    const cases: [string, (b: Buffer) => void, number][] = [
      ['wrong magic', (b) => void b.writeUInt32LE(0x12345678, 0), 0xffffffff],
      ['wrong version', (b) => void b.writeUInt32LE(2, 4), 0xffffffff],
      ['too many ops', (b) => void b.writeUInt32LE(65537, 8), 0xffffffff],
      ['data too large', (b) => void b.writeUInt32LE(0xffffffff, 12), 0xffffffff],
      ['op kind 99', (b) => void b.writeUInt16LE(99, OP1), 1],
      ['op kind 0', (b) => void b.writeUInt16LE(0, OP1), 1],
      ['on_error 3', (b) => void b.writeUInt8(3, OP1 + 2), 1],
      ['negative skip', (b) => void b.writeInt32LE(-1, OP1 + 8), 1],
      ['arg kind 3', (b) => void b.writeUInt32LE(0x300, OP1 + 12), 1],
      ['data offset beyond the data', (b) => void b.writeBigInt64LE(BigInt(dataLen(b) + 1), OP1 + 24 + 8), 1],
      ['negative data offset', (b) => void b.writeBigInt64LE(-8n, OP1 + 24 + 8), 1],
      [
        'register index 300',
        (b) => {
          b.writeUInt32LE(b.readUInt32LE(OP1 + 12) | 2, OP1 + 12); // arg 0 (the fd) from a register
          b.writeBigInt64LE(300n, OP1 + 24);
        },
        1,
      ],
      [
        'register index -1',
        (b) => {
          b.writeUInt32LE(b.readUInt32LE(OP1 + 12) | 2, OP1 + 12);
          b.writeBigInt64LE(-1n, OP1 + 24);
        },
        1,
      ],
      [
        'misaligned relocation',
        (b) => void b.writeUInt32LE(b.readUInt32LE(relocAt(b)) + 4, relocAt(b)),
        0xffffffff,
      ],
      ['relocation beyond the data', (b) => void b.writeUInt32LE(dataLen(b), relocAt(b)), 0xffffffff],
      [
        'relocated pointer beyond the data',
        (b) => {
          const slot = 24 + 2 * 72 + b.readUInt32LE(relocAt(b));
          b.writeBigUInt64LE(BigInt(dataLen(b) + 1), slot);
        },
        0xffffffff,
      ],
    ];

    it('the unmodified base runs', async () => {
      expect(await runRaw(base())).toMatchObject({ code: 0, signal: null, stdout: 'XY', messages: [] });
    });

    it.each(cases)('%s: exit 120 before any op runs', async (_name, mutate, index) => {
      const b = base();
      mutate(b);
      const r = await runRaw(b);
      expect(r).toMatchObject({ code: 120, signal: null, stdout: '' });
      expect(r.messages).toEqual([[3, index, 22, 120]]);
    });

    it('a truncated program: exit 121, nothing runs', async () => {
      const b = base();
      for (const len of [0, 10, 24, 24 + 72 + 5, b.length - 1]) {
        expect(await runRaw(b.subarray(0, len))).toMatchObject({ code: 121, signal: null, stdout: '' });
      }
    });
  });

  describe('file descriptors', () => {
    let stray = -1;
    let strayFile = '';
    beforeAll(() => {
      strayFile = path.join(tmp, 'stray');
      fs.writeFileSync(strayFile, '');
      const fd = fs.openSync(strayFile, 'r');
      // Node opens with O_CLOEXEC; F_DUPFD makes a copy (≥ 200) without it.
      stray = call('fcntl', [fd, 0, 200]);
      fs.closeSync(fd);
    });
    afterAll(() => closeFd(stray));

    async function listFds(closeRange: 'none' | 'close' | 'close+cloexec') {
      const p = new Program();
      const syncFd = 3;
      if (closeRange !== 'none')
        p.syscall('close_range', [syncFd + 1, 0xffffffff, 0], { what: 'close inherited fds' });
      if (closeRange === 'close+cloexec')
        p.syscall('close_range', [3, 0xffffffff, CLOSE_RANGE.CLOEXEC], { what: 'cloexec the rest' });
      exec(p, ['/bin/ls', '-l', '/proc/self/fd']);
      const r = await run(p);
      expect(r.code).toBe(0);
      expect(r.messages).toEqual([]);
      const fds = new Map<number, string>();
      for (const m of r.stdout.matchAll(/ (\d+) -> (.*)$/gm)) fds.set(Number(m[1]), m[2]!);
      // ls's own directory fd is not an inherited one.
      for (const [fd, target] of fds) if (/^\/proc\/\d+\/fd$/.test(target)) fds.delete(fd);
      return fds;
    }

    it('without close_range a stray non-CLOEXEC fd of the parent reaches the exec’d process', async () => {
      expect(stray).toBeGreaterThanOrEqual(200);
      expect(call('fcntl', [stray, 1, 0]) & 1).toBe(0); // FD_CLOEXEC clear
      const fds = await listFds('none');
      expect(fds.get(stray)).toBe(strayFile);
      expect(fds.get(3)).toMatch(/^socket:/); // the sync socket is not close-on-exec by itself
    });

    it('close_range(syncFd + 1, ~0) drops it; the sync fd stays', async () => {
      const fds = await listFds('close');
      expect(fds.has(stray)).toBe(false);
      expect([...fds.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2, 3]);
      expect(fds.get(3)).toMatch(/^socket:/);
    });

    it('close_range(3, ~0, CLOEXEC) also closes the sync fd at exec: only 0 1 2 remain', async () => {
      const fds = await listFds('close+cloexec');
      expect([...fds.keys()].sort((a, b) => a - b)).toEqual([0, 1, 2]);
    });
  });

  describe('passing fds (SCM_RIGHTS)', () => {
    it('sendmsg with a data-block msghdr hands an fd the program opened to the parent', async () => {
      const file = path.join(tmp, 'passed.txt');
      fs.writeFileSync(file, 'through the socket');
      const pair = Buffer.alloc(8);
      call('socketpair', [1 /* AF_UNIX */, 1 /* SOCK_STREAM */ | O.CLOEXEC, 0, pair]);
      const [ours, theirs] = [pair.readInt32LE(0), pair.readInt32LE(4)];
      try {
        const p = new Program();
        const fd = p.reg();
        // The executor gets `theirs` as fd 3 (its sync socket is 4).
        p.syscall('close_range', [5, 0xffffffff, 0], { what: 'close inherited fds' });
        p.syscall('openat', [AT.FDCWD, file, O.RDONLY | O.CLOEXEC, 0], { what: 'open', out: fd });
        // The cmsg names a fixed fd number: move the register's fd there first.
        p.syscall('dup3', [fd, 1001, O.CLOEXEC], { what: 'move to 1001' });
        p.syscall('sendmsg', [3, p.fdMessage('passed', [1001]), 0x4000], { what: 'send it' });
        const r = await run(p, { extraFds: [theirs] });
        expect(r).toMatchObject({ code: 0, messages: [] });
        const data = Buffer.alloc(64);
        const control = Buffer.alloc(32);
        const iov = Buffer.alloc(16);
        iov.writeBigUInt64LE(bufferAddress(data), 0);
        iov.writeBigUInt64LE(64n, 8);
        const msg = Buffer.alloc(56);
        msg.writeBigUInt64LE(bufferAddress(iov), 16);
        msg.writeBigUInt64LE(1n, 24);
        msg.writeBigUInt64LE(bufferAddress(control), 32);
        msg.writeBigUInt64LE(32n, 40);
        const n = call('recvmsg', [ours, msg, 0x40 /* MSG_DONTWAIT */ | 0x40000000 /* MSG_CMSG_CLOEXEC */]);
        expect(data.subarray(0, n).toString()).toBe('passed');
        expect([control.readInt32LE(8), control.readInt32LE(12)]).toEqual([1, 1]); // SOL_SOCKET, SCM_RIGHTS
        const got = control.readInt32LE(16);
        try {
          expect(fs.readlinkSync(`/proc/self/fd/${got}`)).toBe(file);
          expect(fs.readFileSync(got, 'utf8')).toBe('through the socket');
        } finally {
          closeFd(got);
        }
      } finally {
        closeFd(ours);
        closeFd(theirs);
      }
    });
  });

  describe('CVE-2019-5736: the executor runs from a sealed memfd', () => {
    it('/proc/<pid>/exe is a memfd that cannot be opened for writing; PR_SET_DUMPABLE 0 takes effect', async () => {
      const p = new Program();
      // Drop every capability so a capability-less reader with the same uid may inspect it
      // (commoncap refuses readers whose capabilities are not a superset). Dropping them
      // clears "dumpable", so set it again explicitly: the only difference between the two
      // sync points is then the prctl under test.
      const hdr = Buffer.alloc(8);
      hdr.writeUInt32LE(0x20080522, 0); // _LINUX_CAPABILITY_VERSION_3, pid 0
      p.syscall('capset', [hdr, Buffer.alloc(24)], { what: 'drop all capabilities' });
      p.syscall('prctl', [PR.SET_DUMPABLE, 1, 0, 0, 0], { what: 'dumpable' });
      p.sync(1, { what: 'check exe' });
      p.syscall('prctl', [PR.SET_DUMPABLE, 0, 0, 0, 0], { what: 'not dumpable' });
      p.sync(2, { what: 'check dumpable' });
      const ex = spawnExecutor({ stdio: ['ignore', 'ignore', 'ignore'] });
      try {
        ex.send(p);
        expect(await ex.next()).toEqual({ type: 'sync', index: 2, id: 1 });
        const exe = `/proc/${ex.pid}/exe`;
        expect(fs.readlinkSync(exe)).toBe('/memfd:nsinit-executor (deleted)');
        // Same bytes as the build output, but not that file.
        const running = fs.statSync(exe);
        const onDisk = fs.statSync(EXECUTOR_PATH);
        expect(running.dev === onDisk.dev && running.ino === onDisk.ino).toBe(false);
        expect(fs.readFileSync(exe).equals(fs.readFileSync(EXECUTOR_PATH))).toBe(true);
        const maps = fs.readFileSync(`/proc/${ex.pid}/maps`, 'utf8');
        expect(maps).toContain('/memfd:nsinit-executor (deleted)');
        expect(maps).not.toContain(EXECUTOR_PATH);
        for (const flags of [
          fs.constants.O_WRONLY,
          fs.constants.O_RDWR,
          fs.constants.O_WRONLY | fs.constants.O_TRUNC,
        ]) {
          let code = 'opened';
          try {
            const fd = fs.openSync(exe, flags);
            try {
              fs.writeSync(fd, 'x');
              code = 'written';
            } catch (e) {
              code = (e as NodeJS.ErrnoException).code ?? 'unknown';
            } finally {
              fs.closeSync(fd);
            }
          } catch (e) {
            code = (e as NodeJS.ErrnoException).code ?? 'unknown';
          }
          expect(['ETXTBSY', 'EPERM']).toContain(code);
        }
        expect(fs.readFileSync(exe).equals(fs.readFileSync(EXECUTOR_PATH))).toBe(true);

        // Same uid (root), no capabilities: may read /proc/<pid>/environ only while dumpable.
        const reader = ['--bounding-set=-all', '--inh-caps=-all', 'cat', `/proc/${ex.pid}/environ`];
        const whileDumpable = spawnSync('setpriv', reader, { encoding: 'utf8' });
        expect(whileDumpable.stderr).toBe('');
        expect(whileDumpable.status).toBe(0);
        ex.reply(0);
        expect(await ex.next()).toEqual({ type: 'sync', index: 4, id: 2 });
        const notDumpable = spawnSync('setpriv', reader, { encoding: 'utf8' });
        expect(notDumpable.status).not.toBe(0);
        expect(notDumpable.stderr).toMatch(/Permission denied/);
        ex.reply(0);
        expect(await ex.next()).toBeUndefined();
        expect(await ex.exited()).toBe(0);
      } finally {
        ex.kill();
      }
    });
  });

  describe('fuzz', () => {
    // The base program is harmless whatever the mutations do: op 0 chroots into an empty
    // directory (never mutated, so every later path stays inside it), then getpid,
    // open/write/close of a file there, a jump and exit 7. Mutations touch the header,
    // on_error/out/errno/skip, arg kinds and the values of data/register args — never an
    // op kind or syscall number — so no other syscall can run.
    it('2,000 mutated programs never kill the executor with a signal', async () => {
      const jail = path.join(tmp, 'jail');
      const progs = path.join(tmp, 'progs');
      fs.mkdirSync(jail);
      fs.mkdirSync(progs);
      const p = new Program();
      p.syscall('chroot', [jail], { what: 'chroot' });
      const fd = p.reg();
      const pid = p.reg();
      const n = p.reg();
      p.syscall('getpid', [], { what: 'getpid', out: pid });
      p.syscall('openat', [AT.FDCWD, 'sink', O.WRONLY | O.CREAT | O.APPEND | O.CLOEXEC, 0o600], {
        what: 'open',
        out: fd,
      });
      const buf = p.data(Buffer.alloc(160, 0xee));
      p.syscall('write', [fd, buf, 16], { what: 'write', out: n });
      p.syscall('write', [fd, buf, n], { what: 'write n', onError: 'ignore' });
      const l = p.label();
      p.jump(l, { what: 'jump' });
      p.syscall('getpid', [], { what: 'skipped' });
      p.place(l);
      p.syscall('close', [fd], { what: 'close' });
      p.syscall('getpid', [], { what: 'getpid' });
      p.exit(7, { what: 'exit' });
      const good = p.encode();
      const nOps = p.length;
      const exitOp = nOps - 1;
      // Bytes past the ops read as extra ops (a mutated op count) must never form a valid kind.
      for (let at = 24 + nOps * 72; at + 2 <= good.length; at += 72) {
        const k = good.readUInt16LE(at);
        expect(k < 1 || k > 5).toBe(true);
      }

      // Mutable byte positions.
      const spots: number[] = [];
      for (let i = 0; i < 24; i++) spots.push(i);
      for (let op = 1; op < nOps; op++) {
        const at = 24 + op * 72;
        for (let i = 2; i < 12; i++) spots.push(at + i); // on_error, out, errno, skip
        if (op === exitOp) continue; // its arg is the exit code
        for (let i = 12; i < 16; i++) spots.push(at + i); // argkinds
        const kinds = good.readUInt32LE(at + 12);
        for (let a = 0; a < 6; a++) {
          const k = (kinds >> (4 * a)) & 0xf;
          if (k === 1 || k === 2) for (let i = 0; i < 8; i++) spots.push(at + 24 + a * 8 + i);
        }
      }
      const initialSeed = (0x5eed1234 ^ process.pid) | 1;
      let seed = initialSeed;
      const rand = (m: number) => {
        seed ^= seed << 13;
        seed ^= seed >>> 17;
        seed ^= seed << 5;
        return (seed >>> 0) % m;
      };
      const N = 2000;
      const names: string[] = [];
      for (let i = 0; i < N; i++) {
        const b = Buffer.from(good);
        const count = 1 + rand(3);
        for (let j = 0; j < count; j++) {
          const at = spots[rand(spots.length)]!;
          // Mostly small values (they hit the interesting boundaries), sometimes any byte.
          b[at] = rand(4) === 0 ? rand(256) : [0, 1, 2, 3, 4, 8, 0x7f, 0x80, 0xff][rand(9)]!;
        }
        const name = `p${String(i).padStart(4, '0')}`;
        fs.writeFileSync(path.join(progs, name), b);
        names.push(name);
      }
      // The executor reads its program from any fd: here a file, in a shell loop (fast).
      const batches = 4;
      const results = await Promise.all(
        Array.from({ length: batches }, (_, k) => {
          const mine = names.filter((_, i) => i % batches === k);
          const script = `for f in ${mine.join(' ')}; do "$EXE" 3 3<"$DIR/$f" >/dev/null 2>&1 </dev/null; echo "$f $?"; done`;
          return new Promise<string>((resolve, reject) => {
            const c = spawn('/bin/sh', ['-c', script], {
              cwd: jail,
              env: { EXE: EXECUTOR_PATH, DIR: progs, PATH: '/usr/bin:/bin' },
              stdio: ['ignore', 'pipe', 'inherit'],
            });
            const out = collect(c.stdout);
            c.on('error', reject);
            c.on('exit', () => resolve(out.done));
          });
        }),
      );
      const codes = new Map<number, number>();
      const bad: string[] = [];
      let total = 0;
      for (const line of results.join('').trim().split('\n')) {
        const [name, code] = line.split(' ');
        const c = Number(code);
        total++;
        codes.set(c, (codes.get(c) ?? 0) + 1);
        if (![0, 7, 120, 121, 122].includes(c)) bad.push(`${name}: ${c}`);
      }
      expect(total).toBe(N);
      expect({ seed: initialSeed, bad }).toEqual({ seed: initialSeed, bad: [] });
      // The mutations really exercise the paths: rejected, failed and completed programs.
      expect(codes.get(120) ?? 0).toBeGreaterThan(50);
      expect(codes.get(7) ?? 0).toBeGreaterThan(50);
      expect((codes.get(121) ?? 0) + (codes.get(122) ?? 0)).toBeGreaterThan(10);
      // Nothing escaped the jail directory.
      // (File names may be any bytes: a mutated path pointer can name the 0xee buffer.)
      const entries = fs.readdirSync(jail, { withFileTypes: true, encoding: 'buffer' });
      expect(entries.filter((e) => !e.isFile()).map((e) => e.name.toString('hex'))).toEqual([]);
      expect(entries.map((e) => e.name.toString())).toContain('sink');
      expect(SYSCALLS.chroot.args).toEqual(['str']);
    });
  });
});
