// The cgroup device eBPF program, instruction by instruction (no kernel needed).
import { describe, expect, it } from 'vitest';
import { deviceFilterProgram, disassemble, encodeProgram } from '../src/ebpf.js';
import { type LinuxDeviceCgroup, validateResources } from '../src/resources.js';

const prog = (devices: LinuxDeviceCgroup[]): string[] =>
  disassemble(deviceFilterProgram(validateResources({ devices }).devices));

const PROLOGUE = [
  'r2 = *(u32 *)(r1 + 0)',
  'w2 &= 0xffff',
  'r3 = *(u32 *)(r1 + 0)',
  'w3 >>= 16',
  'r4 = *(u32 *)(r1 + 4)',
  'r5 = *(u32 *)(r1 + 8)',
];
const DENY = ['r0 = 0', 'exit'];

describe('deviceFilterProgram', () => {
  it('no rules: deny everything', () => {
    expect(prog([])).toEqual([...PROLOGUE, ...DENY]);
  });

  it('deny all + allow c 1:3 rwm: the rule, then the default deny', () => {
    expect(prog([{ allow: false }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rwm' }])).toEqual([
      ...PROLOGUE,
      'if r2 != 2 goto +4', // not a char device: next rule
      'if r4 != 1 goto +3',
      'if r5 != 3 goto +2',
      'r0 = 1',
      'exit',
      // the leading "deny all" matches everything: it ends the program (no separate default)
      'r0 = 0',
      'exit',
    ]);
  });

  it('emits rules in reverse order so the last matching rule wins', () => {
    const p = prog([
      { allow: true, type: 'c', major: 1, minor: 5, access: 'rwm' },
      { allow: false, type: 'c', major: 1, minor: 5, access: 'r' },
    ]);
    expect(p).toEqual([
      ...PROLOGUE,
      // deny c 1:5 r (the later rule) comes first
      'if r2 != 2 goto +7',
      'w1 = w3',
      'w1 &= 0x2', // BPF_DEVCG_ACC_READ
      'if r1 != r3 goto +4', // requested access is not within "r": next rule
      'if r4 != 1 goto +3',
      'if r5 != 5 goto +2',
      'r0 = 0',
      'exit',
      // allow c 1:5 rwm
      'if r2 != 2 goto +4',
      'if r4 != 1 goto +3',
      'if r5 != 5 goto +2',
      'r0 = 1',
      'exit',
      ...DENY,
    ]);
  });

  it("type 'a' and wildcard numbers skip those checks; access bits combine", () => {
    expect(prog([{ allow: true, type: 'a', major: 136, minor: -1, access: 'rw' }])).toEqual([
      ...PROLOGUE,
      'w1 = w3',
      'w1 &= 0x6', // READ | WRITE
      'if r1 != r3 goto +3',
      'if r4 != 136 goto +2',
      'r0 = 1',
      'exit',
      ...DENY,
    ]);
    expect(prog([{ allow: true, type: 'b', minor: 0, access: 'm' }])).toEqual([
      ...PROLOGUE,
      'if r2 != 1 goto +6', // BPF_DEVCG_DEV_BLOCK
      'w1 = w3',
      'w1 &= 0x1', // BPF_DEVCG_ACC_MKNOD
      'if r1 != r3 goto +3',
      'if r5 != 0 goto +2',
      'r0 = 1',
      'exit',
      ...DENY,
    ]);
  });

  it('an allow-all rule short-circuits: earlier rules and the default deny are dropped', () => {
    expect(
      prog([
        { allow: false, type: 'c', major: 1, minor: 5 },
        { allow: true }, // a *:* rwm
        { allow: false, type: 'c', major: 1, minor: 9, access: 'w' },
      ]),
    ).toEqual([
      ...PROLOGUE,
      'if r2 != 2 goto +7',
      'w1 = w3',
      'w1 &= 0x4',
      'if r1 != r3 goto +4',
      'if r4 != 1 goto +3',
      'if r5 != 9 goto +2',
      'r0 = 0',
      'exit',
      'r0 = 1', // allow all: no conditions
      'exit',
    ]);
    expect(prog([{ allow: true }])).toEqual([...PROLOGUE, 'r0 = 1', 'exit']);
  });

  it('every jump lands on the first instruction of the next rule or the final deny', () => {
    const insns = deviceFilterProgram(
      validateResources({
        devices: [
          { allow: false },
          { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' },
          { allow: true, type: 'b', major: 8, access: 'r' },
          { allow: false, type: 'a', minor: 7, access: 'm' },
        ],
      }).devices,
    );
    // Each rule block ends with "exit"; a jump from inside a block goes right after that exit.
    for (let i = 0; i < insns.length; i++) {
      const x = insns[i];
      if (x === undefined || (x.code !== 0x55 && x.code !== 0x5d)) continue;
      const target = i + 1 + x.off;
      const endOfBlock = insns.findIndex((y, j) => j > i && y.code === 0x95);
      expect(target).toBe(endOfBlock + 1);
    }
  });

  it('encodes struct bpf_insn little-endian: code, dst | src << 4, off, imm', () => {
    const buf = encodeProgram([
      { code: 0x61, dst: 4, src: 1, off: 4, imm: 0 },
      { code: 0x55, dst: 2, src: 0, off: 4, imm: 2 },
      { code: 0xb7, dst: 0, src: 0, off: 0, imm: -1 },
    ]);
    expect(buf.toString('hex')).toBe('6114040000000000' + '5502040002000000' + 'b7000000ffffffff');
  });
});
