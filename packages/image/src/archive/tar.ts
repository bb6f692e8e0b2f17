/**
 * Streaming tar for image archives: a small ustar writer (entries of known size, written with
 * backpressure, never held in memory) and a reader on node-tar's parser that hands entries over
 * one at a time. These only carry the archive's files (blobs, JSON); layer contents are never
 * unpacked here.
 */
import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { ImageError } from '../errors.js';
import { sniffCompression } from '../media.js';

const BLOCK = 512;
const ZEROS = Buffer.alloc(BLOCK * 2);

function octal(buf: Buffer, value: number, offset: number, length: number): void {
  // length-1 octal digits and a NUL; base-256 for what does not fit (sizes of 8 GiB and more).
  const text = value.toString(8);
  if (text.length <= length - 1) {
    buf.write(text.padStart(length - 1, '0'), offset, 'ascii');
    buf[offset + length - 1] = 0;
    return;
  }
  let v = BigInt(value);
  for (let i = offset + length - 1; i > offset; i--) {
    buf[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  buf[offset] = 0x80;
}

function header(name: string, size: number, type: '0' | '5' | 'x', mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  let prefix = '';
  let base = name;
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', 155);
    if (
      cut <= 0 ||
      Buffer.byteLength(name.slice(cut + 1)) > 100 ||
      Buffer.byteLength(name.slice(0, cut)) > 155
    )
      throw new ImageError('System', `tar: name too long: ${name}`);
    prefix = name.slice(0, cut);
    base = name.slice(cut + 1);
  }
  h.write(base, 0, 100, 'utf8');
  octal(h, type === '5' ? 0o755 : 0o644, 100, 8);
  octal(h, 0, 108, 8);
  octal(h, 0, 116, 8);
  octal(h, size, 124, 12);
  octal(h, mtime, 136, 12);
  h.fill(0x20, 148, 156);
  h.write(type, 156, 1, 'ascii');
  h.write('ustar\u000000', 257, 8, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'ascii');
  return h;
}

/** Writes a tar stream to `out`, one entry at a time, waiting for `drain` when `out` is full. */
export class TarWriter {
  #out: Writable;
  #mtime: number;
  #dirs = new Set<string>();

  /** `mtime` (seconds) for every entry; default 0 would be valid too, but tools print it. */
  #error: Error | undefined;

  constructor(out: Writable, mtime = Math.floor(Date.now() / 1000)) {
    this.#out = out;
    this.#mtime = mtime;
    // Kept, not thrown from an event: the next write reports it (EPIPE, ENOSPC…).
    out.on('error', (e: Error) => {
      this.#error ??= e;
    });
  }

  async #write(chunk: Uint8Array): Promise<void> {
    const out = this.#out;
    if (this.#error) throw new ImageError('System', `tar: writing the archive: ${this.#error.message}`);
    if (out.destroyed) throw new ImageError('System', 'tar: the output was closed');
    if (out.write(chunk)) return;
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        out.off('drain', onDrain);
        out.off('close', onClose);
        out.off('error', done);
        if (err) reject(err);
        else resolve();
      };
      const onDrain = () => done();
      const onClose = () => done(new ImageError('System', 'tar: the output was closed'));
      out.on('drain', onDrain);
      out.on('close', onClose);
      out.on('error', done);
    });
  }

  /** Adds the directories of `name` (once each), as Docker's and skopeo's archives have them. */
  async #parents(name: string): Promise<void> {
    const parts = name.split('/').slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const dir = `${parts.slice(0, i).join('/')}/`;
      if (this.#dirs.has(dir)) continue;
      this.#dirs.add(dir);
      await this.#write(header(dir, 0, '5', this.#mtime));
    }
  }

  /**
   * Adds a file of exactly `size` bytes from `body` (bytes, or chunks streamed from a file).
   * @throws ImageError `SizeMismatch` when the body is not `size` bytes long (the archive is then unusable).
   */
  async addFile(name: string, size: number, body: Uint8Array | AsyncIterable<Uint8Array>): Promise<void> {
    await this.#parents(name);
    await this.#write(header(name, size, '0', this.#mtime));
    let n = 0;
    if (body instanceof Uint8Array) {
      n = body.length;
      if (n === size) await this.#write(body);
    } else {
      for await (const chunk of body) {
        n += chunk.length;
        if (n > size) break;
        await this.#write(chunk);
      }
    }
    if (n !== size)
      throw new ImageError('SizeMismatch', `tar: ${name}: ${n > size ? 'more' : n} bytes, expected ${size}`);
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (pad > 0) await this.#write(ZEROS.subarray(0, pad));
  }

  /** Writes the end-of-archive blocks and ends the output. */
  async finish(): Promise<void> {
    await this.#write(ZEROS);
    this.#out.end();
    if (!this.#out.writableFinished) await once(this.#out, 'finish');
  }
}

/** One file, link or directory of an archive being read. */
export interface TarEntry {
  /** The path without a leading `./` or `/`. */
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';
  size: number;
  /** The link target (symlinks and hard links). */
  linkpath?: string | undefined;
  /** The content (files): must be consumed or {@link skip}ped before the next entry comes. */
  body: AsyncIterable<Buffer>;
}

function entryType(e: ReadEntry): TarEntry['type'] {
  switch (e.type) {
    case 'File':
    case 'OldFile':
    case 'ContiguousFile':
      return 'file';
    case 'Directory':
      return 'directory';
    case 'SymbolicLink':
      return 'symlink';
    case 'Link':
      return 'hardlink';
    default:
      return 'other';
  }
}

/** Clean relative path inside an archive; refuses `..`. */
export function archivePath(p: string): string {
  const parts: string[] = [];
  for (const c of p.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') throw new ImageError('InvalidDocument', `archive: entry "${p}" leaves the archive`);
    parts.push(c);
  }
  return parts.join('/');
}

/**
 * Reads a tar stream (plain or gzip-compressed, told apart by its first bytes) and calls
 * `onEntry` for each entry in order, waiting for it to finish before reading on. A failure in
 * `onEntry` stops the reading and is thrown.
 * @throws ImageError `InvalidDocument` when the input is not a tar archive.
 */
export async function readTar(input: Readable, onEntry: (e: TarEntry) => Promise<void>): Promise<void> {
  // Sniff the compression from the first chunk, then feed everything to the parser.
  const head = await firstChunk(input);
  if (!head) throw new ImageError('InvalidDocument', 'archive: the input is empty');
  const compression = sniffCompression(head);
  if (compression === 'zstd')
    throw new ImageError(
      'Unsupported',
      'archive: zstd-compressed archives are not supported; decompress it first (zstd -d)',
    );
  let failure: unknown;
  let work: Promise<void> = Promise.resolve();
  let sawEntry = false;
  const fail = (err: unknown): void => {
    failure ??= err;
  };
  const parser = new Parser({
    strict: true,
    onwarn: (code: string, message: string | Error) => {
      fail(new ImageError('InvalidDocument', `archive: not a valid tar file (${code}: ${String(message)})`));
    },
  });
  const parserDone = new Promise<void>((resolve) => {
    parser.on('end', () => resolve());
    parser.on('close', () => resolve());
    parser.on('error', (err: unknown) => {
      fail(new ImageError('InvalidDocument', `archive: not a valid tar file (${(err as Error).message})`));
      resolve();
    });
  });
  parser.on('entry', (e: ReadEntry) => {
    sawEntry = true;
    if (failure) {
      e.resume();
      return;
    }
    let path: string;
    try {
      path = archivePath(e.path);
    } catch (err) {
      fail(err);
      e.resume();
      return;
    }
    const entry: TarEntry = {
      path,
      type: entryType(e),
      size: e.size,
      linkpath: e.linkpath,
      body: e as unknown as AsyncIterable<Buffer>,
    };
    work = work.then(async () => {
      try {
        if (!failure) await onEntry(entry);
      } catch (err) {
        fail(err);
      } finally {
        // Whatever the handler left unread is skipped, so the parser goes on to the next entry.
        if (!e.emittedEnd) e.resume();
        if (failure) {
          input.unpipe();
          input.destroy();
          parser.abort(failure as Error);
        }
      }
    });
  });
  // `head` was taken from `input` to sniff it: give it back first.
  input.unshift(head);
  const inputError = (err: Error) => {
    fail(new ImageError('System', `archive: reading the input: ${err.message}`));
    parser.abort(err);
  };
  input.on('error', inputError);
  if (compression === 'gzip') {
    const gunzip = createGunzip();
    gunzip.on('error', (err) => {
      fail(new ImageError('InvalidDocument', `archive: bad gzip data (${err.message})`));
      parser.abort(err);
    });
    input.pipe(gunzip).pipe(parser as unknown as NodeJS.WritableStream);
  } else {
    input.pipe(parser as unknown as NodeJS.WritableStream);
  }
  await parserDone;
  await work;
  input.off('error', inputError);
  if (failure) throw failure;
  if (!sawEntry) throw new ImageError('InvalidDocument', 'archive: empty or not a tar file');
}

async function firstChunk(input: Readable): Promise<Buffer | undefined> {
  for (;;) {
    const c = input.read() as Buffer | null;
    if (c !== null) return c;
    if (input.readableEnded) return undefined;
    await Promise.race([once(input, 'readable'), once(input, 'end')]);
  }
}
