/** What kind of failure a {@link SeccompError} reports. */
export type SeccompErrorCode =
  /** A field has a wrong type or value (unknown action, operator, flag, architecture, index > 5, ...). */
  | 'Invalid'
  /** Valid per the spec, but not implemented: `SCMP_ACT_NOTIFY`, an unknown target architecture. */
  | 'Unsupported'
  /** The program would exceed the kernel's limit of 4096 instructions. */
  | 'TooLarge';

/**
 * Every failure of {@link compileSeccomp}. `path` is the JSON path of the offending value, and the
 * message starts with it, e.g.
 * `linux.seccomp.syscalls[3].args[0].op: unknown operator "SCMP_CMP_FOO"`.
 */
export class SeccompError extends Error {
  override readonly name = 'SeccompError';
  readonly code: SeccompErrorCode;
  readonly path: string;

  constructor(code: SeccompErrorCode, path: string, message: string) {
    super(`${path}: ${message}`);
    this.code = code;
    this.path = path;
  }
}
