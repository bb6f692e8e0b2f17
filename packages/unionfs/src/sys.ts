/** The filesystem system calls the unpacker and the drivers make, on top of `@tsc/syscall`. */
import { AT, call, isSysError, O, RESOLVE } from '@tsc/syscall';

export { AT, O, RESOLVE };

/** The errno name of a failed call, or undefined for other errors. */
export function errCode(e: unknown): string | undefined {
  if (isSysError(e)) return e.code;
  const c = (e as NodeJS.ErrnoException | undefined)?.code;
  return typeof c === 'string' ? c : undefined;
}

/** A path that names `name` inside the directory open as `fd` (the fd pins the directory). */
export function fdPath(fd: number, name?: string): string {
  return name === undefined || name === '' ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`;
}

const how = Buffer.alloc(24);
/** openat2(dirfd, path, {flags, mode, resolve}). */
export function openat2(dirfd: number, path: string, flags: number, resolve: number, mode = 0): number {
  how.writeBigUInt64LE(BigInt(flags | O.CLOEXEC), 0);
  how.writeBigUInt64LE(BigInt(mode), 8);
  how.writeBigUInt64LE(BigInt(resolve), 16);
  return call('openat2', [dirfd, path === '' ? '.' : path, how, 24], { op: `open ${path || '.'}`, path });
}

/** Opens `path` below the root open as `rootFd`; symlinks are resolved as if `rootFd` were `/`. */
export function openInRoot(rootFd: number, path: string, flags: number): number {
  return openat2(rootFd, path, flags, RESOLVE.IN_ROOT | RESOLVE.NO_MAGICLINKS);
}

export function openat(dirfd: number, name: string, flags: number, mode = 0): number {
  return call('openat', [dirfd, name, flags | O.CLOEXEC, mode], { op: `open ${name}`, path: name });
}

export function mkdirat(dirfd: number, name: string, mode: number): void {
  call('mkdirat', [dirfd, name, mode], { op: `mkdir ${name}`, path: name });
}

export function mknodat(dirfd: number, name: string, mode: number, dev: bigint): void {
  call('mknodat', [dirfd, name, mode, dev], { op: `mknod ${name}`, path: name });
}

export function symlinkat(target: string, dirfd: number, name: string): void {
  call('symlinkat', [target, dirfd, name], { op: `symlink ${name}`, path: name });
}

export function linkat(olddirfd: number, oldname: string, newdirfd: number, newname: string): void {
  call('linkat', [olddirfd, oldname, newdirfd, newname, 0], { op: `link ${newname} to ${oldname}` });
}

export function unlinkat(dirfd: number, name: string, dir: boolean): void {
  call('unlinkat', [dirfd, name, dir ? AT.REMOVEDIR : 0], { op: `remove ${name}`, path: name });
}

export function fchownat(dirfd: number, name: string, uid: number, gid: number): void {
  call('fchownat', [dirfd, name, uid, gid, AT.SYMLINK_NOFOLLOW | (name === '' ? AT.EMPTY_PATH : 0)], {
    op: `chown ${name}`,
    path: name,
  });
}

const times = Buffer.alloc(32);
/** Sets atime and mtime (seconds + nanoseconds) without following a final symlink. */
export function utimensat(dirfd: number, name: string | null, at: Timespec, mt: Timespec): void {
  times.writeBigInt64LE(BigInt(at.sec), 0);
  times.writeBigInt64LE(BigInt(at.nsec), 8);
  times.writeBigInt64LE(BigInt(mt.sec), 16);
  times.writeBigInt64LE(BigInt(mt.nsec), 24);
  call('utimensat', [dirfd, name, times, name === null ? 0 : AT.SYMLINK_NOFOLLOW], {
    op: `set times of ${name ?? 'fd'}`,
  });
}

export interface Timespec {
  sec: number;
  nsec: number;
}

export function fsetxattr(fd: number, name: string, value: Buffer): void {
  call('fsetxattr', [fd, name, value, value.length, 0], { op: `set xattr ${name}` });
}

/** setxattr (follows a final symlink: for `/proc/self/fd/N` paths naming a directory fd). */
export function setxattr(path: string, name: string, value: Buffer): void {
  call('setxattr', [path, name, value, value.length, 0], { op: `set xattr ${name} on ${path}`, path });
}

export function lsetxattr(path: string, name: string, value: Buffer): void {
  call('lsetxattr', [path, name, value, value.length, 0], { op: `set xattr ${name} on ${path}`, path });
}

export function lremovexattr(path: string, name: string): void {
  call('lremovexattr', [path, name], { op: `remove xattr ${name} of ${path}`, path });
}

/** One xattr of `path` (not following a final symlink), or undefined when it has none by that name. */
export function lgetxattr(path: string, name: string): Buffer | undefined {
  for (;;) {
    let size: number;
    try {
      size = call('lgetxattr', [path, name, null, 0]);
    } catch (e) {
      const c = errCode(e);
      if (c === 'ENODATA' || c === 'ENOTSUP' || c === 'EOPNOTSUPP') return undefined;
      throw e;
    }
    if (size === 0) return Buffer.alloc(0);
    const buf = Buffer.alloc(size);
    try {
      const n = call('lgetxattr', [path, name, buf, size]);
      return buf.subarray(0, n);
    } catch (e) {
      if (errCode(e) !== 'ERANGE') throw e; // grew in between
    }
  }
}

/** Every xattr of `path` (not following a final symlink), values as raw bytes, names sorted. */
export function lgetxattrs(path: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let list: Buffer;
  for (;;) {
    let size: number;
    try {
      size = call('llistxattr', [path, null, 0]);
    } catch (e) {
      const c = errCode(e);
      if (c === 'ENOTSUP' || c === 'EOPNOTSUPP') return out;
      throw e;
    }
    if (size === 0) return out;
    list = Buffer.alloc(size);
    try {
      list = list.subarray(0, call('llistxattr', [path, list, size]));
      break;
    } catch (e) {
      if (errCode(e) !== 'ERANGE') throw e;
    }
  }
  const names = list.toString('latin1').split('\0').filter(Boolean).sort();
  for (const n of names) {
    const name = Buffer.from(n, 'latin1').toString('utf8');
    const v = lgetxattr(path, name);
    if (v !== undefined) out.set(name, v);
  }
  return out;
}

export function renameat2(
  olddirfd: number,
  oldname: string,
  newdirfd: number,
  newname: string,
  flags = 0,
): void {
  call('renameat2', [olddirfd, oldname, newdirfd, newname, flags], { op: `rename ${oldname} to ${newname}` });
}

/** Flushes the whole filesystem that holds `fd` (cheaper than fsync of every file of a layer). */
export function syncfs(fd: number): void {
  call('syncfs', [fd], { op: 'syncfs' });
}

/** `makedev(major, minor)` as the kernel's `dev_t` encoding (glibc's). */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return (mi & 0xffn) | ((ma & 0xfffn) << 8n) | ((mi & ~0xffn) << 12n) | ((ma & ~0xfffn) << 32n);
}

export function major(dev: number | bigint): number {
  const d = BigInt(dev);
  return Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
}

export function minor(dev: number | bigint): number {
  const d = BigInt(dev);
  return Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
}
