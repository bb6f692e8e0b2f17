/**
 * `@tsc/seccomp`: compile the OCI `linux.seccomp` section into a classic BPF program for
 * `seccomp(SECCOMP_SET_MODE_FILTER)`, with the behaviour of runc + libseccomp, and Docker's
 * default profile. Pure TypeScript: no native code, nothing done at import time.
 *
 * @packageDocumentation
 */
export {
  actionName,
  type CompiledSeccomp,
  type CompileOptions,
  compileSeccomp,
  SECCOMP_FILTER_FLAG,
  SECCOMP_RET,
} from './compile.js';
export { type DefaultProfileOptions, DOCKER_DEFAULT_CAPABILITIES, defaultProfile } from './default.js';
export { SeccompError, type SeccompErrorCode } from './errors.js';
export {
  AUDIT_ARCH,
  maxSyscallNumber,
  nativeArch,
  type SeccompArch,
  SYSCALL_TABLES,
  syscallName,
  syscallNumber,
} from './tables/index.js';
export type {
  LinuxSeccomp,
  LinuxSeccompAction,
  LinuxSeccompArch,
  LinuxSeccompArg,
  LinuxSeccompFlag,
  LinuxSeccompOperator,
  LinuxSyscall,
} from './types.js';
