// nsinit with terminals, as a subprocess: `run` relays a container pty to its own terminal (under
// `script`, which gives it one) or to plain pipes; `exec -t` does the same for an exec'd process;
// `--console-socket` hands the master to a receiver like conmon's; and the runc errors for a tty
// that nobody would hold (create, or -d, without a console socket) are one line and leave nothing.
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import {
  buildRootfs,
  COMMAND,
  cgroupDirs,
  nsinit,
  type Result,
  STACK_LINE,
  show,
  skipReason,
  waitFor,
} from './helpers.js';

const skip = skipReason();
const hasScript = fs.existsSync('/usr/bin/script');

/** A console socket receiver like conmon's (see libcontainer's container-terminal test). */
const RECEIVER = `
import json, os, select, socket, sys, time
path, text = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(1)
print("READY", flush=True)
c, _ = s.accept()
msg, fds, _, _ = socket.recv_fds(c, 1024, 4)
master = fds[0]
out = b""
end = time.time() + 10
while time.time() < end:
    r, _, _ = select.select([master], [], [], 0.3)
    if not r:
        if text and b"# " in out:
            os.write(master, text.encode())
            text = ""
        continue
    try:
        d = os.read(master, 4096)
    except OSError:
        break
    if not d:
        break
    out += d
print("OUT " + json.dumps(out.decode(errors="replace")), flush=True)
`;

/** Start a receiver listening at `sock`; resolves with what the terminal showed. */
async function receiver(sock: string, text: string): Promise<{ out: Promise<string> }> {
  const child = spawn('python3', ['-c', RECEIVER, sock, text], { stdio: ['ignore', 'pipe', 'inherit'] });
  let buf = '';
  const out = new Promise<string>((resolve, reject) => {
    child.stdout?.on('data', (c: Buffer) => {
      buf += c.toString();
    });
    child.on('exit', (code) => {
      const m = /^OUT (.*)$/m.exec(buf);
      if (m) resolve(JSON.parse(m[1] as string) as string);
      else reject(new Error(`receiver exited ${code}: ${buf}`));
    });
  });
  out.catch(() => undefined);
  await waitFor('the receiver to listen', () => buf.includes('READY\n') || child.exitCode !== null);
  return { out };
}

function shellQuote(s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`;
}

/**
 * Run `nsinit ARGS` under `script` (a real pty as its stdin and stdout, 22 rows by 77 columns);
 * `typed` lines go in one by one, each once the container prompted and went quiet.
 */
function underScript(args: string[], typed: string[] = []): Promise<Result> {
  const line = [...COMMAND, ...args].map(shellQuote).join(' ');
  const child: ChildProcess = spawn('script', ['-qec', `stty rows 22 cols 77; ${line}`, '/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, NSINIT_DEBUG: '' },
  });
  let stdout = '';
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  let last = Date.now();
  child.stdout?.on('data', (c: Buffer) => {
    stdout += c.toString();
    last = Date.now();
  });
  const pending = [...typed];
  let prompts = 0;
  const typer = setInterval(() => {
    const next = pending[0];
    if (next === undefined || Date.now() - last < 300) return;
    if (stdout.split('# ').length - 1 <= prompts) return;
    prompts += 1;
    pending.shift();
    child.stdin?.write(`${next}\n`);
  }, 50);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`script ${line}: no exit after 20 s; output so far ${JSON.stringify(stdout)}`));
    }, 20_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      clearInterval(typer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Run nsinit with `input` piped into its stdin (no terminal anywhere). */
function piped(args: string[], input: string): Promise<Result> {
  const child = spawn(COMMAND[0] as string, [...COMMAND.slice(1), ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, NSINIT_DEBUG: '' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  child.stdin?.end(input);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`nsinit ${args.join(' ')}: no exit after 20 s; output so far ${JSON.stringify(stdout)}`),
      );
    }, 20_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe.skipIf(skip !== undefined || !hasScript)(
  `nsinit terminals${skip ? ` (${skip})` : hasScript ? '' : ' (needs script from util-linux)'}`,
  () => {
    let tmp = '';
    let root = '';
    let rootfs = '';
    // biome-ignore lint/suspicious/noExplicitAny: a config.json template, changed freely per test
    let template: any;
    let n = 0;
    const ids: string[] = [];

    const id = () => {
      n += 1;
      const v = `tty-${process.pid}-${n}`;
      ids.push(v);
      return v;
    };
    const ns = (args: string[]) => nsinit(tmp, ['--root', root, ...args]);
    /** A bundle whose process runs `args` with terminal: true. */
    function bundle(args: string[], terminal = true): string {
      const dir = fs.mkdtempSync(path.join(tmp, 'bundle-'));
      const s = structuredClone(template);
      s.process.args = args;
      s.process.terminal = terminal;
      fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(s, null, 2));
      return dir;
    }
    const oneLine = (r: Result) => {
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).not.toMatch(STACK_LINE);
    };

    beforeAll(async () => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nsinit-tty-test-'));
      root = path.join(tmp, 'state');
      fs.mkdirSync(root);
      rootfs = buildRootfs();
      const t = fs.mkdtempSync(path.join(tmp, 'template-'));
      const r = await nsinit(tmp, ['spec'], { cwd: t });
      expect(r.code, show(r)).toBe(0);
      template = JSON.parse(fs.readFileSync(path.join(t, 'config.json'), 'utf8'));
      template.root.path = rootfs;
    });

    afterEach(async () => {
      for (const c of ids.splice(0)) {
        if (!fs.existsSync(path.join(root, c)) && cgroupDirs(c).length === 0) continue;
        await ns(['delete', '-f', c]);
      }
      expect(fs.readdirSync(root), 'containers left in the state root').toEqual([]);
    });

    afterAll(() => {
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
      if (rootfs) fs.rmSync(path.dirname(rootfs), { recursive: true, force: true });
    });

    test('run under a terminal: the container has its own pty, our size, and raw output', async () => {
      const b = bundle(['sh', '-c', 'tty; stty size; readlink /proc/self/fd/1; exit 6']);
      const r = await underScript(['--root', root, 'run', '-b', b, id()]);
      expect(r.code, show(r)).toBe(6);
      // Our terminal is raw while relaying: the container's \r\n arrives as is, not as \r\r\n.
      expect(r.stdout).toContain('/dev/pts/0\r\n22 77\r\n/dev/pts/0\r\n');
      expect(r.stdout).not.toContain('\r\r\n');
    });

    test('run an interactive shell under a terminal: what we type runs in the container', async () => {
      const b = bundle(['sh']);
      const r = await underScript(
        ['--root', root, 'run', '-b', b, id()],
        ['tty; echo hi $((6*7))', 'exit 3'],
      );
      expect(r.code, show(r)).toBe(3);
      expect(r.stdout).toMatch(/tty; echo hi \$\(\(6\*7\)\)\r\n\/dev\/pts\/0\r\nhi 42\r\n/);
    });

    test('run with pipes instead of a terminal: input is copied, its end is ^D', async () => {
      const b = bundle(['sh']);
      const r = await piped(['--root', root, 'run', '-b', b, id()], 'tty\necho piped\n');
      expect(r.code, show(r)).toBe(0);
      expect(r.stdout).toContain('/dev/pts/0\r\n');
      expect(r.stdout).toContain('piped\r\n');
    });

    test('create with a terminal and no console socket: the runc error, nothing created', async () => {
      const b = bundle(['true']);
      const c = id();
      const r = await ns(['create', '-b', b, c]);
      expect(r.code, show(r)).toBe(1);
      oneLine(r);
      expect(r.stderr).toContain(
        'cannot allocate a tty if the container will detach without a console socket',
      );
      const d = await ns(['run', '-d', '-b', b, c]);
      expect(d.code, show(d)).toBe(1);
      oneLine(d);
      expect(d.stderr).toContain(
        'cannot allocate a tty if nsinit will detach without setting --console-socket',
      );
      expect(fs.readdirSync(root)).toEqual([]);
      expect(cgroupDirs(c)).toEqual([]);
    });

    test('create --console-socket, then start: the receiver holds the terminal', async () => {
      const sock = path.join(fs.mkdtempSync(path.join(tmp, 'sock-')), 'console.sock');
      const rec = await receiver(sock, 'tty; echo via socket; exit\n');
      const b = bundle(['sh']);
      const c = id();
      const cr = await ns(['create', '--console-socket', sock, '-b', b, c]);
      expect(cr.code, show(cr)).toBe(0);
      const st = await ns(['start', c]);
      expect(st.code, show(st)).toBe(0);
      expect(await rec.out).toMatch(/\/dev\/pts\/0\r\nvia socket\r\n/);
      await waitFor(
        'the container to stop',
        async () => JSON.parse((await ns(['state', c])).stdout).status === 'stopped',
      );
      expect((await ns(['delete', c])).code).toBe(0);

      const missing = path.join(tmp, 'no-such.sock');
      const m = await ns(['create', '--console-socket', missing, '-b', b, id()]);
      expect(m.code, show(m)).toBe(1);
      oneLine(m);
      expect(m.stderr).toContain(`console socket ${missing}: connect: ENOENT (no such file or directory)`);
    });

    test('exec -t: a new pty of the container, relayed under a terminal or through pipes', async () => {
      const b = bundle(['sleep', '1000'], false);
      const c = id();
      const r0 = await ns(['run', '-d', '-b', b, c]);
      expect(r0.code, show(r0)).toBe(0);
      const r = await underScript(['--root', root, 'exec', '-t', c, 'sh', '-c', 'tty; stty size; exit 4']);
      expect(r.code, show(r)).toBe(4);
      expect(r.stdout).toContain('/dev/pts/0\r\n22 77\r\n');
      const p = await piped(['--root', root, 'exec', '-t', c, 'sh'], 'tty\nexit 2\n');
      expect(p.code, show(p)).toBe(2);
      expect(p.stdout).toContain('/dev/pts/');

      // -d without a console socket is refused; with one, the receiver gets the pty.
      const d = await ns(['exec', '-d', '-t', c, 'true']);
      expect(d.code, show(d)).toBe(1);
      oneLine(d);
      expect(d.stderr).toContain(
        'cannot allocate a tty if nsinit will detach without setting --console-socket',
      );
      const sock = path.join(fs.mkdtempSync(path.join(tmp, 'sock-')), 'exec.sock');
      const rec = await receiver(sock, 'tty; exit\n');
      const e = await ns(['exec', '-d', '-t', '--console-socket', sock, c, 'sh']);
      expect(e.code, show(e)).toBe(0);
      expect(await rec.out).toMatch(/\/dev\/pts\/\d+\r\n/);
    });
  },
);
