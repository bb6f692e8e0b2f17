// Real-kernel test helpers: throwaway network namespaces named tnl<pid>-<n>, `ip -json`, cleanup.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';

/** Why the kernel tests cannot run here, or undefined. */
export function skipReason(): string | undefined {
  if (process.platform !== 'linux') return 'netlink tests need Linux';
  if (process.getuid?.() !== 0) return 'netlink tests need root (CAP_NET_ADMIN, CAP_SYS_ADMIN for setns)';
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return 'netlink tests compare with iproute2 (`ip`), which is not installed';
  }
  return undefined;
}

let n = 0;
const made = new Set<string>();
const children = new Set<ChildProcess>();

/** A fresh named netns (`ip netns add tnl<pid>-<n>`), removed by {@link cleanupNetns}. */
export function makeNetns(): string {
  n += 1;
  const name = `tnl${process.pid}-${n}`;
  execFileSync('ip', ['netns', 'add', name]);
  made.add(name);
  return name;
}

/** `ip -n NS -json ARGS` parsed. */
export function ipJson<T = unknown>(ns: string, ...args: string[]): T {
  return JSON.parse(execFileSync('ip', ['-n', ns, '-json', ...args], { encoding: 'utf8' }) || '[]') as T;
}

/** `ip -n NS ARGS`. */
export function ipCmd(ns: string, ...args: string[]): string {
  return execFileSync('ip', ['-n', ns, ...args], { encoding: 'utf8' });
}

/** A `sleep` process inside netns `ns`, killed by {@link cleanupNetns}. */
export async function sleeperIn(ns: string): Promise<number> {
  const c = spawn('ip', ['netns', 'exec', ns, 'sleep', '600'], { stdio: 'ignore' });
  children.add(c);
  await new Promise<void>((resolve, reject) => {
    c.once('spawn', () => resolve());
    c.once('error', reject);
  });
  // `ip netns exec` execs sleep in place, so the pid is sleep's; wait until it is in the netns.
  const want = execFileSync('stat', ['-L', '-c', '%i', `/run/netns/${ns}`], { encoding: 'utf8' }).trim();
  for (let i = 0; i < 200; i++) {
    try {
      const got = execFileSync('stat', ['-L', '-c', '%i', `/proc/${c.pid}/ns/net`], {
        encoding: 'utf8',
      }).trim();
      if (got === want) return c.pid as number;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`sleeper did not enter ${ns}`);
}

/** Remove every netns and process the tests made. */
export function cleanupNetns(): void {
  for (const c of children) c.kill('SIGKILL');
  children.clear();
  for (const name of made) {
    try {
      execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
    } catch {
      // gone already
    }
  }
  made.clear();
}
