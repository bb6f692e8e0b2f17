const BRAND = Symbol.for('@tsc/image.ImageError');

/**
 * What an {@link ImageError} reports:
 * - `InvalidReference`: an image name that Docker's grammar does not accept;
 * - `InvalidDigest`: a digest that is not `algorithm:hex` of a supported algorithm;
 * - `InvalidDocument`: a manifest, index or config that does not match its schema
 *   (the message names the JSON path);
 * - `Unsupported`: a media type or schema this package does not handle (Docker schema 1);
 * - `DigestMismatch` / `SizeMismatch`: content that does not hash to, or is not as long as,
 *   what its descriptor says (the content was discarded);
 * - `NotFound`: a blob or reference that the store does not hold;
 * - `NoMatchingPlatform`: an index without a manifest for the wanted platform;
 * - `System`: a file-system failure (the errno and the operation are in the message).
 */
export type ImageErrorCode =
  | 'InvalidReference'
  | 'InvalidDigest'
  | 'InvalidDocument'
  | 'Unsupported'
  | 'DigestMismatch'
  | 'SizeMismatch'
  | 'NotFound'
  | 'NoMatchingPlatform'
  | 'System';

/** Every failure of this package: one line that names the input, the path or the digest. */
export class ImageError extends Error {
  readonly code: ImageErrorCode;
  /** The errno name (`ENOENT`, `ENOSPC`…) when a system call failed. */
  readonly errno: string | undefined;

  constructor(code: ImageErrorCode, message: string, options?: { cause?: unknown; errno?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ImageError';
    this.code = code;
    this.errno = options?.errno;
    Object.defineProperty(this, BRAND, { value: true });
  }
}

/** True for an {@link ImageError} from any copy of this package. */
export function isImageError(e: unknown): e is ImageError {
  return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[BRAND] === true;
}

/** Wraps a Node file-system error as `System` with `op path: ECODE (text)`. */
export function fsError(op: string, path: string, e: unknown): ImageError {
  if (isImageError(e)) return e;
  const err = e as NodeJS.ErrnoException;
  const code = typeof err?.code === 'string' ? err.code : undefined;
  const text = err instanceof Error ? err.message.replace(/^[A-Z]+: /, '').replace(/, .*$/, '') : String(e);
  return new ImageError(
    code === 'ENOENT' ? 'NotFound' : 'System',
    `${op} ${path}: ${code ?? 'error'}${code && text !== code ? ` (${text})` : ''}`,
    code === undefined ? { cause: e } : { cause: e, errno: code },
  );
}
