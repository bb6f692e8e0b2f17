/** Writing to a registry from a ContentStore: blobs (existence check, cross-repository mount, monolithic or chunked upload), manifests and indexes. */
import {
  type ContentStore,
  type Descriptor,
  type Digest,
  ImageError,
  isIndexMediaType,
  isManifestMediaType,
  parseManifestOrIndex,
  parseReference,
  type Reference,
  withStoreLease,
} from '@tsc/image';
import type { RegistryClient, RegistryResponse } from './client.js';
import { withClient } from './client.js';
import { isRegistryError, RegistryError } from './errors.js';
import { type OperationOptions, repositoryScope } from './pull.js';

/** What a push reports as it goes. */
export type PushProgress =
  | {
      type: 'blob';
      kind: 'config' | 'layer';
      digest: Digest;
      size: number;
      /** `waiting`, `pushing` (with `current`), `pushed`, `exists` (the registry has it), `mounted` (with `from`). */
      status: 'waiting' | 'pushing' | 'pushed' | 'exists' | 'mounted';
      current?: number;
      from?: string;
    }
  | { type: 'manifest'; descriptor: Descriptor; reference: string };

/** Options of {@link push}. */
export interface PushOptions extends OperationOptions {
  /** The store's name of what to push (default: the target reference's text). */
  source?: string;
  /** Blobs uploaded at once (default 3). */
  concurrency?: number;
  /**
   * Upload blobs larger than this in PATCH chunks of this size (POST → PATCH… → PUT ?digest=).
   * Default: one monolithic PUT per blob.
   */
  chunkSize?: number;
  /** Try cross-repository mounts from repositories of the same registry that the store pulled from (default true). */
  mount?: boolean;
  onProgress?: (event: PushProgress) => void;
}

/** What a push did. */
export interface PushResult {
  reference: Reference;
  /** The descriptor of the pushed manifest or index: Docker's `digest: sha256:… size: N`. */
  descriptor: Descriptor;
  /** Blobs uploaded, mounted, and found already present. */
  uploaded: number;
  mounted: number;
  existing: number;
}

function location(res: RegistryResponse, op: string): string {
  const loc = res.headers.location;
  if (!loc)
    throw new RegistryError('Protocol', `${op}: the registry gave no upload Location`, {
      status: res.status,
    });
  return new URL(loc, res.url).toString();
}

function withDigestParam(url: string, digest: Digest): string {
  const u = new URL(url);
  u.searchParams.set('digest', digest);
  return u.toString();
}

/**
 * For each blob of the store, a repository on `domain` other than `path` that the store pulled
 * it from (found through the store's reference names): candidates for a cross-repository mount.
 */
async function mountSources(store: ContentStore, domain: string, path: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const { name, descriptor } of await store.listRefs()) {
    let src: Reference;
    try {
      src = parseReference(name);
    } catch {
      continue;
    }
    if (src.domain !== domain || src.path === path) continue;
    const queue = [descriptor];
    while (queue.length) {
      const d = queue.pop() as Descriptor;
      if (!out.has(d.digest)) out.set(d.digest, src.path);
      if (await store.has(d.digest)) queue.push(...(await store.children(d).catch(() => [])));
    }
  }
  return out;
}

class Pusher {
  readonly counts = { uploaded: 0, mounted: 0, existing: 0 };
  readonly #done = new Map<string, Promise<void>>();
  constructor(
    readonly client: RegistryClient,
    readonly store: ContentStore,
    readonly ref: Reference,
    readonly options: PushOptions,
    readonly sources: Map<string, string>,
  ) {}

  get #scopes(): string[] {
    return [repositoryScope(this.ref.path, 'pull,push')];
  }

  #emit(e: PushProgress): void {
    this.options.onProgress?.(e);
  }

  /** Pushes a blob once per push, however many manifests share it. */
  blob(desc: Descriptor, kind: 'config' | 'layer'): Promise<void> {
    let p = this.#done.get(desc.digest);
    if (!p) {
      p = this.#blob(desc, kind);
      this.#done.set(desc.digest, p);
    }
    return p;
  }

  async #blob(desc: Descriptor, kind: 'config' | 'layer'): Promise<void> {
    const { client, ref, store } = this;
    const signal = this.options.signal;
    const base = { type: 'blob' as const, kind, digest: desc.digest, size: desc.size };
    const size = await store.size(desc.digest);
    if (size === undefined) {
      if (desc.urls?.length) {
        // A foreign layer that was never downloaded: the manifest points elsewhere for it.
        this.#emit({ ...base, status: 'exists' });
        this.counts.existing++;
        return;
      }
      throw new ImageError('NotFound', `cannot push ${ref.name}: blob ${desc.digest} is not in ${store.dir}`);
    }
    if (size !== desc.size)
      throw new ImageError(
        'SizeMismatch',
        `blob ${desc.digest}: ${size} bytes in the store, the descriptor gives ${desc.size}`,
      );
    const head = await client.send(ref.domain, {
      method: 'HEAD',
      url: `/v2/${ref.path}/blobs/${desc.digest}`,
      operation: `HEAD blob ${desc.digest} in ${ref.name}`,
      scopes: this.#scopes,
      accept: [200, 404],
      signal,
    });
    await head.body.dump().catch(() => {});
    if (head.status === 200) {
      this.counts.existing++;
      this.#emit({ ...base, status: 'exists' });
      return;
    }
    let upload: string | undefined;
    const from = this.options.mount === false ? undefined : this.sources.get(desc.digest);
    if (from) {
      const res = await client.send(ref.domain, {
        method: 'POST',
        url: `/v2/${ref.path}/blobs/uploads/?mount=${encodeURIComponent(desc.digest)}&from=${encodeURIComponent(from)}`,
        operation: `mount blob ${desc.digest} from ${from} into ${ref.name}`,
        scopes: [...this.#scopes, repositoryScope(from, 'pull')],
        accept: [201, 202],
        signal,
      });
      await res.body.dump().catch(() => {});
      if (res.status === 201) {
        this.counts.mounted++;
        this.#emit({ ...base, status: 'mounted', from });
        return;
      }
      upload = location(res, 'mount');
    }
    if (!upload) {
      const res = await client.send(ref.domain, {
        method: 'POST',
        url: `/v2/${ref.path}/blobs/uploads/`,
        operation: `start upload of ${desc.digest} to ${ref.name}`,
        scopes: this.#scopes,
        accept: [202],
        signal,
      });
      await res.body.dump().catch(() => {});
      upload = location(res, 'start upload');
    }
    this.#emit({ ...base, status: 'pushing', current: 0 });
    const chunk = this.options.chunkSize;
    if (chunk !== undefined && chunk > 0 && desc.size > chunk) {
      for (let start = 0; start < desc.size; start += chunk) {
        const end = Math.min(start + chunk, desc.size);
        const data = await readRange(store, desc.digest, start, end);
        const res = await client.send(ref.domain, {
          method: 'PATCH',
          url: upload,
          operation: `upload chunk ${start}-${end - 1} of ${desc.digest} to ${ref.name}`,
          scopes: this.#scopes,
          headers: {
            'content-type': 'application/octet-stream',
            'content-range': `${start}-${end - 1}`,
            'content-length': String(data.length),
          },
          body: () => data,
          accept: [202],
          signal,
          // A chunk the registry may have taken must not be sent twice.
          retry: false,
        });
        await res.body.dump().catch(() => {});
        upload = location(res, 'upload chunk');
        this.#emit({ ...base, status: 'pushing', current: end });
      }
      const res = await client.send(ref.domain, {
        method: 'PUT',
        url: withDigestParam(upload, desc.digest),
        operation: `finish upload of ${desc.digest} to ${ref.name}`,
        scopes: this.#scopes,
        headers: { 'content-length': '0' },
        accept: [201],
        signal,
        retry: false,
      });
      await res.body.dump().catch(() => {});
    } else {
      const res = await client.send(ref.domain, {
        method: 'PUT',
        url: withDigestParam(upload, desc.digest),
        operation: `upload ${desc.digest} to ${ref.name}`,
        scopes: this.#scopes,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
        body: () => store.createReadStream(desc.digest),
        accept: [201],
        signal,
        retry: false,
      });
      await res.body.dump().catch(() => {});
    }
    this.counts.uploaded++;
    this.#emit({ ...base, status: 'pushed', current: desc.size });
  }

  async manifest(desc: Descriptor, reference: string): Promise<void> {
    const bytes = await this.store.read(desc.digest, { maxSize: 4 << 20 });
    const res = await this.client.send(this.ref.domain, {
      method: 'PUT',
      url: `/v2/${this.ref.path}/manifests/${reference}`,
      operation: `PUT manifest ${this.ref.name}${reference.includes(':') ? '@' : ':'}${reference}`,
      scopes: this.#scopes,
      headers: { 'content-type': desc.mediaType },
      body: () => bytes,
      accept: [201, 200],
      signal: this.options.signal,
    });
    await res.body.dump().catch(() => {});
    const claimed = res.headers['docker-content-digest'];
    if (claimed && claimed !== desc.digest)
      throw new RegistryError(
        'Protocol',
        `PUT manifest ${this.ref.name}: the registry stored it as ${claimed}, not ${desc.digest}`,
      );
    this.#emit({ type: 'manifest', descriptor: desc, reference });
  }

  /** An image: its blobs, then its manifest. */
  async image(desc: Descriptor, reference: string): Promise<void> {
    const parsed = parseManifestOrIndex(
      await this.store.read(desc.digest),
      desc.mediaType,
      `manifest ${desc.digest}`,
    );
    if (parsed.kind !== 'manifest')
      throw new ImageError('InvalidDocument', `${desc.digest} is not an image manifest`);
    const m = parsed.manifest;
    const blobs: Array<{ d: Descriptor; kind: 'config' | 'layer' }> = [
      { d: m.config, kind: 'config' },
      ...m.layers.map((d) => ({ d, kind: 'layer' as const })),
    ];
    for (const b of blobs)
      this.#emit({ type: 'blob', kind: b.kind, digest: b.d.digest, size: b.d.size, status: 'waiting' });
    await mapLimit(blobs, this.options.concurrency ?? 3, (b) => this.blob(b.d, b.kind));
    await this.manifest(desc, reference);
  }
}

async function readRange(store: ContentStore, digest: Digest, start: number, end: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const s = store.createReadStream(digest, { start });
  let n = 0;
  for await (const c of s as AsyncIterable<Buffer>) {
    chunks.push(c);
    n += c.length;
    if (n >= end - start) break;
  }
  s.destroy();
  return Buffer.concat(chunks).subarray(0, end - start);
}

async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  let error: unknown;
  const worker = async () => {
    while (!failed && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (e) {
        if (!failed) error = e;
        failed = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed) throw error;
}

/**
 * Pushes an image or index from a content store to `ref`: every blob not already in the
 * repository (mounted from a sibling repository when the store pulled it from one), every
 * manifest of an index by digest, then the top manifest or index under the tag (or digest).
 */
export async function push(
  store: ContentStore,
  ref: string | Reference,
  options: PushOptions = {},
): Promise<PushResult> {
  const r = typeof ref === 'string' ? parseReference(ref) : ref;
  const source = options.source ?? r.toString();
  const desc = await store.resolve(source);
  if (!desc) throw new ImageError('NotFound', `no image named ${source} in ${store.dir}`);
  if (r.digest && r.digest !== desc.digest)
    throw new ImageError('DigestMismatch', `cannot push ${source} as ${r}: it has digest ${desc.digest}`);
  const target = r.tag ?? desc.digest;
  const { annotations: _a, platform: _p, ...plain } = desc;
  return withClient(options, (client) =>
    withStoreLease(store, async () => {
      const sources =
        options.mount === false ? new Map<string, string>() : await mountSources(store, r.domain, r.path);
      const p = new Pusher(client, store, r, options, sources);
      try {
        if (isIndexMediaType(desc.mediaType)) {
          const parsed = parseManifestOrIndex(
            await store.read(desc.digest),
            desc.mediaType,
            `index ${desc.digest}`,
          );
          if (parsed.kind !== 'index')
            throw new ImageError('InvalidDocument', `${desc.digest} is not an index`);
          for (const child of parsed.index.manifests) {
            if (!(await store.has(child.digest)))
              throw new ImageError(
                'NotFound',
                `cannot push ${source}: its index lists ${child.digest} (${child.platform ? `${child.platform.os}/${child.platform.architecture}` : 'no platform'}), which is not in the store`,
              );
            if (isIndexMediaType(child.mediaType))
              throw new RegistryError(
                'Unsupported',
                `cannot push ${source}: nested indexes are not supported`,
              );
            await p.image(child, child.digest);
          }
          await p.manifest(plain, target);
        } else if (isManifestMediaType(desc.mediaType)) {
          await p.image(plain, target);
        } else {
          throw new RegistryError(
            'Unsupported',
            `cannot push ${source}: ${desc.mediaType} is not an image manifest or index`,
          );
        }
      } catch (e) {
        if (isRegistryError(e) && e.code === 'Denied' && !e.message.includes('push'))
          throw new RegistryError(
            'Denied',
            `${e.message} (does the account have push access to ${r.name}?)`,
            {
              status: 403,
              errors: e.errors,
            },
          );
        throw e;
      }
      return { reference: r, descriptor: plain, ...p.counts };
    }),
  );
}
