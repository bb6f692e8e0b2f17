// The image model: reference normalisation (as Docker does it), digests and verifying streams,
// schema errors that name the JSON path, platform selection.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, test } from 'vitest';
import {
  Digester,
  digestOf,
  familiarName,
  type Index,
  isImageError,
  parseDigest,
  parseImageConfig,
  parseManifestOrIndex,
  parsePlatform,
  parseReference,
  selectManifest,
  splitDigest,
  VerifyStream,
  withDigest,
  withTag,
} from '../src/index.js';

const HEX = 'a'.repeat(64);
const D = `sha256:${HEX}` as const;

describe('parseReference normalises like docker', () => {
  test.each([
    ['busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36', 'busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['index.docker.io/library/busybox:1', 'docker.io/library/busybox:1', 'busybox:1'],
    ['me/app', 'docker.io/me/app:latest', 'me/app:latest'],
    ['docker.io/me/app:v2', 'docker.io/me/app:v2', 'me/app:v2'],
    ['localhost/app', 'localhost/app:latest', 'localhost/app:latest'],
    ['localhost:5000/a/b:t', 'localhost:5000/a/b:t', 'localhost:5000/a/b:t'],
    ['127.0.0.1:5000/x', '127.0.0.1:5000/x:latest', '127.0.0.1:5000/x:latest'],
    ['[::1]:5000/x:y', '[::1]:5000/x:y', '[::1]:5000/x:y'],
    ['ghcr.io/o/r/deep/er:1', 'ghcr.io/o/r/deep/er:1', 'ghcr.io/o/r/deep/er:1'],
    [`ghcr.io/o/r@${D}`, `ghcr.io/o/r@${D}`, `ghcr.io/o/r@${D}`],
    [`busybox:1@${D}`, `docker.io/library/busybox:1@${D}`, `busybox:1@${D}`],
    ['a_b.c__d-e---f', 'docker.io/library/a_b.c__d-e---f:latest', 'a_b.c__d-e---f:latest'],
  ])('%s → %s', (input, full, familiar) => {
    const r = parseReference(input);
    expect(r.toString()).toBe(full);
    expect(familiarName(r)).toBe(familiar);
  });

  test('parts', () => {
    const r = parseReference('localhost:5000/a/b:t');
    expect([r.domain, r.path, r.tag, r.digest, r.name]).toEqual([
      'localhost:5000',
      'a/b',
      't',
      undefined,
      'localhost:5000/a/b',
    ]);
    expect(parseReference(`x@${D}`).tag).toBeUndefined();
  });

  test.each([
    ['', 'it is empty'],
    ['Busybox', 'repository name must be lowercase'],
    ['busybox:', 'tag "" must be'],
    ['busybox:-x', 'tag "-x" must be'],
    [`busybox:${'t'.repeat(129)}`, 'must be 1-128'],
    ['a b', 'white space'],
    ['busybox@sha256:12', 'is not 64 lowercase hex digits'],
    ['busybox@md5:abc', 'unsupported digest algorithm "md5"'],
    ['a/../b', '".." is not a repository name component'],
    [':tag', 'the repository name is empty'],
    ['localhost:abc/x', 'is not a port number'],
    ['a//b', '"" is not a repository name component'],
    ['-a', '"-a" is not a repository name component'],
    [`${'a'.repeat(256)}`, 'longer than 255'],
  ])('%j is refused: %s', (input, why) => {
    let err: unknown;
    try {
      parseReference(input);
    } catch (e) {
      err = e;
    }
    expect(isImageError(err)).toBe(true);
    expect((err as { code: string }).code).toBe('InvalidReference');
    expect((err as Error).message).toContain(`invalid image reference "${input}"`);
    expect((err as Error).message).toContain(why);
  });

  test('withTag, withDigest', () => {
    const r = parseReference(`busybox:1@${D}`);
    expect(withTag(r, '2').toString()).toBe('docker.io/library/busybox:2');
    expect(withDigest(r, D).toString()).toBe(`docker.io/library/busybox@${D}`);
    expect(() => withTag(r, '.bad')).toThrow(/tag ".bad"/);
  });
});

describe('digests', () => {
  test('parse, split, digestOf', () => {
    expect(parseDigest(D)).toBe(D);
    expect(splitDigest(D)).toEqual({ algorithm: 'sha256', hex: HEX });
    expect(digestOf('')).toBe('sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    expect(digestOf('', 'sha512')).toMatch(/^sha512:cf83e135/);
    expect(() => parseDigest('sha256:ABC', 'layers[2].digest')).toThrow(
      'layers[2].digest: "sha256:ABC" is not 64 lowercase hex digits',
    );
    expect(() => parseDigest(`sha256:${'A'.repeat(64)}`)).toThrow(/lowercase hex/);
    expect(() => parseDigest('nocolon')).toThrow(/is not a digest/);
    expect(() => parseDigest(`sha1:${'a'.repeat(40)}`)).toThrow(/unsupported digest algorithm "sha1"/);
  });
  test('Digester counts and hashes incrementally', () => {
    const d = new Digester();
    d.update(Buffer.from('hel'));
    d.update(Buffer.from('lo'));
    expect(d.size).toBe(5);
    expect(d.digest()).toBe(digestOf('hello'));
  });
  test('VerifyStream passes good content, fails on digest, short and long content', async () => {
    const ok = new VerifyStream(digestOf('hello'), { size: 5 });
    const out: Buffer[] = [];
    ok.on('data', (c: Buffer) => out.push(c));
    await pipeline(Readable.from([Buffer.from('hello')]), ok);
    expect(Buffer.concat(out).toString()).toBe('hello');
    const run = (data: string, size?: number) =>
      pipeline(
        Readable.from([Buffer.from(data)]),
        new VerifyStream(digestOf('hello'), {
          ...(size === undefined ? {} : { size }),
          what: 'blob x',
        }).resume(),
      );
    await expect(run('hellO')).rejects.toMatchObject({ code: 'DigestMismatch' });
    await expect(run('hell', 5)).rejects.toThrow('blob x: 4 bytes, its descriptor gives 5');
    await expect(run('hello!', 5)).rejects.toMatchObject({ code: 'SizeMismatch' });
  });
});

describe('schemas report the JSON path', () => {
  const manifest = (layers: unknown[]) =>
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: D, size: 2 },
      layers,
    });
  test('a good manifest, with unknown fields kept', () => {
    const doc = parseManifestOrIndex(
      manifest([{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: D, size: 1, extra: 1 }]),
    );
    expect(doc.kind).toBe('manifest');
    if (doc.kind === 'manifest')
      expect((doc.manifest.layers[0] as unknown as { extra: number }).extra).toBe(1);
  });
  test('errors', () => {
    expect(() =>
      parseManifestOrIndex(
        manifest([
          { mediaType: 'x', digest: D, size: 1 },
          { mediaType: 'x', digest: 'sha256:12', size: 1 },
        ]),
      ),
    ).toThrow(/^manifest\.layers\[1\]\.digest: /);
    expect(() => parseManifestOrIndex(manifest([{ mediaType: 'x', digest: D, size: -1 }]))).toThrow(
      /^manifest\.layers\[0\]\.size: /,
    );
    expect(() => parseManifestOrIndex('{', undefined, 'blob y')).toThrow(/^blob y: not JSON/);
    expect(() => parseManifestOrIndex(JSON.stringify({ schemaVersion: 1, fsLayers: [] }))).toThrow(
      expect.objectContaining({ code: 'Unsupported' }),
    );
    expect(() => parseImageConfig({ architecture: 'amd64', os: 'linux' })).toThrow(/^config\.rootfs: /);
    expect(() =>
      parseImageConfig({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: ['x'] } }),
    ).toThrow(/^config\.rootfs\.diff_ids\[0\]: /);
    expect(() =>
      parseImageConfig({
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: [] },
        config: { Env: 'A=1' },
      }),
    ).toThrow(/^config\.config\.Env: /);
  });
  test('an index is told by its media type or its shape', () => {
    const idx = { schemaVersion: 2, manifests: [] };
    expect(parseManifestOrIndex(JSON.stringify(idx)).kind).toBe('index');
    expect(
      parseManifestOrIndex(JSON.stringify(idx), 'application/vnd.docker.distribution.manifest.list.v2+json')
        .kind,
    ).toBe('index');
  });
});

describe('platforms', () => {
  const index: Index = {
    schemaVersion: 2,
    manifests: [
      { mediaType: 'm', digest: D, size: 1, platform: { os: 'unknown', architecture: 'unknown' } },
      {
        mediaType: 'm',
        digest: `sha256:${'b'.repeat(64)}`,
        size: 1,
        platform: { os: 'linux', architecture: 'arm64', variant: 'v8' },
      },
      {
        mediaType: 'm',
        digest: `sha256:${'c'.repeat(64)}`,
        size: 1,
        platform: { os: 'linux', architecture: 'amd64' },
      },
    ],
  };
  test('select by platform; arm64 variant v8 is the default', () => {
    expect(selectManifest(index, parsePlatform('linux/amd64')).digest).toBe(`sha256:${'c'.repeat(64)}`);
    expect(selectManifest(index, parsePlatform('linux/aarch64')).digest).toBe(`sha256:${'b'.repeat(64)}`);
    expect(() => selectManifest(index, parsePlatform('linux/s390x'))).toThrow(
      'index: no manifest for linux/s390x (it has linux/arm64/v8, linux/amd64)',
    );
    expect(() => parsePlatform('linux')).toThrow(/expected os\/arch/);
  });
});
