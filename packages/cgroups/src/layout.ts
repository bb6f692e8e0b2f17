import { readFileSync, statfsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { CgroupError, fsError } from './errors.js';

/**
 * How cgroups are mounted:
 * - `'unified'`: pure cgroup v2 at the root;
 * - `'hybrid'`: v1 controllers plus a controller-less (or nearly) cgroup2 mount at `<root>/unified`;
 * - `'legacy'`: v1 controllers only.
 */
export type CgroupLayout = 'unified' | 'hybrid' | 'legacy';

/** The default cgroup mount root. */
export const DEFAULT_ROOT = '/sys/fs/cgroup';

const CGROUP2_SUPER_MAGIC = 0x63677270;

function isCgroup2(p: string): boolean {
  try {
    return statfsSync(p).type === CGROUP2_SUPER_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Detect the cgroup layout with statfs magic numbers: `root` is cgroup2 → `'unified'`; else
 * `root/unified` is cgroup2 → `'hybrid'`; else `'legacy'`.
 *
 * @param root - the cgroup mount root, `/sys/fs/cgroup` by default
 * @throws CgroupError `NotFound` (op `detect`) when `root` cannot be statfs'ed
 */
export function detectLayout(root: string = DEFAULT_ROOT): CgroupLayout {
  try {
    statfsSync(root);
  } catch (err) {
    const e = fsError('detect', root, err);
    throw new CgroupError(e.code, 'detect', `detect cgroup layout: cannot statfs ${root}: ${e.errno}`, {
      path: root,
      errno: e.errno ?? 'EUNKNOWN',
      cause: err,
    });
  }
  if (isCgroup2(root)) return 'unified';
  if (isCgroup2(join(root, 'unified'))) return 'hybrid';
  return 'legacy';
}

/** One cgroup v1 hierarchy mount. */
export interface V1Mount {
  /** Where it is mounted, e.g. `/sys/fs/cgroup/cpu`. */
  mountpoint: string;
  /** The hierarchy path mounted there (the 4th mountinfo field, usually `/`). */
  mountRoot: string;
  /** Controllers it holds, e.g. `['cpu', 'cpuacct']`, or `['name=systemd']` for a named hierarchy. */
  controllers: string[];
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

/**
 * Parse `/proc/self/mountinfo` text and return the cgroup v1 mounts whose mountpoint lies under `root`.
 * `known` is the set of v1 controller names (from `/proc/cgroups`); any other super option except
 * `name=...` is a mount flag, not a controller. A mount directly under `root` wins over others for
 * the same controllers.
 */
export function parseV1Mounts(mountinfo: string, root: string, known: ReadonlySet<string>): V1Mount[] {
  const prefix = root.endsWith('/') ? root : `${root}/`;
  const byKey = new Map<string, V1Mount>();
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    if (right[0] !== 'cgroup') continue;
    const mountRoot = unescapeMountinfo(left[3] ?? '/');
    const mountpoint = unescapeMountinfo(left[4] ?? '');
    if (!mountpoint.startsWith(prefix)) continue;
    const controllers = (right[2] ?? '').split(',').filter((o) => known.has(o) || o.startsWith('name='));
    if (controllers.length === 0) continue;
    const key = [...controllers].sort().join(',');
    const prev = byKey.get(key);
    const direct = dirname(mountpoint) === root.replace(/\/+$/, '');
    if (prev === undefined || (direct && dirname(prev.mountpoint) !== root.replace(/\/+$/, ''))) {
      byKey.set(key, { mountpoint, mountRoot, controllers });
    }
  }
  return [...byKey.values()];
}

const BUILTIN_V1_CONTROLLERS = [
  'cpuset',
  'cpu',
  'cpuacct',
  'blkio',
  'memory',
  'devices',
  'freezer',
  'net_cls',
  'perf_event',
  'net_prio',
  'hugetlb',
  'pids',
  'rdma',
  'misc',
];

/** Names of the v1 controllers the kernel knows, from `/proc/cgroups`, plus the well-known ones. */
export function knownV1Controllers(procCgroups: string): Set<string> {
  const out = new Set<string>(BUILTIN_V1_CONTROLLERS);
  for (const line of procCgroups.split('\n')) {
    if (line.startsWith('#')) continue;
    const name = line.split(/\s+/)[0];
    if (name) out.add(name);
  }
  return out;
}

/** The cgroup v1 mounts of this machine under `root`, read from `/proc/self/mountinfo`. */
export function findV1Mounts(root: string = DEFAULT_ROOT): V1Mount[] {
  let mountinfo: string;
  let procCgroups: string;
  try {
    mountinfo = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch (err) {
    throw fsError('read', '/proc/self/mountinfo', err);
  }
  try {
    procCgroups = readFileSync('/proc/cgroups', 'utf8');
  } catch {
    procCgroups = '';
  }
  return parseV1Mounts(mountinfo, resolve(root), knownV1Controllers(procCgroups));
}
