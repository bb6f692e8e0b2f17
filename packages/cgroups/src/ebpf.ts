/**
 * cgroup v2 device control: a `BPF_PROG_TYPE_CGROUP_DEVICE` program built from the OCI rules, loaded
 * with bpf(2) and attached to the cgroup directory, as crun and systemd do it.
 *
 * The program sees `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }` in R1,
 * where `access_type = (access << 16) | type`. It returns 1 to allow and 0 to deny.
 */
import { closeSync, constants, openSync } from 'node:fs';
import { bufferAddress, call } from '@tsc/syscall';
import { CgroupError, errnoOf } from './errors.js';
import type { DeviceRule } from './resources.js';

/** One eBPF instruction (`struct bpf_insn`). */
export interface BpfInsn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

/** `BPF_DEVCG_ACC_*` and `BPF_DEVCG_DEV_*` from `<linux/bpf.h>`. */
export const BPF_DEVCG = { ACC_MKNOD: 1, ACC_READ: 2, ACC_WRITE: 4, DEV_BLOCK: 1, DEV_CHAR: 2 } as const;

// Opcodes used by the device program (class | size/op | source).
const LDX_MEM_W = 0x61; // BPF_LDX | BPF_W | BPF_MEM
const ALU32_AND_K = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_X = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const ALU64_MOV_K = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JNE_K = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JNE_X = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const EXIT = 0x95; // BPF_JMP | BPF_EXIT

const insn = (code: number, dst: number, src: number, off: number, imm: number): BpfInsn => ({
  code,
  dst,
  src,
  off,
  imm,
});

function accessBits(access: string): number {
  let bits = 0;
  if (access.includes('r')) bits |= BPF_DEVCG.ACC_READ;
  if (access.includes('w')) bits |= BPF_DEVCG.ACC_WRITE;
  if (access.includes('m')) bits |= BPF_DEVCG.ACC_MKNOD;
  return bits;
}

const ALL_ACCESS = BPF_DEVCG.ACC_READ | BPF_DEVCG.ACC_WRITE | BPF_DEVCG.ACC_MKNOD;

/**
 * Build the device program for OCI rules (validated, see `validateResources`). Like crun: default
 * deny, rules emitted in reverse order so that the last matching rule wins, each as
 *
 * ```
 * if type != T goto next          (unless type 'a')
 * w1 = w3; w1 &= ACC; if r1 != r3 goto next   (unless access is rwm)
 * if major != M goto next         (unless wildcard)
 * if minor != N goto next         (unless wildcard)
 * r0 = allow; exit
 * next:
 * ```
 *
 * A rule matching every device (type `a`, `*:*`, `rwm`) ends the program: earlier rules could
 * never decide anything, and neither could the final `r0 = 0; exit`.
 */
export function deviceFilterProgram(rules: readonly DeviceRule[]): BpfInsn[] {
  const prog: BpfInsn[] = [
    insn(LDX_MEM_W, 2, 1, 0, 0), // r2 = ctx->access_type
    insn(ALU32_AND_K, 2, 0, 0, 0xffff), // w2 &= 0xffff: the device type
    insn(LDX_MEM_W, 3, 1, 0, 0), // r3 = ctx->access_type
    insn(ALU32_RSH_K, 3, 0, 0, 16), // w3 >>= 16: the requested access
    insn(LDX_MEM_W, 4, 1, 4, 0), // r4 = ctx->major
    insn(LDX_MEM_W, 5, 1, 8, 0), // r5 = ctx->minor
  ];
  for (let i = rules.length - 1; i >= 0; i--) {
    const r = rules[i] as DeviceRule;
    const access = accessBits(r.access);
    const block: BpfInsn[] = [];
    // Jumps are emitted with off = -1 and patched to "the end of this block" below.
    if (r.type !== 'a') {
      block.push(insn(JNE_K, 2, 0, -1, r.type === 'b' ? BPF_DEVCG.DEV_BLOCK : BPF_DEVCG.DEV_CHAR));
    }
    if (access !== ALL_ACCESS) {
      block.push(insn(ALU32_MOV_X, 1, 3, 0, 0)); // w1 = w3
      block.push(insn(ALU32_AND_K, 1, 0, 0, access)); // w1 &= rule access
      block.push(insn(JNE_X, 1, 3, -1, 0)); // requested access not a subset: next rule
    }
    if (r.major !== '*') block.push(insn(JNE_K, 4, 0, -1, Number(r.major)));
    if (r.minor !== '*') block.push(insn(JNE_K, 5, 0, -1, Number(r.minor)));
    block.push(insn(ALU64_MOV_K, 0, 0, 0, r.allow ? 1 : 0));
    block.push(insn(EXIT, 0, 0, 0, 0));
    block.forEach((b, j) => {
      if (b.off === -1) b.off = block.length - j - 1;
    });
    prog.push(...block);
    if (block.length === 2) return prog; // matches everything: nothing before it matters
  }
  prog.push(insn(ALU64_MOV_K, 0, 0, 0, 0), insn(EXIT, 0, 0, 0, 0));
  return prog;
}

/** A Buffer with its own `ArrayBuffer`: its bytes stay at one address while it is referenced. */
function pinned(size: number): Buffer {
  return Buffer.from(new ArrayBuffer(size));
}

/** Encode instructions as the kernel's `struct bpf_insn[]` (8 bytes each, little-endian). */
export function encodeProgram(insns: readonly BpfInsn[]): Buffer {
  const buf = pinned(insns.length * 8);
  insns.forEach((x, i) => {
    buf.writeUInt8(x.code, i * 8);
    buf.writeUInt8(((x.src & 0xf) << 4) | (x.dst & 0xf), i * 8 + 1);
    buf.writeInt16LE(x.off, i * 8 + 2);
    buf.writeInt32LE(x.imm, i * 8 + 4);
  });
  return buf;
}

/** Human-readable instructions (the kernel's verifier-log syntax), for tests and errors. */
export function disassemble(insns: readonly BpfInsn[]): string[] {
  return insns.map((x) => {
    switch (x.code) {
      case LDX_MEM_W:
        return `r${x.dst} = *(u32 *)(r${x.src} + ${x.off})`;
      case ALU32_AND_K:
        return `w${x.dst} &= 0x${x.imm.toString(16)}`;
      case ALU32_RSH_K:
        return `w${x.dst} >>= ${x.imm}`;
      case ALU32_MOV_X:
        return `w${x.dst} = w${x.src}`;
      case ALU64_MOV_K:
        return `r${x.dst} = ${x.imm}`;
      case JNE_K:
        return `if r${x.dst} != ${x.imm} goto +${x.off}`;
      case JNE_X:
        return `if r${x.dst} != r${x.src} goto +${x.off}`;
      case EXIT:
        return 'exit';
      default:
        return `code 0x${x.code.toString(16)}`;
    }
  });
}

// bpf(2) commands and constants.
const BPF_PROG_LOAD = 5;
const BPF_PROG_ATTACH = 8;
const BPF_PROG_DETACH = 9;
const BPF_PROG_GET_FD_BY_ID = 13;
const BPF_PROG_QUERY = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE = 15;
const BPF_CGROUP_DEVICE = 6;
const BPF_F_ALLOW_MULTI = 2;
const BPF_F_REPLACE = 4;
/** Size passed for `union bpf_attr`: large enough for every field used, the rest zero. */
const ATTR_SIZE = 128;
/** The program name shown by `bpftool prog` (at most 15 characters). */
export const DEVICE_PROG_NAME = 'tsc_devices';

function bpfError(what: string, err: unknown, dir?: string, extra = ''): CgroupError {
  const errno = errnoOf(err) ?? 'EUNKNOWN';
  const code =
    errno === 'EPERM' || errno === 'EACCES'
      ? 'PermissionDenied'
      : errno === 'EINVAL' || errno === 'E2BIG'
        ? 'Invalid'
        : errno === 'ENOSYS' || errno === 'EOPNOTSUPP'
          ? 'Unsupported'
          : errno === 'ENOENT' || errno === 'EBADF'
            ? 'NotFound'
            : 'System';
  const details: ConstructorParameters<typeof CgroupError>[3] = { errno, cause: err, field: 'devices' };
  if (dir !== undefined) details.path = dir;
  return new CgroupError(code, 'bpf', `linux.resources.devices: ${what}: ${errno}${extra}`, details);
}

function bpf(cmd: number, attr: Buffer, op: string): number {
  return call('bpf', [cmd, attr, attr.length], { op });
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/**
 * Load a cgroup device program; returns its file descriptor (close it once attached). On failure
 * the load is repeated with the verifier log, which then ends the error message.
 */
export function loadDeviceProgram(insns: readonly BpfInsn[]): number {
  const code = encodeProgram(insns);
  const license = pinned(4);
  license.write('GPL\0', 'latin1');
  const attr = pinned(ATTR_SIZE);
  attr.writeUInt32LE(BPF_PROG_TYPE_CGROUP_DEVICE, 0); // prog_type
  attr.writeUInt32LE(insns.length, 4); // insn_cnt
  attr.writeBigUInt64LE(bufferAddress(code), 8); // insns
  attr.writeBigUInt64LE(bufferAddress(license), 16); // license
  attr.write(DEVICE_PROG_NAME, 48, 'latin1'); // prog_name[16]
  let fd: number;
  try {
    fd = bpf(BPF_PROG_LOAD, attr, 'bpf(BPF_PROG_LOAD)');
  } catch (err) {
    if (errnoOf(err) === 'EPERM' || errnoOf(err) === 'ENOSYS') throw bpfError('load the device program', err);
    const log = pinned(1 << 16);
    attr.writeUInt32LE(1, 24); // log_level
    attr.writeUInt32LE(log.length, 28); // log_size
    attr.writeBigUInt64LE(bufferAddress(log), 32); // log_buf
    try {
      fd = bpf(BPF_PROG_LOAD, attr, 'bpf(BPF_PROG_LOAD)');
    } catch (err2) {
      const text = log.toString('latin1', 0, Math.max(0, log.indexOf(0))).trim();
      throw bpfError('load the device program', err2, undefined, text === '' ? '' : `; verifier: ${text}`);
    }
    if (log.length === 0) throw new Error('unreachable');
  }
  // Keep the buffers the kernel read through raw addresses alive until here.
  if (code.length === 0 || license.length === 0) throw new Error('unreachable');
  return fd;
}

/** The ids of the device programs attached to a cgroup directory (fd). */
function queryPrograms(dirFd: number, dir: string): number[] {
  for (let cap = 64; cap <= 4096; cap *= 2) {
    const ids = pinned(cap * 4);
    const attr = pinned(ATTR_SIZE);
    attr.writeUInt32LE(dirFd, 0); // target_fd
    attr.writeUInt32LE(BPF_CGROUP_DEVICE, 4); // attach_type
    attr.writeBigUInt64LE(bufferAddress(ids), 16); // prog_ids
    attr.writeUInt32LE(cap, 24); // prog_cnt
    try {
      bpf(BPF_PROG_QUERY, attr, 'bpf(BPF_PROG_QUERY)');
    } catch (err) {
      if (errnoOf(err) === 'ENOSPC') continue;
      throw bpfError(`query the device programs of ${dir}`, err, dir);
    }
    const n = Math.min(attr.readUInt32LE(24), cap);
    return Array.from({ length: n }, (_, i) => ids.readUInt32LE(i * 4));
  }
  throw new CgroupError(
    'System',
    'bpf',
    `linux.resources.devices: more than 4096 device programs on ${dir}`,
    {
      path: dir,
    },
  );
}

function openDir(dir: string): number {
  try {
    return openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  } catch (err) {
    throw bpfError(`open ${dir}`, err, dir);
  }
}

/** The ids of the device programs attached directly to `dir` (not inherited ones). */
export function devicePrograms(dir: string): number[] {
  const dirFd = openDir(dir);
  try {
    return queryPrograms(dirFd, dir);
  } finally {
    closeQuietly(dirFd);
  }
}

/** A file descriptor for a program id, or `undefined` when it is gone. */
function programFd(id: number): number | undefined {
  const attr = pinned(ATTR_SIZE);
  attr.writeUInt32LE(id, 0); // prog_id
  try {
    return bpf(BPF_PROG_GET_FD_BY_ID, attr, 'bpf(BPF_PROG_GET_FD_BY_ID)');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw bpfError(`open device program ${id}`, err);
  }
}

function attrAttach(dirFd: number, progFd: number, flags: number, replaceFd: number): Buffer {
  const attr = pinned(ATTR_SIZE);
  attr.writeUInt32LE(dirFd, 0); // target_fd
  attr.writeUInt32LE(progFd, 4); // attach_bpf_fd
  attr.writeUInt32LE(BPF_CGROUP_DEVICE, 8); // attach_type
  attr.writeUInt32LE(flags, 12); // attach_flags
  attr.writeUInt32LE(replaceFd, 16); // replace_bpf_fd
  return attr;
}

/**
 * Attach a loaded device program to `dir` with `BPF_F_ALLOW_MULTI`, taking the place of what was
 * attached there before (by this runtime; the cgroup belongs to the container): one old program is
 * swapped atomically with `BPF_F_REPLACE`, several are detached after the new one is in place, so
 * there is no moment without a filter. Programs of ancestor cgroups keep applying as well.
 */
export function attachDeviceProgram(dir: string, progFd: number): void {
  const dirFd = openDir(dir);
  try {
    let skipReplace = false;
    for (let attempt = 0; ; attempt++) {
      const old = queryPrograms(dirFd, dir);
      let replaceFd: number | undefined;
      if (!skipReplace && old.length === 1) {
        replaceFd = programFd(old[0] as number);
        if (replaceFd === undefined && attempt < 20) continue; // raced with another update
      }
      try {
        const flags = BPF_F_ALLOW_MULTI | (replaceFd === undefined ? 0 : BPF_F_REPLACE);
        bpf(BPF_PROG_ATTACH, attrAttach(dirFd, progFd, flags, replaceFd ?? 0), 'bpf(BPF_PROG_ATTACH)');
      } catch (err) {
        const errno = errnoOf(err);
        if (replaceFd !== undefined && errno === 'ENOENT' && attempt < 20) continue;
        if (replaceFd !== undefined && errno === 'EINVAL') {
          skipReplace = true; // kernel without BPF_F_REPLACE (< 5.6)
          continue;
        }
        throw bpfError(`attach the device program to ${dir}`, err, dir);
      } finally {
        if (replaceFd !== undefined) closeQuietly(replaceFd);
      }
      if (replaceFd === undefined) detachPrograms(dirFd, dir, old);
      return;
    }
  } finally {
    closeQuietly(dirFd);
  }
}

function detachPrograms(dirFd: number, dir: string, ids: readonly number[]): void {
  for (const id of ids) {
    const fd = programFd(id);
    if (fd === undefined) continue;
    try {
      bpf(BPF_PROG_DETACH, attrAttach(dirFd, fd, 0, 0), 'bpf(BPF_PROG_DETACH)');
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw bpfError(`detach device program ${id} from ${dir}`, err, dir);
    } finally {
      closeQuietly(fd);
    }
  }
}

/** Detach every device program attached directly to `dir` (everything is allowed again unless an ancestor filters). */
export function detachDevicePrograms(dir: string): void {
  const dirFd = openDir(dir);
  try {
    detachPrograms(dirFd, dir, queryPrograms(dirFd, dir));
  } finally {
    closeQuietly(dirFd);
  }
}

/** Build, load and attach the program for `rules` to the cgroup v2 directory `dir`. */
export function applyDeviceRules(dir: string, rules: readonly DeviceRule[]): void {
  const fd = loadDeviceProgram(deviceFilterProgram(rules));
  try {
    attachDeviceProgram(dir, fd);
  } finally {
    closeQuietly(fd);
  }
}
