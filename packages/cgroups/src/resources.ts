import { invalidField } from './errors.js';

/** One OCI device cgroup rule (`linux.resources.devices[]`). */
export interface LinuxDeviceCgroup {
  /** Allow (`true`) or deny (`false`) access. */
  allow: boolean;
  /** `'a'` (all, the default), `'b'` (block) or `'c'` (char). */
  type?: 'a' | 'b' | 'c';
  /** Major number; absent, `null` or `-1` means all. */
  major?: number | null;
  /** Minor number; absent, `null` or `-1` means all. */
  minor?: number | null;
  /** Some of `r`, `w`, `m`; `'rwm'` by default. */
  access?: string;
}

/** OCI `linux.resources.memory` (bytes). `0` means "not set", as in runc. */
export interface LinuxMemory {
  /** Memory limit; `-1` = unlimited. */
  limit?: number;
  /** Soft limit (v1 `memory.soft_limit_in_bytes`, v2 `memory.low`); `-1` = unlimited. */
  reservation?: number;
  /** Memory + swap limit; `-1` = unlimited. Must be >= `limit`. */
  swap?: number;
  /**
   * Kernel memory limit (v1 `memory.kmem.limit_in_bytes`). Deprecated by OCI; Linux ≥ 6.1 accepts
   * and ignores it, which `apply()` reports in `skipped`.
   */
  kernel?: number;
  /** Kernel TCP buffer limit (v1 `memory.kmem.tcp.limit_in_bytes`); v2 has no equivalent. */
  kernelTCP?: number;
  /** 0..100 (v1 only). */
  swappiness?: number;
  /** Disable the OOM killer (v1 only; v2 has no such switch and reports it as skipped). */
  disableOOMKiller?: boolean;
  /** Hierarchical accounting (v1 `memory.use_hierarchy`; v2 is always hierarchical). */
  useHierarchy?: boolean;
  /** Refuse a new `limit` (or `swap`) that is not above the current usage. */
  checkBeforeUpdate?: boolean;
}

/** OCI `linux.resources.cpu`. Numeric `0` means "not set" for shares/quota/period/realtime, as in runc. */
export interface LinuxCPU {
  /** Relative weight (v1 `cpu.shares`; v2 `cpu.weight`, converted). */
  shares?: number;
  /** CFS quota in µs per period; `-1` = unlimited. */
  quota?: number;
  /** CFS burst in µs (v1 `cpu.cfs_burst_us`, v2 `cpu.max.burst`); `0` is a value here. */
  burst?: number;
  /** CFS period in µs. */
  period?: number;
  /** Realtime runtime in µs per realtime period (v1 only). */
  realtimeRuntime?: number;
  /** Realtime period in µs (v1 only). */
  realtimePeriod?: number;
  /** CPU list, e.g. `"0-3,5"`. */
  cpus?: string;
  /** Memory node list, e.g. `"0"`. */
  mems?: string;
  /** `1` = SCHED_IDLE for the whole cgroup, `0` = normal (`cpu.idle`). */
  idle?: number;
}

/** OCI `linux.resources.pids`. */
export interface LinuxPids {
  /** Maximum number of tasks; `-1` or `0` = unlimited (`"max"`). */
  limit: number;
}

/** A block device, `major:minor`. */
export interface LinuxBlockIODevice {
  major: number;
  minor: number;
}

/** OCI `linux.resources.blockIO.weightDevice[]`. */
export interface LinuxWeightDevice extends LinuxBlockIODevice {
  /** 10..1000. */
  weight?: number;
  /** 10..1000 (CFQ only). */
  leafWeight?: number;
}

/** OCI `linux.resources.blockIO.throttle*Device[]`. */
export interface LinuxThrottleDevice extends LinuxBlockIODevice {
  /** Bytes or IOs per second; `0` removes the limit. */
  rate: number;
}

/** OCI `linux.resources.blockIO`. */
export interface LinuxBlockIO {
  /** 10..1000. */
  weight?: number;
  /** 10..1000 (CFQ only). */
  leafWeight?: number;
  weightDevice?: LinuxWeightDevice[];
  throttleReadBpsDevice?: LinuxThrottleDevice[];
  throttleWriteBpsDevice?: LinuxThrottleDevice[];
  throttleReadIOPSDevice?: LinuxThrottleDevice[];
  throttleWriteIOPSDevice?: LinuxThrottleDevice[];
}

/** OCI `linux.resources.hugepageLimits[]`. */
export interface LinuxHugepageLimit {
  /** `"<size><unit>B"`, e.g. `"2MB"`, `"1GB"`, `"64KB"`. */
  pageSize: string;
  /** Bytes; `-1` = unlimited (an extension: OCI's type is unsigned). */
  limit: number;
}

/** OCI `linux.resources.network.priorities[]`. */
export interface LinuxInterfacePriority {
  name: string;
  priority: number;
}

/** OCI `linux.resources.network` (cgroup v1 only). */
export interface LinuxNetwork {
  /** net_cls class id, e.g. `0x100001` for tc class 10:1. */
  classID?: number;
  priorities?: LinuxInterfacePriority[];
}

/** OCI `linux.resources.rdma[device]`. */
export interface LinuxRdma {
  hcaHandles?: number;
  hcaObjects?: number;
}

/** OCI `linux.resources` (names and units exactly as in the OCI runtime spec). */
export interface LinuxResources {
  devices?: LinuxDeviceCgroup[];
  memory?: LinuxMemory;
  cpu?: LinuxCPU;
  pids?: LinuxPids;
  blockIO?: LinuxBlockIO;
  hugepageLimits?: LinuxHugepageLimit[];
  network?: LinuxNetwork;
  rdma?: Record<string, LinuxRdma>;
  /** Raw cgroup v2 files: `{ "memory.high": "50000000" }`. */
  unified?: Record<string, string>;
}

/** What `apply()`/`update()` did. */
export interface ApplyResult {
  /** Every write, in order, as `"<file>=<value>"`, e.g. `"memory.limit_in_bytes=33554432"`. */
  applied: string[];
  /** Requested resources that nothing enforces on this layout, e.g. `network` on cgroup v2. */
  skipped: { resource: string; reason: string }[];
}

/** A validated device rule, ready for the v1 `devices.allow`/`devices.deny` syntax. */
export interface DeviceRule {
  allow: boolean;
  type: 'a' | 'b' | 'c';
  /** Number or `'*'`. */
  major: string;
  /** Number or `'*'`. */
  minor: string;
  access: string;
}

/** A validated `weightDevice` entry. */
export interface WeightDeviceRule {
  major: number;
  minor: number;
  weight?: number;
  leafWeight?: number;
}

/** A validated throttle entry. */
export interface ThrottleRule {
  major: number;
  minor: number;
  rate: number;
}

/** The four throttle lists, keyed by their OCI field names. */
export const THROTTLE_FIELDS = [
  'throttleReadBpsDevice',
  'throttleWriteBpsDevice',
  'throttleReadIOPSDevice',
  'throttleWriteIOPSDevice',
] as const;

export type ThrottleField = (typeof THROTTLE_FIELDS)[number];

/** Validated resources: `0`/empty "not set" values are dropped; numbers are safe integers. */
export interface NormalizedResources {
  devices: DeviceRule[];
  memory: {
    limit?: number;
    reservation?: number;
    swap?: number;
    kernel?: number;
    kernelTCP?: number;
    swappiness?: number;
    disableOOMKiller?: boolean;
    useHierarchy?: boolean;
    checkBeforeUpdate?: boolean;
  };
  cpu: {
    shares?: number;
    quota?: number;
    burst?: number;
    period?: number;
    realtimeRuntime?: number;
    realtimePeriod?: number;
    cpus?: string;
    mems?: string;
    idle?: number;
  };
  /** `'max'` or a positive number, when set. */
  pids?: string;
  blockIO: {
    weight?: number;
    leafWeight?: number;
    weightDevice: WeightDeviceRule[];
    throttle: Record<ThrottleField, ThrottleRule[]>;
  };
  hugepageLimits: { pageSize: string; limit: number }[];
  network: { classID?: number; priorities: LinuxInterfacePriority[] };
  rdma: { device: string; hcaHandles?: number; hcaObjects?: number }[];
  /** `[key, value]` in the given order. */
  unified: [string, string][];
}

/** Which file each field goes to, per cgroup version, for error messages. */
export type FileMap = Readonly<Record<string, string>>;

export const V1_FILES: FileMap = {
  'memory.limit': 'memory.limit_in_bytes',
  'memory.reservation': 'memory.soft_limit_in_bytes',
  'memory.swap': 'memory.memsw.limit_in_bytes',
  'memory.kernel': 'memory.kmem.limit_in_bytes',
  'memory.kernelTCP': 'memory.kmem.tcp.limit_in_bytes',
  'memory.swappiness': 'memory.swappiness',
  'memory.disableOOMKiller': 'memory.oom_control',
  'memory.useHierarchy': 'memory.use_hierarchy',
  'cpu.shares': 'cpu.shares',
  'cpu.quota': 'cpu.cfs_quota_us',
  'cpu.burst': 'cpu.cfs_burst_us',
  'cpu.period': 'cpu.cfs_period_us',
  'cpu.realtimeRuntime': 'cpu.rt_runtime_us',
  'cpu.realtimePeriod': 'cpu.rt_period_us',
  'cpu.cpus': 'cpuset.cpus',
  'cpu.mems': 'cpuset.mems',
  'cpu.idle': 'cpu.idle',
  'pids.limit': 'pids.max',
  devices: 'devices.allow/devices.deny',
  'blockIO.weight': 'blkio.weight',
  'blockIO.leafWeight': 'blkio.leaf_weight',
  'blockIO.weightDevice': 'blkio.weight_device',
  'blockIO.throttleReadBpsDevice': 'blkio.throttle.read_bps_device',
  'blockIO.throttleWriteBpsDevice': 'blkio.throttle.write_bps_device',
  'blockIO.throttleReadIOPSDevice': 'blkio.throttle.read_iops_device',
  'blockIO.throttleWriteIOPSDevice': 'blkio.throttle.write_iops_device',
  hugepageLimits: 'hugetlb.<pageSize>.limit_in_bytes',
  'network.classID': 'net_cls.classid',
  'network.priorities': 'net_prio.ifpriomap',
  rdma: 'rdma.max',
};

export const V2_FILES: FileMap = {
  'memory.limit': 'memory.max',
  'memory.reservation': 'memory.low',
  'memory.swap': 'memory.swap.max',
  'cpu.shares': 'cpu.weight',
  'cpu.quota': 'cpu.max',
  'cpu.burst': 'cpu.max.burst',
  'cpu.period': 'cpu.max',
  'cpu.cpus': 'cpuset.cpus',
  'cpu.mems': 'cpuset.mems',
  'cpu.idle': 'cpu.idle',
  'pids.limit': 'pids.max',
  devices: 'an eBPF cgroup device program',
  'blockIO.weight': 'io.bfq.weight or io.weight',
  'blockIO.weightDevice': 'io.bfq.weight or io.weight',
  'blockIO.throttleReadBpsDevice': 'io.max',
  'blockIO.throttleWriteBpsDevice': 'io.max',
  'blockIO.throttleReadIOPSDevice': 'io.max',
  'blockIO.throttleWriteIOPSDevice': 'io.max',
  hugepageLimits: 'hugetlb.<pageSize>.max',
  rdma: 'rdma.max',
};

/** Linux keeps device numbers in 32 bits: a 12-bit major and a 20-bit minor. */
export const MAX_MAJOR = 0xfff;
export const MAX_MINOR = 0xfffff;
const U32_MAX = 0xffffffff;

interface IntRule {
  /** Whether `-1` (unlimited) is allowed. */
  minusOne?: boolean;
  min?: number;
  max?: number;
  /** Text for the allowed range in messages, e.g. `"10..1000"`. */
  range?: string;
}

class Validator {
  constructor(private readonly files: FileMap) {}

  fail(field: string, problem: string): never {
    throw invalidField(field, problem, this.files[field.replace(/\[[^\]]*\].*$/, '')]);
  }

  object(field: string, v: unknown): Record<string, unknown> | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(field, 'must be an object');
    return v as Record<string, unknown>;
  }

  array(field: string, v: unknown): unknown[] {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(field, 'must be an array');
    return v;
  }

  /** A safe integer >= 0 (or -1 when allowed); `undefined` when absent or 0 with `zeroUnset`. */
  int(field: string, v: unknown, rule: IntRule, zeroUnset: boolean): number | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || Number.isNaN(v))
      this.fail(field, `must be a number, got ${JSON.stringify(v)}`);
    if (!Number.isInteger(v)) this.fail(field, `must be an integer, got ${v}`);
    if (!Number.isSafeInteger(v)) {
      this.fail(field, `${v} overflows: must be at most ${Number.MAX_SAFE_INTEGER} (2^53-1)`);
    }
    if (zeroUnset && v === 0) return undefined;
    if (v < 0 && !(rule.minusOne && v === -1)) {
      this.fail(field, rule.minusOne ? `must be >= 0 or -1 (unlimited), got ${v}` : `must be >= 0, got ${v}`);
    }
    if (v !== -1 || !rule.minusOne) {
      if (rule.min !== undefined && v < rule.min) {
        this.fail(field, `must be ${rule.range ?? `at least ${rule.min}`}, got ${v}`);
      }
      if (rule.max !== undefined && v > rule.max) {
        this.fail(field, `must be ${rule.range ?? `at most ${rule.max}`}, got ${v}`);
      }
    }
    return v;
  }

  required(field: string, v: unknown, rule: IntRule): number {
    const n = this.int(field, v, rule, false);
    if (n === undefined) this.fail(field, 'is required');
    return n;
  }

  list(field: string, v: unknown): string | undefined {
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') this.fail(field, `must be a string, got ${JSON.stringify(v)}`);
    if (!/^\s*\d+(-\d+)?(\s*,\s*\d+(-\d+)?)*\s*$/.test(v)) {
      this.fail(field, `must be a list such as "0-3,5", got ${JSON.stringify(v)}`);
    }
    return v.replace(/\s+/g, '');
  }

  bool(field: string, v: unknown): boolean | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') this.fail(field, `must be a boolean, got ${JSON.stringify(v)}`);
    return v;
  }

  devNum(field: string, v: unknown, max: number): string {
    if (v === undefined || v === null || v === -1) return '*';
    const n = this.int(field, v, { max, range: `-1 (all) or 0..${max}` }, false);
    return String(n);
  }

  device(i: number, v: unknown): DeviceRule {
    const f = `devices[${i}]`;
    const d = this.object(f, v);
    if (d === undefined) this.fail(f, 'must be an object');
    const allow = this.bool(`${f}.allow`, d['allow']);
    if (allow === undefined) this.fail(`${f}.allow`, 'is required (true or false)');
    const type = d['type'] ?? 'a';
    if (type !== 'a' && type !== 'b' && type !== 'c') {
      this.fail(`${f}.type`, `must be "a", "b" or "c", got ${JSON.stringify(type)}`);
    }
    const access = d['access'] ?? 'rwm';
    if (
      typeof access !== 'string' ||
      !/^[rwm]{1,3}$/.test(access) ||
      new Set(access).size !== access.length
    ) {
      this.fail(`${f}.access`, `must be made of distinct "r", "w", "m", got ${JSON.stringify(access)}`);
    }
    return {
      allow,
      type,
      major: this.devNum(`${f}.major`, d['major'], MAX_MAJOR),
      minor: this.devNum(`${f}.minor`, d['minor'], MAX_MINOR),
      access,
    };
  }

  blockDevice(f: string, d: Record<string, unknown>): { major: number; minor: number } {
    return {
      major: this.required(`${f}.major`, d['major'], { max: MAX_MAJOR, range: `0..${MAX_MAJOR}` }),
      minor: this.required(`${f}.minor`, d['minor'], { max: MAX_MINOR, range: `0..${MAX_MINOR}` }),
    };
  }
}

const WEIGHT: IntRule = { min: 10, max: 1000, range: '10..1000' };

function validateBlockIO(
  v: Validator,
  b: Record<string, unknown>,
  out: NormalizedResources['blockIO'],
): void {
  const weight = v.int('blockIO.weight', b['weight'], WEIGHT, true);
  const leafWeight = v.int('blockIO.leafWeight', b['leafWeight'], WEIGHT, true);
  if (weight !== undefined) out.weight = weight;
  if (leafWeight !== undefined) out.leafWeight = leafWeight;
  v.array('blockIO.weightDevice', b['weightDevice']).forEach((e, i) => {
    const f = `blockIO.weightDevice[${i}]`;
    const d = v.object(f, e);
    if (d === undefined) v.fail(f, 'must be an object');
    const rule: WeightDeviceRule = v.blockDevice(f, d);
    const w = v.int(`${f}.weight`, d['weight'], WEIGHT, true);
    const lw = v.int(`${f}.leafWeight`, d['leafWeight'], WEIGHT, true);
    if (w !== undefined) rule.weight = w;
    if (lw !== undefined) rule.leafWeight = lw;
    if (w === undefined && lw === undefined) v.fail(f, 'needs a weight or a leafWeight');
    out.weightDevice.push(rule);
  });
  for (const name of THROTTLE_FIELDS) {
    v.array(`blockIO.${name}`, b[name]).forEach((e, i) => {
      const f = `blockIO.${name}[${i}]`;
      const d = v.object(f, e);
      if (d === undefined) v.fail(f, 'must be an object');
      out.throttle[name].push({ ...v.blockDevice(f, d), rate: v.required(`${f}.rate`, d['rate'], {}) });
    });
  }
}

/** `"2MB"` → bytes, or `undefined` when the size is malformed. */
export function pageSizeBytes(pageSize: string): number | undefined {
  const m = /^([1-9][0-9]*)(KB|MB|GB|TB|PB)$/.exec(pageSize);
  if (m === null) return undefined;
  const unit = { KB: 2 ** 10, MB: 2 ** 20, GB: 2 ** 30, TB: 2 ** 40, PB: 2 ** 50 }[m[2] as 'KB'];
  return Number(m[1]) * unit;
}

/** Unified keys that name `cgroup.*` files and may still be written. */
export const UNIFIED_CGROUP_ALLOWED: ReadonlySet<string> = new Set([
  'cgroup.max.depth',
  'cgroup.max.descendants',
  'cgroup.pressure',
]);

function validateUnified(v: Validator, u: Record<string, unknown>, out: [string, string][]): void {
  for (const [key, value] of Object.entries(u)) {
    const f = `unified[${JSON.stringify(key)}]`;
    if (!/^[a-z][a-z0-9_]*\.[A-Za-z0-9_.]+$/.test(key) || key.includes('..')) {
      v.fail(f, 'must be a cgroup v2 file name "<controller>.<file>" such as "memory.high" (no "/")');
    }
    if (key.startsWith('cgroup.') && !UNIFIED_CGROUP_ALLOWED.has(key)) {
      v.fail(
        f,
        `cgroup core files are managed by the runtime, not resources; only ${[...UNIFIED_CGROUP_ALLOWED].join(', ')} may be set`,
      );
    }
    if (typeof value !== 'string') v.fail(f, `must be a string, got ${JSON.stringify(value)}`);
    if (value.includes('\0')) v.fail(f, 'must not contain NUL');
    out.push([key, value]);
  }
}

/**
 * Validate OCI resources before anything is written.
 *
 * @param r - the resources, possibly straight from JSON
 * @param files - field → file names used in messages ({@link V1_FILES} or {@link V2_FILES})
 * @throws CgroupError `Invalid` naming the field, e.g. `linux.resources.memory.limit: must be an integer`
 */
export function validateResources(r: LinuxResources, files: FileMap = V1_FILES): NormalizedResources {
  const v: Validator = new Validator(files);
  const top = v.object('', r) ?? {};
  const out: NormalizedResources = {
    devices: [],
    memory: {},
    cpu: {},
    blockIO: {
      weightDevice: [],
      throttle: {
        throttleReadBpsDevice: [],
        throttleWriteBpsDevice: [],
        throttleReadIOPSDevice: [],
        throttleWriteIOPSDevice: [],
      },
    },
    hugepageLimits: [],
    network: { priorities: [] },
    rdma: [],
    unified: [],
  };

  out.devices = v.array('devices', top['devices']).map((d, i) => v.device(i, d));

  const mem = v.object('memory', top['memory']);
  if (mem !== undefined) {
    const m = out.memory;
    const limit = v.int('memory.limit', mem['limit'], { minusOne: true }, true);
    const reservation = v.int('memory.reservation', mem['reservation'], { minusOne: true }, true);
    const swap = v.int('memory.swap', mem['swap'], { minusOne: true }, true);
    const kernel = v.int('memory.kernel', mem['kernel'], { minusOne: true }, true);
    const kernelTCP = v.int('memory.kernelTCP', mem['kernelTCP'], { minusOne: true }, true);
    const swappiness = v.int('memory.swappiness', mem['swappiness'], { max: 100 }, false);
    const oom = v.bool('memory.disableOOMKiller', mem['disableOOMKiller']);
    const hier = v.bool('memory.useHierarchy', mem['useHierarchy']);
    const check = v.bool('memory.checkBeforeUpdate', mem['checkBeforeUpdate']);
    if (limit !== undefined) m.limit = limit;
    if (reservation !== undefined) m.reservation = reservation;
    if (swap !== undefined) m.swap = swap;
    if (kernel !== undefined) m.kernel = kernel;
    if (kernelTCP !== undefined) m.kernelTCP = kernelTCP;
    if (swappiness !== undefined) m.swappiness = swappiness;
    if (oom !== undefined) m.disableOOMKiller = oom;
    if (hier !== undefined) m.useHierarchy = hier;
    if (check !== undefined) m.checkBeforeUpdate = check;
    if (limit !== undefined && swap !== undefined && swap !== -1) {
      if (limit === -1) v.fail('memory.swap', `must be -1 (unlimited) when memory.limit is -1, got ${swap}`);
      if (swap < limit) {
        v.fail(
          'memory.swap',
          `memory+swap limit ${swap} must be >= memory.limit ${limit} (OCI swap is memory+swap)`,
        );
      }
    }
  }

  const cpu = v.object('cpu', top['cpu']);
  if (cpu !== undefined) {
    const c = out.cpu;
    const shares = v.int('cpu.shares', cpu['shares'], {}, true);
    const quota = v.int('cpu.quota', cpu['quota'], { minusOne: true }, true);
    const burst = v.int('cpu.burst', cpu['burst'], {}, false);
    const period = v.int('cpu.period', cpu['period'], {}, true);
    const rtRuntime = v.int('cpu.realtimeRuntime', cpu['realtimeRuntime'], {}, true);
    const rtPeriod = v.int('cpu.realtimePeriod', cpu['realtimePeriod'], {}, true);
    const cpus = v.list('cpu.cpus', cpu['cpus']);
    const mems = v.list('cpu.mems', cpu['mems']);
    const idle = v.int('cpu.idle', cpu['idle'], { max: 1, range: '0 or 1' }, false);
    if (shares !== undefined) c.shares = shares;
    if (quota !== undefined) c.quota = quota;
    if (burst !== undefined) c.burst = burst;
    if (period !== undefined) c.period = period;
    if (rtRuntime !== undefined) c.realtimeRuntime = rtRuntime;
    if (rtPeriod !== undefined) c.realtimePeriod = rtPeriod;
    if (cpus !== undefined) c.cpus = cpus;
    if (mems !== undefined) c.mems = mems;
    if (idle !== undefined) c.idle = idle;
  }

  const pids = v.object('pids', top['pids']);
  if (pids !== undefined) {
    const limit = v.int('pids.limit', pids['limit'], { minusOne: true }, false);
    if (limit === undefined) v.fail('pids.limit', 'is required');
    out.pids = limit <= 0 ? 'max' : String(limit);
  }

  const blkio = v.object('blockIO', top['blockIO']);
  if (blkio !== undefined) validateBlockIO(v, blkio, out.blockIO);

  const seenSizes = new Set<string>();
  v.array('hugepageLimits', top['hugepageLimits']).forEach((e, i) => {
    const f = `hugepageLimits[${i}]`;
    const h = v.object(f, e);
    if (h === undefined) v.fail(f, 'must be an object');
    const pageSize = h['pageSize'];
    if (typeof pageSize !== 'string' || pageSizeBytes(pageSize) === undefined) {
      v.fail(`${f}.pageSize`, `must be a size such as "2MB" or "1GB", got ${JSON.stringify(pageSize)}`);
    }
    if (seenSizes.has(pageSize)) v.fail(`${f}.pageSize`, `${pageSize} is listed twice`);
    seenSizes.add(pageSize);
    out.hugepageLimits.push({ pageSize, limit: v.required(`${f}.limit`, h['limit'], { minusOne: true }) });
  });

  const net = v.object('network', top['network']);
  if (net !== undefined) {
    const classID = v.int('network.classID', net['classID'], { max: U32_MAX }, false);
    if (classID !== undefined) out.network.classID = classID;
    v.array('network.priorities', net['priorities']).forEach((e, i) => {
      const f = `network.priorities[${i}]`;
      const p = v.object(f, e);
      if (p === undefined) v.fail(f, 'must be an object');
      const name = p['name'];
      if (typeof name !== 'string' || !/^[^\s/:]{1,15}$/.test(name)) {
        v.fail(`${f}.name`, `must be a network interface name, got ${JSON.stringify(name)}`);
      }
      out.network.priorities.push({
        name,
        priority: v.required(`${f}.priority`, p['priority'], { max: U32_MAX }),
      });
    });
  }

  const rdma = v.object('rdma', top['rdma']);
  if (rdma !== undefined) {
    for (const [device, value] of Object.entries(rdma)) {
      const f = `rdma[${JSON.stringify(device)}]`;
      if (!/^[A-Za-z0-9_.:-]+$/.test(device)) v.fail(f, 'must be an RDMA device name such as "mlx5_0"');
      const l = v.object(f, value);
      if (l === undefined) v.fail(f, 'must be an object');
      const entry: NormalizedResources['rdma'][number] = { device };
      const handles = v.int(`${f}.hcaHandles`, l['hcaHandles'], { max: U32_MAX }, false);
      const objects = v.int(`${f}.hcaObjects`, l['hcaObjects'], { max: U32_MAX }, false);
      if (handles !== undefined) entry.hcaHandles = handles;
      if (objects !== undefined) entry.hcaObjects = objects;
      if (handles === undefined && objects === undefined) v.fail(f, 'needs hcaHandles or hcaObjects');
      out.rdma.push(entry);
    }
  }

  const unified = v.object('unified', top['unified']);
  if (unified !== undefined) validateUnified(v, unified, out.unified);
  return out;
}
