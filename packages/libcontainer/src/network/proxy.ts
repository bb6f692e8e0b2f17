import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ContainerError } from '../errors.js';
import { processStartTime } from '../state.js';
import type { PortMapping } from './types.js';

/** The default proxy command: this Node and the proxy script next to this module in dist. */
export function defaultProxyCommand(): string[] {
  const script = fileURLToPath(new URL('./proxy-main.mjs', import.meta.url));
  if (!existsSync(script)) {
    throw new ContainerError(
      'System',
      `port proxy script ${script} not found: build @tsc/libcontainer, or pass proxyCommand`,
      { step: 'start port proxy' },
    );
  }
  return [process.execPath, script];
}

/**
 * Start the userland proxy for `ports`, detached (own session, stdio ignored) so it outlives the
 * caller, and wait until it listens. Its pid and start time identify it for {@link stopProxy}.
 */
export async function startProxy(opts: {
  id: string;
  containerIp: string;
  ports: readonly PortMapping[];
  watch: { pid: number; startTime: string };
  command?: readonly string[];
}): Promise<{ pid: number; startTime: string }> {
  const [cmd, ...pre] = opts.command ?? defaultProxyCommand();
  const args = [
    ...pre,
    opts.containerIp,
    `${opts.watch.pid}:${opts.watch.startTime}`,
    ...opts.ports.map((p) => `${p.protocol}/${p.hostIp ?? ''}:${p.hostPort}:${p.containerPort}`),
  ];
  const child = spawn(cmd as string, args, { detached: true, stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
  const pipe = child.stdio[3] as NodeJS.ReadableStream | null;
  const answer = await new Promise<string>((resolve) => {
    let text = '';
    const timer = setTimeout(() => resolve('error timeout: no answer within 10 s'), 10_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      resolve(`error ${e.message}`);
    });
    pipe?.on('data', (d: Buffer) => {
      text += d.toString();
    });
    pipe?.on('end', () => {
      clearTimeout(timer);
      resolve(text.trim() || 'error the proxy exited without an answer');
    });
  });
  (pipe as unknown as { destroy?: () => void } | null)?.destroy?.();
  child.unref();
  const pid = child.pid;
  if (answer !== 'ok' || pid === undefined) {
    if (pid !== undefined) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    const inUse = /EADDRINUSE/.test(answer);
    throw new ContainerError(
      inUse ? 'AlreadyExists' : 'System',
      `container "${opts.id}": port proxy: ${inUse ? 'a published host port is already in use: ' : ''}${answer.replace(/^error\s*/, '')}`,
      { id: opts.id, step: 'start port proxy' },
    );
  }
  const startTime = processStartTime(pid);
  if (startTime === undefined) {
    throw new ContainerError('System', `container "${opts.id}": port proxy exited right after starting`, {
      id: opts.id,
      step: 'start port proxy',
    });
  }
  return { pid, startTime };
}

/** Kill a proxy recorded as {pid, startTime}; nothing when it is gone or the pid was reused. */
export function stopProxy(p: { pid: number; startTime: string } | undefined): void {
  if (!p || processStartTime(p.pid) !== p.startTime) return;
  try {
    process.kill(p.pid, 'SIGKILL');
  } catch {
    // gone meanwhile
  }
}
