// apply() translation tested against plain files in a temp dir (no kernel): exact files, values, order.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CgroupError } from '../src/index.js';
import { type ApplyResult, type LinuxResources, V2_FILES, validateResources } from '../src/resources.js';
import { applyV1 } from '../src/v1.js';
import { applyV2, planV2 } from '../src/v2.js';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-cg-files-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function makeDir(name: string, files: Record<string, string>): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  for (const [f, v] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), v);
  return dir;
}

const read = (dir: string, f: string): string => fs.readFileSync(path.join(dir, f), 'utf8');

function v1(dirs: Record<string, string>, r: LinuxResources): ApplyResult {
  const result: ApplyResult = { applied: [], skipped: [] };
  applyV1(dirs, validateResources(r), result);
  return result;
}

function v2(dir: string, r: LinuxResources): ApplyResult {
  const result: ApplyResult = { applied: [], skipped: [] };
  applyV2(dir, validateResources(r, V2_FILES), result);
  return result;
}

const MEM_V1 = {
  'memory.limit_in_bytes': '9223372036854771712\n',
  'memory.memsw.limit_in_bytes': '9223372036854771712\n',
  'memory.soft_limit_in_bytes': '',
  'memory.swappiness': '',
  'memory.oom_control': '',
};

describe('applyV1 (files)', () => {
  it('writes memory limit before memsw when the limit fits under the current memsw', () => {
    const memory = makeDir('memory', MEM_V1);
    const r = v1(
      { memory },
      { memory: { limit: 64 << 20, swap: 128 << 20, reservation: 1 << 20, swappiness: 0 } },
    );
    expect(r.applied).toEqual([
      `memory.limit_in_bytes=${64 << 20}`,
      `memory.memsw.limit_in_bytes=${128 << 20}`,
      `memory.soft_limit_in_bytes=${1 << 20}`,
      'memory.swappiness=0',
    ]);
    expect(read(memory, 'memory.limit_in_bytes')).toBe(String(64 << 20));
  });

  it('raises memsw first when the new limit exceeds the current memsw', () => {
    const memory = makeDir('memory', { ...MEM_V1, 'memory.memsw.limit_in_bytes': String(32 << 20) });
    const r = v1({ memory }, { memory: { limit: 64 << 20, swap: 128 << 20 } });
    expect(r.applied).toEqual([
      `memory.memsw.limit_in_bytes=${128 << 20}`,
      `memory.limit_in_bytes=${64 << 20}`,
    ]);
  });

  it('lifts memsw too for an unlimited limit without swap (like runc)', () => {
    const memory = makeDir('memory', { ...MEM_V1, 'memory.memsw.limit_in_bytes': String(32 << 20) });
    const r = v1({ memory }, { memory: { limit: -1, disableOOMKiller: true } });
    expect(r.applied).toEqual([
      'memory.memsw.limit_in_bytes=-1',
      'memory.limit_in_bytes=-1',
      'memory.oom_control=1',
    ]);
  });

  it('writes cpu, cpuset and pids files', () => {
    const cpu = makeDir('cpu', {
      'cpu.shares': '',
      'cpu.cfs_quota_us': '',
      'cpu.cfs_period_us': '',
      'cpu.rt_runtime_us': '',
      'cpu.rt_period_us': '',
    });
    const cpuset = makeDir('cpuset', { 'cpuset.cpus': '', 'cpuset.mems': '' });
    const pids = makeDir('pids', { 'pids.max': '' });
    const r = v1(
      { cpu, cpuacct: cpu, cpuset, pids },
      {
        cpu: {
          shares: 512,
          quota: 50000,
          period: 100000,
          realtimePeriod: 1000000,
          realtimeRuntime: 1000,
          cpus: '0',
          mems: '0',
        },
        pids: { limit: 0 },
      },
    );
    expect(r.applied).toEqual([
      'cpu.shares=512',
      'cpu.cfs_period_us=100000',
      'cpu.cfs_quota_us=50000',
      'cpu.rt_period_us=1000000',
      'cpu.rt_runtime_us=1000',
      'cpuset.cpus=0',
      'cpuset.mems=0',
      'pids.max=max',
    ]);
  });

  it('writes device rules in order, deny-all first', () => {
    const devices = makeDir('devices', { 'devices.allow': '', 'devices.deny': '' });
    const r = v1(
      { devices },
      {
        devices: [
          { allow: false, access: 'rwm' },
          { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' },
          { allow: true, type: 'a', major: 5, minor: null, access: 'rw' },
          { allow: false, type: 'c', major: 136, minor: 2, access: 'w' },
        ],
      },
    );
    expect(r.applied).toEqual([
      'devices.deny=a',
      'devices.allow=c 1:3 rwm',
      'devices.allow=b 5:* rw',
      'devices.allow=c 5:* rw',
      'devices.deny=c 136:2 w',
    ]);
  });

  it('refuses before writing anything when a controller is not mounted', () => {
    const cpu = makeDir('cpu', { 'cpu.shares': '' });
    try {
      v1({ cpu }, { cpu: { shares: 100 }, memory: { limit: 1 << 20 } });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(CgroupError);
      expect((err as CgroupError).code).toBe('Unsupported');
      expect((err as CgroupError).message).toBe(
        'linux.resources.memory.limit: the memory controller is not mounted (cgroup v1), so memory.limit_in_bytes cannot be written',
      );
    }
    expect(read(cpu, 'cpu.shares')).toBe('');
  });

  it('reports a missing file as NotFound naming data and file', () => {
    const memory = makeDir('memory', {});
    expect(() => v1({ memory }, { memory: { reservation: 4096 } })).toThrow(
      `write "4096" to ${path.join(memory, 'memory.soft_limit_in_bytes')}: ENOENT`,
    );
  });
});

const V2_DIR = {
  'cgroup.controllers': 'cpuset cpu io memory pids\n',
  'memory.max': 'max\n',
  'memory.low': '0\n',
  'memory.swap.max': 'max\n',
  'cpu.weight': '100\n',
  'cpu.max': '50000 100000\n',
  'cpuset.cpus': '',
  'cpuset.mems': '',
  'pids.max': 'max\n',
};

describe('applyV2 (files)', () => {
  it('converts OCI values to v2 files', () => {
    const dir = makeDir('v2', V2_DIR);
    const r = v2(dir, {
      memory: { limit: 100 << 20, swap: 150 << 20, reservation: -1 },
      cpu: { shares: 1024, quota: -1, period: 200000, cpus: '0-1', mems: '0' },
      pids: { limit: 64 },
    });
    expect(r.applied).toEqual([
      `memory.swap.max=${50 << 20}`,
      `memory.max=${100 << 20}`,
      'memory.low=max',
      'cpu.weight=100',
      'cpu.max=max 200000',
      'cpuset.cpus=0-1',
      'cpuset.mems=0',
      'pids.max=64',
    ]);
    expect(r.skipped).toEqual([]);
    expect(read(dir, 'cpu.max')).toBe('max 200000');
  });

  it('keeps the current quota when only the period is given', () => {
    const dir = makeDir('v2', V2_DIR);
    expect(v2(dir, { cpu: { period: 20000 } }).applied).toEqual(['cpu.max=50000 20000']);
    expect(v2(dir, { cpu: { quota: 10000 } }).applied).toEqual(['cpu.max=10000']);
  });

  it('plans device rules as an eBPF program and skips disableOOMKiller, recording why', () => {
    const dir = makeDir('v2', V2_DIR);
    // Only planned: attaching a program needs a real cgroup2 directory (see v2-kernel tests).
    const plan = planV2(
      dir,
      validateResources({ devices: [{ allow: false }], memory: { disableOOMKiller: true } }, V2_FILES),
    );
    expect(plan.steps.map((s) => (s.kind === 'action' ? s.label : s.file))).toEqual([
      'bpf:cgroup_device=1 rules, 8 insns',
    ]);
    expect(plan.skipped.map((s) => s.resource)).toEqual(['memory.disableOOMKiller']);
  });

  it('refuses what v2 cannot do and controllers that are not enabled', () => {
    const dir = makeDir('v2', { ...V2_DIR, 'cgroup.controllers': 'cpu\n' });
    expect(() => v2(dir, { memory: { swappiness: 10 } })).toThrow(/swappiness/);
    expect(() => v2(dir, { cpu: { realtimeRuntime: 1000 } })).toThrow(/realtime/);
    expect(() => v2(dir, { cpu: { shares: 10 }, pids: { limit: 5 } })).toThrow(
      /^linux\.resources\.pids\.limit: the pids controller is not enabled for .* so pids\.max cannot be written$/,
    );
    expect(read(dir, 'cpu.weight')).toBe('100\n');
  });
});
