import { existsSync, statSync } from 'node:fs';
import { isAbsolute, join, posix } from 'node:path';
import { type Label, Program, type Reg } from '@tsc/executor';
import { joinRank, namespaceKind } from '@tsc/namespaces';
import {
  AT,
  CAPABILITIES,
  type CapabilityName,
  CLONE,
  CLOSE_RANGE,
  Errno,
  MS,
  O,
  PR,
  RESOLVE,
  RLIMITS,
  S,
} from '@tsc/syscall';
import { ContainerError } from '../errors.js';
import type { LinuxDevice, Mount, Process, RuntimeConfig } from '../spec/index.js';
import { InRoot, openHow, TARGET_FD, TARGET_PATH } from './inroot.js';
import { parseMountOptions, rootfsPropagationFlags } from './mountopts.js';
import { planConsole } from './terminal.js';

/** Sync ids the init program stops at. */
export const SYNC = {
  /** Mounts and /dev are done, pivot_root is next: run prestart, createRuntime, createContainer hooks. */
  MOUNTS: 1,
  /** Everything is done but the exec: record state; answer to let it exec (run) or go to the fifo (create). */
  READY: 2,
  /** In a new user namespace: write uid_map and gid_map of the init, then answer. */
  USERMAP: 3,
  /** The executor unshared a time namespace: write its timens_offsets, then answer. */
  TIMENS: 4,
} as const;

/** A v1 hierarchy to bind into a container's /sys/fs/cgroup. */
export interface CgroupBind {
  /** Directory name under /sys/fs/cgroup (`cpu,cpuacct`, `memory`). */
  name: string;
  /** Host directory of the container's cgroup in that hierarchy. */
  source: string;
  /** Extra names that link to it (`cpu`, `cpuacct`). */
  links: string[];
}

/** What the planner needs besides the config. */
export interface InitContext {
  config: RuntimeConfig;
  /** Absolute host path of the rootfs. */
  rootfs: string;
  /** Absolute bundle dir (relative bind sources resolve against it). */
  bundle: string;
  noPivot: boolean;
  /** Number of fds passed on at 3.. (`--preserve-fds`). */
  preserveFds: number;
  /** The executor's fd of the exec fifo (create), or undefined (run: the READY reply is the gate). */
  fifoFd: number | undefined;
  /** The executor's fd of its sync socket (always the highest fd it keeps). */
  syncFd: number;
  /** cgroup mounts: v1 binds, or cgroup2. */
  cgroup: { version: 1; binds: CgroupBind[] } | { version: 2 } | { version: 'none' };
  /** /proc/sys/kernel/cap_last_cap. */
  capLastCap: number;
  /** Whether setgroups(2) is allowed (false in a user namespace with setgroups "deny"). Default true. */
  setgroups?: boolean;
  /** The compiled linux.seccomp filter, if any. */
  seccomp?: CompiledFilter | undefined;
  /** Started by an ordinary user (rootless). */
  rootless?: boolean;
  /** The executor's fd of the console socket: with process.terminal, the pty master goes there. */
  consoleFd?: number | undefined;
}

const DEFAULT_DEVICES: { path: string; major: number; minor: number }[] = [
  { path: '/dev/null', major: 1, minor: 3 },
  { path: '/dev/zero', major: 1, minor: 5 },
  { path: '/dev/full', major: 1, minor: 7 },
  { path: '/dev/random', major: 1, minor: 8 },
  { path: '/dev/urandom', major: 1, minor: 9 },
  { path: '/dev/tty', major: 5, minor: 0 },
];

/** Linux makedev(). */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffn) << 8n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n) | ((ma & ~0xfffn) << 32n);
}

/** Capability names → 64-bit mask; unknown names are an error naming the field. */
export function capMask(names: readonly string[] | undefined, field: string): bigint {
  let m = 0n;
  for (const n of names ?? []) {
    const bit = CAPABILITIES.indexOf(n as CapabilityName);
    if (bit < 0) throw new ContainerError('InvalidConfig', `${field}: unknown capability "${n}"`);
    m |= 1n << BigInt(bit);
  }
  return m;
}

/** Namespace clone flags to create, and paths to join, from the config. */
export function namespacePlan(config: RuntimeConfig): {
  create: number;
  join: { type: string; path: string }[];
} {
  let create = 0;
  const join: { type: string; path: string }[] = [];
  for (const ns of config.linux?.namespaces ?? []) {
    const flag = namespaceKind(ns.type)?.flag;
    if (flag === undefined)
      throw new ContainerError('InvalidConfig', `linux.namespaces: unknown type "${ns.type}"`);
    if (ns.path) join.push({ type: ns.type, path: ns.path });
    else create |= flag;
  }
  return { create, join };
}

/** PATH candidates for args[0], like execvp. */
export function execCandidates(arg0: string, env: readonly string[]): string[] {
  if (arg0.includes('/')) return [arg0];
  const pathVar =
    env.findLast((e) => e.startsWith('PATH='))?.slice(5) ??
    '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  const dirs = pathVar.split(':').map((d) => d || '.');
  return dirs.map((d) => posix.join(d, arg0));
}

function isUnder(path: string, dir: string): boolean {
  const a = posix.normalize(path);
  const b = posix.normalize(dir).replace(/\/$/, '');
  return a !== b && a.startsWith(`${b}/`);
}

/** The syscall program the container's init runs, from `clone3` to `execve`. */
export function planInit(ctx: InitContext): Program {
  const { config } = ctx;
  const proc = config.process;
  if (!proc) throw new ContainerError('InvalidConfig', 'process: required to start a container');
  checkConsole(proc, ctx.consoleFd);
  const ns = namespacePlan(config);
  if (!(ns.create & CLONE.NEWNS) && !ns.join.some((j) => j.type === 'mount')) {
    throw new ContainerError('InvalidConfig', 'linux.namespaces: a mount namespace is required');
  }
  const newUser = (ns.create & CLONE.NEWUSER) !== 0;
  const inUserns = newUser || ns.join.some((j) => j.type === 'user');
  // The message names the field at fault: uidMappings, or gidMappings when only that one is.
  const uidMaps = config.linux?.uidMappings?.length ?? 0;
  const gidMaps = config.linux?.gidMappings?.length ?? 0;
  if (newUser && !(uidMaps && gidMaps)) {
    throw new ContainerError(
      'InvalidConfig',
      `linux.${uidMaps ? 'gid' : 'uid'}Mappings: a new user namespace needs uidMappings and gidMappings`,
    );
  }
  if (!newUser && (uidMaps || gidMaps)) {
    throw new ContainerError(
      'InvalidConfig',
      `linux.${uidMaps ? 'uid' : 'gid'}Mappings: mappings are given but no new user namespace is`,
    );
  }
  checkSysctls(config);
  const newTime = (ns.create & CLONE.NEWTIME) !== 0;
  if (config.linux?.timeOffsets && !newTime) {
    throw new ContainerError('InvalidConfig', 'linux.timeOffsets: needs a new time namespace');
  }
  const p = new Program();

  // --- In the executor, before clone -------------------------------------
  // Close every fd we were not told to keep (stray fds inherited from our own
  // environment must not reach the container; CVE-2024-21626).
  p.syscall('close_range', [ctx.syncFd + 1, 0xffffffff, 0], { what: 'close inherited fds' });
  p.syscall('prctl', [PR.SET_DUMPABLE, 0, 0, 0, 0], { what: 'make the executor non-dumpable' });
  if (ns.join.length) {
    const fds: Reg[] = ns.join.map((j) => {
      const r = p.reg();
      p.syscall('openat', [AT.FDCWD, j.path, O.RDONLY | O.CLOEXEC, 0], {
        what: `open ${j.type} namespace ${j.path}`,
        out: r,
      });
      return r;
    });
    // user first (the others may be owned by it), mount last (it changes how paths resolve).
    const order = ns.join
      .map((j, i) => ({ j, r: fds[i] as Reg }))
      .sort((x, y) => joinRank(x.j.type) - joinRank(y.j.type));
    for (const { j, r } of order) {
      p.syscall('setns', [r, namespaceKind(j.type)?.flag ?? 0], {
        what: `join ${j.type} namespace ${j.path}`,
      });
      p.syscall('close', [r], { what: 'close namespace fd', onError: 'ignore' });
    }
  }
  if (newTime) {
    // Offsets can only be set before a process lives in the namespace: the
    // executor unshares it for its children, the parent writes the offsets,
    // and the clone below is born in it.
    p.syscall('unshare', [CLONE.NEWTIME], { what: 'create the time namespace' });
    p.sync(SYNC.TIMENS, { what: 'write timens_offsets' });
  }
  const cloneFlags = BigInt(ns.create & ~CLONE.NEWTIME);
  p.clone(BigInt(CLONE.PARENT) | cloneFlags, 'report', {
    what: 'create the container process (clone3)',
  });

  // --- In the container init ----------------------------------------------
  if (newUser) {
    // The parent writes our uid_map/gid_map; /proc/<pid> must be ours for that when it is not root.
    p.syscall('prctl', [PR.SET_DUMPABLE, 1, 0, 0, 0], { what: 'make the init dumpable for its id maps' });
    p.sync(SYNC.USERMAP, { what: 'write uid_map and gid_map' });
    p.syscall('prctl', [PR.SET_DUMPABLE, 0, 0, 0, 0], { what: 'make the init non-dumpable' });
    p.syscall('setresgid', [0, 0, 0], { what: 'become gid 0 in the user namespace (is 0 mapped?)' });
    p.syscall('setresuid', [0, 0, 0], { what: 'become uid 0 in the user namespace (is 0 mapped?)' });
  }
  p.syscall('setsid', [], { what: 'setsid' });
  if (ns.create & CLONE.NEWNET) loopbackUp(p);

  const rootReg = p.reg();
  const propagation = rootfsPropagationFlags(config.linux?.rootfsPropagation);
  p.syscall('mount', [null, '/', null, MS.REC | MS.SLAVE, null], { what: 'make / rslave' });
  p.syscall('mount', [ctx.rootfs, ctx.rootfs, null, MS.BIND | MS.REC, null], {
    what: `bind mount rootfs ${ctx.rootfs}`,
  });
  p.syscall('openat', [AT.FDCWD, ctx.rootfs, O.PATH | O.DIRECTORY | O.CLOEXEC, 0], {
    what: 'open rootfs',
    out: rootReg,
  });
  const inRoot = new InRoot(p, rootReg);

  const mounts = config.mounts ?? [];
  const deferredRo: { dest: string; flags: number; data: string }[] = [];
  // proc and sysfs mounts, by destination, with an fd of each mount's root: everything
  // done in them later (sysctls, read-only and masked paths) goes through that fd, never
  // through a path in the rootfs that the container could rename meanwhile.
  const fsMounts = new Map<string, Reg>();
  let devBound = false;
  mounts.forEach((m, i) => {
    const later = mounts.slice(i + 1).some((n) => isUnder(n.destination, m.destination));
    const r = planMount(p, inRoot, ctx, m, `mounts[${i}]`, later);
    if (r.deferRo) deferredRo.push({ dest: m.destination, flags: r.flags, data: r.data });
    if (r.mnt) fsMounts.set(posix.normalize(m.destination), r.mnt);
    if (posix.normalize(m.destination) === '/dev' && r.bind) devBound = true;
  });

  if (!devBound) planDevices(p, inRoot, config, mounts, inUserns);
  if (proc.cwd && proc.cwd !== '/') {
    const r = inRoot.ensure(proc.cwd, 'dir', `create cwd ${proc.cwd}`);
    p.syscall('close', [r], { what: 'close cwd', onError: 'ignore' });
  }
  // The pty comes from the container's devpts, mounted above; found through the rootfs fd.
  if (proc.terminal && ctx.consoleFd !== undefined) {
    planConsole(p, {
      socketFd: ctx.consoleFd,
      root: rootReg,
      size: proc.consoleSize,
      uid: proc.user.uid,
      console: inRoot,
    });
  }
  // Still before pivot_root: paths resolve through fds (the rootfs, or a proc/sysfs
  // mount), and /proc/self/fd/N is the host's /proc, which the container cannot touch.
  const within = (path: string): { root: InRoot; rel: string } => {
    const norm = posix.normalize(path);
    for (const [dest, mnt] of fsMounts) {
      if (norm === dest || isUnder(norm, dest))
        return { root: new InRoot(p, mnt), rel: `/${posix.relative(dest, norm)}` };
    }
    return { root: inRoot, rel: norm };
  };
  const procMnt = fsMounts.get('/proc');
  for (const [key, value] of Object.entries(config.linux?.sysctl ?? {})) {
    const fd = p.reg();
    const rel = `sys/${key.replaceAll('.', '/')}`;
    const what = `sysctl ${key}: open /proc/${rel}`;
    if (procMnt) {
      const how = openHow(O.WRONLY | O.TRUNC | O.CLOEXEC, RESOLVE.BENEATH | RESOLVE.NO_SYMLINKS);
      p.syscall('openat2', [procMnt, rel, how, how.length], { what, out: fd });
    } else {
      p.syscall('openat', [AT.FDCWD, `/proc/${rel}`, O.WRONLY | O.TRUNC | O.CLOEXEC, 0], { what, out: fd });
    }
    p.syscall('write', [fd, Buffer.from(value), Buffer.byteLength(value)], {
      what: `sysctl ${key}=${value}`,
    });
    p.syscall('close', [fd], { what: 'close sysctl', onError: 'ignore' });
  }
  for (const path of config.linux?.readonlyPaths ?? []) {
    const w = within(path);
    planReadonly(p, w.root, w.rel, path);
  }
  for (const path of config.linux?.maskedPaths ?? []) {
    const w = within(path);
    planMask(p, w.root, w.rel, path);
  }
  for (const d of deferredRo.reverse()) {
    const r = inRoot.open(d.dest, `remount ${d.dest} read-only: open`);
    inRoot.pin(r, `remount ${d.dest} read-only: pin`);
    p.syscall('mount', [null, TARGET_PATH, null, MS.BIND | MS.REMOUNT | MS.RDONLY | d.flags, null], {
      what: `remount ${d.dest} read-only`,
    });
  }
  for (const mnt of fsMounts.values())
    p.syscall('close', [mnt], { what: 'close mount fd', onError: 'ignore' });
  p.syscall('close', [TARGET_FD], { what: 'close mount target', onError: 'ignore' });

  // Rootless: hooks are joined through /proc/<pid>/ns by an unprivileged executor, which
  // needs the init to be dumpable meanwhile (the executor image is a sealed memfd).
  const hooksJoin = ctx.rootless === true;
  if (hooksJoin)
    p.syscall('prctl', [PR.SET_DUMPABLE, 1, 0, 0, 0], { what: 'make the init dumpable for hooks' });
  p.sync(SYNC.MOUNTS, { what: 'run prestart, createRuntime and createContainer hooks' });
  if (hooksJoin) p.syscall('prctl', [PR.SET_DUMPABLE, 0, 0, 0, 0], { what: 'make the init non-dumpable' });
  // Through the host's /proc (still at /proc until the jail); it takes effect at execve.
  planLsm(p, proc);

  // --- Jail ------------------------------------------------------------------
  if (ctx.noPivot) {
    p.syscall('chdir', [ctx.rootfs], { what: 'chdir to rootfs' });
    p.syscall('mount', [ctx.rootfs, '/', null, MS.MOVE, null], { what: 'move rootfs to / (--no-pivot)' });
    p.syscall('chroot', ['.'], { what: 'chroot into rootfs (--no-pivot)' });
  } else {
    const oldRoot = p.reg();
    p.syscall('openat', [AT.FDCWD, '/', O.PATH | O.DIRECTORY | O.CLOEXEC, 0], {
      what: 'open old root',
      out: oldRoot,
    });
    p.syscall('fchdir', [rootReg], { what: 'chdir to rootfs' });
    p.syscall('pivot_root', ['.', '.'], { what: 'pivot_root into rootfs' });
    p.syscall('fchdir', [oldRoot], { what: 'chdir to old root' });
    p.syscall('mount', [null, '.', null, MS.SLAVE | MS.REC, null], { what: 'make old root rslave' });
    p.syscall('umount2', ['.', 2 /* MNT_DETACH */], { what: 'detach old root' });
    p.syscall('close', [oldRoot], { what: 'close old root', onError: 'ignore' });
  }
  p.syscall('chdir', ['/'], { what: 'chdir /' });
  p.syscall('close', [rootReg], { what: 'close rootfs fd', onError: 'ignore' });
  if (propagation !== (MS.SLAVE | MS.REC)) {
    p.syscall('mount', [null, '/', null, propagation, null], {
      what: `set rootfs propagation ${config.linux?.rootfsPropagation}`,
    });
  }

  // --- After the jail: nothing below is looked up by a path in the rootfs but / ---
  if (config.hostname !== undefined && ns.create & CLONE.NEWUTS) {
    p.syscall('sethostname', [config.hostname, Buffer.byteLength(config.hostname)], {
      what: `sethostname ${config.hostname}`,
    });
  }
  if (config.domainname !== undefined && ns.create & CLONE.NEWUTS) {
    p.syscall('setdomainname', [config.domainname, Buffer.byteLength(config.domainname)], {
      what: `setdomainname ${config.domainname}`,
    });
  }
  if (config.root?.readonly) {
    p.syscall('mount', [null, '/', null, MS.BIND | MS.REMOUNT | MS.RDONLY, null], {
      what: 'remount / read-only',
    });
  }
  planProcess(p, proc, ctx.capLastCap, {
    setgroups: ctx.setgroups ?? true,
    seccomp: ctx.seccomp,
    personality: config.linux?.personality,
  });
  planExec(p, proc, {
    fifoFd: ctx.fifoFd,
    preserveFds: ctx.preserveFds,
    seccomp: ctx.seccomp,
    dumpableAtReady: ctx.rootless === true,
  });
  return p;
}

/** process.terminal and a console socket go together (runc's rules). */
export function checkConsole(proc: Process, consoleFd: number | undefined): void {
  if (proc.terminal && consoleFd === undefined) {
    throw new ContainerError(
      'InvalidArgument',
      'process.terminal: cannot allocate a tty without a console socket to send it to',
    );
  }
  if (!proc.terminal && consoleFd !== undefined) {
    throw new ContainerError(
      'InvalidArgument',
      'console socket: cannot use a console socket when process.terminal is false',
    );
  }
}

function loopbackUp(p: Program): void {
  const sock = p.reg();
  p.syscall('socket', [2 /* AF_INET */, 2 | O.CLOEXEC /* SOCK_DGRAM|SOCK_CLOEXEC */, 0], {
    what: 'open socket for lo',
    out: sock,
  });
  const ifr = Buffer.alloc(40);
  ifr.write('lo', 0);
  ifr.writeUInt16LE(0x1 | 0x40, 16); // IFF_UP | IFF_RUNNING
  p.syscall('ioctl', [sock, 0x8914 /* SIOCSIFFLAGS */, ifr], { what: 'bring up lo' });
  p.syscall('close', [sock], { what: 'close lo socket', onError: 'ignore' });
}

function planMount(
  p: Program,
  inRoot: InRoot,
  ctx: InitContext,
  m: Mount,
  field: string,
  hasSubmounts: boolean,
): { deferRo: boolean; flags: number; data: string; bind: boolean; mnt?: Reg } {
  const dest = m.destination;
  if (!dest.startsWith('/'))
    throw new ContainerError('InvalidConfig', `${field}.destination: must be absolute`);
  let o: ReturnType<typeof parseMountOptions>;
  try {
    o = parseMountOptions(m.options);
  } catch (e) {
    throw new ContainerError('InvalidConfig', `${field}.options: ${(e as Error).message}`);
  }
  const type = m.type ?? (o.bind ? 'bind' : 'none');
  const what = `mount ${type} on ${dest}`;
  const normDest = posix.normalize(dest);
  if (normDest === '/')
    throw new ContainerError('InvalidConfig', `${field}.destination: cannot mount over the rootfs`);
  const isProcfs = normDest === '/proc' || normDest.startsWith('/proc/');
  if (isProcfs && type !== 'proc' && !o.bind) {
    throw new ContainerError('InvalidConfig', `${field}: only a proc filesystem may be mounted at ${dest}`);
  }

  if (type === 'cgroup' || type === 'cgroup2') {
    // Without a cgroup of its own (rootless), the container keeps what its /sys shows.
    if (ctx.cgroup.version === 'none') return { deferRo: false, flags: 0, data: '', bind: false };
    planCgroupMount(p, inRoot, ctx, dest, o.flags, what);
    return { deferRo: false, flags: 0, data: '', bind: false };
  }

  if (o.bind || type === 'bind') {
    const src = m.source ?? '';
    const hostSrc = isAbsolute(src) ? src : join(ctx.bundle, src);
    if (!existsSync(hostSrc))
      throw new ContainerError('InvalidConfig', `${field}.source: ${hostSrc} does not exist`);
    const kind = statSync(hostSrc).isDirectory() ? 'dir' : 'file';
    const r = inRoot.ensure(dest, kind, what);
    inRoot.pin(r, what);
    p.syscall('mount', [hostSrc, TARGET_PATH, null, MS.BIND | (o.recursive ? MS.REC : 0), null], {
      what: `bind mount ${hostSrc} on ${dest}`,
    });
    const reopened = inRoot.open(dest, `${what}: reopen`);
    inRoot.pin(reopened, what);
    for (const prop of o.propagation) {
      p.syscall('mount', [null, TARGET_PATH, null, prop, null], { what: `${what}: set propagation` });
    }
    const vfs = o.flags & ~MS.REMOUNT;
    if (vfs !== 0) {
      p.syscall(
        'mount',
        [null, TARGET_PATH, null, MS.BIND | MS.REMOUNT | vfs | (o.recursive ? MS.REC : 0), null],
        {
          what: `${what}: apply options ${(m.options ?? []).join(',')}`,
        },
      );
    }
    return { deferRo: false, flags: 0, data: '', bind: true };
  }

  // proc and sysfs must land on a real directory, never through a symlink (CVE-2023-27561).
  const strict = type === 'proc' || type === 'sysfs';
  const r = inRoot.ensure(dest, 'dir', what, { noSymlinks: strict });
  inRoot.pin(r, what);
  if (strict) {
    const mnt = planFsMount(p, type, o, what);
    return { deferRo: false, flags: 0, data: '', bind: false, mnt };
  }
  const deferRo = (o.flags & MS.RDONLY) !== 0 && hasSubmounts;
  const flags = deferRo ? o.flags & ~MS.RDONLY : o.flags;
  p.syscall('mount', [m.source ?? type, TARGET_PATH, type, flags, o.data || null], { what });
  if (o.propagation.length) {
    const reopened = inRoot.open(dest, `${what}: reopen`);
    inRoot.pin(reopened, what);
    for (const prop of o.propagation) {
      p.syscall('mount', [null, TARGET_PATH, null, prop, null], { what: `${what}: set propagation` });
    }
  }
  return { deferRo, flags: flags & (MS.NOSUID | MS.NODEV | MS.NOEXEC), data: o.data, bind: false };
}

/**
 * Mount a proc or sysfs with the new mount API (fsopen, fsconfig, fsmount) and
 * move it onto the pinned target fd: no path is involved, and the mount fd that
 * is returned keeps reaching this mount whatever the container renames.
 */
function planFsMount(p: Program, type: string, o: ReturnType<typeof parseMountOptions>, what: string): Reg {
  const fsfd = p.reg();
  const mnt = p.reg();
  p.syscall('fsopen', [type, 1 /* FSOPEN_CLOEXEC */], { what: `${what}: fsopen`, out: fsfd });
  for (const opt of o.data ? o.data.split(',') : []) {
    const eq = opt.indexOf('=');
    if (eq < 0)
      p.syscall('fsconfig', [fsfd, 0 /* SET_FLAG */, opt, null, 0], { what: `${what}: option ${opt}` });
    else {
      p.syscall('fsconfig', [fsfd, 1 /* SET_STRING */, opt.slice(0, eq), opt.slice(eq + 1), 0], {
        what: `${what}: option ${opt}`,
      });
    }
  }
  p.syscall('fsconfig', [fsfd, 6 /* CMD_CREATE */, null, null, 0], { what: `${what}: create` });
  let attr = 0;
  if (o.flags & MS.RDONLY) attr |= 0x1;
  if (o.flags & MS.NOSUID) attr |= 0x2;
  if (o.flags & MS.NODEV) attr |= 0x4;
  if (o.flags & MS.NOEXEC) attr |= 0x8;
  if (o.flags & MS.NOATIME) attr |= 0x10;
  else if (o.flags & MS.STRICTATIME) attr |= 0x20;
  if (o.flags & MS.NODIRATIME) attr |= 0x80;
  p.syscall('fsmount', [fsfd, 1 /* FSMOUNT_CLOEXEC */, attr], { what: `${what}: fsmount`, out: mnt });
  p.syscall('close', [fsfd], { what: `${what}: close fs context`, onError: 'ignore' });
  p.syscall('move_mount', [mnt, '', TARGET_FD, '', 0x4 | 0x40 /* F_EMPTY_PATH | T_EMPTY_PATH */], { what });
  for (const prop of o.propagation) {
    p.syscall('mount', [null, TARGET_PATH, null, prop, null], { what: `${what}: set propagation` });
  }
  return mnt;
}

function planCgroupMount(
  p: Program,
  inRoot: InRoot,
  ctx: InitContext,
  dest: string,
  flags: number,
  what: string,
): void {
  const r = inRoot.ensure(dest, 'dir', what);
  inRoot.pin(r, what);
  if (ctx.cgroup.version !== 1) {
    p.syscall('mount', ['cgroup2', TARGET_PATH, 'cgroup2', flags, null], { what });
    return;
  }
  const base = flags & (MS.NOSUID | MS.NODEV | MS.NOEXEC);
  p.syscall('mount', ['tmpfs', TARGET_PATH, 'tmpfs', base, 'mode=755'], { what: `mount tmpfs on ${dest}` });
  for (const b of ctx.cgroup.binds) {
    const sub = posix.join(dest, b.name);
    const t = inRoot.ensure(sub, 'dir', `mount cgroup ${b.name} on ${sub}`);
    inRoot.pin(t, `mount cgroup ${b.name}`);
    p.syscall('mount', [b.source, TARGET_PATH, null, MS.BIND | MS.REC, null], {
      what: `bind cgroup ${b.source} on ${sub}`,
    });
    const again = inRoot.open(sub, `mount cgroup ${b.name}: reopen`);
    inRoot.pin(again, `mount cgroup ${b.name}`);
    p.syscall('mount', [null, TARGET_PATH, null, MS.BIND | MS.REMOUNT | flags, null], {
      what: `remount cgroup ${sub}`,
    });
    for (const l of b.links) {
      const dir = inRoot.open(dest, `link cgroup ${l}`);
      p.syscall('symlinkat', [b.name, dir, l], {
        what: `symlink ${posix.join(dest, l)}`,
        onError: 'ignore',
        errno: Errno.EEXIST,
      });
      p.syscall('close', [dir], { what: 'close', onError: 'ignore' });
    }
  }
  if (flags & MS.RDONLY) {
    const again = inRoot.open(dest, `${what}: reopen`);
    inRoot.pin(again, what);
    p.syscall('mount', [null, TARGET_PATH, null, MS.BIND | MS.REMOUNT | MS.RDONLY | base, null], {
      what: `remount ${dest} read-only`,
    });
  }
}

function planDevices(
  p: Program,
  inRoot: InRoot,
  config: RuntimeConfig,
  mounts: readonly Mount[],
  inUserns: boolean,
): void {
  const devices: (LinuxDevice & { fileMode: number })[] = DEFAULT_DEVICES.map((d) => ({
    path: d.path,
    type: 'c',
    major: d.major,
    minor: d.minor,
    fileMode: 0o666,
    uid: 0,
    gid: 0,
  }));
  for (const d of config.linux?.devices ?? []) {
    const i = devices.findIndex((x) => x.path === d.path);
    const full = { ...d, fileMode: d.fileMode ?? 0o666 };
    if (i >= 0) devices[i] = full;
    else devices.push(full);
  }
  p.syscall('umask', [0], { what: 'umask 0 for device nodes' });
  for (const d of devices) {
    const dir = posix.dirname(d.path);
    const name = posix.basename(d.path);
    const what = `create device ${d.path}`;
    const type = d.type === 'b' ? S.IFBLK : d.type === 'p' ? S.IFIFO : S.IFCHR;
    if (inUserns) {
      // mknod is not allowed in a user namespace: bind the host's node onto an empty file.
      const t = inRoot.ensure(d.path, 'file', what);
      inRoot.pin(t, what);
      p.syscall('mount', [d.path, TARGET_PATH, null, MS.BIND, null], {
        what: `bind host ${d.path} for ${d.path}`,
      });
      continue;
    }
    const dirReg = inRoot.ensure(dir, 'dir', what);
    p.syscall('mknodat', [dirReg, name, type | (d.fileMode & 0o7777), makedev(d.major ?? 0, d.minor ?? 0)], {
      what,
      onError: 'ignore',
      errno: Errno.EEXIST,
    });
    // A node the rootfs already had (EEXIST above) must not be a symlink: masked paths are
    // covered with /dev/null, and a /dev/null -> /proc/keys from the image would "mask" them
    // with that file instead (CVE-2025-31133).
    const how = openHow(O.PATH | O.CLOEXEC, RESOLVE.NO_SYMLINKS);
    const node = p.reg();
    p.syscall('openat2', [dirReg, name, how, how.length], {
      what: `${what}: check that it is not a symlink`,
      out: node,
    });
    p.syscall('close', [node], { what: 'close', onError: 'ignore' });
    p.syscall('fchownat', [dirReg, name, d.uid ?? 0, d.gid ?? 0, AT.SYMLINK_NOFOLLOW], {
      what: `chown ${d.path}`,
    });
    p.syscall('close', [dirReg], { what: 'close', onError: 'ignore' });
  }
  p.syscall('umask', [0o022], { what: 'umask' });
  const links: [string, string][] = [
    ['/proc/self/fd', 'fd'],
    ['/proc/self/fd/0', 'stdin'],
    ['/proc/self/fd/1', 'stdout'],
    ['/proc/self/fd/2', 'stderr'],
  ];
  if (existsSync('/proc/kcore')) links.push(['/proc/kcore', 'core']);
  if (mounts.some((m) => posix.normalize(m.destination) === '/dev/pts')) links.push(['pts/ptmx', 'ptmx']);
  const dev = inRoot.ensure('/dev', 'dir', 'create /dev symlinks');
  for (const [target, name] of links) {
    p.syscall('symlinkat', [target, dev, name], {
      what: `symlink /dev/${name}`,
      onError: 'ignore',
      errno: Errno.EEXIST,
    });
  }
  p.syscall('close', [dev], { what: 'close', onError: 'ignore' });
}

function planReadonly(p: Program, root: InRoot, rel: string, path: string): void {
  const skip = p.label();
  const r = p.reg();
  root.open(rel, `readonly path ${path}: open`, { out: r });
  // The open above fails for a missing path: that is fine (runc ignores it).
  retarget(p, skip, Errno.ENOENT);
  root.pin(r, `readonly path ${path}`);
  p.syscall('mount', [TARGET_PATH, TARGET_PATH, null, MS.BIND | MS.REC, null], {
    what: `bind ${path} for read-only`,
  });
  const again = p.reg();
  root.open(rel, `readonly path ${path}: reopen`, { out: again });
  root.pin(again, `readonly path ${path}`);
  p.syscall(
    'mount',
    [
      null,
      TARGET_PATH,
      null,
      MS.BIND | MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC | MS.REC,
      null,
    ],
    {
      what: `remount ${path} read-only`,
    },
  );
  p.place(skip);
}

function planMask(p: Program, root: InRoot, rel: string, path: string): void {
  const skip = p.label();
  const asDir = p.label();
  const r = p.reg();
  root.open(rel, `masked path ${path}: open`, { out: r });
  retarget(p, skip, Errno.ENOENT);
  root.pin(r, `masked path ${path}`);
  // A file is covered with /dev/null (the host's: we are not in the rootfs yet),
  // a directory with an empty read-only tmpfs.
  p.syscall('mount', ['/dev/null', TARGET_PATH, null, MS.BIND, null], {
    what: `mask ${path} with /dev/null`,
    onError: { skipTo: asDir },
    errno: Errno.ENOTDIR,
  });
  p.jump(skip, { what: `masked ${path}` });
  p.place(asDir);
  p.syscall(
    'mount',
    ['tmpfs', TARGET_PATH, 'tmpfs', MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC, 'nr_blocks=1,nr_inodes=1'],
    {
      what: `mask ${path} with an empty tmpfs`,
    },
  );
  p.place(skip);
}

/** Make the op just appended skip to `l` when it fails with `errno`. */
function retarget(p: Program, l: Label, errno: number): void {
  p.setOnError(p.length - 1, { skipTo: l }, errno);
}

/**
 * The process attributes, in runc's order: umask, rlimits, no_new_privs, the
 * bounding set, user and groups (keeping capabilities across setuid), cwd, the
 * capability sets, ambient capabilities. Shared by a container's init and `exec`.
 */
export function planProcess(
  p: Program,
  proc: Process,
  capLastCap: number,
  opts: {
    setgroups: boolean;
    seccomp?: CompiledFilter | undefined;
    personality?: { domain: string; flags?: string[] | undefined } | undefined;
  } = { setgroups: true },
): void {
  p.syscall('umask', [proc.user.umask ?? 0o022], { what: 'umask' });
  for (const [i, rl] of (proc.rlimits ?? []).entries()) {
    const res = RLIMITS[rl.type as keyof typeof RLIMITS];
    if (res === undefined)
      throw new ContainerError('InvalidConfig', `process.rlimits[${i}].type: unknown rlimit "${rl.type}"`);
    const b = Buffer.alloc(16);
    b.writeBigUInt64LE(BigInt(rl.soft), 0);
    b.writeBigUInt64LE(BigInt(rl.hard), 8);
    p.syscall('prlimit64', [0, res, b, null], {
      what: `setrlimit ${rl.type} soft=${rl.soft} hard=${rl.hard}`,
    });
  }
  if (proc.noNewPrivileges)
    p.syscall('prctl', [PR.SET_NO_NEW_PRIVS, 1, 0, 0, 0], { what: 'set no_new_privs' });

  planScheduling(p, proc, opts.personality);
  const caps = proc.capabilities ?? {};
  const bounding = capMask(caps.bounding, 'process.capabilities.bounding');
  const effective = capMask(caps.effective, 'process.capabilities.effective');
  const permitted = capMask(caps.permitted, 'process.capabilities.permitted');
  const inheritable = capMask(caps.inheritable, 'process.capabilities.inheritable');
  const ambient = capMask(caps.ambient, 'process.capabilities.ambient');
  for (let c = 0; c <= capLastCap; c++) {
    if (!(bounding & (1n << BigInt(c)))) {
      p.syscall('prctl', [PR.CAPBSET_DROP, c, 0, 0, 0], {
        what: `drop ${CAPABILITIES[c] ?? `capability ${c}`} from the bounding set`,
      });
    }
  }
  // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it before the uid switch (runc's order).
  if (opts.seccomp && !proc.noNewPrivileges) planSeccomp(p, opts.seccomp);
  const uid = proc.user.uid;
  const gid = proc.user.gid;
  p.syscall('prctl', [PR.SET_KEEPCAPS, 1, 0, 0, 0], { what: 'keep capabilities across setuid' });
  const gids = proc.user.additionalGids ?? [];
  const gidBuf = Buffer.alloc(Math.max(4, gids.length * 4));
  gids.forEach((g, i) => {
    gidBuf.writeUInt32LE(g, i * 4);
  });
  // In a user namespace whose setgroups is "deny" (rootless), setgroups is not allowed.
  if (opts.setgroups)
    p.syscall('setgroups', [gids.length, gidBuf], { what: `setgroups [${gids.join(',')}]` });
  p.syscall('setresgid', [gid, gid, gid], { what: `setgid ${gid}` });
  p.syscall('setresuid', [uid, uid, uid], { what: `setuid ${uid}` });
  p.syscall('prctl', [PR.SET_KEEPCAPS, 0, 0, 0, 0], { what: 'clear keepcaps' });
  p.syscall('chdir', [proc.cwd], { what: `chdir to cwd ${proc.cwd}` });
  const hdr = Buffer.alloc(8);
  hdr.writeUInt32LE(0x20080522, 0); // _LINUX_CAPABILITY_VERSION_3
  const data = Buffer.alloc(24);
  const lo = (m: bigint) => Number(m & 0xffffffffn);
  const hi = (m: bigint) => Number(m >> 32n);
  data.writeUInt32LE(lo(effective), 0);
  data.writeUInt32LE(lo(permitted), 4);
  data.writeUInt32LE(lo(inheritable), 8);
  data.writeUInt32LE(hi(effective), 12);
  data.writeUInt32LE(hi(permitted), 16);
  data.writeUInt32LE(hi(inheritable), 20);
  p.syscall('capset', [hdr, data], { what: 'set capabilities' });
  p.syscall('prctl', [PR.CAP_AMBIENT, PR.CAP_AMBIENT_CLEAR_ALL, 0, 0, 0], {
    what: 'clear ambient capabilities',
  });
  for (let c = 0; c <= 63; c++) {
    if (ambient & (1n << BigInt(c))) {
      // Like runc: a cap not in inheritable+permitted cannot be ambient; that is not fatal.
      p.syscall('prctl', [PR.CAP_AMBIENT, PR.CAP_AMBIENT_RAISE, c, 0, 0], {
        what: `raise ambient ${CAPABILITIES[c]}`,
        onError: 'ignore',
        errno: Errno.EPERM,
      });
    }
  }
}

/**
 * Find args[0] (in PATH when it has no slash), stop at the READY sync point,
 * wait on the exec fifo when there is one, mark every fd above the preserved
 * ones close-on-exec, and execve. Shared by a container's init and `exec`.
 */
export function planExec(
  p: Program,
  proc: Process,
  opts: {
    fifoFd: number | undefined;
    preserveFds: number;
    seccomp?: CompiledFilter | undefined;
    /** Rootless: stay dumpable from READY to execve, so startContainer hooks can join. */
    dumpableAtReady?: boolean;
  },
): void {
  const env = [...(proc.env ?? [])];
  if (!env.some((e) => e.startsWith('HOME='))) env.push('HOME=/');
  const arg0 = proc.args?.[0];
  if (!arg0) throw new ContainerError('InvalidConfig', 'process.args: must name a program to run');
  const cands = execCandidates(arg0, env);
  const argv = p.stringArray(proc.args ?? []);
  const envp = p.stringArray(env);
  const readBuf = p.data(Buffer.alloc(8));
  cands.forEach((cand, i) => {
    const last = i === cands.length - 1;
    const next = p.label();
    p.syscall('faccessat', [AT.FDCWD, cand, 1 /* X_OK */], {
      what: last
        ? cands.length > 1
          ? `exec "${arg0}": executable file not found in $PATH`
          : `exec "${arg0}"`
        : `look up ${cand}`,
      onError: last ? 'fail' : { skipTo: next },
    });
    if (opts.dumpableAtReady) {
      p.syscall('prctl', [PR.SET_DUMPABLE, 1, 0, 0, 0], { what: 'make the init dumpable for hooks' });
    }
    p.sync(SYNC.READY, { what: 'container ready' });
    if (opts.fifoFd !== undefined) {
      const pollfd = Buffer.alloc(8);
      pollfd.writeInt32LE(opts.fifoFd, 0);
      pollfd.writeInt16LE(1 /* POLLIN */, 4);
      p.syscall('ppoll', [pollfd, 1, null, null, 8], { what: 'wait for start (exec fifo)' });
      p.syscall('read', [opts.fifoFd, readBuf, 1], { what: 'read exec fifo' });
    }
    p.syscall('close_range', [3 + opts.preserveFds, 0xffffffff, CLOSE_RANGE.CLOEXEC], {
      what: 'mark fds close-on-exec',
    });
    // With no_new_privs the filter goes last, so only execve has to pass it (crun's order).
    if (opts.seccomp && proc.noNewPrivileges) planSeccomp(p, opts.seccomp);
    p.syscall('execve', [cand, argv, envp], { what: `exec ${cand}` });
    if (!last) p.place(next);
  });
}

/** A seccomp filter compiled to classic BPF (struct sock_filter[]) and its SECCOMP_FILTER_FLAG_* flags. */
export interface CompiledFilter {
  filter: Buffer;
  flags: number;
}

/** seccomp(SECCOMP_SET_MODE_FILTER, flags, &sock_fprog). */
function planSeccomp(p: Program, f: CompiledFilter): void {
  const insns = p.data(f.filter);
  const prog = Buffer.alloc(16);
  prog.writeUInt16LE(f.filter.length / 8, 0);
  const progRef = p.data(prog);
  p.pointerAt(progRef, 8, insns);
  p.syscall('seccomp', [1 /* SECCOMP_SET_MODE_FILTER */, f.flags, progRef], {
    what: `load the seccomp filter (${f.filter.length / 8} instructions)`,
  });
}

const SCHED_POLICIES: Record<string, number> = {
  SCHED_OTHER: 0,
  SCHED_FIFO: 1,
  SCHED_RR: 2,
  SCHED_BATCH: 3,
  SCHED_ISO: 4,
  SCHED_IDLE: 5,
  SCHED_DEADLINE: 6,
};
const SCHED_FLAGS: Record<string, number> = {
  SCHED_FLAG_RESET_ON_FORK: 0x1,
  SCHED_FLAG_RECLAIM: 0x2,
  SCHED_FLAG_DL_OVERRUN: 0x4,
  SCHED_FLAG_KEEP_POLICY: 0x8,
  SCHED_FLAG_KEEP_PARAMS: 0x10,
  SCHED_FLAG_UTIL_CLAMP_MIN: 0x20,
  SCHED_FLAG_UTIL_CLAMP_MAX: 0x40,
};
const IOPRIO_CLASSES: Record<string, number> = {
  IOPRIO_CLASS_RT: 1,
  IOPRIO_CLASS_BE: 2,
  IOPRIO_CLASS_IDLE: 3,
};

/** process.scheduler (sched_setattr), process.ioPriority (ioprio_set), linux.personality. */
function planScheduling(
  p: Program,
  proc: Process,
  personality: { domain: string; flags?: string[] | undefined } | undefined,
): void {
  const sch = proc.scheduler;
  if (sch) {
    const a = Buffer.alloc(56);
    a.writeUInt32LE(56, 0);
    a.writeUInt32LE(SCHED_POLICIES[sch.policy] ?? 0, 4);
    let flags = 0;
    for (const f of sch.flags ?? []) flags |= SCHED_FLAGS[f] ?? 0;
    a.writeBigUInt64LE(BigInt(flags), 8);
    a.writeInt32LE(sch.nice ?? 0, 16);
    a.writeUInt32LE(sch.priority ?? 0, 20);
    a.writeBigUInt64LE(BigInt(sch.runtime ?? 0), 24);
    a.writeBigUInt64LE(BigInt(sch.deadline ?? 0), 32);
    a.writeBigUInt64LE(BigInt(sch.period ?? 0), 40);
    p.syscall('sched_setattr', [0, a, 0], { what: `set scheduler ${sch.policy}` });
  }
  const io = proc.ioPriority;
  if (io) {
    const value = ((IOPRIO_CLASSES[io.class] ?? 0) << 13) | io.priority;
    p.syscall('ioprio_set', [1 /* IOPRIO_WHO_PROCESS */, 0, value], {
      what: `set I/O priority ${io.class} ${io.priority}`,
    });
  }
  if (personality) {
    if (personality.flags?.length) {
      throw new ContainerError('Unsupported', 'linux.personality.flags: personality flags are not supported');
    }
    const domain = personality.domain === 'LINUX32' ? 0x8 : 0x0;
    p.syscall('personality', [domain], { what: `set personality ${personality.domain}` });
  }
}

/** runc's rules: only namespaced sysctls, each needing its namespace in the config. */
export function checkSysctls(config: RuntimeConfig): void {
  const namespaces = config.linux?.namespaces ?? [];
  const ipc = new Set([
    'kernel.msgmax',
    'kernel.msgmnb',
    'kernel.msgmni',
    'kernel.sem',
    'kernel.shmall',
    'kernel.shmmax',
    'kernel.shmmni',
    'kernel.shm_rmid_forced',
  ]);
  for (const key of Object.keys(config.linux?.sysctl ?? {})) {
    const field = `linux.sysctl["${key}"]`;
    const need = (t: string, what: string) => {
      const ns = namespaces.find((n) => n.type === t);
      if (!ns)
        throw new ContainerError(
          'InvalidConfig',
          `${field}: ${what} needs a ${t} namespace of the container's own`,
        );
      // A namespace joined by path may be another container's, but not the host's: the write
      // would change the host.
      if (ns.path && isOwnNamespace(ns.path, t))
        throw new ContainerError(
          'InvalidConfig',
          `${field}: ${what} needs a ${t} namespace of the container's own, not the host's (${ns.path})`,
        );
    };
    if (ipc.has(key) || key.startsWith('fs.mqueue.')) need('ipc', 'an IPC sysctl');
    else if (key.startsWith('net.')) need('network', 'a network sysctl');
    else if (key === 'kernel.domainname') need('uts', 'kernel.domainname');
    else if (key === 'kernel.hostname') {
      throw new ContainerError(
        'InvalidConfig',
        `${field}: set the hostname with the "hostname" field, not a sysctl`,
      );
    } else if (key.startsWith('user.')) need('user', 'a user namespace sysctl');
    else
      throw new ContainerError(
        'InvalidConfig',
        `${field}: not a namespaced sysctl; it would change the host`,
      );
  }
}

/** Whether `path` is the namespace of type `type` this process is in (false when it cannot be read). */
function isOwnNamespace(path: string, type: string): boolean {
  const file = namespaceKind(type)?.file;
  if (!file) return false;
  try {
    const a = statSync(path);
    const b = statSync(`/proc/self/ns/${file}`);
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}

/** Write the LSM exec attribute (AppArmor profile, SELinux label): it takes effect at execve. */
function planLsm(p: Program, proc: Process): void {
  const apparmor = existsSync('/sys/kernel/security/apparmor');
  const selinux = existsSync('/sys/fs/selinux/enforce');
  if (proc.apparmorProfile) {
    if (!apparmor) {
      throw new ContainerError(
        'Unsupported',
        `process.apparmorProfile: AppArmor is not enabled on this host (profile "${proc.apparmorProfile}")`,
      );
    }
    writeAttr(
      p,
      '/proc/thread-self/attr/apparmor/exec',
      `exec ${proc.apparmorProfile}`,
      'set AppArmor profile',
    );
  }
  if (proc.selinuxLabel) {
    if (!selinux) {
      throw new ContainerError(
        'Unsupported',
        `process.selinuxLabel: SELinux is not enabled on this host (label "${proc.selinuxLabel}")`,
      );
    }
    writeAttr(p, '/proc/thread-self/attr/exec', proc.selinuxLabel, 'set SELinux exec label');
  }
}

function writeAttr(p: Program, file: string, value: string, what: string): void {
  const fd = p.reg();
  p.syscall('openat', [AT.FDCWD, file, O.WRONLY | O.CLOEXEC, 0], { what: `${what}: open ${file}`, out: fd });
  p.syscall('write', [fd, Buffer.from(value), Buffer.byteLength(value)], { what: `${what} ${value}` });
  p.syscall('close', [fd], { what: 'close', onError: 'ignore' });
}
