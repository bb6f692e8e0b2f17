#!/usr/bin/env node
// @ts-check
/**
 * Pull benchmark: a 3-layer image of ~60 MB (incompressible random layers of 20, 25 and 15 MB)
 * pushed once into a local docker-registry (Debian's distribution 2.8 on 127.0.0.1), then pulled
 * into a fresh content store N times by
 *   (a) @tsc/registry-client `pull()` from this (warm) Node process,
 *   (b) `nsinit pull -q` (the bundled CLI, a new Node process each time),
 *   (c) `skopeo copy docker://… oci:DIR:x` (Go, containers/image).
 * Download and verification, except that `nsinit pull` also unpacks into its layer store (the
 * layers are plain tars of one random file each, so that costs writing the 60 MB once more).
 * Every subject writes the blobs to disk and checks their sha256; ours also fsyncs each blob
 * before renaming it into the store (crash safety), skopeo does not.
 * Rounds are interleaved (a, b, c in each round) so machine noise hits all alike.
 *
 * Usage: node pull.mjs [--runs N] [--warmup N]
 * Needs /usr/bin/docker-registry, skopeo and the built CLI (pnpm --filter @tsc/cli build).
 * Writes results/pull.json next to this file.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..');
const nsinit = join(repo, 'packages', 'cli', 'dist', 'nsinit');
const clientDist = join(repo, 'packages', 'registry-client', 'dist', 'index.js');

const { values } = parseArgs({
  options: { runs: { type: 'string' }, warmup: { type: 'string' } },
});
const runs = Number(values.runs ?? process.env.BENCH_RUNS ?? 10);
const warmup = Number(values.warmup ?? 1);

for (const [what, path] of [
  ['docker-registry', '/usr/bin/docker-registry'],
  ['skopeo', '/usr/bin/skopeo'],
  ['the built CLI (pnpm --filter @tsc/cli build)', nsinit],
  ['the built registry client (pnpm --filter @tsc/registry-client build)', clientDist],
]) {
  if (!existsSync(path)) {
    console.error(`pull bench: needs ${what}: ${path} is missing`);
    process.exit(1);
  }
}

/** @type {typeof import('../packages/registry-client/dist/index.js')} */
const rc = await import(pathToFileURL(clientDist).href);

const tmp = mkdtempSync(join(tmpdir(), 'tsc-pull-bench-'));
/** @type {import('node:child_process').ChildProcess | undefined} */
let registry;
const cleanup = () => {
  registry?.kill('SIGTERM');
  rmSync(tmp, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = /** @type {net.AddressInfo} */ (s.address());
      s.close(() => resolve(a.port));
    });
  });
}

async function startRegistry() {
  const port = await freePort();
  const dir = join(tmp, 'registry');
  mkdirSync(dir);
  writeFileSync(
    join(dir, 'config.yml'),
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: bench\n`,
  );
  registry = spawn('/usr/bin/docker-registry', ['serve', join(dir, 'config.yml')], { stdio: 'ignore' });
  for (let i = 0; i < 200; i++) {
    const up = await new Promise((r) => {
      http
        .get(`http://127.0.0.1:${port}/v2/`, (res) => {
          res.resume();
          r(true);
        })
        .on('error', () => r(false));
    });
    if (up) return `127.0.0.1:${port}`;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('docker-registry did not start');
}

const host = await startRegistry();
const name = `${host}/bench/image:1`;

/** An uncompressed tar layer of one file of random bytes (nsinit pull unpacks what it pulls). */
function tarOf(name, data) {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\x0000', 257);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return Buffer.concat([h, data, Buffer.alloc((512 - (data.length % 512)) % 512), Buffer.alloc(1024)]);
}

// The image: 3 layers of random bytes (plain tar, one file each), a config, a manifest, pushed with our client.
const src = await rc.ContentStore.open(join(tmp, 'src'));
const layers = [];
for (const mb of [20, 25, 15]) {
  const data = tarOf(`layer-${mb}`, randomBytes(mb * 1000 * 1000));
  layers.push({
    mediaType: 'application/vnd.oci.image.layer.v1.tar',
    digest: await src.put(data),
    size: data.length,
  });
}
const config = await src.putJSON(
  { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } },
  'application/vnd.oci.image.config.v1+json',
);
const mt = 'application/vnd.oci.image.manifest.v1+json';
const manifest = await src.putJSON({ schemaVersion: 2, mediaType: mt, config, layers }, mt);
await src.setRef(name, manifest);
const t0 = performance.now();
await rc.push(src, name);
const pushMs = performance.now() - t0;
const totalBytes = layers.reduce((n, l) => n + l.size, 0) + config.size;

let seq = 0;
const fresh = () => join(tmp, `dst-${++seq}`);

/** @type {Record<string, () => Promise<number>>} */
const subjects = {
  'library pull (warm)': async () => {
    const dir = fresh();
    const t = performance.now();
    const store = await rc.ContentStore.open(dir);
    const r = await rc.pull(store, name);
    const ms = performance.now() - t;
    if (r.manifestDescriptor.digest !== manifest.digest) throw new Error('library pull: wrong manifest');
    rmSync(dir, { recursive: true, force: true });
    return ms;
  },
  'nsinit pull': async () => {
    const dir = fresh();
    const t = performance.now();
    const r = spawnSync(nsinit, ['pull', '-q', '--data-root', dir, name], { encoding: 'utf8' });
    const ms = performance.now() - t;
    if (r.status !== 0) throw new Error(`nsinit pull failed: ${r.stderr}`);
    if (!existsSync(join(dir, 'content', 'blobs', 'sha256', layers[0].digest.slice(7))))
      throw new Error('nsinit pull: layer missing');
    rmSync(dir, { recursive: true, force: true });
    return ms;
  },
  'skopeo copy': async () => {
    const dir = fresh();
    const t = performance.now();
    const r = spawnSync(
      'skopeo',
      ['copy', '-q', '--src-tls-verify=false', `docker://${name}`, `oci:${dir}:x`],
      {
        encoding: 'utf8',
      },
    );
    const ms = performance.now() - t;
    if (r.status !== 0) throw new Error(`skopeo copy failed: ${r.stderr}`);
    rmSync(dir, { recursive: true, force: true });
    return ms;
  },
  'node -e 0': async () => {
    const t = performance.now();
    spawnSync(process.execPath, ['-e', '0']);
    return performance.now() - t;
  },
};

/** @type {Record<string, number[]>} */
const samples = Object.fromEntries(Object.keys(subjects).map((k) => [k, []]));
try {
  for (let round = 0; round < warmup + runs; round++) {
    for (const [k, fn] of Object.entries(subjects)) {
      const ms = await fn();
      if (round >= warmup) samples[k]?.push(ms);
    }
    process.stderr.write(`round ${round + 1}/${warmup + runs}${round < warmup ? ' (warm-up)' : ''}\r`);
  }
} finally {
  cleanup();
}
process.stderr.write('\n');

/** @param {number[]} a */
const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  const hi = s[m] ?? 0;
  return s.length % 2 ? hi : ((s[m - 1] ?? 0) + hi) / 2;
};
const med = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));
const skopeoMs = /** @type {number} */ (med['skopeo copy']);
const mb = totalBytes / 1e6;
console.log(
  `pull of ${mb.toFixed(1)} MB (3 layers + config) from docker-registry on 127.0.0.1, ${runs} rounds, medians:`,
);
console.log('subject               median ms    min    max   MB/s   vs skopeo');
for (const [k, v] of Object.entries(samples)) {
  const m = /** @type {number} */ (med[k]);
  const rate = k === 'node -e 0' ? '' : (mb / (m / 1000)).toFixed(0);
  console.log(
    `${k.padEnd(20)} ${m.toFixed(0).padStart(9)} ${Math.min(...v)
      .toFixed(0)
      .padStart(6)} ${Math.max(...v)
      .toFixed(0)
      .padStart(6)} ${rate.padStart(6)}   ${(m / skopeoMs).toFixed(2)}x`,
  );
}
console.log(`(push of the same image with our client, once: ${pushMs.toFixed(0)} ms)`);
mkdirSync(join(here, 'results'), { recursive: true });
writeFileSync(
  join(here, 'results', 'pull.json'),
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        model: cpus()[0]?.model,
        kernel: release(),
        loadavg: loadavg(),
        node: process.version,
      },
      bytes: totalBytes,
      runs,
      samples,
      medians: med,
      pushMs,
    },
    null,
    2,
  )}\n`,
);
