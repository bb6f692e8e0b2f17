#!/usr/bin/env node
// Build vm/build/initramfs.cpio.gz: a complete guest userland in one initramfs for booting
// Debian's 6.1 kernel under qemu with cgroup v2 only (see vm/README.md).
//
//   node vm/build-initramfs.mjs [--kver 6.1.0-NN-amd64] [--modbase DIR] [--out FILE]
//
// --modbase: the directory holding lib/modules/<kver> (default /; run.sh passes the dir it
// extracted the kernel package into when no 6.1 kernel is installed on the host).
//
// Run after `pnpm -r build` (it copies packages/*/dist). Contents:
//   /init                    vm/init.sh
//   /bin/busybox + applets   busybox-static
//   /usr/bin/node + the libraries ldd lists for node and every native addon staged (koffi.node),
//                            with the dynamic loader, at their host paths
//   /lib/modules/<kver>/...  overlay, veth, loop, bfq, rdma_rxe (+ their modinfo dependencies),
//                            for insmod
//   /usr/bin/rdma            iproute2's rdma tool (+ its libraries)
//   /repo/packages/<p>/      package.json + dist of every workspace package
//   /repo/node_modules/.pnpm the run-time dependency closure, same relative layout and symlinks
//   /repo/vm/guest-*.mjs     the tests (guest-vitest.mjs and vitest itself only matter with --vitest)
//   /srv/rootfs              a busybox container rootfs (scripts/build-rootfs.sh)
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** VM knobs (environment variables of run.sh and the kernel command line, not turbo task inputs). */
const env = (name) => process.env[name];

const VM = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(VM, '..');
const args = process.argv.slice(2);
function opt(name, dflt) {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
}
const OUT = path.resolve(opt('--out', path.join(VM, 'build/initramfs.cpio.gz')));
const STAGE = `${OUT.replace(/\.cpio(\.gz)?$/, '')}-root`; // vm/build/initramfs-root
const MODBASE = path.resolve(opt('--modbase', '/')); // MODBASE/lib/modules/<kver>/kernel/...
const MODROOT = path.join(MODBASE, 'lib/modules');
// bfq: io.bfq.weight appears in every cgroup (the io.weight check needs both files); rdma_rxe
// (soft RoCE, with ib_core and ib_uverbs): an RDMA device for the rdma check. rxe asks the
// crypto API for "crc32", which the kernel would modprobe (there is no modprobe here, and
// modinfo lists no dependency): without crc32_generic `rdma link add` fails with ENOENT.
// virtio_pci + virtio_blk: the scratch disk run.sh attaches (throttled by qemu), for BFQ.
const KMODS = ['overlay', 'veth', 'loop', 'bfq', 'crc32_generic', 'rdma_rxe', 'virtio_pci', 'virtio_blk'];
// Host programs the checks use besides busybox (their libraries come along, from ldd):
// iproute2's rdma makes the rxe device (RDMA_NLDEV_CMD_NEWLINK).
const HOST_BINS = ['/usr/bin/rdma'];
// --vitest PKG[,PKG]: also vitest and those packages' src/, test/ and configs, to run the project's
// own test files in the guest (run.sh does this for a TEST-SELECTION starting with "vitest").
const VITEST_PKGS = (opt('--vitest', '') ?? '').split(',').filter(Boolean);
// The packages the guest needs; every other built workspace package comes along too (cheap).
const REQUIRED = ['syscall', 'executor', 'cgroups', 'libcontainer', 'cli'];
const PACKAGES = [
  ...new Set([
    ...REQUIRED,
    ...fs
      .readdirSync(path.join(REPO, 'packages'))
      .filter((p) => fs.existsSync(path.join(REPO, 'packages', p, 'dist'))),
  ]),
];
const t0 = Date.now();

function sh(cmd, argv, o = {}) {
  return execFileSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], ...o });
}
function mkdirp(d) {
  fs.mkdirSync(d, { recursive: true });
}
/** Copy a host file to the same path in the stage, as a regular file (symlinks followed). */
function copyFile(src, dest = src) {
  const to = path.join(STAGE, dest);
  mkdirp(path.dirname(to));
  fs.copyFileSync(fs.realpathSync(src), to);
  fs.chmodSync(to, fs.statSync(src).mode & 0o7777);
}

// ---- kernel version ----
let kver = opt('--kver');
if (!kver) {
  const cands = fs.existsSync(MODROOT) ? fs.readdirSync(MODROOT).filter((v) => v.startsWith('6.1.')) : [];
  if (cands.length === 0)
    throw new Error(`no 6.1 kernel modules under ${MODROOT}: install linux-image-amd64`);
  kver = cands.sort().at(-1);
}

// ---- preflight ----
for (const p of REQUIRED) {
  if (!fs.existsSync(path.join(REPO, 'packages', p, 'dist'))) {
    throw new Error(`packages/${p}/dist is missing: run \`pnpm -r build\` first`);
  }
}
if (!fs.existsSync(path.join(REPO, 'packages/executor/dist/nsinit-executor'))) {
  throw new Error('packages/executor/dist/nsinit-executor is missing: run `pnpm -r build` first');
}

fs.rmSync(STAGE, { recursive: true, force: true });
mkdirp(STAGE);
for (const d of [
  'dev',
  'proc',
  'sys',
  'tmp',
  'run',
  'mnt',
  'root',
  'etc',
  'srv',
  'usr/bin',
  'sbin',
  'lib64',
]) {
  mkdirp(path.join(STAGE, d));
}
fs.chmodSync(path.join(STAGE, 'tmp'), 0o1777);
// A console for the kernel to open as init's stdio (init.sh falls back to devtmpfs without it).
try {
  execFileSync('mknod', ['-m', '600', path.join(STAGE, 'dev/console'), 'c', '5', '1'], { stdio: 'ignore' });
} catch {
  // no mknod here (unprivileged container): init.sh reopens /dev/console after mounting devtmpfs
}

// ---- busybox ----
const busybox = ['/bin/busybox', '/usr/bin/busybox'].find((p) => fs.existsSync(p));
if (!busybox || !sh('file', ['-L', busybox]).includes('statically linked')) {
  throw new Error('need a static /bin/busybox: apt-get install busybox-static');
}
copyFile(busybox, '/bin/busybox');
for (const applet of sh(busybox, ['--list']).split('\n').filter(Boolean)) {
  if (applet !== 'busybox') fs.symlinkSync('busybox', path.join(STAGE, 'bin', applet));
}

// ---- node and its libraries ----
const nodeBin = fs.realpathSync(sh('sh', ['-c', 'command -v node']).trim());
copyFile(nodeBin, '/usr/bin/node');
// Their libraries are copied at the end, from ldd of node and of every native addon staged.
function copyLibs(elves) {
  const libs = new Set();
  for (const elf of elves) {
    for (const line of sh('ldd', [elf]).split('\n')) {
      if (/not found/.test(line)) console.warn(`build-initramfs: warning: ${elf}: ${line.trim()}`);
      const m = line.match(/(?:=>\s*)?(\/\S+)\s+\(0x/);
      if (m) libs.add(m[1]);
    }
  }
  for (const lib of libs) copyFile(lib); // same path as on the host, incl. /lib64/ld-linux-x86-64.so.2
  return [...libs];
}

// ---- kernel modules (dependencies first) ----
const modInfo = (field, m) =>
  sh('modinfo', ['-b', MODBASE, '-k', kver, '-F', field, m], { stdio: ['ignore', 'pipe', 'ignore'] }).trim();
const modOrder = [];
function addModule(m, seen = new Set()) {
  if (seen.has(m) || modOrder.some((x) => x.name === m)) return;
  seen.add(m);
  let file;
  try {
    file = modInfo('filename', m);
  } catch {
    // no modules.dep (a kernel package unpacked without depmod): look for the file itself
    const kdir = path.join(MODROOT, kver, 'kernel');
    file = sh('find', [kdir, '-name', `${m}.ko`]).split('\n')[0] ?? '';
    if (!file) {
      const builtin = fs.readFileSync(path.join(MODROOT, kver, 'modules.builtin'), 'utf8');
      if (new RegExp(`/${m}\\.ko$`, 'm').test(builtin)) return;
      throw new Error(`kernel module ${m} not found under ${kdir}`);
    }
  }
  if (!file.endsWith('.ko')) return; // (builtin)
  for (const d of modInfo('depends', file).split(',').filter(Boolean)) addModule(d, seen);
  const relPath = file.slice(file.indexOf(`/lib/modules/${kver}/`));
  copyFile(file, relPath);
  modOrder.push({ name: m, path: relPath });
}
for (const m of KMODS) addModule(m);
fs.writeFileSync(path.join(STAGE, 'etc/modules.order'), modOrder.map((m) => `${m.path}\n`).join(''));

// ---- the repo: workspace packages and the run-time node_modules closure ----
// Node resolves a bare import from the real path of the importing file, walking up through
// node_modules dirs. pnpm's layout is symlinks into node_modules/.pnpm/<key>/node_modules/<name>,
// whose siblings are the package's own dependencies. Mirror exactly that: the same relative paths
// under /repo, the same relative symlinks, and real files for the packages themselves.
const GUEST_REPO = '/repo';
const stageRepo = path.join(STAGE, GUEST_REPO);
const copiedPkgs = new Set();

function rel(p) {
  const r = path.relative(REPO, p);
  if (r.startsWith('..')) throw new Error(`outside the repo: ${p}`);
  return r;
}
/** Recreate the symlink chain from `p` (inside the repo) in the stage; returns the real path. */
function mirrorLink(p) {
  let cur = p;
  for (let i = 0; i < 40; i++) {
    const st = fs.lstatSync(cur);
    if (!st.isSymbolicLink()) return cur;
    const target = fs.readlinkSync(cur);
    const dest = path.join(stageRepo, rel(cur));
    mkdirp(path.dirname(dest));
    if (!fs.existsSync(dest) && !isLink(dest)) fs.symlinkSync(target, dest);
    cur = path.resolve(path.dirname(cur), target);
  }
  throw new Error(`symlink loop at ${p}`);
}
function isLink(p) {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
function copyTree(src, dest, workspace) {
  mkdirp(dest);
  for (const ent of fs.readdirSync(src, { withFileTypes: true })) {
    if (ent.name === 'node_modules') continue;
    // third-party packages: no source maps, type declarations or docs at run time
    if (!workspace && /\.(map|d\.[cm]?ts|md)$/.test(ent.name)) continue;
    const s = path.join(src, ent.name);
    const d = path.join(dest, ent.name);
    if (ent.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(s), d);
    else if (ent.isDirectory()) copyTree(s, d, workspace);
    else if (ent.isFile()) {
      fs.copyFileSync(s, d);
      fs.chmodSync(d, fs.statSync(s).mode & 0o7777);
    }
  }
}
/** Find `dep` as Node would from package dir `from` (walking up node_modules dirs). */
function findDep(from, dep) {
  for (let dir = from; dir.startsWith(REPO); dir = path.dirname(dir)) {
    const c = path.join(dir, 'node_modules', dep);
    if (fs.existsSync(c)) return c;
    if (dir === REPO) break;
  }
  return undefined;
}
function addPackage(real) {
  if (copiedPkgs.has(real)) return;
  copiedPkgs.add(real);
  const pj = JSON.parse(fs.readFileSync(path.join(real, 'package.json'), 'utf8'));
  const workspace = rel(real).startsWith('packages/');
  const dest = path.join(stageRepo, rel(real));
  if (workspace) {
    if (!fs.existsSync(path.join(real, 'dist'))) {
      throw new Error(
        `${rel(real)}/dist is missing (a dependency of the guest): run \`pnpm -r build\` first`,
      );
    }
    mkdirp(dest);
    fs.copyFileSync(path.join(real, 'package.json'), path.join(dest, 'package.json'));
    copyTree(path.join(real, 'dist'), path.join(dest, 'dist'), true);
  } else {
    copyTree(real, dest, false);
  }
  // Peer dependencies too, where pnpm linked them (vitest's packages import vite that way).
  const deps = {
    ...(pj.peerDependencies ?? {}),
    ...(pj.dependencies ?? {}),
    ...(pj.optionalDependencies ?? {}),
  };
  for (const dep of Object.keys(deps)) {
    const found = findDep(real, dep);
    if (!found) {
      const optional =
        dep in (pj.optionalDependencies ?? {}) ||
        (dep in (pj.peerDependencies ?? {}) && !(dep in (pj.dependencies ?? {})));
      if (!optional) throw new Error(`${pj.name}: dependency ${dep} not installed`);
      continue; // an optional dependency for another platform, or a peer nobody installed
    }
    addPackage(mirrorLink(found));
  }
}
for (const p of PACKAGES) addPackage(path.join(REPO, 'packages', p));
fs.copyFileSync(path.join(REPO, 'package.json'), path.join(stageRepo, 'package.json'));
if (VITEST_PKGS.length) {
  addPackage(mirrorLink(path.join(REPO, 'node_modules/vitest')));
  for (const f of ['tsconfig.base.json', 'scripts/build-rootfs.sh']) {
    mkdirp(path.dirname(path.join(stageRepo, f)));
    fs.copyFileSync(path.join(REPO, f), path.join(stageRepo, f));
  }
  for (const p of VITEST_PKGS) {
    const src = path.join(REPO, 'packages', p);
    if (!fs.existsSync(path.join(src, 'test')))
      throw new Error(`--vitest: packages/${p}/test does not exist`);
    for (const ent of fs.readdirSync(src, { withFileTypes: true })) {
      if (ent.name === 'node_modules' || ent.name === 'dist' || ent.name === 'package.json') continue;
      if (ent.isDirectory())
        copyTree(path.join(src, ent.name), path.join(stageRepo, 'packages', p, ent.name), true);
      else if (ent.isFile())
        fs.copyFileSync(path.join(src, ent.name), path.join(stageRepo, 'packages', p, ent.name));
    }
    // the package's own node_modules links (its workspace deps are in the stage already)
    for (const name of fs.readdirSync(path.join(src, 'node_modules'))) {
      if (name.startsWith('.')) continue;
      const scoped = name.startsWith('@')
        ? fs.readdirSync(path.join(src, 'node_modules', name)).map((n) => `${name}/${n}`)
        : [name];
      for (const dep of scoped) {
        const link = path.join(src, 'node_modules', dep);
        if (isLink(link)) addPackage(mirrorLink(link));
      }
    }
  }
}
mkdirp(path.join(stageRepo, 'vm'));
for (const f of ['guest-tests.mjs', 'guest-vitest.mjs'])
  fs.copyFileSync(path.join(VM, f), path.join(stageRepo, 'vm', f));

// ---- shared libraries: node's and every native addon's (koffi.node, rolldown's binding, ...) ----
const addons = sh('find', [stageRepo, '-name', '*.node', '-type', 'f'])
  .split('\n')
  .filter((f) => f && !/musl/.test(f)) // koffi ships a musl build too; it is never loaded here
  .map((f) => path.join(REPO, path.relative(stageRepo, f)));
for (const bin of HOST_BINS) {
  if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: apt-get install iproute2`);
  copyFile(bin);
}
const libs = copyLibs([nodeBin, ...addons, ...HOST_BINS]);

// ---- /init and the container rootfs ----
fs.copyFileSync(path.join(VM, 'init.sh'), path.join(STAGE, 'init'));
fs.chmodSync(path.join(STAGE, 'init'), 0o755);
sh('sh', [path.join(REPO, 'scripts/build-rootfs.sh'), path.join(STAGE, 'srv/rootfs')]);
fs.writeFileSync(path.join(STAGE, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
fs.writeFileSync(path.join(STAGE, 'etc/group'), 'root:x:0:\n');
fs.writeFileSync(path.join(STAGE, 'etc/tsc-vm-kver'), `${kver}\n`);

// ---- the archive ----
mkdirp(path.dirname(OUT));
// gzip -1: -6 makes a 10% smaller file for twice the time. TSC_VM_GZIP_LEVEL=0 writes the cpio
// uncompressed (the kernel detects the format, whatever the name): ~130 MiB, but it saves the
// guest's gunzip under TCG (~2-3 s of boot).
const level = env('TSC_VM_GZIP_LEVEL') ?? '1';
if (!/^[0-9]$/.test(level)) throw new Error(`TSC_VM_GZIP_LEVEL: 0..9, got ${level}`);
const compress = level === '0' ? 'cat' : `gzip -${level}`;
execFileSync(
  'bash',
  [
    '-o',
    'pipefail',
    '-c',
    `cd "$1" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | ${compress} > "$2.tmp" && mv "$2.tmp" "$2"`,
    'sh',
    STAGE,
    OUT,
  ],
  { stdio: 'inherit' },
);
const size = fs.statSync(OUT).size;
const stageSize = sh('du', ['-sm', STAGE]).split('\t')[0];
console.log(
  `build-initramfs: ${path.relative(process.cwd(), OUT)} (${(size / 1048576).toFixed(1)} MiB${level === '0' ? '' : ' gz'}, ${stageSize} MiB unpacked; kernel ${kver}; modules ${modOrder.map((m) => m.name).join(',') || 'none'}; ${copiedPkgs.size} packages, ${addons.length} addons, ${libs.length} libraries) in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
);
