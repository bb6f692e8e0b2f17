import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { flock } from '@tsc/syscall';
import { ContainerError } from './errors.js';
import type { RuntimeConfig } from './spec/index.js';

/** The default state root for root, like runc's /run/runc. */
export const DEFAULT_ROOT = '/run/nsinit';

/** Whether this process runs as an ordinary user (rootless), not root. */
export function isRootless(): boolean {
  return (process.geteuid?.() ?? 0) !== 0;
}

/** The state root to use when none is given: /run/nsinit for root, $XDG_RUNTIME_DIR/nsinit (or /tmp/nsinit-<uid>) otherwise. */
export function defaultRoot(): string {
  if (!isRootless()) return DEFAULT_ROOT;
  const uid = process.geteuid?.() ?? 0;
  const xdg = process.env.XDG_RUNTIME_DIR;
  return xdg ? join(xdg, 'nsinit') : `/tmp/nsinit-${uid}`;
}

const ID_RE = /^[\w+.-]+$/;

/** Check a container id the way runc does. */
export function validateId(id: string): void {
  if (!ID_RE.test(id) || id === '.' || id === '..' || id.length > 1024) {
    throw new ContainerError(
      'InvalidArgument',
      `invalid container id "${id}": use letters, digits, "_", "+", "-" and "."`,
    );
  }
}

/** What is kept on disk for a container (state.json). */
export interface StoredState {
  ociVersion: string;
  id: string;
  /** Last status written; the live status is derived from the process and the exec fifo. */
  status: 'creating' | 'created' | 'running' | 'stopped';
  /** Host pid of the container's init, 0 before it exists. */
  pid: number;
  /** Field 22 of /proc/<pid>/stat, to tell our process from a reused pid. */
  pidStartTime?: string;
  bundle: string;
  rootfs: string;
  /** RFC 3339 creation time. */
  created: string;
  owner: string;
  annotations?: Record<string, string>;
  /** The container's cgroup path ("/nsinit/c1"). */
  cgroupPath: string;
  /** The validated config the container was created from. */
  config: RuntimeConfig;
}

/** One container's state directory, locked while open. */
export class StateDir {
  private lockFd: number | undefined;

  constructor(
    readonly root: string,
    readonly id: string,
  ) {}

  get dir(): string {
    return join(this.root, this.id);
  }
  get stateFile(): string {
    return join(this.dir, 'state.json');
  }
  get fifo(): string {
    return join(this.dir, 'exec.fifo');
  }

  /** Take the container's lock (blocks while another nsinit holds it). */
  lock(): void {
    if (this.lockFd !== undefined) return;
    let fd: number;
    try {
      fd = openSync(join(this.dir, 'lock'), 'a', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new ContainerError('NotFound', `container "${this.id}" does not exist`, { id: this.id });
      }
      throw e;
    }
    flock(fd, 'exclusive');
    this.lockFd = fd;
  }

  unlock(): void {
    if (this.lockFd === undefined) return;
    closeSync(this.lockFd);
    this.lockFd = undefined;
  }

  /** Write state.json atomically (temp file, then rename over the old one). */
  write(s: StoredState): void {
    const tmp = join(this.dir, `.state.json.${process.pid}`);
    const fd = openSync(tmp, 'w', 0o600);
    try {
      // No fsync: the rename is what makes the write atomic for other readers; the
      // state describes live processes and means nothing after a reboot (runc and
      // crun do not fsync either), and an fsync per write cost ~1.5 ms here.
      writeSync(fd, JSON.stringify(s));
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.stateFile);
  }

  /** Read state.json; undefined if it was never written (a create that died early). */
  read(): StoredState | undefined {
    let text: string;
    try {
      text = readFileSync(this.stateFile, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
    try {
      return JSON.parse(text) as StoredState;
    } catch (e) {
      throw new ContainerError('System', `${this.stateFile}: corrupt state file`, { id: this.id, cause: e });
    }
  }

  /** Remove the whole directory. */
  remove(): void {
    // What a state dir holds are files (state.json, the lock, the exec fifo, temporary files):
    // removed one by one, which spares a start loading Node's recursive rm (~1 ms) for them.
    try {
      for (const name of readdirSync(this.dir)) unlinkSync(join(this.dir, name));
      rmdirSync(this.dir);
    } catch {
      rmSync(this.dir, { recursive: true, force: true });
    }
    this.unlock();
  }
}

/** The state root: where containers' state directories live. */
export class StateStore {
  constructor(readonly root: string = DEFAULT_ROOT) {}

  /** Make a new state dir; fails with AlreadyExists if the id is taken (mkdir is the arbiter). */
  create(id: string): StateDir {
    validateId(id);
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    try {
      mkdirSync(join(this.root, id), { mode: 0o711 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new ContainerError('AlreadyExists', `container "${id}" already exists`, { id });
      }
      throw e;
    }
    const d = new StateDir(this.root, id);
    try {
      d.lock();
    } catch (e) {
      // Nothing may stay behind a create that failed: the dir holds only the lock file yet.
      rmSync(d.dir, { recursive: true, force: true });
      throw e;
    }
    return d;
  }

  /** Open an existing container's state dir (not locked). */
  open(id: string): StateDir {
    validateId(id);
    const d = new StateDir(this.root, id);
    try {
      readdirSync(d.dir);
    } catch {
      throw new ContainerError('NotFound', `container "${id}" does not exist`, { id });
    }
    return d;
  }

  /**
   * Ids of every container under the root: directories holding a state.json (others — a create
   * that died before writing one, or data another component keeps under the root — are not
   * containers to list; `delete --force ID` still removes the former).
   */
  list(): string[] {
    try {
      return readdirSync(this.root, { withFileTypes: true })
        .filter((e) => e.isDirectory() && existsSync(join(this.root, e.name, 'state.json')))
        .map((e) => e.name)
        .sort();
    } catch {
      return [];
    }
  }
}

/** Field 22 (starttime) of /proc/<pid>/stat, or undefined if the process is gone. */
export function processStartTime(pid: number): string | undefined {
  if (pid <= 0) return undefined;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state); starttime is field 22.
  if (rest[0] === 'Z' || rest[0] === 'X') return undefined;
  return rest[19];
}
