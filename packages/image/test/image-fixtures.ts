// Helpers of the image tests: temp dirs, a small busybox layer made with node-tar, and an image
// stored from it (OCI manifest, uncompressed or gzip layer).
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { c as tarCreate } from 'tar';
import {
  type ContentStore,
  type Descriptor,
  type Digest,
  digestOf,
  hostPlatform,
  type ImageConfig,
  type Manifest,
  MediaType,
} from '../src/index.js';

const dirs: string[] = [];

/** A fresh temp dir, removed by {@link cleanupTemp}. */
export function tempDir(prefix = 'tsc-image-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export function cleanupTemp(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

export const HAVE_BUSYBOX = existsSync('/bin/busybox');

/** A layer tar (bytes) of `files` (path → content), plus, with `busybox`, /bin/busybox and /bin/sh. */
export async function makeLayer(files: Record<string, string> = {}, busybox = false): Promise<Buffer> {
  const src = tempDir('tsc-layer-');
  const names: string[] = [];
  if (busybox) {
    mkdirSync(join(src, 'bin'));
    copyFileSync('/bin/busybox', join(src, 'bin/busybox'));
    symlinkSync('busybox', join(src, 'bin/sh'));
    names.push('bin');
  }
  for (const [p, content] of Object.entries(files)) {
    const full = join(src, p);
    mkdirSync(join(full, '..'), { recursive: true });
    writeFileSync(full, content);
    names.push(p.split('/')[0] as string);
  }
  const chunks: Buffer[] = [];
  const stream = tarCreate({ cwd: src, portable: true, mtime: new Date(0) }, [...new Set(names)]);
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

export interface BuiltImage {
  manifestDescriptor: Descriptor;
  configDescriptor: Descriptor;
  layers: { descriptor: Descriptor; diffID: Digest }[];
  config: ImageConfig;
}

/** Stores an image of `layers` (uncompressed tars) with `config` extras, and names it `name` (full). */
export async function storeImage(
  store: ContentStore,
  opts: {
    name?: string;
    layers: Buffer[];
    gzip?: boolean;
    config?: Partial<ImageConfig>;
    created?: string;
  },
): Promise<BuiltImage> {
  const layers: { descriptor: Descriptor; diffID: Digest }[] = [];
  for (const tar of opts.layers) {
    const blob = opts.gzip ? gzipSync(tar) : tar;
    const digest = await store.put(blob);
    layers.push({
      descriptor: {
        mediaType: opts.gzip ? MediaType.ociLayerGzip : MediaType.ociLayer,
        digest,
        size: blob.length,
      },
      diffID: digestOf(tar),
    });
  }
  const p = hostPlatform();
  const config: ImageConfig = {
    created: opts.created ?? '2024-01-02T03:04:05Z',
    architecture: p.architecture,
    os: p.os,
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffID) },
    history: layers.map(() => ({ created: '2024-01-02T03:04:05Z', created_by: 'test' })),
    ...opts.config,
  };
  const configDescriptor = await store.putJSON(config, MediaType.ociConfig);
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: configDescriptor,
    layers: layers.map((l) => l.descriptor),
  };
  const manifestDescriptor = await store.putJSON(manifest, MediaType.ociManifest);
  if (opts.name) await store.setRef(opts.name, manifestDescriptor);
  return { manifestDescriptor, configDescriptor, layers, config };
}
