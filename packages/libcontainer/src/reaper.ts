import { closeFd, type ExitInfo, pidfdOpen, pidfdTryWait } from '@tsc/syscall';

interface Watch {
  pidfd: number;
  resolve: (e: ExitInfo) => void;
  reject: (e: unknown) => void;
}

const watches = new Set<Watch>();
let timer: NodeJS.Timeout | undefined;

function poll(): void {
  for (const w of watches) {
    let info: ExitInfo | undefined;
    try {
      info = pidfdTryWait(w.pidfd);
    } catch (e) {
      watches.delete(w);
      closeFd(w.pidfd);
      w.reject(e);
      continue;
    }
    if (info) {
      watches.delete(w);
      closeFd(w.pidfd);
      w.resolve(info);
    }
  }
  if (watches.size === 0) stop();
}

function stop(): void {
  process.off('SIGCHLD', poll);
  if (timer) clearInterval(timer);
  timer = undefined;
}

/**
 * Wait for a child of this process (a container init cloned with
 * CLONE_PARENT) to exit, without blocking the event loop or a thread:
 * every SIGCHLD, each watched pidfd is polled with WNOHANG.
 */
export function waitChild(pid: number): Promise<ExitInfo> {
  const pidfd = pidfdOpen(pid);
  return new Promise<ExitInfo>((resolve, reject) => {
    watches.add({ pidfd, resolve, reject });
    if (!timer) {
      process.on('SIGCHLD', poll);
      // A fallback in case a signal is coalesced before we listen; also keeps the loop alive.
      timer = setInterval(poll, 500);
    }
    poll();
  });
}
