import { closeSync, openSync } from 'node:fs';
import { F, LOCK, MFD, P, PR, SEAL, W } from './constants.js';
import { Errno } from './errno.js';
import { isSysError } from './errors.js';
import { call } from './ffi.js';

/** How a process ended, as waitid reports it. */
export interface ExitInfo {
  /** The exit code, or 128 + signal for a process killed by a signal (shell convention). */
  readonly status: number;
  /** The signal that killed it, if one did. */
  readonly signal?: number;
  /** Whether it dumped core. */
  readonly coreDumped: boolean;
}

/** Open a pidfd for `pid` (race-free handle on a process). */
export function pidfdOpen(pid: number): number {
  return call('pidfd_open', [pid, 0], { op: `pidfd_open ${pid}` });
}

/** Send `signal` through a pidfd. */
export function pidfdSendSignal(pidfd: number, signal: number): void {
  call('pidfd_send_signal', [pidfd, signal, null, 0], { op: `send signal ${signal}` });
}

/**
 * Reap a child through its pidfd without blocking. Returns `undefined` while it
 * still runs. The process must be a child of this one.
 */
export function pidfdTryWait(pidfd: number): ExitInfo | undefined {
  const info = Buffer.alloc(128);
  call('waitid', [P.PIDFD, pidfd, info, W.EXITED | W.NOHANG, null], { op: 'waitid' });
  const pid = info.readInt32LE(16);
  if (pid === 0) return undefined;
  const code = info.readInt32LE(8);
  const status = info.readInt32LE(24);
  // CLD_EXITED = 1, CLD_KILLED = 2, CLD_DUMPED = 3
  if (code === 1) return { status, coreDumped: false };
  return { status: 128 + status, signal: status, coreDumped: code === 3 };
}

/** Close a file descriptor, ignoring EBADF. */
export function closeFd(fd: number): void {
  try {
    call('close', [fd]);
  } catch (e) {
    if (!(isSysError(e) && e.errno === Errno.EBADF)) throw e;
  }
}

/**
 * Copy `bytes` into a sealed, executable memfd (CLOEXEC). The result cannot be
 * written, grown or shrunk by anyone: a container process that reaches it
 * through /proc/<pid>/exe cannot change the binary (CVE-2019-5736).
 */
export function sealedMemfd(name: string, bytes: Uint8Array): number {
  const fd = call('memfd_create', [name, MFD.CLOEXEC | MFD.ALLOW_SEALING], { op: `memfd_create ${name}` });
  try {
    let off = 0;
    while (off < bytes.length) {
      off += call('write', [fd, bytes.subarray(off), bytes.length - off], { op: `write ${name} memfd` });
    }
    call('fcntl', [fd, F.ADD_SEALS, SEAL.SEAL | SEAL.SHRINK | SEAL.GROW | SEAL.WRITE], {
      op: `seal ${name} memfd`,
    });
  } catch (e) {
    closeFd(fd);
    throw e;
  }
  return fd;
}

/**
 * Like {@link sealedMemfd}, with the bytes of the file at `path`, copied by the kernel
 * (sendfile): no copy of the file passes through JavaScript.
 */
export function sealedMemfdFromFile(name: string, path: string): number {
  const src = openSync(path, 'r');
  let fd = -1;
  try {
    fd = call('memfd_create', [name, MFD.CLOEXEC | MFD.ALLOW_SEALING], { op: `memfd_create ${name}` });
    while (call('sendfile', [fd, src, null, 1 << 30], { op: `copy ${path} into a memfd` }) > 0) {
      // until end of file
    }
    call('fcntl', [fd, F.ADD_SEALS, SEAL.SEAL | SEAL.SHRINK | SEAL.GROW | SEAL.WRITE], {
      op: `seal ${name} memfd`,
    });
  } catch (e) {
    if (fd >= 0) closeFd(fd);
    throw e;
  } finally {
    closeSync(src);
  }
  return fd;
}

/** The seals of a memfd (`F_GET_SEALS`). */
export function getSeals(fd: number): number {
  return call('fcntl', [fd, F.GET_SEALS, 0], { op: 'fcntl F_GET_SEALS' });
}

/** Take an flock on `fd`; with `wait: false` throws EWOULDBLOCK (EAGAIN) when held elsewhere. */
export function flock(fd: number, mode: 'shared' | 'exclusive' | 'unlock', wait = true): void {
  const op = mode === 'shared' ? LOCK.SH : mode === 'exclusive' ? LOCK.EX : LOCK.UN;
  call('flock', [fd, op | (wait ? 0 : LOCK.NB)], { op: `flock ${mode}` });
}

/** Make this process a child subreaper: orphans below it are reparented to it. */
export function setChildSubreaper(on = true): void {
  call('prctl', [PR.SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0], { op: 'prctl PR_SET_CHILD_SUBREAPER' });
}

/** Join the namespace behind `fd` (only safe in-process for namespaces that are per-thread, e.g. net). */
export function setns(fd: number, nstype: number): void {
  call('setns', [fd, nstype], { op: 'setns' });
}
