// pull's blobSink (a tee of the downloads): every byte once and in order, across dropped
// connections, Range resumes and a registry that ignores Range; end() only after the store
// committed the blob; destroyed (never ended) on wrong content; a consumer that gives up does
// not fail the pull.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  type BlobSinkInfo,
  ContentStore,
  type Descriptor,
  downloadBlob,
  isImageError,
  parseReference,
  pull,
  push,
  RegistryClient,
} from '../src/index.js';
import {
  type FaultProxy,
  freePort,
  makeImage,
  mkTmp,
  type Registry,
  skipReason,
  startProxy,
  startRegistry,
} from './harness.js';

const skip = skipReason();
const FAST = { retry: { attempts: 3, baseDelayMs: 20 } };

/** A sink that keeps what it gets; slow (one chunk per event-loop turn, 16 KiB buffer) so backpressure is exercised. */
function recorder(store?: ContentStore, digest?: string) {
  const chunks: Buffer[] = [];
  let resolveClosed = () => {};
  const closed = new Promise<void>((resolve) => {
    resolveClosed = resolve;
  });
  const rec = {
    chunks,
    ended: false,
    /** Whether the store held the blob when end() arrived. */
    committedAtEnd: undefined as boolean | undefined,
    error: undefined as Error | undefined,
    closed,
    sha256: () => `sha256:${createHash('sha256').update(Buffer.concat(chunks)).digest('hex')}`,
    bytes: () => chunks.reduce((n, c) => n + c.length, 0),
    sink: new Writable({
      highWaterMark: 16 << 10,
      write(chunk: Buffer, _e, done) {
        chunks.push(Buffer.from(chunk));
        setImmediate(done);
      },
      final(done) {
        rec.ended = true;
        if (store && digest)
          store.has(digest as `sha256:${string}`).then((h) => {
            rec.committedAtEnd = h;
            done();
          }, done);
        else done();
      },
    }),
  };
  rec.sink.on('error', (e) => {
    rec.error = e;
  });
  rec.sink.on('close', () => resolveClosed());
  return rec;
}

describe.skipIf(skip !== undefined)('pull blobSink (tee)', () => {
  let tmp: string;
  let reg: Registry;
  let proxy: FaultProxy;
  let src: ContentStore;
  let n = 0;
  const stores = () => ContentStore.open(path.join(tmp, `store-${++n}`));

  beforeAll(async () => {
    tmp = mkTmp('tsc-tee-');
    reg = await startRegistry(tmp);
    proxy = await startProxy(reg.host);
    src = await ContentStore.open(path.join(tmp, 'src'));
  });
  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('every downloaded layer is teed whole; end() after the commit; info has the manifest, index and config', async () => {
    const name = `${reg.host}/tee/all:1`;
    const img = await makeImage(src, name, { layerSizes: [3000, 2_500_000, 700_000] });
    await push(src, name, FAST);
    const store = await stores();
    const recs = new Map<string, ReturnType<typeof recorder>>();
    const infos: Array<Omit<BlobSinkInfo, 'config' | 'signal'> & { arch: string }> = [];
    const r = await pull(store, name, {
      ...FAST,
      blobSink: async (desc: Descriptor, info: BlobSinkInfo) => {
        const config = await info.config;
        infos.push({
          index: info.index,
          manifest: info.manifest,
          arch: config.architecture,
        });
        const rec = recorder(store, desc.digest);
        recs.set(desc.digest, rec);
        return rec.sink;
      },
    });
    // layers only: the config is read from the store
    expect([...recs.keys()].sort()).toEqual(img.layers.map((l) => l.digest).sort());
    for (const [digest, rec] of recs) {
      await rec.closed;
      expect(rec.error).toBeUndefined();
      expect(rec.ended).toBe(true);
      expect(rec.committedAtEnd).toBe(true);
      expect(rec.sha256()).toBe(digest);
    }
    for (const [i, l] of img.layers.entries()) {
      const info = infos.find((x) => x.manifest.layers[x.index]?.digest === l.digest);
      expect(info?.index).toBe(i);
    }
    expect(infos.every((i) => i.arch === 'amd64' && i.manifest.layers.length === 3)).toBe(true);
    expect(r.manifestDescriptor.digest).toBe(img.manifest.digest);
    // Everything present now: a second pull downloads nothing and asks for no sink.
    let asked = 0;
    await pull(store, name, {
      ...FAST,
      blobSink: () => {
        asked++;
        return undefined;
      },
    });
    expect(asked).toBe(0);
  });

  test('a connection cut mid-blob: the resumed download (Range) tees each byte once', async () => {
    const name = `${reg.host}/tee/cut:1`;
    const img = await makeImage(src, name, { layerSizes: [2_000_000] });
    await push(src, name, FAST);
    const big = img.layers[0] as Descriptor;
    proxy.seen.length = 0;
    proxy.fault = ({ method, path: p, n }) =>
      method === 'GET' && p.endsWith(`/blobs/${big.digest}`) && n === 1
        ? { kind: 'cut', afterBytes: 1_300_000 }
        : undefined;
    const store = await stores();
    let rec: ReturnType<typeof recorder> | undefined;
    await pull(store, `${proxy.host}/tee/cut:1`, {
      ...FAST,
      blobSink: (desc) => {
        if (desc.digest !== big.digest) return undefined;
        rec = recorder(store, desc.digest);
        return rec.sink;
      },
    });
    proxy.fault = () => undefined;
    const gets = proxy.seen.filter((s) => s.method === 'GET' && s.path.endsWith(big.digest));
    expect(gets).toHaveLength(2);
    expect(gets[1]?.range).toMatch(/^bytes=[1-9]\d*-$/);
    await rec?.closed;
    expect(rec?.error).toBeUndefined();
    expect(rec?.bytes()).toBe(big.size);
    expect(rec?.sha256()).toBe(big.digest);
    expect(rec?.committedAtEnd).toBe(true);
  });

  test('a wrong blob: the sink is destroyed with DigestMismatch and never ended; nothing stored', async () => {
    const name = `${reg.host}/tee/bad:1`;
    const img = await makeImage(src, name, { layerSizes: [1_500_000, 10_000] });
    await push(src, name, FAST);
    const bad = img.layers[0] as Descriptor;
    proxy.fault = ({ method, path: p }) =>
      method === 'GET' && p.endsWith(`/blobs/${bad.digest}`) ? { kind: 'corrupt' } : undefined;
    const store = await stores();
    const recs: Array<ReturnType<typeof recorder>> = [];
    const e = await pull(store, `${proxy.host}/tee/bad:1`, {
      ...FAST,
      blobSink: (desc) => {
        const rec = recorder(store, desc.digest);
        if (desc.digest === bad.digest) recs.push(rec);
        return rec.sink;
      },
    }).catch((x: unknown) => x);
    proxy.fault = () => undefined;
    expect(isImageError(e) && e.code).toBe('DigestMismatch');
    expect(recs).toHaveLength(1);
    await recs[0]?.closed;
    expect(recs[0]?.ended).toBe(false);
    expect(isImageError(recs[0]?.error) && recs[0]?.error.code).toBe('DigestMismatch');
    expect(await store.has(bad.digest)).toBe(false);
    expect(fs.readdirSync(path.join(store.dir, 'ingest'))).toEqual([]);
  });

  test('a consumer that destroys its sink does not fail the pull; a partial from an earlier pull gets no sink', async () => {
    const name = `${reg.host}/tee/quit:1`;
    const img = await makeImage(src, name, { layerSizes: [1_800_000] });
    await push(src, name, FAST);
    const layer = img.layers[0] as Descriptor;
    const store = await stores();
    let got = 0;
    await pull(store, name, {
      ...FAST,
      blobSink: (desc) =>
        desc.digest === layer.digest
          ? new Writable({
              write(chunk: Buffer, _e, done) {
                got += chunk.length;
                done(new Error('consumer gives up'));
              },
            })
          : undefined,
    });
    expect(got).toBeGreaterThan(0);
    expect(await store.has(layer.digest)).toBe(true);

    // An earlier pull left a partial: the next one resumes it and asks for no sink.
    proxy.fault = ({ method, path: p }) =>
      method === 'GET' && p.endsWith(`/blobs/${layer.digest}`)
        ? { kind: 'cut', afterBytes: 500_000 }
        : undefined;
    const store2 = await stores();
    await expect(pull(store2, `${proxy.host}/tee/quit:1`, { retry: { attempts: 1 } })).rejects.toThrow();
    proxy.fault = () => undefined;
    const asked: string[] = [];
    await pull(store2, `${proxy.host}/tee/quit:1`, {
      ...FAST,
      blobSink: (desc) => {
        asked.push(desc.digest);
        return undefined;
      },
    });
    expect(asked).not.toContain(layer.digest);
    expect(await store2.has(layer.digest)).toBe(true);
  });

  test('the config (read into memory): a wrong one fails with DigestMismatch, unstored; a cut one is fetched again', async () => {
    const name = `${reg.host}/tee/config:1`;
    const img = await makeImage(src, name, { layerSizes: [5000] });
    await push(src, name, FAST);
    proxy.fault = ({ method, path: p }) =>
      method === 'GET' && p.endsWith(`/blobs/${img.config.digest}`) ? { kind: 'corrupt' } : undefined;
    const store = await stores();
    let sinkAsked = 0;
    const e = await pull(store, `${proxy.host}/tee/config:1`, {
      ...FAST,
      blobSink: async (_d, info) => {
        sinkAsked++;
        await info.config; // rejects: the layer's download fails with it
        return undefined;
      },
    }).catch((x: unknown) => x);
    expect(isImageError(e) && e.code).toBe('DigestMismatch');
    expect((e as Error).message).toMatch(`blob ${img.config.digest}: content has digest`);
    expect(sinkAsked).toBe(1);
    expect(await store.has(img.config.digest)).toBe(false);
    expect(await store.listRefs()).toEqual([]);
    proxy.seen.length = 0;
    let cuts = 0;
    proxy.fault = ({ method, path: p }) =>
      method === 'GET' && p.endsWith(`/blobs/${img.config.digest}`) && cuts++ < 2
        ? { kind: 'cut', afterBytes: 20 }
        : undefined;
    const store2 = await stores();
    const r = await pull(store2, `${proxy.host}/tee/config:1`, FAST);
    proxy.fault = () => undefined;
    expect(r.config.architecture).toBe('amd64');
    expect(await store2.has(img.config.digest)).toBe(true);
    expect(proxy.seen.filter((x) => x.path.endsWith(img.config.digest)).length).toBe(3);
  });

  test('a registry that ignores Range after a cut: the sink gets the bytes it had not seen, once', async () => {
    const blob = Buffer.alloc(3_000_000);
    for (let i = 0; i < blob.length; i++) blob[i] = (i * 7919) & 0xff;
    const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}` as const;
    const port = await freePort();
    let requests = 0;
    const ranges: Array<string | undefined> = [];
    const server = http.createServer((req, res) => {
      const p = (req.url ?? '').split('?')[0];
      if (p === '/v2/') {
        res.end('{}');
        return;
      }
      requests++;
      ranges.push(req.headers.range);
      res.writeHead(200, { 'content-length': String(blob.length) });
      if (requests === 1) {
        res.write(blob.subarray(0, 1_200_000), () => res.socket?.destroy());
        return;
      }
      res.end(blob); // Range ignored: the whole blob again
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    const store = await stores();
    const rec = recorder(store, digest);
    const client = new RegistryClient(FAST);
    try {
      await downloadBlob(
        client,
        store,
        parseReference(`127.0.0.1:${port}/g`),
        { mediaType: 'x', digest, size: blob.length },
        { sink: () => rec.sink },
      );
    } finally {
      await client.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
    expect(requests).toBe(2);
    expect(ranges[1]).toMatch(/^bytes=[1-9]\d*-$/);
    await rec.closed;
    expect(rec.error).toBeUndefined();
    expect(rec.bytes()).toBe(blob.length);
    expect(rec.sha256()).toBe(digest);
    expect(rec.committedAtEnd).toBe(true);
  });
});
