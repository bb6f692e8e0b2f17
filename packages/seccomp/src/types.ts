/**
 * The OCI runtime-spec `linux.seccomp` section (config-linux.md, "Seccomp"), declared here so that
 * this package does not depend on the config parser. Optional fields also accept an explicit
 * `undefined`, so a parsed config can be passed as it is.
 */

/** `SCMP_ACT_*` actions of the spec. `SCMP_ACT_KILL` is `SCMP_ACT_KILL_THREAD`. */
export type LinuxSeccompAction =
  | 'SCMP_ACT_KILL'
  | 'SCMP_ACT_KILL_PROCESS'
  | 'SCMP_ACT_KILL_THREAD'
  | 'SCMP_ACT_TRAP'
  | 'SCMP_ACT_ERRNO'
  | 'SCMP_ACT_TRACE'
  | 'SCMP_ACT_ALLOW'
  | 'SCMP_ACT_LOG'
  | 'SCMP_ACT_NOTIFY';

/** Argument comparison operators. */
export type LinuxSeccompOperator =
  | 'SCMP_CMP_NE'
  | 'SCMP_CMP_LT'
  | 'SCMP_CMP_LE'
  | 'SCMP_CMP_EQ'
  | 'SCMP_CMP_GE'
  | 'SCMP_CMP_GT'
  | 'SCMP_CMP_MASKED_EQ';

/** Architectures the spec (and libseccomp) can name. */
export type LinuxSeccompArch =
  | 'SCMP_ARCH_X86'
  | 'SCMP_ARCH_X86_64'
  | 'SCMP_ARCH_X32'
  | 'SCMP_ARCH_ARM'
  | 'SCMP_ARCH_AARCH64'
  | 'SCMP_ARCH_LOONGARCH64'
  | 'SCMP_ARCH_M68K'
  | 'SCMP_ARCH_MIPS'
  | 'SCMP_ARCH_MIPS64'
  | 'SCMP_ARCH_MIPS64N32'
  | 'SCMP_ARCH_MIPSEL'
  | 'SCMP_ARCH_MIPSEL64'
  | 'SCMP_ARCH_MIPSEL64N32'
  | 'SCMP_ARCH_PPC'
  | 'SCMP_ARCH_PPC64'
  | 'SCMP_ARCH_PPC64LE'
  | 'SCMP_ARCH_S390'
  | 'SCMP_ARCH_S390X'
  | 'SCMP_ARCH_SH'
  | 'SCMP_ARCH_SHEB'
  | 'SCMP_ARCH_PARISC'
  | 'SCMP_ARCH_PARISC64'
  | 'SCMP_ARCH_RISCV64';

/** `SECCOMP_FILTER_FLAG_*` names the spec allows in `flags`. */
export type LinuxSeccompFlag =
  | 'SECCOMP_FILTER_FLAG_TSYNC'
  | 'SECCOMP_FILTER_FLAG_LOG'
  | 'SECCOMP_FILTER_FLAG_SPEC_ALLOW'
  | 'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV';

/**
 * One argument condition. Values are unsigned 64-bit: a `number` must be a non-negative integer
 * (JSON numbers above 2^53 have already lost precision, so such values are accepted with a
 * warning), a `bigint` is taken exactly. For `SCMP_CMP_MASKED_EQ`, `value` is the mask and
 * `valueTwo` the expected value: `(arg & value) == (valueTwo & value)`.
 */
export interface LinuxSeccompArg {
  index: number;
  value: number | bigint;
  valueTwo?: number | bigint | undefined;
  op: LinuxSeccompOperator;
}

/** One rule: the syscalls it names, its action and its argument conditions (ANDed). */
export interface LinuxSyscall {
  names: readonly string[];
  action: LinuxSeccompAction;
  /** errno for `SCMP_ACT_ERRNO` (default EPERM), trace data for `SCMP_ACT_TRACE` (default EPERM). */
  errnoRet?: number | undefined;
  args?: readonly LinuxSeccompArg[] | undefined;
}

/** `linux.seccomp`. */
export interface LinuxSeccomp {
  defaultAction: LinuxSeccompAction;
  defaultErrnoRet?: number | undefined;
  architectures?: readonly LinuxSeccompArch[] | undefined;
  flags?: readonly LinuxSeccompFlag[] | undefined;
  listenerPath?: string | undefined;
  listenerMetadata?: string | undefined;
  syscalls?: readonly LinuxSyscall[] | undefined;
}
