import type { Program, Reg } from '@tsc/executor';
import { AT, Errno, MS, O, RESOLVE } from '@tsc/syscall';
import type { InRoot } from './inroot.js';
import { openHow, TARGET_PATH } from './inroot.js';

/** The fixed fd the pty master is moved to, so the SCM_RIGHTS message can name it. */
export const MASTER_FD = 1001;

const TIOCSCTTY = 0x540e;
const TIOCSWINSZ = 0x5414;
const TIOCSPTLCK = 0x40045431;
const TIOCGPTPEER = 0x5441;
const MSG_NOSIGNAL = 0x4000;

/** What {@link planConsole} needs. */
export interface ConsolePlan {
  /** The executor's fd of the console socket (connected; the master goes there). */
  socketFd: number;
  /**
   * Where /dev/pts is looked up: the rootfs fd (a container's init, before pivot_root), or
   * AT_FDCWD after joining the container's mount namespace (exec: setns made cwd its root).
   */
  root: Reg | typeof AT.FDCWD;
  /** process.consoleSize. */
  size?: { height: number; width: number } | undefined;
  /** The uid the process will run as: it gets to own its terminal (runc's fixStdioPermissions). */
  uid: number;
  /** A container's init: bind the pty over /dev/console (found through this). */
  console?: InRoot | undefined;
}

/**
 * Give the process a new pty of the container's own devpts, runc's way: open `/dev/pts/ptmx`
 * (`/dev/ptmx` when that is missing) under the container's root, unlock it, size it, get the
 * peer with TIOCGPTPEER (no lookup of `/dev/pts/N` by name, CVE-2025-52565), bind the peer over
 * /dev/console (init), make it stdin, stdout, stderr and the controlling terminal, and send the
 * master to the console socket with SCM_RIGHTS. Neither the master nor the socket stays open.
 *
 * A program cannot branch on fstatfs, so the ptmx is not checked for being on a devpts the way
 * runc does; the ioctls are the check: anything but a pty master fails TIOCSPTLCK/TIOCGPTPEER.
 */
export function planConsole(p: Program, c: ConsolePlan): void {
  const master = p.reg();
  const peer = p.reg();
  const flags = O.RDWR | O.NOCTTY | O.CLOEXEC;
  const viaLink = p.label();
  const opened = p.label();
  const strict = openHow(flags, RESOLVE.IN_ROOT | RESOLVE.NO_SYMLINKS | RESOLVE.NO_MAGICLINKS);
  p.syscall('openat2', [c.root, 'dev/pts/ptmx', strict, strict.length], {
    what: 'terminal: open /dev/pts/ptmx',
    out: master,
    onError: { skipTo: viaLink },
    errno: Errno.ENOENT,
  });
  p.jump(opened, { what: 'terminal: ptmx open' });
  p.place(viaLink);
  const loose = openHow(flags, RESOLVE.IN_ROOT | RESOLVE.NO_MAGICLINKS);
  p.syscall('openat2', [c.root, 'dev/ptmx', loose, loose.length], {
    what: 'terminal: open /dev/ptmx (is /dev/pts mounted?)',
    out: master,
  });
  p.place(opened);
  p.syscall('ioctl', [master, TIOCSPTLCK, Buffer.alloc(4)], {
    what: 'terminal: unlock the pty (TIOCSPTLCK)',
  });
  if (c.size && c.size.height > 0 && c.size.width > 0) {
    const ws = Buffer.alloc(8);
    ws.writeUInt16LE(c.size.height & 0xffff, 0);
    ws.writeUInt16LE(c.size.width & 0xffff, 2);
    p.syscall('ioctl', [master, TIOCSWINSZ, ws], {
      what: `terminal: set the window size ${c.size.width}x${c.size.height}`,
    });
  }
  p.syscall('ioctl', [master, TIOCGPTPEER, flags], {
    what: 'terminal: open the pty peer (TIOCGPTPEER)',
    out: peer,
  });
  if (c.uid !== 0) {
    p.syscall('fchownat', [peer, '', c.uid, -1, AT.EMPTY_PATH], {
      what: `terminal: chown the pty to uid ${c.uid}`,
    });
  }
  for (const fd of [0, 1, 2]) {
    p.syscall('dup3', [peer, fd, 0], { what: `terminal: make the pty fd ${fd}` });
  }
  p.syscall('close', [peer], { what: 'terminal: close', onError: 'ignore' });
  if (c.console) {
    // Before pivot_root, /proc/self/fd is the host's proc: fd 0 is the pty peer.
    const t = c.console.ensure('/dev/console', 'file', 'terminal: create /dev/console', { noSymlinks: true });
    c.console.pin(t, 'terminal: /dev/console');
    p.syscall('mount', ['/proc/self/fd/0', TARGET_PATH, null, MS.BIND, null], {
      what: 'terminal: bind the pty over /dev/console',
    });
  }
  p.syscall('ioctl', [0, TIOCSCTTY, 0], {
    what: 'terminal: make the pty the controlling terminal (TIOCSCTTY)',
  });
  p.syscall('dup3', [master, MASTER_FD, O.CLOEXEC], { what: 'terminal: move the pty master' });
  p.syscall('close', [master], { what: 'terminal: close', onError: 'ignore' });
  // runc sends the master's name as the data; receivers (conmon, containerd) only take the fd.
  const msg = p.fdMessage('/dev/pts/ptmx', [MASTER_FD]);
  p.syscall('sendmsg', [c.socketFd, msg, MSG_NOSIGNAL], {
    what: 'terminal: send the pty master to the console socket',
  });
  p.syscall('close', [MASTER_FD], { what: 'terminal: close the pty master', onError: 'ignore' });
  p.syscall('close', [c.socketFd], { what: 'terminal: close the console socket', onError: 'ignore' });
}
