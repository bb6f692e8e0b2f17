import { ContentStore, type Descriptor, type Digest, MediaType } from '@tsc/image';
import { gz, sha256 } from './helpers.js';

export interface TestImage {
  content: ContentStore;
  layers: Descriptor[];
  diffIDs: Digest[];
  manifest: Descriptor;
}

/** An OCI layout at `dir` holding an image of gzip'd `tars` (base first), tagged `tag`. */
export async function makeImage(dir: string, tars: Buffer[], tag = 'test'): Promise<TestImage> {
  const content = await ContentStore.open(dir);
  const layers: Descriptor[] = [];
  const diffIDs: Digest[] = [];
  for (const tar of tars) {
    const blob = gz(tar);
    const digest = await content.put(blob);
    layers.push({ mediaType: MediaType.ociLayerGzip, digest, size: blob.length });
    diffIDs.push(sha256(tar));
  }
  const config = await content.putJSON(
    { architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: diffIDs } },
    MediaType.ociConfig,
  );
  const manifest = await content.putJSON(
    { schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers },
    MediaType.ociManifest,
  );
  await content.setRef(tag, manifest);
  return { content, layers, diffIDs, manifest };
}
