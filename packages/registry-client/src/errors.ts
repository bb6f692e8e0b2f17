const BRAND = Symbol.for('@tsc/registry-client.RegistryError');

/**
 * What a {@link RegistryError} reports:
 * - `Http`: the registry answered with an unexpected status (see `status`, `registryCode`);
 * - `Unauthorized` / `Denied`: 401 after authenticating / 403;
 * - `NotFound`: a manifest, blob or repository that the registry does not have (404);
 * - `Network`: the connection failed (refused, reset, timeout, TLS; `errno` has the code);
 * - `TooLarge`: a manifest over the size limit;
 * - `Unsupported`: something this client refuses (schema 1, foreign layers without usable URLs);
 * - `Protocol`: the registry broke the protocol (no Location on an upload, wrong digest header);
 * - `Auth`: the token service or the credential store failed;
 * - `Aborted`: the caller's AbortSignal fired.
 */
export type RegistryErrorCode =
  | 'Http'
  | 'Unauthorized'
  | 'Denied'
  | 'NotFound'
  | 'Network'
  | 'TooLarge'
  | 'Unsupported'
  | 'Protocol'
  | 'Auth'
  | 'Aborted';

/** One error of the registry's JSON error body (`{"errors":[{code,message,detail}]}`). */
export interface RegistryErrorDetail {
  code: string;
  message: string;
  detail?: unknown;
}

/** Every failure of the registry client: one line naming the operation and the URL (never credentials). */
export class RegistryError extends Error {
  readonly code: RegistryErrorCode;
  /** The HTTP status, when the registry answered. */
  readonly status: number | undefined;
  /** The first error code of the registry's error body (`MANIFEST_UNKNOWN`, `DENIED`…). */
  readonly registryCode: string | undefined;
  /** Every error of the registry's error body. */
  readonly errors: RegistryErrorDetail[];
  /** What was being done: `GET manifest`, `PUT blob upload`, `token`… */
  readonly operation: string | undefined;
  /** The URL, without credentials or query secrets. */
  readonly url: string | undefined;
  /** The errno-like code of a network failure (`ECONNREFUSED`, `ECONNRESET`…). */
  readonly errno: string | undefined;

  constructor(
    code: RegistryErrorCode,
    message: string,
    options: {
      status?: number;
      errors?: RegistryErrorDetail[];
      operation?: string;
      url?: string;
      errno?: string;
      cause?: unknown;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RegistryError';
    this.code = code;
    this.status = options.status;
    this.errors = options.errors ?? [];
    this.registryCode = this.errors[0]?.code;
    this.operation = options.operation;
    this.url = options.url;
    this.errno = options.errno;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** True for failures worth retrying: 408, 429, 5xx and network errors. */
  get temporary(): boolean {
    if (this.code === 'Network') return true;
    const s = this.status;
    return s === 408 || s === 429 || s === 500 || s === 502 || s === 503 || s === 504;
  }
}

/** True for a {@link RegistryError} from any copy of this package. */
export function isRegistryError(e: unknown): e is RegistryError {
  return typeof e === 'object' && e !== null && (e as Record<symbol, unknown>)[BRAND] === true;
}

/** A URL as it may be shown: no user info, and no query (upload URLs carry state tokens). */
export function safeUrl(url: string | URL): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    u.search = '';
    u.hash = '';
    return u.toString();
  } catch {
    return '<invalid URL>';
  }
}

/** Parses the distribution-spec error body; tolerates anything. */
export function parseErrorBody(text: string): RegistryErrorDetail[] {
  try {
    const doc = JSON.parse(text) as { errors?: unknown; details?: unknown };
    if (Array.isArray(doc.errors)) {
      return doc.errors
        .filter((e): e is Record<string, unknown> => typeof e === 'object' && e !== null)
        .map((e) => ({
          code: typeof e.code === 'string' ? e.code : 'UNKNOWN',
          message: typeof e.message === 'string' ? e.message : '',
          ...(e.detail === undefined ? {} : { detail: e.detail }),
        }));
    }
  } catch {
    // not JSON
  }
  return [];
}

const NETWORK_HINTS: Record<string, string> = {
  ECONNREFUSED: 'is the registry running?',
  ENOTFOUND: 'unknown host',
  EAI_AGAIN: 'name resolution failed',
  ETIMEDOUT: 'timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connect timed out',
  UND_ERR_HEADERS_TIMEOUT: 'no response headers in time',
  UND_ERR_BODY_TIMEOUT: 'the response body stalled',
  UND_ERR_SOCKET: 'the connection closed',
  ECONNRESET: 'the connection was reset',
  EPIPE: 'the connection was closed',
};

/** The errno-like code of a Node/undici network error (also from its `cause`). */
export function networkCode(e: unknown): string | undefined {
  for (let x: unknown = e, i = 0; x && i < 4; x = (x as { cause?: unknown }).cause, i++) {
    const code = (x as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** Wraps a failed connection: `connect ECONNREFUSED 127.0.0.1:5999 (is the registry running?)`. */
export function networkError(e: unknown, operation: string, url: string): RegistryError {
  if (isRegistryError(e)) return e;
  const code = networkCode(e);
  if (code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR' || (e as Error)?.name === 'AbortError')
    return new RegistryError('Aborted', `${operation} ${safeUrl(url)}: aborted`, {
      operation,
      url: safeUrl(url),
      cause: e,
    });
  let text = e instanceof Error ? e.message : String(e);
  const cause = (e as { cause?: unknown })?.cause;
  if (cause instanceof Error && cause.message && !text.includes(cause.message)) text = cause.message;
  const hint = code ? NETWORK_HINTS[code] : undefined;
  if (code && !text.includes(code)) text = `${text} (${code})`;
  if (hint && !text.includes(hint)) text = `${text} (${hint})`;
  return new RegistryError('Network', text, {
    operation,
    url: safeUrl(url),
    ...(code === undefined ? {} : { errno: code }),
    cause: e,
  });
}
