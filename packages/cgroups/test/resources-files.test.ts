// Every OCI resource field translated to files, against plain files in a temp dir (no kernel):
// exact files, values, order and skips, for v2 (which this host's cgroup2 mount cannot host with
// controllers) and the v1 files the host lacks (net_cls, net_prio, rdma, CFQ).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CgroupError } from '../src/index.js';
import { type ApplyResult, type LinuxResources, V2_FILES, validateResources } from '../src/resources.js';
import { applyV1, type V1Dirs } from '../src/v1.js';
import { applyV2, blkioWeightToIOWeight, ioMaxLines } from '../src/v2.js';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-cg-res-'));
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

function v2(dir: string, r: LinuxResources): ApplyResult {
  const result: ApplyResult = { applied: [], skipped: [] };
  applyV2(dir, validateResources(r, V2_FILES), result);
  return result;
}

function v1(dirs: V1Dirs, r: LinuxResources, unifiedDir?: string): ApplyResult {
  const result: ApplyResult = { applied: [], skipped: [] };
  applyV1(dirs, validateResources(r), result, unifiedDir === undefined ? {} : { unifiedDir });
  return result;
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

/** Files of a cgroup v2 directory with every controller enabled. */
const V2 = {
  'cgroup.controllers': 'cpuset cpu io memory hugetlb pids rdma misc\n',
  'cgroup.procs': '',
  'cgroup.max.depth': 'max\n',
  'memory.max': 'max\n',
  'memory.low': '0\n',
  'memory.high': 'max\n',
  'memory.current': '10485760\n',
  'memory.swap.max': 'max\n',
  'memory.swap.current': '0\n',
  'cpu.weight': '100\n',
  'cpu.max': 'max 100000\n',
  'cpu.max.burst': '0\n',
  'cpu.idle': '0\n',
  'cpuset.cpus': '',
  'cpuset.mems': '',
  'pids.max': 'max\n',
  'io.max': '',
  'io.weight': 'default 100\n',
  'io.bfq.weight': 'default 100\n',
  'hugetlb.2MB.max': 'max\n',
  'hugetlb.2MB.rsvd.max': 'max\n',
  'hugetlb.1GB.max': 'max\n',
  'rdma.max': '',
};

const omit = (files: Record<string, string>, ...names: string[]): Record<string, string> =>
  Object.fromEntries(Object.entries(files).filter(([k]) => !names.includes(k)));

describe('v2 files', () => {
  it('blockIO: BFQ takes raw weights (also per device), io.weight (iocost) converted ones, io.max one line per device', () => {
    const dir = makeDir('v2', V2);
    const r = v2(dir, {
      blockIO: {
        weight: 500,
        leafWeight: 300,
        weightDevice: [{ major: 8, minor: 0, weight: 200, leafWeight: 100 }],
        throttleReadBpsDevice: [
          { major: 8, minor: 0, rate: 1048576 },
          { major: 8, minor: 16, rate: 0 },
        ],
        throttleWriteIOPSDevice: [{ major: 8, minor: 0, rate: 100 }],
        throttleWriteBpsDevice: [{ major: 8, minor: 16, rate: 2048 }],
      },
    });
    // BFQ loaded and iocost built in: both files, each in its own scale
    expect(r.applied).toEqual([
      'io.bfq.weight=500',
      'io.weight=4950',
      'io.bfq.weight=8:0 200',
      'io.weight=8:0 1920',
      'io.max=8:0 rbps=1048576 wiops=100',
      'io.max=8:16 rbps=max wbps=2048', // rate 0 = no limit, as in v1
    ]);
    expect(r.skipped).toEqual([
      { resource: 'blockIO.leafWeight', reason: expect.stringMatching(/CFQ/) },
      { resource: 'blockIO.weightDevice[0].leafWeight', reason: expect.stringMatching(/CFQ/) },
    ]);
  });

  it('blockIO: without BFQ, weights go to io.weight converted 10..1000 → 1..10000 (crun/runc)', () => {
    const dir = makeDir('v2', omit(V2, 'io.bfq.weight'));
    const r = v2(dir, { blockIO: { weight: 500, weightDevice: [{ major: 253, minor: 1, weight: 1000 }] } });
    expect(r.applied).toEqual(['io.weight=4950', 'io.weight=253:1 10000']);
    expect([10, 100, 500, 1000].map(blkioWeightToIOWeight)).toEqual([1, 910, 4950, 10000]);
    // BFQ before Linux 5.4 shows a single number and takes no per-device weights.
    const old = makeDir('old', omit({ ...V2, 'io.bfq.weight': '100\n' }, 'io.weight'));
    expect(v2(old, { blockIO: { weightDevice: [{ major: 8, minor: 0, weight: 300 }] } })).toEqual({
      applied: [],
      skipped: [{ resource: 'blockIO.weightDevice[0]', reason: expect.stringMatching(/Linux 5\.4/) }],
    });
    const none = makeDir('none', omit(V2, 'io.bfq.weight', 'io.weight'));
    expect(thrown(() => v2(none, { blockIO: { weight: 100 } })).message).toMatch(
      /^linux\.resources\.blockIO\.weight: neither io\.bfq\.weight \(BFQ\) nor io\.weight/,
    );
  });

  it('io.max lines merge the four throttle lists per device', () => {
    const t = validateResources({
      blockIO: {
        throttleWriteIOPSDevice: [{ major: 1, minor: 2, rate: 4 }],
        throttleReadIOPSDevice: [{ major: 1, minor: 2, rate: 3 }],
        throttleWriteBpsDevice: [{ major: 1, minor: 2, rate: 2 }],
        throttleReadBpsDevice: [{ major: 1, minor: 2, rate: 1 }],
      },
    }).blockIO.throttle;
    expect(ioMaxLines(t)).toEqual([
      { line: '1:2 rbps=1 wbps=2 riops=3 wiops=4', field: 'blockIO.throttleReadBpsDevice[0]' },
    ]);
  });

  it('hugepageLimits → hugetlb.<size>.max and .rsvd.max; unknown sizes are refused', () => {
    const dir = makeDir('v2', V2);
    expect(
      v2(dir, {
        hugepageLimits: [
          { pageSize: '2MB', limit: 8 << 20 },
          { pageSize: '1GB', limit: -1 },
        ],
      }).applied,
    ).toEqual([`hugetlb.2MB.max=${8 << 20}`, `hugetlb.2MB.rsvd.max=${8 << 20}`, 'hugetlb.1GB.max=max']);
    const e = thrown(() => v2(dir, { pids: { limit: 4 }, hugepageLimits: [{ pageSize: '64KB', limit: 0 }] }));
    expect(e.code).toBe('Unsupported');
    expect(e.message).toMatch(
      /^linux\.resources\.hugepageLimits\[0\]\.pageSize: this kernel has no 64KB huge pages/,
    );
    expect(read(dir, 'pids.max')).toBe('max\n');
  });

  it('rdma → rdma.max; network → skipped (no net_cls/net_prio on v2)', () => {
    const dir = makeDir('v2', V2);
    const r = v2(dir, {
      rdma: { mlx5_0: { hcaHandles: 2, hcaObjects: 2000 }, mlx4_1: { hcaObjects: 10 } },
      network: { classID: 0x100001, priorities: [{ name: 'eth0', priority: 5 }] },
    });
    expect(r.applied).toEqual([
      'rdma.max=mlx5_0 hca_handle=2 hca_object=2000',
      'rdma.max=mlx4_1 hca_object=10',
    ]);
    expect(r.skipped.map((s) => s.resource)).toEqual(['network.classID', 'network.priorities']);
    expect(r.skipped[0]?.reason).toMatch(/no net_cls/);
  });

  it('cpu: idle 1 after the weight, idle 0 before it, burst around cpu.max', () => {
    const dir = makeDir('v2', V2);
    expect(
      v2(dir, { cpu: { shares: 1024, quota: 20000, period: 100000, burst: 5000, idle: 1 } }).applied,
    ).toEqual(['cpu.weight=100', 'cpu.max.burst=5000', 'cpu.max=20000 100000', 'cpu.idle=1']);
    expect(v2(dir, { cpu: { shares: 2048, idle: 0 } }).applied).toEqual(['cpu.idle=0', 'cpu.weight=174']);
    const old = makeDir('old', omit(V2, 'cpu.max.burst'));
    expect(v2(old, { cpu: { burst: 1 } }).skipped).toEqual([
      { resource: 'cpu.burst', reason: expect.stringMatching(/Linux 5\.14/) },
    ]);
  });

  it('memory: v1-only fields are skipped; swap alone uses the current memory.max', () => {
    const dir = makeDir('v2', { ...V2, 'memory.max': `${64 << 20}\n` });
    const r = v2(dir, {
      memory: { kernel: 1 << 20, kernelTCP: 1 << 20, useHierarchy: false, swap: 96 << 20 },
    });
    expect(r.applied).toEqual([`memory.swap.max=${32 << 20}`]);
    expect(r.skipped.map((s) => s.resource)).toEqual([
      'memory.kernel',
      'memory.kernelTCP',
      'memory.useHierarchy',
    ]);
    expect(thrown(() => v2(dir, { memory: { swap: 32 << 20 } })).message).toMatch(
      /memory\.swap: memory\+swap limit 33554432 must be >= memory\.limit 67108864 \(the current memory\.max\)/,
    );
    const unlimited = makeDir('unlimited', V2);
    expect(thrown(() => v2(unlimited, { memory: { swap: 32 << 20 } })).message).toMatch(
      /memory\.swap: cannot be set without a memory limit on cgroup v2 .*memory\.max is max/,
    );
  });

  it('memory.checkBeforeUpdate refuses a limit not above memory.current', () => {
    const dir = makeDir('v2', V2); // memory.current = 10 MiB
    const e = thrown(() => v2(dir, { memory: { limit: 10 << 20, checkBeforeUpdate: true } }));
    expect(e.message).toMatch(
      /^linux\.resources\.memory\.limit: 10485760 is not above the current usage 10485760/,
    );
    expect(e.message).toMatch(/\(written to memory\.max\)$/);
    expect(v2(dir, { memory: { limit: 11 << 20, checkBeforeUpdate: true } }).applied).toEqual([
      `memory.max=${11 << 20}`,
    ]);
    expect(v2(dir, { memory: { limit: 1 << 20 } }).applied).toEqual([`memory.max=${1 << 20}`]); // not asked to check
  });

  it('controllers that are not enabled are refused before any write', () => {
    const dir = makeDir('v2', { ...V2, 'cgroup.controllers': 'memory pids\n' });
    for (const [r, ctrl, field] of [
      [{ blockIO: { weight: 100 } }, 'io', 'blockIO.weight'],
      [
        { blockIO: { throttleWriteBpsDevice: [{ major: 8, minor: 0, rate: 1 }] } },
        'io',
        'blockIO.throttleWriteBpsDevice[0]',
      ],
      [{ hugepageLimits: [{ pageSize: '2MB', limit: 1 }] }, 'hugetlb', 'hugepageLimits'],
      [{ rdma: { mlx5_0: { hcaHandles: 1 } } }, 'rdma', 'rdma'],
      [{ cpu: { idle: 1 } }, 'cpu', 'cpu.idle'],
    ] as const) {
      const e = thrown(() => v2(dir, { pids: { limit: 1 }, ...(r as LinuxResources) }));
      expect(e.code).toBe('Unsupported');
      expect(e.field).toBe(field);
      expect(e.message).toContain(`the ${ctrl} controller is not enabled`);
    }
    expect(read(dir, 'pids.max')).toBe('max\n');
  });

  it('unified: writable files of enabled controllers, line by line; everything else is refused', () => {
    const dir = makeDir('v2', { ...V2, 'cgroup.controllers': 'memory io\n', 'memory.stat': 'anon 0\n' });
    fs.chmodSync(path.join(dir, 'memory.stat'), 0o444);
    expect(
      v2(dir, {
        memory: { limit: 1 << 30 },
        unified: {
          'memory.high': '1073741824',
          'io.max': '8:0 rbps=1\n8:16 wbps=2\n',
          'cgroup.max.depth': '3',
        },
      }).applied,
    ).toEqual([
      `memory.max=${1 << 30}`,
      'memory.high=1073741824',
      'io.max=8:0 rbps=1',
      'io.max=8:16 wbps=2',
      'cgroup.max.depth=3',
    ]);
    const cases: [Record<string, string>, string, RegExp][] = [
      [{ 'pids.max': '5' }, 'Unsupported', /unified\["pids\.max"\]: the pids controller is not enabled/],
      [{ 'memory.nope': '5' }, 'NotFound', /unified\["memory\.nope"\]: .*memory\.nope does not exist/],
      [{ 'memory.stat': '5' }, 'Invalid', /unified\["memory\.stat"\]: .*memory\.stat is read-only/],
      [
        { 'cgroup.procs': '1' },
        'Invalid',
        /unified\["cgroup\.procs"\]: cgroup core files are managed by the runtime/,
      ],
      [{ 'cgroup.subtree_control': '+cpu' }, 'Invalid', /cgroup core files/],
      [{ memory: '5' }, 'Invalid', /must be a cgroup v2 file name/],
      [{ 'memory.high/../x': '5' }, 'Invalid', /must be a cgroup v2 file name/],
    ];
    fs.writeFileSync(path.join(dir, 'memory.high'), 'max\n');
    for (const [unified, code, re] of cases) {
      const e = thrown(() => v2(dir, { unified: { 'memory.high': '1', ...unified } }));
      expect({ code: e.code, message: e.message }).toEqual({ code, message: expect.stringMatching(re) });
    }
    expect(read(dir, 'memory.high')).toBe('max\n'); // nothing written by the refused calls
    expect(thrown(() => v2(dir, { unified: { 'memory.high': 5 as never } })).message).toMatch(
      /must be a string/,
    );
  });
});

/** v1 directories with files for the controllers this host does not mount. */
let v1Seq = 0;
function v1Dirs(extra: Record<string, Record<string, string>> = {}): Record<string, string> {
  const set = `v1-${++v1Seq}`;
  const files: Record<string, Record<string, string>> = {
    memory: {
      'memory.limit_in_bytes': '9223372036854771712\n',
      'memory.memsw.limit_in_bytes': '9223372036854771712\n',
      'memory.usage_in_bytes': `${20 << 20}\n`,
      'memory.memsw.usage_in_bytes': `${20 << 20}\n`,
      'memory.kmem.limit_in_bytes': '9223372036854771712\n',
      'memory.kmem.tcp.limit_in_bytes': '9223372036854771712\n',
      'memory.use_hierarchy': '1\n',
      'memory.oom_control': '',
    },
    blkio: {
      'blkio.weight': '500\n',
      'blkio.weight_device': '',
      'blkio.leaf_weight': '500\n',
      'blkio.leaf_weight_device': '',
      'blkio.throttle.read_bps_device': '',
      'blkio.throttle.write_bps_device': '',
      'blkio.throttle.read_iops_device': '',
      'blkio.throttle.write_iops_device': '',
    },
    hugetlb: { 'hugetlb.2MB.limit_in_bytes': '', 'hugetlb.2MB.rsvd.limit_in_bytes': '' },
    net_cls: { 'net_cls.classid': '0\n' },
    net_prio: { 'net_prio.ifpriomap': '' },
    rdma: { 'rdma.max': '' },
    ...extra,
  };
  return Object.fromEntries(Object.entries(files).map(([c, f]) => [c, makeDir(`${set}/${c}`, f)]));
}

describe('v1 files', () => {
  it('blockIO on CFQ: blkio.weight, leaf weights, devices and the four throttles', () => {
    const dirs = v1Dirs();
    const r = v1(dirs, {
      blockIO: {
        weight: 300,
        leafWeight: 200,
        weightDevice: [{ major: 8, minor: 0, weight: 100, leafWeight: 50 }],
        throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1 }],
        throttleWriteBpsDevice: [{ major: 8, minor: 0, rate: 2 }],
        throttleReadIOPSDevice: [{ major: 8, minor: 0, rate: 3 }],
        throttleWriteIOPSDevice: [{ major: 8, minor: 16, rate: 4 }],
      },
    });
    expect(r.applied).toEqual([
      'blkio.weight=300',
      'blkio.leaf_weight=200',
      'blkio.weight_device=8:0 100',
      'blkio.leaf_weight_device=8:0 50',
      'blkio.throttle.read_bps_device=8:0 1',
      'blkio.throttle.write_bps_device=8:0 2',
      'blkio.throttle.read_iops_device=8:0 3',
      'blkio.throttle.write_iops_device=8:16 4',
    ]);
    expect(r.skipped).toEqual([]);
  });

  it('blockIO on BFQ: blkio.bfq.weight; leaf weights skipped; neither scheduler: refused', () => {
    const bfq = v1Dirs({ blkio: { 'blkio.bfq.weight': '100\n', 'blkio.bfq.weight_device': '' } });
    const r = v1(bfq, {
      blockIO: { weight: 300, leafWeight: 10, weightDevice: [{ major: 8, minor: 0, weight: 100 }] },
    });
    expect(r.applied).toEqual(['blkio.bfq.weight=300', 'blkio.bfq.weight_device=8:0 100']);
    expect(r.skipped).toEqual([{ resource: 'blockIO.leafWeight', reason: expect.stringMatching(/CFQ/) }]);
    const none = v1Dirs({ blkio: { 'blkio.throttle.read_bps_device': '' } });
    const e = thrown(() => v1(none, { blockIO: { weight: 300 } }));
    expect(e.message).toMatch(
      /^linux\.resources\.blockIO\.weight: neither blkio\.weight \(CFQ\) nor blkio\.bfq\.weight/,
    );
  });

  it('network → net_cls.classid (decimal) and one net_prio.ifpriomap line per interface', () => {
    const dirs = v1Dirs();
    const r = v1(dirs, {
      network: {
        classID: 0x100001,
        priorities: [
          { name: 'eth0', priority: 5 },
          { name: 'lo', priority: 2 },
        ],
      },
    });
    expect(r.applied).toEqual([
      'net_cls.classid=1048577',
      'net_prio.ifpriomap=eth0 5',
      'net_prio.ifpriomap=lo 2',
    ]);
  });

  it('rdma, hugetlb (with reservations), kernel memory and useHierarchy', () => {
    const dirs = v1Dirs();
    const r = v1(dirs, {
      rdma: { mlx5_0: { hcaHandles: 3 } },
      hugepageLimits: [{ pageSize: '2MB', limit: 0 }],
      memory: { kernel: 1 << 20, kernelTCP: 2 << 20, useHierarchy: true, disableOOMKiller: false },
    });
    expect(r.applied).toEqual([
      'memory.use_hierarchy=1',
      'memory.oom_control=0',
      `memory.kmem.limit_in_bytes=${1 << 20}`,
      `memory.kmem.tcp.limit_in_bytes=${2 << 20}`,
      'hugetlb.2MB.limit_in_bytes=0',
      'hugetlb.2MB.rsvd.limit_in_bytes=0',
      'rdma.max=mlx5_0 hca_handle=3',
    ]);
    const noKmem = v1Dirs({ memory: { 'memory.limit_in_bytes': '1\n' } });
    expect(v1(noKmem, { memory: { kernel: 1, kernelTCP: 1 } }).skipped.map((s) => s.resource)).toEqual([
      'memory.kernel',
      'memory.kernelTCP',
    ]);
  });

  it('checkBeforeUpdate and the memory/memsw consistency checks use the current values', () => {
    const dirs = v1Dirs(); // usage 20 MiB
    expect(thrown(() => v1(dirs, { memory: { limit: 16 << 20, checkBeforeUpdate: true } })).message).toMatch(
      /^linux\.resources\.memory\.limit: 16777216 is not above the current usage 20971520 .*\(written to memory\.limit_in_bytes\)$/,
    );
    expect(thrown(() => v1(dirs, { memory: { swap: 16 << 20, checkBeforeUpdate: true } })).field).toBe(
      'memory.swap',
    );
    fs.writeFileSync(path.join(dirs['memory'] ?? '', 'memory.memsw.limit_in_bytes'), `${64 << 20}\n`);
    expect(thrown(() => v1(dirs, { memory: { limit: 128 << 20 } })).message).toMatch(
      /memory\.limit: 134217728 is above the current memory\+swap limit 67108864/,
    );
    expect(v1(dirs, { memory: { limit: 32 << 20 } }).applied).toEqual([`memory.limit_in_bytes=${32 << 20}`]);
    expect(thrown(() => v1(dirs, { memory: { swap: 16 << 20 } })).message).toMatch(
      /memory\.swap: 16777216 is below the current memory limit 33554432/,
    );
  });

  it('unified keys on cgroup v1: refused unless the hybrid cgroup v2 directory has the file', () => {
    const dirs = v1Dirs();
    expect(thrown(() => v1(dirs, { unified: { 'memory.high': '1' } })).message).toBe(
      'linux.resources.unified["memory.high"]: unified keys are cgroup v2 files, and this host has only cgroup v1 hierarchies',
    );
    const unified = makeDir('unified', { 'cgroup.controllers': '', 'cgroup.max.depth': 'max\n' });
    expect(v1(dirs, { unified: { 'cgroup.max.depth': '4' } }, unified).applied).toEqual([
      'cgroup.max.depth=4',
    ]);
    expect(thrown(() => v1(dirs, { unified: { 'memory.high': '1' } }, unified)).message).toMatch(
      /unified\["memory\.high"\]: unified keys are cgroup v2 files; on this hybrid host resources go to cgroup v1/,
    );
  });
});
