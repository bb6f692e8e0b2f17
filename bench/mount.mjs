// Overlay mounts of deep images: LayerStore.prepare (writable layer + mount) and remove (unmount
// + delete) for images of 128 and 500 layers, through the new mount API (one `lowerdir+` per
// layer) and through classic mount(2) with short per-mount links. Needs root.
//
//   node bench/mount.mjs [--runs N]

import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';

const REPO = join(fileURLToPath(import.meta.url), '../..');
const { ContentStore, MediaType } = await import(
  pathToFileURL(join(REPO, 'packages/image/dist/index.js')).href
);
const { LayerStore } = await import(pathToFileURL(join(REPO, 'packages/unionfs/dist/index.js')).href);

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1] || process.env.BENCH_RUNS || 20) || 20;
if (process.getuid() !== 0) {
  console.error('bench/mount.mjs: run as root');
  process.exit(2);
}
const work = mkdtempSync('/var/tmp/tsc-bench-mount-');
const store = await LayerStore.open({ root: join(work, 'root'), driver: 'overlay', durable: false });
const cleanup = async () => {
  for (const c of await store.containers()) await store.remove(c.id);
  rmSync(work, { recursive: true, force: true });
};
process.on('SIGINT', async () => {
  await cleanup();
  process.exit(130);
});

/** A minimal ustar member (enough for one small file per layer). */
function tarOf(name, text) {
  const data = Buffer.from(text);
  const h = Buffer.alloc(512);
  h.write(name, 0);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124);
  h.write('14000000000\0', 136);
  h.write('0', 156);
  h.write('ustar\u000000', 257);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return Buffer.concat([h, data, Buffer.alloc((512 - (data.length % 512)) % 512), Buffer.alloc(1024)]);
}

const content = await ContentStore.open(join(work, 'oci'));
const images = {};
for (const depth of [128, 500]) {
  const layers = [];
  const diffIDs = [];
  for (let i = 0; i < depth; i++) {
    const tar = tarOf(`layer-${i}`, `${depth}/${i}\n`);
    const blob = gzipSync(tar);
    layers.push({ mediaType: MediaType.ociLayerGzip, digest: await content.put(blob), size: blob.length });
    diffIDs.push(`sha256:${createHash('sha256').update(tar).digest('hex')}`);
  }
  const t0 = performance.now();
  await store.unpackImage({ content, layers, diffIDs, owner: `image:${depth}` });
  console.log(`${depth} layers unpacked in ${(performance.now() - t0).toFixed(0)} ms`);
  images[depth] = diffIDs;
}

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const subjects = [];
for (const depth of [128, 500])
  for (const api of ['fsconfig', 'classic'])
    subjects.push({
      depth,
      api,
      store: await LayerStore.open({ root: join(work, 'root'), driver: 'overlay', overlayApi: api }),
    });

const samples = new Map(subjects.map((s) => [s, { prepare: [], remove: [] }]));
let n = 0;
for (let round = -1; round < runs; round++) {
  for (const s of subjects) {
    const id = `c${n++}`;
    let t = performance.now();
    const c = await s.store.prepare(id, images[s.depth]);
    const prep = performance.now() - t;
    if (c.mountApi !== s.api) throw new Error(`expected a ${s.api} mount, got ${c.mountApi}`);
    t = performance.now();
    await s.store.remove(id);
    const rem = performance.now() - t;
    if (round >= 0) {
      samples.get(s).prepare.push(prep);
      samples.get(s).remove.push(rem);
    }
  }
}
console.log(`\n${runs} interleaved rounds (ms, median [min-max])`);
console.log('layers  api        prepare (mkdir + mount)   remove (unmount + rm)');
for (const s of subjects) {
  const v = samples.get(s);
  const f = (a) => `${median(a).toFixed(1)} [${Math.min(...a).toFixed(1)}-${Math.max(...a).toFixed(1)}]`;
  console.log(
    `${String(s.depth).padStart(6)}  ${s.api.padEnd(9)}  ${f(v.prepare).padEnd(24)}  ${f(v.remove)}`,
  );
}
await cleanup();
