// ContentStore: blobs, verified ingests (resume, size and digest mismatches discard), two processes
// ingesting one blob, references in index.json, garbage collection.
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  fstatSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeEach, describe, expect, test } from 'vitest';
import { ContentStore, digestOf, MediaType, REF_NAME_ANNOTATION } from '../src/index.js';
import { cleanupTemp, storeImage, tempDir } from './image-fixtures.js';

const DIST = resolve(fileURLToPath(import.meta.url), '../../dist/index.js');

let dir: string;
let store: ContentStore;
beforeEach(async () => {
  dir = join(tempDir(), 'content');
  store = await ContentStore.open(dir);
});
afterAll(cleanupTemp);

describe('layout and blobs', () => {
  test('a new store is an OCI layout', async () => {
    expect(JSON.parse(readFileSync(join(dir, 'oci-layout'), 'utf8'))).toEqual({
      imageLayoutVersion: '1.0.0',
    });
    expect((await store.readIndex()).manifests).toEqual([]);
    await expect(ContentStore.open(join(dir, 'nope'), { create: false })).rejects.toMatchObject({
      code: 'NotFound',
    });
  });
  test('put, has, size, read; put is idempotent', async () => {
    const data = Buffer.from('hello blob');
    const d = await store.put(data);
    expect(d).toBe(digestOf(data));
    expect(await store.put(data)).toBe(d);
    expect(await store.has(d)).toBe(true);
    expect(await store.size(d)).toBe(data.length);
    expect((await store.read(d)).toString()).toBe('hello blob');
    expect(await store.has(digestOf('other'))).toBe(false);
    await expect(store.read(digestOf('other'))).rejects.toMatchObject({ code: 'NotFound' });
    await expect(store.read(d, { maxSize: 3 })).rejects.toMatchObject({ code: 'SizeMismatch' });
  });
  test('a blob changed behind the store is detected on read', async () => {
    const d = await store.put(Buffer.from('original'));
    writeFileSync(store.blobPath(d), 'tampered');
    await expect(store.read(d)).rejects.toMatchObject({ code: 'DigestMismatch' });
  });
  test('putJSON returns a descriptor', async () => {
    const desc = await store.putJSON({ a: 1 }, MediaType.ociConfig);
    expect(desc).toEqual({ mediaType: MediaType.ociConfig, digest: digestOf('{"a":1}'), size: 7 });
  });
});

describe('ingest', () => {
  const data = Buffer.alloc(300_000, 7);
  const digest = digestOf(data);
  const ingestFiles = () => (existsSync(join(dir, 'ingest')) ? readdirSync(join(dir, 'ingest')) : []);

  test('write and commit', async () => {
    const w = await store.ingest({ digest, size: data.length });
    expect(w.present).toBe(false);
    await w.write(data.subarray(0, 1000));
    await w.write(data.subarray(1000));
    expect(await store.has(digest)).toBe(false);
    expect(await w.commit()).toBe(digest);
    expect(await store.has(digest)).toBe(true);
    expect(ingestFiles()).toEqual([]);
    expect((await store.ingest({ digest })).present).toBe(true);
  });
  test('verifiedHere: only for a blob this object committed, as it was then', async () => {
    const fstat = (path: string) => {
      const fd = openSync(path, 'r');
      try {
        return fstatSync(fd, { bigint: true });
      } finally {
        closeSync(fd);
      }
    };
    const other = digestOf(Buffer.from('other'));
    expect(store.verifiedHere(digest, fstat(join(dir, 'oci-layout')))).toBe(false); // nothing committed yet
    await store.put(data);
    const path = store.blobPath(digest);
    expect(store.verifiedHere(digest, fstat(path))).toBe(true);
    expect(store.verifiedHere(other, fstat(path))).toBe(false);
    // another object on the same layout committed nothing
    expect((await ContentStore.open(dir)).verifiedHere(digest, fstat(path))).toBe(false);
    // any change since, even one that restores the bytes and the modification time
    const st = statSync(path);
    writeFileSync(path, data);
    utimesSync(path, st.atime, st.mtime);
    expect(store.verifiedHere(digest, fstat(path))).toBe(false);
  });

  test('resume continues after an interrupted attempt; without resume it restarts', async () => {
    const a = await store.ingest({ digest, size: data.length });
    await a.write(data.subarray(0, 100_000));
    await a.abort({ keepPartial: true });
    const b = await store.ingest({ digest, size: data.length }, { resume: true });
    expect(b.offset).toBe(100_000);
    await b.write(data.subarray(100_000, 150_000));
    await b.abort({ keepPartial: true });
    const c = await store.ingest({ digest, size: data.length });
    expect(c.offset).toBe(0);
    await c.write(data.subarray(0, 150_000));
    await c.abort({ keepPartial: true });
    const d = await store.ingest({ digest, size: data.length }, { resume: true });
    expect(d.offset).toBe(150_000);
    await d.write(data.subarray(150_000));
    await d.commit();
    expect((await store.read(digest)).equals(data)).toBe(true);
  });
  test('a resumed partial with wrong bytes fails the final check and is discarded', async () => {
    const a = await store.ingest({ digest, size: data.length });
    await a.write(Buffer.alloc(1000, 9));
    await a.abort({ keepPartial: true });
    const b = await store.ingest({ digest, size: data.length }, { resume: true });
    await b.write(data.subarray(b.offset));
    await expect(b.commit()).rejects.toMatchObject({ code: 'DigestMismatch' });
    expect(await store.has(digest)).toBe(false);
    expect(ingestFiles()).toEqual([]);
  });
  test('more bytes than the size fail at once; fewer fail at commit; both discard', async () => {
    const a = await store.ingest({ digest, size: 10 });
    await expect(a.write(data.subarray(0, 11))).rejects.toMatchObject({ code: 'SizeMismatch' });
    await a.abort();
    const b = await store.ingest({ digest, size: data.length });
    await b.write(data.subarray(0, 10));
    await expect(b.commit()).rejects.toThrow(`blob ${digest}: 10 bytes, its descriptor gives ${data.length}`);
    expect(await store.has(digest)).toBe(false);
    expect(ingestFiles()).toEqual([]);
  });
  test('content with another digest is discarded', async () => {
    const w = await store.ingest({ digest });
    await w.write(Buffer.from('not it'));
    await expect(w.commit()).rejects.toThrow(/content has digest sha256:[0-9a-f]{64}; discarded/);
    expect(await store.has(digest)).toBe(false);
    expect(ingestFiles()).toEqual([]);
  });

  test('two processes ingesting the same blob: one writes it, the other waits and finds it', async () => {
    const script = join(dir, '..', 'ingest-child.mjs');
    writeFileSync(
      script,
      `import { ContentStore } from ${JSON.stringify(DIST)};
import { writeFileSync } from 'node:fs';
const [dir, digest, size, marker] = process.argv.slice(2);
const store = await ContentStore.open(dir);
const w = await store.ingest({ digest, size: Number(size) });
if (!w.present) {
  writeFileSync(marker, 'writing');
  const chunk = Buffer.alloc(10_000, 7);
  for (let n = 0; n < Number(size); n += chunk.length) {
    await w.write(chunk.subarray(0, Math.min(chunk.length, Number(size) - n)));
    await new Promise((r) => setTimeout(r, 5));
  }
  await w.commit();
}
console.log(JSON.stringify({ present: w.present }));
`,
    );
    const run = (marker: string) =>
      new Promise<{ present: boolean }>((res, rej) => {
        const child = spawn(process.execPath, [script, dir, digest, String(data.length), marker], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
        });
        child.on('exit', (code) =>
          code === 0 ? res(JSON.parse(out)) : rej(new Error(`child exit ${code}`)),
        );
      });
    const m1 = join(dir, '..', 'm1');
    const m2 = join(dir, '..', 'm2');
    const first = run(m1);
    // The second starts once the first holds the ingest lock and is writing.
    for (let i = 0; i < 400 && !existsSync(m1); i++) await new Promise((r) => setTimeout(r, 10));
    expect(existsSync(m1)).toBe(true);
    const second = run(m2);
    const results = await Promise.all([first, second]);
    expect(results).toEqual([{ present: false }, { present: true }]);
    expect(existsSync(m2)).toBe(false);
    expect((await store.read(digest)).equals(data)).toBe(true);
    expect(statSync(store.blobPath(digest)).nlink).toBe(1);
    expect(ingestFiles()).toEqual([]);
  }, 30_000);
});

describe('references in index.json', () => {
  test('setRef, resolve, listRefs, removeRef', async () => {
    const a = await store.putJSON({ a: 1 }, MediaType.ociManifest);
    const b = await store.putJSON({ b: 1 }, MediaType.ociManifest);
    await store.setRef('docker.io/library/x:1', a);
    await store.setRef('docker.io/library/y:1', b);
    expect(await store.resolve('docker.io/library/x:1')).toMatchObject({ digest: a.digest });
    // Re-pointing a name replaces it.
    await store.setRef('docker.io/library/x:1', b);
    const refs = await store.listRefs();
    expect(refs.map((r) => [r.name, r.descriptor.digest])).toEqual([
      ['docker.io/library/y:1', b.digest],
      ['docker.io/library/x:1', b.digest],
    ]);
    const raw = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'));
    expect(raw.manifests[1].annotations[REF_NAME_ANNOTATION]).toBe('docker.io/library/x:1');
    expect(await store.removeRef('docker.io/library/x:1')).toBe(true);
    expect(await store.removeRef('docker.io/library/x:1')).toBe(false);
    expect(await store.resolve('docker.io/library/x:1')).toBeUndefined();
  });
  test('a name cannot point at a blob the store lacks', async () => {
    await expect(
      store.setRef('x', { mediaType: MediaType.ociManifest, digest: digestOf('missing'), size: 7 }),
    ).rejects.toMatchObject({ code: 'NotFound' });
  });
});

describe('gc', () => {
  test('removes what no reference reaches, keeps shared layers, unnamed entries and `keep`', async () => {
    const shared = Buffer.from('shared layer');
    const a = await storeImage(store, {
      name: 'docker.io/library/a:1',
      layers: [shared, Buffer.from('only a')],
    });
    const b = await storeImage(store, {
      name: 'docker.io/library/b:1',
      layers: [shared],
      config: { author: 'b' },
    });
    const c = await storeImage(store, { layers: [Buffer.from('only c')], config: { author: 'c' } });
    await store.updateIndex((i) => ({ ...i, manifests: [...i.manifests, c.manifestDescriptor] }));
    const stray = await store.put(Buffer.from('stray'));
    const kept = await store.put(Buffer.from('kept'));
    // an abandoned partial ingest
    const w = await store.ingest({ digest: digestOf('partial') });
    await w.write(Buffer.from('par'));
    await w.abort({ keepPartial: true });

    await store.removeRef('docker.io/library/a:1');
    const { removed } = await store.gc({ keep: [kept] });
    expect(new Set(removed)).toEqual(
      new Set([
        a.manifestDescriptor.digest,
        a.configDescriptor.digest,
        a.layers[1]?.descriptor.digest,
        stray,
      ]),
    );
    for (const d of [
      b.manifestDescriptor.digest,
      b.layers[0]?.descriptor.digest,
      c.manifestDescriptor.digest,
      kept,
    ])
      expect(await store.has(d as never)).toBe(true);
    expect(readdirSync(join(dir, 'ingest'))).toEqual([]);
  });
});
