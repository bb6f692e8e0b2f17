/**
 * Starting a program with posix_spawn(3) through koffi.
 *
 * Node's child_process (libuv) starts children with fork(): the kernel copies the page tables of
 * the whole Node process (its heap, V8's reservations) for a child that execs at once. glibc's
 * posix_spawn uses clone(CLONE_VM | CLONE_VFORK) instead: nothing is copied, the parent waits
 * only until the child has exec'd. For a runtime that starts an executor per container, that is
 * most of the cost of a start from a warm process; and a one-shot CLI does not have to load
 * child_process, net and stream at all.
 */
import { SysError } from './errors.js';
import { call, libcLibrary } from './ffi.js';

/** What {@link posixSpawn} starts. */
export interface SpawnRequest {
  /** The program (e.g. `/proc/self/fd/N` for a memfd). */
  path: string;
  /** argv, argv[0] included. */
  argv: readonly string[];
  /** The environment as `K=V` strings (empty: none). */
  env: readonly string[];
  /**
   * The child's descriptors: `[fd in this process, fd number in the child]`. Every other
   * descriptor of this process must be close-on-exec (Node's are), or the child inherits it.
   */
  fds: readonly (readonly [number, number])[];
}

type Fn = (...args: unknown[]) => number;

interface SpawnFns {
  faInit: Fn;
  faDup2: Fn;
  faDestroy: Fn;
  attrInit: Fn;
  attrFlags: Fn;
  attrSigDefault: Fn;
  attrSigMask: Fn;
  attrDestroy: Fn;
  spawn: Fn;
}

let fns: SpawnFns | undefined;

function spawnFns(): SpawnFns {
  if (fns === undefined) {
    const lib = libcLibrary();
    const f = (decl: string) => lib.func(decl) as unknown as Fn;
    fns = {
      faInit: f('int posix_spawn_file_actions_init(void *fa)'),
      faDup2: f('int posix_spawn_file_actions_adddup2(void *fa, int fd, int newfd)'),
      faDestroy: f('int posix_spawn_file_actions_destroy(void *fa)'),
      attrInit: f('int posix_spawnattr_init(void *attr)'),
      attrFlags: f('int posix_spawnattr_setflags(void *attr, short flags)'),
      attrSigDefault: f('int posix_spawnattr_setsigdefault(void *attr, void *set)'),
      attrSigMask: f('int posix_spawnattr_setsigmask(void *attr, void *set)'),
      attrDestroy: f('int posix_spawnattr_destroy(void *attr)'),
      spawn: f(
        'int posix_spawn(_Out_ int *pid, const char *path, void *fa, void *attr, const char **argv, const char **envp)',
      ),
    };
  }
  return fns;
}

/** glibc's POSIX_SPAWN_SETSIGDEF and POSIX_SPAWN_SETSIGMASK. */
const SETSIGDEF = 0x04;
const SETSIGMASK = 0x08;
/** F_DUPFD_CLOEXEC. */
const DUPFD_CLOEXEC = 1030;

/**
 * Start `req.path` and return its pid. The child is this process's child: reap it (e.g. with
 * a pidfd and `pidfdTryWait`); libuv does not know it. Every signal is reset to its default
 * action in the child and none is blocked, as child_process does (Node ignores SIGPIPE, and an
 * ignored signal would stay ignored across execve).
 *
 * @throws {SysError} naming `posix_spawn` and the errno (e.g. ENOENT, EACCES).
 */
export function posixSpawn(req: SpawnRequest): number {
  const f = spawnFns();
  // Opaque glibc structs, allocated generously: posix_spawn_file_actions_t is 80 bytes on
  // 64-bit glibc, posix_spawnattr_t 336, sigset_t 128.
  const fa = Buffer.alloc(512);
  const attr = Buffer.alloc(1024);
  // Every bit set: sigfillset() would leave out glibc's internal signals (32, 33), which the
  // child would then exec with ignored.
  const all = Buffer.alloc(128, 0xff);
  const none = Buffer.alloc(128);
  // Each source is first duplicated above every target, so that moving one into place can
  // never overwrite another source (e.g. fd 3 going to 4 while fd 4 goes to 3).
  const high: number[] = [];
  // Above every target, and no higher (RLIMIT_NOFILE may be low in the caller's process).
  const above = 1 + Math.max(2, ...req.fds.map(([, to]) => to));
  try {
    for (const [from] of req.fds)
      high.push(call('fcntl', [from, DUPFD_CLOEXEC, above], { op: `dup fd ${from}` }));
    check(f.faInit(fa), 'posix_spawn_file_actions_init');
    try {
      req.fds.forEach(([, to], i) => {
        check(f.faDup2(fa, high[i], to), `posix_spawn_file_actions_adddup2 ${to}`);
      });
      check(f.attrInit(attr), 'posix_spawnattr_init');
      try {
        check(f.attrSigDefault(attr, all), 'posix_spawnattr_setsigdefault');
        check(f.attrSigMask(attr, none), 'posix_spawnattr_setsigmask');
        check(f.attrFlags(attr, SETSIGDEF | SETSIGMASK), 'posix_spawnattr_setflags');
        const pid = [0];
        check(
          f.spawn(pid, req.path, fa, attr, [...req.argv, null], [...req.env, null]),
          `posix_spawn ${req.path}`,
        );
        return pid[0] as number;
      } finally {
        f.attrDestroy(attr);
      }
    } finally {
      f.faDestroy(fa);
    }
  } finally {
    for (const fd of high) call('close', [fd]);
  }
}

/** posix_spawn and its helpers return an errno value instead of setting errno. */
function check(r: number, op: string): void {
  if (r !== 0) throw new SysError({ errno: r, syscall: op.split(' ')[0] as string, op });
}
