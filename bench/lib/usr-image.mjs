// A realistic image for the storage and pull benchmarks: three gzip'd layers made from this
// machine's /usr trees (many small files and some big ones), ~60 MB compressed, written into an
// OCI image layout with @tsc/image's ContentStore and named `bench`.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

export const USR_LAYERS = [
  ['usr/lib/python3.11', 'usr/share/perl'],
  ['usr/lib/node_modules', 'usr/share/i18n'],
  ['usr/lib/gcc'],
];

/**
 * Builds the image into the OCI layout `layoutDir` (created). `image` is the loaded
 * @tsc/image module. Returns sizes and counts.
 */
export async function buildUsrImage(image, layoutDir) {
  const content = await image.ContentStore.open(layoutDir);
  const layers = [];
  const diffIDs = [];
  let files = 0;
  let rawBytes = 0;
  for (const paths of USR_LAYERS) {
    const present = paths.filter((p) => {
      try {
        return statSync(join('/', p)).isDirectory();
      } catch {
        return false;
      }
    });
    const tar = execFileSync('tar', ['--numeric-owner', '-cf', '-', '-C', '/', ...present], {
      maxBuffer: 1 << 30,
    });
    files += Number(
      execFileSync('sh', ['-c', 'tar -tf - | wc -l'], { input: tar, maxBuffer: 1 << 26 })
        .toString()
        .trim(),
    );
    rawBytes += tar.length;
    const blob = gzipSync(tar, { level: 6 });
    const digest = await content.put(blob);
    layers.push({ mediaType: image.MediaType.ociLayerGzip, digest, size: blob.length });
    diffIDs.push(`sha256:${createHash('sha256').update(tar).digest('hex')}`);
  }
  const config = await content.putJSON(
    { architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: diffIDs } },
    image.MediaType.ociConfig,
  );
  const manifest = await content.putJSON(
    { schemaVersion: 2, mediaType: image.MediaType.ociManifest, config, layers },
    image.MediaType.ociManifest,
  );
  await content.setRef('bench', manifest);
  return { layers, diffIDs, files, rawBytes, gzBytes: layers.reduce((s, l) => s + l.size, 0) };
}
