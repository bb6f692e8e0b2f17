import { join } from 'node:path';
import { CgroupError, fieldError, invalidField } from './errors.js';
import {
  cgroupTreeDeepestFirst,
  exists,
  readFile,
  readFileIfExists,
  sleepSync,
  writeFile,
} from './fsutil.js';
import { checkPlanFiles, newPlan, type Plan, runPlan, skip, write } from './plan.js';
import {
  type ApplyResult,
  type DeviceRule,
  type NormalizedResources,
  THROTTLE_FIELDS,
  type ThrottleField,
  V1_FILES,
} from './resources.js';
import { planUnified } from './unified.js';

/** Controller name → absolute cgroup directory, for the v1 hierarchies. */
export type V1Dirs = Readonly<Record<string, string>>;

/** Options of {@link planV1}. */
export interface PlanV1Options {
  /** The cgroup v2 directory of a hybrid layout, which may take `unified` keys it has files for. */
  unifiedDir?: string;
}

/** Parse a v1 counter/limit file (may exceed 2^53) as a bigint. */
export function readBig(file: string): bigint {
  const text = readFile(file).trim();
  try {
    return BigInt(text);
  } catch {
    throw new CgroupError('System', 'read', `read ${file}: unexpected content "${text}"`, { path: file });
  }
}

/** Values at or above this are the kernel's "unlimited" (`PAGE_COUNTER_MAX` pages, about 2^63). */
export const V1_UNLIMITED = 1n << 62n;

function isAllDevices(d: DeviceRule): boolean {
  return d.type === 'a' && d.major === '*' && d.minor === '*' && d.access.length === 3;
}

/** The `devices.allow`/`devices.deny` lines of one rule (type `a` with a narrower rule becomes `b` + `c`). */
export function deviceLines(d: DeviceRule): string[] {
  if (isAllDevices(d)) return ['a'];
  const types = d.type === 'a' ? ['b', 'c'] : [d.type];
  return types.map((t) => `${t} ${d.major}:${d.minor} ${d.access}`);
}

/** The first field of `obj` (among `names`) that is set, as `prefix.name`. */
function firstSet(prefix: string, obj: object, names: readonly string[]): string | undefined {
  const rec = obj as Record<string, unknown>;
  const n = names.find((k) => {
    const v = rec[k];
    return v !== undefined && !(Array.isArray(v) && v.length === 0);
  });
  return n === undefined ? undefined : `${prefix}.${n}`;
}

/**
 * The directory of a v1 controller for a requested field, or `undefined` when `field` is
 * undefined (nothing requested). Throws `Unsupported` when the controller is not mounted.
 */
function need(dirs: V1Dirs, controller: string, field: string | undefined, file: string): string | undefined {
  if (field === undefined) return undefined;
  const dir = dirs[controller];
  if (dir === undefined) {
    const target = V1_FILES[field.replace(/\[.*$/, '')] ?? file;
    throw fieldError(
      field,
      `the ${controller} controller is not mounted (cgroup v1), so ${target} cannot be written`,
    );
  }
  return dir;
}

/**
 * Plan the writes of resources into cgroup v1 hierarchies (also used for hybrid layouts). Every
 * check (controllers mounted, files present, values consistent with the current state) happens
 * here, before the first write.
 */
export function planV1(dirs: V1Dirs, r: NormalizedResources, opts: PlanV1Options = {}): Plan {
  const plan = newPlan();
  const m = r.memory;
  const c = r.cpu;
  const b = r.blockIO;
  const memDir = need(
    dirs,
    'memory',
    firstSet('memory', m, [
      'limit',
      'reservation',
      'swap',
      'kernel',
      'kernelTCP',
      'swappiness',
      'disableOOMKiller',
      'useHierarchy',
    ]),
    'memory.*',
  );
  const cpuDir = need(
    dirs,
    'cpu',
    firstSet('cpu', c, ['shares', 'quota', 'burst', 'period', 'realtimeRuntime', 'realtimePeriod', 'idle']),
    'cpu.*',
  );
  const cpusetDir = need(dirs, 'cpuset', firstSet('cpu', c, ['cpus', 'mems']), 'cpuset.*');
  const pidsDir = need(dirs, 'pids', r.pids === undefined ? undefined : 'pids.limit', 'pids.max');
  const devDir = need(dirs, 'devices', r.devices.length > 0 ? 'devices' : undefined, 'devices.allow');
  const blkioDir = need(
    dirs,
    'blkio',
    firstSet('blockIO', b, ['weight', 'leafWeight', 'weightDevice']) ??
      firstSet('blockIO', b.throttle, THROTTLE_FIELDS),
    'blkio.*',
  );
  const hugeDir = need(
    dirs,
    'hugetlb',
    r.hugepageLimits.length > 0 ? 'hugepageLimits' : undefined,
    'hugetlb.*',
  );
  const clsDir = need(
    dirs,
    'net_cls',
    r.network.classID === undefined ? undefined : 'network.classID',
    'net_cls.classid',
  );
  const prioDir = need(
    dirs,
    'net_prio',
    r.network.priorities.length > 0 ? 'network.priorities' : undefined,
    'net_prio.ifpriomap',
  );
  const rdmaDir = need(dirs, 'rdma', r.rdma.length > 0 ? 'rdma' : undefined, 'rdma.max');

  if (memDir !== undefined) planMemory(plan, memDir, m);
  if (cpuDir !== undefined) planCpu(plan, cpuDir, c);
  if (cpusetDir !== undefined) {
    if (c.cpus !== undefined) write(plan, 'cpu.cpus', cpusetDir, 'cpuset.cpus', c.cpus);
    if (c.mems !== undefined) write(plan, 'cpu.mems', cpusetDir, 'cpuset.mems', c.mems);
  }
  if (pidsDir !== undefined && r.pids !== undefined) write(plan, 'pids.limit', pidsDir, 'pids.max', r.pids);
  if (devDir !== undefined) planDevices(plan, devDir, r.devices);
  if (blkioDir !== undefined) planBlkio(plan, blkioDir, b);
  if (hugeDir !== undefined) {
    r.hugepageLimits.forEach((h, i) => {
      const file = `hugetlb.${h.pageSize}.limit_in_bytes`;
      if (exists(hugeDir) && !exists(join(hugeDir, file))) {
        throw fieldError(
          `hugepageLimits[${i}].pageSize`,
          `this kernel has no ${h.pageSize} huge pages (no ${join(hugeDir, file)})`,
        );
      }
      write(plan, `hugepageLimits[${i}]`, hugeDir, file, String(h.limit));
      // OCI: "default to reservation limits if supported" (as runc does, both are set).
      const rsvd = `hugetlb.${h.pageSize}.rsvd.limit_in_bytes`;
      if (exists(join(hugeDir, rsvd))) write(plan, `hugepageLimits[${i}]`, hugeDir, rsvd, String(h.limit));
    });
  }
  if (clsDir !== undefined && r.network.classID !== undefined) {
    write(plan, 'network.classID', clsDir, 'net_cls.classid', String(r.network.classID));
  }
  if (prioDir !== undefined) {
    r.network.priorities.forEach((p, i) => {
      write(plan, `network.priorities[${i}]`, prioDir, 'net_prio.ifpriomap', `${p.name} ${p.priority}`);
    });
  }
  if (rdmaDir !== undefined) {
    for (const e of r.rdma)
      write(plan, `rdma[${JSON.stringify(e.device)}]`, rdmaDir, 'rdma.max', rdmaLine(e));
  }
  if (r.unified.length > 0) planUnifiedV1(plan, r.unified, opts.unifiedDir);
  checkPlanFiles(plan);
  return plan;
}

/** `mlx5_0 hca_handle=2 hca_object=2000` (only the given keys). */
export function rdmaLine(e: NormalizedResources['rdma'][number]): string {
  let line = e.device;
  if (e.hcaHandles !== undefined) line += ` hca_handle=${e.hcaHandles}`;
  if (e.hcaObjects !== undefined) line += ` hca_object=${e.hcaObjects}`;
  return line;
}

function planUnifiedV1(plan: Plan, entries: [string, string][], unifiedDir: string | undefined): void {
  if (unifiedDir === undefined) {
    const [key] = entries[0] as [string, string];
    throw fieldError(
      `unified[${JSON.stringify(key)}]`,
      'unified keys are cgroup v2 files, and this host has only cgroup v1 hierarchies',
    );
  }
  for (const [key] of entries) {
    if (!exists(join(unifiedDir, key))) {
      throw fieldError(
        `unified[${JSON.stringify(key)}]`,
        `unified keys are cgroup v2 files; on this hybrid host resources go to cgroup v1, and the cgroup v2 directory has no ${join(unifiedDir, key)} (its controllers are bound to v1)`,
      );
    }
  }
  planUnified(plan, unifiedDir, entries);
}

/** v1 memory files, ordered so that `limit <= memsw` holds at every moment. */
function planMemory(plan: Plan, dir: string, m: NormalizedResources['memory']): void {
  const LIMIT = 'memory.limit_in_bytes';
  const MEMSW = 'memory.memsw.limit_in_bytes';
  const hasMemsw = exists(join(dir, MEMSW));
  const dirExists = exists(dir);
  if (m.swap !== undefined && !hasMemsw && dirExists) {
    throw fieldError(
      'memory.swap',
      `swap accounting is not enabled (no ${join(dir, MEMSW)}), so a memory+swap limit cannot be set`,
    );
  }
  if (m.useHierarchy !== undefined) {
    const f = 'memory.use_hierarchy';
    if (exists(join(dir, f)) || !dirExists)
      write(plan, 'memory.useHierarchy', dir, f, m.useHierarchy ? '1' : '0');
    else skip(plan, 'memory.useHierarchy', `${f} does not exist on this kernel`);
  }
  if (m.checkBeforeUpdate === true && dirExists) {
    checkBeforeUpdate(dir, 'memory.limit', m.limit, readBig(join(dir, 'memory.usage_in_bytes')), LIMIT);
    if (hasMemsw) {
      const usage = readBig(join(dir, 'memory.memsw.usage_in_bytes'));
      checkBeforeUpdate(dir, 'memory.swap', m.swap, usage, MEMSW);
    }
  }
  const limit = m.limit;
  let swap = m.swap;
  // Like runc: an unlimited memory limit without an explicit swap also lifts the memory+swap limit.
  if (limit === -1 && swap === undefined && hasMemsw) swap = -1;
  const big = (n: number): bigint => (n === -1 ? BigInt('0x7fffffffffffffff') : BigInt(n));
  if (limit !== undefined && swap !== undefined) {
    // The kernel requires limit <= memsw at every moment. If the new limit exceeds the current
    // memsw, raise memsw first (the new swap is >= the new limit, so both writes are valid).
    const curMemsw = dirExists ? readBig(join(dir, MEMSW)) : 0n;
    if (big(limit) > curMemsw) {
      write(plan, 'memory.swap', dir, MEMSW, String(swap));
      write(plan, 'memory.limit', dir, LIMIT, String(limit));
    } else {
      write(plan, 'memory.limit', dir, LIMIT, String(limit));
      write(plan, 'memory.swap', dir, MEMSW, String(swap));
    }
  } else if (limit !== undefined) {
    if (hasMemsw) {
      const curMemsw = readBig(join(dir, MEMSW));
      if (big(limit) > curMemsw) {
        throw invalidField(
          'memory.limit',
          `${limit} is above the current memory+swap limit ${curMemsw} (${MEMSW}); set memory.swap as well`,
          LIMIT,
        );
      }
    }
    write(plan, 'memory.limit', dir, LIMIT, String(limit));
  } else if (swap !== undefined) {
    const curLimit = dirExists ? readBig(join(dir, LIMIT)) : 0n;
    if (big(swap) < curLimit) {
      throw invalidField(
        'memory.swap',
        `${swap} is below the current memory limit ${curLimit} (${LIMIT}); set memory.limit as well`,
        MEMSW,
      );
    }
    write(plan, 'memory.swap', dir, MEMSW, String(swap));
  }
  if (m.reservation !== undefined) {
    write(plan, 'memory.reservation', dir, 'memory.soft_limit_in_bytes', String(m.reservation));
  }
  if (m.swappiness !== undefined)
    write(plan, 'memory.swappiness', dir, 'memory.swappiness', String(m.swappiness));
  if (m.disableOOMKiller !== undefined) {
    write(plan, 'memory.disableOOMKiller', dir, 'memory.oom_control', m.disableOOMKiller ? '1' : '0');
  }
  if (m.kernel !== undefined) {
    const f = 'memory.kmem.limit_in_bytes';
    if (exists(join(dir, f)) || !dirExists) {
      write(plan, 'memory.kernel', dir, f, String(m.kernel), {
        check: (file) =>
          m.kernel !== -1 && readBig(file) >= V1_UNLIMITED
            ? `${f} was written but the kernel ignores it (kernel memory limits were removed in Linux 6.1; the field is deprecated in OCI)`
            : undefined,
      });
    } else {
      skip(
        plan,
        'memory.kernel',
        `${f} does not exist on this kernel (kernel memory limits are deprecated in OCI)`,
      );
    }
  }
  if (m.kernelTCP !== undefined) {
    const f = 'memory.kmem.tcp.limit_in_bytes';
    if (exists(join(dir, f)) || !dirExists) write(plan, 'memory.kernelTCP', dir, f, String(m.kernelTCP));
    else skip(plan, 'memory.kernelTCP', `${f} does not exist on this kernel (deprecated in OCI)`);
  }
}

/** OCI `checkBeforeUpdate` (as runc): refuse a limit that is not above the current usage. */
export function checkBeforeUpdate(
  dir: string,
  field: string,
  limit: number | undefined,
  usage: bigint,
  file: string,
): void {
  if (limit === undefined || limit <= 0) return;
  if (BigInt(limit) <= usage) {
    throw invalidField(
      field,
      `${limit} is not above the current usage ${usage} of ${dir} (memory.checkBeforeUpdate is set)`,
      file,
    );
  }
}

function planCpu(plan: Plan, dir: string, c: NormalizedResources['cpu']): void {
  // The kernel refuses a weight for an idle group: leave idle first, or enter it last.
  const idle = (): void => {
    if (c.idle === undefined) return;
    if (exists(join(dir, 'cpu.idle')) || !exists(dir))
      write(plan, 'cpu.idle', dir, 'cpu.idle', String(c.idle));
    else skip(plan, 'cpu.idle', 'cpu.idle does not exist on this kernel (needs Linux 5.15)');
  };
  if (c.idle === 0) idle();
  // An idle group has no weight: with idle 1 the shares are meaningless, and a
  // group that is idle already refuses them (EINVAL), so they are not written.
  if (c.shares !== undefined && c.idle === 1) {
    skip(plan, 'cpu.shares', 'an idle cgroup (cpu.idle 1) has no weight');
  } else if (c.shares !== undefined) {
    const shares = c.shares;
    write(plan, 'cpu.shares', dir, 'cpu.shares', String(shares), {
      check: (file) => {
        const got = readFile(file).trim();
        if (got !== String(shares)) {
          throw invalidField(
            'cpu.shares',
            `the kernel clamped ${shares} to ${got}; cgroup v1 allows 2..262144`,
            file,
          );
        }
        return undefined;
      },
    });
  }
  // Like runc: a smaller period (or a larger burst) may be refused until the quota is written.
  const afterQuota = c.quota === undefined ? {} : { retryAfter: 'cpu.cfs_quota_us' };
  if (c.period !== undefined)
    write(plan, 'cpu.period', dir, 'cpu.cfs_period_us', String(c.period), afterQuota);
  if (c.burst !== undefined) {
    if (exists(join(dir, 'cpu.cfs_burst_us')) || !exists(dir)) {
      write(plan, 'cpu.burst', dir, 'cpu.cfs_burst_us', String(c.burst), afterQuota);
    } else {
      skip(plan, 'cpu.burst', 'cpu.cfs_burst_us does not exist on this kernel (needs Linux 5.14)');
    }
  }
  if (c.quota !== undefined) write(plan, 'cpu.quota', dir, 'cpu.cfs_quota_us', String(c.quota));
  if (c.idle === 1) idle();
  if (c.realtimePeriod !== undefined) {
    const afterRuntime = c.realtimeRuntime === undefined ? {} : { retryAfter: 'cpu.rt_runtime_us' };
    write(plan, 'cpu.realtimePeriod', dir, 'cpu.rt_period_us', String(c.realtimePeriod), afterRuntime);
  }
  if (c.realtimeRuntime !== undefined) {
    write(plan, 'cpu.realtimeRuntime', dir, 'cpu.rt_runtime_us', String(c.realtimeRuntime));
  }
}

function planDevices(plan: Plan, dir: string, rules: readonly DeviceRule[]): void {
  let start = 0;
  const first = rules[0];
  if (first !== undefined && !first.allow && isAllDevices(first)) {
    write(plan, 'devices[0]', dir, 'devices.deny', 'a');
    start = 1;
  }
  rules.forEach((rule, i) => {
    if (i < start) return;
    for (const line of deviceLines(rule)) {
      write(plan, `devices[${i}]`, dir, rule.allow ? 'devices.allow' : 'devices.deny', line);
    }
  });
}

const THROTTLE_FILES_V1: Record<ThrottleField, string> = {
  throttleReadBpsDevice: 'blkio.throttle.read_bps_device',
  throttleWriteBpsDevice: 'blkio.throttle.write_bps_device',
  throttleReadIOPSDevice: 'blkio.throttle.read_iops_device',
  throttleWriteIOPSDevice: 'blkio.throttle.write_iops_device',
};

const CFQ_ONLY = 'leaf weights exist only with the CFQ I/O scheduler, removed in Linux 5.0';

function planBlkio(plan: Plan, dir: string, b: NormalizedResources['blockIO']): void {
  const has = (f: string): boolean => exists(join(dir, f));
  const dirExists = exists(dir);
  // CFQ's blkio.weight, else BFQ's blkio.bfq.weight (as runc chooses).
  const [weightFile, weightDeviceFile] = has('blkio.weight')
    ? ['blkio.weight', 'blkio.weight_device']
    : ['blkio.bfq.weight', 'blkio.bfq.weight_device'];
  const needsWeight = b.weight !== undefined || b.weightDevice.some((d) => d.weight !== undefined);
  if (needsWeight && dirExists && !has(weightFile)) {
    throw fieldError(
      b.weight !== undefined ? 'blockIO.weight' : 'blockIO.weightDevice',
      `neither blkio.weight (CFQ) nor blkio.bfq.weight (BFQ) exists in ${dir}: no proportional-weight I/O scheduler`,
    );
  }
  if (b.weight !== undefined) write(plan, 'blockIO.weight', dir, weightFile, String(b.weight));
  if (b.leafWeight !== undefined) {
    if (has('blkio.leaf_weight'))
      write(plan, 'blockIO.leafWeight', dir, 'blkio.leaf_weight', String(b.leafWeight));
    else skip(plan, 'blockIO.leafWeight', CFQ_ONLY);
  }
  b.weightDevice.forEach((d, i) => {
    const f = `blockIO.weightDevice[${i}]`;
    if (d.weight !== undefined) write(plan, f, dir, weightDeviceFile, `${d.major}:${d.minor} ${d.weight}`);
    if (d.leafWeight !== undefined) {
      if (has('blkio.leaf_weight_device')) {
        write(plan, f, dir, 'blkio.leaf_weight_device', `${d.major}:${d.minor} ${d.leafWeight}`);
      } else {
        skip(plan, `${f}.leafWeight`, CFQ_ONLY);
      }
    }
  });
  for (const name of THROTTLE_FIELDS) {
    b.throttle[name].forEach((t, i) => {
      write(plan, `blockIO.${name}[${i}]`, dir, THROTTLE_FILES_V1[name], `${t.major}:${t.minor} ${t.rate}`);
    });
  }
}

/** Plan and write resources into cgroup v1 hierarchies (also used for hybrid layouts). */
export function applyV1(
  dirs: V1Dirs,
  r: NormalizedResources,
  result: ApplyResult,
  opts: PlanV1Options = {},
): void {
  runPlan(planV1(dirs, r, opts), result);
}

/** Read `freezer.state` (`THAWED`, `FREEZING` or `FROZEN`). */
export function freezerStateV1(dir: string): string {
  return readFile(join(dir, 'freezer.state')).trim();
}

/**
 * Freeze a v1 freezer cgroup, retrying while it reports `FREEZING` (as runc does: v1 cannot
 * reliably freeze while tasks keep forking): up to 1000 writes of `FROZEN`, with a thaw and a
 * 10 ms sleep every 50 attempts and a short sleep every 25. On any failure it thaws again, since a
 * cgroup left FREEZING is stuck half-way; stuck in FREEZING throws `Busy`.
 */
export function freezeV1(dir: string): void {
  const file = join(dir, 'freezer.state');
  try {
    for (let i = 0; i < 1000; i++) {
      if (i % 50 === 49) {
        // An occasional thaw and sleep helps when new tasks keep appearing.
        writeFile(file, 'THAWED');
        sleepSync(10);
      }
      writeFile(file, 'FROZEN');
      if (i % 25 === 24) sleepSync(1);
      const state = freezerStateV1(dir);
      if (state === 'FROZEN') return;
      if (state !== 'FREEZING') {
        throw new CgroupError(
          'System',
          'write',
          `write "FROZEN" to ${file}: state is "${state}" afterwards`,
          {
            path: file,
            data: 'FROZEN',
          },
        );
      }
    }
    throw new CgroupError('Busy', 'write', `write "FROZEN" to ${file}: stuck in FREEZING, thawed again`, {
      path: file,
      data: 'FROZEN',
      errno: 'EBUSY',
    });
  } catch (err) {
    try {
      writeFile(file, 'THAWED');
    } catch {
      // the original error matters more
    }
    throw err;
  }
}

/** Thaw a v1 freezer cgroup. */
export function thawV1(dir: string): void {
  writeFile(join(dir, 'freezer.state'), 'THAWED');
}

/**
 * Thaw `dir` and every nested freezer cgroup that is not `THAWED`, parents first. Needed after a
 * SIGKILL: a v1 task in a frozen (nested) cgroup only dies once thawed, and thawing a parent does
 * not thaw a child that was frozen by itself.
 */
export function thawTreeV1(dir: string): void {
  for (const d of cgroupTreeDeepestFirst(dir).reverse()) {
    const state = readFileIfExists(join(d, 'freezer.state'))?.trim();
    if (state !== undefined && state !== 'THAWED') thawV1(d);
  }
}
