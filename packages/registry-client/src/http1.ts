/**
 * A minimal HTTP/1.1 client for the requests of a pull: `GET`s and `HEAD`s without a body. Each
 * connection reads into one reused buffer (`net`/`tls` `onread`), so a body costs no allocation
 * per read; with a {@link RawPool} connections are kept alive between requests to an origin.
 *
 * Why not undici for these: on this project's 2-core VMs, undici's path (a fresh 64 KiB buffer
 * per socket read, a copy into llhttp's wasm memory, a Readable stream and an async iterator per
 * chunk) cost ~0.6–0.9 s of main-thread CPU for a 79 MB image on loopback; reading into a reused
 * 1 MiB buffer costs ~0.06 s (bench notes in docs/REGISTRY.md). And loading undici costs ~100 ms
 * at the start of a pull: it is loaded only for requests with a body (push).
 *
 * The body is handed to {@link RawBody.consume}'s callback as views into the reused buffer:
 * valid during the call, or until the promise the callback returns settles (the socket is not
 * read meanwhile: backpressure). Copy what is kept longer.
 */
import { isIP, type Socket, connect as tcpConnect } from 'node:net';
import type * as Tls from 'node:tls';

/** node:tls, loaded on the first https connection (a plain-HTTP pull never needs it). */
let tlsModule: typeof Tls | undefined;
const tls = (): typeof Tls => {
  tlsModule ??= process.getBuiltinModule('node:tls') as typeof Tls;
  return tlsModule;
};

/** TLS settings for an `https:` URL. */
export interface RawTlsOptions {
  /** Trusted CAs (PEM); Node's default roots when absent. */
  ca?: string[];
  rejectUnauthorized?: boolean;
}

export interface RawRequestOptions {
  headers: Record<string, string>;
  /** Keep the connection for later requests to the same origin (else `connection: close`). */
  pool?: RawPool | undefined;
  signal?: AbortSignal | undefined;
  tls?: RawTlsOptions | undefined;
  /** No response headers within this many ms: fails with `ETIMEDOUT` (default 60 s). */
  headersTimeout?: number;
  /** No body bytes for this many ms while reading (not while the consumer holds it back): `ETIMEDOUT` (default 60 s). */
  bodyTimeout?: number;
  /** The reused read buffer's size (default 1 MiB). */
  bufferSize?: number;
}

/** An error of the connection or of the HTTP framing; `code` says which (all are retryable). */
export class RawHttpError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RawHttpError';
    this.code = code;
  }
}

const MAX_HEADER_BYTES = 64 * 1024;

type Framing = { kind: 'length'; left: number } | { kind: 'chunked' } | { kind: 'close' } | { kind: 'none' };

/** The response body: consume it once, or dump or destroy it. */
export interface RawBody {
  /**
   * Reads the whole body, calling `onData` with each piece (a view into the reused buffer, valid
   * during the call or until the promise it returns settles). Resolves at the body's end; rejects
   * on a network failure, a short body, malformed framing or an abort. A returned promise holds
   * the reading until it settles; its rejection stops the transfer and rejects `consume`.
   * `consume` never settles while a promise of `onData` is pending.
   */
  consume(onData: (chunk: Buffer) => void | Promise<void>): Promise<void>;
  /** Reads and discards the body. */
  dump(): Promise<void>;
  /** Closes the connection (the body is not read). */
  destroy(error?: Error): void;
  /** The body as copied chunks (for small error bodies). */
  [Symbol.asyncIterator](): AsyncIterator<Buffer>;
}

export interface RawResponse {
  statusCode: number;
  /** Lowercase names; a repeated header gives an array. */
  headers: Record<string, string | string[]>;
  body: RawBody;
}

function abortError(signal: AbortSignal): unknown {
  return (
    signal.reason ??
    Object.assign(new Error('This operation was aborted'), { name: 'AbortError', code: 'ABORT_ERR' })
  );
}

/** A connection: its socket, and the exchange its reads and events go to (none while idle). */
interface Conn {
  socket: Socket;
  key: string;
  route: { ex: Exchange | undefined };
  idle: NodeJS.Timeout | undefined;
  /** It served a request before (a failure before any answer may be a close we did not see). */
  reused: boolean;
}

/**
 * Idle keep-alive connections per origin (an idle one is closed after `idleMs`). One per
 * client; {@link close} it at the end.
 */
export class RawPool {
  readonly #idle = new Map<string, Conn[]>();
  readonly #idleMs: number;
  constructor(options: { idleMs?: number } = {}) {
    this.#idleMs = options.idleMs ?? 4000;
  }

  /** @internal */
  take(key: string): Conn | undefined {
    const list = this.#idle.get(key);
    for (let c = list?.pop(); c; c = list?.pop()) {
      clearTimeout(c.idle);
      c.idle = undefined;
      if (!c.socket.destroyed) return c;
    }
    return undefined;
  }

  /** @internal */
  give(c: Conn): void {
    c.route.ex = undefined;
    c.reused = true;
    let list = this.#idle.get(c.key);
    if (!list) {
      list = [];
      this.#idle.set(c.key, list);
    }
    list.push(c);
    c.idle = setTimeout(() => this.drop(c), this.#idleMs);
    c.idle.unref?.();
  }

  /** @internal An idle connection that closed or failed. */
  drop(c: Conn): void {
    clearTimeout(c.idle);
    const list = this.#idle.get(c.key);
    const i = list?.indexOf(c) ?? -1;
    if (i >= 0) list?.splice(i, 1);
    c.socket.destroy();
  }

  /** Closes every idle connection. */
  close(): void {
    for (const list of this.#idle.values()) for (const c of [...list]) this.drop(c);
    this.#idle.clear();
  }
}

/** A failure on a kept-alive connection before any byte of the answer: the request is sent again. */
class StaleConnection extends Error {}

/**
 * One `GET` (or `HEAD`) of `url`: on an idle connection of `options.pool` to its origin, else
 * on a new one. A kept connection that turns out closed before answering is replaced once.
 */
export function rawRequest(
  method: 'GET' | 'HEAD',
  url: string,
  options: RawRequestOptions,
): Promise<RawResponse> {
  const u = new URL(url);
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    return Promise.reject(new RawHttpError('ERR_INVALID_URL', `${u.protocol} is not http(s)`));
  if (options.signal?.aborted) return Promise.reject(abortError(options.signal));
  const attempt = (fresh: boolean) =>
    new Promise<RawResponse>((resolve, reject) => {
      new Exchange(method, u, options, resolve, reject).start(fresh);
    });
  return attempt(false).catch((e: unknown) => {
    if (e instanceof StaleConnection) return attempt(true);
    throw e;
  });
}

function connKey(u: URL): string {
  return `${u.protocol}//${u.host}`;
}

/** A new connection whose reads and events go to `route.ex`. */
function connect(u: URL, options: RawRequestOptions): Conn {
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const https = u.protocol === 'https:';
  const port = Number(u.port || (https ? 443 : 80));
  const route: Conn['route'] = { ex: undefined };
  const buffer = Buffer.allocUnsafe(options.bufferSize ?? 1 << 20);
  let conn: Conn | undefined;
  const idleEvent = () => {
    if (conn && !route.ex) options.pool?.drop(conn);
  };
  const onread = {
    buffer,
    callback: (n: number, buf: Buffer) => {
      if (route.ex) return route.ex.onRead(buf.subarray(0, n));
      idleEvent(); // bytes nobody asked for: the connection is not usable
      return false;
    },
  };
  const socket: Socket = https
    ? tls().connect({
        host,
        port,
        ...(isIP(host) ? {} : { servername: host }),
        ...(options.tls?.ca ? { ca: options.tls.ca } : {}),
        ...(options.tls?.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
        // tls.connect takes `onread` since Node 15.1 (not in @types/node's ConnectionOptions)
        ...({ onread } as object),
      })
    : tcpConnect({ host, port, onread });
  socket.setNoDelay(true);
  socket.on('error', (e) => (route.ex ? route.ex.onError(e) : idleEvent()));
  socket.on('end', () => (route.ex ? route.ex.onEof() : idleEvent()));
  socket.on('close', () => (route.ex ? route.ex.onEof() : idleEvent()));
  conn = { socket, key: connKey(u), route, idle: undefined, reused: false };
  return conn;
}

/** One request and its response on one socket. */
class Exchange implements RawBody {
  readonly #method: 'GET' | 'HEAD';
  readonly #url: URL;
  readonly #options: RawRequestOptions;
  #resolveHead: ((r: RawResponse) => void) | undefined;
  #rejectHead: ((e: unknown) => void) | undefined;
  #conn: Conn | undefined;
  /** Bytes of the answer seen (a kept connection that fails before any is replaced). */
  #answered = false;
  /** Whether the connection may serve another request once this answer is read. */
  #reusable = false;
  /** Response head bytes collected so far. */
  #head: Buffer[] = [];
  #headBytes = 0;
  #framing: Framing | undefined;
  /** Chunked decoding: bytes left in the current chunk; the size line or trailer being read. */
  #chunkLeft = 0;
  #chunkState: 'size' | 'data' | 'data-crlf' | 'trailer' = 'size';
  #line = '';
  /** Body bytes read before `consume` was called (a view into the read buffer: reading is paused). */
  #pending: Buffer | undefined;
  #onData: ((chunk: Buffer) => void | Promise<void>) | undefined;
  #consumed = false;
  #done = false;
  #finished: { resolve: () => void; reject: (e: unknown) => void } | undefined;
  #settled = false;
  #error: unknown;
  #ended = false;
  #timer: NodeJS.Timeout | undefined;
  #onAbort: (() => void) | undefined;
  /** Pieces for the async iterator (copied). */
  #queue: Buffer[] | undefined;

  constructor(
    method: 'GET' | 'HEAD',
    url: URL,
    options: RawRequestOptions,
    resolve: (r: RawResponse) => void,
    reject: (e: unknown) => void,
  ) {
    this.#method = method;
    this.#url = url;
    this.#options = options;
    this.#resolveHead = resolve;
    this.#rejectHead = reject;
  }

  /** Sends the request, on a kept connection unless `fresh`. */
  start(fresh: boolean): void {
    const u = this.#url;
    const pool = this.#options.pool;
    const kept = fresh ? undefined : pool?.take(connKey(u));
    const conn = kept ?? connect(u, this.#options);
    conn.route.ex = this;
    this.#conn = conn;
    const socket = conn.socket;
    const signal = this.#options.signal;
    if (signal) {
      this.#onAbort = () => this.#fail(abortError(signal));
      signal.addEventListener('abort', this.#onAbort, { once: true });
    }
    this.#arm(this.#options.headersTimeout ?? 60_000, 'no response headers in time');
    const lines = [
      `${this.#method} ${u.pathname}${u.search} HTTP/1.1`,
      `host: ${u.host}`,
      pool ? 'connection: keep-alive' : 'connection: close',
    ];
    for (const [k, v] of Object.entries(this.#options.headers)) {
      if (/[\r\n]/.test(k) || /[\r\n]/.test(v)) {
        this.#fail(new RawHttpError('ERR_INVALID_HEADER', `header ${k}: line breaks are not allowed`));
        return;
      }
      const lk = k.toLowerCase();
      if (lk === 'host' || lk === 'connection' || lk === 'content-length' || lk === 'transfer-encoding')
        continue;
      lines.push(`${k}: ${v}`);
    }
    socket.write(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
    if (kept) socket.resume(); // it was paused at the end of the last answer
  }

  /** @internal The connection's onread callback. */
  onRead(data: Buffer): boolean {
    this.#answered = true;
    return this.#read(data);
  }

  /** @internal */
  onError(e: unknown): void {
    this.#fail(e);
  }

  /** @internal */
  onEof(): void {
    this.#eof();
  }

  #arm(ms: number, what: string): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#fail(new RawHttpError('ETIMEDOUT', what)), ms);
    this.#timer.unref?.();
  }

  #disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The onread callback: `false` pauses the socket (the buffer must not be overwritten yet). */
  #read(data: Buffer): boolean {
    if (this.#done) return false;
    if (this.#framing !== undefined) this.#timer?.refresh(); // the body timeout is for silence
    try {
      if (this.#framing === undefined) {
        const rest = this.#takeHead(data);
        if (rest === undefined) return true; // more head to come
        if (this.#framing === undefined) return true; // a 1xx was skipped
        if (this.#done) return false;
        // Hold the rest until `consume` (or dump) is called.
        this.#pending = rest.length > 0 ? rest : undefined;
        this.#disarm();
        this.#deliverHead();
        return this.#flowing();
      }
      return this.#body(data);
    } catch (e) {
      this.#fail(e);
      return false;
    }
  }

  /** Whether reading may go on: `consume` has been called and nothing holds it. */
  #flowing(): boolean {
    return this.#onData !== undefined && this.#pending === undefined && !this.#done;
  }

  /** Collects the response head; returns the bytes after it, or undefined while incomplete. */
  #takeHead(data: Buffer): Buffer | undefined {
    this.#head.push(Buffer.from(data)); // copied: the read buffer is reused
    this.#headBytes += data.length;
    const all = this.#head.length === 1 ? (this.#head[0] as Buffer) : Buffer.concat(this.#head);
    const end = all.indexOf('\r\n\r\n');
    if (end < 0) {
      if (this.#headBytes > MAX_HEADER_BYTES)
        throw new RawHttpError('ERR_HTTP_PARSE', `response head larger than ${MAX_HEADER_BYTES} bytes`);
      this.#head = [all];
      return undefined;
    }
    const text = all.subarray(0, end).toString('latin1');
    // The bytes after the head, as a view into the reused read buffer when they came in this read.
    const afterInAll = end + 4;
    const before = all.length - data.length;
    const rest =
      afterInAll >= before ? data.subarray(afterInAll - before) : Buffer.from(all.subarray(afterInAll));
    this.#head = [];
    this.#headBytes = 0;
    const [statusLine, ...headerLines] = text.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(statusLine ?? '');
    if (!m)
      throw new RawHttpError(
        'ERR_HTTP_PARSE',
        `not an HTTP/1.x status line: ${JSON.stringify(statusLine?.slice(0, 80))}`,
      );
    const status = Number(m[1]);
    const headers: Record<string, string | string[]> = {};
    for (const line of headerLines) {
      const i = line.indexOf(':');
      if (i <= 0 || /^[ \t]/.test(line))
        throw new RawHttpError(
          'ERR_HTTP_PARSE',
          `malformed header line ${JSON.stringify(line.slice(0, 80))}`,
        );
      const k = line.slice(0, i).trim().toLowerCase();
      const v = line.slice(i + 1).trim();
      const old = headers[k];
      headers[k] = old === undefined ? v : Array.isArray(old) ? [...old, v] : [old, v];
    }
    if (status >= 100 && status < 200) {
      // An interim response (100 Continue, 103 Early Hints): the real one follows.
      return rest.length > 0 ? this.#takeHead(rest) : undefined;
    }
    const te = String(headers['transfer-encoding'] ?? '').toLowerCase();
    const cl = headers['content-length'];
    if (this.#method === 'HEAD' || status === 204 || status === 304) this.#framing = { kind: 'none' };
    else if (te !== '') {
      if (!/(^|,)\s*chunked\s*$/.test(te))
        throw new RawHttpError('ERR_HTTP_PARSE', `unsupported transfer-encoding "${te}"`);
      this.#framing = { kind: 'chunked' };
    } else if (cl !== undefined) {
      const values = (Array.isArray(cl) ? cl : [cl]).flatMap((x) => x.split(',')).map((x) => x.trim());
      if (!values.every((x) => /^\d{1,15}$/.test(x) && x === values[0]))
        throw new RawHttpError('ERR_HTTP_PARSE', `invalid content-length ${JSON.stringify(cl)}`);
      this.#framing = { kind: 'length', left: Number(values[0]) };
    } else this.#framing = { kind: 'close' };
    this.#status = status;
    this.#headers = headers;
    const connection = String(headers.connection ?? '').toLowerCase();
    this.#reusable =
      this.#options.pool !== undefined &&
      statusLine?.startsWith('HTTP/1.1') === true &&
      !/(^|,)\s*close\s*(,|$)/.test(connection) &&
      (this.#framing.kind === 'length' || this.#framing.kind === 'chunked' || this.#framing.kind === 'none');
    return rest;
  }

  #status = 0;
  #headers: Record<string, string | string[]> = {};

  #deliverHead(): void {
    const resolve = this.#resolveHead;
    this.#resolveHead = undefined;
    this.#rejectHead = undefined;
    if (this.#framing?.kind === 'none' || (this.#framing?.kind === 'length' && this.#framing.left === 0)) {
      this.#ended = true;
      if (this.#pending !== undefined) this.#reusable = false; // bytes past the answer
      this.#pending = undefined;
      this.#close();
    }
    resolve?.({ statusCode: this.#status, headers: this.#headers, body: this });
  }

  /** Body bytes from the socket; returns whether to keep reading. */
  #body(data: Buffer): boolean {
    const f = this.#framing as Framing;
    if (f.kind === 'none') return false;
    if (f.kind === 'chunked') return this.#chunked(data);
    let piece = data;
    if (f.kind === 'length') {
      if (piece.length > f.left) {
        piece = piece.subarray(0, f.left); // bytes past the body: ignored, and the connection not kept
        this.#reusable = false;
      }
      f.left -= piece.length;
    }
    const go = this.#emit(piece);
    if (f.kind === 'length' && f.left === 0) {
      this.#ended = true;
      if (go) this.#finish();
      return false;
    }
    return go;
  }

  #chunked(data: Buffer): boolean {
    let off = 0;
    while (off < data.length) {
      switch (this.#chunkState) {
        case 'size':
        case 'trailer': {
          const nl = data.indexOf(10, off);
          const part = data.subarray(off, nl < 0 ? data.length : nl).toString('latin1');
          this.#line += part;
          if (this.#line.length > 4096) throw new RawHttpError('ERR_HTTP_PARSE', 'chunk size line too long');
          if (nl < 0) return true;
          off = nl + 1;
          const line = this.#line.replace(/\r$/, '');
          this.#line = '';
          if (this.#chunkState === 'trailer') {
            if (line === '') {
              if (off < data.length) this.#reusable = false; // bytes past the answer
              this.#ended = true;
              this.#finish();
              return false;
            }
            continue;
          }
          const m = /^([0-9a-fA-F]{1,12})(?:;.*)?$/.exec(line.trim());
          if (!m)
            throw new RawHttpError(
              'ERR_HTTP_PARSE',
              `invalid chunk size line ${JSON.stringify(line.slice(0, 40))}`,
            );
          this.#chunkLeft = Number.parseInt(m[1] as string, 16);
          this.#chunkState = this.#chunkLeft === 0 ? 'trailer' : 'data';
          break;
        }
        case 'data': {
          const n = Math.min(this.#chunkLeft, data.length - off);
          const piece = data.subarray(off, off + n);
          off += n;
          this.#chunkLeft -= n;
          if (this.#chunkLeft === 0) this.#chunkState = 'data-crlf';
          if (!this.#emit(piece)) {
            // Held: the rest of this read waits in #pending (reading is paused).
            if (off < data.length) this.#pending = data.subarray(off);
            return false;
          }
          break;
        }
        case 'data-crlf': {
          const c = data[off] as number;
          off++;
          if (c === 13) continue;
          if (c !== 10) throw new RawHttpError('ERR_HTTP_PARSE', 'chunk data not followed by CRLF');
          this.#chunkState = 'size';
          break;
        }
      }
    }
    return true;
  }

  /** Hands a piece to the consumer; false when it holds the reading (a promise) or it is over. */
  #emit(piece: Buffer): boolean {
    if (piece.length === 0) return !this.#done;
    if (this.#queue) {
      this.#queue.push(Buffer.from(piece));
      this.#wake?.();
      return !this.#done;
    }
    const onData = this.#onData;
    if (!onData) return !this.#done; // dumping
    let r: void | Promise<void>;
    try {
      r = onData(piece);
    } catch (e) {
      this.#fail(e);
      return false;
    }
    if (r && typeof (r as Promise<void>).then === 'function') {
      this.#holding = true;
      this.#disarm();
      (r as Promise<void>).then(
        () => {
          this.#holding = false;
          if (this.#done) this.#settle();
          else this.#continue();
        },
        (e: unknown) => {
          this.#holding = false;
          if (this.#done) {
            this.#error ??= e;
            this.#settle();
          } else this.#fail(e);
        },
      );
      return false;
    }
    return !this.#done;
  }

  #holding = false;

  /** After the consumer let go: pending bytes first, then the socket again. */
  #continue(): void {
    if (this.#done || this.#holding) return;
    const p = this.#pending;
    if (p !== undefined) {
      this.#pending = undefined;
      let go: boolean;
      try {
        go = this.#body(p);
      } catch (e) {
        this.#fail(e);
        return;
      }
      if (!go) return;
    }
    if (this.#ended) {
      this.#finish();
      return;
    }
    if (this.#eofSeen) {
      this.#eof();
      return;
    }
    this.#arm(this.#options.bodyTimeout ?? 60_000, 'the response body stalled');
    this.#conn?.socket.resume();
  }

  #eofSeen = false;

  #eof(): void {
    if (this.#done) return;
    this.#eofSeen = true;
    if (this.#holding || this.#pending !== undefined) return; // handled when the consumer lets go
    if (this.#framing === undefined) {
      this.#fail(new RawHttpError('UND_ERR_SOCKET', 'the connection closed before the response headers'));
      return;
    }
    if (this.#framing.kind === 'close' || this.#ended) {
      this.#ended = true;
      this.#finish();
      return;
    }
    this.#fail(new RawHttpError('UND_ERR_SOCKET', 'the connection closed before the end of the body'));
  }

  #finish(): void {
    if (this.#done) return;
    if (!this.#ended) return;
    if (!this.#consumed && !this.#queue) return; // nobody reads yet: finished when they do
    this.#done = true;
    this.#close();
    this.#settle();
    this.#wake?.();
  }

  #fail(e: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#error = e;
    this.#reusable = false;
    const stale = this.#conn?.reused === true && !this.#answered && !this.#options.signal?.aborted;
    this.#close();
    if (this.#rejectHead) {
      const reject = this.#rejectHead;
      this.#resolveHead = undefined;
      this.#rejectHead = undefined;
      const code = (e as { code?: unknown })?.code;
      // a kept connection the server closed meanwhile: the caller sends again on a new one
      if (stale && (code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET'))
        reject(new StaleConnection(String(code)));
      else reject(e);
      return;
    }
    this.#settle();
    this.#wake?.();
  }

  /** Settles `consume` once the transfer is over and no promise of the consumer is pending. */
  #settle(): void {
    if (!this.#done || this.#holding || this.#settled || !this.#finished) return;
    this.#settled = true;
    if (this.#error !== undefined) this.#finished.reject(this.#error);
    else this.#finished.resolve();
  }

  /** Done with the connection: back to the pool when the answer was read exactly, else closed. */
  #close(): void {
    this.#disarm();
    const signal = this.#options.signal;
    if (signal && this.#onAbort) signal.removeEventListener('abort', this.#onAbort);
    this.#onAbort = undefined;
    const c = this.#conn;
    if (!c) return;
    this.#conn = undefined;
    c.route.ex = undefined;
    if (this.#reusable && this.#ended && !c.socket.destroyed && this.#options.pool)
      this.#options.pool.give(c);
    else if (!c.socket.destroyed) c.socket.destroy();
  }

  consume(onData: (chunk: Buffer) => void | Promise<void>): Promise<void> {
    if (this.#consumed || this.#queue) return Promise.reject(new Error('the body was already read'));
    this.#consumed = true;
    this.#onData = onData;
    return new Promise<void>((resolve, reject) => {
      this.#finished = { resolve, reject };
      if (this.#done) this.#settle();
      else this.#continue();
    });
  }

  /** Discards the body: with `connection: close` there is no connection to keep, so it is closed. */
  dump(): Promise<void> {
    this.destroy();
    return Promise.resolve();
  }

  destroy(error?: Error): void {
    if (this.#done) return;
    this.#fail(
      error ?? new RawHttpError('ERR_STREAM_DESTROYED', 'the response body was destroyed before its end'),
    );
  }

  #wake: (() => void) | undefined;

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    if (this.#consumed || this.#queue) throw new Error('the body was already read');
    const queue: Buffer[] = [];
    this.#queue = queue;
    try {
      yield* this.#drain(queue);
    } finally {
      // a reader that stops early: the rest is not read, the connection not kept
      if (!this.#done) this.destroy();
    }
  }

  async *#drain(queue: Buffer[]): AsyncGenerator<Buffer> {
    for (;;) {
      if (queue.length === 0 && !this.#done) {
        if (this.#ended) this.#finish();
        else {
          const woken = new Promise<void>((r) => {
            this.#wake = r;
          });
          this.#continue();
          await woken;
          this.#wake = undefined;
        }
      }
      while (queue.length > 0) yield queue.shift() as Buffer;
      if (this.#done) {
        if (this.#error !== undefined) throw this.#error;
        if (queue.length === 0) return;
      }
    }
  }
}
