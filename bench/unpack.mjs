// Layer unpacking: @tsc/unionfs LayerStore.unpackImage vs `umoci unpack` (and `tar -xzf` for
// reference) on a 3-layer gzip image built from this machine's /usr trees. Interleaved rounds,
// medians. Needs root (umoci unpacks as root; our overlay whiteouts are device nodes).
//
//   node bench/unpack.mjs [--runs N] [--keep]
//
// Each subject runs as a fresh process (like the CLI would), so Node's start-up and koffi's load
// are in our numbers; the blobs are in the page cache for every subject alike.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildUsrImage } from './lib/usr-image.mjs';

const REPO = join(fileURLToPath(import.meta.url), '../..');
const image = await import(pathToFileURL(join(REPO, 'packages/image/dist/index.js')).href);
const UNIONFS = join(REPO, 'packages/unionfs/dist/index.js');

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1] || process.env.BENCH_RUNS || 5) || 5;
const keep = args.includes('--keep');
if (process.getuid() !== 0) {
  console.error('bench/unpack.mjs: run as root (umoci and overlay whiteouts need it)');
  process.exit(2);
}
for (const tool of ['umoci', 'tar']) {
  if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).status !== 0) {
    console.error(`bench/unpack.mjs: ${tool} is not installed`);
    process.exit(2);
  }
}

const work = mkdtempSync('/var/tmp/tsc-bench-unpack-');
const cleanup = () => keep || rmSync(work, { recursive: true, force: true });
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

// ---- the image: many small files plus big ones, three layers (bench/lib/usr-image.mjs) ------
const layout = join(work, 'oci');
const { layers, diffIDs, files, rawBytes } = await buildUsrImage(image, layout);
const content = await image.ContentStore.open(layout, { create: false });
const gzBytes = layers.reduce((s, l) => s + l.size, 0);
const MB = (n) => (n / 1e6).toFixed(1);
console.log(
  `image: ${layers.length} layers, ${MB(gzBytes)} MB gzip (${layers.map((l) => MB(l.size)).join(' + ')}), ${MB(rawBytes)} MB tar, ${files} entries`,
);

// ---- subjects ---------------------------------------------------------------------------------
const ours =
  (durable, workers = 'never') =>
  (dir) => [
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { LayerStore } = await import(${JSON.stringify(pathToFileURL(UNIONFS).href)});
     const { ContentStore } = await import(${JSON.stringify(pathToFileURL(join(REPO, 'packages/image/dist/index.js')).href)});
     const content = await ContentStore.open(${JSON.stringify(layout)}, { create: false });
     const store = await LayerStore.open({ root: ${JSON.stringify(dir)}, driver: 'overlay', durable: ${durable} });
     await store.unpackImage({ content, layers: ${JSON.stringify(layers)}, diffIDs: ${JSON.stringify(diffIDs)}, owner: 'image:bench', workers: '${workers}' });`,
    ],
  ];
const subjects = [
  { name: 'unionfs (overlay)', cmd: ours(false) },
  { name: 'unionfs + syncfs', cmd: ours(true) },
  { name: 'unionfs, no workers', cmd: ours(false, 'never') },
  {
    name: 'umoci unpack',
    cmd: (dir) => ['umoci', ['unpack', '--image', `${layout}:bench`, join(dir, 'bundle')]],
  },
  {
    name: 'tar -xzf x3',
    cmd: (dir) => [
      'sh',
      [
        '-c',
        `mkdir -p ${dir}/r && ${layers.map((l) => `tar -xzf ${content.blobPath(l.digest)} -C ${dir}/r`).join(' && ')}`,
      ],
    ],
  },
];

// CPU time (user + system, children included) through GNU time when it is installed: on a busy
// machine it says more than wall time about the work each subject does.
const gnuTime = spawnSync('/usr/bin/time', ['-f', '%U', 'true']).status === 0;
function once(s) {
  const dir = mkdtempSync(join(work, 'run-'));
  const [file, argv] = s.cmd(dir);
  const cpuFile = join(work, 'cpu');
  const t0 = process.hrtime.bigint();
  const r = gnuTime
    ? spawnSync('/usr/bin/time', ['-f', '%U %S', '-o', cpuFile, file, ...argv], {
        stdio: ['ignore', 'ignore', 'pipe'],
      })
    : spawnSync(file, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) {
    console.error(`${s.name} failed (${r.status}):\n${r.stderr}`);
    cleanup();
    process.exit(1);
  }
  let cpu = Number.NaN;
  if (gnuTime) {
    const last = readFileSync(cpuFile, 'utf8').trim().split('\n').pop() ?? '';
    cpu = last.split(' ').reduce((a, b) => a + Number(b) * 1000, 0);
  }
  execFileSync('rm', ['-rf', dir]);
  return { ms, cpu };
}

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

for (const s of subjects) once(s); // smoke + warm-up
const walls = new Map(subjects.map((s) => [s.name, []]));
const cpus = new Map(subjects.map((s) => [s.name, []]));
for (let i = 0; i < runs; i++)
  for (const s of subjects) {
    const { ms, cpu } = once(s);
    walls.get(s.name).push(ms);
    cpus.get(s.name).push(cpu);
  }

const umoci = median(walls.get('umoci unpack'));
const umociCpu = median(cpus.get('umoci unpack'));
const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
console.log(`\n${runs} interleaved rounds per image unpack, ms (load average at the end: ${load})`);
console.log('subject              wall median     min     max  vs umoci   cpu median  vs umoci');
const col = (v, w) => v.toFixed(0).padStart(w);
for (const s of subjects) {
  const v = walls.get(s.name);
  const c = median(cpus.get(s.name));
  const ratio = (median(v) / umoci).toFixed(2);
  console.log(
    `${s.name.padEnd(20)} ${col(median(v), 11)} ${col(Math.min(...v), 7)} ${col(Math.max(...v), 7)}  ${ratio.padStart(7)}x ${col(c, 11)}  ${(c / umociCpu).toFixed(2).padStart(7)}x`,
  );
}
console.log(`\nkernel ${readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}, node ${process.version}`);
cleanup();
