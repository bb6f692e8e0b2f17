/**
 * Linux errno numbers (the generic table shared by x86_64 and aarch64) and their
 * short descriptions, so an error reads `mount proc on /proc: EPERM (operation not permitted)`.
 */
const TABLE: readonly (readonly [number, string, string])[] = [
  [1, 'EPERM', 'operation not permitted'],
  [2, 'ENOENT', 'no such file or directory'],
  [3, 'ESRCH', 'no such process'],
  [4, 'EINTR', 'interrupted system call'],
  [5, 'EIO', 'input/output error'],
  [6, 'ENXIO', 'no such device or address'],
  [7, 'E2BIG', 'argument list too long'],
  [8, 'ENOEXEC', 'exec format error'],
  [9, 'EBADF', 'bad file descriptor'],
  [10, 'ECHILD', 'no child processes'],
  [11, 'EAGAIN', 'resource temporarily unavailable'],
  [12, 'ENOMEM', 'cannot allocate memory'],
  [13, 'EACCES', 'permission denied'],
  [14, 'EFAULT', 'bad address'],
  [15, 'ENOTBLK', 'block device required'],
  [16, 'EBUSY', 'device or resource busy'],
  [17, 'EEXIST', 'file exists'],
  [18, 'EXDEV', 'invalid cross-device link'],
  [19, 'ENODEV', 'no such device'],
  [20, 'ENOTDIR', 'not a directory'],
  [21, 'EISDIR', 'is a directory'],
  [22, 'EINVAL', 'invalid argument'],
  [23, 'ENFILE', 'too many open files in system'],
  [24, 'EMFILE', 'too many open files'],
  [25, 'ENOTTY', 'inappropriate ioctl for device'],
  [26, 'ETXTBSY', 'text file busy'],
  [27, 'EFBIG', 'file too large'],
  [28, 'ENOSPC', 'no space left on device'],
  [29, 'ESPIPE', 'illegal seek'],
  [30, 'EROFS', 'read-only file system'],
  [31, 'EMLINK', 'too many links'],
  [32, 'EPIPE', 'broken pipe'],
  [33, 'EDOM', 'numerical argument out of domain'],
  [34, 'ERANGE', 'numerical result out of range'],
  [35, 'EDEADLK', 'resource deadlock avoided'],
  [36, 'ENAMETOOLONG', 'file name too long'],
  [37, 'ENOLCK', 'no locks available'],
  [38, 'ENOSYS', 'function not implemented'],
  [39, 'ENOTEMPTY', 'directory not empty'],
  [40, 'ELOOP', 'too many levels of symbolic links'],
  [42, 'ENOMSG', 'no message of desired type'],
  [61, 'ENODATA', 'no data available'],
  [62, 'ETIME', 'timer expired'],
  [71, 'EPROTO', 'protocol error'],
  [74, 'EBADMSG', 'bad message'],
  [75, 'EOVERFLOW', 'value too large for defined data type'],
  [84, 'EILSEQ', 'invalid or incomplete multibyte or wide character'],
  [88, 'ENOTSOCK', 'socket operation on non-socket'],
  [90, 'EMSGSIZE', 'message too long'],
  [93, 'EPROTONOSUPPORT', 'protocol not supported'],
  [95, 'EOPNOTSUPP', 'operation not supported'],
  [97, 'EAFNOSUPPORT', 'address family not supported by protocol'],
  [98, 'EADDRINUSE', 'address already in use'],
  [99, 'EADDRNOTAVAIL', 'cannot assign requested address'],
  [100, 'ENETDOWN', 'network is down'],
  [101, 'ENETUNREACH', 'network is unreachable'],
  [104, 'ECONNRESET', 'connection reset by peer'],
  [105, 'ENOBUFS', 'no buffer space available'],
  [110, 'ETIMEDOUT', 'connection timed out'],
  [111, 'ECONNREFUSED', 'connection refused'],
  [114, 'EALREADY', 'operation already in progress'],
  [115, 'EINPROGRESS', 'operation now in progress'],
  [122, 'EDQUOT', 'disk quota exceeded'],
  [125, 'ECANCELED', 'operation canceled'],
  [126, 'ENOKEY', 'required key not available'],
  [127, 'EKEYEXPIRED', 'key has expired'],
  [128, 'EKEYREVOKED', 'key has been revoked'],
  [129, 'EKEYREJECTED', 'key was rejected by service'],
  [130, 'EOWNERDEAD', 'owner died'],
];

const byNumber = new Map<number, readonly [number, string, string]>(TABLE.map((e) => [e[0], e]));
const byName = new Map<string, number>(TABLE.map((e) => [e[1], e[0]]));

/** The symbolic name of an errno (`2` → `"ENOENT"`); unknown numbers give `"E<number>"`. */
export function errnoName(errno: number): string {
  return byNumber.get(errno)?.[1] ?? `E${errno}`;
}

/** A short lower-case description of an errno (`2` → `"no such file or directory"`). */
export function errnoDescription(errno: number): string {
  return byNumber.get(errno)?.[2] ?? `error ${errno}`;
}

/** The number of a symbolic errno name (`"EPERM"` → `1`), or `undefined`. */
export function errnoNumber(name: string): number | undefined {
  return byName.get(name);
}

/** Well-known errno numbers used by the runtime. */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EBADF: 9,
  ECHILD: 10,
  EAGAIN: 11,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENOSPC: 28,
  EROFS: 30,
  ENOSYS: 38,
  ELOOP: 40,
  EOPNOTSUPP: 95,
} as const;
