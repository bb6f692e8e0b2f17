// Finding images by name or ID, following indexes to the platform, commit of a new image, and the
// Dockerfile-style changes it applies.
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, test } from 'vitest';
import {
  applyChanges,
  type ContentStore,
  collectGarbage,
  commitImage,
  defaultDataRoot,
  digestOf,
  hostPlatform,
  type ImageConfig,
  listImages,
  MediaType,
  openImageStore,
  parsePlatform,
  resolveImage,
  withStoreLease,
} from '../src/index.js';
import { cleanupTemp, storeImage, tempDir } from './image-fixtures.js';

let root: string;
let store: ContentStore;
beforeEach(async () => {
  root = tempDir();
  store = await openImageStore(root);
});
afterAll(cleanupTemp);

describe('data root', () => {
  test('NSINIT_DATA_ROOT or /var/lib/nsinit; the store is <root>/content', () => {
    expect(defaultDataRoot({})).toBe('/var/lib/nsinit');
    expect(defaultDataRoot({ NSINIT_DATA_ROOT: '' })).toBe('/var/lib/nsinit');
    expect(defaultDataRoot({ NSINIT_DATA_ROOT: '/srv/n' })).toBe('/srv/n');
    expect(store.dir).toBe(join(root, 'content'));
  });
});

describe('findImage / resolveImage', () => {
  test('familiar name, full name, tag, full ID, ID prefix, name@digest', async () => {
    const img = await storeImage(store, {
      name: 'docker.io/library/busybox:latest',
      layers: [Buffer.from('l1')],
    });
    const id = img.configDescriptor.digest;
    for (const n of ['busybox', 'busybox:latest', 'docker.io/library/busybox:latest', 'library/busybox']) {
      const r = await resolveImage(store, n);
      expect(r.id).toBe(id);
      expect(r.ref).toBe('docker.io/library/busybox:latest');
    }
    for (const n of [id, id.slice(7, 11), id.slice(7, 19), `sha256:${id.slice(7, 13)}`]) {
      const r = await resolveImage(store, n);
      expect(r.id).toBe(id);
      expect(r.ref).toBeUndefined();
    }
    const byDigest = await resolveImage(store, `busybox@${img.manifestDescriptor.digest}`);
    expect(byDigest.manifestDescriptor.digest).toBe(img.manifestDescriptor.digest);
    expect(byDigest.manifest.layers).toHaveLength(1);
    expect(byDigest.config.rootfs.diff_ids).toEqual([digestOf('l1')]);
  });

  test('not found: names the store and suggests a pull', async () => {
    await expect(resolveImage(store, 'foo')).rejects.toThrow(
      `image "foo" not found in ${store.dir} (pull it with nsinit pull foo)`,
    );
    await expect(resolveImage(store, 'busybox:2')).rejects.toMatchObject({ code: 'NotFound' });
    await expect(resolveImage(store, 'abc')).rejects.toMatchObject({ code: 'NotFound' });
    await expect(resolveImage(store, 'Bad Name')).rejects.toMatchObject({ code: 'InvalidReference' });
  });

  test('an ambiguous ID prefix is an error', async () => {
    // Two configs whose IDs share 4 hex digits.
    const seen = new Map<string, number>();
    let pair: [number, number] | undefined;
    const cfg = (i: number): ImageConfig => ({
      architecture: hostPlatform().architecture,
      os: 'linux',
      author: `a${i}`,
      rootfs: { type: 'layers', diff_ids: [] },
    });
    for (let i = 0; !pair; i++) {
      const p = digestOf(JSON.stringify(cfg(i))).slice(7, 11);
      const j = seen.get(p);
      if (j !== undefined) pair = [j, i];
      else seen.set(p, i);
    }
    for (const i of pair) {
      const config = await store.putJSON(cfg(i), MediaType.ociConfig);
      const m = await store.putJSON(
        { schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: [] },
        MediaType.ociManifest,
      );
      await store.setRef(`docker.io/library/i${i}:latest`, m);
    }
    const prefix = digestOf(JSON.stringify(cfg(pair[0]))).slice(7, 11);
    await expect(resolveImage(store, prefix)).rejects.toThrow(`image ID prefix "${prefix}" is ambiguous`);
  });

  test('an index is followed to the platform manifest', async () => {
    const amd = await storeImage(store, { layers: [Buffer.from('x')], config: { architecture: 'amd64' } });
    const arm = await storeImage(store, {
      layers: [Buffer.from('y')],
      config: { architecture: 'arm64', variant: 'v8' },
    });
    const index = await store.putJSON(
      {
        schemaVersion: 2,
        mediaType: MediaType.ociIndex,
        manifests: [
          { ...arm.manifestDescriptor, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
          { ...amd.manifestDescriptor, platform: { os: 'linux', architecture: 'amd64' } },
        ],
      },
      MediaType.ociIndex,
    );
    await store.setRef('docker.io/library/multi:1', index);
    const a = await resolveImage(store, 'multi:1', parsePlatform('linux/amd64'));
    expect(a.id).toBe(amd.configDescriptor.digest);
    expect(a.rootDescriptor.digest).toBe(index.digest);
    expect(a.manifestDescriptor.digest).toBe(amd.manifestDescriptor.digest);
    const b = await resolveImage(store, 'multi:1', parsePlatform('linux/arm64'));
    expect(b.id).toBe(arm.configDescriptor.digest);
    await expect(resolveImage(store, 'multi:1', parsePlatform('linux/s390x'))).rejects.toMatchObject({
      code: 'NoMatchingPlatform',
    });
    const listed = await listImages(store, parsePlatform('linux/s390x'));
    expect(listed[0]?.problem).toMatch(/no manifest for linux\/s390x/);
  });

  test('a missing blob is reported', async () => {
    const img = await storeImage(store, { name: 'docker.io/library/broken:1', layers: [] });
    const { rm } = await import('node:fs/promises');
    await rm(store.blobPath(img.configDescriptor.digest));
    await expect(resolveImage(store, 'broken:1')).rejects.toThrow(/is not in/);
  });
});

describe('changes', () => {
  const base = { Env: ['PATH=/bin', 'A=1'], Cmd: ['sh'], Entrypoint: ['/init'], WorkingDir: '/srv' };
  test('each instruction', () => {
    const c = applyChanges(base, [
      'CMD ["echo", "hi"]',
      'env B=2 C="with space" PATH=/x:$PATH',
      'ENV D legacy value',
      'EXPOSE 80 53/udp 8000-8001/tcp',
      'LABEL a=b "c d"=e',
      'VOLUME ["/data", "/cache"]',
      'VOLUME /more',
      'WORKDIR sub',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a Dockerfile variable, not a template
      'WORKDIR ${A}dir',
      'USER app:staff',
      'STOPSIGNAL SIGQUIT',
      'ONBUILD RUN make',
    ]);
    expect(c).toEqual({
      Env: ['A=1', 'B=2', 'C=with space', 'PATH=/x:/bin', 'D=legacy value'],
      Cmd: ['echo', 'hi'],
      Entrypoint: ['/init'],
      WorkingDir: '/srv/sub/1dir',
      ExposedPorts: { '80/tcp': {}, '53/udp': {}, '8000/tcp': {}, '8001/tcp': {} },
      Labels: { a: 'b', 'c d': 'e' },
      Volumes: { '/data': {}, '/cache': {}, '/more': {} },
      User: 'app:staff',
      StopSignal: 'SIGQUIT',
      OnBuild: ['RUN make'],
    });
    expect(base.Env).toEqual(['PATH=/bin', 'A=1']);
  });
  test('shell form; ENTRYPOINT without CMD clears the inherited Cmd', () => {
    expect(applyChanges(base, ['CMD echo $HOME'])).toMatchObject({ Cmd: ['/bin/sh', '-c', 'echo $HOME'] });
    expect(applyChanges(base, ['ENTRYPOINT ["/new"]'])).toMatchObject({ Entrypoint: ['/new'], Cmd: null });
    expect(applyChanges(base, ['ENTRYPOINT ["/new"]', 'CMD ["x"]'])).toMatchObject({
      Entrypoint: ['/new'],
      Cmd: ['x'],
    });
  });
  test.each([
    ['FROM busybox', 'invalid change "FROM busybox": FROM is not an instruction that can be applied'],
    ['EXPOSE 99999', 'invalid change "EXPOSE 99999": "99999": ports must be within 1-65535'],
    ['EXPOSE 80/xtp', '"80/xtp": protocol must be tcp, udp or sctp'],
    ['EXPOSE', 'expected a port'],
    ['ENV A', '"A" has no value'],
    ['ENV A=1 B', '"B" is not KEY=VALUE'],
    ['LABEL "a=b', 'unmatched double quote'],
    ['STOPSIGNAL SIGNOPE', '"SIGNOPE" is not a signal name'],
    ['USER a b', 'USER takes one user[:group]'],
    ['USER :g', '":g" is not USER[:GROUP]'],
    ['WORKDIR', 'WORKDIR takes one path'],
    ['CMD', 'expected a command'],
    ['ONBUILD ONBUILD x', 'ONBUILD is not allowed in ONBUILD'],
    ['   ', 'it is empty'],
  ])('%j fails: %s', (change, msg) => {
    expect(() => applyChanges(base, [change])).toThrow(msg);
  });
});

describe('commitImage', () => {
  test('new config and manifest over the base; base untouched; ref set', async () => {
    const base = await storeImage(store, {
      name: 'docker.io/library/base:1',
      layers: [Buffer.from('base layer')],
      gzip: true,
    });
    const baseResolved = await resolveImage(store, 'base:1');
    const layerBytes = Buffer.from('container changes');
    const layerDigest = await store.put(layerBytes);
    const created = new Date('2025-05-06T07:08:09Z');
    const r = await commitImage({
      store,
      base: baseResolved,
      layer: {
        descriptor: { mediaType: MediaType.ociLayer, digest: layerDigest, size: layerBytes.length },
        diffID: digestOf(layerBytes),
      },
      changes: ['CMD ["/app"]', 'ENV MODE=prod', 'EXPOSE 8080'],
      message: 'my commit',
      author: 'Me <me@example.com>',
      ref: 'me/app:2',
      created,
    });
    expect(r.ref).toBe('docker.io/me/app:2');
    const img = await resolveImage(store, 'me/app:2');
    expect(img.id).toBe(r.id);
    expect(img.manifest.mediaType).toBe(MediaType.ociManifest);
    expect(img.manifest.layers.map((l) => l.digest)).toEqual([
      base.layers[0]?.descriptor.digest,
      layerDigest,
    ]);
    expect(img.manifest.layers[0]?.mediaType).toBe(MediaType.ociLayerGzip);
    expect(img.config.rootfs.diff_ids).toEqual([base.layers[0]?.diffID, digestOf(layerBytes)]);
    expect(img.config.created).toBe(created.toISOString());
    expect(img.config.author).toBe('Me <me@example.com>');
    expect(img.config.history?.at(-1)).toEqual({
      created: created.toISOString(),
      created_by: 'nsinit commit',
      author: 'Me <me@example.com>',
      comment: 'my commit',
    });
    expect(img.config.history).toHaveLength(2);
    expect(img.config.config).toMatchObject({
      Cmd: ['/app'],
      Env: [base.config.config?.Env?.[0], 'MODE=prod'],
      ExposedPorts: { '8080/tcp': {} },
    });
    // The base is as it was.
    const again = await resolveImage(store, 'base:1');
    expect(again.id).toBe(base.configDescriptor.digest);
    expect(again.manifestDescriptor.digest).toBe(base.manifestDescriptor.digest);
    expect(again.config).toEqual(baseResolved.config);
  });

  test('config-only commit (empty_layer), untagged but kept from gc; a missing layer blob is refused', async () => {
    await storeImage(store, { name: 'docker.io/library/base:1', layers: [Buffer.from('b')] });
    const base = await resolveImage(store, 'base:1');
    const r = await commitImage({ store, base, changes: ['USER 1000'] });
    const img = await resolveImage(store, r.id);
    expect(img.config.history?.at(-1)?.empty_layer).toBe(true);
    expect(img.config.config?.User).toBe('1000');
    await collectGarbage(store);
    expect(await store.has(r.manifestDescriptor.digest)).toBe(true);
    await expect(
      commitImage({
        store,
        base,
        layer: {
          descriptor: { mediaType: MediaType.ociLayer, digest: digestOf('no'), size: 2 },
          diffID: digestOf('no'),
        },
      }),
    ).rejects.toThrow(/the layer blob sha256:[0-9a-f]+ is not in/);
    await expect(commitImage({ store, base, changes: ['BOGUS x'] })).rejects.toThrow(
      /invalid change "BOGUS x"/,
    );
  });
});

describe('gc lease', () => {
  test('collectGarbage waits for a lease: blobs stored under it are not collected before being named', async () => {
    let collected = false;
    let gc: Promise<unknown> | undefined;
    await withStoreLease(store, async () => {
      const d = await store.put(Buffer.from('not yet named'));
      gc = collectGarbage(store).then(() => {
        collected = true;
      });
      await new Promise((r) => setTimeout(r, 100));
      expect(collected).toBe(false);
      expect(await store.has(d)).toBe(true);
      const m = await store.putJSON({ schemaVersion: 2, manifests: [] }, MediaType.ociIndex);
      await store.setRef('docker.io/library/x:1', m);
    });
    await gc;
    expect(collected).toBe(true);
    expect((await listImages(store)).length).toBe(1);
  });
});
