// stats() parsing for v1 and v2 against fixture files, and the exact runc `events --stats` JSON.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type CgroupStats, runcEventJSON, toRuncStats } from '../src/index.js';
import { parseBlkioV1, parseIoStatV2, parseList, statsV1, statsV2 } from '../src/stats.js';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-cg-stats-'));
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

const V1_UNLIMITED = '9223372036854771712\n';

function v1Fixture(): Record<string, string> {
  const cpu = makeDir('cpu', { 'cpu.stat': 'nr_periods 10\nnr_throttled 3\nthrottled_time 4500\n' });
  const cpuacct = makeDir('cpuacct', {
    'cpuacct.usage': '3000\n',
    'cpuacct.usage_percpu': '1000 2000 \n',
    'cpuacct.usage_user': '1800\n',
    'cpuacct.usage_sys': '1200\n',
    'cpuacct.usage_all': 'cpu user system\n0 600 400\n1 1200 800\n',
  });
  const memory = makeDir('memory', {
    'memory.usage_in_bytes': '8192\n',
    'memory.max_usage_in_bytes': '16384\n',
    'memory.limit_in_bytes': '33554432\n',
    'memory.failcnt': '2\n',
    'memory.memsw.usage_in_bytes': '8192\n',
    'memory.memsw.max_usage_in_bytes': '16384\n',
    'memory.memsw.limit_in_bytes': V1_UNLIMITED,
    'memory.memsw.failcnt': '0\n',
    'memory.kmem.usage_in_bytes': '4096\n',
    'memory.kmem.max_usage_in_bytes': '4096\n',
    'memory.kmem.limit_in_bytes': V1_UNLIMITED,
    'memory.kmem.failcnt': '0\n',
    'memory.use_hierarchy': '1\n',
    'memory.stat': 'cache 4096\nrss 2048\ntotal_cache 4096\n',
  });
  const pids = makeDir('pids', { 'pids.current': '3\n', 'pids.max': 'max\n' });
  const blkio = makeDir('blkio', {
    'blkio.bfq.io_serviced_recursive': '', // no BFQ traffic: fall through, like runc
    'blkio.bfq.io_service_bytes_recursive': '',
    'blkio.throttle.io_serviced_recursive': '7:0 Read 10\n7:0 Write 0\nTotal 10\n',
    'blkio.throttle.io_service_bytes_recursive': '7:0 Read 40960\n7:0 Write 0\nTotal 40960\n',
  });
  const hugetlb = makeDir('hugetlb', {
    'hugetlb.2MB.limit_in_bytes': V1_UNLIMITED,
    'hugetlb.2MB.usage_in_bytes': '2097152\n',
    'hugetlb.2MB.max_usage_in_bytes': '4194304\n',
    'hugetlb.2MB.failcnt': '1\n',
  });
  const cpuset = makeDir('cpuset', {
    'cpuset.cpus': '0-1\n',
    'cpuset.mems': '0\n',
    'cpuset.cpu_exclusive': '0\n',
    'cpuset.sched_load_balance': '1\n',
    'cpuset.sched_relax_domain_level': '-1\n',
  });
  return { cpu, cpuacct, memory, pids, blkio, hugetlb, cpuset };
}

describe('statsV1', () => {
  it('reads every section into one shape', () => {
    const s = statsV1(v1Fixture());
    expect(s).toEqual<CgroupStats>({
      version: 1,
      cpu: {
        usage: {
          total: 3000,
          perCpu: [1000, 2000],
          perCpuUser: [600, 1200],
          perCpuSystem: [400, 800],
          user: 1800,
          system: 1200,
        },
        throttling: { periods: 10, throttledPeriods: 3, throttledTime: 4500 },
      },
      cpuset: {
        cpus: [0, 1],
        mems: [0],
        cpuExclusive: 0,
        memHardwall: 0,
        memExclusive: 0,
        memoryMigrate: 0,
        memorySpreadPage: 0,
        memorySpreadSlab: 0,
        memoryPressure: 0,
        schedLoadBalance: 1,
        schedRelaxDomainLevel: -1,
      },
      memory: {
        usage: 8192,
        maxUsage: 16384,
        limit: 33554432,
        failcnt: 2,
        cache: 4096,
        rss: 2048,
        swap: { usage: 8192, maxUsage: 16384, limit: null, failcnt: 0 },
        kernel: { usage: 4096, maxUsage: 4096, limit: null, failcnt: 0 },
        useHierarchy: true,
        stats: { cache: 4096, rss: 2048, total_cache: 4096 },
      },
      pids: { current: 3, limit: null },
      blkio: {
        ioServicedRecursive: [
          { major: 7, minor: 0, op: 'Read', value: 10 },
          { major: 7, minor: 0, op: 'Write', value: 0 },
        ],
        ioServiceBytesRecursive: [
          { major: 7, minor: 0, op: 'Read', value: 40960 },
          { major: 7, minor: 0, op: 'Write', value: 0 },
        ],
      },
      hugetlb: { '2MB': { usage: 2097152, maxUsage: 4194304, failcnt: 1 } },
    });
  });

  it('converts to the exact JSON of runc events --stats', () => {
    const json = runcEventJSON('c1', statsV1(v1Fixture()));
    expect(json).toBe(
      JSON.stringify({
        type: 'stats',
        id: 'c1',
        data: {
          cpu: {
            usage: {
              total: 3000,
              percpu: [1000, 2000],
              percpu_kernel: [400, 800],
              percpu_user: [600, 1200],
              kernel: 1200,
              user: 1800,
            },
            throttling: { periods: 10, throttledPeriods: 3, throttledTime: 4500 },
          },
          cpuset: {
            cpus: [0, 1],
            cpu_exclusive: 0,
            mems: [0],
            mem_hardwall: 0,
            mem_exclusive: 0,
            memory_migrate: 0,
            memory_spread_page: 0,
            memory_spread_slab: 0,
            memory_pressure: 0,
            sched_load_balance: 1,
            sched_relax_domain_level: -1,
          },
          memory: {
            cache: 4096,
            usage: { limit: 33554432, usage: 8192, max: 16384, failcnt: 2 },
            swap: { limit: 'V1MAX', usage: 8192, max: 16384, failcnt: 0 },
            kernel: { limit: 'V1MAX', usage: 4096, max: 4096, failcnt: 0 },
            raw: { cache: 4096, rss: 2048, total_cache: 4096 },
          },
          pids: { current: 3 },
          blkio: {
            ioServiceBytesRecursive: [
              { major: 7, op: 'Read', value: 40960 },
              { major: 7, op: 'Write' },
            ],
            ioServicedRecursive: [
              { major: 7, op: 'Read', value: 10 },
              { major: 7, op: 'Write' },
            ],
          },
          hugetlb: { '2MB': { usage: 2097152, max: 4194304, failcnt: 1 } },
          intel_rdt: {},
          network_interfaces: null,
        },
      }).replaceAll('"V1MAX"', '9223372036854771712'),
    );
  });
});

describe('statsV2', () => {
  function v2Fixture(): string {
    return makeDir('v2', {
      'cpu.stat':
        'usage_usec 3\nuser_usec 2\nsystem_usec 1\nnr_periods 5\nnr_throttled 1\nthrottled_usec 7\nnr_bursts 0\nburst_usec 0\n',
      'memory.current': '8192\n',
      'memory.max': 'max\n',
      'memory.peak': '12288\n',
      'memory.events': 'low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n',
      'memory.stat': 'anon 2048\nfile 4096\nkernel 1024\n',
      'memory.swap.current': '1024\n',
      'memory.swap.max': 'max\n',
      'pids.current': '2\n',
      'pids.max': '10\n',
      'io.stat': '8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n',
      'hugetlb.2MB.max': 'max\n',
      'hugetlb.2MB.current': '0\n',
      'hugetlb.2MB.events': 'max 3\n',
    });
  }

  it('reads v2 files, converting µs to ns and v2 names to the v1-like shape', () => {
    expect(statsV2(v2Fixture())).toEqual<CgroupStats>({
      version: 2,
      cpu: {
        usage: { total: 3000, perCpu: [], perCpuUser: [], perCpuSystem: [], user: 2000, system: 1000 },
        throttling: { periods: 5, throttledPeriods: 1, throttledTime: 7000 },
      },
      memory: {
        usage: 8192,
        maxUsage: 12288,
        limit: null,
        failcnt: 4,
        cache: 4096,
        rss: 2048,
        swap: { usage: 9216, maxUsage: 0, limit: null, failcnt: 0 },
        useHierarchy: true,
        stats: { anon: 2048, file: 4096, kernel: 1024 },
      },
      pids: { current: 2, limit: 10 },
      blkio: {
        ioServiceBytesRecursive: [
          { major: 8, minor: 0, op: 'Read', value: 4096 },
          { major: 8, minor: 0, op: 'Write', value: 8192 },
        ],
        ioServicedRecursive: [
          { major: 8, minor: 0, op: 'Read', value: 1 },
          { major: 8, minor: 0, op: 'Write', value: 2 },
        ],
      },
      hugetlb: { '2MB': { usage: 0, maxUsage: 0, failcnt: 3 } },
    });
  });

  it('prints "max" as runc does (2^64-1), exactly', () => {
    const json = runcEventJSON('x', statsV2(v2Fixture()));
    expect(json).toContain('"usage":{"limit":18446744073709551615,"usage":8192,"max":12288,"failcnt":4}');
    expect(json).toContain('"swap":{"limit":18446744073709551615,"usage":9216,"failcnt":0}');
    expect(json).toContain('"pids":{"current":2,"limit":10}');
    expect(json).toContain('"hugetlb":{"2MB":{"failcnt":3}}');
    expect(json).toContain('"cpuset":{"cpu_exclusive":0,"mem_hardwall":0');
    const runc = toRuncStats(statsV2(v2Fixture()));
    expect(runc.cpu.usage).toEqual({ total: 3000, kernel: 1000, user: 2000 });
    expect(runc.memory.usage?.limit).toBe(18446744073709551615n);
  });

  it('leaves out sections whose controller is missing; runc shape keeps its zero values', () => {
    const empty = makeDir('empty', {});
    expect(statsV2(empty)).toEqual({ version: 2, hugetlb: {} });
    expect(statsV1({})).toEqual({ version: 1, hugetlb: {} });
    expect(runcEventJSON('e', statsV2(empty))).toBe(
      '{"type":"stats","id":"e","data":{"cpu":{},"cpuset":{"cpu_exclusive":0,"mem_hardwall":0,"mem_exclusive":0,' +
        '"memory_migrate":0,"memory_spread_page":0,"memory_spread_slab":0,"memory_pressure":0,"sched_load_balance":0,' +
        '"sched_relax_domain_level":0},"memory":{},"pids":{},"blkio":{},"hugetlb":{},"intel_rdt":{},"network_interfaces":null}}',
    );
  });
});

describe('parsers', () => {
  it('parse blkio lines, io.stat and cpu lists', () => {
    expect(parseBlkioV1('8:0 Read 5\n8:0 Total 5\nTotal 5\n')).toEqual([
      { major: 8, minor: 0, op: 'Read', value: 5 },
      { major: 8, minor: 0, op: 'Total', value: 5 },
    ]);
    expect(parseBlkioV1('8:16 42\n')).toEqual([{ major: 8, minor: 16, op: '', value: 42 }]);
    expect(parseIoStatV2('253:1 rbytes=1 wbytes=2 rios=3 wios=4\nbad line\n').ioServicedRecursive).toEqual([
      { major: 253, minor: 1, op: 'Read', value: 3 },
      { major: 253, minor: 1, op: 'Write', value: 4 },
    ]);
    expect(parseList('0-2,5,7-8')).toEqual([0, 1, 2, 5, 7, 8]);
    expect(parseList('\n')).toEqual([]);
  });
});
