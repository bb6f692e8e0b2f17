// Real-kernel tests for legacy and hybrid hosts (v1 controllers). They need root and prove limits by effect.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CgroupError, type CgroupManager, detectLayout, openCgroup } from '../src/index.js';
import { cat, delay, type GatedChild, isRoot, procCgroups, spawnGated, waitFor } from './helpers.js';

const layout = isRoot ? detectLayout() : 'unified';
const PARENT = `/tsc-cgtest-${process.pid}`;
const run = isRoot && layout !== 'unified';
let seq = 0;
const children: GatedChild[] = [];
const managers: CgroupManager[] = [];

function fresh(): CgroupManager {
  const m = openCgroup({ path: `${PARENT}/c${++seq}` });
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

describe.skipIf(!run)(`cgroup v1 on the real kernel (${layout}; needs root and v1 controllers)`, () => {
  beforeAll(() => {
    expect(fs.existsSync(`/sys/fs/cgroup/memory${PARENT}`)).toBe(false);
  });

  afterEach(async () => {
    for (const m of managers.splice(0)) await m.destroy({ timeoutMs: 10_000 });
  });

  afterAll(async () => {
    for (const c of children) c.child.kill('SIGKILL');
    const parent = openCgroup({ path: PARENT });
    await parent.destroy({ timeoutMs: 20_000 });
    for (const d of Object.values(parent.dirs())) expect(fs.existsSync(d)).toBe(false);
  });

  it('creates the cgroup in every hierarchy and copies cpuset from the parents', () => {
    const m = fresh();
    const dirs = m.dirs();
    expect(Object.keys(dirs)).toEqual(expect.arrayContaining(['memory', 'cpu', 'cpuset', 'pids', 'freezer']));
    if (layout === 'hybrid') expect(dirs['unified']).toBe(`/sys/fs/cgroup/unified${m.path}`);
    for (const d of Object.values(dirs)) expect(fs.statSync(d).isDirectory()).toBe(true);
    expect(m.exists()).toBe(true);
    const cpuset = dirs['cpuset'] ?? '';
    expect(cat(path.join(cpuset, 'cpuset.cpus'))).toBe(cat('/sys/fs/cgroup/cpuset/cpuset.cpus'));
    expect(cat(path.join(cpuset, 'cpuset.mems'))).toBe(cat('/sys/fs/cgroup/cpuset/cpuset.mems'));
    expect(cat(path.join(path.dirname(cpuset), 'cpuset.cpus'))).not.toBe('');
  });

  it('addProcess places a process in every hierarchy (also unified in hybrid) and pids() finds it', async () => {
    const m = fresh();
    const c = gated('exec sleep 1000');
    m.addProcess(c.pid);
    const where = procCgroups(c.pid);
    for (const [ctrls, p] of where) {
      if (ctrls === '' && layout === 'legacy') continue;
      expect({ ctrls, p }).toEqual({ ctrls, p: m.path });
    }
    expect(m.pids()).toEqual([c.pid]);
    c.release();
    await delay(50);
    expect(m.pids()).toEqual([c.pid]);
  });

  it('pids.max=3 stops a shell from forking more', async () => {
    const m = fresh();
    expect(m.apply({ pids: { limit: 3 } }).applied).toEqual(['pids.max=3']);
    expect(cat(path.join(m.dirs()['pids'] ?? '', 'pids.max'))).toBe('3');
    const c = gated('for i in 1 2 3 4 5; do sleep 30 & done; echo spawned; wait');
    m.addProcess(c.pid);
    c.release();
    await waitFor('fork failure', () => /fork/i.test(c.err()));
    const n = m.pids().length;
    expect(n).toBeGreaterThanOrEqual(2);
    expect(n).toBeLessThanOrEqual(3);
    const events = cat(path.join(m.dirs()['pids'] ?? '', 'pids.events'));
    expect(Number(/max (\d+)/.exec(events)?.[1])).toBeGreaterThan(0);
  });

  it('a 32 MiB memory limit gets a 256 MiB allocator OOM-killed and counted', async () => {
    const m = fresh();
    m.apply({ memory: { limit: 32 << 20 } });
    expect(m.oomKillCount()).toBe(0);
    const c = gated(
      `exec node -e "console.log('started'); const a = []; for (let i = 0; i < 256; i++) a.push(Buffer.alloc(1 << 20, 1)); console.log('survived')"`,
    );
    m.addProcess(c.pid);
    c.release();
    const { signal } = await c.exited;
    expect(c.out()).not.toContain('survived');
    expect(signal).toBe('SIGKILL');
    expect(m.oomKillCount()).toBeGreaterThanOrEqual(1);
  });

  it('orders memory and memsw writes so the kernel accepts raising and lowering both', () => {
    const m = fresh();
    const memDir = m.dirs()['memory'] ?? '';
    if (!fs.existsSync(path.join(memDir, 'memory.memsw.limit_in_bytes'))) return; // no swap accounting
    const MiB = 1 << 20;
    m.apply({ memory: { limit: 32 * MiB, swap: 64 * MiB } });
    // Raising: the new limit (128M) exceeds the current memsw (64M): memsw must go first.
    expect(m.apply({ memory: { limit: 128 * MiB, swap: 256 * MiB } }).applied[0]).toMatch(/^memory\.memsw/);
    // Lowering: the new memsw (32M) is below the current limit (128M): limit must go first.
    expect(m.apply({ memory: { limit: 16 * MiB, swap: 32 * MiB } }).applied[0]).toMatch(/^memory\.limit/);
    expect(cat(path.join(memDir, 'memory.limit_in_bytes'))).toBe(String(16 * MiB));
    expect(cat(path.join(memDir, 'memory.memsw.limit_in_bytes'))).toBe(String(32 * MiB));
    m.apply({ memory: { limit: -1 } });
    expect(BigInt(cat(path.join(memDir, 'memory.limit_in_bytes')))).toBeGreaterThan(1n << 60n);
    expect(BigInt(cat(path.join(memDir, 'memory.memsw.limit_in_bytes')))).toBeGreaterThan(1n << 60n);
  });

  it('writes cpu, cpuset, memory extras and reads them back', () => {
    const m = fresh();
    const d = m.dirs();
    const res = m.apply({
      cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0', mems: '0' },
      memory: { reservation: 8 << 20, swappiness: 10, disableOOMKiller: true },
    });
    expect(res.skipped).toEqual([]);
    expect(cat(path.join(d['cpu'] ?? '', 'cpu.shares'))).toBe('512');
    expect(cat(path.join(d['cpu'] ?? '', 'cpu.cfs_quota_us'))).toBe('50000');
    expect(cat(path.join(d['cpu'] ?? '', 'cpu.cfs_period_us'))).toBe('100000');
    expect(cat(path.join(d['cpuset'] ?? '', 'cpuset.cpus'))).toBe('0');
    expect(cat(path.join(d['memory'] ?? '', 'memory.soft_limit_in_bytes'))).toBe(String(8 << 20));
    expect(cat(path.join(d['memory'] ?? '', 'memory.swappiness'))).toBe('10');
    expect(cat(path.join(d['memory'] ?? '', 'memory.oom_control'))).toMatch(/oom_kill_disable 1/);
    m.apply({ cpu: { quota: -1 } });
    expect(cat(path.join(d['cpu'] ?? '', 'cpu.cfs_quota_us'))).toBe('-1');
  });

  it('device rules: deny all but /dev/null keeps a shell from reading /dev/zero', async () => {
    const m = fresh();
    m.apply({
      devices: [
        { allow: false, access: 'rwm' },
        { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
      ],
    });
    expect(cat(path.join(m.dirs()['devices'] ?? '', 'devices.list'))).toBe('c 1:3 rwm');
    const c = gated(
      'echo ok > /dev/null && echo null-ok; head -c 1 /dev/zero > /dev/null && echo zero-ok; true',
    );
    m.addProcess(c.pid);
    c.release();
    await c.exited;
    expect(c.out()).toContain('null-ok');
    expect(c.out()).not.toContain('zero-ok');
    expect(c.err()).toMatch(/not permitted/i);
  });

  it('kill() kills a tree of sleeps, also in nested cgroups', async () => {
    const m = fresh();
    const nested = openCgroup({ path: `${m.path}/nested` });
    nested.create();
    const c = gated('sleep 1000 & sh -c "sleep 1000 & sleep 1000 & wait" & wait');
    const other = gated('exec sleep 1000');
    m.addProcess(c.pid);
    nested.addProcess(other.pid);
    c.release();
    other.release();
    await waitFor('5 + 1 processes', () => m.pids().length === 6);
    m.kill();
    await waitFor('empty cgroup', () => m.pids().length === 0, 5000);
    expect((await c.exited).signal).toBe('SIGKILL');
    expect((await other.exited).signal).toBe('SIGKILL');
  });

  it('kill(SIGTERM) goes through the freezer and delivers the signal to every process', async () => {
    const m = fresh();
    const c = gated('sleep 1000 & sleep 1000 & wait');
    m.addProcess(c.pid);
    c.release();
    await waitFor('3 processes', () => m.pids().length === 3);
    m.kill('SIGTERM');
    expect(cat(path.join(m.dirs()['freezer'] ?? '', 'freezer.state'))).toBe('THAWED');
    await waitFor('empty cgroup', () => m.pids().length === 0, 5000);
    expect((await c.exited).signal).toBe('SIGTERM');
  });

  it('freeze() stops a counter, thaw() resumes it', async () => {
    const m = fresh();
    const c = gated('i=0; while :; do i=$((i+1)); echo $i; sleep 0.01; done');
    m.addProcess(c.pid);
    c.release();
    const last = (): number => Number(c.out().trim().split('\n').at(-1) ?? 0);
    await waitFor('counter running', () => last() > 5);
    m.freeze();
    expect(cat(path.join(m.dirs()['freezer'] ?? '', 'freezer.state'))).toBe('FROZEN');
    await delay(100);
    const frozenAt = last();
    await delay(400);
    expect(last()).toBe(frozenAt);
    m.thaw();
    await waitFor('counter resumed', () => last() > frozenAt + 3);
  });

  it('destroy() removes every directory while processes are still running, also frozen ones', async () => {
    const m = fresh();
    const nested = openCgroup({ path: `${m.path}/a/b` });
    nested.create();
    const c = gated('sleep 1000 & exec sleep 1000');
    const d = gated('exec sleep 1000');
    m.addProcess(c.pid);
    nested.addProcess(d.pid);
    c.release();
    d.release();
    await waitFor('3 processes', () => m.pids().length === 3);
    // A self-frozen nested cgroup stays frozen when its parent is thawed: destroy must thaw it too.
    nested.freeze();
    m.freeze();
    await m.destroy();
    for (const dir of Object.values(m.dirs())) expect(fs.existsSync(dir)).toBe(false);
    expect(m.exists()).toBe(false);
    expect((await c.exited).signal).toBe('SIGKILL');
    await m.destroy(); // already gone: fine
  });

  it('a kernel rejection names the data, the file and the errno', () => {
    const m = fresh();
    const e = thrown(() => m.apply({ cpu: { cpus: '999' } }));
    const file = path.join(m.dirs()['cpuset'] ?? '', 'cpuset.cpus');
    expect(e.message).toMatch(
      new RegExp(`^linux\\.resources\\.cpu\\.cpus: write "999" to ${file}: E[A-Z]+$`),
    );
    expect(e.field).toBe('cpu.cpus');
    expect(e.path).toBe(file);
    expect(e.data).toBe('999');
    expect(['EINVAL', 'ERANGE']).toContain(e.errno);
    expect(e.code).toBe('Invalid');
    expect(e.op).toBe('write');
    // cpu.rt_runtime_us needs realtime budget in the parents, which a fresh parent does not have.
    const rt = thrown(() => m.apply({ cpu: { realtimeRuntime: 1000 } }));
    expect(rt.message).toContain('cpu.rt_runtime_us: EINVAL');
    // The kernel clamps cpu.shares silently; the read-back turns that into an error.
    expect(thrown(() => m.apply({ cpu: { shares: 1 } })).message).toMatch(
      /cpu\.shares: the kernel clamped 1 to 2/,
    );
  });

  it('invalid input names the field and file, and nothing is written', () => {
    const m = fresh();
    const limitFile = path.join(m.dirs()['memory'] ?? '', 'memory.limit_in_bytes');
    const before = cat(limitFile);
    const e = thrown(() => m.apply({ memory: { limit: 64 << 20, swap: -7 } }));
    expect(e.code).toBe('Invalid');
    expect(e.message).toMatch(/^linux\.resources\.memory\.swap: .*memory\.memsw\.limit_in_bytes/);
    expect(thrown(() => m.apply({ cpu: { quota: 0.5 } })).message).toMatch(
      /^linux\.resources\.cpu\.quota: must be an integer.*cpu\.cfs_quota_us/,
    );
    expect(cat(limitFile)).toBe(before);
  });

  it('apply() on a cgroup that was not created is NotFound', () => {
    const m = openCgroup({ path: `${PARENT}/never-created` });
    const e = thrown(() => m.apply({ pids: { limit: 5 } }));
    expect(e.code).toBe('NotFound');
    expect(e.errno).toBe('ENOENT');
    expect(m.exists()).toBe(false);
  });
});
