import { describe, expect, it } from 'vitest';
import { defaultSpec, parseConfig, type RuntimeConfig } from '../src/spec/index.js';

const CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];

/** What `runc spec` prints (runc's specconv.Example()), with hostname "nsinit". */
const RUNC_EXAMPLE = {
  ociVersion: '1.2.0',
  process: {
    terminal: true,
    user: { uid: 0, gid: 0 },
    args: ['sh'],
    env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
    cwd: '/',
    capabilities: { bounding: CAPS, effective: CAPS, permitted: CAPS },
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
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
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

function roundTrip(spec: RuntimeConfig): unknown {
  return JSON.parse(JSON.stringify(spec));
}

describe('defaultSpec()', () => {
  it('is what `runc spec` prints, with hostname nsinit', () => {
    expect(defaultSpec()).toStrictEqual(RUNC_EXAMPLE);
  });

  it('serialises with the same key order as runc', () => {
    expect(JSON.stringify(defaultSpec())).toBe(JSON.stringify(RUNC_EXAMPLE));
  });

  it('passes parseConfig', () => {
    expect(parseConfig(defaultSpec())).toStrictEqual(RUNC_EXAMPLE);
  });

  it('survives a JSON round trip through parseConfig unchanged, key order included', () => {
    const json = JSON.stringify(defaultSpec(), null, 2);
    expect(JSON.stringify(parseConfig(JSON.parse(json)), null, 2)).toBe(json);
  });

  it('has no inheritable or ambient capabilities', () => {
    const caps = defaultSpec().process?.capabilities;
    expect(caps).toBeDefined();
    expect(caps).not.toHaveProperty('inheritable');
    expect(caps).not.toHaveProperty('ambient');
  });

  it('takes the process args from opts.args', () => {
    const args = ['/bin/echo', 'hello'];
    const spec = defaultSpec({ args });
    expect(spec.process?.args).toEqual(['/bin/echo', 'hello']);
    args.push('mutated');
    expect(spec.process?.args).toEqual(['/bin/echo', 'hello']);
    expect(parseConfig(spec).process?.args).toEqual(['/bin/echo', 'hello']);
  });

  it('returns a fresh object each time', () => {
    const a = defaultSpec();
    a.process?.capabilities?.bounding?.push('CAP_SYS_ADMIN');
    a.mounts?.[1]?.options?.push('exec');
    a.linux?.namespaces?.pop();
    expect(defaultSpec()).toStrictEqual(RUNC_EXAMPLE);
  });
});

describe('defaultSpec({ rootless: true })', () => {
  const uid = process.geteuid?.() ?? 0;
  const gid = process.getegid?.() ?? 0;

  it('applies runc ToRootless(): user namespace, no network namespace', () => {
    const spec = defaultSpec({ rootless: true });
    expect(spec.linux?.namespaces?.map((ns) => ns.type)).toEqual([
      'pid',
      'ipc',
      'uts',
      'mount',
      'cgroup',
      'user',
    ]);
  });

  it('maps the current user to root', () => {
    const spec = defaultSpec({ rootless: true });
    expect(spec.linux?.uidMappings).toEqual([{ containerID: 0, hostID: uid, size: 1 }]);
    expect(spec.linux?.gidMappings).toEqual([{ containerID: 0, hostID: gid, size: 1 }]);
  });

  it('bind-mounts the host /sys instead of mounting sysfs', () => {
    const sys = defaultSpec({ rootless: true }).mounts?.find((m) => m.destination === '/sys');
    expect(sys).toStrictEqual({
      destination: '/sys',
      type: 'none',
      source: '/sys',
      options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'],
    });
  });

  it('drops gid= from devpts and keeps the other mounts as they are', () => {
    const mounts = defaultSpec({ rootless: true }).mounts ?? [];
    expect(mounts.map((m) => m.destination)).toEqual(RUNC_EXAMPLE.mounts.map((m) => m.destination));
    expect(mounts.find((m) => m.destination === '/dev/pts')?.options).toEqual([
      'nosuid',
      'noexec',
      'newinstance',
      'ptmxmode=0666',
      'mode=0620',
    ]);
    expect(mounts.find((m) => m.destination === '/sys/fs/cgroup')).toStrictEqual(RUNC_EXAMPLE.mounts[6]);
    expect(mounts.find((m) => m.destination === '/proc')).toStrictEqual(RUNC_EXAMPLE.mounts[0]);
  });

  it('removes cgroup resources and keeps masked/readonly paths', () => {
    const linux = defaultSpec({ rootless: true }).linux;
    expect(linux).not.toHaveProperty('resources');
    expect(linux?.maskedPaths).toEqual(RUNC_EXAMPLE.linux.maskedPaths);
    expect(linux?.readonlyPaths).toEqual(RUNC_EXAMPLE.linux.readonlyPaths);
  });

  it('leaves process, root and hostname alone', () => {
    const spec = defaultSpec({ rootless: true, args: ['id'] });
    expect(spec.process).toStrictEqual({ ...RUNC_EXAMPLE.process, args: ['id'] });
    expect(spec.root).toStrictEqual(RUNC_EXAMPLE.root);
    expect(spec.hostname).toBe('nsinit');
  });

  it('passes parseConfig and survives a JSON round trip', () => {
    const spec = defaultSpec({ rootless: true });
    expect(parseConfig(spec)).toStrictEqual(spec);
    const json = JSON.stringify(spec);
    expect(JSON.stringify(parseConfig(JSON.parse(json)))).toBe(json);
    expect(roundTrip(spec)).toStrictEqual(spec);
  });

  it('orders linux keys as runc does', () => {
    expect(Object.keys(defaultSpec({ rootless: true }).linux ?? {})).toEqual([
      'uidMappings',
      'gidMappings',
      'namespaces',
      'maskedPaths',
      'readonlyPaths',
    ]);
  });
});
