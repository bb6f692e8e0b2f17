import { ProgramError, spawnExecutor } from '@tsc/executor';
import { ContainerError } from './errors.js';
import { planJoin } from './plan/join.js';
import type { Hook, Hooks } from './spec/index.js';

/** The OCI hook points. */
export type HookName = keyof Hooks &
  ('prestart' | 'createRuntime' | 'createContainer' | 'startContainer' | 'poststart' | 'poststop');

/** The state JSON hooks read on stdin. */
export interface HookState {
  ociVersion: string;
  id: string;
  status: string;
  pid?: number;
  bundle: string;
  annotations?: Record<string, string>;
}

function tail(s: string): string {
  const t = s.trim();
  return t ? `: ${t.length > 400 ? `…${t.slice(-400)}` : t}` : '';
}

function failure(name: HookName, h: Hook, detail: string, cause?: unknown): ContainerError {
  return new ContainerError('HookFailed', `${name} hook ${h.path} ${detail}`, {
    step: `${name} hook`,
    cause,
  });
}

/** Run hooks on the host, one after another; the first failure throws. */
export async function runHostHooks(
  name: HookName,
  hooks: readonly Hook[] | undefined,
  state: HookState,
): Promise<void> {
  if (!hooks?.length) return;
  // Loaded only when there are hooks: execa costs more to import than a container costs to start.
  const { execa } = await import('execa');
  for (const h of hooks) {
    const args = h.args ?? [h.path];
    const r = await execa(h.path, args.slice(1), {
      argv0: args[0] ?? h.path,
      input: JSON.stringify(state),
      env: Object.fromEntries(
        (h.env ?? []).map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]),
      ),
      extendEnv: false,
      reject: false,
      all: true,
      ...(h.timeout ? { timeout: h.timeout * 1000 } : {}),
    });
    if (r.timedOut) throw failure(name, h, `timed out after ${h.timeout}s`);
    if (r.failed) {
      const why = r.exitCode !== undefined ? `exit status ${r.exitCode}` : (r.signal ?? r.shortMessage);
      throw failure(name, h, `failed: ${why}${tail(String(r.all ?? ''))}`, r);
    }
  }
}

/**
 * Run hooks inside the container's namespaces (createContainer, startContainer):
 * an executor joins them and runs the hook as its child.
 */
export async function runContainerHooks(
  name: HookName,
  hooks: readonly Hook[] | undefined,
  state: HookState,
  target: { pid: number; namespaces: readonly string[]; addToCgroup: (pid: number) => void },
): Promise<void> {
  for (const h of hooks ?? []) {
    const e = spawnExecutor({ stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    e.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    e.stderr?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const program = planJoin(target.pid, target.namespaces, e.syncFd, {
      path: h.path,
      args: h.args ?? [h.path],
      env: h.env ?? [],
    });
    let timedOut = false;
    const timer = h.timeout
      ? setTimeout(() => {
          timedOut = true;
          e.kill();
        }, h.timeout * 1000)
      : undefined;
    try {
      target.addToCgroup(e.pid);
      e.send(program);
      e.stdin?.end(JSON.stringify(state));
      let err: string | undefined;
      for (let m = await e.next(); m; m = await e.next()) {
        if (m.type === 'error') err = new ProgramError(program, m.index, m.errno).message;
      }
      const code = await e.exited();
      if (timedOut) throw failure(name, h, `timed out after ${h.timeout}s`);
      if (err) throw failure(name, h, `could not run: ${err}`);
      if (code !== 0) throw failure(name, h, `failed: exit status ${code}${tail(out)}`);
    } finally {
      if (timer) clearTimeout(timer);
      e.close();
    }
  }
}
