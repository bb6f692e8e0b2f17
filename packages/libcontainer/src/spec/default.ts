import type { Mount, Namespace, RuntimeConfig } from './config.js';

/** Options of {@link defaultSpec}. */
export interface DefaultSpecOptions {
  /** Like `runc spec --rootless`: a user namespace mapping the current user to root, no cgroup limits. */
  rootless?: boolean;
  /** The process arguments; default `["sh"]`. */
  args?: string[];
}

/** The OCI runtime-spec version written by {@link defaultSpec}. */
export const DEFAULT_OCI_VERSION = '1.2.0';

/**
 * The example configuration printed by `nsinit spec`: the same as
 * `runc spec` (runc's `specconv.Example()`), except that the hostname is
 * `nsinit`. With `rootless`, the changes of runc's `specconv.ToRootless()`
 * are applied. Returns a fresh object each time.
 */
export function defaultSpec(opts: DefaultSpecOptions = {}): RuntimeConfig {
  const caps = () => ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
  const spec: RuntimeConfig = {
    ociVersion: DEFAULT_OCI_VERSION,
    process: {
      terminal: true,
      user: { uid: 0, gid: 0 },
      args: opts.args ? [...opts.args] : ['sh'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
      cwd: '/',
      capabilities: { bounding: caps(), effective: caps(), permitted: caps() },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'nsinit',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
      },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
      },
      {
        destination: '/dev/shm',
        type: 'tmpfs',
        source: 'shm',
        options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
      },
      {
        destination: '/dev/mqueue',
        type: 'mqueue',
        source: 'mqueue',
        options: ['nosuid', 'noexec', 'nodev'],
      },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      {
        destination: '/sys/fs/cgroup',
        type: 'cgroup',
        source: 'cgroup',
        options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
      },
    ],
    linux: {
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      namespaces: [
        { type: 'pid' },
        { type: 'network' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
        { type: 'cgroup' },
      ],
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/sys/firmware',
        '/proc/scsi',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
  return opts.rootless ? toRootless(spec) : spec;
}

/**
 * Apply runc's `specconv.ToRootless()`: drop the network namespace and add a
 * user namespace mapping the current effective uid/gid to root, replace the
 * `/sys` sysfs mount by a read-only rbind of the host's `/sys`, drop `uid=`
 * and `gid=` mount options, and remove cgroup resource settings.
 */
function toRootless(spec: RuntimeConfig): RuntimeConfig {
  const linux = spec.linux ?? {};
  const namespaces: Namespace[] = (linux.namespaces ?? []).filter(
    (ns) => ns.type !== 'network' && ns.type !== 'user',
  );
  namespaces.push({ type: 'user' });

  const mounts: Mount[] = (spec.mounts ?? []).map((m) => {
    if (cleanPath(m.destination) === '/sys') {
      return {
        destination: '/sys',
        type: 'none',
        source: '/sys',
        options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'],
      };
    }
    if (!m.options) return m;
    const options = m.options.filter((o) => !o.startsWith('gid=') && !o.startsWith('uid='));
    const { options: _, ...rest } = m;
    return options.length > 0 ? { ...rest, options } : rest;
  });

  const { resources: _, ...linuxRest } = linux;
  return {
    ...spec,
    mounts,
    linux: {
      uidMappings: [{ containerID: 0, hostID: currentId('geteuid'), size: 1 }],
      gidMappings: [{ containerID: 0, hostID: currentId('getegid'), size: 1 }],
      ...linuxRest,
      namespaces,
    },
  };
}

function currentId(which: 'geteuid' | 'getegid'): number {
  const fn = process[which];
  return typeof fn === 'function' ? fn() : 0;
}

/** Lexical `filepath.Clean` for absolute paths (enough to compare mount destinations). */
function cleanPath(p: string): string {
  const parts: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') parts.pop();
    else parts.push(seg);
  }
  return `/${parts.join('/')}`;
}
