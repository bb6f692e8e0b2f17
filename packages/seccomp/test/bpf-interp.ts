/**
 * A small classic-BPF interpreter for seccomp programs (an array of `struct sock_filter`), used to
 * compare the programs of this package with libseccomp's on the same `struct seccomp_data`.
 *
 * It follows the kernel's rules for seccomp filters: 32-bit accumulator and index register,
 * 16 scratch words, absolute word loads only from the 64-byte `seccomp_data` at 4-byte aligned
 * offsets, forward jumps only, and the program must end in a return.
 */

/** `struct seccomp_data` on a little-endian machine. */
export interface SeccompData {
  nr: number;
  arch: number;
  instructionPointer?: bigint;
  /** Six 64-bit arguments; missing ones are 0. */
  args: readonly bigint[];
}

export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export const BPF_MAXINSNS = 4096;
const DATA_LEN = 64;

export function decode(prog: Buffer): Insn[] {
  if (prog.length % 8 !== 0) throw new Error(`program length ${prog.length} is not a multiple of 8`);
  const out: Insn[] = [];
  for (let i = 0; i < prog.length; i += 8) {
    out.push({
      code: prog.readUInt16LE(i),
      jt: prog.readUInt8(i + 2),
      jf: prog.readUInt8(i + 3),
      k: prog.readUInt32LE(i + 4),
    });
  }
  return out;
}

/** The checks of the kernel's `bpf_check_classic` + `seccomp_check_filter`, for the opcodes we know. */
export function validate(insns: readonly Insn[]): void {
  if (insns.length === 0 || insns.length > BPF_MAXINSNS) throw new Error(`bad length ${insns.length}`);
  insns.forEach((ins, pc) => {
    const cls = ins.code & 0x07;
    if (ins.code === 0x20) {
      if (ins.k % 4 !== 0 || ins.k >= DATA_LEN) throw new Error(`pc ${pc}: bad load offset ${ins.k}`);
    } else if (cls === 0x05) {
      const op = ins.code & 0xf0;
      if (op === 0x00) {
        if (pc + 1 + ins.k >= insns.length) throw new Error(`pc ${pc}: ja out of range`);
      } else if (pc + 1 + Math.max(ins.jt, ins.jf) >= insns.length) {
        throw new Error(`pc ${pc}: jump out of range`);
      }
    } else if (!KNOWN.has(ins.code)) {
      throw new Error(`pc ${pc}: opcode 0x${ins.code.toString(16)} not allowed`);
    }
  });
  const last = insns[insns.length - 1]!;
  if ((last.code & 0x07) !== 0x06) throw new Error('program does not end in a return');
}

const KNOWN = new Set([
  0x00, 0x01, 0x02, 0x03, 0x06, 0x07, 0x16, 0x60, 0x61, 0x80, 0x81, 0x87,
  // ALU K and X
  0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3c, 0x44, 0x4c, 0x54, 0x5c, 0x64, 0x6c, 0x74, 0x7c, 0x84, 0x94,
  0x9c, 0xa4, 0xac,
]);

function dataWord(d: SeccompData, off: number): number {
  if (off === 0) return d.nr >>> 0;
  if (off === 4) return d.arch >>> 0;
  const word = (v: bigint, hi: boolean) => Number((hi ? v >> 32n : v) & 0xffffffffn);
  if (off === 8 || off === 12) return word(d.instructionPointer ?? 0n, off === 12);
  const i = (off - 16) >> 3;
  return word(d.args[i] ?? 0n, (off & 4) !== 0);
}

/** Run a decoded program on `d` and return the 32-bit action it returns. */
export function run(insns: readonly Insn[], d: SeccompData): number {
  let a = 0;
  let x = 0;
  const mem = new Uint32Array(16);
  let pc = 0;
  for (let steps = 0; steps <= insns.length; steps++) {
    const ins = insns[pc];
    if (ins === undefined) throw new Error(`fell off the program at ${pc}`);
    const { code, k } = ins;
    pc++;
    switch (code) {
      case 0x20:
        a = dataWord(d, k);
        continue;
      case 0x80:
        a = DATA_LEN;
        continue;
      case 0x81:
        x = DATA_LEN;
        continue;
      case 0x00:
        a = k >>> 0;
        continue;
      case 0x01:
        x = k >>> 0;
        continue;
      case 0x60:
        a = mem[k] ?? 0;
        continue;
      case 0x61:
        x = mem[k] ?? 0;
        continue;
      case 0x02:
        mem[k] = a;
        continue;
      case 0x03:
        mem[k] = x;
        continue;
      case 0x07:
        x = a;
        continue;
      case 0x87:
        a = x;
        continue;
      case 0x06:
        return k >>> 0;
      case 0x16:
        return a >>> 0;
    }
    const cls = code & 0x07;
    const src = code & 0x08 ? x : k >>> 0;
    if (cls === 0x04) {
      switch (code & 0xf0) {
        case 0x00:
          a = (a + src) >>> 0;
          break;
        case 0x10:
          a = (a - src) >>> 0;
          break;
        case 0x20:
          a = Math.imul(a, src) >>> 0;
          break;
        case 0x30:
          if (src === 0) return 0; // the kernel kills on division by zero
          a = Math.floor(a / src) >>> 0;
          break;
        case 0x40:
          a = (a | src) >>> 0;
          break;
        case 0x50:
          a = (a & src) >>> 0;
          break;
        case 0x60:
          a = src >= 32 ? 0 : (a << src) >>> 0;
          break;
        case 0x70:
          a = src >= 32 ? 0 : a >>> src;
          break;
        case 0x80:
          a = -a >>> 0;
          break;
        case 0x90:
          if (src === 0) return 0;
          a = (a % src) >>> 0;
          break;
        case 0xa0:
          a = (a ^ src) >>> 0;
          break;
        default:
          throw new Error(`bad alu op 0x${code.toString(16)}`);
      }
      continue;
    }
    if (cls === 0x05) {
      let taken: boolean;
      switch (code & 0xf0) {
        case 0x00:
          pc += k >>> 0;
          continue;
        case 0x10:
          taken = a === src;
          break;
        case 0x20:
          taken = a > src;
          break;
        case 0x30:
          taken = a >= src;
          break;
        case 0x40:
          taken = (a & src) !== 0;
          break;
        default:
          throw new Error(`bad jump op 0x${code.toString(16)}`);
      }
      pc += taken ? ins.jt : ins.jf;
      continue;
    }
    throw new Error(`opcode 0x${code.toString(16)} at ${pc - 1} not supported`);
  }
  throw new Error('program did not return');
}

/** Human-readable listing, for failure messages. */
export function disasm(insns: readonly Insn[]): string {
  return insns
    .map((i, pc) => {
      const hex = `0x${i.k.toString(16).padStart(8, '0')}`;
      const t = (off: number) => pc + 1 + off;
      switch (i.code) {
        case 0x20:
          return `${pc}: ld [${i.k}]`;
        case 0x54:
          return `${pc}: and ${hex}`;
        case 0x06:
          return `${pc}: ret ${hex}`;
        case 0x05:
          return `${pc}: ja ${t(i.k)}`;
        case 0x15:
          return `${pc}: jeq ${hex} ${t(i.jt)} ${t(i.jf)}`;
        case 0x25:
          return `${pc}: jgt ${hex} ${t(i.jt)} ${t(i.jf)}`;
        case 0x35:
          return `${pc}: jge ${hex} ${t(i.jt)} ${t(i.jf)}`;
        case 0x45:
          return `${pc}: jset ${hex} ${t(i.jt)} ${t(i.jf)}`;
        default:
          return `${pc}: code=0x${i.code.toString(16)} jt=${i.jt} jf=${i.jf} k=${hex}`;
      }
    })
    .join('\n');
}
