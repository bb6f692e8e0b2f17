/**
 * Parser and evaluator for libseccomp's "pseudo filter code" (seccomp_export_pfc): the rule tree
 * libseccomp built, printed as nested ifs. Evaluating it gives the answer libseccomp *intends*,
 * so a difference between it and libseccomp's BPF program is a bug in libseccomp's BPF
 * generation, not a difference in semantics.
 *
 * Only what the per-syscall filters use is supported: `$arch`, `$syscall`, `$aN.hi32` and
 * `$aN.lo32` compared with ==, >, >= (optionally masked with `& 0x...`), and `action X;`.
 */
import type { Data } from './helpers.js';

type Stmt =
  | { kind: 'action'; value: number }
  | { kind: 'if'; cond: (d: Data) => boolean; yes: Stmt[]; no: Stmt[] };

const ACTIONS: Record<string, number> = {
  KILL_PROCESS: 0x80000000,
  KILL: 0,
  TRAP: 0x30000,
  LOG: 0x7ffc0000,
  ALLOW: 0x7fff0000,
};

function parseAction(s: string): number {
  const m = /^action (\w+)(?:\((\d+)\))?;$/.exec(s);
  if (!m) throw new Error(`pfc: bad action ${s}`);
  const [, name, data] = m;
  if (name === 'ERRNO') return (0x50000 | Number(data)) >>> 0;
  if (name === 'TRACE') return (0x7ff00000 | Number(data)) >>> 0;
  if (name?.startsWith('0x')) return Number(name) >>> 0;
  const v = ACTIONS[name ?? ''];
  if (v === undefined) throw new Error(`pfc: bad action ${s}`);
  return v;
}

function word(d: Data, v: string): number {
  if (v === '$arch') return d.arch >>> 0;
  if (v === '$syscall') return d.nr >>> 0;
  const m = /^\$a(\d)\.(hi32|lo32)$/.exec(v);
  if (!m) throw new Error(`pfc: bad operand ${v}`);
  const a = d.args[Number(m[1])] ?? 0n;
  return Number((m[2] === 'hi32' ? a >> 32n : a) & 0xffffffffn);
}

function parseCond(s: string): (d: Data) => boolean {
  const m = /^if \((\$\w+(?:\.\w+)?)(?: & (0x[0-9a-f]+))? (==|>=|>) (\d+)\)$/.exec(s);
  if (!m) throw new Error(`pfc: bad condition ${s}`);
  const [, v = '', mask, op, k] = m;
  const mk = mask === undefined ? 0xffffffff : Number(mask);
  const kv = Number(k) >>> 0;
  return (d) => {
    const x = (word(d, v) & mk) >>> 0;
    return op === '==' ? x === kv : op === '>=' ? x >= kv : x > kv;
  };
}

export function parsePfc(text: string): Stmt[] {
  const lines = text
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.trim().startsWith('#'))
    .map((l) => ({ indent: (l.length - l.trimStart().length) / 2, text: l.trim().replace(/\s*#.*$/, '') }));
  let i = 0;
  const block = (indent: number): Stmt[] => {
    const out: Stmt[] = [];
    while (i < lines.length && lines[i]!.indent === indent) {
      const l = lines[i++]!;
      if (l.text.startsWith('action ')) {
        out.push({ kind: 'action', value: parseAction(l.text) });
        continue;
      }
      if (!l.text.startsWith('if ')) throw new Error(`pfc: unexpected ${l.text}`);
      const stmt: Stmt = { kind: 'if', cond: parseCond(l.text), yes: block(indent + 1), no: [] };
      if (i < lines.length && lines[i]!.indent === indent && lines[i]!.text === 'else') {
        i++;
        stmt.no = block(indent + 1);
      }
      out.push(stmt);
    }
    return out;
  };
  const prog = block(0);
  if (i !== lines.length) throw new Error(`pfc: stray line ${lines[i]?.text}`);
  return prog;
}

/** Run the statements; `undefined` if they fall off the end without an action. */
export function evalPfc(stmts: readonly Stmt[], d: Data): number | undefined {
  for (const s of stmts) {
    if (s.kind === 'action') return s.value;
    const r = evalPfc(s.cond(d) ? s.yes : s.no, d);
    if (r !== undefined) return r;
  }
  return undefined;
}
