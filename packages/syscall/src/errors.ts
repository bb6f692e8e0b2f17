import { errnoDescription, errnoName } from './errno.js';

const BRAND = Symbol.for('@tsc/syscall.SysError');

/**
 * A failed system call: the errno, the syscall, and what the caller was doing.
 *
 * The message reads `<op>: <ERRNO> (<description>)`, for example
 * `mount proc on /proc: EPERM (operation not permitted)`.
 */
export class SysError extends Error {
  /** The errno number, e.g. 1. */
  readonly errno: number;
  /** The errno name, e.g. `"EPERM"`. */
  readonly code: string;
  /** The raw syscall that failed, e.g. `"mount"`. */
  readonly syscall: string;
  /** What the caller was doing, in words (`"mount proc on /proc"`). */
  readonly op: string;
  /** A path the operation concerned, when there is one. */
  readonly path?: string;

  constructor(init: { errno: number; syscall: string; op?: string; path?: string; cause?: unknown }) {
    const op = init.op ?? init.syscall;
    super(`${op}: ${errnoName(init.errno)} (${errnoDescription(init.errno)})`, { cause: init.cause });
    this.errno = init.errno;
    this.code = errnoName(init.errno);
    this.syscall = init.syscall;
    this.op = op;
    if (init.path !== undefined) this.path = init.path;
    Object.defineProperty(this, BRAND, { value: true });
  }

  static {
    Object.defineProperty(SysError.prototype, 'name', { value: 'SysError', enumerable: false });
  }
}

/** True for a {@link SysError}, also one from another copy of this package. */
export function isSysError(e: unknown): e is SysError {
  return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[BRAND] === true;
}
