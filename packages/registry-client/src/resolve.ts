import {
  type ContentStore,
  type Descriptor,
  formatPlatform,
  hostPlatform,
  type ImageConfig,
  ImageError,
  type Manifest,
  type Platform,
  parseImageConfig,
  parseManifestOrIndex,
  parsePlatform,
  parseReference,
  platformMatches,
  selectManifest,
} from '@tsc/image';

/** An image in a content store, ready to be unpacked and run. */
export interface ResolvedImage {
  /** The name as recorded in the store (`docker.io/library/busybox:latest`). */
  name: string;
  manifestDescriptor: Descriptor;
  manifest: Manifest;
  configDescriptor: Descriptor;
  config: ImageConfig;
}

/**
 * Finds an image in a content store by name (normalised as Docker does, so `busybox` finds
 * `docker.io/library/busybox:latest`) for a platform (this machine's by default): the name may
 * point at an image manifest (what {@link pull} records) or at an index (an OCI layout made by
 * other tools), from which the platform's manifest is chosen. The config is read and validated.
 * @throws ImageError `NotFound` (not pulled, or a blob missing), `NoMatchingPlatform`.
 */
export async function resolveImage(
  store: ContentStore,
  name: string,
  platform?: string | Platform,
): Promise<ResolvedImage> {
  const want =
    platform === undefined
      ? hostPlatform()
      : typeof platform === 'string'
        ? parsePlatform(platform)
        : platform;
  let key = name;
  let desc = await store.resolve(name);
  if (!desc) {
    key = parseReference(name).toString();
    desc = await store.resolve(key);
  }
  if (!desc) throw new ImageError('NotFound', `image ${name} is not in ${store.dir} (pull it first)`);
  let doc = parseManifestOrIndex(
    await store.read(desc.digest, { maxSize: 4 << 20 }),
    desc.mediaType,
    `${key}`,
  );
  let manifestDescriptor = desc;
  for (let depth = 0; doc.kind === 'index'; depth++) {
    if (depth > 4) throw new ImageError('Unsupported', `${key}: indexes nested too deeply`);
    manifestDescriptor = selectManifest(doc.index, want, key);
    doc = parseManifestOrIndex(
      await store.read(manifestDescriptor.digest, { maxSize: 4 << 20 }),
      manifestDescriptor.mediaType,
      `${key} (${manifestDescriptor.digest})`,
    );
  }
  const manifest = doc.manifest;
  const config = parseImageConfig(await store.read(manifest.config.digest), `config of ${key}`);
  const have: Platform = {
    os: config.os,
    architecture: config.architecture,
    ...(config.variant ? { variant: config.variant } : {}),
  };
  if (!platformMatches(have, want))
    throw new ImageError(
      'NoMatchingPlatform',
      `${key} is an image for ${formatPlatform(have)}, not ${formatPlatform(want)}`,
    );
  return { name: key, manifestDescriptor, manifest, configDescriptor: manifest.config, config };
}
