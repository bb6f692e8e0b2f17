// Real-kernel tests of the cgroup v2 code paths: on a hybrid host they run against the cgroup2 mount
// at /sys/fs/cgroup/unified (opened as a unified root), on a unified host against /sys/fs/cgroup.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  CgroupError,
  type CgroupManager,
  detectLayout,
  devicePrograms,
  openCgroup,
  toRuncStats,
} from '../src/index.js';
import { cat, delay, type GatedChild, isRoot, procCgroups, spawnGated, waitFor } from './helpers.js';

const hostLayout = isRoot ? detectLayout() : 'legacy';
const ROOT = hostLayout === 'unified' ? '/sys/fs/cgroup' : '/sys/fs/cgroup/unified';
const run = isRoot && hostLayout !== 'legacy';
const PARENT = `/tsc-cgtest-${process.pid}-v2`;
const rootControllersBefore = run ? cat(path.join(ROOT, 'cgroup.subtree_control')).split(/\s+/) : [];
let seq = 0;
const children: GatedChild[] = [];
const managers: CgroupManager[] = [];

function fresh(): CgroupManager {
  const m = openCgroup({ path: `${PARENT}/c${++seq}`, root: ROOT });
  managers.push(m);
  m.create();
  return m;
}

function gated(script: string): GatedChild {
  const c = spawnGated(script);
  children.push(c);
  return c;
}

function thrown(fn: () => unknown): CgroupError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CgroupError) return err;
    throw err;
  }
  throw new Error('expected a CgroupError');
}

describe.skipIf(!run)(`cgroup v2 on the real kernel (${ROOT}; needs root and a cgroup2 mount)`, () => {
  afterEach(async () => {
    for (const m of managers.splice(0)) await m.destroy({ timeoutMs: 10_000 });
  });

  afterAll(async () => {
    for (const c of children) c.child.kill('SIGKILL');
    const parent = openCgroup({ path: PARENT, root: ROOT });
    await parent.destroy({ timeoutMs: 20_000 });
    expect(fs.existsSync(path.join(ROOT, PARENT))).toBe(false);
    // create() enabled controllers in the root's subtree_control (as runc does); undo that.
    const now = cat(path.join(ROOT, 'cgroup.subtree_control')).split(/\s+/);
    for (const c of now.filter((x) => x !== '' && !rootControllersBefore.includes(x))) {
      try {
        fs.writeFileSync(path.join(ROOT, 'cgroup.subtree_control'), `-${c}`);
      } catch {
        // still used elsewhere
      }
    }
  });

  it('opens as unified, creates one directory and enables controllers in the parents', () => {
    const m = fresh();
    expect(m.layout).toBe('unified');
    expect(m.dirs()).toEqual({ unified: path.join(ROOT, m.path) });
    expect(m.exists()).toBe(true);
    const parentDir = path.join(ROOT, PARENT);
    const available = cat(path.join(parentDir, 'cgroup.controllers')).split(/\s+/).filter(Boolean);
    const enabled = cat(path.join(parentDir, 'cgroup.subtree_control')).split(/\s+/).filter(Boolean);
    expect(enabled.sort()).toEqual(available.sort());
    // Everything the root offers was enabled on the way down, so the parent offers all of it.
    const rootOffers = cat(path.join(ROOT, 'cgroup.controllers')).split(/\s+/).filter(Boolean);
    expect(available.sort()).toEqual(rootOffers.sort());
  });

  it('addProcess and pids() include nested cgroups', () => {
    const m = fresh();
    const a = gated('exec sleep 1000');
    const b = gated('exec sleep 1000');
    m.addProcess(a.pid);
    // Created after m holds a process, so m's subtree_control stays empty (no-internal-process rule).
    const nested = openCgroup({ path: `${m.path}/n`, root: ROOT });
    nested.create();
    nested.addProcess(b.pid);
    expect(procCgroups(a.pid).get('')).toBe(m.path);
    expect(m.pids()).toEqual([a.pid, b.pid].sort((x, y) => x - y));
    expect(nested.pids()).toEqual([b.pid]);
  });

  it('freeze() waits for "frozen 1" and stops a counter; thaw() resumes it', async () => {
    const m = fresh();
    const c = gated('i=0; while :; do i=$((i+1)); echo $i; sleep 0.01; done');
    m.addProcess(c.pid);
    c.release();
    const last = (): number => Number(c.out().trim().split('\n').at(-1) ?? 0);
    await waitFor('counter running', () => last() > 5);
    m.freeze();
    expect(cat(path.join(m.dirs()['unified'] ?? '', 'cgroup.events'))).toMatch(/frozen 1/);
    await delay(100);
    const frozenAt = last();
    await delay(400);
    expect(last()).toBe(frozenAt);
    m.thaw();
    expect(cat(path.join(m.dirs()['unified'] ?? '', 'cgroup.events'))).toMatch(/frozen 0/);
    await waitFor('counter resumed', () => last() > frozenAt + 3);
  });

  it('kill() uses cgroup.kill and kills a tree, nested cgroups included', async () => {
    const m = fresh();
    const c = gated('sleep 1000 & sh -c "sleep 1000 & wait" & wait');
    const d = gated('exec sleep 1000');
    m.addProcess(c.pid);
    const nested = openCgroup({ path: `${m.path}/n`, root: ROOT });
    nested.create();
    nested.addProcess(d.pid);
    c.release();
    d.release();
    await waitFor('5 processes', () => m.pids().length === 5);
    m.kill();
    await waitFor('empty cgroup', () => m.pids().length === 0, 5000);
    expect((await c.exited).signal).toBe('SIGKILL');
    expect((await d.exited).signal).toBe('SIGKILL');
  });

  it('kill(SIGTERM) freezes, signals and thaws', async () => {
    const m = fresh();
    const c = gated('sleep 1000 & wait');
    m.addProcess(c.pid);
    c.release();
    await waitFor('2 processes', () => m.pids().length === 2);
    m.kill('SIGTERM');
    expect(cat(path.join(m.dirs()['unified'] ?? '', 'cgroup.freeze'))).toBe('0');
    expect((await c.exited).signal).toBe('SIGTERM');
  });

  it('destroy() removes a frozen cgroup with running processes and nested cgroups', async () => {
    const m = fresh();
    const c = gated('exec sleep 1000');
    const d = gated('exec sleep 1000');
    m.addProcess(c.pid);
    const nested = openCgroup({ path: `${m.path}/x/y`, root: ROOT });
    nested.create();
    nested.addProcess(d.pid);
    m.freeze();
    await m.destroy();
    expect(fs.existsSync(m.dirs()['unified'] ?? '')).toBe(false);
    expect((await c.exited).signal).toBe('SIGKILL');
    expect((await d.exited).signal).toBe('SIGKILL');
    await m.destroy();
  });

  it('apply(): missing controllers are refused clearly, naming field and file', () => {
    const m = fresh();
    const dir = m.dirs()['unified'] ?? '';
    const controllers = cat(path.join(dir, 'cgroup.controllers')).split(/\s+/);
    if (controllers.includes('pids')) {
      expect(m.apply({ pids: { limit: 3 } }).applied).toEqual(['pids.max=3']);
      expect(cat(path.join(dir, 'pids.max'))).toBe('3');
    } else {
      const e = thrown(() => m.apply({ pids: { limit: 3 } }));
      expect(e.code).toBe('Unsupported');
      expect(e.field).toBe('pids.limit');
      expect(e.message).toMatch(
        /^linux\.resources\.pids\.limit: the pids controller is not enabled for .*pids\.max/,
      );
    }
    if (controllers.includes('memory')) {
      expect(m.apply({ memory: { limit: 32 << 20 } }).applied).toEqual([`memory.max=${32 << 20}`]);
      expect(m.oomKillCount()).toBe(0);
    } else {
      expect(thrown(() => m.apply({ memory: { limit: 32 << 20 } })).message).toMatch(
        /memory\.limit: the memory controller is not enabled/,
      );
      expect(thrown(() => m.oomKillCount()).code).toBe('Unsupported');
      expect(thrown(() => m.oomEvents()).code).toBe('Unsupported');
    }
    expect(thrown(() => m.apply({ memory: { swappiness: 5 } })).code).toBe('Unsupported');
  });

  it('device rules become an eBPF program: the last matching rule wins', async () => {
    const m = fresh();
    const dir = m.dirs()['unified'] ?? '';
    const res = m.apply({
      devices: [
        { allow: false, access: 'rwm' },
        { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }, // /dev/null
        { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' }, // /dev/zero ...
        { allow: false, type: 'c', major: 1, minor: 5, access: 'r' }, // ... but not for reading
      ],
    });
    expect(res).toEqual({ applied: ['bpf:cgroup_device=4 rules, 26 insns'], skipped: [] });
    expect(devicePrograms(dir)).toHaveLength(1);
    // The shell is only in this cgroup2 directory (its v1 devices cgroup is the unrestricted root),
    // so the eBPF program is what denies.
    const c = gated(
      'head -c1 /dev/zero >/dev/null; echo rc=$?; head -c1 /dev/null; echo rc2=$?; echo x > /dev/zero; echo rc3=$?',
    );
    fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(c.pid));
    c.release();
    expect(await c.exited).toEqual({ code: 0, signal: null });
    expect(c.out()).toBe('rc=1\nrc2=0\nrc3=0\n');
    expect(c.err()).toMatch(/'?\/dev\/zero'?.*Operation not permitted/); // EPERM from the program (busybox prints no quotes)
  });

  it("'m' rules control mknod; update() swaps the program atomically", async () => {
    const m = fresh();
    const dir = m.dirs()['unified'] ?? '';
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-cg-mknod-'));
    try {
      m.apply({ devices: [{ allow: false }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' }] });
      const before = devicePrograms(dir);
      const mknod = async (name: string): Promise<string> => {
        const c = gated(`mknod ${path.join(tmp, name)} c 1 3; echo rc=$?`);
        fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(c.pid));
        c.release();
        await c.exited;
        return c.out().trim();
      };
      expect(await mknod('a')).toBe('rc=1');
      expect(fs.existsSync(path.join(tmp, 'a'))).toBe(false);
      m.update({
        devices: [{ allow: false }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }],
      });
      const after = devicePrograms(dir);
      expect(after).toHaveLength(1);
      expect(after).not.toEqual(before);
      expect(await mknod('b')).toBe('rc=0');
      expect(fs.statSync(path.join(tmp, 'b')).isCharacterDevice()).toBe(true);
      // A third program replaces the second one; still exactly one attached.
      m.update({ devices: [{ allow: true }] });
      expect(devicePrograms(dir)).toHaveLength(1);
      expect(await mknod('c')).toBe('rc=0');
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('unified keys: cgroup.max.* are written; unknown, core and disabled-controller keys are refused', () => {
    const m = fresh();
    const dir = m.dirs()['unified'] ?? '';
    expect(m.apply({ unified: { 'cgroup.max.descendants': '3', 'cgroup.max.depth': '2' } }).applied).toEqual([
      'cgroup.max.descendants=3',
      'cgroup.max.depth=2',
    ]);
    expect(cat(path.join(dir, 'cgroup.max.descendants'))).toBe('3');
    const procs = thrown(() => m.apply({ unified: { 'cgroup.procs': '1' } }));
    expect(procs.code).toBe('Invalid');
    expect(procs.message).toMatch(/^linux\.resources\.unified\["cgroup\.procs"\]: cgroup core files/);
    const controllers = cat(path.join(dir, 'cgroup.controllers')).split(/\s+/);
    if (!controllers.includes('memory')) {
      const e = thrown(() => m.apply({ unified: { 'memory.high': '1000000' } }));
      expect(e.code).toBe('Unsupported');
      expect(e.message).toMatch(/unified\["memory\.high"\]: the memory controller is not enabled/);
    }
    if (!controllers.includes('cpu')) {
      // cpu.stat exists in every cgroup2 directory, but belongs to a controller that is not enabled.
      expect(thrown(() => m.apply({ unified: { 'cpu.stat': '1' } })).message).toMatch(
        /cpu controller is not enabled/,
      );
    }
    const bad = thrown(() => m.apply({ unified: { 'cgroup.max.depth': '1', '../x': '1' } }));
    expect(bad.message).toMatch(/unified\["\.\.\/x"\]: must be a cgroup v2 file name/);
    expect(cat(path.join(dir, 'cgroup.max.depth'))).toBe('2'); // nothing written
  });

  it('state() follows freeze() and thaw()', async () => {
    const m = fresh();
    const c = gated('exec sleep 1000');
    m.addProcess(c.pid);
    expect(m.state()).toBe('thawed');
    m.freeze();
    expect(m.state()).toBe('frozen');
    m.thaw();
    expect(m.state()).toBe('thawed');
  });

  it('stats(): cpu usage of a busy process grows (cpu.stat exists without controllers)', async () => {
    const m = fresh();
    const c = gated('i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done');
    m.addProcess(c.pid);
    const before = m.stats();
    expect(before.version).toBe(2);
    c.release();
    await c.exited;
    const after = m.stats();
    expect(after.cpu?.usage.total).toBeGreaterThan((before.cpu?.usage.total ?? 0) + 10_000_000); // > 10 ms
    expect(after.cpu?.usage.user).toBeGreaterThan(0);
    expect(after.cpu?.usage.perCpu).toEqual([]);
    const runc = toRuncStats(after);
    expect(runc.cpu.usage?.total).toBe(after.cpu?.usage.total);
    expect(Object.keys(runc)).toEqual([
      'cpu',
      'cpuset',
      'memory',
      'pids',
      'blkio',
      'hugetlb',
      'intel_rdt',
      'network_interfaces',
    ]);
  });
});
