/** What kind of failure a {@link CgroupError} reports. */
export type CgroupErrorCode = 'NotFound' | 'Invalid' | 'Busy' | 'PermissionDenied' | 'Unsupported' | 'System';

/** Which operation failed. Validation and missing-controller errors of `apply()` use `'write'`. */
export type CgroupOp = 'read' | 'write' | 'mkdir' | 'rmdir' | 'detect' | 'resolve' | 'bpf';

/** Extra facts attached to a {@link CgroupError}. */
export interface CgroupErrorDetails {
  /** The file or directory involved. */
  path?: string;
  /** The errno name reported by the kernel, e.g. `'EINVAL'`. */
  errno?: string;
  /** The data that was being written. */
  data?: string;
  /** The OCI field concerned, e.g. `"memory.limit"` for `linux.resources.memory.limit`. */
  field?: string;
  /** The underlying error. */
  cause?: unknown;
}

/**
 * Every failure of this package. `code` classifies it, `op` says what was being done, and the
 * message names the data, the file and the errno, e.g.
 * `write "100000 50000" to /sys/fs/cgroup/cpu/nsinit/c1/cpu.cfs_quota_us: EINVAL`.
 */
export class CgroupError extends Error {
  override readonly name = 'CgroupError';
  readonly code: CgroupErrorCode;
  readonly op: CgroupOp;
  declare readonly path?: string;
  declare readonly errno?: string;
  declare readonly data?: string;
  declare readonly field?: string;

  constructor(code: CgroupErrorCode, op: CgroupOp, message: string, details: CgroupErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.op = op;
    if (details.path !== undefined) this.path = details.path;
    if (details.errno !== undefined) this.errno = details.errno;
    if (details.data !== undefined) this.data = details.data;
    if (details.field !== undefined) this.field = details.field;
  }
}

/** Map an errno name to a {@link CgroupErrorCode}. */
export function codeFromErrno(errno: string | undefined): CgroupErrorCode {
  switch (errno) {
    case 'ENOENT':
    case 'ESRCH':
    case 'ENOTDIR':
      return 'NotFound';
    case 'EINVAL':
    case 'ERANGE':
    case 'EOVERFLOW':
      return 'Invalid';
    case 'EBUSY':
    case 'ENOTEMPTY':
    case 'EAGAIN':
      return 'Busy';
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return 'PermissionDenied';
    case 'EOPNOTSUPP':
    case 'ENOTSUP':
    case 'ENODEV':
    case 'ENOSYS':
      return 'Unsupported';
    default:
      return 'System';
  }
}

/** The errno name (`'EINVAL'`) of a Node system error, if it is one. */
export function errnoOf(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** Wrap a failed filesystem call into a {@link CgroupError}. */
export function fsError(op: CgroupOp, path: string, err: unknown, data?: string): CgroupError {
  if (err instanceof CgroupError) return err;
  const errno = errnoOf(err) ?? 'EUNKNOWN';
  const what = op === 'write' ? `write "${data ?? ''}" to ${path}` : `${op} ${path}`;
  const details: CgroupErrorDetails = { path, errno, cause: err };
  if (data !== undefined) details.data = data;
  return new CgroupError(codeFromErrno(errno), op, `${what}: ${errno}`, details);
}

/** `linux.resources.<field>`, the name used in messages. */
export function fieldName(field: string): string {
  return field === ''
    ? 'linux.resources'
    : field.startsWith('[')
      ? `linux.resources${field}`
      : `linux.resources.${field}`;
}

/** An `Invalid` error about one field of the OCI resources, e.g. `linux.resources.memory.limit`. */
export function invalidField(field: string, problem: string, file?: string): CgroupError {
  const where = file === undefined ? '' : ` (written to ${file})`;
  return new CgroupError('Invalid', 'write', `${fieldName(field)}: ${problem}${where}`, { field });
}

/** An error about one field that cannot be applied here (`Unsupported` unless `code` says otherwise). */
export function fieldError(
  field: string,
  message: string,
  details: CgroupErrorDetails = {},
  code: CgroupErrorCode = 'Unsupported',
): CgroupError {
  return new CgroupError(code, 'write', `${fieldName(field)}: ${message}`, { ...details, field });
}
