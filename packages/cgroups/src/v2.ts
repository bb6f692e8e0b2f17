import { dirname, join } from 'node:path';
import { applyDeviceRules, deviceFilterProgram } from './ebpf.js';
import { CgroupError, fieldError, invalidField } from './errors.js';
import { exists, parseKeyed, readFile, readFileIfExists, sleepSync, writeFile } from './fsutil.js';
import { checkPlanFiles, newPlan, type Plan, runPlan, skip, write } from './plan.js';
import {
  type ApplyResult,
  type NormalizedResources,
  THROTTLE_FIELDS,
  type ThrottleField,
  V2_FILES,
} from './resources.js';
import { enabledControllers, planUnified } from './unified.js';
import { checkBeforeUpdate, rdmaLine } from './v1.js';

/**
 * Convert cgroup v1 `cpu.shares` (2..262144) to cgroup v2 `cpu.weight` (1..10000) with the
 * quadratic-in-log formula of crun ≥ 1.23 and runc ≥ 1.3, which maps the defaults onto each other
 * (1024 → 100) and the ends onto the ends (2 → 1, 262144 → 10000). `0` (unset) stays `0`.
 */
export function sharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  if (shares <= 2) return 1;
  if (shares >= 262144) return 10000;
  const l = Math.log2(shares);
  return Math.ceil(10 ** ((l * l + 125 * l) / 612 - 7 / 34));
}

/**
 * Convert an OCI blkio weight (10..1000) to cgroup v2 `io.weight` (1..10000) linearly, as crun and
 * runc do: `1 + (w - 10) * 9999 / 990`. `0` (unset) stays `0`.
 */
export function blkioWeightToIOWeight(weight: number): number {
  if (weight === 0) return 0;
  return 1 + Math.floor(((weight - 10) * 9999) / 990);
}

/**
 * The `memory.swap.max` value for OCI `swap` (memory+swap) and `limit`, as runc converts it:
 * `-1` → `"max"`, otherwise `swap - limit`. Without `limit`, `currentMax` (the current
 * `memory.max`) stands in. Returns `undefined` when nothing is to be written.
 */
export function swapMaxV2(
  swap: number | undefined,
  limit: number | undefined,
  currentMax?: string,
): string | undefined {
  if (limit === -1 && swap === undefined) return 'max';
  if (swap === undefined) return undefined;
  if (swap === -1) return 'max';
  let lim = limit;
  if (lim === undefined && currentMax !== undefined && currentMax !== 'max') lim = Number(currentMax);
  if (lim === undefined || lim === -1) {
    throw invalidField(
      'memory.swap',
      `cannot be set without a memory limit on cgroup v2 (memory.swap.max = swap - memory.max, and memory.max is ${currentMax ?? 'not set'})`,
      'memory.swap.max',
    );
  }
  if (swap < lim) {
    throw invalidField(
      'memory.swap',
      `memory+swap limit ${swap} must be >= memory.limit ${lim}${limit === undefined ? ' (the current memory.max)' : ''}`,
      'memory.swap.max',
    );
  }
  return String(swap - lim);
}

const max = (n: number): string => (n === -1 ? 'max' : String(n));

const IO_MAX_KEYS: Record<ThrottleField, string> = {
  throttleReadBpsDevice: 'rbps',
  throttleWriteBpsDevice: 'wbps',
  throttleReadIOPSDevice: 'riops',
  throttleWriteIOPSDevice: 'wiops',
};

/**
 * The `io.max` lines for the OCI throttle lists, one per device in order of first appearance:
 * `"8:0 rbps=1048576 wiops=100"`. A rate of `0` means "no limit" (as in v1) and becomes `max`.
 */
export function ioMaxLines(t: NormalizedResources['blockIO']['throttle']): { line: string; field: string }[] {
  const byDev = new Map<string, { keys: string[]; field: string }>();
  for (const name of THROTTLE_FIELDS) {
    t[name].forEach((d, i) => {
      const dev = `${d.major}:${d.minor}`;
      const entry = byDev.get(dev) ?? { keys: [], field: `blockIO.${name}[${i}]` };
      entry.keys.push(`${IO_MAX_KEYS[name]}=${d.rate === 0 ? 'max' : d.rate}`);
      byDev.set(dev, entry);
    });
  }
  return [...byDev].map(([dev, e]) => ({ line: `${dev} ${e.keys.join(' ')}`, field: e.field }));
}

const LEAF_WEIGHT = 'cgroup v2 has no leaf weights (they belonged to the CFQ scheduler)';

/**
 * Plan the writes of resources into a cgroup v2 directory. Checks every needed controller is
 * enabled (listed in `cgroup.controllers`), every file exists and values fit the current state,
 * before the first write. Device rules become an eBPF program (see `ebpf.ts`).
 */
export function planV2(dir: string, r: NormalizedResources): Plan {
  const plan = newPlan();
  const m = r.memory;
  const c = r.cpu;
  const b = r.blockIO;
  const wants: [string, string, string][] = []; // controller, field, file
  const memField = (['limit', 'reservation', 'swap'] as const).find((k) => m[k] !== undefined);
  if (memField !== undefined) wants.push(['memory', `memory.${memField}`, 'memory.*']);
  const cpuField = (['shares', 'quota', 'burst', 'period', 'idle'] as const).find((k) => c[k] !== undefined);
  if (cpuField !== undefined) wants.push(['cpu', `cpu.${cpuField}`, 'cpu.*']);
  if (c.cpus !== undefined || c.mems !== undefined) {
    wants.push(['cpuset', c.cpus !== undefined ? 'cpu.cpus' : 'cpu.mems', 'cpuset.*']);
  }
  if (r.pids !== undefined) wants.push(['pids', 'pids.limit', 'pids.max']);
  const throttles = ioMaxLines(b.throttle);
  const ioWeights = b.weight !== undefined || b.weightDevice.some((d) => d.weight !== undefined);
  if (ioWeights || throttles.length > 0) {
    wants.push(['io', ioWeights ? 'blockIO.weight' : (throttles[0]?.field ?? 'blockIO'), 'io.*']);
  }
  if (r.hugepageLimits.length > 0) wants.push(['hugetlb', 'hugepageLimits', 'hugetlb.*']);
  if (r.rdma.length > 0) wants.push(['rdma', 'rdma', 'rdma.max']);

  if (m.swappiness !== undefined) {
    throw fieldError(
      'memory.swappiness',
      `swappiness ${m.swappiness} requested but cgroup v2 has no per-cgroup swappiness`,
    );
  }
  if (c.realtimeRuntime !== undefined || c.realtimePeriod !== undefined) {
    throw fieldError(
      c.realtimeRuntime !== undefined ? 'cpu.realtimeRuntime' : 'cpu.realtimePeriod',
      'cgroup v2 has no realtime CPU controller (cpu.rt_runtime_us/cpu.rt_period_us are v1 only)',
    );
  }
  const dirExists = exists(dir);
  if (wants.length > 0) {
    const controllersFile = join(dir, 'cgroup.controllers');
    const enabled = new Set(readFile(controllersFile).trim().split(/\s+/));
    for (const [ctrl, field, file] of wants) {
      if (!enabled.has(ctrl)) {
        throw fieldError(
          field,
          `the ${ctrl} controller is not enabled for ${dir} (not listed in ${controllersFile}), so ${V2_FILES[field.replace(/\[.*$/, '')] ?? file} cannot be written`,
        );
      }
    }
  }

  planMemory(plan, dir, m, dirExists);
  planCpu(plan, dir, c);
  if (c.cpus !== undefined) write(plan, 'cpu.cpus', dir, 'cpuset.cpus', c.cpus);
  if (c.mems !== undefined) write(plan, 'cpu.mems', dir, 'cpuset.mems', c.mems);
  if (r.pids !== undefined) write(plan, 'pids.limit', dir, 'pids.max', r.pids);
  planIo(plan, dir, b, throttles);
  r.hugepageLimits.forEach((h, i) => {
    const file = `hugetlb.${h.pageSize}.max`;
    if (dirExists && !exists(join(dir, file))) {
      throw fieldError(
        `hugepageLimits[${i}].pageSize`,
        `this kernel has no ${h.pageSize} huge pages (no ${join(dir, file)})`,
      );
    }
    write(plan, `hugepageLimits[${i}]`, dir, file, max(h.limit));
    const rsvd = `hugetlb.${h.pageSize}.rsvd.max`;
    if (exists(join(dir, rsvd))) write(plan, `hugepageLimits[${i}]`, dir, rsvd, max(h.limit));
  });
  if (r.network.classID !== undefined) {
    skip(
      plan,
      'network.classID',
      'cgroup v2 has no net_cls controller (classify with an eBPF cgroup/skb program instead)',
    );
  }
  if (r.network.priorities.length > 0) {
    skip(plan, 'network.priorities', 'cgroup v2 has no net_prio controller');
  }
  for (const e of r.rdma) write(plan, `rdma[${JSON.stringify(e.device)}]`, dir, 'rdma.max', rdmaLine(e));
  if (r.devices.length > 0) {
    const rules = r.devices;
    const insns = deviceFilterProgram(rules);
    plan.steps.push({
      kind: 'action',
      field: 'devices',
      label: `bpf:cgroup_device=${rules.length} rules, ${insns.length} insns`,
      run: () => applyDeviceRules(dir, rules),
    });
  }
  if (r.unified.length > 0) planUnified(plan, dir, r.unified);
  checkPlanFiles(plan);
  return plan;
}

function planMemory(plan: Plan, dir: string, m: NormalizedResources['memory'], dirExists: boolean): void {
  if (m.checkBeforeUpdate === true && dirExists && (m.limit !== undefined || m.swap !== undefined)) {
    const usage = BigInt(readFile(join(dir, 'memory.current')).trim());
    checkBeforeUpdate(dir, 'memory.limit', m.limit, usage, 'memory.max');
    const swapUsage = BigInt((readFileIfExists(join(dir, 'memory.swap.current')) ?? '0').trim());
    checkBeforeUpdate(dir, 'memory.swap', m.swap, usage + swapUsage, 'memory.swap.max');
  }
  const hasSwapMax = exists(join(dir, 'memory.swap.max'));
  const currentMax =
    m.swap !== undefined && m.limit === undefined
      ? readFileIfExists(join(dir, 'memory.max'))?.trim()
      : undefined;
  const swapMax = swapMaxV2(m.swap, m.limit, currentMax);
  if (swapMax !== undefined && m.swap !== undefined && !hasSwapMax && dirExists) {
    throw fieldError(
      'memory.swap',
      `swap accounting is not enabled (no ${join(dir, 'memory.swap.max')}), so a memory+swap limit cannot be set`,
    );
  }
  if (swapMax !== undefined && (hasSwapMax || m.swap !== undefined)) {
    write(plan, 'memory.swap', dir, 'memory.swap.max', swapMax);
  }
  if (m.limit !== undefined) write(plan, 'memory.limit', dir, 'memory.max', max(m.limit));
  if (m.reservation !== undefined) write(plan, 'memory.reservation', dir, 'memory.low', max(m.reservation));
  if (m.disableOOMKiller === true) {
    skip(plan, 'memory.disableOOMKiller', 'cgroup v2 has no switch to disable the OOM killer for a cgroup');
  }
  if (m.kernel !== undefined) {
    skip(plan, 'memory.kernel', 'cgroup v2 has no kernel memory limit (kernel memory is part of memory.max)');
  }
  if (m.kernelTCP !== undefined) {
    skip(plan, 'memory.kernelTCP', 'cgroup v2 has no TCP buffer limit (socket memory is part of memory.max)');
  }
  if (m.useHierarchy === false) {
    skip(plan, 'memory.useHierarchy', 'cgroup v2 accounting is always hierarchical');
  }
}

function planCpu(plan: Plan, dir: string, c: NormalizedResources['cpu']): void {
  // The kernel refuses a weight for an idle group: leave idle first, or enter it last.
  if (c.idle === 0) write(plan, 'cpu.idle', dir, 'cpu.idle', '0');
  if (c.shares !== undefined) write(plan, 'cpu.shares', dir, 'cpu.weight', String(sharesToWeight(c.shares)));
  if (c.burst !== undefined) {
    if (exists(join(dir, 'cpu.max.burst')) || !exists(dir)) {
      const afterMax = c.quota === undefined ? {} : { retryAfter: 'cpu.max' };
      write(plan, 'cpu.burst', dir, 'cpu.max.burst', String(c.burst), afterMax);
    } else {
      skip(plan, 'cpu.burst', 'cpu.max.burst does not exist on this kernel (needs Linux 5.14)');
    }
  }
  if (c.quota !== undefined || c.period !== undefined) {
    write(
      plan,
      c.quota !== undefined ? 'cpu.quota' : 'cpu.period',
      dir,
      'cpu.max',
      cpuMax(dir, c.quota, c.period),
    );
  }
  if (c.idle === 1) write(plan, 'cpu.idle', dir, 'cpu.idle', '1');
}

function planIo(
  plan: Plan,
  dir: string,
  b: NormalizedResources['blockIO'],
  throttles: { line: string; field: string }[],
): void {
  const bfq = exists(join(dir, 'io.bfq.weight'));
  const ioWeight = exists(join(dir, 'io.weight'));
  const needsWeight = b.weight !== undefined || b.weightDevice.some((d) => d.weight !== undefined);
  if (needsWeight && exists(dir) && !bfq && !ioWeight) {
    throw fieldError(
      b.weight !== undefined ? 'blockIO.weight' : 'blockIO.weightDevice',
      `neither io.bfq.weight (BFQ) nor io.weight (io.cost) exists in ${dir}: no proportional-weight I/O control`,
    );
  }
  // Two independent mechanisms weigh I/O on v2: BFQ (io.bfq.weight, on devices whose scheduler is
  // bfq) and iocost (io.weight, on devices with io.cost.qos enable=1). Loading the bfq module adds
  // io.bfq.weight to every cgroup whatever the devices use, so where both files exist the weight
  // goes to both (writing only io.bfq.weight, as runc does, leaves iocost devices unweighted; the
  // VM check proves it). BFQ takes OCI weights as they are (1..1000); io.weight needs them
  // converted to 1..10000.
  if (b.weight !== undefined) {
    if (bfq) write(plan, 'blockIO.weight', dir, 'io.bfq.weight', String(b.weight));
    if (ioWeight || !bfq) {
      write(plan, 'blockIO.weight', dir, 'io.weight', String(blkioWeightToIOWeight(b.weight)));
    }
  }
  if (b.leafWeight !== undefined) skip(plan, 'blockIO.leafWeight', LEAF_WEIGHT);
  // Per-device BFQ weights need Linux 5.4: older kernels show a single number in io.bfq.weight.
  const bfqPerDevice = bfq && !/^\s*\d+\s*$/.test(readFileIfExists(join(dir, 'io.bfq.weight')) ?? '');
  b.weightDevice.forEach((d, i) => {
    const f = `blockIO.weightDevice[${i}]`;
    const dev = `${d.major}:${d.minor}`;
    if (d.weight !== undefined) {
      if (bfqPerDevice) write(plan, f, dir, 'io.bfq.weight', `${dev} ${d.weight}`);
      if (ioWeight) write(plan, f, dir, 'io.weight', `${dev} ${blkioWeightToIOWeight(d.weight)}`);
      if (!bfqPerDevice && !ioWeight) {
        skip(
          plan,
          f,
          'io.bfq.weight takes no per-device weights before Linux 5.4, and there is no io.weight',
        );
      }
    }
    if (d.leafWeight !== undefined) skip(plan, `${f}.leafWeight`, LEAF_WEIGHT);
  });
  for (const t of throttles) write(plan, t.field, dir, 'io.max', t.line);
}

/** Plan and write resources into a cgroup v2 directory. */
export function applyV2(dir: string, r: NormalizedResources, result: ApplyResult): void {
  runPlan(planV2(dir, r), result);
}

/** The `cpu.max` line; with only a period, the current quota is kept. */
function cpuMax(dir: string, quota: number | undefined, period: number | undefined): string {
  let q: string;
  if (quota !== undefined) q = max(quota);
  else q = (readFileIfExists(join(dir, 'cpu.max')) ?? 'max').trim().split(/\s+/)[0] ?? 'max';
  return period === undefined ? q : `${q} ${period}`;
}

/** Whether `cgroup.events` says `frozen 1`. */
export function isFrozenV2(dir: string): boolean {
  return parseKeyed(readFile(join(dir, 'cgroup.events'))).get('frozen') === '1';
}

/** `frozen` (cgroup.events says so), `freezing` (requested, not reached yet) or `thawed`. */
export function freezerStateV2(dir: string): 'frozen' | 'freezing' | 'thawed' {
  if (isFrozenV2(dir)) return 'frozen';
  return readFileIfExists(join(dir, 'cgroup.freeze'))?.trim() === '1' ? 'freezing' : 'thawed';
}

/**
 * Write `cgroup.freeze` and wait until `cgroup.events` reports the state. A freeze that is not
 * reported within `timeoutMs` is undone (thawed) and reported as `Busy`, as runc does.
 */
export function setFrozenV2(dir: string, frozen: boolean, timeoutMs = 10_000): void {
  const want = frozen ? '1' : '0';
  const file = join(dir, 'cgroup.freeze');
  writeFile(file, want);
  const deadline = Date.now() + timeoutMs;
  let delay = 1;
  for (;;) {
    if (isFrozenV2(dir) === frozen) return;
    // A thaw cannot be reported while an ancestor is frozen: cgroup.freeze is what we control.
    if (!frozen && readFileIfExists(file)?.trim() === '0' && parentFrozen(dir)) return;
    if (Date.now() > deadline) {
      if (frozen) {
        try {
          writeFile(file, '0');
        } catch {
          // the timeout is what matters
        }
      }
      throw new CgroupError(
        'Busy',
        'write',
        `write "${want}" to ${file}: ${join(dir, 'cgroup.events')} did not report "frozen ${want}" within ${timeoutMs} ms${frozen ? '; thawed again' : ''}`,
        { path: file, data: want, errno: 'ETIMEDOUT' },
      );
    }
    sleepSync(delay);
    delay = Math.min(delay * 2, 50);
  }
}

function parentFrozen(dir: string): boolean {
  const parent = dirname(dir);
  const events = readFileIfExists(join(parent, 'cgroup.events'));
  return events !== undefined && parseKeyed(events).get('frozen') === '1';
}

/**
 * Enable in `parent/cgroup.subtree_control` every controller listed in its `cgroup.controllers`
 * that is not enabled yet. Errors are ignored (as runc does): a controller that cannot be enabled
 * shows up later as a clear "not enabled" error from `apply()`.
 */
export function enableControllers(parent: string): void {
  const available = [...enabledControllers(parent)];
  const enabled = new Set(
    (readFileIfExists(join(parent, 'cgroup.subtree_control')) ?? '').trim().split(/\s+/),
  );
  const missing = available.filter((c) => c !== '' && !enabled.has(c));
  if (missing.length === 0) return;
  // cgroup v2 has no internal processes: enabling controllers in a non-root cgroup
  // that holds processes makes its children "domain invalid" (some controllers,
  // e.g. cpuset, cpu, pids, are accepted anyway). Leave such a parent alone; the
  // child then works without those controllers and apply() names what is missing.
  const isRoot = readFileIfExists(join(parent, 'cgroup.type')) === undefined;
  if (!isRoot && (readFileIfExists(join(parent, 'cgroup.procs')) ?? '').trim() !== '') return;
  const file = join(parent, 'cgroup.subtree_control');
  try {
    writeFile(file, missing.map((c) => `+${c}`).join(' '));
  } catch {
    for (const c of missing) {
      try {
        writeFile(file, `+${c}`);
      } catch {
        // ignored, see above
      }
    }
  }
}
