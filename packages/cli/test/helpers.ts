// Helpers of the CLI tests: run the built nsinit as a subprocess (stdout/stderr go to files, so
// a container that inherits them never keeps a pipe open), bundles on a shared busybox rootfs,
// unique ids, polling, and cgroup checks.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../../..');
/**
 * The command line that runs nsinit: the launcher users get (dist/nsinit, which
 * runs the bundled CLI with its V8 code cache), or NSINIT_TEST_MAIN: another build, run with node.
 */
export const COMMAND: readonly string[] = process.env.NSINIT_TEST_MAIN
  ? [process.execPath, process.env.NSINIT_TEST_MAIN]
  : [path.resolve(here, '../dist/nsinit')];

/** Why these tests cannot run here, or undefined. */
export function skipReason(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'needs root';
  if (!fs.existsSync('/bin/busybox')) return 'needs busybox-static';
  const bin = COMMAND[COMMAND.length - 1] as string;
  if (!fs.existsSync(bin)) return `needs the built CLI (${bin}): cd packages/cli && pnpm build`;
  return undefined;
}

export interface Result {
  /** Exit status, or undefined when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface NsinitOptions {
  cwd?: string;
  /** Fds for child fd 3, 4, …. */
  extraFds?: number[];
  /** Fail after this many ms (the process is killed). */
  timeout?: number;
}

let seq = 0;

/** A running nsinit process. */
export interface Spawned {
  pid: number;
  kill(sig: NodeJS.Signals): void;
  /** Resolves at exit, with everything it (and its container) wrote. */
  done: Promise<Result>;
}

/** Start nsinit with ARGS, stdout and stderr sent to files. */
export function spawnNsinit(tmp: string, args: string[], opts: NsinitOptions = {}): Spawned {
  const n = ++seq;
  const outFile = path.join(tmp, `nsinit-${n}.out`);
  const errFile = path.join(tmp, `nsinit-${n}.err`);
  const out = fs.openSync(outFile, 'w+');
  const err = fs.openSync(errFile, 'w+');
  const child = spawn(COMMAND[0] as string, [...COMMAND.slice(1), ...args], {
    cwd: opts.cwd ?? tmp,
    stdio: ['ignore', out, err, ...(opts.extraFds ?? [])],
    env: { ...process.env, NSINIT_DEBUG: '' },
  });
  fs.closeSync(out);
  fs.closeSync(err);
  const timeout = opts.timeout ?? 20_000;
  const done = new Promise<Result>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`nsinit ${args.join(' ')}: no exit after ${timeout} ms`));
    }, timeout);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const r: Result = {
        code,
        signal,
        stdout: fs.readFileSync(outFile, 'utf8'),
        stderr: fs.readFileSync(errFile, 'utf8'),
      };
      fs.rmSync(outFile, { force: true });
      fs.rmSync(errFile, { force: true });
      resolve(r);
    });
  });
  if (child.pid === undefined) throw new Error('nsinit: spawn failed');
  return { pid: child.pid, kill: (s) => child.kill(s), done };
}

/** Run nsinit to completion. */
export function nsinit(tmp: string, args: string[], opts: NsinitOptions = {}): Promise<Result> {
  return spawnNsinit(tmp, args, opts).done;
}

/** A JavaScript stack frame line ("    at f (file:1:2)"). */
export const STACK_LINE = /^ {4}at /m;

/** Describe a result for assertion messages. */
export function show(r: Result): string {
  return `exit ${r.code ?? r.signal}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;
}

/** Poll `fn` until it returns a truthy value; throw with `what` after `ms`. */
export async function waitFor<T>(what: string, fn: () => T | Promise<T>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Build the busybox rootfs into a new temp dir. */
export function buildRootfs(): string {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'nsinit-cli-rootfs-'));
  const dir = path.join(parent, 'rootfs');
  execFileSync('sh', [path.join(REPO, 'scripts/build-rootfs.sh'), dir], { stdio: 'pipe' });
  return dir;
}

/** Host cgroup directories of a container with the default cgroupsPath (/nsinit/ID) that exist. */
export function cgroupDirs(id: string): string[] {
  const found: string[] = [];
  for (const h of fs.readdirSync('/sys/fs/cgroup')) {
    const d = path.join('/sys/fs/cgroup', h, 'nsinit', id);
    if (fs.existsSync(d)) found.push(d);
  }
  return found;
}

/** Is a process alive (and not a zombie)? */
export function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const st = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return st !== 'Z' && st !== 'X';
  } catch {
    return false;
  }
}

/** One file of a ustar archive (regular file or directory), for tiny layers. */
export function ustar(
  entries: { name: string; data?: string | Buffer; dir?: boolean; mode?: number }[],
): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const h = Buffer.alloc(512);
    const data = Buffer.from(e.data ?? '');
    h.write(e.name, 0, 100);
    h.write(`${(e.mode ?? (e.dir ? 0o755 : 0o644)).toString(8).padStart(7, '0')}\0`, 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(`${(e.dir ? 0 : data.length).toString(8).padStart(11, '0')}\0`, 124);
    h.write(
      `${Math.floor(Date.now() / 1000)
        .toString(8)
        .padStart(11, '0')}\0`,
      136,
    );
    h.write('        ', 148);
    h.write(e.dir ? '5' : '0', 156);
    h.write('ustar\x0000', 257);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    blocks.push(h);
    if (!e.dir && data.length > 0) {
      blocks.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** A Debian docker-registry serving on 127.0.0.1 (with htpasswd basic auth when given). */
export interface Registry {
  host: string;
  stop(): Promise<void>;
}

export async function startRegistry(tmp: string, htpasswd?: string): Promise<Registry> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(tmp, 'registry-'));
  let auth = '';
  if (htpasswd) {
    fs.writeFileSync(path.join(dir, 'htpasswd'), htpasswd);
    auth = `auth:\n  htpasswd:\n    realm: tsc\n    path: ${dir}/htpasswd\n`;
  }
  fs.writeFileSync(
    path.join(dir, 'config.yml'),
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: s\n${auth}`,
  );
  const child: ChildProcess = spawn('/usr/bin/docker-registry', ['serve', path.join(dir, 'config.yml')], {
    stdio: 'ignore',
  });
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((r) => {
      http
        .get(`http://127.0.0.1:${port}/v2/`, (res) => {
          res.resume();
          r(true);
        })
        .on('error', () => r(false));
    });
    if (up) break;
    if (i > 200) throw new Error('docker-registry did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    host: `127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((r) => {
        if (child.exitCode !== null || child.signalCode !== null) return r();
        child.once('exit', () => r());
        child.kill('SIGTERM');
      }),
  };
}
