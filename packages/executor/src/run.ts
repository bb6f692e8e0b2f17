import { type ChildProcess, type StdioOptions, spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { closeFd, SysError, sealedMemfdFromFile } from '@tsc/syscall';
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
 */
export class ExecutorProcess {
  /** The executor's pid (valid right after spawn). */
  readonly pid: number;
  /** The fd number the executor knows its sync socket as. */
  readonly syncFd: number;
  private readonly child: ChildProcess;
  private readonly sock: Socket;
  private buf: Buffer = Buffer.alloc(0);
  private readonly queue: ExecutorMessage[] = [];
  private waiter: (() => void) | undefined;
  private ended = false;
  private readonly exitPromise: Promise<number>;

  constructor(opts: SpawnOptions = {}) {
    const extra = opts.extraFds ?? [];
    this.syncFd = 3 + extra.length;
    const stdio: StdioOptions = [...(opts.stdio ?? ['inherit', 'inherit', 'inherit']), ...extra, 'pipe'];
    const memfd = executorImage();
    try {
      this.child = spawn(`/proc/self/fd/${memfd}`, [String(this.syncFd)], {
        argv0: 'nsinit-executor',
        stdio,
        env: {},
      });
    } finally {
      closeFd(memfd);
    }
    if (this.child.pid === undefined) throw new Error('could not start the executor');
    this.pid = this.child.pid;
    const s = this.child.stdio[this.syncFd] as Socket | null;
    if (!s) throw new Error('executor sync socket missing');
    this.sock = s;
    this.sock.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
      while (this.buf.length >= MESSAGE_SIZE) {
        this.queue.push(decodeMessage(this.buf));
        this.buf = this.buf.subarray(MESSAGE_SIZE);
      }
      this.wake();
    });
    const end = () => {
      this.ended = true;
      this.wake();
    };
    this.sock.on('end', end);
    this.sock.on('close', end);
    this.sock.on('error', end);
    this.exitPromise = new Promise((resolve) => {
      // Killed by a signal: 128 + its number (shell convention), e.g. 137 for SIGKILL.
      this.child.on('exit', (code, signal) =>
        resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)),
      );
    });
  }

  /** Our end of the executor's stdin, when it was spawned with 'pipe'. */
  get stdin(): import('node:stream').Writable | null {
    return this.child.stdin;
  }
  /** Our end of its stdout, when 'pipe'. */
  get stdout(): import('node:stream').Readable | null {
    return this.child.stdout;
  }
  /** Our end of its stderr, when 'pipe'. */
  get stderr(): import('node:stream').Readable | null {
    return this.child.stderr;
  }

  /** Send the program; the executor starts running it at once. */
  send(program: Program): void {
    this.sock.write(program.encode());
  }

  /** Answer a sync point: 0 continues, anything else makes the child exit with that code. */
  reply(code = 0): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(code);
    if (!this.sock.destroyed) this.sock.write(b);
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
    this.sock.destroy();
  }

  /** Kill the executor itself (not what it cloned). */
  kill(): void {
    this.child.kill('SIGKILL');
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
