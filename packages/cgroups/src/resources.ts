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
  /** 0..100 (v1 only). */
  swappiness?: number;
  /** Disable the OOM killer (v1 only; v2 has no such switch and reports it as skipped). */
  disableOOMKiller?: boolean;
}

/** OCI `linux.resources.cpu`. Numeric `0` means "not set", as in runc. */
export interface LinuxCPU {
  /** Relative weight (v1 `cpu.shares`; v2 `cpu.weight`, converted). */
  shares?: number;
  /** CFS quota in µs per period; `-1` = unlimited. */
  quota?: number;
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
}

/** OCI `linux.resources.pids`. */
export interface LinuxPids {
  /** Maximum number of tasks; `-1` or `0` = unlimited (`"max"`). */
  limit: number;
}

/** OCI `linux.resources` subset handled now (names and units exactly as in the OCI runtime spec). */
export interface LinuxResources {
  devices?: LinuxDeviceCgroup[];
  memory?: LinuxMemory;
  cpu?: LinuxCPU;
  pids?: LinuxPids;
}

/** What `apply()` did. */
export interface ApplyResult {
  /** Every write, in order, as `"<file>=<value>"`, e.g. `"memory.limit_in_bytes=33554432"`. */
  applied: string[];
  /** Requested resources that nothing enforces on this layout, e.g. device rules on cgroup v2. */
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

/** Validated resources: `0`/empty "not set" values are dropped; numbers are safe integers. */
export interface NormalizedResources {
  devices: DeviceRule[];
  memory: {
    limit?: number;
    reservation?: number;
    swap?: number;
    swappiness?: number;
    disableOOMKiller?: boolean;
  };
  cpu: {
    shares?: number;
    quota?: number;
    period?: number;
    realtimeRuntime?: number;
    realtimePeriod?: number;
    cpus?: string;
    mems?: string;
  };
  /** `'max'` or a positive number, when set. */
  pids?: string;
}

/** Which file each field goes to, per cgroup version, for error messages. */
export type FileMap = Readonly<Record<string, string>>;

export const V1_FILES: FileMap = {
  'memory.limit': 'memory.limit_in_bytes',
  'memory.reservation': 'memory.soft_limit_in_bytes',
  'memory.swap': 'memory.memsw.limit_in_bytes',
  'memory.swappiness': 'memory.swappiness',
  'memory.disableOOMKiller': 'memory.oom_control',
  'cpu.shares': 'cpu.shares',
  'cpu.quota': 'cpu.cfs_quota_us',
  'cpu.period': 'cpu.cfs_period_us',
  'cpu.realtimeRuntime': 'cpu.rt_runtime_us',
  'cpu.realtimePeriod': 'cpu.rt_period_us',
  'cpu.cpus': 'cpuset.cpus',
  'cpu.mems': 'cpuset.mems',
  'pids.limit': 'pids.max',
  devices: 'devices.allow/devices.deny',
};

export const V2_FILES: FileMap = {
  'memory.limit': 'memory.max',
  'memory.reservation': 'memory.low',
  'memory.swap': 'memory.swap.max',
  'cpu.shares': 'cpu.weight',
  'cpu.quota': 'cpu.max',
  'cpu.period': 'cpu.max',
  'cpu.cpus': 'cpuset.cpus',
  'cpu.mems': 'cpuset.mems',
  'pids.limit': 'pids.max',
};

interface IntRule {
  /** Whether `-1` (unlimited) is allowed. */
  minusOne?: boolean;
  max?: number;
}

class Validator {
  constructor(private readonly files: FileMap) {}

  fail(field: string, problem: string): never {
    throw invalidField(field, problem, this.files[field.replace(/\[\d+\].*$/, '')]);
  }

  object(field: string, v: unknown): Record<string, unknown> | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(field, 'must be an object');
    return v as Record<string, unknown>;
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
    if (v < 0 && !(rule.minusOne && v === -1)) {
      this.fail(field, rule.minusOne ? `must be >= 0 or -1 (unlimited), got ${v}` : `must be >= 0, got ${v}`);
    }
    if (rule.max !== undefined && v > rule.max) this.fail(field, `must be at most ${rule.max}, got ${v}`);
    return zeroUnset && v === 0 ? undefined : v;
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

  devNum(field: string, v: unknown): string {
    if (v === undefined || v === null || v === -1) return '*';
    const n = this.int(field, v, {}, false);
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
      major: this.devNum(`${f}.major`, d['major']),
      minor: this.devNum(`${f}.minor`, d['minor']),
      access,
    };
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
  const out: NormalizedResources = { devices: [], memory: {}, cpu: {} };

  const devices = top['devices'];
  if (devices !== undefined && devices !== null) {
    if (!Array.isArray(devices)) v.fail('devices', 'must be an array');
    out.devices = devices.map((d, i) => v.device(i, d));
  }

  const mem = v.object('memory', top['memory']);
  if (mem !== undefined) {
    const m = out.memory;
    const limit = v.int('memory.limit', mem['limit'], { minusOne: true }, true);
    const reservation = v.int('memory.reservation', mem['reservation'], { minusOne: true }, true);
    const swap = v.int('memory.swap', mem['swap'], { minusOne: true }, true);
    const swappiness = v.int('memory.swappiness', mem['swappiness'], { max: 100 }, false);
    const oom = v.bool('memory.disableOOMKiller', mem['disableOOMKiller']);
    if (limit !== undefined) m.limit = limit;
    if (reservation !== undefined) m.reservation = reservation;
    if (swap !== undefined) m.swap = swap;
    if (swappiness !== undefined) m.swappiness = swappiness;
    if (oom !== undefined) m.disableOOMKiller = oom;
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
    const period = v.int('cpu.period', cpu['period'], {}, true);
    const rtRuntime = v.int('cpu.realtimeRuntime', cpu['realtimeRuntime'], {}, true);
    const rtPeriod = v.int('cpu.realtimePeriod', cpu['realtimePeriod'], {}, true);
    const cpus = v.list('cpu.cpus', cpu['cpus']);
    const mems = v.list('cpu.mems', cpu['mems']);
    if (shares !== undefined) c.shares = shares;
    if (quota !== undefined) c.quota = quota;
    if (period !== undefined) c.period = period;
    if (rtRuntime !== undefined) c.realtimeRuntime = rtRuntime;
    if (rtPeriod !== undefined) c.realtimePeriod = rtPeriod;
    if (cpus !== undefined) c.cpus = cpus;
    if (mems !== undefined) c.mems = mems;
  }

  const pids = v.object('pids', top['pids']);
  if (pids !== undefined) {
    const limit = v.int('pids.limit', pids['limit'], { minusOne: true }, false);
    if (limit === undefined) v.fail('pids.limit', 'is required');
    out.pids = limit <= 0 ? 'max' : String(limit);
  }
  return out;
}
