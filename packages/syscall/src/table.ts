/**
 * Typed syscall definitions. The same entry serves an in-process call through
 * koffi (`call()` in ffi.ts) and an op in an executor program (`@tsc/executor`),
 * so a syscall's number and argument shapes are written down exactly once.
 */

/** The architectures the runtime knows syscall numbers for. */
export type Arch = 'x86_64' | 'aarch64';

/**
 * How an argument is passed:
 * - `int`/`long`: an integer (number or bigint);
 * - `str`: a NUL-terminated string;
 * - `buf`: a pointer to bytes (a Buffer, or null for NULL);
 * - `ptr`: an opaque pointer that callers pass as NULL or an integer.
 */
export type ArgKind = 'int' | 'long' | 'str' | 'buf' | 'ptr';

/** One syscall: its name, its numbers per architecture and its arguments. */
export interface SyscallDef<A extends readonly ArgKind[] = readonly ArgKind[]> {
  readonly name: string;
  readonly nr: Readonly<Record<Arch, number>>;
  readonly args: A;
}

function def<const A extends readonly ArgKind[]>(
  name: string,
  x86_64: number,
  aarch64: number,
  args: A,
): SyscallDef<A> {
  return { name, nr: { x86_64, aarch64 }, args };
}

/** The syscalls the runtime uses, in-process or in executor programs. */
export const SYSCALLS = {
  read: def('read', 0, 63, ['int', 'buf', 'long']),
  write: def('write', 1, 64, ['int', 'buf', 'long']),
  close: def('close', 3, 57, ['int']),
  ioctl: def('ioctl', 16, 29, ['int', 'long', 'buf']),
  getpid: def('getpid', 39, 172, []),
  socket: def('socket', 41, 198, ['int', 'int', 'int']),
  connect: def('connect', 42, 203, ['int', 'buf', 'int']),
  sendmsg: def('sendmsg', 46, 211, ['int', 'buf', 'int']),
  recvmsg: def('recvmsg', 47, 212, ['int', 'buf', 'int']),
  socketpair: def('socketpair', 53, 199, ['int', 'int', 'int', 'buf']),
  recvfrom: def('recvfrom', 45, 207, ['int', 'buf', 'long', 'int', 'ptr', 'ptr']),
  execve: def('execve', 59, 221, ['str', 'buf', 'buf']),
  kill: def('kill', 62, 129, ['int', 'int']),
  fcntl: def('fcntl', 72, 25, ['int', 'int', 'long']),
  flock: def('flock', 73, 32, ['int', 'int']),
  getcwd: def('getcwd', 79, 17, ['buf', 'long']),
  chdir: def('chdir', 80, 49, ['str']),
  fchdir: def('fchdir', 81, 50, ['int']),
  umask: def('umask', 95, 166, ['int']),
  setsid: def('setsid', 112, 157, []),
  setgroups: def('setgroups', 116, 159, ['int', 'buf']),
  setresuid: def('setresuid', 117, 147, ['int', 'int', 'int']),
  setresgid: def('setresgid', 119, 149, ['int', 'int', 'int']),
  capget: def('capget', 125, 90, ['buf', 'buf']),
  capset: def('capset', 126, 91, ['buf', 'buf']),
  personality: def('personality', 135, 92, ['long']),
  pivot_root: def('pivot_root', 155, 41, ['str', 'str']),
  prctl: def('prctl', 157, 167, ['int', 'long', 'long', 'long', 'long']),
  chroot: def('chroot', 161, 51, ['str']),
  mount: def('mount', 165, 40, ['str', 'str', 'str', 'long', 'str']),
  umount2: def('umount2', 166, 39, ['str', 'int']),
  sethostname: def('sethostname', 170, 161, ['str', 'long']),
  setdomainname: def('setdomainname', 171, 162, ['str', 'long']),
  setxattr: def('setxattr', 188, 5, ['str', 'str', 'buf', 'long', 'int']),
  lsetxattr: def('lsetxattr', 189, 6, ['str', 'str', 'buf', 'long', 'int']),
  fsetxattr: def('fsetxattr', 190, 7, ['int', 'str', 'buf', 'long', 'int']),
  lgetxattr: def('lgetxattr', 192, 9, ['str', 'str', 'buf', 'long']),
  llistxattr: def('llistxattr', 195, 12, ['str', 'buf', 'long']),
  lremovexattr: def('lremovexattr', 198, 15, ['str', 'str']),
  exit_group: def('exit_group', 231, 94, ['int']),
  waitid: def('waitid', 247, 95, ['int', 'int', 'buf', 'int', 'ptr']),
  keyctl: def('keyctl', 250, 219, ['int', 'long', 'long', 'long', 'long']),
  ioprio_set: def('ioprio_set', 251, 30, ['int', 'int', 'int']),
  inotify_add_watch: def('inotify_add_watch', 254, 27, ['int', 'str', 'int']),
  openat: def('openat', 257, 56, ['int', 'str', 'int', 'int']),
  mkdirat: def('mkdirat', 258, 34, ['int', 'str', 'int']),
  mknodat: def('mknodat', 259, 33, ['int', 'str', 'int', 'long']),
  fchownat: def('fchownat', 260, 54, ['int', 'str', 'int', 'int', 'int']),
  unlinkat: def('unlinkat', 263, 35, ['int', 'str', 'int']),
  linkat: def('linkat', 265, 37, ['int', 'str', 'int', 'str', 'int']),
  symlinkat: def('symlinkat', 266, 36, ['str', 'int', 'str']),
  fchmodat: def('fchmodat', 268, 53, ['int', 'str', 'int']),
  faccessat: def('faccessat', 269, 48, ['int', 'str', 'int']),
  ppoll: def('ppoll', 271, 73, ['buf', 'int', 'ptr', 'ptr', 'long']),
  unshare: def('unshare', 272, 97, ['long']),
  utimensat: def('utimensat', 280, 88, ['int', 'str', 'buf', 'int']),
  eventfd2: def('eventfd2', 290, 19, ['int', 'int']),
  dup3: def('dup3', 292, 24, ['int', 'int', 'int']),
  inotify_init1: def('inotify_init1', 294, 26, ['int']),
  prlimit64: def('prlimit64', 302, 261, ['int', 'int', 'buf', 'buf']),
  syncfs: def('syncfs', 306, 267, ['int']),
  setns: def('setns', 308, 268, ['int', 'int']),
  seccomp: def('seccomp', 317, 277, ['int', 'int', 'buf']),
  sched_setattr: def('sched_setattr', 314, 274, ['int', 'buf', 'int']),
  renameat2: def('renameat2', 316, 276, ['int', 'str', 'int', 'str', 'int']),
  memfd_create: def('memfd_create', 319, 279, ['str', 'int']),
  sendfile: def('sendfile', 40, 71, ['int', 'int', 'ptr', 'long']),
  bpf: def('bpf', 321, 280, ['int', 'buf', 'int']),
  execveat: def('execveat', 322, 281, ['int', 'str', 'buf', 'buf', 'int']),
  pidfd_send_signal: def('pidfd_send_signal', 424, 424, ['int', 'int', 'ptr', 'int']),
  open_tree: def('open_tree', 428, 428, ['int', 'str', 'int']),
  move_mount: def('move_mount', 429, 429, ['int', 'str', 'int', 'str', 'int']),
  fsopen: def('fsopen', 430, 430, ['str', 'int']),
  fsconfig: def('fsconfig', 431, 431, ['int', 'int', 'str', 'str', 'int']),
  fsmount: def('fsmount', 432, 432, ['int', 'int', 'int']),
  pidfd_open: def('pidfd_open', 434, 434, ['int', 'int']),
  clone3: def('clone3', 435, 435, ['buf', 'long']),
  close_range: def('close_range', 436, 436, ['int', 'int', 'int']),
  openat2: def('openat2', 437, 437, ['int', 'str', 'buf', 'long']),
  mount_setattr: def('mount_setattr', 442, 442, ['int', 'str', 'int', 'buf', 'long']),
} as const;

/** Names of the syscalls in {@link SYSCALLS}. */
export type SyscallName = keyof typeof SYSCALLS;

/** The architecture this process runs on, or an error naming the unsupported one. */
export function hostArch(): Arch {
  switch (process.arch) {
    case 'x64':
      return 'x86_64';
    case 'arm64':
      return 'aarch64';
    default:
      throw new Error(
        `unsupported architecture ${process.arch}: syscall numbers are known for x86_64 and aarch64`,
      );
  }
}
