import type { NamespaceType } from './kinds.js';

const BRAND = Symbol.for('@tsc/namespaces.NamespaceError');

/**
 * What a {@link NamespaceError} reports:
 * - `NotFound`: the path or process does not exist;
 * - `NotNamespace`: the path exists but is not a namespace file (not on nsfs);
 * - `WrongType`: the path is a namespace of another kind than expected;
 * - `InvalidArgument`: an unknown namespace type name, a bad pid;
 * - `PermissionDenied`: the file cannot be read by this process;
 * - `System`: any other failure (the errno is in the message and `cause`).
 */
export type NamespaceErrorCode =
  | 'NotFound'
  | 'NotNamespace'
  | 'WrongType'
  | 'InvalidArgument'
  | 'PermissionDenied'
  | 'System';

/** Extra facts of a {@link NamespaceError}. */
export interface NamespaceErrorDetails {
  /** The file concerned. */
  path?: string;
  /** The config field concerned (`linux.namespaces[2].path`), when the caller named one. */
  field?: string;
  /** The kind that was expected. */
  expected?: NamespaceType;
  /** The kind that was found. */
  actual?: NamespaceType;
  cause?: unknown;
}

/**
 * Every failure of this package. The message is one line naming the field (when
 * given), the path and what is wrong, e.g.
 * `linux.namespaces[2].path: /run/netns/x is a uts namespace, not network`.
 */
export class NamespaceError extends Error {
  readonly code: NamespaceErrorCode;
  declare readonly path?: string;
  declare readonly field?: string;
  declare readonly expected?: NamespaceType;
  declare readonly actual?: NamespaceType;

  constructor(code: NamespaceErrorCode, message: string, details: NamespaceErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    if (details.path !== undefined) this.path = details.path;
    if (details.field !== undefined) this.field = details.field;
    if (details.expected !== undefined) this.expected = details.expected;
    if (details.actual !== undefined) this.actual = details.actual;
    Object.defineProperty(this, BRAND, { value: true });
  }

  static {
    Object.defineProperty(NamespaceError.prototype, 'name', { value: 'NamespaceError', enumerable: false });
  }
}

/** True for a {@link NamespaceError}, also one from another copy of this package. */
export function isNamespaceError(e: unknown): e is NamespaceError {
  return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[BRAND] === true;
}
