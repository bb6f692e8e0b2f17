// Pull and push against Debian's docker-registry (distribution 2.8) on 127.0.0.1, interop with
// skopeo, and faults injected by a proxy or a fake registry.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  ContentStore,
  getManifest,
  isImageError,
  isRegistryError,
  listTags,
  type PullProgress,
  parsePlatform,
  pull,
  push,
  RegistryClient,
  type RegistryError,
  resolveImage,
} from '../src/index.js';
import {
  type FaultProxy,
  freePort,
  makeImage,
  makeIndex,
  mkTmp,
  type Registry,
  skipReason,
  startProxy,
  startRegistry,
} from './harness.js';

const skip = skipReason();
const FAST = { retry: { attempts: 3, baseDelayMs: 20 } };

describe.skipIf(skip !== undefined)('registry (anonymous)', () => {
  let tmp: string;
  let reg: Registry;
  let src: ContentStore;
  let n = 0;
  const stores = () => ContentStore.open(path.join(tmp, `store-${++n}`));

  beforeAll(async () => {
    tmp = mkTmp('tsc-reg-');
    reg = await startRegistry(tmp);
    src = await ContentStore.open(path.join(tmp, 'src'));
  });
  afterAll(async () => {
    await reg?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('push (monolithic) then pull into a fresh store; second pull finds everything present', async () => {
    const name = `${reg.host}/app/one:v1`;
    const img = await makeImage(src, name, { layerSizes: [1000, 300_000, 50_000] });
    const pushEvents: string[] = [];
    const pushed = await push(src, name, {
      ...FAST,
      onProgress: (e) => e.type === 'blob' && pushEvents.push(e.status),
    });
    expect(pushed.descriptor.digest).toBe(img.manifest.digest);
    expect(pushed.uploaded).toBe(4);
    expect(pushEvents.filter((s) => s === 'pushed')).toHaveLength(4);

    const store = await stores();
    const events: PullProgress[] = [];
    const r = await pull(store, name, { ...FAST, onProgress: (e) => events.push(e) });
    expect(r.digest).toBe(img.manifest.digest);
    expect(r.manifestDescriptor.digest).toBe(img.manifest.digest);
    expect(r.manifestDescriptor.platform).toMatchObject({ os: 'linux', architecture: 'amd64' });
    expect(r.updated).toBe(true);
    for (const l of img.layers) expect(await store.has(l.digest)).toBe(true);
    expect((await store.resolve(name))?.digest).toBe(img.manifest.digest);
    const layerDone = events.filter(
      (e) => e.type === 'blob' && e.kind === 'layer' && e.status === 'complete',
    );
    expect(layerDone).toHaveLength(3);

    const again = await pull(store, name, FAST);
    expect(again.downloadedBytes).toBe(0);
    expect(again.presentBlobs).toBe(4);
    expect(again.updated).toBe(false);

    const img2 = await resolveImage(store, name);
    expect(img2.manifestDescriptor.digest).toBe(img.manifest.digest);
    expect(img2.config.config?.Cmd).toEqual(['/bin/sh']);
    await expect(resolveImage(store, `${reg.host}/nope`)).rejects.toThrow(
      /not found in .*pull it with nsinit pull/,
    );
    // Pushing it again: every blob is already there.
    const p2 = await push(src, name, FAST);
    expect(p2.existing).toBe(4);
    expect(p2.uploaded).toBe(0);
  });

  test('chunked upload, Docker media types, pull by digest', async () => {
    const name = `${reg.host}/app/chunked:c`;
    const img = await makeImage(src, name, { layerSizes: [700_000], docker: true });
    const r = await push(src, name, { ...FAST, chunkSize: 64 * 1024 });
    expect(r.uploaded).toBe(2);
    const byDigest = `${reg.host}/app/chunked@${img.manifest.digest}`;
    const m = await getManifest(byDigest, FAST);
    expect(m.descriptor).toMatchObject({
      digest: img.manifest.digest,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    });
    const store = await stores();
    const p = await pull(store, byDigest, FAST);
    expect(p.digest).toBe(img.manifest.digest);
    expect((await store.resolve(byDigest))?.digest).toBe(img.manifest.digest);
  });

  test('cross-repository mount from the repository the store pulled from', async () => {
    const name = `${reg.host}/team/base:1`;
    await makeImage(src, name, { layerSizes: [100_000, 100_000] });
    await push(src, name, FAST);
    const store = await stores();
    await pull(store, name, FAST);
    // The same image under another repository of the same registry.
    const desc = await store.resolve(name);
    const target = `${reg.host}/team/derived:1`;
    await store.setRef(target, desc!);
    const events: string[] = [];
    const r = await push(store, target, {
      ...FAST,
      onProgress: (e) => e.type === 'blob' && e.status === 'mounted' && events.push(e.from ?? ''),
    });
    expect(r.mounted).toBe(3);
    expect(r.uploaded).toBe(0);
    expect(events).toEqual(['team/base', 'team/base', 'team/base']);
    expect((await getManifest(target, FAST)).descriptor.digest).toBe(desc!.digest);
  });

  test('multi-arch index: push, pull chooses the host (amd64) or --platform arm64; tags list with pagination', async () => {
    const amd = await makeImage(src, undefined, { arch: 'amd64', layerSizes: [10_000] });
    const arm = await makeImage(src, undefined, { arch: 'arm64', layerSizes: [12_000] });
    const name = `${reg.host}/multi/app:latest`;
    const index = await makeIndex(src, name, [
      { image: amd, arch: 'amd64' },
      { image: arm, arch: 'arm64' },
    ]);
    const pr = await push(src, name, FAST);
    expect(pr.descriptor.digest).toBe(index.digest);

    const s1 = await stores();
    const a = await pull(s1, name, { ...FAST, platform: 'linux/amd64' });
    expect(a.digest).toBe(index.digest);
    expect(a.indexDescriptor?.digest).toBe(index.digest);
    expect(a.manifestDescriptor.digest).toBe(amd.manifest.digest);
    expect(await s1.has(arm.layers[0]!.digest)).toBe(false);
    expect(await s1.has(index.digest)).toBe(true);

    const s2 = await stores();
    const b = await pull(s2, name, { ...FAST, platform: 'linux/arm64' });
    expect(b.manifestDescriptor.digest).toBe(arm.manifest.digest);
    expect(b.config.architecture).toBe('arm64');
    expect((await resolveImage(s2, name, parsePlatform('linux/arm64'))).manifestDescriptor.digest).toBe(
      arm.manifest.digest,
    );
    await expect(pull(await stores(), name, { ...FAST, platform: 'linux/s390x' })).rejects.toThrow(
      /no manifest for linux\/s390x \(it has linux\/amd64, linux\/arm64\/v8\)/,
    );
    // resolveImage also reads an index recorded by another tool.
    expect((await resolveImage(src, name, parsePlatform('linux/arm64'))).manifestDescriptor.digest).toBe(
      arm.manifest.digest,
    );

    for (const t of ['a', 'b', 'c', 'd', 'e']) {
      const d = (await src.resolve(name))!;
      await src.setRef(`${reg.host}/multi/app:${t}`, d);
      await push(src, `${reg.host}/multi/app:${t}`, FAST);
    }
    const client = new RegistryClient(FAST);
    try {
      const tags = await listTags(`${reg.host}/multi/app`, { client, pageSize: 2 });
      expect(tags.sort()).toEqual(['a', 'b', 'c', 'd', 'e', 'latest']);
    } finally {
      await client.close();
    }
  });

  test('typed errors: unknown manifest, registry not running', async () => {
    const e = await pull(await stores(), `${reg.host}/no/such:tag`, FAST).catch((x: unknown) => x);
    expect(isRegistryError(e)).toBe(true);
    expect((e as RegistryError).code).toBe('NotFound');
    expect((e as RegistryError).message).toMatch(
      `manifest ${reg.host}/no/such:tag not found (MANIFEST_UNKNOWN)`,
    );
    const port = await freePort();
    const e2 = await pull(await stores(), `127.0.0.1:${port}/x`, FAST).catch((x: unknown) => x);
    expect((e2 as RegistryError).code).toBe('Network');
    expect((e2 as Error).message).toMatch(
      `connect ECONNREFUSED 127.0.0.1:${port} (is the registry running?)`,
    );
  });

  test('AbortSignal stops a pull', async () => {
    const name = `${reg.host}/app/abort:1`;
    await makeImage(src, name, { layerSizes: [2_000_000] });
    await push(src, name, FAST);
    const ac = new AbortController();
    const store = await stores();
    const p = pull(store, name, {
      ...FAST,
      signal: ac.signal,
      onProgress: (e) => e.type === 'blob' && e.status === 'downloading' && ac.abort(new Error('stop')),
    });
    await expect(p).rejects.toThrow();
    expect(await store.resolve(name)).toBeUndefined();
  });

  describe('skopeo interop', () => {
    const skopeo = fs.existsSync('/usr/bin/skopeo');
    test.skipIf(!skopeo)('what skopeo pushes we pull; what we push skopeo reads and copies', async () => {
      // skopeo pushes from an OCI layout (our store format, names as short tags).
      const layout = await ContentStore.open(path.join(tmp, 'skopeo-src'));
      const img = await makeImage(layout, 'v1', { layerSizes: [5000, 60_000] });
      execFileSync('skopeo', [
        'copy',
        '-q',
        '--dest-tls-verify=false',
        `oci:${layout.dir}:v1`,
        `docker://${reg.host}/sk/pushed:v1`,
      ]);
      const store = await stores();
      const r = await pull(store, `${reg.host}/sk/pushed:v1`, FAST);
      expect(r.manifest.layers.map((l) => l.digest)).toEqual(img.layers.map((l) => l.digest));
      expect(r.config.rootfs.diff_ids).toHaveLength(2);

      // We push; skopeo inspects and copies back into an OCI layout.
      const name = `${reg.host}/sk/ours:v2`;
      const ours = await makeImage(src, name, { layerSizes: [4000], docker: true });
      await push(src, name, FAST);
      const info = JSON.parse(
        execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${name}`], { encoding: 'utf8' }),
      );
      expect(info.Digest).toBe(ours.manifest.digest);
      expect(info.Architecture).toBe('amd64');
      expect(info.Layers).toEqual(ours.layers.map((l) => l.digest));
      const out = path.join(tmp, 'skopeo-out');
      execFileSync('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${name}`, `oci:${out}:x`]);
      const back = await ContentStore.open(out, { create: false });
      expect(await back.has(ours.layers[0]!.digest)).toBe(true);

      // A multi-arch index pushed by skopeo (--all): we choose the platform.
      const multi = await ContentStore.open(path.join(tmp, 'skopeo-multi'));
      const amd = await makeImage(multi, undefined, { arch: 'amd64', layerSizes: [3000] });
      const arm = await makeImage(multi, undefined, { arch: 'arm64', layerSizes: [3000] });
      await makeIndex(multi, 'm', [
        { image: amd, arch: 'amd64' },
        { image: arm, arch: 'arm64' },
      ]);
      execFileSync('skopeo', [
        'copy',
        '-q',
        '--all',
        '--dest-tls-verify=false',
        `oci:${multi.dir}:m`,
        `docker://${reg.host}/sk/multi:m`,
      ]);
      const s1 = await stores();
      expect((await pull(s1, `${reg.host}/sk/multi:m`, FAST)).manifestDescriptor.digest).toBe(
        amd.manifest.digest,
      );
      const s2 = await stores();
      expect(
        (await pull(s2, `${reg.host}/sk/multi:m`, { ...FAST, platform: 'linux/arm64' })).manifestDescriptor
          .digest,
      ).toBe(arm.manifest.digest);
      // And skopeo reads the index we push.
      await push(multi, `${reg.host}/sk/multi2:m`, { ...FAST, source: 'm' });
      const raw = JSON.parse(
        execFileSync(
          'skopeo',
          ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/sk/multi2:m`],
          { encoding: 'utf8' },
        ),
      );
      expect(
        raw.manifests.map((m: { platform: { architecture: string } }) => m.platform.architecture),
      ).toEqual(['amd64', 'arm64']);
      const armInfo = JSON.parse(
        execFileSync(
          'skopeo',
          ['inspect', '--override-arch', 'arm64', '--tls-verify=false', `docker://${reg.host}/sk/multi2:m`],
          { encoding: 'utf8' },
        ),
      );
      expect(armInfo.Architecture).toBe('arm64');
    });
  });

  describe('faults through a proxy', () => {
    let proxy: FaultProxy;
    beforeAll(async () => {
      proxy = await startProxy(reg.host);
    });
    afterAll(async () => {
      await proxy?.stop();
    });

    test('a connection dropped mid-blob: the pull resumes with Range and succeeds', async () => {
      const name = `${reg.host}/fault/resume:1`;
      const img = await makeImage(src, name, { layerSizes: [1_500_000] });
      await push(src, name, FAST);
      const big = img.layers[0]!;
      proxy.seen.length = 0;
      proxy.fault = ({ method, path: p, n }) =>
        method === 'GET' && p.endsWith(`/blobs/${big.digest}`) && n === 1
          ? { kind: 'cut', afterBytes: 400_000 }
          : undefined;
      const store = await stores();
      const retries: string[] = [];
      const r = await pull(store, `${proxy.host}/fault/resume:1`, {
        ...FAST,
        onProgress: (e) => e.type === 'blob' && e.status === 'retrying' && retries.push(e.message ?? ''),
      });
      expect(r.manifestDescriptor.digest).toBe(img.manifest.digest);
      expect(await store.has(big.digest)).toBe(true);
      const gets = proxy.seen.filter((s) => s.method === 'GET' && s.path.endsWith(big.digest));
      expect(gets).toHaveLength(2);
      expect(gets[0]?.range).toBeUndefined();
      expect(gets[1]?.range).toMatch(/^bytes=\d+-$/);
      expect(Number(/=(\d+)-/.exec(gets[1]!.range!)![1])).toBeGreaterThan(0);
      expect(retries).toHaveLength(1);
    });

    test('a pull that fails mid-blob keeps the partial; the next pull (a new client) resumes it with Range', async () => {
      const name = `${reg.host}/fault/later:1`;
      const img = await makeImage(src, name, { layerSizes: [1_200_000] });
      await push(src, name, FAST);
      const big = img.layers[0]!;
      proxy.seen.length = 0;
      proxy.fault = ({ method, path: p }) =>
        method === 'GET' && p.endsWith(`/blobs/${big.digest}`)
          ? { kind: 'cut', afterBytes: 300_000 }
          : undefined;
      const store = await stores();
      const e = await pull(store, `${proxy.host}/fault/later:1`, { retry: { attempts: 1 } }).catch(
        (x: unknown) => x,
      );
      expect((e as RegistryError).code).toBe('Network');
      expect(await store.has(big.digest)).toBe(false);
      const partial = path.join(store.dir, 'ingest', `sha256-${big.digest.slice(7)}`);
      const kept = fs.statSync(partial).size;
      expect(kept).toBeGreaterThan(0);
      expect(kept).toBeLessThanOrEqual(300_000);
      proxy.fault = () => undefined;
      await pull(store, `${proxy.host}/fault/later:1`, FAST);
      expect(await store.has(big.digest)).toBe(true);
      const gets = proxy.seen.filter((x) => x.method === 'GET' && x.path.endsWith(big.digest));
      expect(gets.at(-1)?.range).toBe(`bytes=${kept}-`);
    });

    test('a wrong blob: DigestMismatch, nothing in the store, no reference', async () => {
      const name = `${reg.host}/fault/corrupt:1`;
      const img = await makeImage(src, name, { layerSizes: [50_000] });
      await push(src, name, FAST);
      const layer = img.layers[0]!;
      proxy.fault = ({ method, path: p }) =>
        method === 'GET' && p.endsWith(`/blobs/${layer.digest}`) ? { kind: 'corrupt' } : undefined;
      const store = await stores();
      const e = await pull(store, `${proxy.host}/fault/corrupt:1`, FAST).catch((x: unknown) => x);
      expect(isImageError(e)).toBe(true);
      expect((e as Error & { code: string }).code).toBe('DigestMismatch');
      expect((e as Error).message).toMatch(`blob ${layer.digest}: content has digest sha256:`);
      expect(await store.has(layer.digest)).toBe(false);
      expect(fs.readdirSync(path.join(store.dir, 'ingest'))).toEqual([]);
      expect(await store.listRefs()).toEqual([]);
      proxy.fault = () => undefined;
    });

    test('500 then 200: the retry succeeds', async () => {
      const name = `${reg.host}/fault/retry:1`;
      const img = await makeImage(src, name, { layerSizes: [10_000] });
      await push(src, name, FAST);
      proxy.fault = ({ method, path: p, n }) =>
        (method === 'GET' && p.includes('/manifests/') && n === 1) ||
        (p.endsWith(img.layers[0]!.digest) && n <= 2)
          ? { kind: 'status', status: n === 1 ? 500 : 503 }
          : undefined;
      const r = await pull(await stores(), `${proxy.host}/fault/retry:1`, FAST);
      expect(r.manifestDescriptor.digest).toBe(img.manifest.digest);
      // Too many failures: a clear error with the status and the registry's message.
      proxy.fault = ({ path: p }) =>
        p.includes('/manifests/') ? { kind: 'status', status: 503 } : undefined;
      const e = await pull(await stores(), `${proxy.host}/fault/retry:1`, FAST).catch((x: unknown) => x);
      expect((e as RegistryError).status).toBe(503);
      expect((e as Error).message).toMatch(/HTTP 503 \(UNKNOWN: injected failure\)/);
      proxy.fault = () => undefined;
    });

    test('a 10 MB manifest and a schema 1 manifest are refused', async () => {
      const huge = Buffer.alloc(10 * 1024 * 1024, 0x20);
      proxy.fault = ({ path: p }) =>
        p.endsWith('/manifests/huge')
          ? {
              kind: 'body',
              status: 200,
              headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
              body: huge,
            }
          : p.endsWith('/manifests/old')
            ? {
                kind: 'body',
                status: 200,
                headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' },
                body: Buffer.from(JSON.stringify({ schemaVersion: 1, name: 'x', tag: 'old', fsLayers: [] })),
              }
            : undefined;
      const e = await pull(await stores(), `${proxy.host}/fault/x:huge`, FAST).catch((x: unknown) => x);
      expect((e as RegistryError).code).toBe('TooLarge');
      expect((e as Error).message).toMatch(/10485760 bytes, more than the 4194304 allowed for a manifest/);
      const e2 = await pull(await stores(), `${proxy.host}/fault/x:old`, FAST).catch((x: unknown) => x);
      expect((e2 as Error).message).toMatch(/schema 1 is not supported/);
      proxy.fault = () => undefined;
    });
  });
});

describe.skipIf(skip !== undefined)('fake registry', () => {
  let server: http.Server;
  let host: string;
  let tmp: string;
  const routes = new Map<string, (req: http.IncomingMessage, res: http.ServerResponse) => void>();
  beforeAll(async () => {
    tmp = mkTmp('tsc-fake-');
    const port = await freePort();
    host = `127.0.0.1:${port}`;
    server = http.createServer((req, res) => {
      const p = (req.url ?? '').split('?')[0] as string;
      const h = routes.get(p);
      if (h) h(req, res);
      else if (p === '/v2/') res.end('{}');
      else {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}');
      }
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('Docker-Content-Digest that does not match the manifest is refused', async () => {
    routes.set('/v2/x/manifests/t', (_req, res) => {
      res.writeHead(200, {
        'content-type': 'application/vnd.oci.image.manifest.v1+json',
        'docker-content-digest': `sha256:${'0'.repeat(64)}`,
      });
      res.end(
        JSON.stringify({
          schemaVersion: 2,
          config: { mediaType: 'a', digest: `sha256:${'1'.repeat(64)}`, size: 1 },
          layers: [],
        }),
      );
    });
    await expect(getManifest(`${host}/x:t`, FAST)).rejects.toThrow(
      /the registry's Docker-Content-Digest says sha256:0000/,
    );
  });

  test('a foreign layer the registry lacks is fetched from its urls (verified), or refused clearly', async () => {
    const store = await ContentStore.open(path.join(tmp, 's'));
    const layer = Buffer.from('foreign layer bytes');
    const { digestOf } = await import('@tsc/image');
    const ld = digestOf(layer);
    const config = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [ld] } }),
    );
    const cd = digestOf(config);
    routes.set(`/v2/f/blobs/${cd}`, (_q, res) => res.end(config));
    routes.set('/foreign/layer', (_q, res) => res.end(layer));
    const manifest = (urls: string[] | undefined) =>
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        config: {
          mediaType: 'application/vnd.docker.container.image.v1+json',
          digest: cd,
          size: config.length,
        },
        layers: [
          {
            mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
            digest: ld,
            size: layer.length,
            ...(urls ? { urls } : {}),
          },
        ],
      });
    routes.set('/v2/f/manifests/with-urls', (_q, res) => {
      res.writeHead(200, { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json' });
      res.end(manifest([`http://${host}/foreign/layer`]));
    });
    routes.set('/v2/f/manifests/no-urls', (_q, res) => {
      res.writeHead(200, { 'content-type': 'application/vnd.docker.distribution.manifest.v2+json' });
      res.end(manifest(undefined));
    });
    await expect(pull(store, `${host}/f:no-urls`, FAST)).rejects.toThrow(
      /non-distributable \(foreign\) layer .* lists no urls/,
    );
    const r = await pull(store, `${host}/f:with-urls`, FAST);
    expect(await store.has(ld)).toBe(true);
    expect(r.manifest.layers[0]?.urls).toHaveLength(1);
  });

  test('a registry that ignores Range gets the whole blob again', async () => {
    const store = await ContentStore.open(path.join(tmp, 'r'));
    const { digestOf } = await import('@tsc/image');
    const blob = Buffer.alloc(100_000, 7);
    const d = digestOf(blob);
    // A partial download left by an earlier attempt.
    const w = await store.ingest({ digest: d, size: blob.length }, { resume: true });
    await w.write(blob.subarray(0, 30_000));
    await w.abort({ keepPartial: true });
    let sawRange: string | undefined;
    routes.set(`/v2/g/blobs/${d}`, (req, res) => {
      sawRange = req.headers.range;
      res.end(blob); // 200, whole
    });
    const client = new RegistryClient(FAST);
    try {
      const { downloadBlob, parseReference } = await import('../src/index.js').then(async (m) => ({
        downloadBlob: m.downloadBlob,
        parseReference: (await import('@tsc/image')).parseReference,
      }));
      await downloadBlob(client, store, parseReference(`${host}/g`), {
        mediaType: 'x',
        digest: d,
        size: blob.length,
      });
    } finally {
      await client.close();
    }
    expect(sawRange).toBe('bytes=30000-');
    expect(await store.has(d)).toBe(true);
  });
});
