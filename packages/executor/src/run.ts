import type { ChildProcess, StdioOptions } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  call,
  closeFd,
  Errno,
  type FdWatch,
  isSysError,
  pidfdOpen,
  pidfdSendSignal,
  pidfdTryWait,
  posixSpawn,
  SysError,
  sealedMemfdFromFile,
  watchReadable,
} from '@tsc/syscall';
import { decodeMessage, type ExecutorMessage, MESSAGE_SIZE, type Program } from './program.js';

/** Where the build puts the static executor binary. */
export const EXECUTOR_PATH = fileURLToPath(new URL('./nsinit-executor', import.meta.url));

/**
 * A fresh sealed memfd holding the executor, for one spawn. No container
 * process can write the binary through /proc/<pid>/exe (CVE-2019-5736); and
 * since each spawn gets its own copy, a container that manages to hold an old
 * copy open for writing (it cannot write: the seals forbid it) cannot make the
 * next execve fail with ETXTBSY either. The kernel copies the file (sendfile),
 * ~0.1 ms.
 */
export function executorImage(): number {
  try {
    return sealedMemfdFromFile('nsinit-executor', EXECUTOR_PATH);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`the executor binary ${EXECUTOR_PATH} is missing: run the build (pnpm build)`, {
        cause: e,
      });
    }
    throw e;
  }
}

/** One of the executor's standard fds: an fd of ours, ours inherited, /dev/null, or a new pipe. */
export type StdioSpec = 'inherit' | 'ignore' | 'pipe' | number;

/** Options for {@link spawnExecutor}. */
export interface SpawnOptions {
  /** stdin, stdout, stderr of the executor (and so of what it execs): fds or 'inherit'/'ignore'. Default inherit. */
  stdio?: readonly [StdioSpec, StdioSpec, StdioSpec];
  /** fds placed at 3, 4, … in the executor, in order (e.g. --preserve-fds). */
  extraFds?: readonly number[];
}

/** Thrown when an op of a program fails: the op's meaning, the syscall and the errno. */
export class ProgramError extends SysError {
  /** Index of the failing op. */
  readonly step: number;
  constructor(program: Program, step: number, errno: number) {
    super({ errno, syscall: program.syscallOf(step), op: program.describe(step) });
    this.step = step;
  }
}

/**
 * A running executor. It waits for its program; send it with {@link send}
 * (after putting the executor's pid into its cgroup), then read messages.
 *
 * It is started with posix_spawn (vfork semantics: no copy of this process) and talked to over
 * a socketpair watched from the event loop. Only when a stdio stream is asked for (`'pipe'`,
 * as OCI hooks do) does it go through child_process, which has those streams.
 */
export class ExecutorProcess {
  /** The executor's pid (valid right after spawn). */
  readonly pid: number;
  /** The fd number the executor knows its sync socket as. */
  readonly syncFd: number;
  private readonly child: ChildProcess | undefined;
  private readonly sock: Socket | undefined;
  /** The fast path: our end of the socketpair, its watch, the executor's pidfd and its watch. */
  private fd = -1;
  private fdWatch: FdWatch | undefined;
  private pidfd = -1;
  private pidWatch: FdWatch | undefined;
  private reaped = false;
  private buf: Buffer = Buffer.alloc(0);
  private readonly queue: ExecutorMessage[] = [];
  private waiter: (() => void) | undefined;
  private ended = false;
  private readonly exitPromise: Promise<number>;

  constructor(opts: SpawnOptions = {}) {
    const extra = opts.extraFds ?? [];
    this.syncFd = 3 + extra.length;
    const stdio = opts.stdio ?? ['inherit', 'inherit', 'inherit'];
    const memfd = executorImage();
    try {
      if (stdio.includes('pipe')) {
        const { spawn } = process.getBuiltinModule('node:child_process');
        const options: StdioOptions = [...stdio, ...extra, 'pipe'];
        this.child = spawn(`/proc/self/fd/${memfd}`, [String(this.syncFd)], {
          argv0: 'nsinit-executor',
          stdio: options,
          env: {},
        });
        if (this.child.pid === undefined) throw new Error('could not start the executor');
        this.pid = this.child.pid;
        const s = this.child.stdio[this.syncFd] as Socket | null;
        if (!s) throw new Error('executor sync socket missing');
        this.sock = s;
        this.sock.on('data', (chunk: Buffer) => this.received(chunk));
        const end = () => this.end();
        this.sock.on('end', end);
        this.sock.on('close', end);
        this.sock.on('error', end);
        const child = this.child;
        this.exitPromise = new Promise((resolve) => {
          // Killed by a signal: 128 + its number (shell convention), e.g. 137 for SIGKILL.
          child.on('exit', (code, signal) =>
            resolve(
              code ?? 128 + (signal ? process.getBuiltinModule('node:os').constants.signals[signal] : 0),
            ),
          );
        });
      } else {
        this.pid = this.spawnFast(memfd, stdio, extra);
        this.exitPromise = this.watchExit();
      }
    } finally {
      closeFd(memfd);
    }
  }

  private spawnFast(memfd: number, stdio: readonly StdioSpec[], extra: readonly number[]): number {
    const pair = Buffer.alloc(8);
    // AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC
    call('socketpair', [1, 1 | 0o2000000, 0, pair], { op: 'socketpair for the executor' });
    const ours = pair.readInt32LE(0);
    const theirs = pair.readInt32LE(4);
    let devNull = -1;
    try {
      const fds: [number, number][] = [];
      stdio.forEach((spec, i) => {
        if (spec === 'inherit') fds.push([i, i]);
        else if (spec === 'ignore') {
          if (devNull < 0) devNull = openSync('/dev/null', 'r+');
          fds.push([devNull, i]);
        } else fds.push([spec as number, i]);
      });
      extra.forEach((fd, k) => {
        fds.push([fd, 3 + k]);
      });
      fds.push([theirs, this.syncFd]);
      const pid = posixSpawn({
        path: `/proc/self/fd/${memfd}`,
        argv: ['nsinit-executor', String(this.syncFd)],
        env: [],
        fds,
      });
      this.fd = ours;
      this.fdWatch = watchReadable(ours, () => this.readFast());
      return pid;
    } catch (e) {
      closeFd(ours);
      throw e;
    } finally {
      closeFd(theirs);
      if (devNull >= 0) closeSync(devNull);
    }
  }

  /**
   * The exit status, through a pidfd watched from the event loop. 255 if the executor cannot be
   * waited for (someone else reaped it: a waitpid(-1) elsewhere in this process).
   */
  private watchExit(): Promise<number> {
    return new Promise((resolve) => {
      try {
        this.pidfd = pidfdOpen(this.pid);
      } catch {
        resolve(255);
        return;
      }
      const check = () => {
        let info: ReturnType<typeof pidfdTryWait>;
        try {
          info = pidfdTryWait(this.pidfd);
        } catch {
          this.stopExitWatch();
          resolve(255);
          return;
        }
        if (!info) return;
        this.reaped = true;
        this.stopExitWatch();
        resolve(info.status);
      };
      // A pidfd is readable once its process has exited.
      this.pidWatch = watchReadable(this.pidfd, check);
    });
  }

  private stopExitWatch(): void {
    this.pidWatch?.close();
    this.pidWatch = undefined;
    if (this.pidfd >= 0) closeFd(this.pidfd);
    this.pidfd = -1;
  }

  /** Read what the socket has, without blocking (the watch fires again while there is more). */
  private readFast(): void {
    const chunk = Buffer.allocUnsafe(4096);
    for (;;) {
      let n: number;
      try {
        // MSG_DONTWAIT: the socket itself stays blocking, for writes.
        n = call('recvfrom', [this.fd, chunk, chunk.length, 0x40, null, null], {
          op: 'read from the executor',
        });
      } catch (e) {
        if (isSysError(e) && (e.errno === Errno.EAGAIN || e.errno === Errno.EINTR)) return;
        this.end();
        return;
      }
      if (n === 0) {
        this.end();
        return;
      }
      this.received(Buffer.from(chunk.subarray(0, n)));
    }
  }

  private received(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= MESSAGE_SIZE) {
      this.queue.push(decodeMessage(this.buf));
      this.buf = this.buf.subarray(MESSAGE_SIZE);
    }
    this.wake();
  }

  private end(): void {
    this.ended = true;
    if (this.fdWatch) {
      this.fdWatch.close();
      this.fdWatch = undefined;
    }
    this.wake();
  }

  /** Write all of `b` to the socket (fast path); false once the executor is gone. */
  private writeFast(b: Buffer): boolean {
    let off = 0;
    while (off < b.length) {
      try {
        off += call('write', [this.fd, b.subarray(off), b.length - off], { op: 'write to the executor' });
      } catch (e) {
        if (isSysError(e) && e.errno === Errno.EINTR) continue;
        // EPIPE (Node ignores SIGPIPE) or ECONNRESET: it exited; its exit says why.
        return false;
      }
    }
    return true;
  }

  /** Our end of the executor's stdin, when it was spawned with 'pipe'. */
  get stdin(): import('node:stream').Writable | null {
    return this.child?.stdin ?? null;
  }
  /** Our end of its stdout, when 'pipe'. */
  get stdout(): import('node:stream').Readable | null {
    return this.child?.stdout ?? null;
  }
  /** Our end of its stderr, when 'pipe'. */
  get stderr(): import('node:stream').Readable | null {
    return this.child?.stderr ?? null;
  }

  /** Send the program; the executor starts running it at once. */
  send(program: Program): void {
    const b = program.encode();
    if (this.sock) this.sock.write(b);
    else if (this.fd >= 0 && !this.writeFast(b)) this.end();
  }

  /** Answer a sync point: 0 continues, anything else makes the child exit with that code. */
  reply(code = 0): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(code);
    if (this.sock) {
      if (!this.sock.destroyed) this.sock.write(b);
    } else if (this.fd >= 0 && !this.ended) this.writeFast(b);
  }

  /**
   * The next message, or `undefined` once every process holding the socket has
   * closed it (after a successful execve, when the program marked the socket
   * close-on-exec first, as the container programs do with close_range).
   */
  async next(): Promise<ExecutorMessage | undefined> {
    for (;;) {
      const m = this.queue.shift();
      if (m) return m;
      if (this.ended) return undefined;
      await new Promise<void>((r) => {
        this.waiter = r;
      });
    }
  }

  /** The executor's own exit code. */
  exited(): Promise<number> {
    return this.exitPromise;
  }

  /** Stop listening and drop our end of the socket. */
  close(): void {
    if (this.sock) {
      this.sock.destroy();
      return;
    }
    this.end();
    if (this.fd >= 0) closeFd(this.fd);
    this.fd = -1;
  }

  /** Kill the executor itself (not what it cloned). */
  kill(): void {
    if (this.child) {
      this.child.kill('SIGKILL');
      return;
    }
    if (this.reaped || this.pidfd < 0) return;
    try {
      pidfdSendSignal(this.pidfd, 9);
    } catch {
      // already gone
    }
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}

/** Spawn an executor that waits for its program. */
export function spawnExecutor(opts: SpawnOptions = {}): ExecutorProcess {
  return new ExecutorProcess(opts);
}
