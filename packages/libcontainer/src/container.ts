import {
  accessSync,
  closeSync,
  existsSync,
  constants as fsc,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import {
  type ApplyResult,
  type CgroupManager,
  type LinuxResources as CgroupResources,
  type CgroupStats,
  detectLayout,
  type OomEvent,
  openCgroup,
  resolveCgroupPath,
} from '@tsc/cgroups';
import {
  type ExecutorMessage,
  type ExecutorProcess,
  ProgramError,
  type StdioSpec,
  spawnExecutor,
} from '@tsc/executor';
import { checkNamespacePath, isNamespaceError } from '@tsc/namespaces';
import { compileSeccomp, SeccompError } from '@tsc/seccomp';
import {
  AT,
  call,
  closeFd,
  type ExitInfo,
  isSysError,
  parseSignal,
  pidfdOpen,
  pidfdSendSignal,
  S,
} from '@tsc/syscall';
import { cgroupFailure, cgroupFrozen, requireCgroup } from './cgroupstate.js';
import { ContainerError, isContainerError } from './errors.js';
import { type HookState, runContainerHooks, runHostHooks } from './hooks.js';
import { cgroupResources } from './plan/devices.js';
import { planExecIn } from './plan/exec.js';
import { type CgroupBind, type CompiledFilter, planInit, SYNC } from './plan/init.js';
import { waitChild } from './reaper.js';
import { mergeResources, parseResources } from './resources.js';
import {
  ConfigError,
  type LinuxResources,
  loadConfig,
  type Process,
  type RuntimeConfig,
} from './spec/index.js';
import {
  defaultRoot,
  isRootless,
  processStartTime,
  type StateDir,
  StateStore,
  type StoredState,
} from './state.js';
import { connectConsoleSocket, consoleSocketPair, receiveFd } from './terminal.js';

/** The OCI runtime-spec version this runtime implements. */
export const OCI_VERSION = '1.2.0';

/** A container's status, as `state` reports it. */
export type ContainerStatus = 'creating' | 'created' | 'running' | 'paused' | 'stopped';

/** The OCI state of a container (what `nsinit state` prints). */
export interface ContainerState {
  ociVersion: string;
  id: string;
  pid: number;
  status: ContainerStatus;
  bundle: string;
  rootfs: string;
  created: string;
  owner: string;
  annotations?: Record<string, string>;
}

/** Options common to creating and running a container. */
export interface CreateOptions {
  /** The container id (letters, digits, `_+-.`). */
  id: string;
  /** The bundle directory holding config.json. */
  bundle: string;
  /** State root (default /run/nsinit). */
  root?: string;
  /** Write the init's host pid here, atomically. */
  pidFile?: string;
  /** Pass fds 3 .. 3+N-1 of this process on to the container. */
  preserveFds?: number;
  /** Use MS_MOVE + chroot instead of pivot_root (for a rootfs on a ramfs). */
  noPivot?: boolean;
  /** Accepted for runc compatibility; nsinit does not create session keyrings. */
  noNewKeyring?: boolean;
  /**
   * The container's stdin, stdout, stderr (default: this process's; /dev/null with
   * process.terminal, whose pty replaces them).
   */
  stdio?: readonly [StdioSpec, StdioSpec, StdioSpec];
  /**
   * With process.terminal: the path of a listening AF_UNIX socket that gets the pty master
   * (SCM_RIGHTS), runc's `--console-socket`. Required by {@link Container.create}; without it
   * {@link Container.run} hands the master to the caller as {@link RunningContainer.console}.
   */
  consoleSocket?: string;
  /**
   * With process.terminal, when config.json gives no `process.consoleSize`: the pty's size from
   * its creation, e.g. the caller's own terminal when it relays (`nsinit run` does), so the
   * process never starts on a 0x0 terminal while the caller's resize is on its way.
   */
  consoleSize?: { height: number; width: number };
  /**
   * Called on the host once the container's namespaces exist and its mounts are done, before
   * `pivot_root` and long before the user's process runs (where OCI `createRuntime` hooks run,
   * and where CNI plugins configure a network): e.g. attach a network to `pid`'s namespace. A
   * failure fails the create like a failing hook, and nothing is left behind.
   */
  onCreated?: (info: { id: string; pid: number; bundle: string }) => Promise<void> | void;
  /** Called with warnings (a poststart hook that failed, …). */
  onWarning?: (message: string) => void;
}

/** Options of {@link Container.exec}. */
export interface ExecOptions {
  /** stdin, stdout, stderr of the process (default: this process's; /dev/null with a terminal). */
  stdio?: readonly [StdioSpec, StdioSpec, StdioSpec];
  /**
   * With `proc.terminal`: a listening AF_UNIX socket that gets the pty master; without it the
   * master is returned as {@link ExecedProcess.console}.
   */
  consoleSocket?: string;
  /** Pass fds 3 .. 3+N-1 of this process on. */
  preserveFds?: number;
  /** Write the process's host pid here, atomically. */
  pidFile?: string;
}

/** A process started by {@link Container.exec}. */
export interface ExecedProcess {
  /** Its host pid. */
  pid: number;
  /** Resolves when it exits. */
  exited: Promise<ExitInfo>;
  /**
   * With `terminal` and no console socket: the master of the process's pty, an fd that is now
   * the caller's to read, write (see attachConsole) and close.
   */
  console?: number;
}

/** A running container that this process started and can wait for. */
export interface RunningContainer {
  container: Container;
  /** Resolves when the container's init exits. */
  exited: Promise<ExitInfo>;
  /**
   * With process.terminal and no console socket: the master of the init's pty (from the
   * container's devpts), an fd that is now the caller's to read, write and close.
   */
  console?: number;
}

function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Load and validate `<bundle>/config.json`, as a ContainerError on failure. */
export function loadBundleConfig(bundle: string): RuntimeConfig {
  try {
    return loadConfig(bundle);
  } catch (e) {
    if (e instanceof ConfigError) throw new ContainerError('InvalidConfig', e.message, { cause: e });
    throw e;
  }
}

function capLastCap(): number {
  try {
    return Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim());
  } catch {
    return 40;
  }
}

/** v1 hierarchies to bind into the container's /sys/fs/cgroup. */
function cgroupBinds(cg: CgroupManager): CgroupBind[] {
  const binds = new Map<string, CgroupBind>();
  for (const [controller, dir] of Object.entries(cg.dirs())) {
    if (controller === 'unified') continue;
    // dir is /sys/fs/cgroup/<mountdir>/<path>; the mount dir names the hierarchy.
    const rel = dir.slice(dir.indexOf('/sys/fs/cgroup/') + '/sys/fs/cgroup/'.length);
    const mountDir = rel.split('/')[0] as string;
    if (mountDir === 'systemd') continue;
    const b = binds.get(mountDir) ?? { name: mountDir, source: dir, links: [] };
    if (controller !== mountDir && !b.links.includes(controller) && mountDir.includes(','))
      b.links.push(controller);
    binds.set(mountDir, b);
  }
  return [...binds.values()];
}

function writePidFile(path: string, pid: number): void {
  const abs = resolve(path);
  const tmp = join(dirname(abs), `.${basename(abs)}.${process.pid}`);
  writeFileSync(tmp, String(pid), { mode: 0o644, flag: 'wx' });
  renameSync(tmp, abs);
}

function hookState(s: StoredState, status: ContainerStatus): HookState {
  const st: HookState = { ociVersion: OCI_VERSION, id: s.id, status, bundle: s.bundle };
  if (s.pid) st.pid = s.pid;
  if (s.annotations) st.annotations = s.annotations;
  return st;
}

/** A container: created by {@link Container.create} / {@link Container.run}, or loaded by id. */
export class Container {
  /** @internal Use {@link Container.create}, {@link Container.run} or {@link Container.load}. */
  constructor(
    private readonly store: StateStore,
    readonly id: string,
  ) {}

  /** Load an existing container. */
  static load(id: string, root: string = defaultRoot()): Container {
    const store = new StateStore(root);
    store.open(id);
    return new Container(store, id);
  }

  /** States of every container under `root`. */
  static list(root: string = defaultRoot()): ContainerState[] {
    const store = new StateStore(root);
    const out: ContainerState[] = [];
    for (const id of store.list()) {
      try {
        out.push(new Container(store, id).state());
      } catch {
        // a container being deleted right now
      }
    }
    return out;
  }

  /**
   * Create a container: namespaces, cgroup, mounts, everything up to the
   * user's process, which waits until {@link start}. Like `runc create`.
   */
  static async create(opts: CreateOptions): Promise<Container> {
    const r = await launch(opts, 'create');
    return r.container;
  }

  /**
   * Create and start a container in one step; this process becomes its
   * parent and can wait for it. Like `runc run`.
   */
  static async run(opts: CreateOptions): Promise<RunningContainer> {
    const r = await launch(opts, 'run');
    if (!r.exited) throw new Error('internal: run without an exit promise');
    const out: RunningContainer = { container: r.container, exited: r.exited };
    if (r.console !== undefined) out.console = r.console;
    return out;
  }

  private dirHandle(): StateDir {
    return this.store.open(this.id);
  }

  private stored(): StoredState {
    const s = this.dirHandle().read();
    if (!s)
      throw new ContainerError(
        'NotFound',
        `container "${this.id}" has no state (a create that did not finish); delete it with --force`,
        { id: this.id },
      );
    return s;
  }

  /** The live OCI state. */
  state(): ContainerState {
    const d = this.dirHandle();
    const s = d.read();
    if (!s) {
      return {
        ociVersion: OCI_VERSION,
        id: this.id,
        pid: 0,
        status: 'stopped',
        bundle: '',
        rootfs: '',
        created: '',
        owner: '',
      };
    }
    const status = liveStatus(s, d);
    const st: ContainerState = {
      ociVersion: s.ociVersion,
      id: s.id,
      pid: status === 'stopped' ? 0 : s.pid,
      status,
      bundle: s.bundle,
      rootfs: s.rootfs,
      created: s.created,
      owner: s.owner,
    };
    if (s.annotations && Object.keys(s.annotations).length) st.annotations = s.annotations;
    return st;
  }

  /** Let a created container's process run (runs startContainer and poststart hooks). */
  async start(opts: { onWarning?: (m: string) => void } = {}): Promise<void> {
    const d = this.dirHandle();
    d.lock();
    try {
      const s = this.stored();
      const status = liveStatus(s, d);
      if (status !== 'created') {
        throw new ContainerError(
          'InvalidState',
          `cannot start container "${this.id}": it is ${status}, not created`,
          { id: this.id },
        );
      }
      const cg = cgroupOf(s);
      try {
        await runContainerHooks('startContainer', s.config.hooks?.startContainer, hookState(s, 'created'), {
          pid: s.pid,
          namespaces: (s.config.linux?.namespaces ?? []).map((n) => n.type),
          addToCgroup: (pid) => cg?.addProcess(pid),
        });
      } catch (e) {
        await this.destroy(s, d, opts.onWarning);
        throw e;
      }
      let fd: number;
      try {
        fd = openSync(d.fifo, fsc.O_WRONLY | fsc.O_NONBLOCK);
      } catch (e) {
        throw new ContainerError(
          'InvalidState',
          `cannot start container "${this.id}": its process is not waiting (${errMessage(e)})`,
          {
            id: this.id,
            cause: e,
          },
        );
      }
      try {
        writeSync(fd, '0');
      } finally {
        closeSync(fd);
      }
      unlinkSync(d.fifo);
      s.status = 'running';
      d.write(s);
      try {
        await runHostHooks('poststart', s.config.hooks?.poststart, hookState(s, 'running'));
      } catch (e) {
        opts.onWarning?.(errMessage(e));
      }
    } finally {
      d.unlock();
    }
  }

  /** Send a signal to the init (or, with `all`, to every process of the container). */
  kill(signal: string | number = 'SIGTERM', opts: { all?: boolean } = {}): void {
    const sig = parseSignal(signal);
    if (sig === undefined) throw new ContainerError('InvalidArgument', `unknown signal "${signal}"`);
    const d = this.dirHandle();
    const s = this.stored();
    const status = liveStatus(s, d);
    if (status === 'stopped' && !opts.all) {
      throw new ContainerError('InvalidState', `cannot kill container "${this.id}": it is not running`, {
        id: this.id,
      });
    }
    if (opts.all) {
      const cg = cgroupOf(s);
      if (!cg) {
        throw new ContainerError(
          'Unsupported',
          `kill --all: container "${this.id}" has no cgroup (rootless without a delegated cgroup)`,
          {
            id: this.id,
          },
        );
      }
      cg.kill(sig);
      return;
    }
    signalInit(s, sig);
    // A frozen task dies only once thawed (cgroup v1): thaw a paused container after SIGKILL, like runc.
    if (sig === 9 && status === 'paused') {
      try {
        cgroupOf(s)?.thaw();
      } catch {
        // the signal is sent; a failed thaw leaves it pending until resume
      }
    }
  }

  /**
   * Run another process inside the running container: it joins every namespace
   * of the init, its cgroup, and gets the process attributes of `proc` (user,
   * capabilities, rlimits, no_new_privs, cwd, env). This process becomes its
   * parent and can wait for it.
   */
  async exec(proc: Process, opts: ExecOptions = {}): Promise<ExecedProcess> {
    const d = this.dirHandle();
    const s = this.stored();
    const status = liveStatus(s, d);
    if (status !== 'running' && status !== 'created') {
      throw new ContainerError('InvalidState', `cannot exec in container "${this.id}": it is ${status}`, {
        id: this.id,
      });
    }
    const preserveFds = opts.preserveFds ?? 0;
    const extraFds = Array.from({ length: preserveFds }, (_, i) => 3 + i);
    const terminal = proc.terminal === true;
    checkConsoleOptions(terminal, opts.consoleSocket, `exec in container "${this.id}"`);
    const program = planExecIn({
      initPid: s.pid,
      namespaces: (s.config.linux?.namespaces ?? []).map((n) => n.type),
      process: proc,
      consoleFd: terminal ? 3 + preserveFds : undefined,
      syncFd: 3 + preserveFds + (terminal ? 1 : 0),
      preserveFds,
      capLastCap: capLastCap(),
      setgroups: readSetgroups(s.pid) !== 'deny',
      seccomp: compileFilter(s.config, undefined),
      userFirst: isRootless(),
    });
    const cg = cgroupOf(s);
    const con = terminal ? openConsole(opts.consoleSocket) : undefined;
    if (con?.theirs !== undefined) extraFds.push(con.theirs);
    let e: ExecutorProcess;
    try {
      e = spawnExecutor({ stdio: opts.stdio ?? defaultStdio(terminal), extraFds });
    } catch (err) {
      closeConsole(con);
      // e.g. ETXTBSY: something holds the executor image open for writing
      throw new ContainerError(
        'StartFailed',
        `exec in container "${this.id}": start the executor: ${errMessage(err)}`,
        {
          id: this.id,
          cause: err,
        },
      );
    }
    closeConsole(con, 'theirs');
    let pid = 0;
    let exited: Promise<ExitInfo> | undefined;
    try {
      cg?.addProcess(e.pid);
      e.send(program);
      let ready = false;
      for await (const m of pidFirst(e)) {
        if (m.type === 'pid') {
          pid = m.pid;
          exited = waitChild(pid);
        } else if (m.type === 'sync') {
          ready = true;
          receiveMaster(con);
          if (opts.pidFile) writePidFile(opts.pidFile, pid);
          e.reply(0);
        } else if (m.type === 'error') {
          const pe = new ProgramError(program, m.index, m.errno);
          throw new ContainerError('StartFailed', `exec in container "${this.id}": ${pe.message}`, {
            id: this.id,
            step: pe.op,
            cause: pe,
          });
        }
      }
      if (!ready || !exited) {
        const code = await e.exited();
        throw new ContainerError(
          'StartFailed',
          `exec in container "${this.id}": the process ended during setup (executor exit ${code})`,
          {
            id: this.id,
          },
        );
      }
      const r: ExecedProcess = { pid, exited };
      if (con?.master !== undefined) r.console = con.master;
      if (con) con.master = undefined;
      return r;
    } catch (err) {
      closeConsole(con);
      e.kill();
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      if (exited) await exited.catch(() => undefined);
      if (isContainerError(err)) throw err;
      throw new ContainerError('StartFailed', `exec in container "${this.id}": ${errMessage(err)}`, {
        id: this.id,
        cause: err,
      });
    } finally {
      e.close();
    }
  }

  /** The container's saved config (its process is the default for {@link exec}). */
  config(): RuntimeConfig {
    return this.stored().config;
  }

  /** Host pids of every process in the container. */
  pids(): number[] {
    const s = this.stored();
    const cg = cgroupOf(s);
    if (!cg) return processStartTime(s.pid) === s.pidStartTime && s.pid > 0 ? [s.pid] : [];
    return cg.exists() ? cg.pids() : [];
  }

  /**
   * Freeze every process of a running (or created) container; `state()` then reports `paused`.
   * Like `runc pause`.
   * @throws {ContainerError} `InvalidState` when it is not running, `Unsupported` without a cgroup
   */
  pause(): void {
    this.freezer('pause', true);
  }

  /** Thaw a paused container. Like `runc resume`. */
  resume(): void {
    this.freezer('resume', false);
  }

  private freezer(what: 'pause' | 'resume', freeze: boolean): void {
    const d = this.dirHandle();
    d.lock();
    try {
      const s = this.stored();
      const status = liveStatus(s, d);
      const ok = freeze ? status === 'running' || status === 'created' : status === 'paused';
      if (!ok) {
        throw new ContainerError(
          'InvalidState',
          `cannot ${what} container "${this.id}": it is ${status}, not ${freeze ? 'running' : 'paused'}`,
          { id: this.id },
        );
      }
      const cg = requireCgroup(s, what);
      try {
        if (freeze) cg.freeze();
        else cg.thaw();
      } catch (e) {
        throw cgroupFailure(this.id, what, e);
      }
    } finally {
      d.unlock();
    }
  }

  /**
   * Resource usage of the container's cgroup (CPU, memory, pids, block I/O, hugetlb); see
   * `toRuncStats`/`runcEventJSON` of `@tsc/cgroups` for runc's JSON.
   * @throws {ContainerError} `Unsupported` without a cgroup, `InvalidState` when the cgroup is gone
   */
  stats(): CgroupStats {
    const s = this.stored();
    const cg = requireCgroup(s, 'get stats of');
    try {
      return cg.stats();
    } catch (e) {
      throw cgroupFailure(this.id, 'get stats of', e);
    }
  }

  /**
   * OOM events of the container's cgroup as they happen (`{ type: 'oom', count }`, count being the
   * cgroup's oom_kill counter). Ends when the cgroup is removed (the container was deleted) or
   * `signal` aborts.
   * @throws {ContainerError} `Unsupported` without a cgroup or memory controller, `InvalidState` when the cgroup is gone
   */
  events(opts: { signal?: AbortSignal } = {}): AsyncIterable<OomEvent> {
    const s = this.stored();
    const cg = requireCgroup(s, 'watch events of');
    try {
      return cg.oomEvents(opts.signal ? { signal: opts.signal } : {});
    } catch (e) {
      throw cgroupFailure(this.id, 'watch events of', e);
    }
  }

  /**
   * Change the resource limits of a live (created, running or paused) container, like
   * `runc update`: only the given fields are written (validated first: the OCI `linux.resources`
   * schema, known keys only, no `devices`), and they are recorded in the stored config.
   * @returns what was written and what this host does not enforce
   * @throws {ContainerError} `InvalidArgument` naming the field, `InvalidState` when stopped,
   *   `Unsupported` without a cgroup
   */
  update(resources: LinuxResources): ApplyResult {
    const r = parseResources(resources);
    const d = this.dirHandle();
    d.lock();
    try {
      const s = this.stored();
      const status = liveStatus(s, d);
      if (status === 'stopped' || status === 'creating') {
        throw new ContainerError('InvalidState', `cannot update container "${this.id}": it is ${status}`, {
          id: this.id,
        });
      }
      const cg = requireCgroup(s, 'update');
      let result: ApplyResult;
      try {
        result = cg.update(r as CgroupResources);
      } catch (e) {
        throw cgroupFailure(this.id, 'update', e);
      }
      s.config = {
        ...s.config,
        linux: { ...s.config.linux, resources: mergeResources(s.config.linux?.resources ?? {}, r) },
      };
      d.write(s);
      return result;
    } finally {
      d.unlock();
    }
  }

  /**
   * Delete the container: its cgroup, its state. A running container needs
   * `force`, which kills it first. poststop hooks run last.
   */
  async delete(opts: { force?: boolean; onWarning?: (m: string) => void } = {}): Promise<void> {
    const d = this.dirHandle();
    d.lock();
    try {
      const s = d.read();
      if (!s) {
        // A create that died before writing its state: nothing else exists yet.
        d.remove();
        return;
      }
      const status = liveStatus(s, d);
      if ((status === 'running' || status === 'paused') && !opts.force) {
        throw new ContainerError(
          'InvalidState',
          `cannot delete container "${this.id}" that is not stopped: ${status}`,
          { id: this.id },
        );
      }
      await this.destroy(s, d, opts.onWarning);
    } finally {
      d.unlock();
    }
  }

  private async destroy(s: StoredState, d: StateDir, onWarning?: (m: string) => void): Promise<void> {
    const cg = cgroupOf(s);
    if (processStartTime(s.pid) === s.pidStartTime && s.pid > 0) {
      try {
        process.kill(s.pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    try {
      await cg?.destroy();
    } catch (e) {
      throw new ContainerError('System', `container "${this.id}": ${errMessage(e)}`, {
        id: this.id,
        cause: e,
      });
    }
    const wasCreated = s.status !== 'creating';
    d.remove();
    if (wasCreated) {
      try {
        await runHostHooks('poststop', s.config.hooks?.poststop, hookState(s, 'stopped'));
      } catch (e) {
        onWarning?.(errMessage(e));
      }
    }
  }
}

/**
 * The executor's messages, with the clone's pid first: the executor (which
 * reports the pid) and the process it cloned (which sends syncs) write to one
 * socket, so a sync can overtake the pid. Syncs of the executor itself (before
 * its clone) pass straight through.
 */
async function* pidFirst(e: ExecutorProcess): AsyncGenerator<ExecutorMessage> {
  let havePid = false;
  const held: ExecutorMessage[] = [];
  for (let m = await e.next(); m; m = await e.next()) {
    if (m.type === 'pid') {
      havePid = true;
      yield m;
      yield* held.splice(0);
    } else if (!havePid && m.type === 'sync' && m.id !== SYNC.TIMENS) held.push(m);
    else yield m;
  }
  yield* held;
}

/** runc's owner field: empty for root, else the user's name (or uid). */
function ownerName(): string {
  const uid = process.geteuid?.() ?? 0;
  if (uid === 0) return '';
  try {
    // node:os only here (not root): a start does not load it.
    return process.getBuiltinModule('node:os').userInfo().username;
  } catch {
    return String(uid);
  }
}

/** Whether this process may create the cgroup: every hierarchy's nearest existing ancestor is writable. */
function cgroupWritable(cg: CgroupManager): boolean {
  return Object.values(cg.dirs()).every((dir) => {
    let d = dir;
    while (!existsSync(d)) d = dirname(d);
    try {
      accessSync(d, fsc.W_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** The container's cgroup; none for a rootless container that could not have one. */
function cgroupOf(s: StoredState): CgroupManager | undefined {
  return s.cgroupPath ? openCgroup({ path: s.cgroupPath }) : undefined;
}

function liveStatus(s: StoredState, d: StateDir): ContainerStatus {
  if (s.pid <= 0) return s.status === 'creating' ? 'creating' : 'stopped';
  const start = processStartTime(s.pid);
  if (start === undefined || start !== s.pidStartTime) return 'stopped';
  if (s.status === 'creating') return 'creating';
  if (cgroupFrozen(s)) return 'paused';
  if (existsSync(d.fifo)) return 'created';
  return 'running';
}

/** Compile linux.seccomp (if any) to BPF; a bad profile is an InvalidConfig naming the rule. */
function compileFilter(config: RuntimeConfig, onWarning?: (m: string) => void): CompiledFilter | undefined {
  const section = config.linux?.seccomp;
  if (!section) return undefined;
  try {
    const r = compileSeccomp(section, onWarning ? { onWarning } : {});
    return { filter: r.filter, flags: r.flags };
  } catch (e) {
    if (e instanceof SeccompError) throw new ContainerError('InvalidConfig', e.message, { cause: e });
    throw e;
  }
}

function readSetgroups(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/setgroups`, 'utf8').trim();
  } catch {
    return 'allow';
  }
}

type IdMapping = { containerID: number; hostID: number; size: number };

/** Check id mappings: non-empty sizes, no overlap on either side. */
export function validateIdMappings(maps: readonly IdMapping[], field: string): void {
  maps.forEach((m, i) => {
    if (m.size <= 0) throw new ContainerError('InvalidConfig', `${field}[${i}].size: must be at least 1`);
    maps.slice(0, i).forEach((o, j) => {
      const overlap = (a: number, b: number, n: number, k: number) => a < b + k && b < a + n;
      if (overlap(m.containerID, o.containerID, m.size, o.size)) {
        throw new ContainerError('InvalidConfig', `${field}[${i}]: container ids overlap ${field}[${j}]`);
      }
      if (overlap(m.hostID, o.hostID, m.size, o.size)) {
        throw new ContainerError('InvalidConfig', `${field}[${i}]: host ids overlap ${field}[${j}]`);
      }
    });
  });
}

/**
 * Write the init's gid_map and uid_map. As root: the files directly. As an
 * ordinary user: a single mapping of the caller's own id is written directly
 * after setgroups "deny"; anything else goes through newuidmap/newgidmap.
 */
function writeIdMaps(pid: number, config: RuntimeConfig): void {
  const uid = config.linux?.uidMappings ?? [];
  const gid = config.linux?.gidMappings ?? [];
  const text = (ms: readonly IdMapping[]) =>
    ms.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join('');
  const write = (file: string, data: string) => {
    try {
      writeFileSync(`/proc/${pid}/${file}`, data);
    } catch (e) {
      throw new ContainerError(
        'StartFailed',
        `write ${file} ${JSON.stringify(data.trim())}: ${(e as NodeJS.ErrnoException).code ?? errMessage(e)}`,
        { step: `write ${file}`, cause: e },
      );
    }
  };
  const euid = process.geteuid?.() ?? 0;
  if (euid === 0) {
    write('gid_map', text(gid));
    write('uid_map', text(uid));
    return;
  }
  const own = (ms: readonly IdMapping[], id: number) =>
    ms.length === 1 && ms[0]?.hostID === id && ms[0]?.size === 1;
  if (own(uid, euid) && own(gid, process.getegid?.() ?? 0)) {
    write('setgroups', 'deny');
    write('gid_map', text(gid));
    write('uid_map', text(uid));
    return;
  }
  const helper = (tool: string, ms: readonly IdMapping[]) => {
    const args = [
      String(pid),
      ...ms.flatMap((m) => [String(m.containerID), String(m.hostID), String(m.size)]),
    ];
    try {
      // child_process only here (rootless with several id ranges): a start does not load it.
      const { execFileSync } = process.getBuiltinModule('node:child_process');
      execFileSync(tool, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      const err = (e as { stderr?: Buffer }).stderr?.toString().trim();
      throw new ContainerError('StartFailed', `${tool} ${args.join(' ')}: ${err || errMessage(e)}`, {
        step: tool,
        cause: e,
      });
    }
  };
  helper('newgidmap', gid);
  helper('newuidmap', uid);
}

/** Write the time namespace offsets (seconds and nanoseconds) of the executor's new time namespace. */
function writeTimeOffsets(pid: number, config: RuntimeConfig): void {
  const o = config.linux?.timeOffsets ?? {};
  const lines: string[] = [];
  for (const clock of ['monotonic', 'boottime'] as const) {
    const v = o[clock];
    if (v) lines.push(`${clock} ${v.secs ?? 0} ${v.nanosecs ?? 0}`);
  }
  for (const line of lines) {
    try {
      writeFileSync(`/proc/${pid}/timens_offsets`, `${line}\n`);
    } catch (e) {
      throw new ContainerError(
        'StartFailed',
        `write timens_offsets "${line}": ${(e as NodeJS.ErrnoException).code ?? errMessage(e)}`,
        {
          step: 'timens_offsets',
          cause: e,
        },
      );
    }
  }
}

function signalInit(s: StoredState, sig: number): void {
  let fd: number;
  try {
    fd = pidfdOpen(s.pid);
  } catch (e) {
    throw new ContainerError('InvalidState', `cannot kill container "${s.id}": it is not running`, {
      id: s.id,
      cause: e,
    });
  }
  try {
    if (processStartTime(s.pid) !== s.pidStartTime) {
      throw new ContainerError('InvalidState', `cannot kill container "${s.id}": it is not running`, {
        id: s.id,
      });
    }
    pidfdSendSignal(fd, sig);
  } finally {
    closeFd(fd);
  }
}

/**
 * The console socket of a container or exec with process.terminal: `theirs` goes to the executor
 * (connected to the caller's --console-socket, or one end of our own socketpair), `ours` is the
 * other end of that pair, and `master` the pty master received on it.
 */
interface ConsoleFds {
  theirs: number | undefined;
  ours: number | undefined;
  master: number | undefined;
}

function openConsole(path: string | undefined): ConsoleFds {
  if (path !== undefined) return { theirs: connectConsoleSocket(path), ours: undefined, master: undefined };
  const [ours, theirs] = consoleSocketPair();
  return { theirs, ours, master: undefined };
}

/** Close the fds of `con` (only `theirs`, once the executor has its copy). */
function closeConsole(con: ConsoleFds | undefined, which: 'all' | 'theirs' = 'all'): void {
  if (!con) return;
  const keys = which === 'all' ? (['theirs', 'ours', 'master'] as const) : (['theirs'] as const);
  for (const k of keys) {
    const fd = con[k];
    con[k] = undefined;
    if (fd !== undefined) closeFd(fd);
  }
}

/** At READY the init has sent its master: take it off our end of the pair. */
function receiveMaster(con: ConsoleFds | undefined): void {
  if (con?.ours === undefined) return;
  con.master = receiveFd(con.ours);
  closeFd(con.ours);
  con.ours = undefined;
}

function checkConsoleOptions(terminal: boolean, consoleSocket: string | undefined, what: string): void {
  if (consoleSocket !== undefined && !terminal) {
    throw new ContainerError(
      'InvalidArgument',
      `${what}: cannot use a console socket (${consoleSocket}) when process.terminal is false`,
    );
  }
}

/** With a terminal the pty replaces stdio: the container never sees our own. */
function defaultStdio(terminal: boolean): readonly [StdioSpec, StdioSpec, StdioSpec] {
  return terminal ? ['ignore', 'ignore', 'ignore'] : ['inherit', 'inherit', 'inherit'];
}

async function launch(
  opts: CreateOptions,
  mode: 'create' | 'run',
): Promise<{ container: Container; exited?: Promise<ExitInfo>; console?: number }> {
  const store = new StateStore(opts.root ?? defaultRoot());
  const bundle = resolve(opts.bundle);
  const config = loadBundleConfig(bundle);
  if (opts.consoleSize && config.process?.terminal && !config.process.consoleSize) {
    config.process.consoleSize = { height: opts.consoleSize.height, width: opts.consoleSize.width };
  }
  if (!config.root?.path) throw new ContainerError('InvalidConfig', 'config.json: root.path: required');
  const rootfs = isAbsolute(config.root.path) ? config.root.path : join(bundle, config.root.path);
  try {
    if (!statSync(rootfs).isDirectory()) throw new Error('not a directory');
  } catch (e) {
    throw new ContainerError('InvalidConfig', `root.path: ${rootfs} is not a directory (${errMessage(e)})`);
  }
  const preserveFds = opts.preserveFds ?? 0;
  if (!Number.isInteger(preserveFds) || preserveFds < 0) {
    throw new ContainerError(
      'InvalidArgument',
      `--preserve-fds: must be a non-negative integer, got ${preserveFds}`,
    );
  }
  const id = opts.id;
  let cgroupPath: string;
  let cg: CgroupManager;
  try {
    cgroupPath = resolveCgroupPath(config.linux?.cgroupsPath, id);
    cg = openCgroup({ path: cgroupPath });
  } catch (e) {
    throw new ContainerError('InvalidConfig', `linux.cgroupsPath: ${errMessage(e)}`, { cause: e });
  }
  const layout = detectLayout();
  // An ordinary user (rootless) gets a cgroup only where one was delegated to it.
  const withCgroup = !isRootless() || cgroupWritable(cg);
  if (!withCgroup) {
    const limits = Object.keys(config.linux?.resources ?? {}).filter((k) => k !== 'devices');
    opts.onWarning?.(
      `rootless: no cgroup is writable by uid ${process.geteuid?.()} here, so the container gets no cgroup of its own` +
        (limits.length ? `; its resource limits (${limits.join(', ')}) are not applied` : ''),
    );
    cgroupPath = '';
  }
  const fifoFdNum = mode === 'create' ? 3 + preserveFds : undefined;
  const terminal = config.process?.terminal === true;
  if (terminal && mode === 'create' && !opts.consoleSocket) {
    throw new ContainerError(
      'InvalidArgument',
      `container "${id}": cannot allocate a tty if the container will detach without a console socket (--console-socket)`,
    );
  }
  checkConsoleOptions(terminal, opts.consoleSocket, `container "${id}"`);
  const consoleFdNum = terminal ? 3 + preserveFds + (mode === 'create' ? 1 : 0) : undefined;
  const syncFd = 3 + preserveFds + (mode === 'create' ? 1 : 0) + (terminal ? 1 : 0);
  validateIdMappings(config.linux?.uidMappings ?? [], 'linux.uidMappings');
  validateIdMappings(config.linux?.gidMappings ?? [], 'linux.gidMappings');
  // A namespace to join must exist and be of its type, before anything is created.
  for (const [i, ns] of (config.linux?.namespaces ?? []).entries()) {
    if (!ns.path) continue;
    try {
      checkNamespacePath(ns.path, ns.type, `linux.namespaces[${i}].path`);
    } catch (err) {
      if (isNamespaceError(err)) throw new ContainerError('InvalidConfig', err.message, { cause: err });
      throw err;
    }
  }
  const rootlessDeny =
    isRootless() &&
    (config.linux?.gidMappings ?? []).length === 1 &&
    config.linux?.gidMappings?.[0]?.size === 1;
  const seccomp = compileFilter(config, opts.onWarning);
  // Plan first: a config the planner rejects creates nothing.
  const program = planInit({
    seccomp,
    rootless: isRootless(),
    setgroups: !rootlessDeny,
    config,
    rootfs,
    bundle,
    noPivot: opts.noPivot ?? false,
    preserveFds,
    fifoFd: fifoFdNum,
    consoleFd: consoleFdNum,
    syncFd,
    cgroup: !withCgroup
      ? { version: 'none' }
      : layout === 'unified'
        ? { version: 2 }
        : { version: 1, binds: cgroupBinds(cg) },
    capLastCap: capLastCap(),
  });

  // Connect before anything exists: a console socket that is not there creates nothing.
  const con = terminal ? openConsole(opts.consoleSocket) : undefined;
  let d: StateDir;
  try {
    d = store.create(id);
  } catch (err) {
    closeConsole(con);
    throw err;
  }
  const s: StoredState = {
    ociVersion: OCI_VERSION,
    id,
    status: 'creating',
    pid: 0,
    bundle,
    rootfs,
    created: new Date().toISOString(),
    owner: ownerName(),
    cgroupPath,
    config,
  };
  if (config.annotations) s.annotations = config.annotations as Record<string, string>;
  let e: ExecutorProcess | undefined;
  let fifoFd: number | undefined;
  let exited: Promise<ExitInfo> | undefined;
  const container = new Container(store, id);
  try {
    d.write(s);
    try {
      if (withCgroup) {
        cg.create();
        cg.apply(cgroupResources(config));
      }
    } catch (err) {
      throw new ContainerError('StartFailed', `container "${id}": cgroup: ${errMessage(err)}`, {
        id,
        step: 'cgroup',
        cause: err,
      });
    }
    const extraFds = Array.from({ length: preserveFds }, (_, i) => 3 + i);
    if (mode === 'create') {
      call('mknodat', [AT.FDCWD, d.fifo, S.IFIFO | 0o600, 0], { op: `mkfifo ${d.fifo}` });
      fifoFd = openSync(d.fifo, fsc.O_RDONLY | fsc.O_NONBLOCK);
      extraFds.push(fifoFd);
    }
    if (con?.theirs !== undefined) extraFds.push(con.theirs);
    e = spawnExecutor({ stdio: opts.stdio ?? defaultStdio(terminal), extraFds });
    closeConsole(con, 'theirs');
    if (withCgroup) cg.addProcess(e.pid);
    e.send(program);
    const namespaces = (config.linux?.namespaces ?? []).filter((n) => !n.path).map((n) => n.type);
    let ready = false;
    let execDone = false;
    for await (const m of pidFirst(e)) {
      if (m.type === 'pid') {
        s.pid = m.pid;
        const st = processStartTime(m.pid);
        if (st !== undefined) s.pidStartTime = st;
        exited = waitChild(m.pid);
        d.write(s);
        if (config.process?.oomScoreAdj !== undefined) {
          try {
            writeFileSync(`/proc/${m.pid}/oom_score_adj`, String(config.process.oomScoreAdj));
          } catch (err) {
            throw new ContainerError(
              'StartFailed',
              `container "${id}": set oom_score_adj ${config.process.oomScoreAdj}: ${(err as NodeJS.ErrnoException).code ?? errMessage(err)}`,
              { id, step: 'oom_score_adj', cause: err },
            );
          }
        }
      } else if (m.type === 'sync' && m.id === SYNC.USERMAP) {
        writeIdMaps(s.pid, config);
        e.reply(0);
      } else if (m.type === 'sync' && m.id === SYNC.TIMENS) {
        writeTimeOffsets(e.pid, config);
        e.reply(0);
      } else if (m.type === 'sync' && m.id === SYNC.MOUNTS) {
        const hs = hookState(s, 'creating');
        await runHostHooks('prestart', config.hooks?.prestart, hs);
        await runHostHooks('createRuntime', config.hooks?.createRuntime, hs);
        if (opts.onCreated) {
          try {
            await opts.onCreated({ id, pid: s.pid, bundle });
          } catch (err) {
            throw new ContainerError('StartFailed', `container "${id}": ${errMessage(err)}`, {
              id,
              step: 'onCreated',
              cause: err,
            });
          }
        }
        await runContainerHooks('createContainer', config.hooks?.createContainer, hs, {
          pid: s.pid,
          namespaces,
          addToCgroup: (pid) => (withCgroup ? cg.addProcess(pid) : undefined),
        });
        e.reply(0);
      } else if (m.type === 'sync' && m.id === SYNC.READY) {
        ready = true;
        receiveMaster(con);
        if (mode === 'create') {
          s.status = 'created';
          d.write(s);
          if (opts.pidFile) writePidFile(opts.pidFile, s.pid);
          e.reply(0);
          break;
        }
        await runContainerHooks('startContainer', config.hooks?.startContainer, hookState(s, 'created'), {
          pid: s.pid,
          namespaces,
          addToCgroup: (pid) => (withCgroup ? cg.addProcess(pid) : undefined),
        });
        s.status = 'running';
        d.write(s);
        if (opts.pidFile) writePidFile(opts.pidFile, s.pid);
        e.reply(0);
      } else if (m.type === 'error') {
        const pe = new ProgramError(program, m.index, m.errno);
        throw new ContainerError('StartFailed', `container "${id}": ${pe.message}`, {
          id,
          step: pe.op,
          cause: pe,
        });
      }
    }
    if (mode === 'run') execDone = ready;
    if (!ready) {
      const code = await e.exited();
      throw new ContainerError(
        'StartFailed',
        `container "${id}": the container process ended during setup (executor exit ${code})`,
        {
          id,
        },
      );
    }
    e.close();
    if (fifoFd !== undefined) closeSync(fifoFd);
    fifoFd = undefined;
    d.unlock();
    if (mode === 'run' && execDone) {
      try {
        await runHostHooks('poststart', config.hooks?.poststart, hookState(s, 'running'));
      } catch (err) {
        opts.onWarning?.(errMessage(err));
      }
    }
    const r: { container: Container; exited?: Promise<ExitInfo>; console?: number } = { container };
    if (exited) r.exited = exited;
    if (con?.master !== undefined) r.console = con.master;
    if (con) con.master = undefined;
    return r;
  } catch (err) {
    closeConsole(con);
    e?.kill();
    e?.close();
    if (fifoFd !== undefined) closeSync(fifoFd);
    if (s.pid > 0) {
      try {
        process.kill(s.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    try {
      if (withCgroup) await cg.destroy();
    } catch (cleanup) {
      opts.onWarning?.(`cleanup of cgroup ${cgroupPath} failed: ${errMessage(cleanup)}`);
    }
    d.remove();
    if (exited) await exited.catch(() => undefined);
    if (isContainerError(err)) throw err;
    if (isSysError(err))
      throw new ContainerError('StartFailed', `container "${id}": ${err.message}`, {
        id,
        step: err.op,
        cause: err,
      });
    throw err;
  }
}
