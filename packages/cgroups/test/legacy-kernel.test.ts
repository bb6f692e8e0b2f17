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
import { isRoot } from './helpers.js';

const pkg = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const mounts = isRoot ? findV1Mounts() : [];
const hasUnshare = fs.existsSync('/usr/bin/unshare') || fs.existsSync('/bin/unshare');
const run = isRoot && hasUnshare && mounts.some((m) => m.controllers.includes('freezer'));
const CG = `/tsc-cgtest-${process.pid}-legacy`;

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
});
