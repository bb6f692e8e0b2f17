/**
 * `@tsc/cgroups`: create, limit, freeze, signal and destroy the cgroups of containers, on cgroup v1
 * (legacy), hybrid and cgroup v2 (unified) hosts.
 *
 * @packageDocumentation
 */
export { type BpfInsn, deviceFilterProgram, devicePrograms, disassemble } from './ebpf.js';
export { CgroupError, type CgroupErrorCode, type CgroupErrorDetails, type CgroupOp } from './errors.js';
export type { OomEvent, OomEventsOptions } from './events.js';
export { type CgroupLayout, detectLayout } from './layout.js';
export {
  type CgroupManager,
  type DestroyOptions,
  type FreezerState,
  type OpenCgroupOptions,
  openCgroup,
} from './manager.js';
export { resolveCgroupPath } from './path.js';
export type {
  ApplyResult,
  LinuxBlockIO,
  LinuxBlockIODevice,
  LinuxCPU,
  LinuxDeviceCgroup,
  LinuxHugepageLimit,
  LinuxInterfacePriority,
  LinuxMemory,
  LinuxNetwork,
  LinuxPids,
  LinuxRdma,
  LinuxResources,
  LinuxThrottleDevice,
  LinuxWeightDevice,
} from './resources.js';
export {
  type BlkioEntry,
  type CgroupStats,
  type MemoryEntryStats,
  type RuncBlkioEntry,
  type RuncMemoryEntry,
  type RuncStats,
  runcEventJSON,
  runcStatsJSON,
  toRuncStats,
  type U64,
} from './stats.js';
export { blkioWeightToIOWeight, sharesToWeight } from './v2.js';
