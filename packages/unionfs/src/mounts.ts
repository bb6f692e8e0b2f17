/**
 * Mounting: overlay through the new mount API (one `lowerdir+` per layer, no option-string limit),
 * overlay through classic mount(2) for kernels without `lowerdir+` (before 6.8), aufs, bind mounts,
 * and the btrfs subvolume ioctls.
 */
import { mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { AT, call, closeFd, flock, MS } from '@tsc/syscall';
import { UnionfsError } from './errors.js';
import { errCode, O, openat } from './sys.js';

const FSOPEN_CLOEXEC = 1;
const FSCONFIG = { SET_FLAG: 0, SET_STRING: 1, CMD_CREATE: 6 } as const;
const FSMOUNT_CLOEXEC = 1;
const MOUNT_ATTR_RDONLY = 1;
const MOVE_MOUNT_F_EMPTY_PATH = 4;
const MNT_DETACH = 2;
/** Overlay's limit on stacked lower layers (OVL_MAX_STACK). */
export const OVERLAY_MAX_LAYERS = 500;

export interface OverlayMount {
  /** Lower layer directories, topmost first. */
  lowers: readonly string[];
  upper: string;
  work: string;
  target: string;
  readonly?: boolean;
  /** `volatile`: no syncs to the upper layer; after a crash the upper layer must be thrown away. */
  volatile?: boolean;
  /** `userxattr`: overlay's own attributes are `user.overlay.*` (mounts inside a user namespace). */
  userxattr?: boolean;
  /** Which interface: the new mount API, classic mount(2), or the first that works (default). */
  api?: 'auto' | 'fsconfig' | 'classic';
}

/**
 * The overlay options we set, and why (see docs/UNIONFS.md):
 * - `index=off`: no inode index; layers are shared by many mounts and a stale index makes later
 *   mounts fail (ESTALE) or ties the upper layer to the lower layers' filesystem UUID;
 * - `redirect_dir=off`: renaming a lower directory copies it (EXDEV to the program, which copies),
 *   so the upper layer stays self-describing for `diff`/`exportDiff` and portable as a tar layer;
 * - `metacopy=off`: a metadata-only copy-up leaves the data in the lower layer and follows
 *   `trusted.overlay.redirect`/`metacopy` xattrs; with lower layers from untrusted images this is
 *   the documented unsafe case, and an exported diff would miss the data.
 */
const FIXED_OPTIONS: readonly [string, string][] = [
  ['index', 'off'],
  ['redirect_dir', 'off'],
  ['metacopy', 'off'],
];

function fsErrorLog(fsfd: number): string {
  const buf = Buffer.alloc(1024);
  const lines: string[] = [];
  for (let i = 0; i < 8; i++) {
    try {
      const n = call('read', [fsfd, buf, buf.length]);
      if (n <= 0) break;
      lines.push(buf.toString('utf8', 0, n).replace(/\n$/, ''));
    } catch {
      break;
    }
  }
  return lines.length ? ` (${lines.join('; ')})` : '';
}

/** Cached answer of {@link hasLowerdirPlus}. */
let lowerdirPlus: boolean | undefined;

function mountOverlayFsconfig(m: OverlayMount): void {
  const fsfd = call('fsopen', ['overlay', FSOPEN_CLOEXEC], { op: 'fsopen overlay' });
  const set = (key: string, value: string | null, flag = false) => {
    try {
      call('fsconfig', [fsfd, flag ? FSCONFIG.SET_FLAG : FSCONFIG.SET_STRING, key, value, 0], {
        op: `overlay option ${key}${value === null ? '' : `=${value}`}`,
      });
    } catch (e) {
      if (key === 'lowerdir+' && errCode(e) === 'EINVAL' && !hasLowerdirPlus())
        throw new UnionfsError('Unsupported', 'overlay: this kernel has no "lowerdir+" option (Linux 6.8+)', {
          cause: e,
        });
      throw new UnionfsError(
        'System',
        `mount overlay on ${m.target}: ${(e as Error).message}${fsErrorLog(fsfd)}`,
        {
          cause: e,
        },
      );
    }
  };
  try {
    for (const l of m.lowers) set('lowerdir+', l);
    set('upperdir', m.upper);
    set('workdir', m.work);
    for (const [k, v] of FIXED_OPTIONS) set(k, v);
    if (m.userxattr) set('userxattr', null, true);
    if (m.volatile) set('volatile', null, true);
    try {
      call('fsconfig', [fsfd, FSCONFIG.CMD_CREATE, null, null, 0], { op: 'create overlay' });
    } catch (e) {
      throw new UnionfsError(
        'System',
        `mount overlay on ${m.target}: ${(e as Error).message}${fsErrorLog(fsfd)}`,
        {
          cause: e,
        },
      );
    }
    const mfd = call('fsmount', [fsfd, FSMOUNT_CLOEXEC, m.readonly ? MOUNT_ATTR_RDONLY : 0], {
      op: `fsmount overlay for ${m.target}`,
    });
    try {
      call('move_mount', [mfd, '', AT.FDCWD, m.target, MOVE_MOUNT_F_EMPTY_PATH], {
        op: `move overlay mount to ${m.target}`,
      });
    } finally {
      closeFd(mfd);
    }
  } finally {
    closeFd(fsfd);
  }
}

/**
 * mount(2) with one option string (at most a page): the lower layers are named through short
 * symlinks `0`, `1`, … in a scratch directory that is the working directory during the call
 * (overlay resolves them at mount time; the directory is deleted afterwards). 500 layers fit in
 * about 1.9 KB this way, where absolute paths would stop near 30.
 */
function mountOverlayClassic(m: OverlayMount, scratch: string): void {
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true, mode: 0o700 });
  // flock'd while in use: a store's tmp/ cleaner deletes only directories it can lock
  const lockFd = openat(AT.FDCWD, scratch, O.RDONLY | O.DIRECTORY);
  flock(lockFd, 'exclusive', false);
  const cwd = process.cwd();
  try {
    for (const [i, l] of m.lowers.entries()) symlinkSync(l, join(scratch, i.toString(36)));
    const opts = [
      `lowerdir=${m.lowers.map((_, i) => i.toString(36)).join(':')}`,
      `upperdir=${m.upper}`,
      `workdir=${m.work}`,
      ...FIXED_OPTIONS.map(([k, v]) => `${k}=${v}`),
      ...(m.userxattr ? ['userxattr'] : []),
      ...(m.volatile ? ['volatile'] : []),
    ].join(',');
    if (opts.length >= 4096)
      throw new UnionfsError(
        'Unsupported',
        `mount overlay on ${m.target}: ${m.lowers.length} layers need a ${opts.length}-byte option string; mount(2) takes 4095 (Linux 6.8+ has no such limit)`,
      );
    process.chdir(scratch);
    try {
      call('mount', ['overlay', m.target, 'overlay', m.readonly ? MS.RDONLY : 0, opts], {
        op: `mount overlay on ${m.target}`,
      });
    } finally {
      process.chdir(cwd);
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
    closeFd(lockFd);
  }
}

/** Mounts an overlay. `scratch` is a directory path the classic fallback may use and delete. */
export function mountOverlay(m: OverlayMount, scratch: string): 'fsconfig' | 'classic' {
  if (m.lowers.length === 0) throw new UnionfsError('Unsupported', 'overlay needs at least one lower layer');
  if (m.lowers.length > OVERLAY_MAX_LAYERS)
    throw new UnionfsError(
      'Unsupported',
      `overlay stacks at most ${OVERLAY_MAX_LAYERS} lower layers; this mount needs ${m.lowers.length} (the image's, plus an init layer if asked for)`,
    );
  const api = m.api ?? 'auto';
  if (api === 'classic' || (api === 'auto' && !hasLowerdirPlus())) {
    mountOverlayClassic(m, scratch);
    return 'classic';
  }
  mountOverlayFsconfig(m);
  return 'fsconfig';
}

/**
 * Whether the running kernel's overlay takes `lowerdir+` (Linux 6.8+). Probed once: before 6.5
 * overlay had no fs_context parser of its own, and the generic ("legacy") one accepts any key
 * and only fails at `FSCONFIG_CMD_CREATE`; so a key that no parser knows is tried first — if it
 * is accepted, the parser is the legacy one and `lowerdir+` is not really understood.
 */
export function hasLowerdirPlus(): boolean {
  if (lowerdirPlus !== undefined) return lowerdirPlus;
  const accepts = (key: string, value: string): boolean | undefined => {
    let fsfd: number;
    try {
      fsfd = call('fsopen', ['overlay', FSOPEN_CLOEXEC]);
    } catch {
      return undefined;
    }
    try {
      call('fsconfig', [fsfd, FSCONFIG.SET_STRING, key, value, 0]);
      return true;
    } catch {
      return false;
    } finally {
      closeFd(fsfd);
    }
  };
  const legacy = accepts('tsc-probe-no-such-option', 'x');
  lowerdirPlus = legacy === false && accepts('lowerdir+', '/') === true;
  return lowerdirPlus;
}

/**
 * aufs: `br:UPPER=rw:L1=ro+wh:…`; branches beyond what one option page holds are appended with
 * `remount,append:DIR=ro+wh`, as Docker's aufs driver did.
 */
export function mountAufs(m: {
  lowers: readonly string[];
  upper: string;
  target: string;
  readonly?: boolean;
}): void {
  let data = `br:${m.upper}=rw`;
  let i = 0;
  for (; i < m.lowers.length; i++) {
    const add = `:${m.lowers[i]}=ro+wh`;
    if (data.length + add.length + 32 >= 4096) break;
    data += add;
  }
  call('mount', ['none', m.target, 'aufs', 0, `${data},dio,xino=/dev/shm/aufs.xino`], {
    op: `mount aufs on ${m.target}`,
  });
  for (; i < m.lowers.length; i++)
    call('mount', ['none', m.target, 'aufs', MS.REMOUNT, `append:${m.lowers[i]}=ro+wh`], {
      op: `append aufs branch ${m.lowers[i]}`,
    });
  if (m.readonly)
    call('mount', ['none', m.target, null, MS.REMOUNT | MS.RDONLY, null], { op: `remount ${m.target} ro` });
}

/** A read-only (or plain) bind mount of `dir` onto itself, so it is a mount point like the others. */
export function bindSelf(dir: string, readonly: boolean): void {
  call('mount', [dir, dir, null, MS.BIND, null], { op: `bind mount ${dir}` });
  if (readonly)
    call('mount', ['none', dir, null, MS.BIND | MS.REMOUNT | MS.RDONLY, null], {
      op: `remount ${dir} read-only`,
    });
}

/** Detaches the mount at `target` (lazily: open files keep it alive). False when nothing was mounted. */
export function unmount(target: string): boolean {
  try {
    call('umount2', [target, MNT_DETACH], { op: `unmount ${target}` });
    return true;
  } catch (e) {
    const c = errCode(e);
    if (c === 'EINVAL' || c === 'ENOENT') return false;
    throw e;
  }
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** Mount points (as `/proc/self/mountinfo` lists them) at or below `prefix`. */
export function mountsUnder(prefix: string): string[] {
  const out: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (mp === undefined) continue;
    const p = unescapeMount(mp);
    if (p === prefix || p.startsWith(`${prefix}/`)) out.push(p);
  }
  return out;
}

export function isMountPoint(path: string): boolean {
  return mountsUnder(path).includes(path);
}

// ------------------------------------------------------------------------------------ btrfs

const BTRFS_SUPER_MAGIC = 0x9123683e;
const BTRFS_IOCTL_MAGIC = 0x94;
const VOL_ARGS_SIZE = 4096;
const iow = (nr: number, size: number) => (1 << 30) | (size << 16) | (BTRFS_IOCTL_MAGIC << 8) | nr;
const BTRFS_IOC_SNAP_CREATE = iow(1, VOL_ARGS_SIZE);
const BTRFS_IOC_SUBVOL_CREATE = iow(14, VOL_ARGS_SIZE);
const BTRFS_IOC_SNAP_DESTROY = iow(15, VOL_ARGS_SIZE);

export function isBtrfs(statfsType: number): boolean {
  return statfsType === BTRFS_SUPER_MAGIC;
}

function volArgs(fd: number, name: string): Buffer {
  const b = Buffer.alloc(VOL_ARGS_SIZE);
  b.writeBigInt64LE(BigInt(fd), 0);
  if (Buffer.byteLength(name) >= VOL_ARGS_SIZE - 8)
    throw new UnionfsError('System', `btrfs: name too long: ${name}`);
  b.write(name, 8, 'utf8');
  return b;
}

function splitPath(path: string): [string, string] {
  const i = path.lastIndexOf('/');
  return [path.slice(0, i) || '/', path.slice(i + 1)];
}

function withDir<T>(dir: string, fn: (fd: number) => T): T {
  const fd = openat(AT.FDCWD, dir, O.RDONLY | O.DIRECTORY);
  try {
    return fn(fd);
  } finally {
    closeFd(fd);
  }
}

/** Creates an empty subvolume at `path` (BTRFS_IOC_SUBVOL_CREATE). */
export function btrfsSubvolCreate(path: string): void {
  const [parent, name] = splitPath(path);
  withDir(parent, (pfd) =>
    call('ioctl', [pfd, BTRFS_IOC_SUBVOL_CREATE, volArgs(0, name)], { op: `btrfs subvolume create ${path}` }),
  );
}

/** Snapshots the subvolume `src` as `dst` (writable; BTRFS_IOC_SNAP_CREATE). */
export function btrfsSnapshot(src: string, dst: string): void {
  const [parent, name] = splitPath(dst);
  withDir(src, (sfd) =>
    withDir(parent, (pfd) =>
      call('ioctl', [pfd, BTRFS_IOC_SNAP_CREATE, volArgs(sfd, name)], {
        op: `btrfs snapshot ${src} as ${dst}`,
      }),
    ),
  );
}

/** Deletes the subvolume at `path` (BTRFS_IOC_SNAP_DESTROY); false when it is not one. */
export function btrfsSubvolDelete(path: string): boolean {
  const [parent, name] = splitPath(path);
  try {
    withDir(parent, (pfd) =>
      call('ioctl', [pfd, BTRFS_IOC_SNAP_DESTROY, volArgs(0, name)], {
        op: `btrfs subvolume delete ${path}`,
      }),
    );
    return true;
  } catch (e) {
    const c = errCode(e);
    if (c === 'ENOENT' || c === 'EINVAL' || c === 'ENOTTY' || c === 'EPERM') return false;
    throw e;
  }
}
