#!/usr/bin/env node
// @ts-check
/**
 * Container start-up benchmark: one busybox bundle whose process is `true`,
 * started, waited for and deleted N times through
 *   (a) @tsc/libcontainer from this (warm) Node process: Container.run + exited + delete,
 *   (b) `nsinit run`   (a new Node process each time),
 *   (c) `crun run`,
 *   (d) `runc run`,
 *   (e) `node -e 0`    (bare Node start, to compare (b) with `node -e 0` + `crun run`),
 *   (f) `/bin/true`    (not a runtime: the cost of spawnSync itself, part of every (b)-(e) sample).
 * Rounds are interleaved: each round runs a, b, c, d, e, f once, so machine noise hits all alike.
 *
 * Usage: node container-start.mjs [--runs N] [--warmup N] [--keep-hugetlb] [--keep-env]
 *   --runs N        measured rounds (default: $BENCH_RUNS or 30)
 *   --warmup N      unmeasured rounds first (default 3)
 *   --keep-hugetlb  leave a v1 hugetlb hierarchy mounted if this script mounted it
 *   --keep-env      keep NODE_EXTRA_CA_CERTS for the subjects (by default it is unset: see childEnv)
 * Needs root. Writes results/container-start.json next to this file.
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Container, defaultSpec } from '@tsc/libcontainer';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..');
const buildRootfs = join(repo, 'scripts', 'build-rootfs.sh');
const cliDir = join(here, 'node_modules', '@tsc', 'cli');
/** The `nsinit` command exactly as @tsc/cli ships it (its package.json "bin"). */
const nsinitBin = (() => {
  try {
    const pkg = JSON.parse(readFileSync(join(cliDir, 'package.json'), 'utf8'));
    const bin = typeof pkg.bin === 'string' ? pkg.bin : pkg.bin?.nsinit;
    return typeof bin === 'string' ? join(cliDir, bin) : undefined;
  } catch {
    return undefined;
  }
})();
const resultsFile = join(here, 'results', 'container-start.json');

/** The ociVersion written to config.json: crun 1.8 rejects "1.2.0" ("unknown version specified"). */
const BENCH_OCI_VERSION = '1.0.2';

// ---------------------------------------------------------------------------------------------
// Arguments

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string' },
    warmup: { type: 'string', default: '3' },
    'keep-hugetlb': { type: 'boolean', default: false },
    'keep-env': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (flags.help) {
  console.log(
    'usage: node container-start.mjs [--runs N] [--warmup N] [--keep-hugetlb] [--keep-env]  (env BENCH_RUNS)',
  );
  process.exit(0);
}
const RUNS = positiveInt('--runs', flags.runs ?? process.env['BENCH_RUNS'] ?? '30', 1);
const WARMUP = positiveInt('--warmup', flags.warmup ?? '3', 0);

/**
 * @param {string} name
 * @param {string} s
 * @param {number} min
 */
function positiveInt(name, s, min) {
  const n = Number(s);
  if (!Number.isInteger(n) || n < min) fail(`${name}: expected an integer >= ${min}, got "${s}"`);
  return n;
}

/** @param {string} msg @returns {never} */
function fail(msg) {
  throw new BenchError(msg);
}

class BenchError extends Error {}

// ---------------------------------------------------------------------------------------------
// Helpers

/** @param {string} cmd */
function which(cmd) {
  for (const dir of (process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    const p = join(dir, cmd);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Run a command to completion, capturing output; throws on a non-zero exit. */
function sh(/** @type {string} */ file, /** @type {string[]} */ args) {
  const r = spawnSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) fail(`${file} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) fail(`${file} ${args.join(' ')}: exit ${r.status ?? r.signal}\n${r.stderr}`);
  return r.stdout;
}

/** @param {number[]} xs */
function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? /** @type {number} */ (s[mid]) : ((s[mid - 1] ?? 0) + (s[mid] ?? 0)) / 2;
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  const sd = Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, s.length - 1));
  return { median, min: s[0] ?? 0, max: s[s.length - 1] ?? 0, mean, stddev: sd };
}

const ms = (/** @type {bigint} */ ns) => Number(ns) / 1e6;
const f1 = (/** @type {number} */ x) => x.toFixed(1);
const f2 = (/** @type {number} */ x) => x.toFixed(2);

// ---------------------------------------------------------------------------------------------
// cgroups: crun 1.8 refuses a hybrid host whose cgroup2 mount still holds a controller.

const UNIFIED = '/sys/fs/cgroup/unified';
const HUGETLB = '/sys/fs/cgroup/hugetlb';

/** @type {{ mounted: boolean, createdDir: boolean, childrenBefore: Set<string> }} */
const hugetlbState = { mounted: false, createdDir: false, childrenBefore: new Set() };

/** Controllers the cgroup2 mount of a hybrid host holds ([] on a pure v1 or v2 host). */
function unifiedControllers() {
  const mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
  const hybrid = mountinfo.split('\n').some((l) => {
    const [left, right] = l.split(' - ');
    return left?.split(' ')[4] === UNIFIED && right?.startsWith('cgroup2 ');
  });
  if (!hybrid) return [];
  return readFileSync(join(UNIFIED, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean);
}

function hugetlbMountedV1() {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => {
      const [, right] = l.split(' - ');
      return right?.startsWith('cgroup ') && (right.split(' ')[2] ?? '').split(',').includes('hugetlb');
    });
}

/** @param {string[]} notes */
function prepareCgroups(notes) {
  const held = unifiedControllers();
  if (held.length === 0) {
    if (existsSync(join(UNIFIED, 'cgroup.controllers')) && hugetlbMountedV1()) {
      notes.push(
        `hybrid cgroups; hugetlb was already mounted as a v1 hierarchy (not by this script), so crun runs as is.`,
      );
    }
    return;
  }
  const others = held.filter((c) => c !== 'hugetlb');
  if (others.length > 0) {
    fail(
      `the cgroup2 mount at ${UNIFIED} holds ${held.join(', ')}: crun 1.8 refuses such a hybrid host, ` +
        'and this script only moves hugetlb to a v1 hierarchy',
    );
  }
  if (hugetlbMountedV1()) return;
  if (!existsSync(HUGETLB)) {
    mkdirSync(HUGETLB);
    hugetlbState.createdDir = true;
  }
  const r = spawnSync('mount', ['-t', 'cgroup', '-o', 'hugetlb', 'cgroup', HUGETLB], { encoding: 'utf8' });
  if (r.status !== 0) {
    if (hugetlbState.createdDir) rmdirSync(HUGETLB);
    fail(
      `crun 1.8 needs cgroup2 at ${UNIFIED} to hold no controller, but mounting a v1 hugetlb hierarchy ` +
        `at ${HUGETLB} failed (is hugetlb enabled in a cgroup.subtree_control?): ${r.stderr.trim()}`,
    );
  }
  hugetlbState.mounted = true;
  hugetlbState.childrenBefore = new Set(childDirs(HUGETLB));
  const msg =
    `NOTE: mounted a cgroup v1 hugetlb hierarchy at ${HUGETLB} (cgroup2 at ${UNIFIED} held hugetlb, ` +
    'which crun 1.8 refuses on a hybrid host); all runtimes now also use that hierarchy' +
    (flags['keep-hugetlb'] ? '; it stays mounted (--keep-hugetlb).' : '; it is unmounted at the end.');
  notes.push(msg);
  console.log(msg);
}

/** @param {string} dir */
function childDirs(dir) {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);
}

/** Undo prepareCgroups (sync: also used from a signal handler). */
function restoreCgroups() {
  if (!hugetlbState.mounted || flags['keep-hugetlb']) return;
  hugetlbState.mounted = false;
  // Remove the empty parent cgroups the runtimes left (nsinit keeps /nsinit, like runc's parents).
  for (const name of childDirs(HUGETLB)) {
    if (hugetlbState.childrenBefore.has(name)) continue;
    try {
      rmdirSync(join(HUGETLB, name));
    } catch {
      // in use by someone else
    }
  }
  const r = spawnSync('umount', [HUGETLB], { encoding: 'utf8' });
  if (r.status !== 0) {
    console.error(`warning: umount ${HUGETLB}: ${r.stderr.trim()}`);
    return;
  }
  if (hugetlbState.createdDir) rmdirSync(HUGETLB);
  const back = unifiedControllers().includes('hugetlb');
  console.log(
    back
      ? `NOTE: unmounted ${HUGETLB}; hugetlb is back in cgroup2.`
      : `NOTE: unmounted ${HUGETLB}, but the kernel keeps the hugetlb v1 hierarchy (it still has child ` +
          'cgroups, or a mount in another mount namespace), so cgroup2 does not hold hugetlb for now.',
  );
}

// ---------------------------------------------------------------------------------------------
// The benchmark

/**
 * @typedef {{ name: string, label: string, run: (id: string) => Promise<void> | void,
 *   cleanup?: (id: string) => Promise<void> | void, samples: number[] }} Subject
 */

/** @param {string} what @param {import('node:child_process').SpawnSyncReturns<Buffer>} r */
function checkChild(what, r) {
  if (r.error) fail(`${what}: ${r.error.message}`);
  if (r.status !== 0) {
    const err = r.stderr?.toString().trim();
    fail(`${what}: exit ${r.status ?? `signal ${r.signal}`}${err ? `\n${err}` : ''}`);
  }
}

/**
 * A child process timed as wall time around spawnSync (its stderr piped for error messages).
 * @param {string} file @param {(id: string) => string[]} args
 */
function spawnRunner(file, args) {
  return (/** @type {string} */ id) => {
    const a = args(id);
    const r = spawnSync(file, a, { cwd: tmp, stdio: ['ignore', 'ignore', 'pipe'], env: childEnv });
    checkChild(`${file} ${a.join(' ')}`, r);
  };
}

/**
 * The environment of every spawned subject. NODE_EXTRA_CA_CERTS is left out unless
 * --keep-env: where it is set (this machine sets it), every Node process parses the whole CA
 * bundle at start (~80 ms here), which would inflate `node -e 0` and `nsinit run` alike and
 * flatter the ratio of the two. Neither runtime needs it.
 */
const childEnv = { ...process.env };

const startedAt = new Date();
const loadavgAtStart = loadavg();
const notes = /** @type {string[]} */ ([]);
/** @type {string} */
let tmp = '';
let cleanedUp = false;

function cleanup() {
  if (cleanedUp) return;
  cleanedUp = true;
  if (tmp) rmSync(tmp, { recursive: true, force: true });
  restoreCgroups();
}

// A signal stops the benchmark after the run in progress (whose container is then deleted as usual);
// a second one exits at once, leaving whatever that run had created.
let interrupted = '';
for (const sig of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.on(sig, () => {
    if (interrupted) {
      cleanup();
      process.exit(130);
    }
    interrupted = sig;
    console.error(`\n${sig}: stopping after the current run (again to quit at once)`);
  });
}

async function main() {
  if (process.geteuid?.() !== 0) fail('needs root (namespaces, mounts, cgroups)');
  const crun = which('crun') ?? fail('crun not found on PATH (apt-get install crun)');
  const runc = which('runc') ?? fail('runc not found on PATH (apt-get install runc)');
  if (!nsinitBin) fail(`${cliDir}/package.json names no "nsinit" bin: run pnpm install`);
  if (!existsSync(nsinitBin)) fail(`${nsinitBin} is missing: build first (pnpm -r run build)`);
  const nsinit = nsinitBin;
  const node = process.execPath;
  const trueBin = which('true') ?? fail('true not found on PATH');

  tmp = mkdtempSync(join(tmpdir(), 'tsc-bench-'));
  const bundle = join(tmp, 'bundle');
  mkdirSync(bundle);
  sh(buildRootfs, [join(bundle, 'rootfs')]);
  const spec = defaultSpec({ args: ['true'] });
  if (!spec.process) fail('defaultSpec() has no process');
  spec.process.terminal = false;
  spec.ociVersion = BENCH_OCI_VERSION;
  writeFileSync(join(bundle, 'config.json'), `${JSON.stringify(spec, null, 2)}\n`);
  notes.push(
    `config.json: defaultSpec({ args: ['true'] }), process.terminal = false, ociVersion "${BENCH_OCI_VERSION}" ` +
      '(crun 1.8 rejects "1.2.0"); default namespaces, mounts, masked/readonly paths, caps and rlimits.',
  );

  if (process.env.NODE_EXTRA_CA_CERTS !== undefined) {
    if (flags['keep-env']) {
      notes.push('NODE_EXTRA_CA_CERTS is set and kept (--keep-env): every Node start parses those CAs.');
    } else {
      delete childEnv.NODE_EXTRA_CA_CERTS;
      notes.push(
        'NODE_EXTRA_CA_CERTS is set here; it is unset for the subjects (Node would parse those CAs at every start, in `node -e 0` and `nsinit run` alike); --keep-env keeps it.',
      );
    }
  }

  const roots = Object.fromEntries(
    ['lib', 'nsinit', 'crun', 'runc'].map((n) => {
      const d = join(tmp, 'state', n);
      mkdirSync(d, { recursive: true });
      return [n, d];
    }),
  );

  prepareCgroups(notes);

  /** @type {Subject[]} */
  const subjects = [
    {
      name: 'library',
      label: 'library (warm)',
      async run(id) {
        const { container, exited } = await Container.run({
          id,
          bundle,
          root: roots['lib'],
          stdio: ['ignore', 'ignore', 'ignore'],
        });
        const info = await exited;
        await container.delete();
        if (info.status !== 0) fail(`library: container ${id} exited ${info.status}`);
      },
      async cleanup(id) {
        try {
          await Container.load(id, roots['lib']).delete({ force: true });
        } catch {
          // never created, or gone
        }
      },
      samples: [],
    },
    {
      name: 'nsinit',
      label: 'nsinit run',
      run: spawnRunner(nsinit, (id) => ['--root', roots['nsinit'] ?? '', 'run', '-b', bundle, id]),
      cleanup: (id) => void spawnSync(nsinit, ['--root', roots['nsinit'] ?? '', 'delete', '-f', id]),
      samples: [],
    },
    {
      name: 'crun',
      label: 'crun run',
      run: spawnRunner(crun, (id) => ['--root', roots['crun'] ?? '', 'run', '-b', bundle, id]),
      cleanup: (id) => void spawnSync(crun, ['--root', roots['crun'] ?? '', 'delete', '-f', id]),
      samples: [],
    },
    {
      name: 'runc',
      label: 'runc run',
      run: spawnRunner(runc, (id) => ['--root', roots['runc'] ?? '', 'run', '-b', bundle, id]),
      cleanup: (id) => void spawnSync(runc, ['--root', roots['runc'] ?? '', 'delete', '-f', id]),
      samples: [],
    },
    {
      name: 'node',
      label: 'node -e 0',
      run: spawnRunner(node, () => ['-e', '0']),
      samples: [],
    },
    {
      // Not a runtime: what spawnSync of a trivial program costs here, included in (b)-(e).
      name: 'spawn',
      label: 'spawn /bin/true',
      run: spawnRunner(trueBin, () => []),
      samples: [],
    },
  ];

  const git = spawnSync('git', ['-C', repo, 'describe', '--always', '--dirty'], { encoding: 'utf8' });
  const versions = {
    tsc: git.status === 0 ? git.stdout.trim() : 'unknown',
    node: process.version,
    crun: sh(crun, ['--version']).split('\n')[0] ?? '',
    runc: sh(runc, ['--version']).split('\n')[0] ?? '',
    nsinit: `${sh(nsinit, ['--version']).trim()} (${nsinit})`,
  };
  console.log(
    `container-start: ${RUNS} interleaved rounds (+${WARMUP} warm-up) of library, nsinit run, crun run, ` +
      `runc run, node -e 0, spawn /bin/true\n  tsc ${versions.tsc}; ${versions.crun}; ${versions.runc}; nsinit ${versions.nsinit}; node ${versions.node}; ` +
      `${cpus().length} CPUs; kernel ${release()}; load ${loadavgAtStart.map(f2).join(' ')}`,
  );

  // Each runtime must really work before anything is measured (crun on a hybrid host in particular).
  let seq = 0;
  const tag = `${process.pid}`;
  /** @param {Subject} s @param {string} kind */
  async function once(s, kind) {
    if (interrupted) fail(`interrupted (${interrupted})`);
    const id = `bench-${s.name}-${tag}-${kind}${++seq}`;
    const t0 = process.hrtime.bigint();
    try {
      await s.run(id);
    } catch (e) {
      await s.cleanup?.(id);
      throw e;
    }
    return ms(process.hrtime.bigint() - t0);
  }
  for (const s of subjects) {
    try {
      await once(s, 'check');
    } catch (e) {
      fail(`${s.label} does not work on this machine: ${e instanceof Error ? e.message : e}`);
    }
  }
  console.log('  smoke test: every runtime ran `true` and exited 0');

  for (let round = 0; round < WARMUP + RUNS; round++) {
    const measured = round >= WARMUP;
    for (const s of subjects) {
      const t = await once(s, measured ? 'r' : 'w');
      if (measured) s.samples.push(t);
    }
    if (measured && process.stdout.isTTY) process.stdout.write(`\r  round ${round - WARMUP + 1}/${RUNS}`);
  }
  if (process.stdout.isTTY) process.stdout.write('\n');

  // Every run deleted its container: the state roots must be empty.
  for (const [n, d] of Object.entries(roots)) {
    const left = readdirSync(d);
    if (left.length > 0) fail(`${n}: containers left in ${d}: ${left.join(', ')}`);
  }

  const st = Object.fromEntries(subjects.map((s) => [s.name, stats(s.samples)]));
  const med = (/** @type {string} */ n) => st[n]?.median ?? Number.NaN;
  const ratios = {
    libraryOverCrun: { value: med('library') / med('crun'), target: 1.0 },
    nsinitOverNodePlusCrun: { value: med('nsinit') / (med('node') + med('crun')), target: 1.5 },
    runcOverCrun: { value: med('runc') / med('crun') },
  };

  const w = Math.max(...subjects.map((s) => s.label.length));
  console.log(
    `\n  ${'name'.padEnd(w)}  ${'median ms'.padStart(9)}  ${'min'.padStart(7)}  ${'max'.padStart(7)}`,
  );
  for (const s of subjects) {
    const x = st[s.name];
    if (!x) continue;
    console.log(
      `  ${s.label.padEnd(w)}  ${f1(x.median).padStart(9)}  ${f1(x.min).padStart(7)}  ${f1(x.max).padStart(7)}`,
    );
  }
  const mark = (/** @type {{ value: number, target?: number }} */ r) =>
    r.target === undefined
      ? '(reference)'
      : `target <= ${r.target.toFixed(1)}: ${r.value <= r.target ? 'met' : 'MISSED'}`;
  console.log('');
  for (const [label, r] of /** @type {const} */ ([
    ['library / crun', ratios.libraryOverCrun],
    ['nsinit run / (node -e 0 + crun)', ratios.nsinitOverNodePlusCrun],
    ['runc / crun', ratios.runcOverCrun],
  ])) {
    console.log(`  ${label.padEnd(31)}  ${f2(r.value).padStart(5)}  ${mark(r)}`);
  }
  for (const n of notes) console.log(`  note: ${n}`);

  mkdirSync(dirname(resultsFile), { recursive: true });
  const out = {
    benchmark: 'container-start',
    date: startedAt.toISOString(),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? '',
      kernel: release(),
      loadavgAtStart,
      loadavgAtEnd: loadavg(),
    },
    versions,
    runs: RUNS,
    warmup: WARMUP,
    notes,
    unit: 'ms',
    results: Object.fromEntries(
      subjects.map((s) => [s.name, { label: s.label, ...st[s.name], samples: s.samples }]),
    ),
    ratios,
  };
  writeFileSync(resultsFile, `${JSON.stringify(out, null, 2)}\n`);
  console.log(`  load at end ${loadavg().map(f2).join(' ')}; results: ${resultsFile}`);
}

try {
  await main();
} catch (e) {
  process.exitCode = interrupted ? 130 : 1;
  console.error(`container-start: ${e instanceof BenchError ? e.message : e instanceof Error ? e.stack : e}`);
} finally {
  cleanup();
}
