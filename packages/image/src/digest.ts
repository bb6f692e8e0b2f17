import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { ImageError } from './errors.js';

/** A content digest, `sha256:<64 hex>` or `sha512:<128 hex>`. */
export type Digest = `${'sha256' | 'sha512'}:${string}`;

const HEX_LENGTH = { sha256: 64, sha512: 128 } as const;
const DIGEST_RE = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

/**
 * Checks `value` is a digest we can verify and returns it typed.
 * @throws ImageError `InvalidDigest` naming the value (and `what`, e.g. `layers[2].digest`).
 */
export function parseDigest(value: string, what = 'digest'): Digest {
  const m = DIGEST_RE.exec(value);
  if (!m) throw new ImageError('InvalidDigest', `${what}: "${value}" is not a digest (algorithm:hex)`);
  const algo = m[1] as string;
  const hex = m[2] as string;
  if (algo !== 'sha256' && algo !== 'sha512')
    throw new ImageError(
      'InvalidDigest',
      `${what}: unsupported digest algorithm "${algo}" (sha256 and sha512 are)`,
    );
  if (hex.length !== HEX_LENGTH[algo] || !/^[0-9a-f]+$/.test(hex))
    throw new ImageError(
      'InvalidDigest',
      `${what}: "${value}" is not ${HEX_LENGTH[algo]} lowercase hex digits`,
    );
  return value as Digest;
}

/** The algorithm and hex parts of a digest. */
export function splitDigest(d: Digest): { algorithm: 'sha256' | 'sha512'; hex: string } {
  const i = d.indexOf(':');
  return { algorithm: d.slice(0, i) as 'sha256' | 'sha512', hex: d.slice(i + 1) };
}

/** The sha256 (default) digest of some bytes or a string (UTF-8). */
export function digestOf(data: Uint8Array | string, algorithm: 'sha256' | 'sha512' = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}` as Digest;
}

/** An incremental digester: `update()` chunks, then `digest()`. */
export class Digester {
  readonly algorithm: 'sha256' | 'sha512';
  #hash: Hash;
  #size = 0;
  constructor(algorithm: 'sha256' | 'sha512' = 'sha256') {
    this.algorithm = algorithm;
    this.#hash = createHash(algorithm);
  }
  update(chunk: Uint8Array): void {
    this.#hash.update(chunk);
    this.#size += chunk.length;
  }
  /** Bytes seen so far. */
  get size(): number {
    return this.#size;
  }
  /** The digest of everything seen; the digester must not be used afterwards. */
  digest(): Digest {
    return `${this.algorithm}:${this.#hash.digest('hex')}` as Digest;
  }
}

/**
 * A pass-through stream that hashes what flows through it and, at the end, fails with
 * `DigestMismatch` or `SizeMismatch` when the content is not what was expected. It also
 * fails as soon as more bytes than `size` arrive, so an endless or oversized body is cut off.
 */
export class VerifyStream extends Transform {
  readonly expected: Digest;
  readonly expectedSize: number | undefined;
  #digester: Digester;
  #what: string;

  constructor(expected: Digest, options: { size?: number; what?: string } = {}) {
    super();
    this.expected = expected;
    this.expectedSize = options.size;
    this.#digester = new Digester(splitDigest(expected).algorithm);
    this.#what = options.what ?? expected;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#digester.update(chunk);
    if (this.expectedSize !== undefined && this.#digester.size > this.expectedSize) {
      done(
        new ImageError(
          'SizeMismatch',
          `${this.#what}: more than the ${this.expectedSize} bytes its descriptor gives`,
        ),
      );
      return;
    }
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    const size = this.#digester.size;
    if (this.expectedSize !== undefined && size !== this.expectedSize) {
      done(
        new ImageError(
          'SizeMismatch',
          `${this.#what}: ${size} bytes, its descriptor gives ${this.expectedSize}`,
        ),
      );
      return;
    }
    const got = this.#digester.digest();
    if (got !== this.expected) {
      done(
        new ImageError(
          'DigestMismatch',
          `${this.#what}: content has digest ${got}, expected ${this.expected}`,
        ),
      );
      return;
    }
    done();
  }
}
