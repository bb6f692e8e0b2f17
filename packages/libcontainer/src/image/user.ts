/**
 * The image's user: `name`, `uid`, `uid:gid`, `name:group`… resolved through the rootfs's
 * `/etc/passwd` and `/etc/group` with the rules of Docker and runc (moby/sys/user
 * GetExecUser): a name must exist; a number needs no entry; the primary group comes from the
 * passwd entry unless a group is given; supplementary groups are those listing the user as a
 * member, and only when no group was given.
 *
 * The rootfs is untrusted: its files are opened with `openat2(RESOLVE_IN_ROOT)` (a symlink
 * `/etc/passwd → /host/etc/shadow` resolves inside the rootfs), must be regular files (a FIFO
 * would block us) and are read up to a size limit.
 */
import { fstatSync, readSync } from 'node:fs';
import { AT, call, closeFd, Errno, isSysError, O, RESOLVE, S } from '@tsc/syscall';
import { ContainerError } from '../errors.js';
import { openHow } from '../plan/inroot.js';

/** The largest `/etc/passwd` or `/etc/group` read. */
const MAX_FILE = 16 << 20;
const MAX_ID = 2 ** 31 - 1;

/** The process identity the user spec resolves to. */
export interface ExecUser {
  uid: number;
  gid: number;
  /** Supplementary groups (from `/etc/group` membership). */
  additionalGids: number[];
  /** The home directory from `/etc/passwd` (`/` when there is no entry). */
  home: string;
  /** The user name, when an entry matched. */
  name?: string | undefined;
}

/**
 * Reads a file of the rootfs without following anything out of it. Returns undefined when it
 * does not exist.
 * @throws ContainerError `InvalidArgument` when it is not a regular file or too large.
 */
export function readRootfsFile(rootfs: string, path: string, maxSize = MAX_FILE): Buffer | undefined {
  const rel = path.replace(/^\/+/, '');
  let rootFd: number;
  try {
    rootFd = call('openat', [AT.FDCWD, rootfs, O.RDONLY | O.DIRECTORY | O.CLOEXEC, 0], {
      op: `open rootfs ${rootfs}`,
    });
  } catch (e) {
    throw new ContainerError('InvalidArgument', `rootfs ${rootfs}: ${(e as Error).message}`, { cause: e });
  }
  let fd: number | undefined;
  try {
    const how = openHow(
      O.RDONLY | O.CLOEXEC | O.NONBLOCK | O.NOCTTY,
      RESOLVE.IN_ROOT | RESOLVE.NO_MAGICLINKS,
    );
    try {
      fd = call('openat2', [rootFd, rel, how, how.length], { op: `open ${path} in ${rootfs}` });
    } catch (e) {
      if (isSysError(e) && e.errno === Errno.ENOENT) return undefined;
      if (!(isSysError(e) && e.errno === Errno.ENOSYS)) throw e;
      fd = openNoSymlinks(rootFd, rel, path, rootfs);
      if (fd === undefined) return undefined;
    }
    const st = fstatSync(fd);
    if ((st.mode & S.IFMT) !== S.IFREG)
      throw new ContainerError('InvalidArgument', `${path} in the image is not a regular file`);
    if (st.size > maxSize)
      throw new ContainerError('InvalidArgument', `${path} in the image is larger than ${maxSize} bytes`);
    const buf = Buffer.alloc(Math.min(st.size + 1, maxSize + 1));
    let n = 0;
    for (;;) {
      const r = readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
      if (n === buf.length)
        throw new ContainerError('InvalidArgument', `${path} in the image grew while it was read`);
    }
    return buf.subarray(0, n);
  } catch (e) {
    if (e instanceof ContainerError) throw e;
    throw new ContainerError('InvalidArgument', `reading ${path} of the image: ${(e as Error).message}`, {
      cause: e,
    });
  } finally {
    if (fd !== undefined) closeFd(fd);
    closeFd(rootFd);
  }
}

/** Without openat2 (kernels before 5.6): walk component by component and refuse every symlink. */
function openNoSymlinks(rootFd: number, rel: string, path: string, rootfs: string): number | undefined {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new ContainerError('InvalidArgument', `${path}: ".." is not allowed`);
  let dir = rootFd;
  try {
    for (const [i, p] of parts.entries()) {
      const last = i === parts.length - 1;
      const flags = O.RDONLY | O.CLOEXEC | O.NOFOLLOW | (last ? O.NONBLOCK | O.NOCTTY : O.DIRECTORY);
      let fd: number;
      try {
        fd = call('openat', [dir, p, flags, 0], { op: `open ${path} in ${rootfs}` });
      } catch (e) {
        if (isSysError(e) && e.errno === Errno.ENOENT) return undefined;
        if (isSysError(e) && (e.errno === Errno.ELOOP || e.errno === Errno.ENOTDIR))
          throw new ContainerError(
            'InvalidArgument',
            `${path} in the image goes through a symlink (refused)`,
          );
        throw e;
      }
      if (dir !== rootFd) closeFd(dir);
      dir = fd;
    }
    const out = dir;
    dir = rootFd;
    return out;
  } finally {
    if (dir !== rootFd) closeFd(dir);
  }
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}
interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

function lines(text: string | undefined): string[][] {
  if (text === undefined) return [];
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => l.split(':'));
}

function num(s: string | undefined): number | undefined {
  return s !== undefined && /^\d+$/.test(s) && Number(s) <= MAX_ID ? Number(s) : undefined;
}

/** Parses `/etc/passwd` lines (bad lines are skipped, as libc does). */
export function parsePasswd(text: string | undefined): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const f of lines(text)) {
    const uid = num(f[2]);
    const gid = num(f[3]);
    if (!f[0] || uid === undefined || gid === undefined) continue;
    out.push({ name: f[0], uid, gid, home: f[5] ?? '' });
  }
  return out;
}

/** Parses `/etc/group` lines. */
export function parseGroup(text: string | undefined): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const f of lines(text)) {
    const gid = num(f[2]);
    if (!f[0] || gid === undefined) continue;
    out.push({ name: f[0], gid, members: (f[3] ?? '').split(',').filter((m) => m !== '') });
  }
  return out;
}

/**
 * Resolves a user spec (`""` is root) against passwd and group contents.
 * @throws ContainerError `InvalidArgument`: `unable to find user app: no matching entries in /etc/passwd of the image`.
 */
export function resolveUserSpec(
  spec: string,
  passwd: string | undefined,
  group: string | undefined,
): ExecUser {
  const colon = spec.indexOf(':');
  const userArg = colon < 0 ? spec : spec.slice(0, colon);
  const groupArg = colon < 0 ? '' : spec.slice(colon + 1);
  const bad = (msg: string) => new ContainerError('InvalidArgument', `user "${spec}": ${msg}`);
  const uidArg = /^\d+$/.test(userArg) ? Number(userArg) : undefined;
  const gidArg = /^\d+$/.test(groupArg) ? Number(groupArg) : undefined;
  const user: ExecUser = { uid: 0, gid: 0, additionalGids: [], home: '/' };

  const users = parsePasswd(passwd);
  const match = users.find((u) =>
    userArg === '' ? u.uid === 0 : uidArg !== undefined ? u.uid === uidArg : u.name === userArg,
  );
  if (match) {
    user.uid = match.uid;
    user.gid = match.gid;
    user.home = match.home || '/';
    user.name = match.name;
  } else if (userArg !== '') {
    if (uidArg === undefined)
      throw bad(
        passwd === undefined
          ? `no user "${userArg}": the image has no /etc/passwd (give a numeric uid)`
          : `no user "${userArg}" in the image's /etc/passwd`,
      );
    if (uidArg > MAX_ID) throw bad(`uid ${uidArg} is out of range`);
    user.uid = uidArg;
  }

  if (groupArg !== '' || user.name !== undefined) {
    const groups = parseGroup(group);
    if (groupArg !== '') {
      const g = groups.find((x) => (gidArg !== undefined ? x.gid === gidArg : x.name === groupArg));
      if (g) user.gid = g.gid;
      else if (gidArg === undefined)
        throw bad(
          group === undefined
            ? `no group "${groupArg}": the image has no /etc/group (give a numeric gid)`
            : `no group "${groupArg}" in the image's /etc/group`,
        );
      else if (gidArg > MAX_ID) throw bad(`gid ${gidArg} is out of range`);
      else user.gid = gidArg;
    } else {
      const gids = groups.filter((g) => g.members.includes(user.name as string)).map((g) => g.gid);
      user.additionalGids = [...new Set(gids)];
    }
  }
  return user;
}

/** Resolves a user spec through the rootfs's `/etc/passwd` and `/etc/group`, read safely. */
export function resolveImageUser(rootfs: string, spec: string): ExecUser {
  const numeric = /^\d+(:\d+)?$/.test(spec);
  // Numeric ids need no files, but the files give the home and (uid only) the groups when present.
  const passwd = readRootfsFile(rootfs, '/etc/passwd')?.toString('utf8');
  const group =
    numeric && spec.includes(':') ? undefined : readRootfsFile(rootfs, '/etc/group')?.toString('utf8');
  return resolveUserSpec(spec, passwd, group);
}
