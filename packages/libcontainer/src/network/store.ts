/**
 * The on-disk record of one bridge network: `<root>/network@<bridge>.json` holds the subnet and
 * every lease; `<root>/network@<bridge>.lock` is flocked by every change. The files sit in the
 * state root next to the containers' directories but are files, and `@` cannot occur in a
 * container id, so `Container.list` (which lists directories) never mistakes them for containers.
 */
import { closeSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Errno, flock, isSysError } from '@tsc/syscall';
import { ContainerError } from '../errors.js';
import type { PortMapping } from './types.js';

/** One container's lease: enough to tear everything down with no other state. */
export interface Lease {
  id: string;
  ip: string;
  pid: number;
  /** Field 22 of /proc/<pid>/stat when attached (tells a reused pid apart). */
  startTime: string;
  hostVeth: string;
  mac: string;
  ports: PortMapping[];
  proxy?: { pid: number; startTime: string };
  created: string;
}

export interface NetworkFile {
  version: 1;
  bridge: string;
  subnet: string;
  gateway: string;
  nftTable: string;
  /** The last address handed out: allocation continues after it, so addresses are not reused at once. */
  last?: string;
  leases: Record<string, Lease>;
}

const PREFIX = 'network@';

export function storePath(root: string, bridge: string): string {
  return join(root, `${PREFIX}${bridge}.json`);
}

/** Bridges with a network file under `root`. */
export function storedBridges(root: string): string[] {
  try {
    return readdirSync(root)
      .filter((f) => f.startsWith(PREFIX) && f.endsWith('.json'))
      .map((f) => f.slice(PREFIX.length, -'.json'.length));
  } catch {
    return [];
  }
}

export function readStore(root: string, bridge: string): NetworkFile | undefined {
  let text: string;
  try {
    text = readFileSync(storePath(root, bridge), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  try {
    return JSON.parse(text) as NetworkFile;
  } catch (e) {
    throw new ContainerError('System', `${storePath(root, bridge)}: corrupt network file`, { cause: e });
  }
}

export function writeStore(root: string, f: NetworkFile): void {
  const path = storePath(root, f.bridge);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(f, null, 1), { mode: 0o600 });
  renameSync(tmp, path);
}

export function removeStore(root: string, bridge: string): void {
  rmSync(storePath(root, bridge), { force: true });
  rmSync(join(root, `${PREFIX}${bridge}.lock`), { force: true });
}

// In-process queue per lock file: flock conflicts between two fds of this process too, and a
// blocking flock on the main thread would then wait for itself.
const queues = new Map<string, Promise<unknown>>();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Run `fn` holding the network's lock: an in-process queue, then `flock(LOCK_EX)` on the lock
 * file, polled without blocking the event loop. Other processes (a concurrent `nsinit run`) wait.
 */
export async function withNetworkLock<T>(root: string, bridge: string, fn: () => Promise<T>): Promise<T> {
  const path = join(root, `${PREFIX}${bridge}.lock`);
  const prev = queues.get(path) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((r) => {
    release = r;
  });
  const chained = prev.then(() => mine);
  queues.set(path, chained);
  await prev;
  let fd: number | undefined;
  try {
    fd = openSync(path, 'a', 0o600);
    for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
      try {
        flock(fd, 'exclusive', false);
        break;
      } catch (e) {
        if (!(isSysError(e) && (e.errno === Errno.EAGAIN || e.errno === Errno.EINTR))) throw e;
        await sleep(delay);
      }
    }
    return await fn();
  } finally {
    if (fd !== undefined) closeSync(fd);
    release();
    if (queues.get(path) === chained) queues.delete(path);
  }
}
