/**
 * Terminals, host side: the console socket a container's init sends its pty master to, receiving
 * that master, window sizes, and reading and writing a master from the event loop.
 *
 * The pty itself is allocated inside the container by the init (see plan/terminal.ts): from the
 * container's own devpts, so `tty` there prints /dev/pts/0. The host only ever holds the master.
 */
import { readSync, writeSync } from 'node:fs';
import { bufferAddress, call, closeFd, F, isSysError, O, watchReadable } from '@tsc/syscall';
import { ContainerError } from './errors.js';

/** A terminal's size in character cells (the OCI `process.consoleSize` shape). */
export interface ConsoleSize {
  height: number;
  width: number;
}

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = O.CLOEXEC;
const MSG_DONTWAIT = 0x40;
const MSG_CMSG_CLOEXEC = 0x40000000;
const TIOCGWINSZ = 0x5413;
const TIOCSWINSZ = 0x5414;

/**
 * Connect to the AF_UNIX stream socket at `path` (runc's `--console-socket`); the fd is ours
 * (close-on-exec). Fails with `console socket <path>: connect: ENOENT (…)`.
 */
export function connectConsoleSocket(path: string): number {
  const addr = Buffer.alloc(110); // struct sockaddr_un
  const bytes = Buffer.from(path, 'utf8');
  if (bytes.length === 0 || bytes.length > 107 || bytes.includes(0)) {
    throw new ContainerError(
      'InvalidArgument',
      `console socket ${path}: not a usable socket path (1 to 107 bytes, no NUL)`,
    );
  }
  addr.writeUInt16LE(AF_UNIX, 0);
  bytes.copy(addr, 2);
  let fd: number;
  try {
    fd = call('socket', [AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0], { op: `console socket ${path}: socket` });
  } catch (e) {
    throw consoleError(e);
  }
  try {
    call('connect', [fd, addr, 2 + bytes.length + 1], { op: `console socket ${path}: connect` });
  } catch (e) {
    closeFd(fd);
    throw consoleError(e);
  }
  return fd;
}

/** A connected AF_UNIX stream socket pair, both ends close-on-exec: [ours, the executor's]. */
export function consoleSocketPair(): [number, number] {
  const fds = Buffer.alloc(8);
  try {
    call('socketpair', [AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds], { op: 'terminal: socketpair' });
  } catch (e) {
    throw consoleError(e);
  }
  return [fds.readInt32LE(0), fds.readInt32LE(4)];
}

/**
 * Take one fd sent with SCM_RIGHTS from `sock` without waiting (the init sent it before the sync
 * point we are at). The fd is ours, close-on-exec.
 */
export function receiveFd(sock: number): number {
  const data = Buffer.alloc(256);
  const control = Buffer.alloc(64);
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(bufferAddress(data), 0);
  iov.writeBigUInt64LE(BigInt(data.length), 8);
  const msg = Buffer.alloc(56);
  msg.writeBigUInt64LE(bufferAddress(iov), 16);
  msg.writeBigUInt64LE(1n, 24);
  msg.writeBigUInt64LE(bufferAddress(control), 32);
  msg.writeBigUInt64LE(BigInt(control.length), 40);
  try {
    call('recvmsg', [sock, msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC], { op: 'terminal: receive the pty master' });
  } catch (e) {
    throw consoleError(e);
  }
  // Every fd of every SCM_RIGHTS message: keep the first, close any other.
  const controlLen = Number(msg.readBigUInt64LE(40));
  const got: number[] = [];
  for (let at = 0; at + 16 <= controlLen; ) {
    const len = Number(control.readBigUInt64LE(at));
    if (len < 16) break;
    if (control.readInt32LE(at + 8) === 1 && control.readInt32LE(at + 12) === 1) {
      for (let i = at + 16; i + 4 <= at + len; i += 4) got.push(control.readInt32LE(i));
    }
    at += (len + 7) & ~7;
  }
  for (const extra of got.slice(1)) closeFd(extra);
  const fd = got[0];
  if (fd === undefined) {
    throw new ContainerError('StartFailed', 'terminal: the container sent no pty master');
  }
  return fd;
}

/** The window size of terminal `fd`, or undefined when it is not a terminal. */
export function getConsoleSize(fd: number): ConsoleSize | undefined {
  const ws = Buffer.alloc(8);
  try {
    call('ioctl', [fd, TIOCGWINSZ, ws]);
  } catch {
    return undefined;
  }
  return { height: ws.readUInt16LE(0), width: ws.readUInt16LE(2) };
}

/** Set the window size of terminal `fd` (a pty master: its foreground process group gets SIGWINCH). */
export function setConsoleSize(fd: number, size: ConsoleSize): void {
  call('ioctl', [fd, TIOCSWINSZ, winsize(size)], { op: 'terminal: set the window size' });
}

const TCGETS = 0x5401;
const TCSETS = 0x5402;

/**
 * Put terminal `fd` in raw mode as cfmakeraw(3) does (no echo, no line editing, no signals from
 * keys, no output processing: the container's pty does all of that). Returns a function that
 * restores the previous mode, or undefined when `fd` is not a terminal.
 */
export function makeRaw(fd: number): (() => void) | undefined {
  const saved = Buffer.alloc(60); // struct termios (kernel): 4 flag words, c_line, c_cc[19]
  try {
    call('ioctl', [fd, TCGETS, saved]);
  } catch {
    return undefined;
  }
  const t = Buffer.from(saved);
  const iflag = t.readUInt32LE(0) & ~(0o1 | 0o2 | 0o10 | 0o40 | 0o100 | 0o200 | 0o400 | 0o2000);
  const oflag = t.readUInt32LE(4) & ~0o1; // OPOST
  const cflag = (t.readUInt32LE(8) & ~(0o60 | 0o400)) | 0o60; // CS8, no parity
  const lflag = t.readUInt32LE(12) & ~(0o10 | 0o100 | 0o2 | 0o1 | 0o100000); // ECHO ECHONL ICANON ISIG IEXTEN
  t.writeUInt32LE(iflag >>> 0, 0);
  t.writeUInt32LE(oflag >>> 0, 4);
  t.writeUInt32LE(cflag >>> 0, 8);
  t.writeUInt32LE(lflag >>> 0, 12);
  t.writeUInt8(0, 17 + 5); // VTIME
  t.writeUInt8(1, 17 + 6); // VMIN
  call('ioctl', [fd, TCSETS, t], { op: 'terminal: raw mode' });
  let done = false;
  return () => {
    if (done) return;
    done = true;
    try {
      call('ioctl', [fd, TCSETS, saved]);
    } catch {
      // the terminal is gone
    }
  };
}

/** struct winsize { ws_row, ws_col, ws_xpixel, ws_ypixel }. */
export function winsize(size: ConsoleSize): Buffer {
  const ws = Buffer.alloc(8);
  ws.writeUInt16LE(size.height & 0xffff, 0);
  ws.writeUInt16LE(size.width & 0xffff, 2);
  return ws;
}

/** A pty master read from the event loop, see {@link attachConsole}. */
export interface ConsoleAttachment {
  /** Write to the terminal (what the container's process reads); queued when the pty is full. */
  write(data: Uint8Array | string): void;
  /** Resolves once the other side is gone (every holder of the pty closed it) or after {@link close}. */
  readonly ended: Promise<void>;
  /** Read what is left without waiting, stop watching and close the master. */
  close(): void;
}

/**
 * Read the pty master `master` from the event loop, handing each chunk to `onData`; takes the fd
 * over (made non-blocking, closed by {@link ConsoleAttachment.close}).
 */
export function attachConsole(master: number, onData: (chunk: Buffer) => void): ConsoleAttachment {
  const flags = call('fcntl', [master, F.GETFL, 0]);
  call('fcntl', [master, F.SETFL, flags | O.NONBLOCK], { op: 'terminal: make the pty master non-blocking' });
  const buf = Buffer.alloc(16384);
  const pending: Buffer[] = [];
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let resolveEnded: () => void = () => undefined;
  const ended = new Promise<void>((r) => {
    resolveEnded = r;
  });
  /** Read until EAGAIN; true when the other side is gone (EIO, or end of file). */
  const drain = (): boolean => {
    for (;;) {
      let n: number;
      try {
        n = readSync(master, buf, 0, buf.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') return false;
        if (code === 'EINTR') continue;
        return true; // EIO: no process holds the pty any more
      }
      if (n === 0) return true;
      onData(Buffer.from(buf.subarray(0, n)));
    }
  };
  const finish = () => {
    if (closed) return;
    closed = true;
    watch.close();
    if (timer) clearTimeout(timer);
    pending.length = 0;
    closeFd(master);
    resolveEnded();
  };
  const watch = watchReadable(master, () => {
    if (!closed && drain()) finish();
  });
  const flush = () => {
    timer = undefined;
    while (!closed && pending.length) {
      const head = pending[0] as Buffer;
      let n: number;
      try {
        n = writeSync(master, head);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN' || code === 'EINTR') {
          timer = setTimeout(flush, 5);
          return;
        }
        pending.length = 0; // the other side is gone: what it did not read is lost
        return;
      }
      if (n >= head.length) pending.shift();
      else pending[0] = head.subarray(n);
    }
  };
  return {
    write(data) {
      if (closed) return;
      pending.push(typeof data === 'string' ? Buffer.from(data) : Buffer.from(data));
      if (!timer) flush();
    },
    ended,
    close() {
      if (closed) return;
      drain();
      finish();
    },
  };
}

function consoleError(e: unknown): unknown {
  if (isSysError(e)) return new ContainerError('InvalidArgument', e.message, { step: e.op, cause: e });
  return e;
}
