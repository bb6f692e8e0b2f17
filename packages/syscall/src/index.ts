/**
 * @tsc/syscall — the FFI core of tsc: Linux syscalls through koffi, with the
 * syscall table that executor programs share, constants, and typed errors.
 */
export { type Arch, type ArgKind, type SyscallDef, type SyscallName, SYSCALLS, hostArch } from './table.js';
export { type ArgValue, type ArgValues, call } from './ffi.js';
export { SysError, isSysError } from './errors.js';
export { Errno, errnoDescription, errnoName, errnoNumber } from './errno.js';
export * from './constants.js';
export {
  type ExitInfo,
  closeFd,
  flock,
  getSeals,
  pidfdOpen,
  pidfdSendSignal,
  pidfdTryWait,
  sealedMemfd,
  setChildSubreaper,
  setns,
} from './process.js';
