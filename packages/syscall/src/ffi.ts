import { createRequire } from 'node:module';
import type Koffi from 'koffi';
import { SysError } from './errors.js';
import { type ArgKind, hostArch, SYSCALLS, type SyscallDef, type SyscallName } from './table.js';

/** The JavaScript value accepted for each {@link ArgKind} in an in-process call. */
export type ArgValue<K extends ArgKind> = K extends 'int' | 'long'
  ? number | bigint
  : K extends 'str'
    ? string | null
    : K extends 'buf'
      ? Buffer | Uint8Array | null
      : null | number | bigint;

/** A tuple of JS argument values matching a syscall's argument kinds. */
export type ArgValues<A extends readonly ArgKind[]> = { [I in keyof A]: ArgValue<A[I]> };

type RawSyscall = (nr: number, ...rest: unknown[]) => number | bigint;

let raw: RawSyscall | undefined;
let koffi: typeof Koffi | undefined;

/**
 * koffi is loaded on first use, not at import: the CLI is started from a V8
 * startup snapshot, which cannot hold a native addon.
 */
function ffi(): typeof Koffi {
  if (koffi === undefined) koffi = createRequire(import.meta.url)('koffi') as typeof Koffi;
  return koffi;
}

function libc(): RawSyscall {
  if (raw === undefined) {
    const lib = ffi().load('libc.so.6');
    raw = lib.func('long syscall(long nr, ...)') as unknown as RawSyscall;
  }
  return raw;
}

const KOFFI_TYPE: Record<ArgKind, string> = {
  int: 'long',
  long: 'long',
  str: 'const char *',
  buf: 'void *',
  ptr: 'void *',
};

/**
 * Make a system call in this process.
 *
 * Returns the kernel's non-negative result; a failure throws a {@link SysError}
 * whose message starts with `op` (default: the syscall name).
 *
 * @example
 * call('mount', ['none', '/mnt', 'tmpfs', 0, null], { op: 'mount tmpfs on /mnt' });
 */
export function call<N extends SyscallName>(
  name: N,
  args: ArgValues<(typeof SYSCALLS)[N]['args']>,
  opts?: { op?: string; path?: string },
): number {
  const d: SyscallDef = SYSCALLS[name];
  const values = args as readonly unknown[];
  const rest: unknown[] = [];
  for (let i = 0; i < d.args.length; i++) {
    const kind = d.args[i] as ArgKind;
    let v = values[i] ?? null;
    if (kind === 'ptr' && (typeof v === 'number' || typeof v === 'bigint')) {
      rest.push('long', v);
      continue;
    }
    if ((kind === 'int' || kind === 'long') && v === null) v = 0;
    rest.push(KOFFI_TYPE[kind], v);
  }
  const r = Number(libc()(d.nr[hostArch()], ...rest));
  if (r < 0) {
    const init: { errno: number; syscall: string; op?: string; path?: string } = {
      errno: ffi().errno(),
      syscall: d.name,
    };
    if (opts?.op !== undefined) init.op = opts.op;
    if (opts?.path !== undefined) init.path = opts.path;
    throw new SysError(init);
  }
  return r;
}
