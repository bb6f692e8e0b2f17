/** Reading from a registry: manifests (by tag or digest, size-limited, verified), tags, and pulls into a ContentStore. */

import type { Writable } from 'node:stream';
import {
  type ContentStore,
  type Descriptor,
  type Digest,
  digestOf,
  formatPlatform,
  hostPlatform,
  type ImageConfig,
  ImageError,
  type Index,
  isImageError,
  isIndexMediaType,
  type Manifest,
  MediaType,
  type ParsedDocument,
  type Platform,
  parseDigest,
  parseImageConfig,
  parseManifestOrIndex,
  parsePlatform,
  parseReference,
  platformMatches,
  type Reference,
  selectManifest,
  splitDigest,
  withStoreLease,
} from '@tsc/image';
import { type ClientOptions, type RegistryClient, withClient } from './client.js';
import { isRegistryError, networkCode, RegistryError, safeUrl } from './errors.js';

/** Downloads are written to disk in batches of this many bytes. */
const WRITE_BATCH = 1 << 20;

/** The largest manifest accepted (containerd's limit). */
export const MAX_MANIFEST_SIZE = 4 * 1024 * 1024;

/** The largest image config accepted (it is read into memory). */
export const MAX_CONFIG_SIZE = 8 * 1024 * 1024;

/** Every manifest type we can use, most preferred first. */
export const MANIFEST_ACCEPT = [
  MediaType.ociIndex,
  MediaType.dockerManifestList,
  MediaType.ociManifest,
  MediaType.dockerManifest,
].join(', ');

/** Options shared by every operation. */
export interface OperationOptions extends ClientOptions {
  /** A client to reuse (connection pools, tokens); a temporary one otherwise. */
  client?: RegistryClient;
  signal?: AbortSignal;
}

/** The token scope for a repository. */
export function repositoryScope(path: string, actions: 'pull' | 'pull,push'): string {
  return `repository:${path}:${actions}`;
}

/** A manifest or index as fetched from a registry. */
export interface FetchedManifest {
  /** Its descriptor (media type from Content-Type, digest computed from the bytes, size). */
  descriptor: Descriptor;
  /** The exact bytes (their digest is the descriptor's). */
  bytes: Buffer;
  parsed: ParsedDocument;
}

function refText(ref: Reference): string {
  return ref.toString();
}

async function readLimited(
  body: AsyncIterable<Buffer> & { destroy?: () => void },
  limit: number,
  what: string,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += c.length;
    if (n > limit) {
      body.destroy?.();
      throw new RegistryError('TooLarge', `${what}: larger than the ${limit} bytes allowed for a manifest`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/**
 * Fetches a manifest or index by tag or digest with the Accept header of every supported
 * type, refusing more than `maxSize` bytes and schema 1, and checking the digest (against the
 * reference's, and against `Docker-Content-Digest` when the registry sends it).
 */
export async function fetchManifest(
  client: RegistryClient,
  repo: Reference,
  reference: string,
  options: {
    signal?: AbortSignal | undefined;
    maxSize?: number;
    expect?: Descriptor;
    scopes?: string[];
  } = {},
): Promise<FetchedManifest> {
  const maxSize = options.maxSize ?? MAX_MANIFEST_SIZE;
  const what = `manifest ${repo.name}${reference.includes(':') ? '@' : ':'}${reference}`;
  const res = await client
    .send(repo.domain, {
      method: 'GET',
      url: `/v2/${repo.path}/manifests/${reference}`,
      operation: `GET ${what}`,
      scopes: options.scopes ?? [repositoryScope(repo.path, 'pull')],
      headers: { accept: MANIFEST_ACCEPT },
      signal: options.signal,
    })
    .catch((e: unknown) => {
      if (isRegistryError(e) && e.code === 'NotFound')
        throw new RegistryError(
          'NotFound',
          `${what} not found${e.registryCode ? ` (${e.registryCode})` : ''}`,
          {
            status: 404,
            errors: e.errors,
            operation: e.operation ?? 'GET manifest',
            ...(e.url ? { url: e.url } : {}),
          },
        );
      throw e;
    });
  const length = Number(res.headers['content-length']);
  if (Number.isFinite(length) && length > maxSize) {
    res.body.destroy();
    throw new RegistryError(
      'TooLarge',
      `${what}: ${length} bytes, more than the ${maxSize} allowed for a manifest`,
      {
        operation: 'GET manifest',
        url: safeUrl(res.url),
      },
    );
  }
  const bytes = await readLimited(res.body as AsyncIterable<Buffer> & { destroy: () => void }, maxSize, what);
  const mediaType = (res.headers['content-type'] ?? '').split(';')[0]?.trim() || undefined;
  const byDigest = reference.includes(':') ? parseDigest(reference) : undefined;
  const wanted = options.expect?.digest ?? byDigest;
  const algorithm = wanted ? splitDigest(wanted).algorithm : 'sha256';
  const digest = digestOf(bytes, algorithm);
  if (wanted && digest !== wanted)
    throw new ImageError('DigestMismatch', `${what}: content has digest ${digest}, expected ${wanted}`);
  if (options.expect && bytes.length !== options.expect.size)
    throw new ImageError(
      'SizeMismatch',
      `${what}: ${bytes.length} bytes, its descriptor gives ${options.expect.size}`,
    );
  const header = res.headers['docker-content-digest'];
  if (header) {
    let claimed: Digest;
    try {
      claimed = parseDigest(header.trim(), 'Docker-Content-Digest');
    } catch (e) {
      throw new RegistryError('Protocol', `${what}: ${(e as Error).message}`);
    }
    const got =
      splitDigest(claimed).algorithm === algorithm ? digest : digestOf(bytes, splitDigest(claimed).algorithm);
    if (got !== claimed)
      throw new ImageError(
        'DigestMismatch',
        `${what}: content has digest ${got}, the registry's Docker-Content-Digest says ${claimed}`,
      );
  }
  const parsed = parseManifestOrIndex(bytes, mediaType, what);
  const mt =
    mediaType && mediaType !== 'application/json'
      ? mediaType
      : ((parsed.kind === 'index' ? parsed.index.mediaType : parsed.manifest.mediaType) ??
        (parsed.kind === 'index' ? MediaType.ociIndex : MediaType.ociManifest));
  return { descriptor: { mediaType: mt, digest, size: bytes.length }, bytes, parsed };
}

/** Fetches the manifest or index of `ref` (a tag or a digest). */
export async function getManifest(
  ref: string | Reference,
  options: OperationOptions & { maxSize?: number } = {},
): Promise<FetchedManifest> {
  const r = typeof ref === 'string' ? parseReference(ref) : ref;
  return withClient(options, (client) =>
    fetchManifest(client, r, r.digest ?? r.tag ?? 'latest', {
      signal: options.signal,
      ...(options.maxSize !== undefined ? { maxSize: options.maxSize } : {}),
    }),
  );
}

/** Every tag of a repository, following the `Link` header's pages. */
export async function listTags(
  repository: string | Reference,
  options: OperationOptions & { pageSize?: number } = {},
): Promise<string[]> {
  const r = typeof repository === 'string' ? parseReference(repository) : repository;
  return withClient(options, async (client) => {
    const tags: string[] = [];
    let url: string | undefined =
      `/v2/${r.path}/tags/list${options.pageSize ? `?n=${options.pageSize}` : ''}`;
    for (let page = 0; url && page < 10_000; page++) {
      const res = await client.send(r.domain, {
        method: 'GET',
        url,
        operation: `list tags of ${r.name}`,
        scopes: [repositoryScope(r.path, 'pull')],
        signal: options.signal,
      });
      const body = await readLimited(res.body as AsyncIterable<Buffer>, 16 << 20, `tags of ${r.name}`);
      let doc: { tags?: unknown };
      try {
        doc = JSON.parse(body.toString('utf8')) as typeof doc;
      } catch {
        throw new RegistryError('Protocol', `list tags of ${r.name}: the answer is not JSON`);
      }
      if (Array.isArray(doc.tags)) for (const t of doc.tags) if (typeof t === 'string') tags.push(t);
      const link = res.headers.link;
      const next = link ? /<([^>]+)>\s*;\s*rel="?next"?/i.exec(link)?.[1] : undefined;
      url = next ? new URL(next, res.url).toString() : undefined;
    }
    return tags;
  });
}

/** What a pull reports as it goes (for progress displays). */
export type PullProgress =
  | {
      type: 'resolved';
      reference: string;
      /** The digest of what the tag points at (an index for multi-platform images). */
      digest: Digest;
      mediaType: string;
      /** The manifest chosen for the platform. */
      manifest: Descriptor;
      platform?: string;
    }
  | {
      type: 'blob';
      kind: 'config' | 'layer';
      digest: Digest;
      size: number;
      /**
       * `waiting` (queued), `downloading` (with `current` bytes), `retrying` (with `message`),
       * `verifying`, `complete`, `exists` (already in the store).
       */
      status: 'waiting' | 'downloading' | 'retrying' | 'verifying' | 'complete' | 'exists';
      current?: number;
      message?: string;
    }
  | { type: 'warning'; message: string };

/** Options of {@link pull}. */
export interface PullOptions extends OperationOptions {
  /** The platform to choose from an index: `linux/arm64/v8` or an object (default: this machine's). */
  platform?: string | Platform;
  /** Blobs downloaded at once (default 3, as Docker). */
  concurrency?: number;
  maxManifestSize?: number;
  onProgress?: (event: PullProgress) => void;
  /** Record `reference` in the store (default true). */
  tag?: boolean;
  /**
   * A tee of the layer downloads (e.g. to unpack a layer while it arrives). Called once for each
   * layer blob this pull transfers from byte 0 — not for blobs already in the store, nor for one
   * that continues a partial download an earlier pull left, nor for the config — before its
   * first byte is requested (it may wait for `info.config`: the config does not wait for it).
   * A returned `Writable` receives the blob's bytes in order, each byte once, as they are
   * written to the store: retries and `Range` resumes are hidden from it. `end()` is called
   * only after the store has checked size and digest and committed the blob; on any failure,
   * or when the rest of the bytes cannot be delivered (another process stored the blob, a
   * resume skipped bytes the sink did not see), it is destroyed with an error. A consumer that
   * acts on the bytes before `end()` must verify them itself (unpackers do). Its backpressure
   * holds this blob's transfer; destroying it lets the download go on without it.
   */
  blobSink?: (
    descriptor: Descriptor,
    info: BlobSinkInfo,
  ) => Writable | undefined | Promise<Writable | undefined>;
}

/** What {@link PullOptions.blobSink} learns about the blob whose download starts. */
export interface BlobSinkInfo {
  /** The layer's position in `manifest.layers` (its first, when listed twice). */
  index: number;
  /** The image manifest being pulled (the platform's). */
  manifest: Manifest;
  /** The image config, once it is in the store (rejects when it cannot be fetched or parsed). */
  config: Promise<ImageConfig>;
  /** Aborted when the pull fails or is aborted. */
  signal: AbortSignal;
}

/** What a pull did. */
export interface PullResult {
  reference: Reference;
  /** The digest the reference resolved to at the registry (an index's for multi-platform images): Docker's "Digest:". */
  digest: Digest;
  /** The platform-specific image manifest, as recorded in the store under `reference.toString()`. */
  manifestDescriptor: Descriptor;
  manifest: Manifest;
  configDescriptor: Descriptor;
  config: ImageConfig;
  /** The index it was chosen from, when the reference named one (the index blob is stored too). */
  indexDescriptor?: Descriptor;
  /** Bytes downloaded (blobs only). */
  downloadedBytes: number;
  /** Blobs that were already in the store. */
  presentBlobs: number;
  /** False when the store already had this manifest under this name and nothing was downloaded. */
  updated: boolean;
}

function isForeign(d: Descriptor): boolean {
  return (
    d.mediaType === MediaType.dockerLayerForeignGzip ||
    d.mediaType.startsWith('application/vnd.oci.image.layer.nondistributable.')
  );
}

/** Runs `fn` on each item, at most `limit` at once; the first failure aborts the rest. */
async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  let hasFailed = false;
  const worker = async () => {
    while (!hasFailed && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (e) {
        if (!hasFailed) {
          hasFailed = true;
          failed = e;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (hasFailed) throw failed;
}

function isNetworkFailure(e: unknown): boolean {
  if (isRegistryError(e)) return e.temporary;
  if (isImageError(e)) return false;
  const code = networkCode(e);
  return code !== undefined && code !== 'UND_ERR_ABORTED' && code !== 'ABORT_ERR';
}

/** Waits until `w` drains, closes, or `signal` aborts. */
function drained(w: Writable, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = () => {
      w.off('drain', done);
      w.off('close', done);
      signal?.removeEventListener('abort', aborted);
      resolve();
    };
    const aborted = () => {
      done();
      reject(signal?.reason);
    };
    if (signal?.aborted) return aborted();
    w.on('drain', done);
    w.on('close', done);
    signal?.addEventListener('abort', aborted, { once: true });
  });
}

/**
 * The bytes of one blob, as written to the store, passed on to a consumer's `Writable` in
 * order and each once (a resumed transfer repeats nothing the sink saw; a gap ends the sink).
 */
class Tee {
  #sink: Writable | undefined;
  /** Bytes the sink has been given: always the prefix [0, seen) of the blob. */
  #seen = 0;

  constructor(sink: Writable) {
    this.#sink = sink;
    // Destroying the sink with an error must never become an unhandled 'error' event.
    sink.on('error', () => {});
  }

  get active(): boolean {
    const s = this.#sink;
    if (s && (s.destroyed || s.writableEnded)) this.#sink = undefined;
    return this.#sink !== undefined;
  }

  /** `chunk` holds the blob's bytes from `offset` on; the sink keeps a reference to it. */
  async write(chunk: Buffer, offset: number, signal: AbortSignal | undefined): Promise<void> {
    if (!this.active) return;
    const sink = this.#sink as Writable;
    if (offset > this.#seen) {
      this.fail(
        new RegistryError(
          'Protocol',
          `the download went on from byte ${offset}, the stream had only ${this.#seen} bytes`,
        ),
      );
      return;
    }
    const end = offset + chunk.length;
    if (end <= this.#seen) return;
    const part = offset < this.#seen ? chunk.subarray(this.#seen - offset) : chunk;
    this.#seen = end;
    if (!sink.write(part)) await drained(sink, signal);
  }

  /** The blob is committed: ends the sink (which must have seen every byte by now). */
  end(size: number): void {
    if (!this.active) return;
    if (this.#seen !== size) {
      this.fail(new RegistryError('Protocol', `the stream had ${this.#seen} of the blob's ${size} bytes`));
      return;
    }
    (this.#sink as Writable).end();
    this.#sink = undefined;
  }

  fail(error: unknown): void {
    if (!this.active) return;
    (this.#sink as Writable).destroy(error instanceof Error ? error : new Error(String(error)));
    this.#sink = undefined;
  }
}

/** What a blob transfer reports to and is stopped by. */
interface TransferOptions {
  signal?: AbortSignal | undefined;
  onProgress?:
    | ((current: number, status: 'downloading' | 'retrying' | 'verifying', message?: string) => void)
    | undefined;
}

/**
 * Downloads one blob into the store: resumes a partial download with `Range`, streams through
 * the store's ingest (size and digest checked; a bad blob is deleted), retries dropped
 * connections and temporary errors, falls back to a foreign layer's `urls`.
 */
export async function downloadBlob(
  client: RegistryClient,
  store: ContentStore,
  repo: Reference,
  desc: Descriptor,
  options: TransferOptions & {
    /**
     * Asked once, when the first transfer starts at byte 0, for a `Writable` to tee the blob's
     * bytes into (see {@link PullOptions.blobSink}).
     */
    sink?: (() => Writable | undefined | Promise<Writable | undefined>) | undefined;
  } = {},
): Promise<{ downloaded: number; present: boolean }> {
  let tee: Tee | undefined;
  try {
    const got = await download(client, store, repo, desc, options, async (offset) => {
      if (!options.sink) return undefined;
      const sink = options.sink;
      options.sink = undefined; // asked once
      if (offset !== 0) return undefined;
      const w = await sink();
      tee = w ? new Tee(w) : undefined;
      return tee;
    });
    tee?.end(desc.size);
    return got;
  } catch (e) {
    tee?.fail(e);
    throw e;
  }
}

async function download(
  client: RegistryClient,
  store: ContentStore,
  repo: Reference,
  desc: Descriptor,
  options: TransferOptions,
  openTee: (offset: number) => Promise<Tee | undefined>,
): Promise<{ downloaded: number; present: boolean }> {
  const what = `blob ${desc.digest}`;
  let downloaded = 0;
  let urls = [`/v2/${repo.path}/blobs/${desc.digest}`];
  let tee: Tee | undefined;
  const storedElsewhere = () =>
    tee?.fail(new RegistryError('Protocol', `${what}: stored by another process during the download`));
  for (let attempt = 1; ; attempt++) {
    const w = await store.ingest(
      { digest: desc.digest, size: desc.size },
      { resume: true, ...(options.signal ? { signal: options.signal } : {}) },
    );
    if (w.present) {
      storedElsewhere();
      return { downloaded, present: attempt === 1 };
    }
    let ingest = w;
    try {
      if (ingest.offset === desc.size) {
        options.onProgress?.(ingest.offset, 'verifying');
        await ingest.commit();
        return { downloaded, present: false };
      }
      if (attempt === 1) tee ??= await openTee(ingest.offset);
      const url = urls[0] as string;
      const foreign = !url.startsWith('/');
      const res = await client.stream(foreign ? new URL(url).host : repo.domain, {
        url,
        operation: `GET ${what} from ${foreign ? safeUrl(url) : repo.name}`,
        scopes: [repositoryScope(repo.path, 'pull')],
        headers: ingest.offset > 0 ? { range: `bytes=${ingest.offset}-` } : {},
        signal: options.signal,
        accept: [200, 206],
        ...(foreign ? { anonymous: true } : {}),
      });
      if (res.status === 200 && ingest.offset > 0) {
        // The server ignored Range: start over from byte 0.
        await ingest.abort();
        ingest = await store.ingest(
          { digest: desc.digest, size: desc.size },
          options.signal ? { signal: options.signal } : {},
        );
        if (ingest.present) {
          res.body.destroy();
          storedElsewhere();
          return { downloaded, present: false };
        }
      } else if (res.status === 206) {
        const m = /^bytes (\d+)-/.exec(res.headers['content-range'] ?? '');
        if (!m || Number(m[1]) !== ingest.offset) {
          res.body.destroy();
          await ingest.abort();
          throw new RegistryError(
            'Protocol',
            `${what}: the registry answered Range bytes=${ingest.offset}- with Content-Range "${res.headers['content-range'] ?? ''}"`,
          );
        }
      }
      let current = ingest.offset;
      options.onProgress?.(current, 'downloading');
      let last = 0;
      // The body arrives as views into the connection's reused read buffer (≤ 1 MiB per read):
      // they are copied into one reused 1 MiB buffer and written when it is full (fewer
      // thread-pool round trips, no garbage per batch); the connection is not read while a
      // batch is written. Bytes not yet written when a transfer breaks are simply fetched again.
      // A tee gets each batch once it is written (and keeps it: the next batch then needs a new
      // buffer).
      let buf = Buffer.allocUnsafe(WRITE_BATCH);
      let fill = 0;
      let written = ingest.offset;
      const flush = async () => {
        if (fill === 0) return;
        const n = fill;
        fill = 0;
        const batch = buf.subarray(0, n);
        await ingest.write(batch);
        const at = written;
        written += n;
        if (tee?.active) {
          buf = Buffer.allocUnsafe(WRITE_BATCH);
          await tee.write(batch, at, options.signal);
        }
      };
      const counted = (n: number) => {
        current += n;
        downloaded += n;
        const now = Date.now();
        if (now - last > 100) {
          last = now;
          options.onProgress?.(current, 'downloading');
        }
      };
      // A piece that does not fill the batch is copied without a promise; one that does is
      // copied and written in turns (the piece stays valid until the returned promise settles).
      const take = async (chunk: Buffer): Promise<void> => {
        for (let off = 0; off < chunk.length; ) {
          const n = Math.min(chunk.length - off, WRITE_BATCH - fill);
          chunk.copy(buf, fill, off, off + n);
          fill += n;
          off += n;
          if (fill === WRITE_BATCH) await flush();
        }
        counted(chunk.length);
      };
      try {
        await res.body.consume((chunk) => {
          if (fill + chunk.length >= WRITE_BATCH) return take(chunk);
          chunk.copy(buf, fill);
          fill += chunk.length;
          counted(chunk.length);
          return undefined;
        });
      } catch (e) {
        // Keep what arrived before the break: the resume starts after it.
        if (isNetworkFailure(e)) await flush().catch(() => {});
        throw e;
      }
      await flush();
      options.onProgress?.(current, 'verifying');
      await ingest.commit();
      return { downloaded, present: false };
    } catch (e) {
      // Wrong content is deleted (and never retried); a dropped transfer keeps its bytes for a
      // resume — unless it was cut because another blob of the pull had wrong content: a failed
      // pull then leaves nothing half-made behind.
      const siblingFailed = options.signal?.aborted === true && isImageError(options.signal.reason);
      await ingest.abort({ keepPartial: isNetworkFailure(e) && !siblingFailed });
      if (isImageError(e)) throw e;
      if (isRegistryError(e) && e.code === 'NotFound' && isForeign(desc)) {
        const usable = (desc.urls ?? []).filter((u) => /^https?:\/\//.test(u));
        if (urls[0]?.startsWith('/') && usable.length > 0) {
          urls = usable;
          attempt = 0;
          continue;
        }
        const where = urls[0]?.startsWith('/') ? repo.name : safeUrl(urls[0] as string);
        throw new RegistryError(
          'Unsupported',
          `${what} is a non-distributable (foreign) layer that ${where} does not serve${
            desc.urls?.length
              ? usable.length
                ? ''
                : `, and its urls are not http(s): ${desc.urls.join(', ')}`
              : ', and its descriptor lists no urls'
          }`,
          { status: 404 },
        );
      }
      if (options.signal?.aborted) throw e;
      if (isNetworkFailure(e) && attempt < client.attempts) {
        options.onProgress?.(0, 'retrying', e instanceof Error ? e.message : String(e));
        await new Promise((r) => setTimeout(r, client.backoff(attempt)));
        continue;
      }
      if (isRegistryError(e) || isImageError(e)) throw e;
      throw new RegistryError(
        'Network',
        `${what}: ${(e as Error).message ?? String(e)}${networkCode(e) ? ` (${networkCode(e)})` : ''}`,
        { cause: e },
      );
    }
  }
}

/**
 * The image config: small (at most MAX_CONFIG_SIZE, checked before), so it is read into memory,
 * verified (size and digest), parsed and handed to `onVerified`, then stored.
 */
async function fetchConfig(
  client: RegistryClient,
  store: ContentStore,
  repo: Reference,
  desc: Descriptor,
  options: {
    signal: AbortSignal;
    onProgress: (status: 'exists' | 'downloading' | 'verifying' | 'retrying' | 'complete') => void;
    onVerified: (config: ImageConfig) => void;
  },
): Promise<{ downloaded: number; present: boolean }> {
  const what = `config ${desc.digest}`;
  if (await store.has(desc.digest)) {
    options.onVerified(parseImageConfig(await store.read(desc.digest), what));
    options.onProgress('exists');
    return { downloaded: 0, present: true };
  }
  for (let attempt = 1; ; attempt++) {
    let bytes: Buffer;
    try {
      options.onProgress('downloading');
      const res = await client.send(repo.domain, {
        method: 'GET',
        url: `/v2/${repo.path}/blobs/${desc.digest}`,
        operation: `GET ${what} from ${repo.name}`,
        scopes: [repositoryScope(repo.path, 'pull')],
        signal: options.signal,
      });
      bytes = await readLimited(
        res.body as AsyncIterable<Buffer> & { destroy?: () => void },
        desc.size,
        what,
      ).catch((e: unknown) => {
        if (isRegistryError(e) && e.code === 'TooLarge')
          throw new ImageError(
            'SizeMismatch',
            `${what}: more than the ${desc.size} bytes its descriptor gives`,
          );
        throw e;
      });
    } catch (e) {
      if (options.signal.aborted || !isNetworkFailure(e) || attempt >= client.attempts) {
        if (isRegistryError(e) || isImageError(e) || options.signal.aborted) throw e;
        throw new RegistryError(
          'Network',
          `${what}: ${(e as Error).message ?? String(e)}${networkCode(e) ? ` (${networkCode(e)})` : ''}`,
          { cause: e },
        );
      }
      options.onProgress('retrying');
      await new Promise((res) => setTimeout(res, client.backoff(attempt)));
      continue;
    }
    options.onProgress('verifying');
    if (bytes.length !== desc.size)
      throw new ImageError(
        'SizeMismatch',
        `${what}: ${bytes.length} bytes, its descriptor gives ${desc.size}`,
      );
    const got = digestOf(bytes, splitDigest(desc.digest).algorithm);
    if (got !== desc.digest)
      throw new ImageError('DigestMismatch', `blob ${desc.digest}: content has digest ${got}; discarded`);
    options.onVerified(parseImageConfig(bytes, what));
    await store.put(bytes, desc.digest);
    options.onProgress('complete');
    return { downloaded: bytes.length, present: false };
  }
}

/**
 * Pulls an image into a content store: resolves the reference, chooses the platform's manifest
 * from an index, downloads config and layers (concurrently, verified, resumable, skipped when
 * present), stores the manifest (and the index), then points `reference.toString()` at the
 * platform's manifest.
 */
export async function pull(
  store: ContentStore,
  ref: string | Reference,
  options: PullOptions = {},
): Promise<PullResult> {
  const r = typeof ref === 'string' ? parseReference(ref) : ref;
  const explicitPlatform = options.platform !== undefined;
  const want: Platform =
    options.platform === undefined
      ? hostPlatform()
      : typeof options.platform === 'string'
        ? parsePlatform(options.platform)
        : options.platform;
  // The lease keeps a concurrent garbage collection from deleting blobs stored before the name is set.
  return withClient(options, (client) =>
    withStoreLease(store, () => pullWith(client, store, r, want, explicitPlatform, options)),
  );
}

async function pullWith(
  client: RegistryClient,
  store: ContentStore,
  r: Reference,
  want: Platform,
  explicitPlatform: boolean,
  options: PullOptions,
): Promise<PullResult> {
  const emit = options.onProgress ?? (() => {});
  {
    const maxSize = options.maxManifestSize ?? MAX_MANIFEST_SIZE;
    const top = await fetchManifest(client, r, r.digest ?? r.tag ?? 'latest', {
      signal: options.signal,
      maxSize,
    });
    let chosen = top;
    let index: { descriptor: Descriptor; bytes: Buffer; index: Index } | undefined;
    if (top.parsed.kind === 'index') {
      index = { descriptor: top.descriptor, bytes: top.bytes, index: top.parsed.index };
      const child = selectManifest(top.parsed.index, want, `${refText(r)}`);
      if (isIndexMediaType(child.mediaType))
        throw new RegistryError(
          'Unsupported',
          `${refText(r)}: the index entry for ${formatPlatform(want)} is itself an index (nested indexes are not supported)`,
        );
      chosen = await fetchManifest(client, r, child.digest, {
        signal: options.signal,
        maxSize,
        expect: child,
      });
      if (chosen.parsed.kind !== 'manifest')
        throw new ImageError(
          'InvalidDocument',
          `${refText(r)}: ${child.digest} is listed as a manifest but is an index`,
        );
      chosen.descriptor = { ...chosen.descriptor, mediaType: child.mediaType, platform: child.platform };
    }
    if (chosen.parsed.kind !== 'manifest')
      throw new ImageError('InvalidDocument', `${refText(r)}: not an image manifest`);
    const manifest = chosen.parsed.manifest;
    if (manifest.config.size > MAX_CONFIG_SIZE)
      throw new RegistryError(
        'TooLarge',
        `${refText(r)}: the image config is ${manifest.config.size} bytes, more than the ${MAX_CONFIG_SIZE} allowed`,
      );
    emit({
      type: 'resolved',
      reference: refText(r),
      digest: top.descriptor.digest,
      mediaType: top.descriptor.mediaType,
      manifest: chosen.descriptor,
      ...(index ? { platform: formatPlatform(want) } : {}),
    });
    const previous = await store.resolve(refText(r));

    const blobs: Array<{ desc: Descriptor; kind: 'config' | 'layer' }> = [
      { desc: manifest.config, kind: 'config' },
      ...manifest.layers.map((desc) => ({ desc, kind: 'layer' as const })),
    ];
    const seen = new Set<string>();
    const unique = blobs.filter((b) => !seen.has(b.desc.digest) && seen.add(b.desc.digest));
    for (const b of unique)
      emit({ type: 'blob', kind: b.kind, digest: b.desc.digest, size: b.desc.size, status: 'waiting' });

    const inner = new AbortController();
    const onAbort = () => inner.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    let downloadedBytes = 0;
    let presentBlobs = 0;
    let firstError: { error: unknown } | undefined;
    let configReady!: (c: ImageConfig) => void;
    let configFailed!: (e: unknown) => void;
    const configPromise = new Promise<ImageConfig>((resolve, reject) => {
      configReady = resolve;
      configFailed = reject;
    });
    configPromise.catch(() => {}); // nobody may be waiting for it
    const fetchBlob = async ({ desc, kind }: { desc: Descriptor; kind: 'config' | 'layer' }) => {
      inner.signal.throwIfAborted();
      if (await store.has(desc.digest)) {
        presentBlobs++;
        emit({ type: 'blob', kind, digest: desc.digest, size: desc.size, status: 'exists' });
        return;
      }
      const sink = options.blobSink;
      const got = await downloadBlob(client, store, r, desc, {
        signal: inner.signal,
        onProgress: (current, status, message) =>
          emit({
            type: 'blob',
            kind,
            digest: desc.digest,
            size: desc.size,
            status,
            current,
            ...(message ? { message } : {}),
          }),
        ...(sink && kind === 'layer'
          ? {
              sink: () =>
                sink(desc, {
                  index: manifest.layers.findIndex((l) => l.digest === desc.digest),
                  manifest,
                  config: configPromise,
                  signal: inner.signal,
                }),
            }
          : {}),
      });
      downloadedBytes += got.downloaded;
      if (got.present) presentBlobs++;
      emit({
        type: 'blob',
        kind,
        digest: desc.digest,
        size: desc.size,
        status: got.present ? 'exists' : 'complete',
        current: desc.size,
      });
    };
    const failed = (e: unknown) => {
      firstError ??= { error: e };
      inner.abort(e);
    };
    // The config is small and fetched beside the layers, outside their concurrency limit (as
    // Docker does): layers do not wait for it, and it does not wait for a free slot.
    const [configEntry, ...layerEntries] = unique as [(typeof unique)[0], ...typeof unique];
    const configTask = fetchConfig(client, store, r, manifest.config, {
      signal: inner.signal,
      onProgress: (status) =>
        emit({
          type: 'blob',
          kind: 'config',
          digest: configEntry.desc.digest,
          size: configEntry.desc.size,
          status,
          ...(status === 'complete' ? { current: configEntry.desc.size } : {}),
        }),
      // Layers waiting for the config go on as soon as its bytes are verified, before they are stored.
      onVerified: configReady,
    })
      .then((got) => {
        downloadedBytes += got.downloaded;
        if (got.present) presentBlobs++;
      })
      .catch((e: unknown) => {
        configFailed(e);
        failed(e);
      });
    try {
      await Promise.allSettled([
        configTask,
        mapLimit(layerEntries, options.concurrency ?? 3, (b) =>
          fetchBlob(b).catch((e: unknown) => {
            failed(e);
            throw e;
          }),
        ),
      ]);
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
    if (firstError) throw firstError.error;

    const config = await configPromise;
    const configPlatform: Platform = {
      os: config.os,
      architecture: config.architecture,
      ...(config.variant ? { variant: config.variant } : {}),
    };
    if (!index && !platformMatches(configPlatform, want)) {
      const msg = `${refText(r)} is for ${formatPlatform(configPlatform)}, not ${formatPlatform(want)}`;
      if (explicitPlatform)
        throw new ImageError('NoMatchingPlatform', `${msg} (the registry has no other platform for it)`);
      emit({ type: 'warning', message: `the image ${msg}` });
    }
    if (index) await store.put(index.bytes, index.descriptor.digest);
    await store.put(chosen.bytes, chosen.descriptor.digest);
    const manifestDescriptor: Descriptor = {
      mediaType: chosen.descriptor.mediaType,
      digest: chosen.descriptor.digest,
      size: chosen.descriptor.size,
      platform: chosen.descriptor.platform ?? configPlatform,
    };
    if (options.tag !== false) await store.setRef(refText(r), manifestDescriptor);
    return {
      reference: r,
      digest: top.descriptor.digest,
      manifestDescriptor,
      manifest,
      configDescriptor: manifest.config,
      config,
      ...(index ? { indexDescriptor: index.descriptor } : {}),
      downloadedBytes,
      presentBlobs,
      updated: previous?.digest !== manifestDescriptor.digest || downloadedBytes > 0,
    };
  }
}
