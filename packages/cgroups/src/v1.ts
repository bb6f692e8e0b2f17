import * as path from 'node:path';
import { CgroupError, invalidField } from './errors.js';
import {
  cgroupTreeDeepestFirst,
  exists,
  readFile,
  readFileIfExists,
  sleepSync,
  writeFile,
} from './fsutil.js';
import type { ApplyResult, DeviceRule, NormalizedResources } from './resources.js';

/** Controller name → absolute cgroup directory, for the v1 hierarchies. */
export type V1Dirs = Readonly<Record<string, string>>;

/** Writes one file and records it in `result.applied`. */
export function recordingWriter(result: ApplyResult): (dir: string, file: string, data: string) => void {
  return (dir, file, data) => {
    writeFile(path.join(dir, file), data);
    result.applied.push(`${file}=${data}`);
  };
}

function need(dirs: V1Dirs, controller: string, what: string | undefined): string | undefined {
  if (what === undefined) return undefined;
  const dir = dirs[controller];
  if (dir === undefined) {
    throw new CgroupError(
      'Unsupported',
      'write',
      `${what} requested but the ${controller} controller is not mounted`,
    );
  }
  return dir;
}

/** The first requested field of `obj` among `names`, phrased like "memory limit". */
function firstSet(prefix: string, obj: object, names: readonly string[]): string | undefined {
  const rec = obj as Record<string, unknown>;
  const n = names.find((k) => rec[k] !== undefined);
  return n === undefined ? undefined : `${prefix} ${n}`;
}

/** Parse a v1 counter/limit file (may exceed 2^53) as a bigint. */
function readBig(file: string): bigint {
  const text = readFile(file).trim();
  try {
    return BigInt(text);
  } catch {
    throw new CgroupError('System', 'read', `read ${file}: unexpected content "${text}"`, { path: file });
  }
}

function isAllDevices(d: DeviceRule): boolean {
  return d.type === 'a' && d.major === '*' && d.minor === '*' && d.access.length === 3;
}

/** The `devices.allow`/`devices.deny` lines of one rule (type `a` with a narrower rule becomes `b` + `c`). */
export function deviceLines(d: DeviceRule): string[] {
  if (isAllDevices(d)) return ['a'];
  const types = d.type === 'a' ? ['b', 'c'] : [d.type];
  return types.map((t) => `${t} ${d.major}:${d.minor} ${d.access}`);
}

/**
 * Write resources into cgroup v1 hierarchies (also used for hybrid layouts).
 * Checks that every needed controller is mounted before writing anything.
 */
export function applyV1(dirs: V1Dirs, r: NormalizedResources, result: ApplyResult): void {
  const m = r.memory;
  const c = r.cpu;
  const memDir = need(
    dirs,
    'memory',
    firstSet('memory', m, ['limit', 'reservation', 'swap', 'swappiness']) ??
      (m.disableOOMKiller ? 'memory disableOOMKiller' : undefined),
  );
  const cpuDir = need(
    dirs,
    'cpu',
    firstSet('cpu', c, ['shares', 'quota', 'period', 'realtimeRuntime', 'realtimePeriod']),
  );
  const cpusetDir = need(dirs, 'cpuset', firstSet('cpuset', c, ['cpus', 'mems']));
  const pidsDir = need(dirs, 'pids', r.pids === undefined ? undefined : 'pids limit');
  const devDir = need(dirs, 'devices', r.devices.length > 0 ? 'device rules' : undefined);
  if (
    memDir !== undefined &&
    m.swap !== undefined &&
    !exists(path.join(memDir, 'memory.memsw.limit_in_bytes'))
  ) {
    throw new CgroupError(
      'Unsupported',
      'write',
      `memory swap limit requested but swap accounting is not enabled (no ${path.join(memDir, 'memory.memsw.limit_in_bytes')})`,
    );
  }

  const write = recordingWriter(result);
  if (memDir !== undefined) applyMemory(memDir, m, write);
  if (cpuDir !== undefined) applyCpu(cpuDir, c, write);
  if (cpusetDir !== undefined) {
    if (c.cpus !== undefined) write(cpusetDir, 'cpuset.cpus', c.cpus);
    if (c.mems !== undefined) write(cpusetDir, 'cpuset.mems', c.mems);
  }
  if (pidsDir !== undefined && r.pids !== undefined) write(pidsDir, 'pids.max', r.pids);
  if (devDir !== undefined) applyDevices(devDir, r.devices, write);
}

type Write = (dir: string, file: string, data: string) => void;

function applyMemory(dir: string, m: NormalizedResources['memory'], write: Write): void {
  const LIMIT = 'memory.limit_in_bytes';
  const MEMSW = 'memory.memsw.limit_in_bytes';
  const limit = m.limit;
  let swap = m.swap;
  // Like runc: an unlimited memory limit without an explicit swap also lifts the memory+swap limit.
  if (limit === -1 && swap === undefined && exists(path.join(dir, MEMSW))) swap = -1;
  if (limit !== undefined && swap !== undefined) {
    // The kernel requires limit <= memsw at every moment. If the new limit exceeds the current
    // memsw, raise memsw first (the new swap is >= the new limit, so both writes are valid).
    const curMemsw = readBig(path.join(dir, MEMSW));
    const newLimit = limit === -1 ? BigInt('0x7fffffffffffffff') : BigInt(limit);
    if (newLimit > curMemsw) {
      write(dir, MEMSW, String(swap));
      write(dir, LIMIT, String(limit));
    } else {
      write(dir, LIMIT, String(limit));
      write(dir, MEMSW, String(swap));
    }
  } else if (limit !== undefined) {
    write(dir, LIMIT, String(limit));
  } else if (swap !== undefined) {
    write(dir, MEMSW, String(swap));
  }
  if (m.reservation !== undefined) write(dir, 'memory.soft_limit_in_bytes', String(m.reservation));
  if (m.swappiness !== undefined) write(dir, 'memory.swappiness', String(m.swappiness));
  if (m.disableOOMKiller === true) write(dir, 'memory.oom_control', '1');
}

function applyCpu(dir: string, c: NormalizedResources['cpu'], write: Write): void {
  if (c.shares !== undefined) {
    write(dir, 'cpu.shares', String(c.shares));
    const got = readFile(path.join(dir, 'cpu.shares')).trim();
    if (got !== String(c.shares)) {
      throw invalidField(
        'cpu.shares',
        `the kernel clamped ${c.shares} to ${got}; cgroup v1 allows 2..262144`,
        path.join(dir, 'cpu.shares'),
      );
    }
  }
  // Like runc: a smaller period may be rejected until the quota is lowered; retry it after the quota.
  let pendingPeriod: string | undefined;
  if (c.period !== undefined) {
    try {
      write(dir, 'cpu.cfs_period_us', String(c.period));
    } catch (err) {
      if (!(err instanceof CgroupError) || err.errno !== 'EINVAL' || c.quota === undefined) throw err;
      pendingPeriod = String(c.period);
    }
  }
  if (c.quota !== undefined) {
    write(dir, 'cpu.cfs_quota_us', String(c.quota));
    if (pendingPeriod !== undefined) write(dir, 'cpu.cfs_period_us', pendingPeriod);
  }
  if (c.realtimePeriod !== undefined) write(dir, 'cpu.rt_period_us', String(c.realtimePeriod));
  if (c.realtimeRuntime !== undefined) write(dir, 'cpu.rt_runtime_us', String(c.realtimeRuntime));
}

function applyDevices(dir: string, rules: readonly DeviceRule[], write: Write): void {
  let start = 0;
  const first = rules[0];
  if (first !== undefined && !first.allow && isAllDevices(first)) {
    write(dir, 'devices.deny', 'a');
    start = 1;
  }
  for (const rule of rules.slice(start)) {
    for (const line of deviceLines(rule)) write(dir, rule.allow ? 'devices.allow' : 'devices.deny', line);
  }
}

/** Read `freezer.state` (`THAWED`, `FREEZING` or `FROZEN`). */
export function freezerStateV1(dir: string): string {
  return readFile(path.join(dir, 'freezer.state')).trim();
}

/**
 * Freeze a v1 freezer cgroup, retrying while it reports `FREEZING` (as runc does: v1 cannot
 * reliably freeze while tasks keep forking). Thaws again and throws `Busy` if it never settles.
 */
export function freezeV1(dir: string): void {
  const file = path.join(dir, 'freezer.state');
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
      throw new CgroupError('System', 'write', `write "FROZEN" to ${file}: state is "${state}" afterwards`, {
        path: file,
        data: 'FROZEN',
      });
    }
  }
  writeFile(file, 'THAWED');
  throw new CgroupError('Busy', 'write', `write "FROZEN" to ${file}: stuck in FREEZING, thawed again`, {
    path: file,
    data: 'FROZEN',
    errno: 'EBUSY',
  });
}

/** Thaw a v1 freezer cgroup. */
export function thawV1(dir: string): void {
  writeFile(path.join(dir, 'freezer.state'), 'THAWED');
}

/**
 * Thaw `dir` and every nested freezer cgroup that is not `THAWED`, parents first. Needed after a
 * SIGKILL: a v1 task in a frozen (nested) cgroup only dies once thawed, and thawing a parent does
 * not thaw a child that was frozen by itself.
 */
export function thawTreeV1(dir: string): void {
  for (const d of cgroupTreeDeepestFirst(dir).reverse()) {
    const state = readFileIfExists(path.join(d, 'freezer.state'))?.trim();
    if (state !== undefined && state !== 'THAWED') thawV1(d);
  }
}
