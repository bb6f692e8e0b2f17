import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { type Descriptor, type Digest, digestOf, parseReference } from '@tsc/image';
import { ContentStore, isImageError, push } from '@tsc/registry-client';
import { chainIDs, LayerStore } from '@tsc/unionfs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { pullAndUnpack } from '../src/pull-unpack.js';
import { freePort, startRegistry, ustar } from './helpers.js';

const skip =
  process.getuid?.() !== 0
    ? 'needs root'
    : !fs.existsSync('/usr/bin/docker-registry')
      ? 'needs docker-registry'
      : undefined;
const FAST = { retry: { attempts: 3, baseDelayMs: 20 } };

/**
 * What the proxy does to a blob GET: cut the connection after `cut` bytes, flip the byte at
 * `flip`, or send nothing until `hold` resolves.
 */
type Fault =
  | {
      cut?: number;
      flip?: number;
      hold?: Promise<void>;
      /** Forward the first `at` bytes, then nothing until `until` resolves. */
      stall?: { at: number; until: Promise<unknown> };
    }
  | undefined;

/** A proxy in front of the registry; `fault(digest, n)` decides for the n-th GET of a blob. */
async function startProxy(target: string) {
  const port = await freePort();
  const counts = new Map<string, number>();
  const proxy = {
    host: `127.0.0.1:${port}`,
    ranges: [] as Array<{ digest: string; range: string | undefined }>,
    fault: (_digest: string, _n: number): Fault => undefined,
    /** Forget the requests seen (n counts from 1 again). */
    reset: () => {
      counts.clear();
      proxy.ranges.length = 0;
    },
    stop: async () => {},
  };
  const server = http.createServer((req, res) => {
    const m = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec((req.url ?? '').split('?')[0] as string);
    let f: Fault;
    if (m && req.method === 'GET') {
      const d = m[1] as string;
      const n = (counts.get(d) ?? 0) + 1;
      counts.set(d, n);
      proxy.ranges.push({ digest: d, range: req.headers.range });
      f = proxy.fault(d, n);
    }
    const [h, p] = target.split(':') as [string, string];
    const forward = () => {
      const up = http.request(
        {
          host: h,
          port: Number(p),
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: target },
        },
        (ures) => {
          res.writeHead(ures.statusCode ?? 502, ures.headers);
          let sent = 0;
          let stalled = false;
          const push = (chunk: Buffer) => {
            let c = chunk;
            if (f?.flip !== undefined && f.flip >= sent && f.flip < sent + c.length) {
              c = Buffer.from(c);
              c[f.flip - sent] = (c[f.flip - sent] ?? 0) ^ 0xff;
            }
            if (f?.cut !== undefined && sent + c.length >= f.cut) {
              res.write(c.subarray(0, f.cut - sent));
              ures.destroy();
              res.socket?.destroy();
              sent = f.cut;
              return;
            }
            sent += c.length;
            res.write(c);
          };
          ures.on('data', (chunk: Buffer) => {
            const st = f?.stall;
            if (st && !stalled && sent + chunk.length > st.at) {
              stalled = true;
              const rest = Buffer.from(chunk.subarray(st.at - sent));
              push(chunk.subarray(0, st.at - sent));
              ures.pause();
              void st.until.then(() => {
                push(rest);
                ures.resume();
              });
              return;
            }
            push(chunk);
          });
          ures.on('end', () => res.end());
          ures.on('error', () => res.destroy());
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    };
    if (f?.hold) f.hold.then(forward);
    else forward();
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  proxy.stop = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return proxy;
}

interface TestImage {
  layers: Descriptor[];
  diffIDs: Digest[];
  chains: Digest[];
  /** A file of each layer and its content. */
  files: Array<{ name: string; data: Buffer }>;
}

/** A layer of `count` files of random bytes (incompressible: the blob is about `count * size`). */
function layer(tag: string, count: number, size: number) {
  const files = Array.from({ length: count }, (_, i) => ({
    name: `${tag}/f${i}`,
    data: randomBytes(size),
  }));
  const tar = ustar([{ name: `${tag}/`, dir: true }, ...files]);
  return { tar, gz: gzipSync(tar), files };
}

/** Pushes an image made of `parts` (reusing given layers) as `name`. */
async function makeImage(
  src: ContentStore,
  name: string,
  parts: ReturnType<typeof layer>[],
): Promise<TestImage> {
  const layers: Descriptor[] = [];
  for (const p of parts)
    layers.push({
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      digest: await src.put(p.gz),
      size: p.gz.length,
    });
  const diffIDs = parts.map((p) => digestOf(p.tar));
  const config = await src.putJSON(
    { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: diffIDs } },
    'application/vnd.oci.image.config.v1+json',
  );
  const mt = 'application/vnd.oci.image.manifest.v1+json';
  await src.setRef(name, await src.putJSON({ schemaVersion: 2, mediaType: mt, config, layers }, mt));
  await push(src, name, FAST);
  return {
    layers,
    diffIDs,
    chains: chainIDs(diffIDs),
    files: parts.map((p) => p.files[p.files.length - 1] as { name: string; data: Buffer }),
  };
}

describe.skipIf(skip !== undefined)('pull and unpack together', () => {
  let tmp: string;
  let reg: Awaited<ReturnType<typeof startRegistry>>;
  let proxy: Awaited<ReturnType<typeof startProxy>>;
  let src: ContentStore;
  // layers shared by the images: base (3 MB, streamed in most tests), mid, top
  let base: ReturnType<typeof layer>;
  let mid: ReturnType<typeof layer>;
  let top: ReturnType<typeof layer>;
  let n = 0;
  const roots = () => path.join(tmp, `root-${++n}`);
  const open = async (root: string) => ({
    store: await ContentStore.open(path.join(root, 'content')),
    layers: await LayerStore.open({ root }),
  });
  const stored = (root: string) =>
    fs.readdirSync(path.join(root, 'layers', 'overlay', 'layers')).map((h) => `sha256:${h}`);
  const leftovers = (root: string) => [
    ...fs.readdirSync(path.join(root, 'layers', 'overlay', 'tmp')),
    ...fs
      .readdirSync(path.join(root, 'content', 'ingest'))
      .filter((f) => fs.statSync(path.join(root, 'content', 'ingest', f)).size === 0),
  ];

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nsinit-pullunpack-'));
    reg = await startRegistry(tmp);
    proxy = await startProxy(reg.host);
    src = await ContentStore.open(path.join(tmp, 'src'));
    base = layer('base', 60, 50_000);
    mid = layer('mid', 200, 2_000);
    top = layer('top', 20, 30_000);
  });
  afterAll(async () => {
    await proxy?.stop();
    await reg?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('the first layer unpacks from its download; the rest from the store; again: nothing to do', async () => {
    const img = await makeImage(src, `${reg.host}/pu/a:1`, [base, mid, top]);
    const root = roots();
    const { store, layers } = await open(root);
    const extracted = new Set<string>();
    const r = await pullAndUnpack(store, layers, parseReference(`${proxy.host}/pu/a:1`), {
      ...FAST,
      onExtract: (l) => extracted.add(l.digest),
    });
    expect(r.streamed?.index).toBe(0);
    expect(r.layers.map((l) => l.chainID)).toEqual(img.chains);
    expect(r.layers.every((l) => l.unpacked)).toBe(true);
    expect(extracted.size).toBe(3);
    for (const [i, f] of img.files.entries())
      expect(
        fs.readFileSync(
          path.join(root, 'layers', 'overlay', 'layers', img.chains[i]!.slice(7), 'diff', f.name),
        ),
      ).toEqual(f.data);
    for (const l of img.layers) expect(await store.has(l.digest)).toBe(true);
    expect((await store.listRefs()).map((x) => x.name)).toEqual([`${proxy.host}/pu/a:1`]);
    expect((await layers.references()).get(`image:${r.pull.configDescriptor.digest}`)).toEqual([
      img.chains[2],
    ]);
    expect(leftovers(root)).toEqual([]);

    const again = await pullAndUnpack(store, layers, parseReference(`${proxy.host}/pu/a:1`), FAST);
    expect(again.streamed).toBeUndefined();
    expect(again.layers.map((l) => l.unpacked)).toEqual([false, false, false]);
  });

  test('an image whose base is unpacked already streams its first missing layer', async () => {
    await makeImage(src, `${reg.host}/pu/b:1`, [base]);
    const img = await makeImage(src, `${reg.host}/pu/c:1`, [base, mid, top]);
    const root = roots();
    const { store, layers } = await open(root);
    await pullAndUnpack(store, layers, parseReference(`${reg.host}/pu/b:1`), FAST);
    const r = await pullAndUnpack(store, layers, parseReference(`${reg.host}/pu/c:1`), FAST);
    expect(r.streamed?.index).toBe(1);
    expect(r.layers.map((l) => l.unpacked)).toEqual([false, true, true]);
    expect(stored(root).sort()).toEqual([...img.chains].sort());
  });

  test('concurrent pulls of images sharing layers unpack each layer once', async () => {
    const a = await makeImage(src, `${reg.host}/pu/d:1`, [base, mid]);
    const b = await makeImage(src, `${reg.host}/pu/e:1`, [base, mid, top]);
    const root = roots();
    const one = await open(root);
    const two = await open(root); // as another process would: own store objects
    const [ra, rb] = await Promise.all([
      pullAndUnpack(one.store, one.layers, parseReference(`${reg.host}/pu/d:1`), FAST),
      pullAndUnpack(two.store, two.layers, parseReference(`${reg.host}/pu/e:1`), FAST),
    ]);
    const unpacked = [...ra.layers, ...rb.layers].filter((l) => l.unpacked).map((l) => l.chainID);
    expect(unpacked.sort()).toEqual([...b.chains].sort()); // each chain once
    expect(ra.layers.map((l) => l.chainID)).toEqual(a.chains);
    expect(rb.layers.map((l) => l.chainID)).toEqual(b.chains);
    expect(stored(root).sort()).toEqual([...b.chains].sort());
    expect(leftovers(root)).toEqual([]);
  });

  test('a layer whose blob is there unpacks while a later layer still downloads', async () => {
    const img = await makeImage(src, `${reg.host}/pu/slow:1`, [
      layer('s0', 3, 1000),
      layer('s1', 3, 1000),
      top,
    ]);
    const last = img.layers[2] as Descriptor;
    let release = () => {};
    const hold = new Promise<void>((r) => {
      release = r;
    });
    proxy.reset();
    proxy.fault = (d) => (d === last.digest ? { hold } : undefined);
    const root = roots();
    const { store, layers } = await open(root);
    const pulling = pullAndUnpack(store, layers, parseReference(`${proxy.host}/pu/slow:1`), FAST);
    pulling.catch(() => {});
    // The top layer's blob is held back: layers 0 and 1 get unpacked meanwhile (or never: then
    // this fails after 30 s).
    try {
      for (let i = 0; !(await layers.get(img.chains[1] as Digest)); i++) {
        if (i > 600) throw new Error('layer 1 was not unpacked while layer 2 was downloading');
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await store.has(last.digest)).toBe(false);
    } finally {
      release();
      proxy.fault = () => undefined;
    }
    const r = await pulling;
    expect(r.layers.map((l) => l.chainID)).toEqual(img.chains);
    expect(r.layers[2]?.unpacked).toBe(true);
    expect((await layers.references()).get(`image:${r.pull.configDescriptor.digest}`)).toEqual([
      img.chains[2],
    ]);
    expect(leftovers(root)).toEqual([]);
  });

  test('a wrong byte in the middle of the streamed layer: DigestMismatch, nothing stored or unpacked', async () => {
    const img = await makeImage(src, `${reg.host}/pu/f:1`, [base, mid, top]);
    const bad = img.layers[0] as Descriptor;
    proxy.fault = (d) => (d === bad.digest ? { flip: Math.floor(bad.size * 0.7) } : undefined);
    const root = roots();
    const { store, layers } = await open(root);
    let extractedBytes = 0;
    const e = await pullAndUnpack(store, layers, parseReference(`${proxy.host}/pu/f:1`), {
      ...FAST,
      onExtract: (l, bytes) => {
        if (l.digest === bad.digest) extractedBytes = bytes;
      },
    }).catch((x: unknown) => x);
    proxy.fault = () => undefined;
    expect(isImageError(e) && e.code).toBe('DigestMismatch');
    expect((e as Error).message).toMatch(`blob ${bad.digest}`);
    expect(extractedBytes).toBeGreaterThan(0); // it was streaming when the bad byte came
    expect(await store.has(bad.digest)).toBe(false);
    expect(await store.listRefs()).toEqual([]);
    expect(stored(root)).toEqual([]); // layers 1, 2 need layer 0
    expect(await layers.references()).toEqual(new Map());
    expect(leftovers(root)).toEqual([]);
    expect(fs.readdirSync(path.join(root, 'content', 'ingest'))).toEqual([]);
  });

  test('a wrong blob that is not streamed: DigestMismatch, no name, no reference, its layer not unpacked', async () => {
    const img = await makeImage(src, `${reg.host}/pu/g:1`, [base, mid, top]);
    const bad = img.layers[2] as Descriptor;
    proxy.fault = (d) => (d === bad.digest ? { flip: 100 } : undefined);
    const root = roots();
    const { store, layers } = await open(root);
    const e = await pullAndUnpack(store, layers, parseReference(`${proxy.host}/pu/g:1`), FAST).catch(
      (x: unknown) => x,
    );
    proxy.fault = () => undefined;
    expect(isImageError(e) && e.code).toBe('DigestMismatch');
    expect(await store.has(bad.digest)).toBe(false);
    expect(await store.listRefs()).toEqual([]);
    expect(stored(root)).not.toContain(img.chains[2]);
    expect(await layers.references()).toEqual(new Map());
    expect(leftovers(root)).toEqual([]);
  });

  test('a connection cut in the streamed layer: the download resumes with Range and the stream goes on', async () => {
    const img = await makeImage(src, `${reg.host}/pu/h:1`, [base, mid, top]);
    const first = img.layers[0] as Descriptor;
    proxy.reset();
    proxy.fault = (d, n) => (d === first.digest && n === 1 ? { cut: Math.floor(first.size / 2) } : undefined);
    const root = roots();
    const { store, layers } = await open(root);
    const r = await pullAndUnpack(store, layers, parseReference(`${proxy.host}/pu/h:1`), FAST);
    proxy.fault = () => undefined;
    const gets = proxy.ranges.filter((x) => x.digest === first.digest);
    expect(gets).toHaveLength(2);
    expect(gets[1]?.range).toMatch(/^bytes=[1-9]\d*-$/);
    expect(r.streamed?.index).toBe(0);
    expect(r.streamed?.result.unpacked).toBe(true);
    expect(r.layers.map((l) => l.chainID)).toEqual(img.chains);
    expect(
      fs.readFileSync(
        path.join(root, 'layers', 'overlay', 'layers', img.chains[0]!.slice(7), 'diff', img.files[0]!.name),
      ),
    ).toEqual(img.files[0]!.data);
    expect(leftovers(root)).toEqual([]);
  });

  test('a streamed layer of 8 MiB or more inflates on a thread: whole; a wrong byte fails it; a cut resumes', async () => {
    const big = layer('big', 90, 100_000); // ~9 MB of blob
    const img = await makeImage(src, `${reg.host}/pu/big:1`, [big, mid]);
    const first = img.layers[0] as Descriptor;
    expect(first.size).toBeGreaterThanOrEqual(8 << 20);
    const check = (root: string) => {
      for (const f of [big.files[0], big.files[89]] as { name: string; data: Buffer }[])
        expect(
          fs.readFileSync(
            path.join(root, 'layers', 'overlay', 'layers', img.chains[0]!.slice(7), 'diff', f.name),
          ),
        ).toEqual(f.data);
    };
    // whole, and again with the connection cut halfway (Range resume, the stream goes on)
    for (const cut of [undefined, Math.floor(first.size / 2)]) {
      proxy.reset();
      proxy.fault = (d, n) => (cut !== undefined && d === first.digest && n === 1 ? { cut } : undefined);
      const root = roots();
      const { store, layers } = await open(root);
      const r = await pullAndUnpack(store, layers, parseReference(`${proxy.host}/pu/big:1`), FAST);
      proxy.fault = () => undefined;
      expect(r.streamed?.index).toBe(0);
      expect(r.streamed?.result.unpacked).toBe(true);
      expect(r.layers.map((l) => l.chainID)).toEqual(img.chains);
      if (cut !== undefined) expect(proxy.ranges.filter((x) => x.digest === first.digest)).toHaveLength(2);
      check(root);
      expect(leftovers(root)).toEqual([]);
    }
    // a flipped byte at 70 %: DigestMismatch, nothing stored, named or unpacked (the download
    // waits at 60 % until the layer is being extracted: it must be streaming when the byte comes)
    let extracting!: () => void;
    const extractingNow = new Promise<void>((r) => {
      extracting = r;
    });
    proxy.fault = (d) =>
      d === first.digest
        ? {
            flip: Math.floor(first.size * 0.7),
            stall: { at: Math.floor(first.size * 0.6), until: extractingNow },
          }
        : undefined;
    const root = roots();
    const { store, layers } = await open(root);
    let extractedBytes = 0;
    const e = await pullAndUnpack(store, layers, parseReference(`${proxy.host}/pu/big:1`), {
      ...FAST,
      onExtract: (l, bytes) => {
        if (l.digest !== first.digest) return;
        extractedBytes = bytes;
        extracting();
      },
    }).catch((x: unknown) => x);
    proxy.fault = () => undefined;
    expect(isImageError(e) && e.code).toBe('DigestMismatch');
    expect(extractedBytes).toBeGreaterThan(0);
    expect(await store.has(first.digest)).toBe(false);
    expect(await store.listRefs()).toEqual([]);
    expect(stored(root)).toEqual([]);
    expect(leftovers(root)).toEqual([]);
    expect(fs.readdirSync(path.join(root, 'content', 'ingest'))).toEqual([]);
  });

  test('an abort mid-stream leaves no layer and no name; the next pull resumes the partial and unpacks from the store', async () => {
    const img = await makeImage(src, `${reg.host}/pu/i:1`, [base, mid, top]);
    const first = img.layers[0] as Descriptor;
    // cut the first layer after 1 MB: the stream is under way when the retry aborts the pull
    proxy.reset();
    proxy.fault = (d, n) => (d === first.digest && n === 1 ? { cut: 1_000_000 } : undefined);
    const root = roots();
    const { store, layers } = await open(root);
    const ac = new AbortController();
    const e = await pullAndUnpack(store, layers, parseReference(`${proxy.host}/pu/i:1`), {
      retry: { attempts: 3, baseDelayMs: 2000 },
      signal: ac.signal,
      onProgress: (ev) => {
        if (ev.type === 'blob' && ev.digest === first.digest && ev.status === 'retrying')
          ac.abort(new Error('interrupted'));
      },
    }).catch((x: unknown) => x);
    proxy.fault = () => undefined;
    expect((e as Error).message).toMatch(/interrupted|abort/i);
    expect(stored(root)).toEqual([]);
    expect(fs.readdirSync(path.join(root, 'layers', 'overlay', 'tmp'))).toEqual([]);
    expect(await store.listRefs()).toEqual([]);
    expect(await layers.references()).toEqual(new Map());
    // The bytes of the first layer stay for a resume; that download does not stream (no sink).
    const partial = path.join(root, 'content', 'ingest', `sha256-${first.digest.slice(7)}`);
    expect(fs.statSync(partial).size).toBeGreaterThan(0);
    proxy.reset();
    const r = await pullAndUnpack(store, layers, parseReference(`${proxy.host}/pu/i:1`), FAST);
    expect(proxy.ranges.find((x) => x.digest === first.digest)?.range).toMatch(/^bytes=[1-9]\d*-$/);
    expect(r.streamed).toBeUndefined();
    expect(r.layers.map((l) => l.unpacked)).toEqual([true, true, true]);
    expect(stored(root).sort()).toEqual([...img.chains].sort());
    expect(leftovers(root)).toEqual([]);
  });
});
