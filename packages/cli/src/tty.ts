/**
 * The foreground side of a container terminal (`nsinit run` / `exec -t` without a console socket):
 * copy our stdin to the pty master and the master to our stdout, like `runc run` in a terminal.
 * When stdin is a terminal it goes to raw mode (the container's pty does the line editing and
 * turns ^C into SIGINT) and its window size follows ours (SIGWINCH); the mode is restored at the
 * end. When stdin is not a terminal its bytes are copied as they come and its end is sent as ^D.
 */
import type { ExitInfo } from '@tsc/libcontainer';
import { attachConsole, getConsoleSize, makeRaw, setConsoleSize } from '@tsc/libcontainer';

/** How long to wait for the rest of the output after the process exited (others may hold the pty). */
const DRAIN_MS = 1000;
/** How long the container must have written nothing before the end of piped input is passed on. */
const QUIET_MS = 200;

/** Our terminal's size, from stdin or stdout, when either is one. */
export function ownConsoleSize(): { height: number; width: number } | undefined {
  for (const fd of [0, 1]) {
    const s = getConsoleSize(fd);
    if (s && s.height > 0 && s.width > 0) return s;
  }
  return undefined;
}

/**
 * Relay between our stdio and the pty `master` (taken over and closed) until `exited` resolves
 * and the output is drained; resolves with the exit.
 */
export async function relayTerminal(master: number, exited: Promise<ExitInfo>): Promise<ExitInfo> {
  const stdin = process.stdin;
  let lastOutput = Date.now();
  const a = attachConsole(master, (chunk) => {
    lastOutput = Date.now();
    process.stdout.write(chunk);
  });
  const resize = () => {
    const size = ownConsoleSize();
    if (!size) return;
    try {
      setConsoleSize(master, size);
    } catch {
      // the pty is gone
    }
  };
  // cfmakeraw, like runc (Node's setRawMode keeps output processing: \r\n would become \r\r\n).
  const raw = makeRaw(0);
  const restore = () => raw?.();
  const onData = (chunk: Buffer) => a.write(chunk);
  // The end of piped input becomes ^D (VEOF), sent once the container has been quiet for a moment:
  // input written before the reader starts may be read in another tty mode, in which an early ^D
  // would arrive as a NUL byte instead of an end of file.
  let eofTimer: NodeJS.Timeout | undefined;
  const onEnd = () => {
    if (Date.now() - lastOutput >= QUIET_MS) {
      eofTimer = undefined;
      a.write('\x04');
    } else eofTimer = setTimeout(onEnd, 50);
  };
  resize();
  process.on('SIGWINCH', resize);
  process.on('exit', restore);
  stdin.on('data', onData);
  if (!raw) stdin.on('end', onEnd);
  stdin.on('error', () => undefined);
  stdin.resume();
  try {
    const r = await exited;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      a.ended,
      new Promise<void>((res) => {
        timer = setTimeout(res, DRAIN_MS);
      }),
    ]);
    if (timer) clearTimeout(timer);
    return r;
  } finally {
    if (eofTimer) clearTimeout(eofTimer);
    a.close();
    stdin.off('data', onData);
    stdin.off('end', onEnd);
    stdin.pause();
    process.off('SIGWINCH', resize);
    restore();
    process.off('exit', restore);
    await new Promise<void>((res) => {
      if (process.stdout.writableLength === 0) res();
      else process.stdout.once('drain', () => res());
    });
  }
}
