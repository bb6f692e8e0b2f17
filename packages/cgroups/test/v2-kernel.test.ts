// Real-kernel tests of the cgroup v2 code paths: on a hybrid host they run against the cgroup2 mount
// at /sys/fs/cgroup/unified (opened as a unified root), on a unified host against /sys/fs/cgroup.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CgroupError, type CgroupManager, detectLayout, openCgroup } from '../src/index.js';
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

  it('apply(): devices are skipped with a reason; missing controllers are refused clearly', () => {
    const m = fresh();
    const dir = m.dirs()['unified'] ?? '';
    const res = m.apply({ devices: [{ allow: false }] });
    expect(res.applied).toEqual([]);
    expect(res.skipped).toEqual([{ resource: 'devices', reason: expect.stringMatching(/eBPF/) }]);
    const controllers = cat(path.join(dir, 'cgroup.controllers')).split(/\s+/);
    if (controllers.includes('pids')) {
      expect(m.apply({ pids: { limit: 3 } }).applied).toEqual(['pids.max=3']);
      expect(cat(path.join(dir, 'pids.max'))).toBe('3');
    } else {
      const e = thrown(() => m.apply({ pids: { limit: 3 } }));
      expect(e.code).toBe('Unsupported');
      expect(e.message).toMatch(/pids limit requested but the pids controller is not enabled/);
    }
    if (controllers.includes('memory')) {
      expect(m.apply({ memory: { limit: 32 << 20 } }).applied).toEqual([`memory.max=${32 << 20}`]);
      expect(m.oomKillCount()).toBe(0);
    } else {
      expect(thrown(() => m.apply({ memory: { limit: 32 << 20 } })).message).toMatch(
        /memory limit requested but the memory controller is not enabled/,
      );
      expect(thrown(() => m.oomKillCount()).code).toBe('Unsupported');
    }
    expect(thrown(() => m.apply({ memory: { swappiness: 5 } })).code).toBe('Unsupported');
  });
});
