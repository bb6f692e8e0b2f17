/**
 * The image store of a data root (`<dataRoot>/content`, an OCI layout whose `index.json` names
 * images by their full normalised reference) and the lookup of an image by the name or ID a
 * user typed: `busybox`, `busybox:1`, `docker.io/library/busybox:latest`, `busybox@sha256:…`,
 * `sha256:<config digest>` (the image ID, as in Docker) or a unique prefix of that ID.
 */
import { constants as FS } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { flock, isSysError } from '@tsc/syscall';
import { defaultDataRoot } from './data-root.js';
import { type Digest, parseDigest } from './digest.js';
import { fsError, ImageError, isImageError } from './errors.js';
import { isIndexMediaType, isManifestMediaType } from './media.js';
import { hostPlatform, selectManifest } from './platform.js';
import { familiarName, parseReference, type Reference } from './reference.js';
import {
  type Descriptor,
  type ImageConfig,
  type Manifest,
  type Platform,
  parseImageConfig,
  parseManifestOrIndex,
} from './schema.js';
import { ContentStore, REF_NAME_ANNOTATION } from './store.js';

/** Manifests and configs larger than this are refused (Docker's registry limit is 4 MiB). */
export const MAX_DOCUMENT_SIZE = 8 << 20;

/** The image store of a data root: the {@link ContentStore} at `<dataRoot>/content` (created when missing). */
export function openImageStore(dataRoot: string = defaultDataRoot()): Promise<ContentStore> {
  return ContentStore.open(join(dataRoot, 'content'));
}

/** An image found in the store, with its manifest and config read and validated. */
export interface ResolvedImage {
  /** The full normalised name it was found by; undefined when found by ID or untagged. */
  ref?: string | undefined;
  /** What `index.json` points at: the manifest, or the index the manifest was chosen from. */
  rootDescriptor: Descriptor;
  /** The image manifest for the platform. */
  manifestDescriptor: Descriptor;
  manifest: Manifest;
  configDescriptor: Descriptor;
  config: ImageConfig;
  /** The image ID: the config digest, as Docker has it. */
  id: Digest;
}

/** One image of the store, as `nsinit images` lists it. */
export interface StoreImage {
  /** The full names pointing at it (sorted); empty for an untagged image. */
  names: string[];
  /** The `index.json` entry. */
  rootDescriptor: Descriptor;
  /** The resolved image for the platform, or undefined when it has none (or is incomplete). */
  image?: ResolvedImage | undefined;
  /** Why {@link image} is missing. */
  problem?: string | undefined;
}

/**
 * The normalised full name of what a user typed (`busybox` → `docker.io/library/busybox:latest`).
 * @throws ImageError `InvalidReference`.
 */
export function normalizeName(name: string): string {
  return parseReference(name).toString();
}

/** `docker.io/library/busybox:latest` → `busybox:latest`; other text is returned as it is. */
export function shortName(name: string): string {
  try {
    return familiarName(parseReference(name));
  } catch {
    return name;
  }
}

/**
 * Follows a manifest or index descriptor to the manifest for `platform` and reads its config.
 * @throws ImageError `NotFound` (a blob is missing), `InvalidDocument`, `NoMatchingPlatform`.
 */
export async function readImage(
  store: ContentStore,
  root: Descriptor,
  platform: Platform = hostPlatform(),
  what = root.digest as string,
): Promise<ResolvedImage> {
  let desc = root;
  for (let depth = 0; ; depth++) {
    if (depth > 4) throw new ImageError('InvalidDocument', `${what}: indexes nested too deeply`);
    if (!isIndexMediaType(desc.mediaType) && !isManifestMediaType(desc.mediaType))
      throw new ImageError('Unsupported', `${what}: ${desc.mediaType} is not an image manifest or index`);
    const bytes = await store.read(desc.digest, { maxSize: MAX_DOCUMENT_SIZE });
    const doc = parseManifestOrIndex(bytes, desc.mediaType, `${what}: manifest ${desc.digest}`);
    if (doc.kind === 'index') {
      desc = selectManifest(doc.index, platform, `${what}: index ${desc.digest}`);
      continue;
    }
    const manifest = doc.manifest;
    const configDescriptor = manifest.config;
    const config = parseImageConfig(
      await store.read(configDescriptor.digest, { maxSize: MAX_DOCUMENT_SIZE }),
      `${what}: config ${configDescriptor.digest}`,
    );
    if (config.rootfs.diff_ids.length !== manifest.layers.length)
      throw new ImageError(
        'InvalidDocument',
        `${what}: the manifest has ${manifest.layers.length} layers but the config ${config.rootfs.diff_ids.length} diff_ids`,
      );
    return {
      rootDescriptor: root,
      manifestDescriptor: desc,
      manifest,
      configDescriptor,
      config,
      id: configDescriptor.digest,
    };
  }
}

/** Every `index.json` entry with its names, resolved for `platform` (entries that fail carry a `problem`). */
export async function listImages(
  store: ContentStore,
  platform: Platform = hostPlatform(),
): Promise<StoreImage[]> {
  const index = await store.readIndex();
  const byDigest = new Map<string, StoreImage>();
  for (const m of index.manifests) {
    const key = `${m.mediaType} ${m.digest}`;
    let entry = byDigest.get(key);
    if (!entry) {
      const { annotations: _, ...rootDescriptor } = m;
      entry = { names: [], rootDescriptor };
      byDigest.set(key, entry);
      try {
        entry.image = await readImage(store, rootDescriptor, platform);
      } catch (e) {
        if (!isImageError(e)) throw e;
        entry.problem = e.message;
      }
    }
    const name = m.annotations?.[REF_NAME_ANNOTATION];
    if (name !== undefined) entry.names.push(name);
  }
  const out = [...byDigest.values()];
  for (const e of out) e.names.sort();
  return out;
}

function notFound(store: ContentStore, input: string): ImageError {
  return new ImageError(
    'NotFound',
    `image "${input}" not found in ${store.dir} (pull it with nsinit pull ${input})`,
  );
}

/**
 * Finds the `index.json` entry a user's name or ID designates, without reading more than needed.
 * Order, as in Docker: a full ID `sha256:<hex>`; a reference (familiar or full, with a tag or a
 * digest); a unique ID prefix of at least 4 hex digits (`sha256:` optional).
 * @throws ImageError `NotFound` (with a hint to pull), `InvalidReference` (ambiguous prefix or bad name).
 */
export async function findImage(
  store: ContentStore,
  nameOrId: string,
  platform: Platform = hostPlatform(),
): Promise<{ ref?: string | undefined; descriptor: Descriptor; image?: ResolvedImage }> {
  const full = /^sha256:[0-9a-f]{64}$/.test(nameOrId) ? (nameOrId as Digest) : undefined;
  const hexPrefix = /^(?:sha256:)?([0-9a-f]{4,64})$/.exec(nameOrId)?.[1];
  let ref: Reference | undefined;
  if (!full) {
    try {
      ref = parseReference(nameOrId);
    } catch (e) {
      if (hexPrefix === undefined) throw e;
    }
  }
  if (ref) {
    const refs = await store.listRefs();
    if (ref.digest === undefined) {
      const name = ref.toString();
      const hit = refs.find((r) => r.name === name);
      if (hit) return { ref: name, descriptor: strip(hit.descriptor) };
    } else {
      // name@digest: any entry of that repository whose manifest (or index) has the digest.
      const exact = refs.find((r) => r.name === ref.toString());
      if (exact) return { ref: exact.name, descriptor: strip(exact.descriptor) };
      const hit = refs.find((r) => r.descriptor.digest === ref.digest && sameRepo(r.name, ref.name));
      if (hit) return { descriptor: strip(hit.descriptor) };
    }
  }
  if (full || hexPrefix !== undefined) {
    const prefix = full ? full : `sha256:${hexPrefix}`;
    const matches = new Map<string, { descriptor: Descriptor; image: ResolvedImage }>();
    for (const e of await listImages(store, platform)) {
      if (e.image?.id.startsWith(prefix))
        matches.set(e.image.id, { descriptor: e.rootDescriptor, image: e.image });
    }
    if (matches.size > 1)
      throw new ImageError(
        'InvalidReference',
        `image ID prefix "${nameOrId}" is ambiguous: it matches ${[...matches.keys()].map((d) => d.slice(7, 19)).join(', ')}`,
      );
    const only = [...matches.values()][0];
    if (only) return only;
  }
  throw notFound(store, nameOrId);
}

function strip(d: Descriptor): Descriptor {
  const { annotations, ...rest } = d;
  if (!annotations) return rest;
  const { [REF_NAME_ANNOTATION]: _, ...others } = annotations;
  return Object.keys(others).length > 0 ? { ...rest, annotations: others } : rest;
}

function sameRepo(fullName: string, repo: string): boolean {
  try {
    return parseReference(fullName).name === repo;
  } catch {
    return false;
  }
}

/**
 * Resolves a name or ID to the image for `platform` (the host by default): follows an index to
 * the platform's manifest and reads and validates manifest and config.
 * @throws ImageError `NotFound` — `image "foo" not found in /var/lib/nsinit/content (pull it with nsinit pull foo)` —,
 * `NoMatchingPlatform`, `InvalidDocument`, `InvalidReference`.
 */
export async function resolveImage(
  store: ContentStore,
  nameOrId: string,
  platform: Platform = hostPlatform(),
): Promise<ResolvedImage> {
  const found = await findImage(store, nameOrId, platform);
  const image = found.image ?? (await readImage(store, found.descriptor, platform, `image "${nameOrId}"`));
  return { ...image, ref: found.ref };
}

/** True when `d` is a digest string (used by commands that accept IDs). */
export function isDigest(d: string): d is Digest {
  try {
    parseDigest(d);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function lockGc(store: ContentStore, mode: 'shared' | 'exclusive'): Promise<FileHandle> {
  const path = join(store.dir, 'gc.lock');
  let h: FileHandle;
  try {
    h = await open(path, FS.O_RDWR | FS.O_CREAT, 0o600);
  } catch (e) {
    throw fsError('open', path, e);
  }
  for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
    try {
      flock(h.fd, mode, false);
      return h;
    } catch (e) {
      if (!isSysError(e) || (e.code !== 'EAGAIN' && e.code !== 'EWOULDBLOCK')) {
        await h.close();
        throw fsError('lock', path, e);
      }
    }
    await sleep(delay);
  }
}

/**
 * Runs `fn` holding a lease on the store: {@link collectGarbage} waits until no lease is held,
 * so blobs that `fn` stores before it names them (a pull, a load, a commit) are not collected
 * in between. (A shared `flock` on `<store>/gc.lock`; collection takes it exclusively.)
 */
export async function withStoreLease<T>(store: ContentStore, fn: () => Promise<T>): Promise<T> {
  const h = await lockGc(store, 'shared');
  try {
    return await fn();
  } finally {
    await h.close();
  }
}

/** {@link ContentStore.gc} once no lease is held (see {@link withStoreLease}). */
export async function collectGarbage(store: ContentStore): Promise<{ removed: Digest[]; bytes: number }> {
  const h = await lockGc(store, 'exclusive');
  try {
    return await store.gc();
  } finally {
    await h.close();
  }
}
