// Layer unpacking: @tsc/unionfs LayerStore.unpackImage vs `umoci unpack` (and `tar -xzf` for
// reference) on a 3-layer gzip image built from this machine's /usr trees. Interleaved rounds,
// medians. Needs root (umoci unpacks as root; our overlay whiteouts are device nodes).
//
// Each subject runs as a fresh process (like the CLI would), so Node's start-up and koffi's load
// are in our numbers; the blobs are in the page cache for every subject alike.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildUsrImage } from './lib/usr-image.mjs';

const REPO = join(fileURLToPath(import.meta.url), '../..');
const image = await import(pathToFileURL(join(REPO, 'packages/image/dist/index.js')).href);
const UNIONFS = join(REPO, 'packages/unionfs/dist/index.js');

const USAGE = `usage: node bench/unpack.mjs [--runs N] [--rm-each] [--keep]

Unpacks a 3-layer gzip image (this machine's /usr trees, ~80 MB gzip, ~250 MB tar) with
@tsc/unionfs's LayerStore.unpackImage, \`umoci unpack\` and \`tar -xzf\`, each as a fresh process,
in N interleaved rounds (default 5, or BENCH_RUNS), and prints medians and ratios to umoci.

  --runs N    rounds after the warm-up round
  --rm-each   delete each sample's output right after it (the old way; see below)
  --keep      keep the work directory (image and outputs) at the end

Outputs are kept until the end by default (~250 MB per sample): on ext4 without a journal
(this VM's disk) the kernel skips every recently deleted inode when it allocates one
(ext4's recently_deleted(), up to 5 minutes while the inode table block is dirty), so a
sample that follows the deletion of 7500 files pays for it in file creation. Every sample is
followed by an untimed \`sync\`, so each starts with nothing dirty in the page cache.`;
const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log(USAGE);
  process.exit(0);
}
const runs = Number(args[args.indexOf('--runs') + 1] || process.env.BENCH_RUNS || 5) || 5;
const keep = args.includes('--keep');
const rmEach = args.includes('--rm-each');
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
// LayerStore.open options and unpackImage options; {} is the documented defaults (durable: a
// syncfs per layer before it becomes visible; workers: 'auto', none on fewer than 4 CPUs).
const ours = (openOpts, imageOpts) => (dir) => [
  process.execPath,
  [
    '--input-type=module',
    '-e',
    `const { LayerStore } = await import(${JSON.stringify(pathToFileURL(UNIONFS).href)});
     const { ContentStore } = await import(${JSON.stringify(pathToFileURL(join(REPO, 'packages/image/dist/index.js')).href)});
     const content = await ContentStore.open(${JSON.stringify(layout)}, { create: false });
     const store = await LayerStore.open({ root: ${JSON.stringify(dir)}, driver: 'overlay', ...${JSON.stringify(openOpts)} });
     await store.unpackImage({ content, layers: ${JSON.stringify(layers)}, diffIDs: ${JSON.stringify(diffIDs)}, owner: 'image:bench', ...${JSON.stringify(imageOpts)} });`,
  ],
];
const subjects = [
  { name: 'unionfs (defaults)', cmd: ours({}, {}) },
  { name: 'unionfs, no syncfs', cmd: ours({ durable: false }, {}) },
  { name: 'unionfs, workers', cmd: ours({}, { workers: 'always' }) },
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
if (!rmEach) {
  const need = rawBytes * 1.1 * subjects.length * (runs + 1);
  const st = statfsSync(work);
  if (st.bavail * st.bsize < need * 1.5) {
    console.error(
      `bench/unpack.mjs: keeping every output needs ~${MB(need)} MB in ${work}; use --rm-each or fewer --runs`,
    );
    cleanup();
    process.exit(2);
  }
}

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
  if (rmEach) execFileSync('rm', ['-rf', dir]);
  // untimed: the next sample starts with nothing dirty in the page cache (our syncfs would flush
  // what the previous subject left; umoci's and tar's writeback would run during the next one)
  execFileSync('sync');
  return { ms, cpu };
}

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const loadStart = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
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
console.log(
  `\n${runs} interleaved rounds per image unpack, ms (load average: ${loadStart} at the start, ${load} at the end; outputs ${rmEach ? 'deleted after each sample' : 'kept until the end'})`,
);
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
console.log(
  '\nDefaults against defaults: unionfs flushes each layer (syncfs) before it becomes visible;',
  '\numoci unpack and tar do not fsync. Issue 5 target: unionfs (defaults) / umoci <= 0.50 (wall).',
);
console.log(`kernel ${readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}, node ${process.version}`);
cleanup();
