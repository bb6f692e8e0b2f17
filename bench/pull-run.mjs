// Pull to a runnable rootfs (download, verify, unpack): `nsinit pull` against
// `skopeo copy docker://… oci:…` followed by `umoci unpack`, side by side, from a local
// docker-registry on 127.0.0.1, with a realistic 3-layer ~60 MB image (bench/lib/usr-image.mjs).
// Interleaved rounds, medians, ratio. Needs root (umoci as root; overlay whiteouts).
//
//   node bench/pull-run.mjs [--runs N] [--rm-each] [--base OTHER_NSINIT]
//
// `--base` adds a subject: another build of nsinit (e.g. of an older commit, built in a copy of
// the repository) pulling the same way, for A/B comparisons in the same rounds.
//
// Outputs are kept until the end by default (~330 MB per sample), and every sample is followed
// by an untimed `sync`, as in bench/unpack.mjs: on ext4 without a journal (this VM's disk) the
// kernel skips every recently deleted inode when it allocates one (recently_deleted(): 5 s, or
// 5 min while the inode table block is dirty), so a sample right after the deletion of the
// previous sample's 7500 files pays 2-3 s of kernel CPU for it in file creation (whoever it is:
// nsinit, umoci); and without the sync our syncfs/fsync would flush what umoci left dirty.
// `--rm-each` deletes each sample's output right after it (the old way).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildUsrImage } from './lib/usr-image.mjs';

const REPO = join(fileURLToPath(import.meta.url), '../..');
const NSINIT = join(REPO, 'packages/cli/dist/nsinit');
const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1] || process.env.BENCH_RUNS || 5) || 5;
const rmEach = args.includes('--rm-each');
const base = args.includes('--base') ? args[args.indexOf('--base') + 1] : undefined;
if (process.getuid() !== 0) {
  console.error('bench/pull-run.mjs: run as root');
  process.exit(2);
}
for (const tool of ['umoci', 'skopeo', 'docker-registry']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status !== 0) {
    console.error(`bench/pull-run.mjs: ${tool} is not installed`);
    process.exit(2);
  }
}
const image = await import(pathToFileURL(join(REPO, 'packages/image/dist/index.js')).href);
const work = mkdtempSync('/var/tmp/tsc-bench-pull-run-');
if (!rmEach) {
  const fs = statfsSync(work);
  const need = (runs + 1) * (base ? 4 : 3) * 340e6;
  if (fs.bavail * fs.bsize < need + 2e9) {
    rmSync(work, { recursive: true, force: true });
    console.error(
      `bench/pull-run.mjs: keeping every output needs ~${Math.round(need / 1e6)} MB in /var/tmp; use --rm-each or fewer --runs`,
    );
    process.exit(2);
  }
}
let registry;
const cleanup = () => {
  registry?.kill('SIGTERM');
  spawnSync('sh', ['-c', `umount -R ${work}/r-*/layers/*/containers/*/rootfs 2>/dev/null`]);
  rmSync(work, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

const port = await new Promise((resolve) => {
  const s = net.createServer().listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});
writeFileSync(
  join(work, 'registry.yml'),
  `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${work}/registry\nhttp:\n  addr: 127.0.0.1:${port}\n`,
);
registry = spawn('docker-registry', ['serve', join(work, 'registry.yml')], { stdio: 'ignore' });
for (let i = 0; i < 100; i++) {
  const ok = await fetch(`http://127.0.0.1:${port}/v2/`).then(
    (r) => r.ok,
    () => false,
  );
  if (ok) break;
  await new Promise((r) => setTimeout(r, 100));
}

const info = await buildUsrImage(image, join(work, 'src'));
const ref = `127.0.0.1:${port}/bench/usr:1`;
const push = spawnSync(
  'skopeo',
  ['copy', '--dest-tls-verify=false', `oci:${join(work, 'src')}:bench`, `docker://${ref}`],
  {
    encoding: 'utf8',
  },
);
if (push.status !== 0) throw new Error(`skopeo push: ${push.stderr}`);

// CPU time (user + system, children included) through GNU time when it is installed: on a
// shared machine it varies less than wall time and tells work from waiting.
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
/** Runs a command: { ms: wall time, cpu: user + system ms (NaN without /usr/bin/time) }. */
function run(cmd, argv, env) {
  const cpuFile = join(work, 'cpu.txt');
  const t = process.hrtime.bigint();
  const r = spawnSync(TIME ?? cmd, TIME ? ['-f', '%U %S', '-o', cpuFile, cmd, ...argv] : argv, {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    ...(env ? { env: { ...process.env, ...env } } : {}),
  });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')}: ${r.stderr}`);
  const [u, sys] = TIME ? readFileSync(cpuFile, 'utf8').trim().split('\n').at(-1).split(' ').map(Number) : [];
  return { ms, cpu: TIME ? (u + sys) * 1000 : Number.NaN };
}
const add = (a, b) => ({ ms: a.ms + b.ms, cpu: a.cpu + b.cpu });

const subjects = {
  'nsinit pull': (dir) => run(NSINIT, ['--data-root', dir, 'pull', '-q', ref]),
  ...(base ? { 'nsinit pull (--base)': (dir) => run(base, ['--data-root', dir, 'pull', '-q', ref]) } : {}),
  // The same without unpacking layers while they download (unpack from the stored blobs only).
  'nsinit pull, no streaming': (dir) =>
    run(NSINIT, ['--data-root', dir, 'pull', '-q', ref], { NSINIT_PULL_STREAM: '0' }),
  'skopeo copy + umoci unpack': (dir) =>
    add(
      run('skopeo', ['copy', '--src-tls-verify=false', `docker://${ref}`, `oci:${dir}/oci:x`]),
      run('umoci', ['unpack', '--image', `${dir}/oci:x`, `${dir}/bundle`]),
    ),
};
const loadStart = loadavg()[0];
const samples = Object.fromEntries(Object.keys(subjects).map((k) => [k, []]));
const cpu = Object.fromEntries(Object.keys(subjects).map((k) => [k, []]));
for (let round = -1; round < runs; round++) {
  for (const [name, fn] of Object.entries(subjects)) {
    const dir = join(work, `r-${round}-${name.replace(/\W+/g, '-')}`);
    mkdirSync(dir);
    const { ms, cpu: c } = fn(dir);
    if (round >= 0) {
      // round -1 warms the page cache
      samples[name].push(ms);
      cpu[name].push(c);
    }
    if (rmEach)
      spawnSync('sh', ['-c', `umount -R ${dir}/layers/*/containers/*/rootfs 2>/dev/null; rm -rf ${dir}`]);
    // untimed: the next sample starts with nothing dirty in the page cache
    spawnSync('sync');
  }
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const ours = median(samples['nsinit pull']);
const peer = median(samples['skopeo copy + umoci unpack']);
// Per-round ratios too: rounds are interleaved, so a round's ratio sees the same machine load.
const ratios = samples['nsinit pull'].map((ms, i) => ms / samples['skopeo copy + umoci unpack'][i]);
console.log(
  `pull to a runnable rootfs: ${(info.gzBytes / 1e6).toFixed(1)} MB gzip in 3 layers, ${info.files} entries, ` +
    `${runs} interleaved rounds, load ${loadStart.toFixed(1)} -> ${loadavg()[0].toFixed(1)}, ` +
    `outputs ${rmEach ? 'deleted after each sample' : 'kept until the end'}`,
);
const peerCpu = median(cpu['skopeo copy + umoci unpack']);
console.log(`  ${''.padEnd(32)}   wall  (ratio)   cpu  (ratio)  [wall of each round]`);
for (const [name, a] of Object.entries(samples))
  console.log(
    `  ${name.padEnd(32)} ${median(a).toFixed(0).padStart(6)} ms (${(median(a) / peer).toFixed(2)}) ${median(cpu[name]).toFixed(0).padStart(6)} ms (${(median(cpu[name]) / peerCpu).toFixed(2)})  [${a.map((x) => x.toFixed(0)).join(' ')}]`,
  );
console.log(`  ratio nsinit / (skopeo + umoci)  ${(ours / peer).toFixed(2)}   (target <= 0.50)`);
console.log(`  median of per-round ratios       ${median(ratios).toFixed(2)}`);
mkdirSync(join(REPO, 'bench/results'), { recursive: true });
writeFileSync(
  join(REPO, 'bench/results/pull-run.json'),
  JSON.stringify(
    {
      date: new Date().toISOString(),
      runs,
      rmEach,
      load: [loadStart, loadavg()[0]],
      info,
      samples,
      ratio: ours / peer,
    },
    null,
    2,
  ),
);
cleanup();
