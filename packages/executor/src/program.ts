import { type Arch, type ArgKind, hostArch, SYSCALLS, type SyscallName } from '@tsc/syscall';

/** Op kinds, arg kinds and error modes: must match executor.c. */
const OP = { SYSCALL: 1, CLONE: 2, SYNC: 3, EXIT: 4, JUMP: 5 } as const;
const ARG = { IMM: 0, DATA: 1, REG: 2 } as const;
const ON_ERROR = { fail: 0, ignore: 1, skip: 2 } as const;
const MAGIC = 0x58435354;
const VERSION = 1;
const OP_SIZE = 72;
const NREGS = 256;

/** A register of the executor: holds the result of an earlier op. */
export class Reg {
  /** @internal */
  constructor(readonly index: number) {}
}

/** A pointer into the program's data block. */
export class DataRef {
  /** @internal */
  constructor(readonly offset: number) {}
}

/** A position in the program that an error handler can skip to. */
export class Label {
  /** @internal */
  index = -1;
}

/** An argument value in a program, per the syscall's argument kind. */
export type ProgramArg<K extends ArgKind> = K extends 'int' | 'long'
  ? number | bigint | Reg
  : K extends 'str'
    ? string | DataRef | null
    : K extends 'buf'
      ? // An integer goes through as is: ioctl(2) takes a value for some requests (TIOCGPTPEER's flags).
        Uint8Array | DataRef | number | bigint | null
      : null | number | bigint | DataRef;

export type ProgramArgs<A extends readonly ArgKind[]> = { [I in keyof A]: ProgramArg<A[I]> };

/** What to do when an op fails. */
export type OnError =
  | 'fail'
  | 'ignore'
  /** Jump to a label (the ops in between do not run). */
  | { skipTo: Label };

export interface OpOptions {
  /** What this step means, in words, for error messages (`mount proc on /proc`). */
  what: string;
  /** Keep the result in this register. */
  out?: Reg;
  /** Default `fail`. */
  onError?: OnError;
  /** With `ignore`/`skipTo`: only this errno is tolerated (default: any). */
  errno?: number;
}

interface OpRecord {
  kind: number;
  nr: number;
  args: { kind: number; value: bigint }[];
  out: number;
  onError: OnError;
  errno: number;
  what: string;
  syscall: string;
}

/** A message the executor sent. */
export type ExecutorMessage =
  | { type: 'pid'; index: number; pid: number }
  | { type: 'sync'; index: number; id: number }
  | { type: 'error'; index: number; errno: number; code: number }
  | { type: 'exited'; index: number; waitStatus: number };

/** Decode a 16-byte message record. */
export function decodeMessage(b: Buffer, at = 0): ExecutorMessage {
  const type = b.readUInt32LE(at);
  const index = b.readUInt32LE(at + 4);
  const err = b.readInt32LE(at + 8);
  const value = b.readInt32LE(at + 12);
  switch (type) {
    case 1:
      return { type: 'pid', index, pid: value };
    case 2:
      return { type: 'sync', index, id: value };
    case 3:
      return { type: 'error', index, errno: err, code: value };
    case 4:
      return { type: 'exited', index, waitStatus: value };
    default:
      throw new Error(`executor sent an unknown message type ${type}`);
  }
}

export const MESSAGE_SIZE = 16;

/**
 * A syscall program for the executor. TypeScript decides every step; the
 * executor only performs them in order.
 *
 * @example
 * const p = new Program();
 * const fd = p.reg();
 * p.syscall('openat', [AT.FDCWD, '/etc/hostname', O.RDONLY | O.CLOEXEC, 0], { what: 'open /etc/hostname', out: fd });
 * p.syscall('close', [fd], { what: 'close it' });
 */
export class Program {
  readonly arch: Arch;
  private readonly ops: OpRecord[] = [];
  private readonly chunks: Buffer[] = [];
  private dataLen = 0;
  private readonly relocs: number[] = [];
  private nextReg = 1;
  private readonly strings = new Map<string, DataRef>();

  constructor(arch: Arch = hostArch()) {
    this.arch = arch;
  }

  /** Allocate a fresh register. */
  reg(): Reg {
    if (this.nextReg >= NREGS) throw new Error(`program uses more than ${NREGS - 1} registers`);
    return new Reg(this.nextReg++);
  }

  /** Number of ops so far. */
  get length(): number {
    return this.ops.length;
  }

  /** Append raw bytes to the data block (8-byte aligned). */
  data(bytes: Uint8Array): DataRef {
    const pad = (8 - (this.dataLen % 8)) % 8;
    if (pad) this.push(Buffer.alloc(pad));
    const ref = new DataRef(this.dataLen);
    this.push(Buffer.from(bytes));
    return ref;
  }

  /** A NUL-terminated string in the data block (deduplicated). */
  cstring(s: string): DataRef {
    let ref = this.strings.get(s);
    if (ref === undefined) {
      if (s.includes('\0')) throw new Error(`string contains NUL: ${JSON.stringify(s)}`);
      ref = this.data(Buffer.from(`${s}\0`, 'utf8'));
      this.strings.set(s, ref);
    }
    return ref;
  }

  /** A NULL-terminated array of pointers to strings (argv, envp). */
  stringArray(items: readonly string[]): DataRef {
    const refs = items.map((s) => this.cstring(s));
    return this.pointerBlock(refs.map((r) => r));
  }

  /**
   * A block of 8-byte slots, each a pointer to data (relocated by the executor)
   * or a plain integer; NULL-terminated when `terminate` (default true).
   */
  pointerBlock(slots: readonly (DataRef | bigint)[], terminate = true): DataRef {
    const n = slots.length + (terminate ? 1 : 0);
    const buf = Buffer.alloc(n * 8);
    slots.forEach((s, i) => {
      buf.writeBigUInt64LE(s instanceof DataRef ? BigInt(s.offset) : s, i * 8);
    });
    const ref = this.data(buf);
    slots.forEach((s, i) => {
      if (s instanceof DataRef) this.relocs.push(ref.offset + i * 8);
    });
    return ref;
  }

  /**
   * A `struct msghdr` for sendmsg(2): `payload` as the data and `fds` as one SCM_RIGHTS control
   * message. The fd numbers are fixed when the program is built (the executor never writes into
   * the data block): move an fd held in a register to a known number with dup3 first.
   */
  fdMessage(payload: Uint8Array | string, fds: readonly number[]): DataRef {
    const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload);
    // On a stream socket a control message needs at least one byte of data to travel with.
    if (bytes.length === 0) throw new Error('fdMessage: the payload must not be empty');
    if (fds.length === 0) throw new Error('fdMessage: no fds to send');
    const base = this.data(bytes);
    const iov = Buffer.alloc(16); // struct iovec { void *iov_base; size_t iov_len; }
    iov.writeBigUInt64LE(BigInt(bytes.length), 8);
    const iovRef = this.data(iov);
    this.pointerAt(iovRef, 0, base);
    const cmsgLen = 16 + 4 * fds.length; // CMSG_LEN: struct cmsghdr { size_t len; int level; int type; } + data
    const cmsg = Buffer.alloc((cmsgLen + 7) & ~7); // CMSG_SPACE
    cmsg.writeBigUInt64LE(BigInt(cmsgLen), 0);
    cmsg.writeInt32LE(1, 8); // SOL_SOCKET
    cmsg.writeInt32LE(1, 12); // SCM_RIGHTS
    fds.forEach((fd, i) => {
      cmsg.writeInt32LE(fd, 16 + 4 * i);
    });
    const cmsgRef = this.data(cmsg);
    // struct msghdr: name 0, namelen 8, iov 16, iovlen 24, control 32, controllen 40, flags 48.
    const msg = Buffer.alloc(56);
    msg.writeBigUInt64LE(1n, 24);
    msg.writeBigUInt64LE(BigInt(cmsg.length), 40);
    const msgRef = this.data(msg);
    this.pointerAt(msgRef, 16, iovRef);
    this.pointerAt(msgRef, 32, cmsgRef);
    return msgRef;
  }

  /** Mark `at` (an 8-byte slot inside data) as holding a pointer to `target`. */
  pointerAt(block: DataRef, byteOffset: number, target: DataRef): void {
    const at = block.offset + byteOffset;
    if (at % 8 !== 0) throw new Error('pointer slots must be 8-byte aligned');
    this.writeData(at, target.offset);
    this.relocs.push(at);
  }

  /** A label to jump to; place it with {@link place}. */
  label(): Label {
    return new Label();
  }

  /** Put `l` at the current position: the next op appended is its target. */
  place(l: Label): void {
    l.index = this.ops.length;
  }

  /** Append a raw syscall. */
  syscall<N extends SyscallName>(
    name: N,
    args: ProgramArgs<(typeof SYSCALLS)[N]['args']>,
    o: OpOptions,
  ): void {
    const d = SYSCALLS[name];
    const values = args as readonly unknown[];
    const enc = d.args.map((k, i) => this.encodeArg(k as ArgKind, values[i] ?? null, `${name} arg ${i}`));
    this.append(OP.SYSCALL, d.nr[this.arch], enc, o, name);
  }

  /**
   * clone3 with `flags`. The child goes on with the next op. The parent either
   * reports the child's pid and exits (`report`: with CLONE_PARENT the child
   * becomes the caller's sibling), or waits for it and exits with its status (`wait`).
   */
  clone(flags: bigint | number, mode: 'report' | 'wait', o: OpOptions): void {
    const args = Buffer.alloc(88); // struct clone_args, CLONE_ARGS_SIZE_VER2
    args.writeBigUInt64LE(BigInt(flags), 0);
    // exit_signal: SIGCHLD, except with CLONE_PARENT, where clone3 requires 0 and
    // the child inherits the exit signal the executor itself has (SIGCHLD).
    const parent = (BigInt(flags) & 0x8000n) !== 0n;
    args.writeBigUInt64LE(parent ? 0n : 17n, 32);
    const ref = this.data(args);
    this.append(
      OP.CLONE,
      0,
      [
        { kind: ARG.DATA, value: BigInt(ref.offset) },
        { kind: ARG.IMM, value: 88n },
        { kind: ARG.IMM, value: mode === 'report' ? 0n : 1n },
      ],
      o,
      'clone3',
    );
  }

  /** Stop until the parent answers; the parent sees `id`. */
  sync(id: number, o: OpOptions): void {
    this.append(OP.SYNC, 0, [{ kind: ARG.IMM, value: BigInt(id) }], o, 'sync');
  }

  /** Exit with `code`. */
  exit(code: number, o: OpOptions): void {
    this.append(OP.EXIT, 0, [{ kind: ARG.IMM, value: BigInt(code) }], o, 'exit');
  }

  /** Change what happens when op `index` fails (e.g. after a helper appended it). */
  setOnError(index: number, onError: OnError, errno = 0): void {
    const op = this.ops[index];
    if (!op) throw new Error(`no op ${index}`);
    op.onError = onError;
    op.errno = errno;
  }

  /** Jump forward to `l` unconditionally. */
  jump(l: Label, o: OpOptions): void {
    this.append(OP.JUMP, 0, [], { ...o, onError: { skipTo: l } }, 'jump');
  }

  /** The `what` of op `index`. */
  describe(index: number): string {
    return this.ops[index]?.what ?? `program step ${index}`;
  }

  /** The syscall of op `index`. */
  syscallOf(index: number): string {
    return this.ops[index]?.syscall ?? 'unknown';
  }

  /** Index of the op appended next. */
  get position(): number {
    return this.ops.length;
  }

  /** The wire form the executor reads. */
  encode(): Buffer {
    const data = Buffer.concat(this.chunks, this.dataLen);
    const head = Buffer.alloc(24);
    head.writeUInt32LE(MAGIC, 0);
    head.writeUInt32LE(VERSION, 4);
    head.writeUInt32LE(this.ops.length, 8);
    head.writeUInt32LE(data.length, 12);
    head.writeUInt32LE(this.relocs.length, 16);
    const opsLen = this.ops.length * OP_SIZE;
    const ops = Buffer.alloc(opsLen);
    // DataView, not Buffer's write*(): those are JavaScript in Node, slow until the JIT warms
    // up, and a CLI encodes one program per process. The executor is native: little-endian on
    // every architecture we build for (x86_64, aarch64).
    const v = new DataView(ops.buffer, ops.byteOffset, opsLen);
    this.ops.forEach((op, i) => {
      const at = i * OP_SIZE;
      v.setUint16(at, op.kind, true);
      let mode = 0;
      let skip = 0;
      if (op.onError === 'ignore') mode = ON_ERROR.ignore;
      else if (typeof op.onError === 'object' && op.kind === OP.JUMP) {
        const target = op.onError.skipTo.index;
        if (target <= i) throw new Error(`label for "${op.what}" was not placed after it`);
        skip = target - i - 1;
      } else if (typeof op.onError === 'object' && op.kind !== OP.JUMP) {
        mode = ON_ERROR.skip;
        const target = op.onError.skipTo.index;
        if (target <= i) throw new Error(`label for "${op.what}" was not placed after it`);
        skip = target - i - 1;
      }
      v.setUint8(at + 2, mode);
      v.setUint8(at + 3, op.out);
      v.setInt32(at + 4, op.errno, true);
      v.setInt32(at + 8, skip, true);
      let kinds = 0;
      op.args.forEach((a, k) => {
        kinds |= a.kind << (4 * k);
        v.setBigInt64(at + 24 + k * 8, BigInt.asIntN(64, a.value), true);
      });
      v.setUint32(at + 12, kinds, true);
      v.setBigInt64(at + 16, BigInt(op.nr), true);
    });
    const relocs = Buffer.alloc(this.relocs.length * 4);
    const rv = new DataView(relocs.buffer, relocs.byteOffset, relocs.length);
    this.relocs.forEach((r, i) => {
      rv.setUint32(i * 4, r, true);
    });
    // executor.c reads, in this order: header, ops (n_ops * 72 bytes), data, relocs.
    return Buffer.concat([head, ops, data, relocs]);
  }

  private append(
    kind: number,
    nr: number,
    args: { kind: number; value: bigint }[],
    o: OpOptions,
    syscall: string,
  ): void {
    this.ops.push({
      kind,
      nr,
      args,
      out: o.out?.index ?? 0,
      onError: o.onError ?? 'fail',
      errno: o.errno ?? 0,
      what: o.what,
      syscall,
    });
  }

  private encodeArg(kind: ArgKind, v: unknown, ctx: string): { kind: number; value: bigint } {
    if (v instanceof Reg) return { kind: ARG.REG, value: BigInt(v.index) };
    if (v instanceof DataRef) return { kind: ARG.DATA, value: BigInt(v.offset) };
    if (v === null) return { kind: ARG.IMM, value: 0n };
    if (typeof v === 'number') {
      if (!Number.isInteger(v)) throw new Error(`${ctx}: ${v} is not an integer`);
      return { kind: ARG.IMM, value: BigInt(v) };
    }
    if (typeof v === 'bigint') return { kind: ARG.IMM, value: v };
    if (typeof v === 'string' && kind === 'str')
      return { kind: ARG.DATA, value: BigInt(this.cstring(v).offset) };
    if (v instanceof Uint8Array && (kind === 'buf' || kind === 'ptr'))
      return { kind: ARG.DATA, value: BigInt(this.data(v).offset) };
    throw new Error(`${ctx}: cannot pass ${typeof v} as ${kind}`);
  }

  private push(b: Buffer): void {
    this.chunks.push(b);
    this.dataLen += b.length;
  }

  private writeData(at: number, value: number): void {
    let base = 0;
    for (const c of this.chunks) {
      if (at >= base && at + 8 <= base + c.length) {
        c.writeBigUInt64LE(BigInt(value), at - base);
        return;
      }
      base += c.length;
    }
    throw new Error(`data offset ${at} is not inside one chunk`);
  }
}
