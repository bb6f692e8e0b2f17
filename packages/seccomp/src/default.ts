/**
 * A profile with the effect of Docker's default seccomp profile (moby `profiles/seccomp/default.json`)
 * for one architecture and a capability set: deny (EPERM) by default, allow a long list of
 * ordinary syscalls, allow more when the container has the matching capability, restrict clone,
 * clone3, socket and personality arguments. See README.md for how it was written.
 */
import { type SeccompArch, syscallNumber } from './tables/index.js';
import type { LinuxSeccomp, LinuxSeccompArch, LinuxSyscall } from './types.js';

/** Docker's default capability set (the bounding set of a `docker run` without --cap-add/--cap-drop). */
export const DOCKER_DEFAULT_CAPABILITIES: readonly string[] = Object.freeze([
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
]);

/**
 * Allowed for everyone. Names for all architectures (32-bit and 64-bit variants); each profile
 * keeps those its architecture has.
 */
const ALLOWED = `
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old
eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync
fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync
ftruncate ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat
getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups
getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid
getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt
get_thread_area gettid gettimeofday getuid getuid32 getxattr getxattrat inotify_add_watch inotify_init
inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents io_pgetevents
io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit ipc kill landlock_add_rule
landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listmount
listxattr listxattrat llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise
map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2
mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64
mq_timedsend mq_timedsend_time64 mq_unlink mremap mseal msgctl msgget msgrcv msgsnd msync munlock
munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause
pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64
prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev
pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
remap_file_pages removexattr removexattrat rename renameat renameat2 restart_syscall riscv_hwprobe
rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr
sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64
sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32
setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid
setuid32 setxattr setxattrat shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statmount statx symlink
symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete
timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create
timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate truncate64
ugetrlimit umask uname unlink unlinkat uretprobe utime utimensat utimensat_time64 utimes vfork
vmsplice wait4 waitid waitpid write writev
`;

/** One group of the profile, with Docker's include/exclude conditions. */
interface Group {
  names: string;
  action?: 'SCMP_ACT_ERRNO';
  errnoRet?: number;
  args?: LinuxSyscall['args'];
  /** Only on these architectures. */
  arches?: readonly SeccompArch[];
  /** Only when the container has all of these capabilities. */
  caps?: readonly string[];
  /** Not when the container has any of these capabilities. */
  notCaps?: readonly string[];
}

/** clone flags that create namespaces: NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET. */
const CLONE_NAMESPACE_FLAGS = 0x7e020000;

const GROUPS: readonly Group[] = [
  { names: ALLOWED },
  // Docker: only on kernels >= 4.8, where seccomp runs after ptrace and cannot be bypassed by it.
  { names: 'process_vm_readv process_vm_writev ptrace' },
  // Every address family but AF_ALG (38) and AF_VSOCK (40).
  { names: 'socket', args: [{ index: 0, value: 38, op: 'SCMP_CMP_LT' }] },
  { names: 'socket', args: [{ index: 0, value: 39, op: 'SCMP_CMP_EQ' }] },
  { names: 'socket', args: [{ index: 0, value: 40, op: 'SCMP_CMP_GT' }] },
  // PER_LINUX, PER_LINUX32, UNAME26, PER_LINUX32|UNAME26, and 0xffffffff (query).
  ...[0x0, 0x8, 0x20000, 0x20008, 0xffffffff].map(
    (value): Group => ({ names: 'personality', args: [{ index: 0, value, op: 'SCMP_CMP_EQ' }] }),
  ),
  { names: 'arch_prctl modify_ldt', arches: ['x86_64'] },
  {
    names: 'arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls',
    arches: ['aarch64'],
  },
  { names: 'open_by_handle_at', caps: ['CAP_DAC_READ_SEARCH'] },
  {
    names:
      'bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie lsm_get_self_attr ' +
      'lsm_list_modules lsm_set_self_attr mount mount_setattr move_mount open_tree perf_event_open quotactl ' +
      'quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare',
    caps: ['CAP_SYS_ADMIN'],
  },
  // Without CAP_SYS_ADMIN: clone only without namespace flags, clone3 (whose flags are in memory,
  // out of reach of BPF) fails with ENOSYS so that libc falls back to clone.
  {
    names: 'clone',
    args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
    notCaps: ['CAP_SYS_ADMIN'],
  },
  { names: 'clone3', action: 'SCMP_ACT_ERRNO', errnoRet: 38, notCaps: ['CAP_SYS_ADMIN'] },
  { names: 'reboot', caps: ['CAP_SYS_BOOT'] },
  { names: 'chroot', caps: ['CAP_SYS_CHROOT'] },
  { names: 'delete_module init_module finit_module', caps: ['CAP_SYS_MODULE'] },
  { names: 'acct', caps: ['CAP_SYS_PACCT'] },
  {
    names: 'kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace',
    caps: ['CAP_SYS_PTRACE'],
  },
  { names: 'iopl ioperm', caps: ['CAP_SYS_RAWIO'] },
  { names: 'settimeofday stime clock_settime clock_settime64', caps: ['CAP_SYS_TIME'] },
  { names: 'vhangup', caps: ['CAP_SYS_TTY_CONFIG'] },
  { names: 'get_mempolicy mbind set_mempolicy set_mempolicy_home_node', caps: ['CAP_SYS_NICE'] },
  { names: 'syslog', caps: ['CAP_SYSLOG'] },
  { names: 'bpf', caps: ['CAP_BPF'] },
  { names: 'perf_event_open', caps: ['CAP_PERFMON'] },
];

const SCMP_ARCH: Readonly<Record<SeccompArch, LinuxSeccompArch>> = Object.freeze({
  x86_64: 'SCMP_ARCH_X86_64',
  aarch64: 'SCMP_ARCH_AARCH64',
});

export interface DefaultProfileOptions {
  /**
   * The container's capabilities (bounding set), e.g. `['CAP_SYS_ADMIN', ...]`; rules are included
   * or left out by them as Docker does. Default: {@link DOCKER_DEFAULT_CAPABILITIES}.
   */
  capabilities?: readonly string[] | undefined;
}

/**
 * Docker's default seccomp profile for `arch`, as an OCI `linux.seccomp` section: default
 * `SCMP_ACT_ERRNO` (EPERM), the allow rules that apply to `arch` and the capability set, with only
 * the syscall names that `arch` has (so compiling it warns about nothing).
 */
export function defaultProfile(arch: SeccompArch, opts: DefaultProfileOptions = {}): LinuxSeccomp {
  const caps = new Set(opts.capabilities ?? DOCKER_DEFAULT_CAPABILITIES);
  const syscalls: LinuxSyscall[] = [];
  for (const g of GROUPS) {
    if (g.arches && !g.arches.includes(arch)) continue;
    if (g.caps && !g.caps.every((c) => caps.has(c))) continue;
    if (g.notCaps?.some((c) => caps.has(c))) continue;
    const names = g.names
      .split(/\s+/)
      .filter((n) => n !== '' && syscallNumber(n, arch) !== undefined)
      .sort();
    if (names.length === 0) continue;
    const rule: LinuxSyscall = {
      names,
      action: g.action ?? 'SCMP_ACT_ALLOW',
      ...(g.errnoRet === undefined ? {} : { errnoRet: g.errnoRet }),
      ...(g.args === undefined ? {} : { args: g.args.map((a) => ({ ...a })) }),
    };
    syscalls.push(rule);
  }
  return {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: 1,
    architectures: [SCMP_ARCH[arch]],
    syscalls,
  };
}
