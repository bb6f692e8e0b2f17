import type { LinuxResources } from '@tsc/cgroups';
import type { RuntimeConfig } from '../spec/index.js';

type DeviceRule = NonNullable<LinuxResources['devices']>[number];

/**
 * Devices every container may use, appended after the config's own rules
 * (runc does the same): mknod of anything, and rw on the standard nodes.
 */
export const DEFAULT_DEVICE_RULES: readonly DeviceRule[] = [
  { allow: true, type: 'c', major: -1, minor: -1, access: 'm' },
  { allow: true, type: 'b', major: -1, minor: -1, access: 'm' },
  { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }, // null
  { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' }, // zero
  { allow: true, type: 'c', major: 1, minor: 7, access: 'rwm' }, // full
  { allow: true, type: 'c', major: 1, minor: 8, access: 'rwm' }, // random
  { allow: true, type: 'c', major: 1, minor: 9, access: 'rwm' }, // urandom
  { allow: true, type: 'c', major: 5, minor: 0, access: 'rwm' }, // tty
  { allow: true, type: 'c', major: 5, minor: 1, access: 'rwm' }, // console
  { allow: true, type: 'c', major: 5, minor: 2, access: 'rwm' }, // ptmx
  { allow: true, type: 'c', major: 136, minor: -1, access: 'rwm' }, // pts/*
  { allow: true, type: 'c', major: 10, minor: 200, access: 'rwm' }, // net/tun
];

/** The cgroup resources to apply: the config's, with device rules completed. */
export function cgroupResources(config: RuntimeConfig): LinuxResources {
  const r = { ...((config.linux?.resources ?? {}) as LinuxResources) };
  const devices: DeviceRule[] = [...(r.devices ?? [])];
  for (const d of config.linux?.devices ?? []) {
    if (d.type === 'c' || d.type === 'b') {
      devices.push({ allow: true, type: d.type, major: d.major ?? -1, minor: d.minor ?? -1, access: 'rwm' });
    }
  }
  devices.push(...DEFAULT_DEVICE_RULES);
  r.devices = devices;
  return r;
}
