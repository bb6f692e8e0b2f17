import {
  closeSync,
  constants as fsc,
  fstatSync,
  openSync,
  readlinkSync,
  statfsSync,
  statSync,
} from 'node:fs';
import { call } from '@tsc/syscall';
import { NamespaceError, type NamespaceErrorCode } from './errors.js';
import {
  isNamespaceType,
  kindOfFile,
  kindOfFlag,
  NAMESPACE_TYPES,
  type NamespaceKind,
  type NamespaceType,
  NS_FILES,
} from './kinds.js';

/** `statfs(2)` f_type of the namespace filesystem (linux/magic.h NSFS_MAGIC). */
export const NSFS_MAGIC = 0x6e736673;

/** `ioctl(fd, NS_GET_NSTYPE)`: the `CLONE_NEW*` flag of a namespace fd (linux/nsfs.h, `_IO(0xb7, 0x3)`). */
export const NS_GET_NSTYPE = 0xb703;

/** One namespace of a process, as `/proc/<pid>/ns/<file>` shows it. */
export interface NamespaceId {
  /** The namespace's inode number on nsfs (the number in `net:[4026531840]`). */
  inode: number;
  /** The nsfs device number; with `inode` it identifies the namespace. Absent when stat(2) failed. */
  dev?: number;
  /** The link text, e.g. `net:[4026531840]`. */
  link: string;
}

/** What a namespace file (a `/proc/<pid>/ns/*` link or a bind mount of one) refers to. */
export interface NamespaceInfo {
  type: NamespaceType;
  inode: number;
  dev: number;
}

/** A process: a pid, or `'self'` for this process. */
export type Pid = number | 'self';

const LINK_RE = /^([a-z_]+):\[(\d+)\]$/;

/** Parse a namespace link text (`net:[4026531840]`) into its kind and inode, or undefined. */
export function parseNamespaceLink(link: string): { type: NamespaceType; inode: number } | undefined {
  const m = LINK_RE.exec(link);
  const kind = m ? kindOfFile(m[1] as string) : undefined;
  // time_for_children and pid_for_children share the prefix of their kind.
  if (!m || !kind) return undefined;
  return { type: kind.type, inode: Number(m[2]) };
}

function prefix(field: string | undefined): string {
  return field ? `${field}: ` : '';
}

function article(type: string): string {
  return /^[aeio]/.test(type) ? 'an' : 'a';
}

function checkPid(pid: Pid): string {
  if (pid === 'self') return 'self';
  if (!Number.isSafeInteger(pid) || pid <= 0) {
    throw new NamespaceError('InvalidArgument', `invalid pid ${String(pid)}: must be a positive integer`);
  }
  return String(pid);
}

function checkType(type: string, field?: string): NamespaceKind {
  if (!isNamespaceType(type)) {
    throw new NamespaceError(
      'InvalidArgument',
      `${prefix(field)}unknown namespace type "${type}" (expected one of ${NAMESPACE_TYPES.join(', ')})`,
      field === undefined ? {} : { field },
    );
  }
  return NS_FILES[type];
}

function errnoCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/** A Node fs error on `path` as a NamespaceError. */
function fsError(e: unknown, path: string, what: string, field?: string): NamespaceError {
  const errno = errnoCode(e);
  const code: NamespaceErrorCode =
    errno === 'ENOENT' || errno === 'ESRCH'
      ? 'NotFound'
      : errno === 'EACCES' || errno === 'EPERM'
        ? 'PermissionDenied'
        : 'System';
  const why =
    code === 'NotFound'
      ? 'does not exist'
      : code === 'PermissionDenied'
        ? `${what}: permission denied (${errno})`
        : `${what}: ${errno ?? (e instanceof Error ? e.message : String(e))}`;
  const details: { path: string; cause: unknown; field?: string } = { path, cause: e };
  if (field !== undefined) details.field = field;
  return new NamespaceError(code, `${prefix(field)}${path} ${why}`, details);
}

/** The namespace a process is in, for one kind. */
function readNs(pid: string, kind: NamespaceKind): NamespaceId {
  const path = `/proc/${pid}/ns/${kind.file}`;
  let link: string;
  try {
    link = readlinkSync(path);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' && pid !== 'self') {
      let procExists = true;
      try {
        statSync(`/proc/${pid}`);
      } catch {
        procExists = false;
      }
      if (!procExists) {
        throw new NamespaceError('NotFound', `process ${pid} does not exist`, { path, cause: e });
      }
    }
    if (errnoCode(e) === 'ENOENT') {
      throw new NamespaceError(
        'NotFound',
        `${path} does not exist (a kernel without ${kind.type} namespaces?)`,
        {
          path,
          cause: e,
        },
      );
    }
    throw fsError(e, path, 'readlink');
  }
  const parsed = parseNamespaceLink(link);
  if (!parsed || parsed.type !== kind.type) {
    throw new NamespaceError('System', `${path}: unexpected link "${link}"`, { path });
  }
  const id: NamespaceId = { inode: parsed.inode, link };
  try {
    const st = statSync(path);
    id.dev = st.dev;
  } catch {
    // The process may have exited between readlink and stat; the inode is enough to compare.
  }
  return id;
}

/**
 * The namespaces of process `pid` (`'self'`: this process): for each kind, the link text of
 * `/proc/<pid>/ns/<file>` (`net:[4026531840]`), its inode, and the nsfs device (from stat).
 * `types` limits the kinds read (default all eight; a kernel built without one of them reports
 * it as `NotFound`). A missing process is `NotFound`; another user's process without
 * ptrace access is `PermissionDenied`.
 */
export function namespacesOf(pid: Pid): Record<NamespaceType, NamespaceId>;
export function namespacesOf<T extends NamespaceType>(pid: Pid, types: readonly T[]): Record<T, NamespaceId>;
export function namespacesOf(
  pid: Pid,
  types: readonly NamespaceType[] = NAMESPACE_TYPES,
): Partial<Record<NamespaceType, NamespaceId>> {
  const p = checkPid(pid);
  const out: Partial<Record<NamespaceType, NamespaceId>> = {};
  for (const t of types) out[t] = readNs(p, checkType(t));
  return out;
}

/** stat(2) of `/proc/<pid>/ns/<file>`: the dev and inode that identify the namespace. */
function nsStat(pid: string, kind: NamespaceKind): { dev: number; ino: number } {
  const path = `/proc/${pid}/ns/${kind.file}`;
  try {
    const st = statSync(path);
    return { dev: st.dev, ino: st.ino };
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') {
      throw new NamespaceError(
        'NotFound',
        `process ${pid} does not exist (or has no ${kind.file} namespace)`,
        {
          path,
          cause: e,
        },
      );
    }
    throw fsError(e, path, 'stat');
  }
}

/** Whether processes `a` and `b` are in the same namespace of kind `type` (same nsfs dev and inode). */
export function sameNamespace(a: Pid, b: Pid, type: NamespaceType): boolean {
  const kind = checkType(type);
  const x = nsStat(checkPid(a), kind);
  const y = nsStat(checkPid(b), kind);
  return x.dev === y.dev && x.ino === y.ino;
}

/**
 * The kind of an open namespace fd: `NS_GET_NSTYPE` (Linux 4.11), or, when the ioctl is not
 * available, the fd's /proc/self/fd link (`net:[…]`; a bind mount shows its path there instead).
 */
function typeOfFd(fd: number): { type?: NamespaceType; why?: string } {
  let why = '';
  try {
    const flag = call('ioctl', [fd, NS_GET_NSTYPE, null], { op: 'ioctl NS_GET_NSTYPE' });
    const kind = kindOfFlag(flag);
    if (kind) return { type: kind.type };
    why = `NS_GET_NSTYPE returned ${flag}`;
  } catch (e) {
    // ENOTTY before Linux 4.11, or no FFI: fall back to the fd's link.
    why = e instanceof Error ? e.message : String(e);
  }
  try {
    const type = parseNamespaceLink(readlinkSync(`/proc/self/fd/${fd}`))?.type;
    if (type) return { type };
  } catch {
    // no /proc
  }
  return { why };
}

function inspectPath(path: string, field: string | undefined): NamespaceInfo {
  let magic: number;
  try {
    magic = Number(statfsSync(path).type);
  } catch (e) {
    throw fsError(e, path, 'statfs', field);
  }
  const details = (extra: { actual?: NamespaceType } = {}) => {
    const d: { path: string; field?: string; actual?: NamespaceType } = { path, ...extra };
    if (field !== undefined) d.field = field;
    return d;
  };
  if (magic !== NSFS_MAGIC) {
    throw new NamespaceError(
      'NotNamespace',
      `${prefix(field)}${path} is not a namespace file (its filesystem is not nsfs)`,
      details(),
    );
  }
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_NOCTTY | 0o2000000 /* O_CLOEXEC */);
  } catch (e) {
    throw fsError(e, path, 'open', field);
  }
  try {
    const st = fstatSync(fd);
    const { type, why } = typeOfFd(fd);
    if (!type) {
      throw new NamespaceError(
        'NotNamespace',
        `${prefix(field)}${path} is on nsfs but its namespace kind could not be found (${why})`,
        details(),
      );
    }
    return { type, inode: st.ino, dev: st.dev };
  } finally {
    closeSync(fd);
  }
}

/**
 * What a namespace file refers to: `/proc/<pid>/ns/net`, or a bind mount of one
 * (`/run/netns/x`). The file must be on nsfs (statfs magic {@link NSFS_MAGIC}); its kind
 * comes from the `NS_GET_NSTYPE` ioctl. A missing path is `NotFound`, any other file
 * `NotNamespace`.
 */
export function namespaceOfPath(path: string): NamespaceInfo {
  return inspectPath(path, undefined);
}

/**
 * Check that `path` is a namespace file of kind `expected`; returns what it refers to.
 * Throws a {@link NamespaceError} whose message starts with `field` when given:
 * `linux.namespaces[2].path: /run/netns/x is a uts namespace, not network` (`WrongType`),
 * `… is not a namespace file (its filesystem is not nsfs)` (`NotNamespace`),
 * `… does not exist` (`NotFound`).
 */
export function checkNamespacePath(path: string, expected: NamespaceType, field?: string): NamespaceInfo {
  checkType(expected, field);
  const info = inspectPath(path, field);
  if (info.type !== expected) {
    const d: { path: string; expected: NamespaceType; actual: NamespaceType; field?: string } = {
      path,
      expected,
      actual: info.type,
    };
    if (field !== undefined) d.field = field;
    throw new NamespaceError(
      'WrongType',
      `${prefix(field)}${path} is ${article(info.type)} ${info.type} namespace, not ${expected}`,
      d,
    );
  }
  return info;
}
