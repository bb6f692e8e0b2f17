/**
 * A tiny classic-BPF assembler for seccomp programs.
 *
 * Code is built as a graph of {@link Block}s: straight-line loads and masks that end in a return,
 * a conditional jump to two blocks, or a jump to one block. {@link assemble} lays the blocks out
 * in reverse post-order (so every jump goes forward, as classic BPF requires), then resolves the
 * jumps: a conditional jump has 8-bit offsets, so a target more than 255 instructions away is
 * reached through a `ja` trampoline (32-bit offset) placed right after the jump.
 */

/** Opcodes (`BPF_CLASS | BPF_SIZE/OP | BPF_MODE/SRC`). */
export const BPF = Object.freeze({
  LD_W_ABS: 0x20,
  ALU_AND_K: 0x54,
  JMP_JA: 0x05,
  JMP_JEQ_K: 0x15,
  JMP_JGT_K: 0x25,
  JMP_JGE_K: 0x35,
  JMP_JSET_K: 0x45,
  RET_K: 0x06,
} as const);

/** The kernel's limit on the length of a classic BPF program. */
export const BPF_MAXINSNS = 4096;

type Straight = { code: number; k: number };
type End =
  | { kind: 'ret'; k: number }
  | { kind: 'goto'; to: Block }
  | { kind: 'jmp'; code: number; k: number; t: Block; f: Block; next: 't' | 'f' };

export class Block {
  readonly body: Straight[] = [];
  end: End = { kind: 'ret', k: 0 };

  /** A block that returns `k`. */
  static ret(k: number): Block {
    const b = new Block();
    b.end = { kind: 'ret', k: k >>> 0 };
    return b;
  }

  /**
   * A block `[ld [off]] [and mask] jOP k, t, f`. `load` undefined means the accumulator already
   * holds the value. `next` says which target to lay out right after this block when possible.
   */
  static jump(
    load: number | undefined,
    mask: number,
    code: number,
    k: number,
    t: Block,
    f: Block,
    next: 't' | 'f' = 'f',
  ): Block {
    const b = new Block();
    if (load !== undefined) b.body.push({ code: BPF.LD_W_ABS, k: load });
    if (mask >>> 0 !== 0xffffffff) b.body.push({ code: BPF.ALU_AND_K, k: mask >>> 0 });
    b.end = { kind: 'jmp', code, k: k >>> 0, t, f, next };
    return b;
  }

  /** A block with a straight-line prefix that continues in `to`. */
  static seq(body: Straight[], to: Block): Block {
    const b = new Block();
    b.body.push(...body);
    b.end = { kind: 'goto', to };
    return b;
  }
}

/** Blocks in reverse post-order from `entry`, the preferred successor visited last (so placed next). */
function order(entry: Block): Block[] {
  const post: Block[] = [];
  const seen = new Set<Block>([entry]);
  const succ = (b: Block): Block[] => {
    const e = b.end;
    if (e.kind === 'goto') return [e.to];
    if (e.kind === 'jmp') return e.next === 'f' ? [e.t, e.f] : [e.f, e.t];
    return [];
  };
  const stack: Array<{ b: Block; s: Block[]; i: number }> = [{ b: entry, s: succ(entry), i: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const n = top.s[top.i++];
    if (n === undefined) {
      post.push(top.b);
      stack.pop();
    } else if (!seen.has(n)) {
      seen.add(n);
      stack.push({ b: n, s: succ(n), i: 0 });
    }
  }
  return post.reverse();
}

type Item =
  | { op: 'insn'; code: number; k: number }
  | { op: 'ja'; to: object }
  | { op: 'jmp'; code: number; k: number; t: object; f: object }
  | { op: 'label'; id: object };

/** Lay out and encode the program rooted at `entry` as `struct sock_filter[]` (host = little endian). */
export function assemble(entry: Block): Buffer {
  const blocks = order(entry);
  const items: Item[] = [];
  blocks.forEach((b, i) => {
    items.push({ op: 'label', id: b });
    for (const s of b.body) items.push({ op: 'insn', code: s.code, k: s.k });
    const e = b.end;
    if (e.kind === 'ret') items.push({ op: 'insn', code: BPF.RET_K, k: e.k });
    else if (e.kind === 'goto') {
      if (blocks[i + 1] !== e.to) items.push({ op: 'ja', to: e.to });
    } else items.push({ op: 'jmp', code: e.code, k: e.k, t: e.t, f: e.f });
  });
  fixFarJumps(items);
  return encode(items);
}

function positions(items: readonly Item[]): Map<object, number> {
  const pos = new Map<object, number>();
  let pc = 0;
  for (const it of items) {
    if (it.op === 'label') pos.set(it.id, pc);
    else pc++;
  }
  return pos;
}

/**
 * Insert `ja` trampolines until every conditional jump offset fits in 8 bits. Each pass adds one
 * right after every jump whose target is too far; inserting moves other targets further away, so
 * passes repeat until none is needed (offsets only grow, so this ends).
 */
function fixFarJumps(items: Item[]): void {
  for (;;) {
    const pos = positions(items);
    const out: Item[] = [];
    let pc = 0;
    for (const it of items) {
      out.push(it);
      if (it.op === 'label') continue;
      if (it.op === 'jmp') {
        const far = (to: object) => pos.get(to)! - pc - 1 > 255;
        if (far(it.t)) {
          const id = {};
          out.push({ op: 'label', id }, { op: 'ja', to: it.t });
          it.t = id;
        }
        if (far(it.f)) {
          const id = {};
          out.push({ op: 'label', id }, { op: 'ja', to: it.f });
          it.f = id;
        }
      }
      pc++;
    }
    const grown = out.length !== items.length;
    items.splice(0, items.length, ...out);
    if (!grown) return;
  }
}

function encode(items: readonly Item[]): Buffer {
  const pos = positions(items);
  const insns = items.filter((it) => it.op !== 'label');
  const buf = Buffer.alloc(insns.length * 8);
  insns.forEach((it, pc) => {
    const o = pc * 8;
    let code: number;
    let jt = 0;
    let jf = 0;
    let k: number;
    if (it.op === 'insn') {
      code = it.code;
      k = it.k;
    } else if (it.op === 'ja') {
      code = BPF.JMP_JA;
      k = pos.get(it.to)! - pc - 1;
      if (k < 0) throw new Error(`internal: backward jump at ${pc}`);
    } else if (it.op === 'jmp') {
      code = it.code;
      k = it.k;
      jt = pos.get(it.t)! - pc - 1;
      jf = pos.get(it.f)! - pc - 1;
      if (jt < 0 || jf < 0 || jt > 255 || jf > 255) throw new Error(`internal: bad jump offset at ${pc}`);
    } else throw new Error('internal: label');
    buf.writeUInt16LE(code, o);
    buf.writeUInt8(jt, o + 2);
    buf.writeUInt8(jf, o + 3);
    buf.writeUInt32LE(k >>> 0, o + 4);
  });
  return buf;
}
