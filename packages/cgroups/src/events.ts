/**
 * OOM notifications. v1: an eventfd registered for `memory.oom_control` through
 * `cgroup.event_control`; v2: inotify on `memory.events`. Both wake the iterator at once, and both
 * are backed by polling the `oom_kill` counter every `intervalMs` (so nothing is lost when a
 * notification cannot be set up, and the end of the cgroup is noticed).
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { call, watchReadable } from '@tsc/syscall';
import { errnoOf, fsError } from './errors.js';
import { parseKeyed, readFileIfExists, writeFile } from './fsutil.js';

/** One OOM event. */
export interface OomEvent {
  type: 'oom';
  /** The cgroup's `oom_kill` counter when the event was seen (v1 `memory.oom_control`, v2 `memory.events`). */
  count: number;
}

/** Options of {@link CgroupManager.oomEvents}. */
export interface OomEventsOptions {
  /** Ends the iteration. */
  signal?: AbortSignal;
  /** How often the counter is polled besides the notifications; 100 ms by default. */
  intervalMs?: number;
}

const EFD_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;
const IN_NONBLOCK = 0o4000;
const IN_CLOEXEC = 0o2000000;
const IN_MODIFY = 0x2;
const IN_DELETE_SELF = 0x400;

/** Where the counter lives and how the kernel announces a change. */
interface OomSource {
  /** The `oom_kill` counter, or `undefined` once the cgroup is gone. */
  read(): number | undefined;
  /** Whether an OOM that kills nothing is going on (v1 with the OOM killer disabled). */
  waitingOom(): boolean;
  /** Set up the notification; returns its closer. */
  watch(wake: () => void): () => void;
}

function readCounter(file: string): { kill: number; fields: Map<string, string> } | undefined {
  let text: string | undefined;
  try {
    text = readFileIfExists(file);
  } catch (err) {
    if (errnoOf(err) === 'ENODEV') return undefined; // removed while reading
    throw err;
  }
  if (text === undefined) return undefined;
  const fields = parseKeyed(text);
  return { kill: Number(fields.get('oom_kill') ?? 0), fields };
}

function drain(fd: number, size: number): void {
  const buf = Buffer.alloc(size);
  for (let i = 0; i < 64; i++) {
    try {
      if (readSync(fd, buf, 0, size, null) <= 0) return;
    } catch {
      return; // EAGAIN: nothing more
    }
  }
}

function closeAll(fds: number[]): void {
  for (const fd of fds) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
  }
}

/** cgroup v1: `memory.oom_control` of a memory cgroup directory. */
export function oomSourceV1(dir: string): OomSource {
  const control = join(dir, 'memory.oom_control');
  return {
    read: () => readCounter(control)?.kill,
    waitingOom: () => {
      const f = readCounter(control)?.fields;
      return f?.get('oom_kill_disable') === '1' && f.get('under_oom') === '1';
    },
    watch: (wake) => {
      const fds: number[] = [];
      try {
        const efd = call('eventfd2', [0, EFD_NONBLOCK | EFD_CLOEXEC], { op: 'eventfd2' });
        fds.push(efd);
        const cfd = openSync(control, 'r');
        fds.push(cfd);
        writeFile(join(dir, 'cgroup.event_control'), `${efd} ${cfd}`);
        const w = watchReadable(efd, () => {
          drain(efd, 8);
          wake();
        });
        return () => {
          w.close();
          closeAll(fds);
        };
      } catch (err) {
        closeAll(fds);
        throw err;
      }
    },
  };
}

/** cgroup v2: `memory.events` of a cgroup directory. */
export function oomSourceV2(dir: string): OomSource {
  const events = join(dir, 'memory.events');
  return {
    read: () => readCounter(events)?.kill,
    waitingOom: () => false,
    watch: (wake) => {
      const ifd = call('inotify_init1', [IN_NONBLOCK | IN_CLOEXEC], { op: 'inotify_init1' });
      try {
        call('inotify_add_watch', [ifd, events, IN_MODIFY | IN_DELETE_SELF], {
          op: `inotify_add_watch ${events}`,
          path: events,
        });
        const w = watchReadable(ifd, () => {
          drain(ifd, 4096);
          wake();
        });
        return () => {
          w.close();
          closeAll([ifd]);
        };
      } catch (err) {
        closeAll([ifd]);
        throw err;
      }
    },
  };
}

/**
 * Iterate OOM events of `src`: one each time the `oom_kill` counter grows past `baseline` (the
 * value when the iterator was made), plus (v1, OOM killer disabled) each notification while the
 * cgroup waits in OOM. Ends when the counter file disappears (the cgroup was removed) or `signal`
 * aborts. A notification that cannot be set up (no eventfd/inotify, koffi missing) leaves polling.
 */
export async function* oomEvents(
  src: OomSource,
  baseline: number,
  opts: OomEventsOptions = {},
): AsyncGenerator<OomEvent, void, undefined> {
  const intervalMs = opts.intervalMs ?? 100;
  let notified = false;
  let wakeUp: (() => void) | undefined;
  const wake = (): void => {
    notified = true;
    wakeUp?.();
  };
  let unwatch: (() => void) | undefined;
  try {
    unwatch = src.watch(wake);
  } catch {
    unwatch = undefined; // polling only
  }
  const onAbort = (): void => wakeUp?.();
  opts.signal?.addEventListener('abort', onAbort);
  let last = baseline;
  try {
    for (;;) {
      if (opts.signal?.aborted) return;
      const count = src.read();
      if (count === undefined) return;
      const wasNotified = notified;
      notified = false;
      if (count > last) {
        last = count;
        yield { type: 'oom', count };
        continue;
      }
      if (wasNotified && src.waitingOom()) {
        yield { type: 'oom', count };
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs);
        wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
        if (notified || opts.signal?.aborted) wakeUp();
      });
      wakeUp = undefined;
    }
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    unwatch?.();
  }
}

/** The current counter of `src`, for the baseline (NotFound when the cgroup is missing). */
export function oomBaseline(src: OomSource, file: string): number {
  const n = src.read();
  if (n === undefined) {
    throw fsError('read', file, Object.assign(new Error('ENOENT'), { code: 'ENOENT' }));
  }
  return n;
}
