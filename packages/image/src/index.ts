/**
 * @tsc/image — the OCI image model shared by the layer store, the registry client and the
 * CLI: references, digests, media types, validated manifests/indexes/configs, platforms,
 * and a crash-safe content store in the OCI image layout.
 *
 * @example
 * import { ContentStore, parseReference } from '@tsc/image';
 * const ref = parseReference('busybox');            // docker.io/library/busybox:latest
 * const store = await ContentStore.open('/var/lib/nsinit/content');
 * const desc = await store.resolve(ref.toString()); // the manifest descriptor, if pulled
 */

export * from './archive/index.js';
export { applyChanges, CHANGE_INSTRUCTIONS, type ChangeInstruction } from './changes.js';
export { addUnnamed, type CommitOptions, type CommitResult, commitImage } from './commit.js';
export { DEFAULT_DATA_ROOT, defaultDataRoot } from './data-root.js';
export { type Digest, Digester, digestOf, parseDigest, splitDigest, VerifyStream } from './digest.js';
export { ImageError, type ImageErrorCode, isImageError } from './errors.js';
export {
  type Compression,
  isIndexMediaType,
  isManifestMediaType,
  isSchema1MediaType,
  layerCompression,
  MediaType,
  sniffCompression,
} from './media.js';
export { formatPlatform, hostPlatform, parsePlatform, platformMatches, selectManifest } from './platform.js';
export {
  DEFAULT_DOMAIN,
  DEFAULT_REGISTRY_HOST,
  familiarName,
  parseReference,
  type Reference,
  withDigest,
  withTag,
} from './reference.js';
export {
  collectGarbage,
  findImage,
  listImages,
  MAX_DOCUMENT_SIZE,
  normalizeName,
  openImageStore,
  type ResolvedImage,
  readImage,
  resolveImage,
  type StoreImage,
  shortName,
  withStoreLease,
} from './resolve.js';
export {
  type ContainerConfig,
  type Descriptor,
  type History,
  type ImageConfig,
  type Index,
  type Manifest,
  type ParsedDocument,
  type Platform,
  parseDescriptor,
  parseImageConfig,
  parseIndex,
  parseManifest,
  parseManifestOrIndex,
} from './schema.js';
export { ContentStore, type Ingest, type IngestTarget, REF_NAME_ANNOTATION, type StoreRef } from './store.js';
