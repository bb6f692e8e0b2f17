// The legacy layout (v1 only, no cgroup2 anywhere, so no cgroup.kill) on the real kernel: a child
// in a private mount namespace mounts a tmpfs with this host's v1 hierarchies and drives the built
// package (dist/) there. The mounts vanish with the namespace; the cgroups are the host's.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCgroup } from '../src/index.js';
import { findV1Mounts } from '../src/layout.js';
import { delay, isRoot } from './helpers.js';

const pkg = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const mounts = isRoot ? findV1Mounts() : [];
const hasUnshare = fs.existsSync('/usr/bin/unshare') || fs.existsSync('/bin/unshare');
const run = isRoot && hasUnshare && mounts.some((m) => m.controllers.includes('freezer'));
const CG = `/tsc-cgtest-${process.pid}-legacy`;

/** Whether a v1 controller is bound to no hierarchy yet (hierarchy 0 in /proc/cgroups). */
function unbound(controller: string): boolean {
  const line = fs
    .readFileSync('/proc/cgroups', 'utf8')
    .split('\n')
    .find((l) => l.split(/\s+/)[0] === controller);
  return line?.split(/\s+/)[1] === '0';
}

function netClsHierarchy(): { hierarchy: string; cgroups: number } {
  const f = fs
    .readFileSync('/proc/cgroups', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('net_cls\t'))
    ?.split(/\s+/);
  return { hierarchy: f?.[1] ?? '?', cgroups: Number(f?.[2]) };
}

// net_cls/net_prio are mounted by nobody on this host: the network test binds them to a private
// hierarchy for its duration and unbinds them again (the hierarchy dies with its last mount once
// it has no child cgroups).
const withNet = run && unbound('net_cls') && unbound('net_prio');

const NET_SCRIPT = `
import * as fs from 'node:fs';
const { openCgroup, detectLayout } = await import(process.argv[2]);
const root = process.argv[3];
const out = { layout: detectLayout(root) };
const m = openCgroup({ path: process.argv[4] + '/net', root });
m.create();
out.applied = m.apply({ network: { classID: 0x100001, priorities: [{ name: 'lo', priority: 5 }] } }).applied;
out.classid = fs.readFileSync(m.dirs().net_cls + '/net_cls.classid', 'utf8').trim();
out.ifpriomap = fs.readFileSync(m.dirs().net_prio + '/net_prio.ifpriomap', 'utf8');
try {
  m.apply({ unified: { 'memory.high': '1' } });
} catch (err) {
  out.unified = err.message;
}
await m.destroy();
fs.rmdirSync(root + '/net' + process.argv[4]);
console.log(JSON.stringify(out));
`;

function distIsStale(): boolean {
  const built = path.join(pkg, 'dist/index.js');
  if (!fs.existsSync(built)) return true;
  const builtAt = fs.statSync(built).mtimeMs;
  const src = path.join(pkg, 'src');
  return fs.readdirSync(src).some((f) => fs.statSync(path.join(src, f)).mtimeMs > builtAt);
}

const SCRIPT = `
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
const { openCgroup, detectLayout } = await import(process.argv[2]);
const root = process.argv[3];
const out = { layout: detectLayout(root) };
const m = openCgroup({ path: process.argv[4] + '/c1', root });
out.dirKeys = Object.keys(m.dirs()).sort();
m.create();
out.applied = m.apply({ pids: { limit: 10 } }).applied;
const exits = [];
const gated = (script) => {
  const c = spawn('sh', ['-c', 'read x; ' + script], { stdio: ['pipe', 'ignore', 'ignore'] });
  exits.push(new Promise((r) => c.on('exit', (code, signal) => r(signal))));
  return c;
};
const a = gated('sleep 1000 & sleep 1000 & wait');
m.addProcess(a.pid);
const nested = openCgroup({ path: m.path + '/n', root });
nested.create();
const b = gated('exec sleep 1000');
nested.addProcess(b.pid);
a.stdin.write('\\n');
b.stdin.write('\\n');
const deadline = Date.now() + 5000;
while (m.pids().length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
out.pidsBefore = m.pids().length;
nested.freeze();
out.nestedState = fs.readFileSync(nested.dirs().freezer + '/freezer.state', 'utf8').trim();
m.kill();
out.signals = await Promise.race([
  Promise.all(exits),
  new Promise((r) => setTimeout(() => r('timeout'), 5000).unref()),
]);
// Killed processes leave the cgroup as they finish exiting: allow them a moment.
const gone = Date.now() + 2000;
while (m.pids().length > 0 && Date.now() < gone) await new Promise((r) => setTimeout(r, 10));
out.pidsAfter = m.pids().length;
await m.destroy();
out.left = Object.values(m.dirs()).filter((d) => fs.existsSync(d));
console.log(JSON.stringify(out));
`;

describe.skipIf(!run)('legacy layout on the real kernel (needs root, unshare and a v1 freezer)', () => {
  let tmp = '';
  beforeAll(() => {
    // The child runs plain node, so it needs the built package: rebuild when dist/ is stale.
    if (distIsStale())
      execFileSync(
        process.execPath,
        [createRequire(import.meta.url).resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'],
        {
          cwd: pkg,
          stdio: 'inherit',
        },
      );
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-cg-legacy-'));
    fs.writeFileSync(path.join(tmp, 'script.mjs'), SCRIPT);
    fs.writeFileSync(path.join(tmp, 'net.mjs'), NET_SCRIPT);
  }, 120_000);

  afterAll(async () => {
    await openCgroup({ path: CG }).destroy();
    if (tmp !== '') fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('kills through the v1 freezer (thawing self-frozen nested cgroups) and destroys', async () => {
    const root = path.join(tmp, 'root');
    const setup = [
      'set -e',
      `mkdir -p ${root}`,
      `mount -t tmpfs tmpfs ${root}`,
      ...mounts.map((m) => {
        const dir = path.join(root, m.controllers.join(','));
        const opts = m.controllers.map((c) => (c.startsWith('name=') ? `none,${c}` : c)).join(',');
        return `mkdir -p ${dir} && mount -t cgroup -o ${opts} cgroup ${dir}`;
      }),
      `exec "${process.execPath}" ${path.join(tmp, 'script.mjs')} ${path.join(pkg, 'dist/index.js')} ${root} ${CG}`,
    ].join('\n');
    const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', setup], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const out = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
    expect(out['layout']).toBe('legacy');
    expect(out['dirKeys']).not.toContain('unified');
    expect(out['dirKeys']).toEqual(expect.arrayContaining(['freezer', 'memory', 'pids']));
    expect(out['applied']).toEqual(['pids.max=10']);
    expect(out['pidsBefore']).toBe(4);
    expect(out['nestedState']).toBe('FROZEN');
    expect(out['signals']).toEqual(['SIGKILL', 'SIGKILL']);
    expect(out['pidsAfter']).toBe(0);
    expect(out['left']).toEqual([]);
    expect(openCgroup({ path: CG }).exists()).toBe(true); // the parent stays; afterAll removes it
  });

  it.runIf(withNet)(
    'network: net_cls.classid and net_prio.ifpriomap on a private net_cls,net_prio hierarchy',
    async () => {
      const root = path.join(tmp, 'netroot');
      const net = path.join(root, 'net');
      const setup = [
        'set -e',
        `mkdir -p ${root}`,
        `mount -t tmpfs tmpfs ${root}`,
        `mkdir ${net} && mount -t cgroup -o net_cls,net_prio cgroup ${net}`,
        `"${process.execPath}" ${path.join(tmp, 'net.mjs')} ${path.join(pkg, 'dist/index.js')} ${root} ${CG}`,
        // The hierarchy is destroyed at the last unmount only if it has no child cgroups left, and
        // removed cgroups are released asynchronously: wait for that before unmounting.
        `for i in $(seq 200); do [ "$(awk '$1=="net_cls"{print $3}' /proc/cgroups)" = 1 ] && break; sleep 0.01; done`,
        `umount ${net}`,
      ].join('\n');
      const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', setup], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      try {
        expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
        const out = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
        expect(out['layout']).toBe('legacy');
        expect(out['applied']).toEqual(['net_cls.classid=1048577', 'net_prio.ifpriomap=lo 5']);
        expect(out['classid']).toBe('1048577');
        expect(out['ifpriomap']).toMatch(/^lo 5$/m);
        expect(out['unified']).toBe(
          'linux.resources.unified["memory.high"]: unified keys are cgroup v2 files, and this host has only cgroup v1 hierarchies',
        );
      } finally {
        // net_cls is unbound again (hierarchy 0); if the kernel kept the hierarchy, mount and unmount
        // it once more now that it is empty.
        const deadline = Date.now() + 2000;
        while (netClsHierarchy().hierarchy !== '0' && Date.now() < deadline) await delay(20);
        if (netClsHierarchy().hierarchy !== '0' && netClsHierarchy().cgroups === 1) {
          const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-cg-netfix-'));
          execFileSync('unshare', [
            '-m',
            '--propagation',
            'private',
            'sh',
            '-c',
            `mount -t cgroup -o net_cls,net_prio cgroup ${dir} && umount ${dir}`,
          ]);
          fs.rmdirSync(dir);
          await delay(100);
        }
        expect(netClsHierarchy().hierarchy).toBe('0');
      }
    },
  );
});
