/**
 * @tsc/syscall — the FFI core of tsc: Linux syscalls through koffi, with the
 * syscall table that executor programs share, constants, and typed errors.
 */

export * from './constants.js';
export { Errno, errnoDescription, errnoName, errnoNumber } from './errno.js';
export { isSysError, SysError } from './errors.js';
export { type ArgValue, type ArgValues, bufferAddress, call, type FdWatch, watchReadable } from './ffi.js';
export {
  closeFd,
  type ExitInfo,
  flock,
  getSeals,
  pidfdOpen,
  pidfdSendSignal,
  pidfdTryWait,
  sealedMemfd,
  sealedMemfdFromFile,
  setChildSubreaper,
  setns,
} from './process.js';
export { posixSpawn, type SpawnRequest } from './spawn.js';
export { type Arch, type ArgKind, hostArch, SYSCALLS, type SyscallDef, type SyscallName } from './table.js';
