/**
 * The socket calls @tsc/syscall's table does not have (setsockopt, bind, sendto, recvfrom),
 * bound once through koffi as typed libc prototypes: a declared prototype costs ~50 ns per
 * call, where the variadic `syscall()` path parses argument types on every call. Errors are
 * @tsc/syscall's SysError, so every failure reads the same across packages.
 */
import { SysError } from '@tsc/syscall';
import type Koffi from 'koffi';

interface Libc {
  setsockopt: (fd: number, level: number, name: number, val: Buffer, len: number) => number;
  bind: (fd: number, addr: Buffer, len: number) => number;
  sendto: (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer | null, alen: number) => number;
  recvfrom: (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, alen: Buffer) => number;
  getsockname: (fd: number, addr: Buffer, alen: Buffer) => number;
}

let koffi: typeof Koffi | undefined;
let libc: Libc | undefined;

function lib(): Libc {
  if (libc === undefined) {
    koffi = process.getBuiltinModule('node:module').createRequire(import.meta.url)('koffi') as typeof Koffi;
    const l = koffi.load('libc.so.6');
    libc = {
      setsockopt: l.func('int setsockopt(int, int, int, const void *, uint32_t)') as Libc['setsockopt'],
      bind: l.func('int bind(int, const void *, uint32_t)') as Libc['bind'],
      sendto: l.func('long sendto(int, const void *, size_t, int, const void *, uint32_t)') as Libc['sendto'],
      recvfrom: l.func('long recvfrom(int, void *, size_t, int, void *, void *)') as Libc['recvfrom'],
      getsockname: l.func('int getsockname(int, void *, void *)') as Libc['getsockname'],
    };
  }
  return libc;
}

function fail(syscall: string, op: string): never {
  throw new SysError({ errno: (koffi as typeof Koffi).errno(), syscall, op });
}

export function setsockopt(fd: number, level: number, name: number, value: Buffer, op: string): void {
  if (lib().setsockopt(fd, level, name, value, value.length) < 0) fail('setsockopt', op);
}

export function setsockoptInt(fd: number, level: number, name: number, value: number, op: string): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value);
  setsockopt(fd, level, name, b, op);
}

/** Bind a netlink socket (sockaddr_nl: family, pad, pid, groups); returns nothing, see {@link portId}. */
export function bindNetlink(fd: number, groups: number): void {
  const sa = Buffer.alloc(12);
  sa.writeUInt16LE(16, 0);
  sa.writeUInt32LE(groups >>> 0, 8);
  if (lib().bind(fd, sa, 12) < 0) fail('bind', 'bind netlink socket');
}

/** The port id the kernel gave a bound netlink socket. */
export function portId(fd: number): number {
  const sa = Buffer.alloc(12);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(12);
  if (lib().getsockname(fd, sa, len) < 0) fail('getsockname', 'getsockname netlink socket');
  return sa.readUInt32LE(4);
}

const KERNEL = Buffer.alloc(12);
KERNEL.writeUInt16LE(16, 0);

/** Send one datagram to the kernel (port 0); the whole buffer or an error. */
export function sendToKernel(fd: number, buf: Buffer, len: number, op: string): void {
  const n = lib().sendto(fd, buf, len, 0, KERNEL, 12);
  if (n < 0) fail('sendto', op);
}

/** A receive result: bytes read, the real datagram length (MSG_TRUNC), the sender's port. */
export interface Received {
  n: number;
  full: number;
  sender: number;
}

const addr = Buffer.alloc(12);
const alen = Buffer.alloc(4);

/**
 * Receive one datagram. Returns undefined on EAGAIN (non-blocking socket or SO_RCVTIMEO expired).
 * Other errors throw a SysError (ENOBUFS: the socket's receive buffer overflowed).
 */
export function recvDatagram(fd: number, buf: Buffer, flags: number, op: string): Received | undefined {
  alen.writeUInt32LE(12);
  const full = Number(lib().recvfrom(fd, buf, buf.length, flags | 0x20 /* MSG_TRUNC */, addr, alen));
  if (full < 0) {
    const errno = (koffi as typeof Koffi).errno();
    if (errno === 11 /* EAGAIN */) return undefined;
    if (errno === 4 /* EINTR */) return recvDatagram(fd, buf, flags, op);
    throw new SysError({ errno, syscall: 'recvfrom', op });
  }
  return { n: Math.min(full, buf.length), full, sender: addr.readUInt32LE(4) };
}
