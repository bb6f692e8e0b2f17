/**
 * Dockerfile instructions applied to an image config, as `docker commit --change` and
 * `docker import --change` take them: `CMD ["sh"]`, `ENTRYPOINT /app`, `ENV A=b C="d e"`,
 * `EXPOSE 80/tcp 53/udp`, `LABEL k=v`, `VOLUME /data`, `WORKDIR /srv`, `USER app:app`,
 * `STOPSIGNAL SIGINT`, `ONBUILD …`.
 *
 * Words are split and unquoted as the Dockerfile parser does (`"…"` with backslash escapes,
 * `'…'` literal, `\` outside quotes), and `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}`
 * are expanded from the image's environment (with the earlier changes applied) in ENV, LABEL,
 * EXPOSE, VOLUME, WORKDIR, USER and STOPSIGNAL, never in CMD and ENTRYPOINT.
 */
import { posix } from 'node:path';
import { ImageError } from './errors.js';
import type { ContainerConfig } from './schema.js';

/** The instructions {@link applyChanges} accepts. */
export const CHANGE_INSTRUCTIONS = [
  'CMD',
  'ENTRYPOINT',
  'ENV',
  'EXPOSE',
  'LABEL',
  'ONBUILD',
  'STOPSIGNAL',
  'USER',
  'VOLUME',
  'WORKDIR',
] as const;
export type ChangeInstruction = (typeof CHANGE_INSTRUCTIONS)[number];

const SIGNALS = new Set([
  'HUP',
  'INT',
  'QUIT',
  'ILL',
  'TRAP',
  'ABRT',
  'IOT',
  'BUS',
  'FPE',
  'KILL',
  'USR1',
  'SEGV',
  'USR2',
  'PIPE',
  'ALRM',
  'TERM',
  'STKFLT',
  'CHLD',
  'CONT',
  'STOP',
  'TSTP',
  'TTIN',
  'TTOU',
  'URG',
  'XCPU',
  'XFSZ',
  'VTALRM',
  'PROF',
  'WINCH',
  'IO',
  'POLL',
  'PWR',
  'SYS',
]);

class ChangeError extends ImageError {
  constructor(change: string, why: string) {
    super('InvalidDocument', `invalid change "${change}": ${why}`);
  }
}

/** Splits a line into words, removing quotes and (unless `env` is undefined) expanding variables. */
export function splitWords(
  text: string,
  env: Map<string, string> | undefined,
  fail: (why: string) => never,
): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let i = 0;
  const expand = (): string => {
    // at text[i] === '$'
    const next = text[i + 1];
    if (next === '{') {
      const end = text.indexOf('}', i + 2);
      if (end < 0) fail(`missing "}" after "\${"`);
      const inner = text.slice(i + 2, end);
      i = end + 1;
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?::([-+])(.*))?$/s.exec(inner);
      if (!m) fail(`bad substitution "\${${inner}}"`);
      const value = env?.get(m[1] as string);
      if (m[2] === '-') return value !== undefined && value !== '' ? value : (m[3] ?? '');
      if (m[2] === '+') return value !== undefined && value !== '' ? (m[3] ?? '') : '';
      return value ?? '';
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i + 1));
    if (!m) {
      i++;
      return '$';
    }
    i += 1 + m[0].length;
    return env?.get(m[0]) ?? '';
  };
  while (i < text.length) {
    const c = text[i] as string;
    if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
      i++;
      continue;
    }
    inWord = true;
    if (c === '\\') {
      if (i + 1 < text.length) cur += text[i + 1];
      i += 2;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) fail('unmatched single quote');
      cur += text.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      i++;
      for (;;) {
        if (i >= text.length) fail('unmatched double quote');
        const d = text[i] as string;
        if (d === '"') {
          i++;
          break;
        }
        if (d === '\\' && i + 1 < text.length) {
          const e = text[i + 1] as string;
          cur += e === '"' || e === '\\' || e === '$' ? e : `\\${e}`;
          i += 2;
        } else if (d === '$' && env) cur += expand();
        else {
          cur += d;
          i++;
        }
      }
    } else if (c === '$' && env) cur += expand();
    else {
      cur += c;
      i++;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** The exec form (`["a", "b"]`) or, failing that, the shell form `["/bin/sh", "-c", text]`. */
function command(text: string, fail: (why: string) => never): string[] {
  const t = text.trim();
  if (t.startsWith('[')) {
    try {
      const v: unknown = JSON.parse(t);
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v;
    } catch {
      // not JSON: the shell form, as Docker does
    }
  }
  if (t === '') fail('expected a command (["exec", "form"] or a shell command)');
  return ['/bin/sh', '-c', t];
}

/** `k=v` pairs, or the legacy `k v…` (one pair, the value is the rest of the line). */
function pairs(rest: string, env: Map<string, string>, fail: (why: string) => never): [string, string][] {
  const words = splitWords(rest, env, fail);
  if (words.length === 0) fail('expected KEY=VALUE');
  const first = words[0] as string;
  if (!first.includes('=')) {
    if (words.length < 2) fail(`"${first}" has no value (expected KEY=VALUE)`);
    const m = /^\s*\S+\s+(.*)$/s.exec(rest);
    const value = splitWords(m?.[1] ?? '', env, fail).join(' ');
    return [[first, value]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) fail(`"${w}" is not KEY=VALUE`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

function ports(words: string[], fail: (why: string) => never): string[] {
  if (words.length === 0) fail('expected a port, e.g. 80/tcp');
  const out: string[] = [];
  for (const w of words) {
    const m = /^(\d+)(?:-(\d+))?(?:\/([a-zA-Z]+))?$/.exec(w);
    if (!m) fail(`"${w}" is not PORT[-PORT][/PROTOCOL]`);
    const proto = (m[3] ?? 'tcp').toLowerCase();
    if (proto !== 'tcp' && proto !== 'udp' && proto !== 'sctp')
      fail(`"${w}": protocol must be tcp, udp or sctp`);
    const lo = Number(m[1]);
    const hi = m[2] !== undefined ? Number(m[2]) : lo;
    if (lo < 1 || hi > 65535 || hi < lo) fail(`"${w}": ports must be within 1-65535`);
    for (let p = lo; p <= hi; p++) out.push(`${p}/${proto}`);
  }
  return out;
}

function envMap(env: readonly string[] | null | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of env ?? []) {
    const eq = e.indexOf('=');
    if (eq < 0) m.set(e, '');
    else m.set(e.slice(0, eq), e.slice(eq + 1));
  }
  return m;
}

/**
 * Applies Dockerfile instructions to an image's container config and returns the new config
 * (the input is not changed). As in a Dockerfile, `ENTRYPOINT` without a `CMD` among the same
 * changes clears the inherited `Cmd`.
 * @throws ImageError `InvalidDocument`: `invalid change "EXPOSE 99999": "99999": ports must be within 1-65535`.
 */
export function applyChanges(base: ContainerConfig | undefined, changes: readonly string[]): ContainerConfig {
  const c: ContainerConfig = structuredClone(base ?? {});
  const setsCmd = changes.some((ch) => /^\s*cmd(\s|$)/i.test(ch));
  for (const change of changes) {
    const fail = (why: string): never => {
      throw new ChangeError(change, why);
    };
    const m = /^\s*(\S+)(?:\s+(.*))?$/s.exec(change);
    if (!m) return fail('it is empty');
    const instruction = (m[1] as string).toUpperCase();
    const rest = (m[2] ?? '').trim();
    const env = envMap(c.Env);
    const words = () => splitWords(rest, env, fail);
    const one = (what: string): string => {
      const w = words();
      if (w.length !== 1 || w[0] === '') fail(`${instruction} takes one ${what}`);
      return w[0] as string;
    };
    switch (instruction) {
      case 'CMD':
        c.Cmd = command(rest, fail);
        break;
      case 'ENTRYPOINT':
        c.Entrypoint = command(rest, fail);
        if (!setsCmd) c.Cmd = null;
        break;
      case 'ENV': {
        for (const [k, v] of pairs(rest, env, fail)) {
          env.set(k, v);
          const list = (c.Env ?? []).filter((e) => e !== k && !e.startsWith(`${k}=`));
          list.push(`${k}=${v}`);
          c.Env = list;
        }
        break;
      }
      case 'LABEL':
        c.Labels = { ...(c.Labels ?? {}) };
        for (const [k, v] of pairs(rest, env, fail)) c.Labels[k] = v;
        break;
      case 'EXPOSE':
        c.ExposedPorts = { ...(c.ExposedPorts ?? {}) };
        for (const p of ports(words(), fail)) c.ExposedPorts[p] = {};
        break;
      case 'VOLUME': {
        let list: string[] | undefined;
        if (rest.startsWith('[')) {
          try {
            const v: unknown = JSON.parse(rest);
            if (Array.isArray(v) && v.every((x) => typeof x === 'string')) list = v;
          } catch {
            // words
          }
        }
        list ??= words();
        if (list.length === 0) fail('expected a path');
        c.Volumes = { ...(c.Volumes ?? {}) };
        for (const v of list) {
          if (v.trim() === '') fail('a volume path cannot be empty');
          c.Volumes[v] = {};
        }
        break;
      }
      case 'WORKDIR': {
        const dir = one('path');
        c.WorkingDir = posix.resolve(c.WorkingDir || '/', dir);
        break;
      }
      case 'USER': {
        const u = one('user[:group]');
        if (/^:|:$/.test(u) || u.split(':').length > 2) fail(`"${u}" is not USER[:GROUP]`);
        c.User = u;
        break;
      }
      case 'STOPSIGNAL': {
        const s = one('signal');
        const name = s.toUpperCase().replace(/^SIG/, '');
        if (/^\d+$/.test(s)) {
          if (Number(s) < 1 || Number(s) > 64) fail(`"${s}" is not a signal number`);
        } else if (!SIGNALS.has(name) && !/^RTMIN(\+\d+)?$|^RTMAX(-\d+)?$/.test(name))
          fail(`"${s}" is not a signal name`);
        c.StopSignal = s;
        break;
      }
      case 'ONBUILD': {
        const inner = /^\s*(\S+)/.exec(rest)?.[1]?.toUpperCase();
        if (!inner) fail('expected an instruction');
        if (inner === 'ONBUILD' || inner === 'FROM' || inner === 'MAINTAINER')
          fail(`${inner} is not allowed in ONBUILD`);
        c.OnBuild = [...(c.OnBuild ?? []), rest];
        break;
      }
      default:
        fail(`${instruction} is not an instruction that can be applied (${CHANGE_INSTRUCTIONS.join(', ')})`);
    }
  }
  return c;
}
