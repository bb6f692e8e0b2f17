/**
 * A new image from a base image and one more layer (a container's changes): the config gets
 * the layer's diff ID, a history entry and the `--change` instructions; the manifest gets the
 * base's layers and the new one. The base image is not changed.
 */

import { applyChanges } from './changes.js';
import type { Digest } from './digest.js';
import { parseDigest } from './digest.js';
import { ImageError } from './errors.js';
import { MediaType } from './media.js';
import { normalizeName, type ResolvedImage, withStoreLease } from './resolve.js';
import type { Descriptor, History, ImageConfig, Manifest } from './schema.js';
import type { ContentStore } from './store.js';

/** What {@link commitImage} needs. */
export interface CommitOptions {
  store: ContentStore;
  /** The image the container was created from ({@link resolveImage}). */
  base: ResolvedImage;
  /**
   * The container's changes as a layer blob already in the store (its descriptor) and the
   * digest of its uncompressed tar (the diff ID). Without a layer only the config changes
   * (an `empty_layer` history entry).
   */
  layer?: { descriptor: Descriptor; diffID: Digest } | undefined;
  /** Dockerfile instructions (`CMD ["sh"]`, `ENV A=b`, …), applied in order. */
  changes?: readonly string[] | undefined;
  /** The history comment (`docker commit -m`). */
  message?: string | undefined;
  /** The author (`docker commit -a`). */
  author?: string | undefined;
  /** What made the layer, for the history (`created_by`); default `nsinit commit`. */
  createdBy?: string | undefined;
  /** A name to give the new image (familiar or full); none leaves it untagged but kept. */
  ref?: string | undefined;
  /** The creation time; default now. */
  created?: Date | undefined;
}

/** What {@link commitImage} made. */
export interface CommitResult {
  manifestDescriptor: Descriptor;
  configDescriptor: Descriptor;
  /** The image ID (config digest). */
  id: Digest;
  /** The full name set, if any. */
  ref?: string | undefined;
}

/** The OCI media type with the same content as a Docker one (layers and configs). */
function ociMediaType(mt: string): string {
  switch (mt) {
    case MediaType.dockerConfig:
      return MediaType.ociConfig;
    case MediaType.dockerLayerGzip:
      return MediaType.ociLayerGzip;
    case MediaType.dockerLayerForeignGzip:
      return MediaType.ociLayerNondistributableGzip;
    case 'application/vnd.docker.image.rootfs.diff.tar':
      return MediaType.ociLayer;
    case 'application/vnd.docker.image.rootfs.diff.tar.zstd':
      return MediaType.ociLayerZstd;
    default:
      return mt;
  }
}

/** Copies a descriptor keeping only what a manifest entry needs. */
function entry(d: Descriptor): Descriptor {
  const out: Descriptor = { mediaType: ociMediaType(d.mediaType), digest: d.digest, size: d.size };
  if (d.urls) out.urls = d.urls;
  if (d.annotations) out.annotations = d.annotations;
  return out;
}

/**
 * Stores a new image: config (history appended, diff ID added, changes applied) and OCI
 * manifest; sets `ref` when given, or else adds an unnamed `index.json` entry so the image
 * survives garbage collection.
 * @throws ImageError `NotFound` (the layer blob is not in the store), `InvalidDocument` (a bad change).
 */
export function commitImage(opts: CommitOptions): Promise<CommitResult> {
  return withStoreLease(opts.store, () => commit(opts));
}

async function commit(opts: CommitOptions): Promise<CommitResult> {
  const { store, base } = opts;
  const created = (opts.created ?? new Date()).toISOString();
  const ref = opts.ref !== undefined ? normalizeName(opts.ref) : undefined;
  if (opts.layer) {
    parseDigest(opts.layer.diffID, 'layer diffID');
    if (!(await store.has(opts.layer.descriptor.digest)))
      throw new ImageError(
        'NotFound',
        `commit: the layer blob ${opts.layer.descriptor.digest} is not in ${store.dir}`,
      );
  }
  const config: ImageConfig = structuredClone(base.config);
  config.created = created;
  if (opts.author !== undefined) config.author = opts.author;
  if (opts.changes && opts.changes.length > 0) config.config = applyChanges(config.config, opts.changes);
  const history: History = { created, created_by: opts.createdBy ?? 'nsinit commit' };
  if (opts.author !== undefined) history.author = opts.author;
  if (opts.message !== undefined && opts.message !== '') history.comment = opts.message;
  if (opts.layer)
    config.rootfs = { type: 'layers', diff_ids: [...config.rootfs.diff_ids, opts.layer.diffID] };
  else history.empty_layer = true;
  config.history = [...(config.history ?? []), history];

  const configDescriptor = await store.putJSON(config, MediaType.ociConfig);
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: configDescriptor,
    layers: [...base.manifest.layers.map(entry), ...(opts.layer ? [entry(opts.layer.descriptor)] : [])],
  };
  const md = await store.putJSON(manifest, MediaType.ociManifest);
  const manifestDescriptor: Descriptor = {
    ...md,
    platform: {
      architecture: config.architecture,
      os: config.os,
      ...(config.variant ? { variant: config.variant } : {}),
    },
  };
  if (ref !== undefined) await store.setRef(ref, manifestDescriptor);
  else await addUnnamed(store, manifestDescriptor);
  return { manifestDescriptor, configDescriptor, id: configDescriptor.digest, ref };
}

/** Adds an `index.json` entry without a name (once per digest), which keeps the image from gc. */
export async function addUnnamed(store: ContentStore, descriptor: Descriptor): Promise<void> {
  await store.updateIndex((index) => {
    if (index.manifests.some((m) => m.digest === descriptor.digest)) return index;
    return { ...index, manifests: [...index.manifests, descriptor] };
  });
}
