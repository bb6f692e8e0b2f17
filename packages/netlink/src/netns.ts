import { closeSync, openSync } from 'node:fs';
import { CLONE, call, isSysError } from '@tsc/syscall';
import { NetlinkError } from './errors.js';

/**
 * A network namespace: a namespace file (`/run/netns/x`, `/proc/<pid>/ns/net`), a process
 * whose namespace it is, an open namespace fd (not closed by this package), or a name that
 * `ip netns add` made (`/run/netns/<name>`).
 */
export type NetnsRef = { path: string } | { pid: number } | { fd: number } | { name: string };

/** A human-readable name of a {@link NetnsRef}, for messages. */
export function describeNetns(ref: NetnsRef): string {
  if ('path' in ref) return ref.path;
  if ('pid' in ref) return `netns of pid ${ref.pid}`;
  if ('name' in ref) return `netns ${ref.name}`;
  return `netns fd ${ref.fd}`;
}

function pathOf(ref: NetnsRef): string | undefined {
  if ('path' in ref) return ref.path;
  if ('pid' in ref) {
    if (!Number.isSafeInteger(ref.pid) || ref.pid <= 0) {
      throw new NetlinkError('open netns', 'InvalidArgument', `invalid pid ${String(ref.pid)}`);
    }
    return `/proc/${ref.pid}/ns/net`;
  }
  if ('name' in ref) {
    if (!/^[^/\0]+$/.test(ref.name) || ref.name === '.' || ref.name === '..') {
      throw new NetlinkError('open netns', 'InvalidArgument', `invalid netns name "${ref.name}"`);
    }
    return `/run/netns/${ref.name}`;
  }
  return undefined;
}

/** An fd for `ref` and whether the caller must close it. */
export function openNetns(ref: NetnsRef): { fd: number; owned: boolean } {
  const path = pathOf(ref);
  if (path === undefined) return { fd: (ref as { fd: number }).fd, owned: false };
  try {
    return { fd: openSync(path, 'r'), owned: true };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const errno = -((e as NodeJS.ErrnoException).errno ?? -2);
    throw new NetlinkError(
      `open ${describeNetns(ref)}`,
      code === 'ENOENT' ? 'NotFound' : undefined,
      undefined,
      {
        errno,
        cause: e,
      },
    );
  }
}

/**
 * Run `fn` with the calling thread in the network namespace behind `fd`, then return to the
 * thread's own namespace; `fn` must be synchronous.
 *
 * Why this is safe on Node's main thread: setns(CLONE_NEWNET) changes only the calling thread
 * (network namespaces are per thread, unlike mount or user namespaces), and the whole sequence
 * runs in one synchronous JavaScript turn, so no callback, promise job or other JavaScript can
 * run while the thread is elsewhere; libuv's pool threads keep their own namespace throughout. A
 * socket belongs to the namespace it was created in for its whole life, whichever thread uses it.
 */
export function inNetns<T>(fd: number, fn: () => T): T {
  let self: number;
  try {
    self = openSync('/proc/thread-self/ns/net', 'r');
  } catch (e) {
    throw new NetlinkError('open /proc/thread-self/ns/net', 'System', undefined, { cause: e });
  }
  try {
    try {
      call('setns', [fd, CLONE.NEWNET], { op: 'setns into the target netns' });
    } catch (e) {
      const errno = isSysError(e) ? e.errno : 0;
      throw new NetlinkError('setns', undefined, 'entering the target network namespace', {
        errno,
        cause: e,
      });
    }
    try {
      return fn();
    } finally {
      // Cannot fail for our own namespace's fd; if it ever did, this thread would be left in the
      // wrong namespace, which is worse than crashing.
      try {
        call('setns', [self, CLONE.NEWNET], { op: 'setns back into the original netns' });
      } catch (e) {
        process.emitWarning(`@tsc/netlink: cannot return to the original network namespace: ${String(e)}`);
        process.abort();
      }
    }
  } finally {
    closeSync(self);
  }
}
