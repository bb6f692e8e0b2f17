// save/load: our archives read by skopeo and umoci, theirs loaded by us, Docker ≥ 25's combined
// format, gzip, and failures that must leave no name behind.
import { execFileSync } from 'node:child_process';
import {
  createReadStream,
  createWriteStream,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import {
  type ContentStore,
  digestOf,
  loadImages,
  MediaType,
  openImageStore,
  resolveImage,
  saveImages,
  saveImagesToFile,
  splitDigest,
  TarWriter,
} from '../src/index.js';
import {
  type BuiltImage,
  cleanupTemp,
  HAVE_BUSYBOX,
  makeLayer,
  storeImage,
  tempDir,
} from './image-fixtures.js';

const have = (bin: string) => {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const SKOPEO = have('skopeo');
const UMOCI = have('umoci');

let busyboxLayer: Buffer;
let tmp: string;
let store: ContentStore;
let image: BuiltImage;

beforeAll(async () => {
  busyboxLayer = HAVE_BUSYBOX
    ? await makeLayer({ 'etc/motd': 'hi\n' }, true)
    : await makeLayer({ 'etc/motd': 'hi\n' });
});
beforeEach(async () => {
  tmp = tempDir();
  store = await openImageStore(join(tmp, 'root'));
  image = await storeImage(store, {
    name: 'docker.io/library/busybox:latest',
    layers: [busyboxLayer, await makeLayer({ 'etc/extra': 'x\n' })],
    gzip: true,
    config: { config: { Cmd: ['sh'], Env: ['PATH=/bin'] } },
  });
});
afterAll(cleanupTemp);

async function fresh(): Promise<ContentStore> {
  return openImageStore(join(tempDir(), 'other'));
}

function tarList(file: string): string[] {
  return execFileSync('tar', ['tf', file], { encoding: 'utf8' }).trim().split('\n');
}

describe('save', () => {
  test('docker format: manifest.json, <id>.json, uncompressed <diffid>/layer.tar, repositories', async () => {
    const file = join(tmp, 'b.tar');
    await saveImagesToFile(file, { store, names: ['busybox'] });
    const names = tarList(file);
    const id = splitDigest(image.configDescriptor.digest).hex;
    const [l1, l2] = image.layers.map((l) => splitDigest(l.diffID).hex);
    expect(names).toEqual(
      expect.arrayContaining([
        `${id}.json`,
        `${l1}/layer.tar`,
        `${l2}/layer.tar`,
        'manifest.json',
        'repositories',
      ]),
    );
    const manifest = JSON.parse(execFileSync('tar', ['xOf', file, 'manifest.json'], { encoding: 'utf8' }));
    expect(manifest).toEqual([
      { Config: `${id}.json`, RepoTags: ['busybox:latest'], Layers: [`${l1}/layer.tar`, `${l2}/layer.tar`] },
    ]);
    expect(JSON.parse(execFileSync('tar', ['xOf', file, 'repositories'], { encoding: 'utf8' }))).toEqual({
      busybox: { latest: l2 },
    });
    const layer = execFileSync('tar', ['xOf', file, `${l1}/layer.tar`], { maxBuffer: 1 << 26 });
    expect(digestOf(layer)).toBe(image.layers[0]?.diffID);
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  test.skipIf(!SKOPEO)('skopeo inspects our docker and OCI archives', async () => {
    const d = join(tmp, 'd.tar');
    const o = join(tmp, 'o.tar');
    await saveImagesToFile(d, { store, names: ['busybox'] });
    await saveImagesToFile(o, { store, names: ['busybox'], format: 'oci' });
    const di = JSON.parse(execFileSync('skopeo', ['inspect', `docker-archive:${d}`], { encoding: 'utf8' }));
    expect(di.RepoTags).toEqual([]);
    expect(di.Layers).toEqual(image.layers.map((l) => l.diffID));
    expect(di.Env).toEqual(['PATH=/bin']);
    const oi = JSON.parse(
      execFileSync('skopeo', ['inspect', `oci-archive:${o}:latest`], { encoding: 'utf8' }),
    );
    expect(oi.Digest).toBe(image.manifestDescriptor.digest);
    expect(oi.Layers).toEqual(image.layers.map((l) => l.descriptor.digest));
    const raw = JSON.parse(
      execFileSync('skopeo', ['inspect', '--config', '--raw', `docker-archive:${d}`], { encoding: 'utf8' }),
    );
    expect(raw.rootfs.diff_ids).toEqual(image.layers.map((l) => l.diffID));
  });

  test.skipIf(!UMOCI || !HAVE_BUSYBOX)('umoci unpacks our OCI save (untarred)', async () => {
    const o = join(tmp, 'o.tar');
    await saveImagesToFile(o, { store, names: ['busybox'], format: 'oci' });
    const dir = join(tmp, 'layout');
    mkdirSync(dir);
    execFileSync('tar', ['xf', o, '-C', dir]);
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'));
    expect(index.manifests[0].annotations).toEqual({
      'io.containerd.image.name': 'docker.io/library/busybox:latest',
      'org.opencontainers.image.ref.name': 'latest',
    });
    const bundle = join(tmp, 'bundle');
    execFileSync('umoci', ['unpack', '--image', `${dir}:latest`, bundle], { stdio: 'pipe' });
    expect(existsSync(join(bundle, 'rootfs/bin/busybox'))).toBe(true);
    expect(readFileSync(join(bundle, 'rootfs/etc/extra'), 'utf8')).toBe('x\n');
    const cfg = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
    expect(cfg.process.args).toEqual(['sh']);
  });

  test('unknown names fail before anything is written; a corrupted blob fails the save', async () => {
    const file = join(tmp, 'x.tar');
    await expect(saveImagesToFile(file, { store, names: ['busybox', 'nope'] })).rejects.toThrow(
      /image "nope" not found/,
    );
    expect(existsSync(file)).toBe(false);
    writeFileSync(store.blobPath(image.layers[1]?.descriptor.digest as never), 'garbage');
    await expect(saveImagesToFile(file, { store, names: ['busybox'], format: 'oci' })).rejects.toMatchObject({
      code: expect.stringMatching(/DigestMismatch|SizeMismatch/),
    });
    expect(existsSync(file)).toBe(false);
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});

describe('load', () => {
  test('round trip of both formats keeps the image ID; OCI keeps the manifest digest', async () => {
    for (const format of ['docker', 'oci'] as const) {
      const file = join(tmp, `${format}.tar`);
      await saveImagesToFile(file, { store, names: ['busybox', 'busybox:latest'], format });
      const other = await fresh();
      const loaded = await loadImages(createReadStream(file), { store: other });
      expect(loaded).toHaveLength(1);
      expect(loaded[0]?.names).toEqual(['docker.io/library/busybox:latest']);
      expect(loaded[0]?.id).toBe(image.configDescriptor.digest);
      const r = await resolveImage(other, 'busybox');
      expect(r.id).toBe(image.configDescriptor.digest);
      if (format === 'oci') expect(r.manifestDescriptor.digest).toBe(image.manifestDescriptor.digest);
      else
        expect(r.manifest.layers.map((l) => l.mediaType)).toEqual([MediaType.ociLayer, MediaType.ociLayer]);
    }
  });

  test('gzip-compressed archives, from a stream', async () => {
    const out = new PassThrough();
    const gz = createGzip();
    const file = join(tmp, 'b.tar.gz');
    const written = pipeline(out, gz, createWriteStream(file));
    await saveImages(out, { store, names: ['busybox'] });
    await written;
    const other = await fresh();
    const loaded = await loadImages(createReadStream(file), { store: other });
    expect(loaded[0]?.id).toBe(image.configDescriptor.digest);
  });

  test.skipIf(!SKOPEO)("skopeo's docker-archive and oci-archive", async () => {
    const d = join(tmp, 'sk-d.tar');
    const o = join(tmp, 'sk-o.tar');
    const src = `oci:${store.dir}:docker.io/library/busybox:latest`;
    execFileSync('skopeo', ['copy', src, `docker-archive:${d}:foo/bar:v1`], { stdio: 'pipe' });
    execFileSync('skopeo', ['copy', src, `oci-archive:${o}:v2`], { stdio: 'pipe' });
    // skopeo's docker archive has legacy layer dirs whose layer.tar are symlinks
    expect(tarList(d).some((n) => /^[0-9a-f]{64}\/layer\.tar$/.test(n))).toBe(true);
    const other = await fresh();
    const a = await loadImages(createReadStream(d), { store: other });
    expect(a[0]?.names).toEqual(['docker.io/foo/bar:v1']);
    expect(a[0]?.id).toBe(image.configDescriptor.digest);
    const b = await loadImages(createReadStream(o), { store: other });
    // a bare tag names no repository: the image is kept untagged
    expect(b[0]?.names).toEqual([]);
    expect(b[0]?.id).toBe(image.configDescriptor.digest);
    expect((await resolveImage(other, 'foo/bar:v1')).id).toBe(image.configDescriptor.digest);
    const idx = await other.readIndex();
    expect(idx.manifests.some((m) => m.digest === image.manifestDescriptor.digest && !m.annotations)).toBe(
      true,
    );
  });

  test("Docker ≥ 25's combined format (OCI layout + manifest.json)", async () => {
    const file = join(tmp, 'combined.tar');
    const out = createWriteStream(file);
    const tar = new TarWriter(out);
    const blob = async (d: string) => {
      const data = await store.read(d as never);
      await tar.addFile(`blobs/sha256/${splitDigest(d as never).hex}`, data.length, data);
    };
    for (const l of image.layers) await blob(l.descriptor.digest);
    await blob(image.configDescriptor.digest);
    await blob(image.manifestDescriptor.digest);
    const json = (o: unknown) => Buffer.from(JSON.stringify(o));
    const index = json({
      schemaVersion: 2,
      mediaType: MediaType.ociIndex,
      manifests: [
        {
          ...image.manifestDescriptor,
          annotations: {
            'io.containerd.image.name': 'docker.io/library/busybox:latest',
            'org.opencontainers.image.ref.name': 'latest',
          },
        },
      ],
    });
    await tar.addFile('index.json', index.length, index);
    const layout = json({ imageLayoutVersion: '1.0.0' });
    await tar.addFile('oci-layout', layout.length, layout);
    const manifest = json([
      {
        Config: `blobs/sha256/${splitDigest(image.configDescriptor.digest).hex}`,
        RepoTags: ['busybox:latest', 'me/alias:1'],
        Layers: image.layers.map((l) => `blobs/sha256/${splitDigest(l.descriptor.digest).hex}`),
      },
    ]);
    await tar.addFile('manifest.json', manifest.length, manifest);
    await tar.finish();
    const other = await fresh();
    const loaded = await loadImages(createReadStream(file), { store: other });
    expect(loaded[0]?.names).toEqual(['docker.io/library/busybox:latest', 'docker.io/me/alias:1']);
    expect((await resolveImage(other, 'me/alias:1')).manifestDescriptor.digest).toBe(
      image.manifestDescriptor.digest,
    );
  });

  test('a docker archive with gzip layers is loaded and checked against the diff IDs', async () => {
    const file = join(tmp, 'gz-layers.tar');
    const out = createWriteStream(file);
    const tar = new TarWriter(out);
    const cfg = await store.read(image.configDescriptor.digest);
    await tar.addFile('config.json', cfg.length, cfg);
    const layers: string[] = [];
    for (const [i, l] of image.layers.entries()) {
      const data = await store.read(l.descriptor.digest);
      await tar.addFile(`l${i}.tar.gz`, data.length, data);
      layers.push(`l${i}.tar.gz`);
    }
    const m = Buffer.from(JSON.stringify([{ Config: 'config.json', RepoTags: ['gz:1'], Layers: layers }]));
    await tar.addFile('manifest.json', m.length, m);
    await tar.finish();
    const other = await fresh();
    await loadImages(createReadStream(file), { store: other });
    const r = await resolveImage(other, 'gz:1');
    expect(r.manifest.layers.map((l) => l.digest)).toEqual(image.layers.map((l) => l.descriptor.digest));
    expect(r.manifest.layers[0]?.mediaType).toBe(MediaType.ociLayerGzip);
  });

  test('failures leave no name: bad blob digest, layer not matching its diff ID, missing file, not a tar', async () => {
    const other = await fresh();
    const before = await other.readIndex();
    // OCI: a blob whose content is not its name
    const oci = join(tmp, 'o.tar');
    await saveImagesToFile(oci, { store, names: ['busybox'], format: 'oci' });
    const dir = join(tmp, 'o');
    mkdirSync(dir);
    execFileSync('tar', ['xf', oci, '-C', dir]);
    writeFileSync(
      join(dir, 'blobs/sha256', splitDigest(image.layers[1]?.descriptor.digest as never).hex),
      'evil',
    );
    const bad1 = join(tmp, 'bad1.tar');
    execFileSync('tar', ['cf', bad1, '-C', dir, '.']);
    await expect(loadImages(createReadStream(bad1), { store: other })).rejects.toMatchObject({
      code: expect.stringMatching(/DigestMismatch|SizeMismatch/),
    });
    // docker: a layer that is not what the config's diff_ids say
    const dock = join(tmp, 'd.tar');
    await saveImagesToFile(dock, { store, names: ['busybox'] });
    const ddir = join(tmp, 'd');
    mkdirSync(ddir);
    execFileSync('tar', ['xf', dock, '-C', ddir]);
    const l2 = splitDigest(image.layers[1]?.diffID as never).hex;
    writeFileSync(join(ddir, l2, 'layer.tar'), await makeLayer({ 'etc/evil': 'y' }));
    const bad2 = join(tmp, 'bad2.tar');
    execFileSync('tar', ['cf', bad2, '-C', ddir, '.']);
    await expect(loadImages(createReadStream(bad2), { store: other })).rejects.toThrow(
      /manifest\.json\[0\]\.Layers\[1\].*the config's diff ID is/,
    );
    // a file named by manifest.json is missing
    execFileSync('tar', ['--delete', '-f', dock, `${l2}/layer.tar`]);
    await expect(loadImages(createReadStream(dock), { store: other })).rejects.toThrow(
      /is not in the archive/,
    );
    // not a tar at all, and an empty input
    await expect(
      loadImages(Readable.from([Buffer.from('hello, not a tar file'.repeat(50))]), { store: other }),
    ).rejects.toMatchObject({
      code: 'InvalidDocument',
    });
    await expect(loadImages(Readable.from([]), { store: other })).rejects.toThrow(
      'archive: the input is empty',
    );
    expect(await other.readIndex()).toEqual(before);
    // spool files are gone
    const tmpDir = join(other.dir, '..', 'tmp');
    expect(existsSync(tmpDir) ? readdirSync(tmpDir) : []).toEqual([]);
  });
});
