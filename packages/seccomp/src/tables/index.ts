import { AARCH64_SYSCALLS } from './aarch64.js';
import { X86_64_SYSCALLS } from './x86_64.js';

/** Target architectures this package compiles filters for. */
export type SeccompArch = 'x86_64' | 'aarch64';

/** `AUDIT_ARCH_*` values that the kernel puts in `seccomp_data.arch`. */
export const AUDIT_ARCH = Object.freeze({
  x86_64: 0xc000003e,
  aarch64: 0xc00000b7,
  /** i386 programs on x86_64 (not compiled for; they get the bad-architecture action). */
  i386: 0x40000003,
  /** 32-bit ARM programs on aarch64 (likewise). */
  arm: 0x40000028,
} as const);

/** Syscall name -> number, per architecture (generated from the kernel headers). */
export const SYSCALL_TABLES: Readonly<Record<SeccompArch, Readonly<Record<string, number>>>> = Object.freeze({
  x86_64: X86_64_SYSCALLS,
  aarch64: AARCH64_SYSCALLS,
});

/** The number of syscall `name` on `arch`, or `undefined` if `arch` has no such syscall. */
export function syscallNumber(name: string, arch: SeccompArch): number | undefined {
  const table = SYSCALL_TABLES[arch];
  return Object.hasOwn(table, name) ? table[name] : undefined;
}

const reverse = new Map<SeccompArch, Map<number, string>>();

/** The name of syscall `nr` on `arch`, or `undefined`. */
export function syscallName(nr: number, arch: SeccompArch): string | undefined {
  let map = reverse.get(arch);
  if (map === undefined) {
    map = new Map(Object.entries(SYSCALL_TABLES[arch]).map(([n, v]) => [v, n]));
    reverse.set(arch, map);
  }
  return map.get(nr);
}

/** The highest syscall number in the table of `arch`. */
export function maxSyscallNumber(arch: SeccompArch): number {
  let max = 0;
  for (const v of Object.values(SYSCALL_TABLES[arch])) if (v > max) max = v;
  return max;
}

/** The architecture of the running Node process, if it is one this package supports. */
export function nativeArch(): SeccompArch | undefined {
  switch (process.arch) {
    case 'x64':
      return 'x86_64';
    case 'arm64':
      return 'aarch64';
    default:
      return undefined;
  }
}
