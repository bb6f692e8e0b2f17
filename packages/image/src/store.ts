/**
 * A content store in the OCI image layout (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`),
 * safe against crashes and concurrent processes:
 *
 * - a blob appears under `blobs/` only by `rename(2)` after its size and digest were checked
 *   and the file was fsync'd, so a crash mid-write never leaves a blob that later runs trust;
 * - writes in progress live in `ingest/<alg>-<hex>`, locked with `flock` by the writer; a
 *   second process that wants the same blob waits for the first and then finds it present;
 *   an interrupted download resumes from the partial file (its prefix is re-hashed);
 * - `index.json` (the references) is rewritten whole under `index.json.lock`, via a temporary
 *   file and `rename`.
 *
 * Because it is a plain OCI layout, `skopeo copy oci:DIR:REF …` and `umoci unpack --image DIR:REF`
 * read it, and it reads theirs.
 */
import { type BigIntStats, createReadStream, constants as FS, type ReadStream } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { flock, isSysError } from '@tsc/syscall';
import { type Digest, Digester, digestOf, parseDigest, splitDigest } from './digest.js';
import { fsError, ImageError } from './errors.js';
import { isIndexMediaType, isManifestMediaType, MediaType } from './media.js';
import { type Descriptor, type Index, parseIndex, parseManifestOrIndex } from './schema.js';

/** The annotation that names a reference in `index.json`. */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

/** What {@link ContentStore.ingest} expects to receive. */
export interface IngestTarget {
  digest: Digest;
  /** The size from the descriptor, when known: more or fewer bytes fail the ingest. */
  size?: number;
}

/** A blob being written. Call {@link commit} after the last byte, or {@link abort}. */
export interface Ingest {
  /** True when the blob is already in the store: nothing needs to be written. */
  readonly present: boolean;
  /** Bytes already held (a resumed partial download); the next write continues after them. */
  readonly offset: number;
  /** Appends bytes. Fails with `SizeMismatch` as soon as more than the expected size arrived. */
  write(chunk: Uint8Array): Promise<void>;
  /** Checks size and digest, makes the blob durable and visible, and releases the lock. */
  commit(): Promise<Descriptor['digest']>;
  /**
   * Gives up. With `keepPartial` (for a dropped connection) the bytes written so far stay for a
   * later resume; otherwise (bad content) they are deleted.
   */
  abort(options?: { keepPartial?: boolean }): Promise<void>;
}

/** One named reference of the store. */
export interface StoreRef {
  name: string;
  descriptor: Descriptor;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, FS.O_RDONLY | FS.O_DIRECTORY);
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/** Takes an exclusive flock on an open file without blocking the event loop. */
async function lockFile(h: FileHandle, signal?: AbortSignal): Promise<void> {
  for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
    try {
      flock(h.fd, 'exclusive', false);
      return;
    } catch (e) {
      if (!isSysError(e) || (e.code !== 'EAGAIN' && e.code !== 'EWOULDBLOCK')) throw e;
    }
    signal?.throwIfAborted();
    await sleep(delay);
  }
}

/** What a blob file was when this store committed it (see {@link ContentStore.verifiedHere}). */
interface FileIdentity {
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

/** A directory in the OCI image layout, used as a content-addressed store. */
export class ContentStore {
  /** The layout's directory. */
  readonly dir: string;
  /** Blobs this object ingested, checked and committed: the file as it was right after. */
  readonly #committed = new Map<string, FileIdentity>();

  private constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * Opens (and with `create`, the default, makes) an OCI image layout at `dir`.
   * @throws ImageError `NotFound` when it does not exist and `create` is false, or it is not a layout.
   */
  static async open(dir: string, options: { create?: boolean } = {}): Promise<ContentStore> {
    const store = new ContentStore(dir);
    const layoutFile = join(dir, 'oci-layout');
    try {
      const text = await readFile(layoutFile, 'utf8');
      const v = (JSON.parse(text) as { imageLayoutVersion?: unknown }).imageLayoutVersion;
      if (typeof v !== 'string' || !v.startsWith('1.'))
        throw new ImageError('Unsupported', `${layoutFile}: imageLayoutVersion ${String(v)} is not 1.x`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        if (e instanceof SyntaxError) throw new ImageError('InvalidDocument', `${layoutFile}: not JSON`);
        throw fsError('read', layoutFile, e);
      }
      if (options.create === false)
        throw new ImageError('NotFound', `${dir}: not an OCI image layout (no oci-layout file)`);
      try {
        await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
        await store.#writeAtomic(
          'index.json',
          `${JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] })}\n`,
          true,
        );
        await store.#writeAtomic('oci-layout', '{"imageLayoutVersion":"1.0.0"}\n', false);
      } catch (e2) {
        throw fsError('create OCI layout', dir, e2);
      }
    }
    return store;
  }

  /**
   * Whether the open file `stats` describes (`fstat` with `bigint: true` of a descriptor the
   * caller reads) is the blob `digest` exactly as this store object committed it after checking
   * its size and digest: same device and inode, size, modification and change times (any write,
   * truncation, chmod or replacement since changes one of them). A reader may then skip hashing
   * it again. Only blobs ingested through this object in this process count; anything else
   * (another process's blobs, a store opened again, a file changed since) is `false`.
   */
  verifiedHere(digest: Digest, stats: BigIntStats): boolean {
    const id = this.#committed.get(digest);
    return (
      id !== undefined &&
      stats.dev === id.dev &&
      stats.ino === id.ino &&
      stats.size === id.size &&
      stats.mtimeNs === id.mtimeNs &&
      stats.ctimeNs === id.ctimeNs
    );
  }

  /** @internal Records a blob just committed (its descriptor still open). */
  recordCommitted(digest: Digest, stats: BigIntStats): void {
    this.#committed.set(digest, {
      dev: stats.dev,
      ino: stats.ino,
      size: stats.size,
      mtimeNs: stats.mtimeNs,
      ctimeNs: stats.ctimeNs,
    });
  }

  /** The file of a blob (which may not exist). */
  blobPath(digest: Digest): string {
    const { algorithm, hex } = splitDigest(parseDigest(digest));
    return join(this.dir, 'blobs', algorithm, hex);
  }

  /** The size of a blob, or `undefined` when the store does not hold it. */
  async size(digest: Digest): Promise<number | undefined> {
    try {
      return (await stat(this.blobPath(digest))).size;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw fsError('stat', this.blobPath(digest), e);
    }
  }

  /** True when the store holds the blob. */
  async has(digest: Digest): Promise<boolean> {
    return (await this.size(digest)) !== undefined;
  }

  /**
   * Reads a whole blob (for manifests and configs), checking its digest.
   * @throws ImageError `NotFound`, `DigestMismatch` (the file was changed behind our back).
   */
  async read(digest: Digest, options: { maxSize?: number } = {}): Promise<Buffer> {
    const path = this.blobPath(digest);
    let data: Buffer;
    try {
      if (options.maxSize !== undefined) {
        const st = await stat(path);
        if (st.size > options.maxSize)
          throw new ImageError(
            'SizeMismatch',
            `blob ${digest}: ${st.size} bytes, more than the ${options.maxSize} allowed`,
          );
      }
      data = await readFile(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        throw new ImageError('NotFound', `blob ${digest} is not in ${this.dir}`);
      throw fsError('read', path, e);
    }
    const got = digestOf(data, splitDigest(digest).algorithm);
    if (got !== digest)
      throw new ImageError('DigestMismatch', `${path}: content has digest ${got}, expected ${digest}`);
    return data;
  }

  /** A read stream of a blob (not verified: large layers are verified by whoever consumes them). */
  createReadStream(digest: Digest, options: { start?: number } = {}): ReadStream {
    return createReadStream(
      this.blobPath(digest),
      options.start === undefined ? {} : { start: options.start },
    );
  }

  /** Stores bytes (a manifest, a config) and returns their digest. Idempotent. */
  async put(data: Uint8Array, expected?: Digest): Promise<Digest> {
    const digest = expected ?? digestOf(data);
    const w = await this.ingest({ digest, size: data.length });
    if (w.present) return digest;
    try {
      if (w.offset > 0) throw new ImageError('System', 'unreachable: put() never resumes');
      await w.write(data);
      return await w.commit();
    } catch (e) {
      await w.abort();
      throw e;
    }
  }

  /** Serialises a document, stores it, and returns its descriptor. */
  async putJSON(doc: unknown, mediaType: string): Promise<Descriptor> {
    const bytes = Buffer.from(JSON.stringify(doc));
    const digest = await this.put(bytes);
    return { mediaType, digest, size: bytes.length };
  }

  /**
   * Starts writing a blob. When another process is writing the same blob this waits for it
   * (and then usually finds the blob `present`). With `resume` a partial file left by an
   * interrupted earlier attempt is continued from its end; without, it is discarded.
   */
  async ingest(
    target: IngestTarget,
    options: { resume?: boolean; signal?: AbortSignal } = {},
  ): Promise<Ingest> {
    const digest = parseDigest(target.digest);
    const expectedSize = target.size;
    if (await this.has(digest)) return presentIngest;
    const { algorithm, hex } = splitDigest(digest);
    const ingestDir = join(this.dir, 'ingest');
    const partial = join(ingestDir, `${algorithm}-${hex}`);
    let h: FileHandle;
    for (;;) {
      try {
        await mkdir(ingestDir, { recursive: true });
        h = await open(partial, FS.O_RDWR | FS.O_CREAT, 0o600);
      } catch (e) {
        throw fsError('open', partial, e);
      }
      try {
        await lockFile(h, options.signal);
      } catch (e) {
        await h.close().catch(() => {});
        throw fsError('lock', partial, e);
      }
      // The writer we waited for may have renamed the file into blobs/ or deleted it: then our
      // fd is not the file at `partial` any more, and writing to it would be lost (or renaming
      // `partial` later would publish someone else's bytes). Start over on the current file.
      const [mine, current] = await Promise.all([h.stat(), stat(partial).catch(() => undefined)]);
      if (current !== undefined && current.ino === mine.ino && current.dev === mine.dev) break;
      await h.close().catch(() => {});
      if (await this.has(digest)) return presentIngest;
    }
    try {
      if (await this.has(digest)) {
        // Ours is an empty leftover (we hold its lock): remove it.
        await unlink(partial).catch(() => {});
        await h.close();
        return presentIngest;
      }
      const digester = new Digester(algorithm);
      let offset = 0;
      if (options.resume) {
        // Re-hash what an earlier attempt left, so the final check covers every byte.
        const st = await h.stat();
        if (expectedSize !== undefined && st.size > expectedSize) await h.truncate(0);
        else {
          const buf = Buffer.allocUnsafe(1 << 20);
          while (offset < st.size) {
            const { bytesRead } = await h.read(buf, 0, Math.min(buf.length, st.size - offset), offset);
            if (bytesRead === 0) break;
            digester.update(buf.subarray(0, bytesRead));
            offset += bytesRead;
          }
          await h.truncate(offset);
        }
      } else {
        await h.truncate(0);
      }
      return new PartialIngest(this, h, partial, digest, expectedSize, digester, offset);
    } catch (e) {
      await h.close().catch(() => {});
      throw fsError('ingest', partial, e);
    }
  }

  /** Reads and validates `index.json`. */
  async readIndex(): Promise<Index> {
    const path = join(this.dir, 'index.json');
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      throw fsError('read', path, e);
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new ImageError('InvalidDocument', `${path}: not JSON`);
    }
    return parseIndex(doc, path);
  }

  /** Every named reference, in `index.json` order. */
  async listRefs(): Promise<StoreRef[]> {
    const index = await this.readIndex();
    const out: StoreRef[] = [];
    for (const m of index.manifests) {
      const name = m.annotations?.[REF_NAME_ANNOTATION];
      if (name !== undefined) out.push({ name, descriptor: m });
    }
    return out;
  }

  /** The descriptor a name points at, or `undefined`. */
  async resolve(name: string): Promise<Descriptor | undefined> {
    return (await this.listRefs()).find((r) => r.name === name)?.descriptor;
  }

  /** Points `name` at `descriptor` (replacing what it pointed at). The blob must be in the store. */
  async setRef(name: string, descriptor: Descriptor): Promise<void> {
    if (!(await this.has(descriptor.digest)))
      throw new ImageError(
        'NotFound',
        `cannot tag ${descriptor.digest} as ${name}: the blob is not in ${this.dir}`,
      );
    await this.updateIndex((index) => {
      const manifests = index.manifests.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] !== name);
      const { annotations, ...rest } = descriptor;
      manifests.push({ ...rest, annotations: { ...(annotations ?? {}), [REF_NAME_ANNOTATION]: name } });
      return { ...index, manifests };
    });
  }

  /** Removes a name; returns whether it existed. Blobs stay until {@link gc}. */
  async removeRef(name: string): Promise<boolean> {
    let found = false;
    await this.updateIndex((index) => {
      const manifests = index.manifests.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] !== name);
      found = manifests.length !== index.manifests.length;
      return { ...index, manifests };
    });
    return found;
  }

  /** Rewrites `index.json` under its lock. `change` may be called with the freshest index only. */
  async updateIndex(change: (index: Index) => Index): Promise<void> {
    const lockPath = join(this.dir, 'index.json.lock');
    let lock: FileHandle;
    try {
      lock = await open(lockPath, FS.O_RDWR | FS.O_CREAT, 0o600);
    } catch (e) {
      throw fsError('open', lockPath, e);
    }
    try {
      await lockFile(lock);
      const next = change(await this.readIndex());
      await this.#writeAtomic('index.json', `${JSON.stringify(next)}\n`, true);
    } finally {
      await lock.close();
    }
  }

  /** The blobs a manifest or index refers to (config, layers, sub-manifests); none for other blobs. */
  async children(desc: Descriptor): Promise<Descriptor[]> {
    if (!isIndexMediaType(desc.mediaType) && !isManifestMediaType(desc.mediaType)) return [];
    const parsed = parseManifestOrIndex(await this.read(desc.digest), desc.mediaType, `blob ${desc.digest}`);
    if (parsed.kind === 'index') return parsed.index.manifests;
    const m = parsed.manifest;
    return [m.config, ...m.layers];
  }

  /**
   * Deletes every blob that no reference reaches (and abandoned partial ingests that no process
   * holds). Blobs in `keep` survive too. Returns what was removed.
   */
  async gc(options: { keep?: Iterable<Digest> } = {}): Promise<{ removed: Digest[]; bytes: number }> {
    const live = new Set<string>(options.keep ?? []);
    const queue: Descriptor[] = [...(await this.readIndex()).manifests];
    while (queue.length > 0) {
      const d = queue.pop() as Descriptor;
      if (live.has(d.digest)) continue;
      live.add(d.digest);
      if (await this.has(d.digest)) queue.push(...(await this.children(d)));
    }
    const removed: Digest[] = [];
    let bytes = 0;
    const blobs = join(this.dir, 'blobs');
    for (const algorithm of await readdir(blobs).catch(() => [] as string[])) {
      for (const hex of await readdir(join(blobs, algorithm)).catch(() => [] as string[])) {
        const digest = `${algorithm}:${hex}` as Digest;
        if (live.has(digest)) continue;
        const path = join(blobs, algorithm, hex);
        const st = await stat(path).catch(() => undefined);
        await unlink(path).catch(() => {});
        removed.push(digest);
        bytes += st?.size ?? 0;
      }
    }
    const ingestDir = join(this.dir, 'ingest');
    for (const name of await readdir(ingestDir).catch(() => [] as string[])) {
      const path = join(ingestDir, name);
      const h = await open(path, FS.O_RDWR).catch(() => undefined);
      if (!h) continue;
      try {
        flock(h.fd, 'exclusive', false);
        await unlink(path);
      } catch {
        // held by a live writer
      } finally {
        await h.close();
      }
    }
    return { removed, bytes };
  }

  async #writeAtomic(name: string, text: string, durable: boolean): Promise<void> {
    const path = join(this.dir, name);
    const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    try {
      const h = await open(tmp, FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL, 0o644);
      try {
        await h.writeFile(text);
        if (durable) await h.sync();
      } finally {
        await h.close();
      }
      await rename(tmp, path);
      if (durable) await fsyncDir(this.dir);
    } catch (e) {
      await rm(tmp, { force: true }).catch(() => {});
      throw fsError('write', path, e);
    }
  }
}

const presentIngest: Ingest = {
  present: true,
  offset: 0,
  write: () => Promise.reject(new ImageError('System', 'the blob is already present: nothing to write')),
  commit: () => Promise.reject(new ImageError('System', 'the blob is already present: nothing to commit')),
  abort: () => Promise.resolve(),
};

class PartialIngest implements Ingest {
  readonly present = false;
  readonly offset: number;
  #store: ContentStore;
  #h: FileHandle | undefined;
  #path: string;
  #digest: Digest;
  #size: number | undefined;
  #digester: Digester;
  #pos: number;

  constructor(
    store: ContentStore,
    h: FileHandle,
    path: string,
    digest: Digest,
    size: number | undefined,
    digester: Digester,
    offset: number,
  ) {
    this.#store = store;
    this.#h = h;
    this.#path = path;
    this.#digest = digest;
    this.#size = size;
    this.#digester = digester;
    this.offset = offset;
    this.#pos = offset;
  }

  async write(chunk: Uint8Array): Promise<void> {
    const h = this.#handle();
    if (this.#size !== undefined && this.#pos + chunk.length > this.#size)
      throw new ImageError(
        'SizeMismatch',
        `blob ${this.#digest}: more than the ${this.#size} bytes its descriptor gives`,
      );
    this.#digester.update(chunk);
    let done = 0;
    while (done < chunk.length) {
      const { bytesWritten } = await h.write(chunk, done, chunk.length - done, this.#pos + done);
      done += bytesWritten;
    }
    this.#pos += chunk.length;
  }

  async commit(): Promise<Digest> {
    const h = this.#handle();
    const digest = this.#digest;
    if (this.#size !== undefined && this.#pos !== this.#size) {
      await this.abort();
      throw new ImageError(
        'SizeMismatch',
        `blob ${digest}: ${this.#pos} bytes, its descriptor gives ${this.#size}`,
      );
    }
    const got = this.#digester.digest();
    if (got !== digest) {
      await this.abort();
      throw new ImageError('DigestMismatch', `blob ${digest}: content has digest ${got}; discarded`);
    }
    const target = this.#store.blobPath(digest);
    try {
      await h.sync();
      await mkdir(join(target, '..'), { recursive: true });
      await rename(this.#path, target);
      await fsyncDir(join(target, '..'));
      // after the rename (it changes ctime): what the file is now that it is verified and named
      this.#store.recordCommitted(digest, await h.stat({ bigint: true }));
    } catch (e) {
      await this.abort();
      throw fsError('commit blob', target, e);
    } finally {
      this.#h = undefined;
      await h.close().catch(() => {});
    }
    return digest;
  }

  async abort(options: { keepPartial?: boolean } = {}): Promise<void> {
    const h = this.#h;
    if (!h) return;
    this.#h = undefined;
    if (!options.keepPartial) await unlink(this.#path).catch(() => {});
    await h.close().catch(() => {});
  }

  #handle(): FileHandle {
    if (!this.#h) throw new ImageError('System', `blob ${this.#digest}: the ingest is already finished`);
    return this.#h;
  }
}
