// Unit tests of the Program builder's wire format (no executor, no root).
import { AT, CLONE, O, SYSCALLS } from '@tsc/syscall';
import { describe, expect, it } from 'vitest';
import { DataRef, decodeMessage, MESSAGE_SIZE, Program, type Reg } from '../src/program.js';

const HEADER = 24;
const OP_SIZE = 72;

/** A decoded view of an encoded program, straight from the bytes. */
function parse(buf: Buffer) {
  const header = {
    magic: buf.readUInt32LE(0),
    version: buf.readUInt32LE(4),
    nOps: buf.readUInt32LE(8),
    dataLen: buf.readUInt32LE(12),
    nRelocs: buf.readUInt32LE(16),
    reserved: buf.readUInt32LE(20),
  };
  const ops = [];
  for (let i = 0; i < header.nOps; i++) {
    const at = HEADER + i * OP_SIZE;
    const argkinds = buf.readUInt32LE(at + 12);
    ops.push({
      kind: buf.readUInt16LE(at),
      onError: buf.readUInt8(at + 2),
      out: buf.readUInt8(at + 3),
      errno: buf.readInt32LE(at + 4),
      skip: buf.readInt32LE(at + 8),
      argkinds,
      kinds: [0, 1, 2, 3, 4, 5].map((k) => (argkinds >> (4 * k)) & 0xf),
      nr: buf.readBigInt64LE(at + 16),
      args: [0, 1, 2, 3, 4, 5].map((k) => buf.readBigInt64LE(at + 24 + k * 8)),
    });
  }
  const dataAt = HEADER + header.nOps * OP_SIZE;
  const data = buf.subarray(dataAt, dataAt + header.dataLen);
  const relocAt = dataAt + header.dataLen;
  const relocs = [];
  for (let i = 0; i < header.nRelocs; i++) relocs.push(buf.readUInt32LE(relocAt + i * 4));
  expect(buf.length).toBe(relocAt + header.nRelocs * 4);
  return { header, ops, data, relocs };
}

function cstringAt(data: Buffer, off: number | bigint): string {
  const o = Number(off);
  return data.subarray(o, data.indexOf(0, o)).toString('utf8');
}

describe('Program encoding', () => {
  it('writes the header, one 72-byte op per step, the data and the relocations', () => {
    const p = new Program('x86_64');
    const fd = p.reg();
    p.syscall('openat', [AT.FDCWD, '/etc/hostname', O.RDONLY | O.CLOEXEC, 0], { what: 'open', out: fd });
    p.syscall('read', [fd, new Uint8Array([1, 2, 3]), 3], { what: 'read' });
    p.syscall('close', [fd], { what: 'close' });
    const wire = p.encode();
    const { header, ops, data, relocs } = parse(wire);
    expect(wire.subarray(0, 4).toString('latin1')).toBe('TSCX');
    expect(wire.length).toBe(HEADER + 3 * OP_SIZE + data.length);
    expect(header).toEqual({
      magic: 0x58435354,
      version: 1,
      nOps: 3,
      dataLen: data.length,
      nRelocs: 0,
      reserved: 0,
    });
    expect(relocs).toEqual([]);

    const [open, read, close] = ops;
    expect(open).toMatchObject({ kind: 1, onError: 0, out: 1, errno: 0, skip: 0, nr: 257n });
    // arg kinds: imm, data, imm, imm (4 bits each).
    expect(open!.kinds).toEqual([0, 1, 0, 0, 0, 0]);
    expect(open!.argkinds).toBe(0x10);
    expect(open!.args[0]).toBe(-100n);
    expect(cstringAt(data, open!.args[1]!)).toBe('/etc/hostname');
    expect(open!.args[2]).toBe(BigInt(O.CLOEXEC));
    expect(open!.args.slice(4)).toEqual([0n, 0n]);

    // A register argument: kind 2 and the register index; a buffer is copied into data.
    expect(read).toMatchObject({ kind: 1, out: 0, nr: 0n });
    expect(read!.kinds.slice(0, 3)).toEqual([2, 1, 0]);
    expect(read!.args[0]).toBe(1n);
    expect(Number(read!.args[1]) % 8).toBe(0);
    expect([...data.subarray(Number(read!.args[1]), Number(read!.args[1]) + 3)]).toEqual([1, 2, 3]);
    expect(close).toMatchObject({ kind: 1, nr: 3n, argkinds: 2, args: [1n, 0n, 0n, 0n, 0n, 0n] });
  });

  it('uses the numbers of the target architecture', () => {
    for (const arch of ['x86_64', 'aarch64'] as const) {
      const p = new Program(arch);
      p.syscall('getpid', [], { what: 'getpid' });
      p.syscall('openat', [AT.FDCWD, '/', 0, 0], { what: 'open' });
      const { ops } = parse(p.encode());
      expect(ops.map((o) => o.nr)).toEqual([
        BigInt(SYSCALLS.getpid.nr[arch]),
        BigInt(SYSCALLS.openat.nr[arch]),
      ]);
    }
  });

  it('encodes negative and 64-bit immediates as two’s complement int64', () => {
    const p = new Program('x86_64');
    p.syscall('close_range', [3, 0xffffffff, 0], { what: 'a' });
    p.syscall('prctl', [1, -1n, 0xffffffffffffffffn, 2n ** 63n, 0], { what: 'b' });
    const { ops } = parse(p.encode());
    expect(ops[0]!.args.slice(0, 3)).toEqual([3n, 0xffffffffn, 0n]);
    expect(ops[1]!.args.slice(0, 4)).toEqual([1n, -1n, -1n, -(2n ** 63n)]);
  });

  it('keeps the data block 8-byte aligned and deduplicates strings', () => {
    const p = new Program('x86_64');
    const a = p.cstring('abc');
    const b = p.data(new Uint8Array([9]));
    const c = p.cstring('abc');
    const d = p.cstring('x');
    expect(c).toBe(a);
    for (const r of [a, b, d]) expect(r.offset % 8).toBe(0);
    p.syscall('chdir', ['abc'], { what: 'cd' });
    p.syscall('chdir', [a], { what: 'cd again' });
    const { ops, data } = parse(p.encode());
    expect(ops[0]!.args[0]).toBe(BigInt(a.offset));
    expect(ops[1]!.args[0]).toBe(BigInt(a.offset));
    expect(data.toString('latin1').split('abc\0').length).toBe(2); // stored once
    expect(cstringAt(data, d.offset)).toBe('x');
    expect(data[b.offset]).toBe(9);
  });

  it('relocations name 8-byte aligned slots that hold data offsets of NUL-terminated strings', () => {
    const p = new Program('x86_64');
    p.cstring('pad'); // so the array does not start at 0
    const argv = p.stringArray(['/bin/sh', '-c', 'echo $$', '/bin/sh']);
    const block = p.data(new Uint8Array(24));
    const target = p.cstring('target');
    p.pointerAt(block, 8, target);
    p.syscall('execve', ['/bin/sh', argv, null], { what: 'exec' });
    const { header, ops, data, relocs } = parse(p.encode());
    expect(header.nRelocs).toBe(5); // four strings (one deduplicated twice) + pointerAt
    expect(relocs).toHaveLength(5);
    for (const r of relocs) {
      expect(r % 8).toBe(0);
      expect(r + 8).toBeLessThanOrEqual(data.length);
    }
    const strings = relocs.map((r) => cstringAt(data, data.readBigUInt64LE(r)));
    expect(strings).toEqual(['/bin/sh', '-c', 'echo $$', '/bin/sh', 'target']);
    // argv is NULL-terminated and its terminator is not relocated.
    expect(data.readBigUInt64LE(argv.offset + 32)).toBe(0n);
    expect(relocs).not.toContain(argv.offset + 32);
    expect(relocs[4]).toBe(block.offset + 8);
    // The exec path and argv[0] share one string.
    expect(data.readBigUInt64LE(argv.offset)).toBe(ops[0]!.args[0]);
    expect(ops[0]!.kinds.slice(0, 3)).toEqual([1, 1, 0]);
    expect(ops[0]!.args[1]).toBe(BigInt(argv.offset));
    expect(() => p.pointerAt(block, 4, target)).toThrow(/aligned/);
  });

  it('pointerBlock can hold plain integers and skip the terminator', () => {
    const p = new Program('x86_64');
    const s = p.cstring('s');
    const blk = p.pointerBlock([7n, s], false);
    p.syscall('getpid', [], { what: 'x' });
    const { data, relocs } = parse(p.encode());
    expect(relocs).toEqual([blk.offset + 8]);
    expect(data.readBigUInt64LE(blk.offset)).toBe(7n);
    expect(data.readBigUInt64LE(blk.offset + 8)).toBe(BigInt(s.offset));
    expect(data.length).toBe(blk.offset + 16);
  });

  it('encodes clone, sync, exit and the error modes', () => {
    const p = new Program('x86_64');
    p.clone(CLONE.NEWUTS | CLONE.NEWPID, 'wait', { what: 'clone wait' });
    p.clone(CLONE.PARENT | CLONE.NEWPID, 'report', { what: 'clone report' });
    p.clone(CLONE.INTO_CGROUP, 'report', { what: 'clone big flag' });
    p.sync(42, { what: 'sync' });
    p.syscall('getpid', [], { what: 'ignore', onError: 'ignore', errno: 2 });
    p.exit(9, { what: 'exit' });
    const { ops, data } = parse(p.encode());
    expect(ops.map((o) => o.kind)).toEqual([2, 2, 2, 3, 1, 4]);
    const args = (i: number) => data.subarray(Number(ops[i]!.args[0]), Number(ops[i]!.args[0]) + 88);
    expect(ops[0]!.kinds.slice(0, 3)).toEqual([1, 0, 0]);
    expect(ops[0]!.args.slice(1, 3)).toEqual([88n, 1n]);
    expect(args(0).readBigUInt64LE(0)).toBe(BigInt(CLONE.NEWUTS | CLONE.NEWPID));
    expect(args(0).readBigUInt64LE(32)).toBe(17n); // exit_signal SIGCHLD
    expect(ops[1]!.args.slice(1, 3)).toEqual([88n, 0n]);
    expect(args(1).readBigUInt64LE(32)).toBe(0n); // CLONE_PARENT: clone3 wants 0
    expect(args(2).readBigUInt64LE(0)).toBe(0x200000000n);
    for (const i of [0, 1, 2]) expect(Number(ops[i]!.args[0]) % 8).toBe(0);
    expect(ops[3]).toMatchObject({ argkinds: 0, args: [42n, 0n, 0n, 0n, 0n, 0n] });
    expect(ops[4]).toMatchObject({ onError: 1, errno: 2, skip: 0 });
    expect(ops[5]).toMatchObject({ argkinds: 0, args: [9n, 0n, 0n, 0n, 0n, 0n] });
  });
});

describe('labels', () => {
  it('skipTo and jump resolve to the number of ops in between', () => {
    const p = new Program('x86_64');
    const end = p.label();
    const mid = p.label();
    p.syscall('getpid', [], { what: 'op0', onError: { skipTo: mid }, errno: 13 }); // 0 → 3
    p.syscall('getpid', [], { what: 'op1' });
    p.jump(end, { what: 'op2' }); // 2 → 5
    p.place(mid);
    p.syscall('getpid', [], { what: 'op3', onError: { skipTo: end } }); // 3 → 5
    const next = p.label();
    p.syscall('getpid', [], { what: 'op4', onError: { skipTo: next } }); // 4 → 5: skip 0
    p.place(next);
    p.place(end);
    p.syscall('getpid', [], { what: 'op5' });
    const last = p.label();
    p.syscall('getpid', [], { what: 'op6', onError: { skipTo: last } }); // to the end of the program
    p.place(last);
    const { ops } = parse(p.encode());
    expect(ops.map((o) => [o.kind, o.onError, o.skip, o.errno])).toEqual([
      [1, 2, 2, 13],
      [1, 0, 0, 0],
      [5, 0, 2, 0],
      [1, 2, 1, 0],
      [1, 2, 0, 0],
      [1, 0, 0, 0],
      [1, 2, 0, 0],
    ]);
    expect(p.describe(2)).toBe('op2');
    expect(p.syscallOf(2)).toBe('jump');
    expect(p.syscallOf(0)).toBe('getpid');
    expect(p.describe(99)).toBe('program step 99');
    expect(p.length).toBe(7);
    expect(p.position).toBe(7);
  });

  it('a label placed before (or at) its op, or never placed, throws', () => {
    const before = new Program('x86_64');
    const l = before.label();
    before.syscall('getpid', [], { what: 'first' });
    before.place(l);
    before.syscall('getpid', [], { what: 'backwards', onError: { skipTo: l } });
    expect(() => before.encode()).toThrow(/label for "backwards" was not placed after it/);

    const jumpBack = new Program('x86_64');
    const j = jumpBack.label();
    jumpBack.place(j);
    jumpBack.jump(j, { what: 'loop' });
    expect(() => jumpBack.encode()).toThrow(/label for "loop"/);

    const never = new Program('x86_64');
    never.syscall('getpid', [], { what: 'nowhere', onError: { skipTo: never.label() } });
    expect(() => never.encode()).toThrow(/nowhere/);
  });

  it('setOnError rewrites an op after the fact', () => {
    const p = new Program('x86_64');
    p.syscall('getpid', [], { what: 'x' });
    const l = p.label();
    p.syscall('getpid', [], { what: 'y' });
    p.place(l);
    p.setOnError(0, { skipTo: l }, 17);
    p.setOnError(1, 'ignore');
    const { ops } = parse(p.encode());
    expect(ops.map((o) => [o.onError, o.skip, o.errno])).toEqual([
      [2, 1, 17],
      [1, 0, 0],
    ]);
    expect(() => p.setOnError(5, 'fail')).toThrow(/no op 5/);
  });
});

describe('Program checks', () => {
  it('fdMessage: a msghdr whose iov and control pointers are relocated, with one SCM_RIGHTS cmsg', () => {
    const p = new Program('x86_64');
    const msg = p.fdMessage('/dev/pts/ptmx', [1001, 7]);
    p.syscall('sendmsg', [5, msg, 0x4000], { what: 'send' });
    const { ops, data, relocs } = parse(p.encode());
    expect(ops[0]?.args[1]).toBe(BigInt(msg.offset));
    const hdr = data.subarray(msg.offset, msg.offset + 56);
    const iov = Number(hdr.readBigUInt64LE(16));
    const control = Number(hdr.readBigUInt64LE(32));
    expect(hdr.readBigUInt64LE(0)).toBe(0n); // no name
    expect(hdr.readBigUInt64LE(24)).toBe(1n); // one iovec
    expect(hdr.readBigUInt64LE(40)).toBe(24n); // CMSG_SPACE(2 * sizeof(int))
    expect(relocs).toEqual(expect.arrayContaining([iov, msg.offset + 16, msg.offset + 32]));
    // The iovec points at the payload (13 bytes, no NUL).
    expect(cstringAt(data, data.readBigUInt64LE(iov))).toBe('/dev/pts/ptmx');
    expect(data.readBigUInt64LE(iov + 8)).toBe(13n);
    // cmsghdr: len = CMSG_LEN(8) = 24, SOL_SOCKET, SCM_RIGHTS, then the fds.
    expect(data.readBigUInt64LE(control)).toBe(24n);
    expect([8, 12, 16, 20].map((o) => data.readInt32LE(control + o))).toEqual([1, 1, 1001, 7]);
    expect(() => p.fdMessage('', [1])).toThrow(/payload/);
    expect(() => p.fdMessage('x', [])).toThrow(/no fds/);
  });

  it('an ioctl argument can be an integer (a value, not a pointer)', () => {
    const p = new Program('x86_64');
    p.syscall('ioctl', [3, 0x5441, 0o400 | 2], { what: 'TIOCGPTPEER' });
    const { ops } = parse(p.encode());
    expect(ops[0]?.kinds.slice(0, 3)).toEqual([0, 0, 0]);
    expect(ops[0]?.args[2]).toBe(0o402n);
  });

  it('refuses NUL in a string', () => {
    const p = new Program('x86_64');
    expect(() => p.cstring('a\0b')).toThrow(/NUL/);
    expect(() => p.syscall('chdir', ['/tmp\0/etc'], { what: 'cd' })).toThrow(/NUL/);
    expect(() => p.stringArray(['ok', 'bad\0'])).toThrow(/NUL/);
  });

  it('allows 255 registers and refuses the 256th', () => {
    const p = new Program('x86_64');
    const regs: Reg[] = [];
    for (let i = 0; i < 255; i++) regs.push(p.reg());
    expect(regs[0]!.index).toBe(1); // register 0 means "no output"
    expect(regs[254]!.index).toBe(255);
    expect(new Set(regs.map((r) => r.index)).size).toBe(255);
    expect(() => p.reg()).toThrow(/more than 255 registers/);
  });

  it('refuses non-integers and values of the wrong kind', () => {
    const p = new Program('x86_64');
    expect(() => p.syscall('close', [1.5], { what: 'x' })).toThrow(/not an integer/);
    expect(() => p.syscall('write', [1, 'text' as unknown as Uint8Array, 4], { what: 'x' })).toThrow(
      /cannot pass string as buf/,
    );
    expect(p.length).toBe(0);
    // A DataRef may stand for any pointer.
    p.syscall('write', [1, new DataRef(0), 0], { what: 'ok' });
    expect(p.length).toBe(1);
  });
});

describe('decodeMessage', () => {
  function msg(type: number, index: number, err: number, value: number): Buffer {
    const b = Buffer.alloc(MESSAGE_SIZE);
    b.writeUInt32LE(type, 0);
    b.writeUInt32LE(index, 4);
    b.writeInt32LE(err, 8);
    b.writeInt32LE(value, 12);
    return b;
  }
  it('decodes the four message types and refuses others', () => {
    expect(MESSAGE_SIZE).toBe(16);
    expect(decodeMessage(msg(1, 3, 0, 4242))).toEqual({ type: 'pid', index: 3, pid: 4242 });
    expect(decodeMessage(msg(2, 4, 0, 7))).toEqual({ type: 'sync', index: 4, id: 7 });
    expect(decodeMessage(msg(3, 0xffffffff, 22, 120))).toEqual({
      type: 'error',
      index: 0xffffffff,
      errno: 22,
      code: 120,
    });
    expect(decodeMessage(msg(4, 1, 0, 5 << 8))).toEqual({ type: 'exited', index: 1, waitStatus: 1280 });
    expect(decodeMessage(Buffer.concat([msg(9, 0, 0, 0), msg(2, 1, 0, 2)]), 16)).toEqual({
      type: 'sync',
      index: 1,
      id: 2,
    });
    expect(() => decodeMessage(msg(0, 0, 0, 0))).toThrow(/unknown message type 0/);
  });
});
