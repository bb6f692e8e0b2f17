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
 * koffi is loaded on first use, not at import: most commands never make a call.
 *
 * Its own loader (`require('koffi')`) costs ~15 ms before the addon is even opened: it reads
 * node's ELF headers to tell glibc from musl, and wraps deprecated functions we never call.
 * That is most of what a short-lived CLI pays for FFI, so the glibc binary that koffi's
 * platform package (`@koromix/koffi-<os>-<arch>`) holds is opened directly (3 ms); on any
 * failure (musl, another layout, another version) koffi's loader runs as usual.
 */
function ffi(): typeof Koffi {
  if (koffi === undefined) koffi = loadKoffi();
  return koffi;
}

function loadKoffi(): typeof Koffi {
  // node:module only when needed (process.getBuiltinModule): importing it loads four more
  // builtins at every nsinit start, which the bundle's fixed addon path does not need.
  const requireHere = () => process.getBuiltinModule('node:module').createRequire(import.meta.url);
  if (process.platform === 'linux') {
    try {
      // A bundle (the nsinit CLI) fixes the addon's path at build time (esbuild `define`), which
      // also saves resolving two packages through their exports maps (~10 ms cold).
      let addon = process.env.TSC_KOFFI_ADDON;
      let version: string | undefined;
      if (!addon) {
        const { createRequire } = process.getBuiltinModule('node:module');
        const fromKoffi = createRequire(requireHere().resolve('koffi'));
        const pkg = `@koromix/koffi-${process.platform}-${process.arch}`;
        version = (fromKoffi(`${pkg}/package.json`) as { version?: string }).version;
        addon = fromKoffi.resolve(`${pkg}/${process.platform}_${process.arch}/koffi.node`);
      }
      const m = { exports: {} as Partial<typeof Koffi> & { version?: string } };
      process.dlopen(m, addon);
      if (
        typeof m.exports.version === 'string' &&
        (version === undefined || m.exports.version === version) &&
        typeof m.exports.load === 'function'
      ) {
        return m.exports as typeof Koffi;
      }
    } catch {
      // koffi's own loader below knows every other case
    }
  }
  return requireHere()('koffi') as typeof Koffi;
}

let libcHandle: ReturnType<typeof Koffi.load> | undefined;

/** libc, opened once through koffi. */
export function libcLibrary(): ReturnType<typeof Koffi.load> {
  if (libcHandle === undefined) libcHandle = ffi().load('libc.so.6');
  return libcHandle;
}

function libc(): RawSyscall {
  if (raw === undefined) {
    raw = libcLibrary().func('long syscall(long nr, ...)') as unknown as RawSyscall;
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

/**
 * The address of the first byte of `buf`, for pointer fields inside structs handed to the kernel
 * (e.g. `bpf_attr.insns`). Keep `buf` referenced until the call returns; a Buffer made from its
 * own `ArrayBuffer` (not a pooled `Buffer.allocUnsafe`) keeps its bytes at a fixed address.
 */
export function bufferAddress(buf: Buffer | Uint8Array): bigint {
  return ffi().address(buf);
}

/** A readiness watch on a file descriptor, see {@link watchReadable}. */
export interface FdWatch {
  /** Stop watching (the descriptor itself stays open). */
  close(): void;
  /** Let the process exit while this watch is active. */
  unref(): void;
  /** Undo {@link FdWatch.unref}. */
  ref(): void;
}

/**
 * Call `onReadable` from the event loop each time `fd` is readable (a libuv poll handle, through
 * koffi). For descriptors Node cannot wrap as streams: eventfd, inotify, signalfd. Make the
 * descriptor non-blocking and read it until `EAGAIN` in the callback, or the callback keeps firing.
 */
export function watchReadable(fd: number, onReadable: (status: number) => void): FdWatch {
  // koffi calls the callback with (status, events); its typings only declare (events).
  const callback = ((status: number) => onReadable(status)) as unknown as (ev: { readable: boolean }) => void;
  const handle = ffi().node.poll(fd, { readable: true }, callback);
  return {
    close: () => handle.close(),
    unref: () => handle.unref(),
    ref: () => handle.ref(),
  };
}
