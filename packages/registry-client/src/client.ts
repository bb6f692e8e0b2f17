/**
 * The HTTP side: one {@link RegistryClient} holds, per registry host, the TLS settings, the
 * scheme found by the first ping, the auth challenge and a token cache; kept-alive connections
 * for `GET`/`HEAD` (our own HTTP/1.1 client, `http1.ts`) and, loaded only for requests with a
 * body (push), an undici `Agent` (bounded connections). Requests retry on 408/429/5xx and network errors with
 * exponential backoff, and authenticate again once on 401.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import { DEFAULT_DOMAIN, DEFAULT_REGISTRY_HOST } from '@tsc/image';
import type { Agent, Dispatcher } from 'undici';
import {
  type Challenge,
  type CredentialSource,
  type Credentials,
  dockerConfigPath,
  dockerCredentials,
  parseWWWAuthenticate,
} from './auth.js';
import {
  isRegistryError,
  networkCode,
  networkError,
  parseErrorBody,
  RegistryError,
  safeUrl,
} from './errors.js';
import { type RawBody, RawPool, type RawResponse, type RawTlsOptions, rawRequest } from './http1.js';

/** undici, loaded for the first request with a body: a pull never needs it (~100 ms to load). */
let undiciModule: Promise<typeof import('undici')> | undefined;
const undici = () => {
  undiciModule ??= import('undici');
  return undiciModule;
};

/** How often and how patiently to retry. */
export interface RetryOptions {
  /** Attempts in all, the first included (default 4). */
  attempts?: number;
  /** The first backoff in ms, doubled each time, with ±10 % jitter (default 500). */
  baseDelayMs?: number;
  /** The longest backoff (default 5000). */
  maxDelayMs?: number;
}

/** Options of a {@link RegistryClient}. */
export interface ClientOptions {
  /**
   * Credentials per host: a function, a fixed pair for every host, or (default) Docker's
   * config.json (`dockerConfig` or `$DOCKER_CONFIG/config.json`), read when a registry asks.
   */
  credentials?: CredentialSource | Credentials;
  /** Docker's config.json to read credentials from. */
  dockerConfig?: string;
  /**
   * Hosts (`host:port` or `host`) that may be reached over plain HTTP, or HTTPS without
   * certificate checks. `localhost`, `127.0.0.0/8` and `::1` always may.
   */
  insecureRegistries?: string[];
  /** A PEM file of extra CA certificates trusted for every registry. */
  caFile?: string;
  /** Docker's per-host CA directory: `<certsDir>/<host:port>/*.crt` (default `/etc/docker/certs.d`). */
  certsDir?: string;
  /** Parallel connections per registry (default 4). */
  connections?: number;
  retry?: RetryOptions;
  userAgent?: string;
}

/** A request body that can be made again (for retries and re-authentication). */
export type BodyFactory = () => Buffer | string | Readable;

/** One request as the pull/push code asks for it. */
export interface RegistryRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** A path below the registry's origin (`/v2/…`) or an absolute URL (upload locations, redirects). */
  url: string;
  /** What is being done, for messages: `GET manifest 127.0.0.1:5000/x:latest`. */
  operation: string;
  /** Token scopes the request needs (`repository:x:pull`). */
  scopes: string[];
  headers?: Record<string, string>;
  body?: BodyFactory;
  /** Statuses returned to the caller as they are (default: 2xx). 3xx are followed unless listed. */
  accept?: number[];
  signal?: AbortSignal | undefined;
  /** Retry 5xx/network errors (default true). */
  retry?: boolean;
  /** No ping, no credentials: for URLs outside the registry (foreign layers). */
  anonymous?: boolean;
}

/** A response body: read it (async iteration), or dump or destroy it. */
export interface ResponseBody extends AsyncIterable<Buffer> {
  dump(): Promise<unknown>;
  destroy(error?: Error): unknown;
}

/** A response: status, headers (lowercase) and the body stream (consume or dump it). */
export interface RegistryResponse {
  status: number;
  headers: Record<string, string>;
  body: ResponseBody;
  /** The URL that answered (after redirects). */
  url: string;
}

/**
 * A response of {@link RegistryClient.stream}: the body is read with `consume` (pieces are views
 * into a reused buffer, valid only during the callback).
 */
export interface RegistryStreamResponse {
  status: number;
  headers: Record<string, string>;
  body: RawBody;
  url: string;
}

/** What withRetry and the request loop need of a response, from undici or the raw client. */
interface AnyResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  body: AsyncIterable<Buffer> & { dump(): Promise<unknown> };
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\]|::1)$/;

/** True for hosts that are plain HTTP by default: loopback. */
export function isLoopbackHost(host: string): boolean {
  const h = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
  return LOOPBACK.test(h);
}

const TLS_FALLBACK_CODES = new Set([
  'EPROTO',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_PACKET_LENGTH_TOO_LONG',
]);

/** TLS verification failures: retrying cannot help. */
function isCertificateError(e: unknown): boolean {
  const code = networkCode(e) ?? '';
  return /^(ERR_TLS_|UNABLE_TO_|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|HOSTNAME_MISMATCH)/.test(
    code,
  );
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

function headerMap(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h))
    if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

async function readText(body: AsyncIterable<Buffer>, limit = 64 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of body as AsyncIterable<Buffer>) {
      if (n < limit) chunks.push(c);
      n += c.length;
    }
  } catch {
    // an error body that breaks off still gives its beginning
  }
  return Buffer.concat(chunks).toString('utf8').slice(0, limit);
}

/** Turns a non-2xx response into a {@link RegistryError} (the body's error codes included). */
export async function httpError(
  res: { status: number; body: AsyncIterable<Buffer>; url: string },
  operation: string,
): Promise<RegistryError> {
  const text = await readText(res.body);
  const errors = parseErrorBody(text);
  const s = res.status;
  const code = s === 401 ? 'Unauthorized' : s === 403 ? 'Denied' : s === 404 ? 'NotFound' : 'Http';
  const detail = errors.length
    ? errors.map((e) => `${e.code}${e.message ? `: ${e.message}` : ''}`).join('; ')
    : text.trim() && !/^\s*</.test(text)
      ? text.trim().split('\n')[0]?.slice(0, 200)
      : undefined;
  return new RegistryError(code, `${operation}: HTTP ${s}${detail ? ` (${detail})` : ''}`, {
    status: s,
    errors,
    operation,
    url: safeUrl(res.url),
  });
}

interface Token {
  value: string;
  expires: number;
}

/** The state kept for one registry host. */
class Session {
  readonly host: string;
  readonly #client: RegistryClient;
  #origin: string | undefined;
  #pinging: Promise<void> | undefined;
  #challenge: Challenge | undefined;
  #credentials: Promise<Credentials | undefined> | undefined;
  #tokens = new Map<string, Token>();
  #tokenFetches = new Map<string, Promise<Token>>();
  readonly #insecure: boolean;

  constructor(client: RegistryClient, host: string, insecure: boolean) {
    this.#client = client;
    this.host = host;
    this.#insecure = insecure;
  }

  /** The origin (`https://host:port`) found by the ping. */
  get origin(): string {
    return this.#origin ?? `https://${this.host}`;
  }

  /** `GET /v2/` once: decides http or https for insecure hosts and learns the auth challenge. */
  async ping(signal?: AbortSignal): Promise<void> {
    if (this.#origin !== undefined) return;
    this.#pinging ??= this.#ping(signal).finally(() => {
      this.#pinging = undefined;
    });
    return this.#pinging;
  }

  async #ping(signal?: AbortSignal): Promise<void> {
    const schemes = this.#insecure ? ['https', 'http'] : ['https'];
    let last: unknown;
    for (const scheme of schemes) {
      const url = `${scheme}://${this.host}/v2/`;
      try {
        const res = await this.#client.withRetry(
          signal,
          true,
          () => this.#client.rawGet(url, { 'user-agent': this.#client.userAgent }, signal),
          // Not retried: a TLS mismatch (falls back to HTTP below), and a refused connection or an
          // unknown host at the first contact (no registry there: fail at once, not after backoff).
          (e) => {
            const code = networkCode(e) ?? '';
            return (
              TLS_FALLBACK_CODES.has(code) ||
              code.startsWith('ERR_SSL') ||
              code === 'ECONNREFUSED' ||
              code === 'ENOTFOUND'
            );
          },
        );
        await res.body.dump();
        if (res.statusCode === 401) {
          this.#learnChallenge(headerMap(res.headers)['www-authenticate']);
        }
        // Other statuses (a 404 from servers without a /v2/ root) are not fatal: the requests tell.
        this.#origin = `${scheme}://${this.host}`;
        return;
      } catch (e) {
        last = e;
        const code = networkCode(e) ?? '';
        if (scheme === 'https' && (TLS_FALLBACK_CODES.has(code) || code.startsWith('ERR_SSL'))) continue;
        throw networkError(e, `ping ${this.host}`, url);
      }
    }
    throw networkError(last, `ping ${this.host}`, `http://${this.host}/v2/`);
  }

  #learnChallenge(header: string | undefined): void {
    if (!header) return;
    const all = parseWWWAuthenticate(header);
    this.#challenge =
      all.find((c) => c.scheme === 'bearer') ?? all.find((c) => c.scheme === 'basic') ?? this.#challenge;
  }

  credentials(): Promise<Credentials | undefined> {
    this.#credentials ??= this.#client.credentialsFor(this.host);
    return this.#credentials;
  }

  /** The Authorization header for `scopes`, fetching a token when the registry wants Bearer. */
  async authorization(scopes: string[], signal?: AbortSignal): Promise<string | undefined> {
    const ch = this.#challenge;
    if (!ch) return undefined;
    if (ch.scheme === 'basic') {
      const c = await this.credentials();
      if (!c) return undefined;
      return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
    }
    if (ch.scheme !== 'bearer') return undefined;
    const all = [...new Set([...scopes, ...(ch.params.scope ? ch.params.scope.split(' ') : [])])].sort();
    const key = all.join(' ');
    const cached = this.#tokens.get(key);
    if (cached && cached.expires > Date.now()) return `Bearer ${cached.value}`;
    let p = this.#tokenFetches.get(key);
    if (!p) {
      p = this.#fetchToken(ch, all, signal).finally(() => this.#tokenFetches.delete(key));
      this.#tokenFetches.set(key, p);
    }
    const t = await p;
    this.#tokens.set(key, t);
    return `Bearer ${t.value}`;
  }

  async #fetchToken(ch: Challenge, scopes: string[], signal?: AbortSignal): Promise<Token> {
    const realm = ch.params.realm;
    if (!realm) throw new RegistryError('Auth', `${this.host}: the Bearer challenge has no realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch {
      throw new RegistryError('Auth', `${this.host}: the token realm "${realm}" is not a URL`);
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      throw new RegistryError('Auth', `${this.host}: the token realm ${safeUrl(url)} is not http(s)`);
    if (ch.params.service) url.searchParams.set('service', ch.params.service);
    for (const s of scopes) url.searchParams.append('scope', s);
    const headers: Record<string, string> = { 'user-agent': this.#client.userAgent };
    const creds = await this.credentials();
    // Credentials go only to an HTTPS realm, or to plain HTTP on this registry's own (insecure) host or loopback.
    if (
      creds &&
      (url.protocol === 'https:' ||
        url.host === this.host ||
        isLoopbackHost(url.host) ||
        this.#client.isInsecure(url.host))
    ) {
      headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
      url.searchParams.set('account', creds.username);
    }
    const operation = `token for ${this.host}`;
    let res: RawResponse;
    try {
      res = await this.#client.withRetry(signal, true, () =>
        this.#client.rawGet(url.toString(), headers, signal),
      );
    } catch (e) {
      const err = networkError(e, operation, url.toString());
      if (err.code !== 'Network') throw err;
      throw new RegistryError('Auth', `token service ${safeUrl(url)}: ${err.message}`, {
        operation,
        url: safeUrl(url),
        ...(err.errno ? { errno: err.errno } : {}),
        cause: e,
      });
    }
    const resp: RegistryResponse = {
      status: res.statusCode,
      headers: headerMap(res.headers),
      body: res.body,
      url: url.toString(),
    };
    if (res.statusCode !== 200) {
      const err = await httpError(resp, `token service ${safeUrl(url)}`);
      if (res.statusCode === 401 || res.statusCode === 403)
        throw new RegistryError(
          'Unauthorized',
          `${this.host}: authentication failed${creds ? ` for user "${creds.username}"` : ' (no credentials; nsinit login?)'}: ${err.message}`,
          { status: res.statusCode, errors: err.errors, operation, url: safeUrl(url) },
        );
      throw err;
    }
    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      doc = JSON.parse(await readText(res.body, 1 << 20)) as typeof doc;
    } catch {
      throw new RegistryError('Auth', `token service ${safeUrl(url)}: the answer is not JSON`);
    }
    const value =
      typeof doc.token === 'string'
        ? doc.token
        : typeof doc.access_token === 'string'
          ? doc.access_token
          : undefined;
    if (!value) throw new RegistryError('Auth', `token service ${safeUrl(url)}: the answer has no token`);
    const ttl = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : 60;
    // Renew a little early (at least 60 s of validity per the spec's default; 10 s margin).
    return { value, expires: Date.now() + Math.max(ttl - 10, 1) * 1000 };
  }

  /** Forget tokens after a 401 and take the new challenge. */
  reauthenticate(header: string | undefined): void {
    this.#tokens.clear();
    this.#learnChallenge(header);
  }

  /** Whether an anonymous-looking 401 came although we had no challenge yet. */
  get hasChallenge(): boolean {
    return this.#challenge !== undefined;
  }
}

/**
 * A registry client: connection pools, TLS settings, credentials and tokens per host.
 * Reuse one for many operations; {@link close} it at the end.
 */
export class RegistryClient {
  readonly userAgent: string;
  readonly #options: ClientOptions;
  readonly #sessions = new Map<string, Session>();
  readonly #agents = new Map<string, Promise<Agent>>();
  readonly #tls = new Map<string, RawTlsOptions>();
  readonly #pool = new RawPool();
  readonly #retry: Required<RetryOptions>;
  readonly #insecure: Set<string>;

  constructor(options: ClientOptions = {}) {
    this.#options = options;
    this.userAgent = options.userAgent ?? 'tsc-registry-client/0.1';
    this.#retry = {
      attempts: options.retry?.attempts ?? 4,
      baseDelayMs: options.retry?.baseDelayMs ?? 500,
      maxDelayMs: options.retry?.maxDelayMs ?? 5000,
    };
    this.#insecure = new Set(options.insecureRegistries ?? []);
  }

  /** True when `host` may use plain HTTP or unchecked HTTPS. */
  isInsecure(host: string): boolean {
    return isLoopbackHost(host) || this.#insecure.has(host) || this.#insecure.has(host.replace(/:\d+$/, ''));
  }

  /** The CA certificates for `host`: `caFile` and `<certsDir>/<host>/*.crt`, added to Node's roots. */
  #caFor(host: string): string[] | undefined {
    const extra: string[] = [];
    if (this.#options.caFile) {
      try {
        extra.push(readFileSync(this.#options.caFile, 'utf8'));
      } catch (e) {
        throw new RegistryError(
          'Network',
          `--ca-file ${this.#options.caFile}: ${(e as NodeJS.ErrnoException).code ?? 'unreadable'}`,
        );
      }
    }
    const dir = join(this.#options.certsDir ?? '/etc/docker/certs.d', host);
    if (existsSync(dir)) {
      for (const f of readdirSync(dir)
        .filter((n) => n.endsWith('.crt'))
        .sort())
        extra.push(readFileSync(join(dir, f), 'utf8'));
    }
    return extra.length ? [...rootCertificates, ...extra] : undefined;
  }

  /** TLS settings for `host`: its CAs, or no verification for an insecure host without one. */
  #tlsFor(host: string): RawTlsOptions {
    let t = this.#tls.get(host);
    if (!t) {
      const ca = this.#caFor(host);
      t = {
        ...(ca ? { ca } : {}),
        // An insecure registry reached over HTTPS is not verified, as in Docker.
        ...(this.isInsecure(host) && !ca ? { rejectUnauthorized: false } : {}),
      };
      this.#tls.set(host, t);
    }
    return t;
  }

  /** undici's connection pool for `host`, for requests with a body. */
  agentFor(host: string): Promise<Agent> {
    let a = this.#agents.get(host);
    if (!a) {
      const tlsOptions = this.#tlsFor(host);
      a = undici().then(
        ({ Agent }) =>
          new Agent({
            connections: this.#options.connections ?? 4,
            connect: { ...tlsOptions },
            headersTimeout: 60_000,
            bodyTimeout: 60_000,
          }),
      );
      this.#agents.set(host, a);
    }
    return a;
  }

  /** A `GET` (or `HEAD`) on a kept-alive connection of this client. @internal */
  rawGet(
    url: string,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
    method: 'GET' | 'HEAD' = 'GET',
  ): Promise<RawResponse> {
    return rawRequest(method, url, {
      headers,
      signal,
      tls: this.#tlsFor(new URL(url).host),
      pool: this.#pool,
    });
  }

  /** @internal */
  session(host: string): Session {
    let s = this.#sessions.get(host);
    if (!s) {
      s = new Session(this, host, this.isInsecure(host));
      this.#sessions.set(host, s);
    }
    return s;
  }

  /** @internal */
  async credentialsFor(host: string): Promise<Credentials | undefined> {
    const c = this.#options.credentials;
    if (typeof c === 'function') return c(host);
    if (c) return c;
    return dockerCredentials(host, this.#options.dockerConfig ?? dockerConfigPath());
  }

  /** Runs `attempt` until it succeeds, retrying network errors and temporary statuses. @internal */
  async withRetry<R extends AnyResponse>(
    signal: AbortSignal | undefined,
    enabled: boolean,
    attempt: () => Promise<R>,
    fatal: (e: unknown) => boolean = () => false,
  ): Promise<R> {
    const max = enabled ? this.#retry.attempts : 1;
    for (let i = 1; ; i++) {
      let res: R;
      try {
        res = await attempt();
      } catch (e) {
        if (signal?.aborted || i >= max || fatal(e) || isRegistryError(e) || isCertificateError(e)) throw e;
        const code = networkCode(e);
        if (code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') throw e;
        await sleep(this.backoff(i), signal);
        continue;
      }
      const s = res.statusCode;
      if (i < max && (s === 408 || s === 429 || s === 500 || s === 502 || s === 503 || s === 504)) {
        await res.body.dump().catch(() => {});
        const retryAfter = Number(headerMap(res.headers)['retry-after']);
        await sleep(
          Number.isFinite(retryAfter) && retryAfter > 0
            ? Math.min(retryAfter * 1000, this.#retry.maxDelayMs)
            : this.backoff(i),
          signal,
        );
        continue;
      }
      return res;
    }
  }

  /** The backoff before attempt `i + 1`. @internal */
  backoff(i: number): number {
    const d = Math.min(this.#retry.baseDelayMs * 2 ** (i - 1), this.#retry.maxDelayMs);
    return Math.round(d * (0.9 + Math.random() * 0.2));
  }

  /** Attempts in all for one request or blob (from the retry options). */
  get attempts(): number {
    return this.#retry.attempts;
  }

  /**
   * Sends one request to `host`: pings first, authenticates (Basic or a Bearer token for the
   * scopes), retries temporary failures, authenticates again once on 401, follows redirects
   * (without credentials to other hosts). Non-accepted statuses become {@link RegistryError}s.
   */
  async send(registry: string, req: RegistryRequest): Promise<RegistryResponse> {
    const method = req.method;
    const res =
      (method === 'GET' || method === 'HEAD') && !req.body
        ? await this.#exchange<RawResponse>(registry, req, (url, headers) =>
            this.rawGet(url, headers, req.signal, method),
          )
        : await this.#exchange<Dispatcher.ResponseData>(registry, req, async (url, headers) => {
            const { request } = await undici();
            return request(url, {
              method,
              headers,
              dispatcher: await this.agentFor(new URL(url).host),
              ...(req.body ? { body: req.body() } : {}),
              ...(req.signal ? { signal: req.signal } : {}),
            });
          });
    return { status: res.status, headers: res.headers, body: res.body, url: res.url };
  }

  /**
   * {@link send} for a `GET` whose body is big (a blob): the same pings, auth, retries and
   * redirects, but each attempt is one connection of our own that reads into a reused buffer
   * (see `http1.ts`); the body is read with `consume`.
   */
  async stream(
    registry: string,
    req: Omit<RegistryRequest, 'method' | 'body'>,
  ): Promise<RegistryStreamResponse> {
    const res = await this.#exchange<RawResponse>(registry, { ...req, method: 'GET' }, (url, headers) =>
      this.rawGet(url, headers, req.signal),
    );
    return { status: res.status, headers: res.headers, body: res.body, url: res.url };
  }

  async #exchange<R extends AnyResponse>(
    registry: string,
    req: RegistryRequest,
    transport: (url: string, headers: Record<string, string>, sameHost: boolean, host: string) => Promise<R>,
  ): Promise<{ status: number; headers: Record<string, string>; body: R['body']; url: string }> {
    // Docker Hub is written docker.io in references and served by registry-1.docker.io.
    const host = registry === DEFAULT_DOMAIN ? DEFAULT_REGISTRY_HOST : registry;
    const session = this.session(host);
    if (!req.anonymous) await session.ping(req.signal);
    const accept = req.accept ?? [];
    let url = req.url.startsWith('/') ? `${session.origin}${req.url}` : req.url;
    let reauthed = false;
    for (let redirects = 0; ; ) {
      const target = new URL(url);
      const sameHost = target.host === host && !req.anonymous;
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...(req.headers ?? {}) };
      if (sameHost) {
        const auth = await session.authorization(req.scopes, req.signal);
        if (auth) headers.authorization = auth;
      }
      let raw: R;
      try {
        raw = await this.withRetry(req.signal, req.retry !== false, () =>
          transport(url, headers, sameHost, host),
        );
      } catch (e) {
        throw networkError(e, req.operation, url);
      }
      const res = {
        status: raw.statusCode,
        headers: headerMap(raw.headers),
        body: raw.body as R['body'],
        url,
      };
      if (accept.includes(res.status)) return res;
      if (res.status === 401 && sameHost && !reauthed) {
        reauthed = true;
        await res.body.dump().catch(() => {});
        session.reauthenticate(res.headers['www-authenticate']);
        if (session.hasChallenge) continue;
      }
      if (res.status >= 300 && res.status < 400 && res.headers.location && redirects < 5) {
        await res.body.dump().catch(() => {});
        url = new URL(res.headers.location, url).toString();
        redirects++;
        continue;
      }
      if (res.status >= 200 && res.status < 300) return res;
      const err = await httpError(res, req.operation);
      if (res.status === 401) {
        const creds = await session.credentials().catch(() => undefined);
        throw new RegistryError(
          'Unauthorized',
          `${req.operation}: unauthorized${creds ? ` (user "${creds.username}")` : ' (no credentials for this registry: nsinit login?)'}${err.registryCode ? `: ${err.errors.map((x) => x.message || x.code).join('; ')}` : ''}`,
          { status: 401, errors: err.errors, operation: req.operation, url: safeUrl(url) },
        );
      }
      throw err;
    }
  }

  /** Closes every connection pool. */
  async close(): Promise<void> {
    this.#pool.close();
    const agents = await Promise.all([...this.#agents.values()].map((a) => a.catch(() => undefined)));
    this.#agents.clear();
    this.#sessions.clear();
    await Promise.all(agents.map((a) => a?.close().catch(() => a.destroy())));
  }
}

/** Runs `fn` with `options.client`, or with a temporary client closed afterwards. */
export async function withClient<T>(
  options: { client?: RegistryClient | undefined } & ClientOptions,
  fn: (client: RegistryClient) => Promise<T>,
): Promise<T> {
  if (options.client) return fn(options.client);
  const client = new RegistryClient(options);
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}
