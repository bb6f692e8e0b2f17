/**
 * `save`: images of the store as a tar stream, in one of two formats.
 *
 * - `docker` (the default, what `docker save` wrote before Docker 25 and what skopeo's
 *   `docker-archive:` reads): `<config hex>.json`, `<diff ID hex>/layer.tar` (uncompressed
 *   layers: compressed blobs are decompressed on the way, and checked against the diff ID),
 *   `manifest.json` (`[{Config, RepoTags, Layers}]`) and `repositories`.
 * - `oci`: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) with the blobs as
 *   stored; each name is an `index.json` entry annotated as Docker ≥ 25 and containerd do:
 *   `org.opencontainers.image.ref.name` is the tag (so `umoci unpack --image DIR:latest` and
 *   `skopeo … oci-archive:FILE:latest` find it) and `io.containerd.image.name` the full name.
 *
 * Every blob is verified against its digest while it is written; a failure leaves a truncated
 * stream, so callers write to a temporary file and rename it on success ({@link saveImagesToFile}).
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { type Digest, Digester, splitDigest, VerifyStream } from '../digest.js';
import { fsError, ImageError } from '../errors.js';
import { layerCompression, MediaType, sniffCompression } from '../media.js';
import { hostPlatform } from '../platform.js';
import { familiarName, parseReference } from '../reference.js';
import { type ResolvedImage, resolveImage } from '../resolve.js';
import type { Descriptor, Platform } from '../schema.js';
import type { ContentStore } from '../store.js';
import { TarWriter } from './tar.js';

/** The annotation containerd and Docker ≥ 25 put the full image name in. */
export const CONTAINERD_NAME_ANNOTATION = 'io.containerd.image.name';

/** Archive formats of {@link saveImages}. */
export type ArchiveFormat = 'docker' | 'oci';

export interface SaveOptions {
  store: ContentStore;
  /** Names or IDs, as for {@link resolveImage}. */
  names: readonly string[];
  format?: ArchiveFormat | undefined;
  /** The platform of images that are indexes; default the host's. */
  platform?: Platform | undefined;
}

interface Saved {
  image: ResolvedImage;
  /** Full names given for it (with a tag). */
  names: string[];
}

async function resolveAll(opts: SaveOptions): Promise<Saved[]> {
  if (opts.names.length === 0) throw new ImageError('InvalidReference', 'save: name at least one image');
  const byId = new Map<string, Saved>();
  for (const n of opts.names) {
    const image = await resolveImage(opts.store, n, opts.platform ?? hostPlatform());
    const key = `${image.manifestDescriptor.digest}`;
    let s = byId.get(key);
    if (!s) {
      s = { image, names: [] };
      byId.set(key, s);
    }
    // A name, not an ID: it goes into the archive.
    if (image.ref !== undefined && !s.names.includes(image.ref)) s.names.push(image.ref);
  }
  return [...byId.values()];
}

async function* verified(store: ContentStore, d: Descriptor): AsyncIterable<Uint8Array> {
  const v = new VerifyStream(d.digest, { size: d.size, what: `blob ${d.digest}` });
  const src = store.createReadStream(d.digest);
  src.on('error', (e) => v.destroy(fsError('read', store.blobPath(d.digest), e)));
  src.pipe(v);
  yield* v as AsyncIterable<Uint8Array>;
}

/** The compression of a stored layer, from its media type or (unknown types) its first bytes. */
async function compressionOf(store: ContentStore, d: Descriptor): Promise<'none' | 'gzip' | 'zstd'> {
  const known = layerCompression(d.mediaType);
  if (known) return known;
  const src = store.createReadStream(d.digest);
  for await (const chunk of src as AsyncIterable<Buffer>) {
    src.destroy();
    return sniffCompression(chunk);
  }
  return 'none';
}

async function* gunzipped(store: ContentStore, d: Descriptor): AsyncIterable<Uint8Array> {
  const g = createGunzip();
  const src = verified(store, d);
  const feed = (async () => {
    try {
      for await (const c of src) if (!g.write(c)) await once(g, 'drain');
      g.end();
    } catch (e) {
      g.destroy(e as Error);
    }
  })();
  try {
    yield* g as AsyncIterable<Uint8Array>;
  } finally {
    g.destroy();
    await feed;
  }
}

/**
 * The uncompressed size of a gzip layer, checking that it hashes to `diffID`. (Decompressing
 * twice, once to learn the size for the tar header and once to write, costs CPU but no disk.)
 */
async function uncompressedSize(store: ContentStore, d: Descriptor, diffID: Digest): Promise<number> {
  const h = new Digester(splitDigest(diffID).algorithm);
  for await (const c of gunzipped(store, d)) h.update(c);
  const got = h.digest();
  if (got !== diffID)
    throw new ImageError(
      'DigestMismatch',
      `layer ${d.digest}: its uncompressed content has digest ${got}, the config's diff ID is ${diffID}`,
    );
  return h.size;
}

function tagsOf(names: string[]): string[] {
  return names.map((n) => familiarName(parseReference(n)));
}

async function saveDocker(tar: TarWriter, store: ContentStore, images: Saved[]): Promise<void> {
  const written = new Set<string>();
  const manifest: { Config: string; RepoTags: string[] | null; Layers: string[] }[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  for (const { image, names } of images) {
    const layers: string[] = [];
    for (const [i, layer] of image.manifest.layers.entries()) {
      const diffID = image.config.rootfs.diff_ids[i] as Digest;
      const file = `${splitDigest(diffID).hex}/layer.tar`;
      layers.push(file);
      if (written.has(file)) continue;
      written.add(file);
      const compression = await compressionOf(store, layer);
      if (compression === 'zstd')
        throw new ImageError(
          'Unsupported',
          `layer ${layer.digest} is zstd-compressed: Docker archives hold uncompressed layers; save with --format oci`,
        );
      if (compression === 'none') {
        if (layer.digest !== diffID)
          throw new ImageError(
            'DigestMismatch',
            `layer ${layer.digest} is uncompressed but the config's diff ID is ${diffID}`,
          );
        await tar.addFile(file, layer.size, verified(store, layer));
      } else {
        const size = await uncompressedSize(store, layer, diffID);
        // Hash again while writing: the bytes that go out are the ones checked.
        const h = new Digester(splitDigest(diffID).algorithm);
        async function* hashed(): AsyncIterable<Uint8Array> {
          for await (const c of gunzipped(store, layer)) {
            h.update(c);
            yield c;
          }
        }
        await tar.addFile(file, size, hashed());
        if (h.digest() !== diffID)
          throw new ImageError('DigestMismatch', `layer ${layer.digest} changed while it was saved`);
      }
    }
    const configFile = `${splitDigest(image.id).hex}.json`;
    if (!written.has(configFile)) {
      written.add(configFile);
      await tar.addFile(configFile, image.configDescriptor.size, verified(store, image.configDescriptor));
    }
    const tags = tagsOf(names);
    manifest.push({ Config: configFile, RepoTags: tags.length > 0 ? tags : null, Layers: layers });
    const top = layers.at(-1)?.split('/')[0];
    for (const n of names) {
      const r = parseReference(n);
      if (r.tag === undefined || top === undefined) continue;
      const repo = familiarName(parseReference(r.name));
      const short = repo.slice(0, repo.lastIndexOf(':'));
      repositories[short] = { ...(repositories[short] ?? {}), [r.tag]: top };
    }
  }
  await tar.addFile('manifest.json', ...json(manifest));
  if (Object.keys(repositories).length > 0) await tar.addFile('repositories', ...json(repositories));
}

function json(doc: unknown): [number, Buffer] {
  const b = Buffer.from(`${JSON.stringify(doc)}\n`);
  return [b.length, b];
}

async function saveOCI(tar: TarWriter, store: ContentStore, images: Saved[]): Promise<void> {
  await tar.addFile('oci-layout', ...json({ imageLayoutVersion: '1.0.0' }));
  const written = new Set<string>();
  const blob = async (d: Descriptor) => {
    if (written.has(d.digest)) return;
    written.add(d.digest);
    const { algorithm, hex } = splitDigest(d.digest);
    await tar.addFile(`blobs/${algorithm}/${hex}`, d.size, verified(store, d));
  };
  const manifests: Descriptor[] = [];
  for (const { image, names } of images) {
    for (const layer of image.manifest.layers) await blob(layer);
    await blob(image.configDescriptor);
    await blob(image.manifestDescriptor);
    const base: Descriptor = {
      mediaType: image.manifestDescriptor.mediaType,
      digest: image.manifestDescriptor.digest,
      size: image.manifestDescriptor.size,
      platform: {
        architecture: image.config.architecture,
        os: image.config.os,
        ...(image.config.variant ? { variant: image.config.variant } : {}),
      },
    };
    if (names.length === 0) manifests.push(base);
    for (const n of names) {
      const r = parseReference(n);
      manifests.push({
        ...base,
        annotations: {
          [CONTAINERD_NAME_ANNOTATION]: n,
          'org.opencontainers.image.ref.name': r.tag ?? n,
        },
      });
    }
  }
  await tar.addFile('index.json', ...json({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests }));
}

/**
 * Writes the images as a tar archive to `out` and ends it.
 * @throws ImageError `NotFound` for an unknown name (before anything is written),
 * `DigestMismatch` for a corrupted blob (the stream is then cut short).
 */
export async function saveImages(out: Writable, opts: SaveOptions): Promise<void> {
  const images = await resolveAll(opts);
  const tar = new TarWriter(out);
  if ((opts.format ?? 'docker') === 'oci') await saveOCI(tar, opts.store, images);
  else await saveDocker(tar, opts.store, images);
  await tar.finish();
}

/** {@link saveImages} into `file`, atomically: a temporary file renamed into place on success. */
export async function saveImagesToFile(file: string, opts: SaveOptions): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const out = createWriteStream(tmp, { flags: 'wx', mode: 0o644 });
  const opened = once(out, 'open');
  try {
    await opened;
    await saveImages(out, opts);
    await rename(tmp, file);
  } catch (e) {
    out.destroy();
    await rm(tmp, { force: true });
    throw fsError('save to', file, e);
  }
}
