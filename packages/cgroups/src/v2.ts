import * as path from 'node:path';
import { CgroupError, invalidField } from './errors.js';
import { exists, parseKeyed, readFile, readFileIfExists, sleepSync, writeFile } from './fsutil.js';
import type { ApplyResult, NormalizedResources } from './resources.js';
import { recordingWriter } from './v1.js';

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
 * The `memory.swap.max` value for OCI `swap` (memory+swap) and `limit`, as runc converts it:
 * `-1` → `"max"`, otherwise `swap - limit`. Returns `undefined` when nothing is to be written.
 */
export function swapMaxV2(swap: number | undefined, limit: number | undefined): string | undefined {
  if (limit === -1 && swap === undefined) return 'max';
  if (swap === undefined) return undefined;
  if (swap === -1) return 'max';
  if (limit === undefined || limit === -1) {
    throw invalidField('memory.swap', 'cannot be set without memory.limit on cgroup v2', 'memory.swap.max');
  }
  if (swap < limit) {
    throw invalidField(
      'memory.swap',
      `memory+swap limit ${swap} must be >= memory.limit ${limit}`,
      'memory.swap.max',
    );
  }
  return String(swap - limit);
}

const max = (n: number): string => (n === -1 ? 'max' : String(n));

function unsupported(message: string): CgroupError {
  return new CgroupError('Unsupported', 'write', message);
}

/**
 * Write resources into a cgroup v2 directory. Checks every needed controller is enabled (listed in
 * `cgroup.controllers`) before writing anything. Device rules are not enforced here (cgroup v2
 * needs an eBPF program) and are reported in `result.skipped`.
 */
export function applyV2(dir: string, r: NormalizedResources, result: ApplyResult): void {
  const m = r.memory;
  const c = r.cpu;
  const wants: [string, string][] = [];
  if (m.limit !== undefined || m.reservation !== undefined || m.swap !== undefined) {
    wants.push(['memory', m.limit !== undefined ? 'memory limit' : 'memory reservation/swap']);
  }
  if (c.shares !== undefined || c.quota !== undefined || c.period !== undefined)
    wants.push(['cpu', 'cpu shares/quota/period']);
  if (c.cpus !== undefined || c.mems !== undefined) wants.push(['cpuset', 'cpuset cpus/mems']);
  if (r.pids !== undefined) wants.push(['pids', 'pids limit']);

  if (m.swappiness !== undefined) {
    throw unsupported(
      `memory swappiness requested (linux.resources.memory.swappiness = ${m.swappiness}) but cgroup v2 has no per-cgroup swappiness`,
    );
  }
  if (c.realtimeRuntime !== undefined || c.realtimePeriod !== undefined) {
    throw unsupported(
      'cpu realtimeRuntime/realtimePeriod requested but cgroup v2 has no realtime CPU controller',
    );
  }
  if (wants.length > 0) {
    const controllersFile = path.join(dir, 'cgroup.controllers');
    const enabled = new Set(readFile(controllersFile).trim().split(/\s+/));
    for (const [ctrl, what] of wants) {
      if (!enabled.has(ctrl)) {
        throw unsupported(
          `${what} requested but the ${ctrl} controller is not enabled for ${dir} (not listed in ${controllersFile})`,
        );
      }
    }
  }
  const swapMax = swapMaxV2(m.swap, m.limit);
  if (swapMax !== undefined && m.swap !== undefined && !exists(path.join(dir, 'memory.swap.max'))) {
    throw unsupported(
      `memory swap limit requested but swap accounting is not enabled (no ${dir}/memory.swap.max)`,
    );
  }

  const write = recordingWriter(result);
  if (swapMax !== undefined && exists(path.join(dir, 'memory.swap.max')))
    write(dir, 'memory.swap.max', swapMax);
  if (m.limit !== undefined) write(dir, 'memory.max', max(m.limit));
  if (m.reservation !== undefined) write(dir, 'memory.low', max(m.reservation));
  if (m.disableOOMKiller === true) {
    result.skipped.push({
      resource: 'memory.disableOOMKiller',
      reason: 'cgroup v2 has no switch to disable the OOM killer for a cgroup',
    });
  }
  if (c.shares !== undefined) write(dir, 'cpu.weight', String(sharesToWeight(c.shares)));
  if (c.quota !== undefined || c.period !== undefined) write(dir, 'cpu.max', cpuMax(dir, c.quota, c.period));
  if (c.cpus !== undefined) write(dir, 'cpuset.cpus', c.cpus);
  if (c.mems !== undefined) write(dir, 'cpuset.mems', c.mems);
  if (r.pids !== undefined) write(dir, 'pids.max', r.pids);
  if (r.devices.length > 0) {
    result.skipped.push({
      resource: 'devices',
      reason: `${r.devices.length} device rule(s) not enforced: cgroup v2 device control needs an eBPF program, which is not implemented yet`,
    });
  }
}

/** The `cpu.max` line; with only a period, the current quota is kept. */
function cpuMax(dir: string, quota: number | undefined, period: number | undefined): string {
  let q: string;
  if (quota !== undefined) q = max(quota);
  else q = (readFileIfExists(path.join(dir, 'cpu.max')) ?? 'max').trim().split(/\s+/)[0] ?? 'max';
  return period === undefined ? q : `${q} ${period}`;
}

/** Whether `cgroup.events` says `frozen 1`. */
export function isFrozenV2(dir: string): boolean {
  return parseKeyed(readFile(path.join(dir, 'cgroup.events'))).get('frozen') === '1';
}

/** Write `cgroup.freeze` and wait until `cgroup.events` reports the state (`Busy` after `timeoutMs`). */
export function setFrozenV2(dir: string, frozen: boolean, timeoutMs = 10_000): void {
  const want = frozen ? '1' : '0';
  const file = path.join(dir, 'cgroup.freeze');
  writeFile(file, want);
  const deadline = Date.now() + timeoutMs;
  let delay = 1;
  for (;;) {
    if (isFrozenV2(dir) === frozen) return;
    if (Date.now() > deadline) {
      throw new CgroupError(
        'Busy',
        'write',
        `write "${want}" to ${file}: ${path.join(dir, 'cgroup.events')} did not report "frozen ${want}" within ${timeoutMs} ms`,
        { path: file, data: want, errno: 'ETIMEDOUT' },
      );
    }
    sleepSync(delay);
    delay = Math.min(delay * 2, 50);
  }
}

/**
 * Enable in `parent/cgroup.subtree_control` every controller listed in its `cgroup.controllers`
 * that is not enabled yet. Errors are ignored (as runc does): a controller that cannot be enabled
 * shows up later as a clear "not enabled" error from `apply()`.
 */
export function enableControllers(parent: string): void {
  const available = (readFileIfExists(path.join(parent, 'cgroup.controllers')) ?? '').trim().split(/\s+/);
  const enabled = new Set(
    (readFileIfExists(path.join(parent, 'cgroup.subtree_control')) ?? '').trim().split(/\s+/),
  );
  const missing = available.filter((c) => c !== '' && !enabled.has(c));
  if (missing.length === 0) return;
  const file = path.join(parent, 'cgroup.subtree_control');
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
