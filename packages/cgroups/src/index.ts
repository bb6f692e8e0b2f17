/**
 * `@tsc/cgroups`: create, limit, freeze, signal and destroy the cgroups of containers, on cgroup v1
 * (legacy), hybrid and cgroup v2 (unified) hosts.
 *
 * @packageDocumentation
 */
export { CgroupError, type CgroupErrorCode, type CgroupErrorDetails, type CgroupOp } from './errors.js';
export { type CgroupLayout, detectLayout } from './layout.js';
export { type CgroupManager, type DestroyOptions, type OpenCgroupOptions, openCgroup } from './manager.js';
export { resolveCgroupPath } from './path.js';
export type {
  ApplyResult,
  LinuxCPU,
  LinuxDeviceCgroup,
  LinuxMemory,
  LinuxPids,
  LinuxResources,
} from './resources.js';
export { sharesToWeight } from './v2.js';
