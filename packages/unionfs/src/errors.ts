const BRAND = Symbol.for('@tsc/unionfs.UnionfsError');

/**
 * What a {@link UnionfsError} reports:
 * - `Escape`: a layer entry that would reach outside the layer (`..`, a hardlink out of it);
 * - `InvalidTar`: a malformed archive (bad checksum, truncated, a bad PAX record);
 * - `Unsupported`: something this package does not unpack (GNU sparse files, multi-volume),
 *   or a driver this kernel or filesystem lacks;
 * - `DigestMismatch` / `SizeMismatch`: the blob or its uncompressed tar is not what was expected;
 * - `NotFound`: a layer or container the store does not hold;
 * - `InUse`: a layer still referenced, a container still mounted by someone else;
 * - `System`: a system call failed (the operation and errno are in the message).
 */
export type UnionfsErrorCode =
  | 'Escape'
  | 'InvalidTar'
  | 'Unsupported'
  | 'DigestMismatch'
  | 'SizeMismatch'
  | 'NotFound'
  | 'InUse'
  | 'System';

/** Every failure of this package: one line naming the layer entry, the path or the digest. */
export class UnionfsError extends Error {
  readonly code: UnionfsErrorCode;
  constructor(code: UnionfsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'UnionfsError';
    this.code = code;
    Object.defineProperty(this, BRAND, { value: true });
  }
}

/** True for a {@link UnionfsError} from any copy of this package. */
export function isUnionfsError(e: unknown): e is UnionfsError {
  return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[BRAND] === true;
}
