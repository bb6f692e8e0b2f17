import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';

/** Real-kernel tests write cgroupfs and need root. */
export const isRoot = process.getuid?.() === 0;

/** A child that blocks on stdin until released, so it can be placed in a cgroup before it runs. */
export interface GatedChild {
  child: ChildProcess;
  pid: number;
  /** Let the child run (it was blocked in `read x`). */
  release(): void;
  /** Resolves when the child exits. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything written to stdout / stderr so far. */
  out(): string;
  err(): string;
}

/** Spawn `sh -c 'read x; <script>'`. */
export function spawnGated(script: string): GatedChild {
  const child = spawn('sh', ['-c', `read x; ${script}`], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  if (child.pid === undefined) throw new Error('spawn failed');
  return {
    child,
    pid: child.pid,
    release: () => child.stdin?.write('\n'),
    exited,
    out: () => out,
    err: () => err,
  };
}

/** Poll `pred` until it is true; throws with `what` after `timeoutMs`. */
export async function waitFor(what: string, pred: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The cgroup paths of a process, from /proc/<pid>/cgroup, keyed by controller list ("" for v2). */
export function procCgroups(pid: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n')) {
    const [, ctrls, p] = line.split(':');
    if (ctrls !== undefined && p !== undefined) out.set(ctrls, p);
  }
  return out;
}

/** Read a file, trimmed. */
export function cat(file: string): string {
  return fs.readFileSync(file, 'utf8').trim();
}
