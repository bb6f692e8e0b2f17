const BRAND = Symbol.for('@tsc/libcontainer.ContainerError');

/** Why a container operation failed. */
export type ContainerErrorCode =
  | 'InvalidConfig'
  | 'InvalidArgument'
  | 'NotFound'
  | 'AlreadyExists'
  | 'InvalidState'
  | 'StartFailed'
  | 'HookFailed'
  | 'Unsupported'
  | 'System';

/**
 * An error from a container operation. `message` is one line that names what
 * was wrong; `step` names the start-up step that failed, when one did; the
 * underlying error (a SysError with its errno, a CgroupError, a ConfigError)
 * is the `cause`.
 */
export class ContainerError extends Error {
  readonly code: ContainerErrorCode;
  /** The container id, when the error concerns one. */
  readonly id?: string;
  /** The start-up step that failed (`mount proc on /proc`), if any. */
  readonly step?: string;

  constructor(
    code: ContainerErrorCode,
    message: string,
    opts: { id?: string; step?: string; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    if (opts.id !== undefined) this.id = opts.id;
    if (opts.step !== undefined) this.step = opts.step;
    Object.defineProperty(this, BRAND, { value: true });
  }

  static {
    Object.defineProperty(ContainerError.prototype, 'name', { value: 'ContainerError', enumerable: false });
  }
}

/** True for a {@link ContainerError}, also one from another copy of this package. */
export function isContainerError(e: unknown): e is ContainerError {
  return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[BRAND] === true;
}
