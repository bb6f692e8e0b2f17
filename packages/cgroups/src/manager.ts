import { mkdirSync, rmdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CgroupError, errnoOf, fsError } from './errors.js';
import {
  type OomEvent,
  type OomEventsOptions,
  oomBaseline,
  oomEvents,
  oomSourceV1,
  oomSourceV2,
} from './events.js';
import {
  cgroupTreeDeepestFirst,
  exists,
  procsRecursive,
  readFile,
  readKeyedNumber,
  sleep,
  writeFile,
} from './fsutil.js';
import { type CgroupLayout, DEFAULT_ROOT, detectLayout, findV1Mounts, type V1Mount } from './layout.js';
import { checkCgroupPath } from './path.js';
import { type ApplyResult, type LinuxResources, V1_FILES, V2_FILES, validateResources } from './resources.js';
import { type CgroupStats, statsV1, statsV2 } from './stats.js';
import { applyV1, freezerStateV1, freezeV1, thawTreeV1, thawV1 } from './v1.js';
import { applyV2, enableControllers, freezerStateV2, setFrozenV2 } from './v2.js';

/** What {@link CgroupManager.state} reports. */
export type FreezerState = 'frozen' | 'thawed' | 'freezing';

/** Options of {@link CgroupManager.destroy}. */
export interface DestroyOptions {
  /** How long to wait for processes to die and directories to become removable; 10 000 ms by default. */
  timeoutMs?: number;
}

/** Manages one cgroup (the same path in every hierarchy). */
export interface CgroupManager {
  /** The layout detected when the manager was opened. */
  readonly layout: CgroupLayout;
  /** The cgroup path, e.g. `/nsinit/c1`. */
  readonly path: string;
  /**
   * Absolute directories this cgroup has or will have, keyed by controller name (`"memory"`,
   * `"cpu"`, ..., `"name=systemd"`, and `"unified"` for the v2 directory in hybrid/unified layouts).
   * Co-mounted v1 controllers (e.g. `cpu,cpuacct`) map to the same directory.
   */
  dirs(): Record<string, string>;
  /**
   * Create the cgroup in every hierarchy (`mkdir -p`). v1 cpuset: empty `cpuset.cpus`/`cpuset.mems`
   * (of the new directory and its ancestors) are copied from the parent. Unified layout: the
   * parents' `cgroup.subtree_control` gets every available controller. Directories made by a
   * failed call are removed again.
   */
  create(): void;
  /** Move a process into the cgroup: writes `pid` to `cgroup.procs` in every hierarchy (also the unified dir in hybrid). */
  addProcess(pid: number): void;
  /**
   * Validate, then write the limits. v1 (and hybrid) use the v1 files; unified uses the v2 files
   * and an eBPF program for device rules. Everything is checked (input, controllers, files, values
   * against the current state) before the first write; only the kernel can still refuse a value
   * half-way, and the error then names the field, the data, the file and the errno.
   * @throws CgroupError `Invalid` naming the field for bad input, `Unsupported` when the controller is
   *   missing, or the kernel's verdict naming data, file and errno
   */
  apply(r: LinuxResources): ApplyResult;
  /**
   * Change the limits of a live cgroup: like {@link CgroupManager.apply}, only the given fields are
   * written, ordered against the current values (v1 memory vs memory+swap; v2 `memory.swap.max`
   * from the current `memory.max` when only `swap` is given), and `memory.checkBeforeUpdate`
   * refuses a limit not above the current usage.
   * @throws CgroupError `NotFound` when the cgroup does not exist, else as `apply()`
   */
  update(r: LinuxResources): ApplyResult;
  /**
   * Statistics of the cgroup (v1 or v2) in one shape; see `toRuncStats` for runc's JSON.
   * @throws CgroupError `NotFound` when the cgroup does not exist
   */
  stats(): CgroupStats;
  /**
   * OOM events as they happen: v1 through an eventfd on `memory.oom_control`, v2 through inotify on
   * `memory.events`, both backed by polling the `oom_kill` counter every 100 ms. The counter is
   * read when this is called, so kills after that and before the first `next()` are reported.
   * Ends when the cgroup is removed or `signal` aborts.
   */
  oomEvents(opts?: OomEventsOptions): AsyncIterable<OomEvent>;
  /** The freezer state: v1 `freezer.state`, v2 `cgroup.events` (`frozen 1`) and `cgroup.freeze`. */
  state(): FreezerState;
  /** Every pid in the cgroup and its descendants, from every hierarchy, sorted. */
  pids(): number[];
  /**
   * Signal every process (default `SIGKILL`). `SIGKILL` uses `cgroup.kill` where it exists (v2, and
   * the unified dir in hybrid); otherwise the cgroup is frozen, each pid signalled, and thawed
   * (left frozen for other signals if it was frozen before).
   */
  kill(signal?: NodeJS.Signals | number): void;
  /** Freeze: v1 `freezer.state` with FREEZING retries; v2 `cgroup.freeze` and wait for `frozen 1`. */
  freeze(): void;
  /** Thaw (see {@link CgroupManager.freeze}). */
  thaw(): void;
  /** How many processes the OOM killer killed in this cgroup (v1 `memory.oom_control`, v2 `memory.events`). */
  oomKillCount(): number;
  /** Whether the directory exists in at least one hierarchy. */
  exists(): boolean;
  /**
   * Kill everything with SIGKILL, wait until empty, and remove every directory (nested cgroups
   * first, retrying EBUSY until the timeout). Succeeds when already gone; removes every directory it
   * can even when it then throws `Busy`.
   */
  destroy(opts?: DestroyOptions): Promise<void>;
}

/** Options of {@link openCgroup}. */
export interface OpenCgroupOptions {
  /** Absolute cgroup path, e.g. from {@link resolveCgroupPath}. */
  path: string;
  /** Cgroup mount root, `/sys/fs/cgroup` by default. */
  root?: string;
}

/**
 * Open a manager for one cgroup. Detects the layout and the v1 mounts; creates nothing.
 * @throws CgroupError `Invalid` (op `resolve`) for a relative path or `/`, `NotFound` (op `detect`) for a missing root
 */
export function openCgroup(opts: OpenCgroupOptions): CgroupManager {
  const cgPath = checkCgroupPath(opts.path);
  const root = resolve(opts.root ?? DEFAULT_ROOT);
  const layout = detectLayout(root);
  const mounts = layout === 'unified' ? [] : findV1Mounts(root);
  const unifiedMount = layout === 'unified' ? root : layout === 'hybrid' ? join(root, 'unified') : undefined;
  return new Manager(layout, cgPath, mounts, unifiedMount);
}

function signalEach(pids: readonly number[], signal: NodeJS.Signals | number): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch (err) {
      if (errnoOf(err) !== 'ESRCH') throw err;
    }
  }
}

function isSigkill(signal: NodeJS.Signals | number): boolean {
  return signal === 'SIGKILL' || signal === 9;
}

class Manager implements CgroupManager {
  private readonly v1Dirs: Record<string, string> = {};
  private readonly unifiedDir: string | undefined;

  constructor(
    readonly layout: CgroupLayout,
    readonly path: string,
    private readonly mounts: readonly V1Mount[],
    private readonly unifiedMount: string | undefined,
  ) {
    for (const m of mounts) {
      for (const c of m.controllers) this.v1Dirs[c] = this.under(m.mountpoint);
    }
    this.unifiedDir = unifiedMount === undefined ? undefined : this.under(unifiedMount);
  }

  private under(mountpoint: string): string {
    return join(mountpoint, this.path);
  }

  dirs(): Record<string, string> {
    const out: Record<string, string> = { ...this.v1Dirs };
    if (this.unifiedDir !== undefined) out['unified'] = this.unifiedDir;
    return out;
  }

  private uniqueDirs(): string[] {
    return [...new Set(Object.values(this.dirs()))];
  }

  create(): void {
    const made: string[] = [];
    try {
      for (const m of this.mounts) {
        this.mkdirChain(m.mountpoint, made, m.controllers.includes('cpuset'), false);
      }
      if (this.unifiedMount !== undefined) {
        this.mkdirChain(this.unifiedMount, made, false, this.layout === 'unified');
      }
    } catch (err) {
      for (const d of made.reverse()) {
        try {
          rmdirSync(d);
        } catch {
          // best effort: the original error matters more
        }
      }
      throw err;
    }
  }

  private mkdirChain(base: string, made: string[], cpuset: boolean, enable: boolean): void {
    let cur = base;
    for (const seg of this.path.split('/').filter((s) => s !== '')) {
      if (enable) enableControllers(cur);
      const parent = cur;
      cur = join(cur, seg);
      try {
        mkdirSync(cur);
        made.push(cur);
      } catch (err) {
        if (errnoOf(err) !== 'EEXIST') throw fsError('mkdir', cur, err);
      }
      if (cpuset) {
        for (const f of ['cpuset.cpus', 'cpuset.mems']) {
          if (readFile(join(cur, f)).trim() === '') {
            writeFile(join(cur, f), readFile(join(parent, f)).trim());
          }
        }
      }
    }
  }

  addProcess(pid: number): void {
    if (!Number.isSafeInteger(pid) || pid <= 0) {
      throw new CgroupError('Invalid', 'write', `addProcess: pid must be a positive integer, got ${pid}`);
    }
    for (const dir of this.uniqueDirs()) writeFile(join(dir, 'cgroup.procs'), String(pid));
  }

  apply(r: LinuxResources): ApplyResult {
    const result: ApplyResult = { applied: [], skipped: [] };
    if (this.layout === 'unified' && this.unifiedDir !== undefined) {
      applyV2(this.unifiedDir, validateResources(r, V2_FILES), result);
    } else {
      const opts = this.unifiedDir === undefined ? {} : { unifiedDir: this.unifiedDir };
      applyV1(this.v1Dirs, validateResources(r, V1_FILES), result, opts);
    }
    return result;
  }

  update(r: LinuxResources): ApplyResult {
    if (!this.exists()) {
      throw new CgroupError('NotFound', 'write', `update: the cgroup ${this.path} does not exist`, {
        path: this.path,
        errno: 'ENOENT',
      });
    }
    return this.apply(r);
  }

  stats(): CgroupStats {
    if (!this.exists()) {
      throw new CgroupError('NotFound', 'read', `stats: the cgroup ${this.path} does not exist`, {
        path: this.path,
        errno: 'ENOENT',
      });
    }
    if (this.layout === 'unified') return statsV2(this.unifiedDir ?? '');
    return statsV1(this.v1Dirs);
  }

  oomEvents(opts: OomEventsOptions = {}): AsyncIterable<OomEvent> {
    let src: ReturnType<typeof oomSourceV1>;
    let file: string;
    if (this.layout === 'unified') {
      const dir = this.unifiedDir ?? '';
      file = join(dir, 'memory.events');
      if (exists(dir) && !exists(file)) {
        throw new CgroupError(
          'Unsupported',
          'read',
          `oom events requested but the memory controller is not enabled for ${dir}`,
          { path: file },
        );
      }
      src = oomSourceV2(dir);
    } else {
      const dir = this.v1Dirs['memory'];
      if (dir === undefined) {
        throw new CgroupError(
          'Unsupported',
          'read',
          'oom events requested but the memory controller is not mounted',
        );
      }
      file = join(dir, 'memory.oom_control');
      src = oomSourceV1(dir);
    }
    const baseline = oomBaseline(src, file);
    return { [Symbol.asyncIterator]: () => oomEvents(src, baseline, opts) };
  }

  state(): FreezerState {
    const kind = this.freezerKind();
    if (kind === 'v1') {
      const s = freezerStateV1(this.v1Dirs['freezer'] ?? '');
      return s === 'FROZEN' ? 'frozen' : s === 'FREEZING' ? 'freezing' : 'thawed';
    }
    if (kind === 'v2') return freezerStateV2(this.unifiedDir ?? '');
    throw new CgroupError(
      'Unsupported',
      'read',
      'freezer state requested but the freezer controller is not mounted (and no cgroup.freeze)',
    );
  }

  pids(): number[] {
    const all = new Set<number>();
    for (const dir of this.uniqueDirs()) for (const pid of procsRecursive(dir)) all.add(pid);
    return [...all].sort((a, b) => a - b);
  }

  kill(signal: NodeJS.Signals | number = 'SIGKILL'): void {
    const killFile = this.unifiedDir === undefined ? undefined : join(this.unifiedDir, 'cgroup.kill');
    if (isSigkill(signal) && killFile !== undefined && exists(killFile)) {
      writeFile(killFile, '1');
      if (this.layout === 'unified') return;
      // Hybrid: tasks frozen by the v1 freezer only die once thawed, and a task may sit in v1
      // hierarchies only (moved there by someone else): signal what is left directly.
      const freezer = this.v1Dirs['freezer'];
      if (freezer !== undefined) thawTreeV1(freezer);
      signalEach(this.pids(), signal);
      return;
    }
    if (this.pids().length === 0) return;
    const kind = this.freezerKind();
    const freezerDir = kind === 'v1' ? this.v1Dirs['freezer'] : this.unifiedDir;
    if (kind === undefined || freezerDir === undefined || !exists(freezerDir)) {
      signalEach(this.pids(), signal);
      return;
    }
    const wasFrozen = this.isFrozen(kind);
    try {
      this.freeze();
    } catch {
      // Like runc: signal anyway, just without the guarantee that nothing forks meanwhile.
    }
    try {
      signalEach(this.pids(), signal);
    } finally {
      if (isSigkill(signal) && kind === 'v1') thawTreeV1(freezerDir);
      else if (!wasFrozen || isSigkill(signal)) this.thaw();
    }
  }

  private freezerKind(): 'v1' | 'v2' | undefined {
    if (this.layout !== 'unified' && this.v1Dirs['freezer'] !== undefined) return 'v1';
    if (this.unifiedDir === undefined) return undefined;
    if (this.layout === 'unified') return 'v2';
    return exists(join(this.unifiedDir, 'cgroup.freeze')) ? 'v2' : undefined;
  }

  private isFrozen(kind: 'v1' | 'v2'): boolean {
    if (kind === 'v1') return freezerStateV1(this.v1Dirs['freezer'] ?? '') !== 'THAWED';
    return readFile(join(this.unifiedDir ?? '', 'cgroup.freeze')).trim() === '1';
  }

  private setFrozen(frozen: boolean): void {
    const kind = this.freezerKind();
    if (kind === undefined) {
      throw new CgroupError(
        'Unsupported',
        'write',
        `${frozen ? 'freeze' : 'thaw'} requested but the freezer controller is not mounted (and no cgroup.freeze)`,
      );
    }
    if (kind === 'v1') {
      const dir = this.v1Dirs['freezer'] ?? '';
      if (frozen) freezeV1(dir);
      else thawV1(dir);
    } else {
      setFrozenV2(this.unifiedDir ?? '', frozen);
    }
  }

  freeze(): void {
    this.setFrozen(true);
  }

  thaw(): void {
    this.setFrozen(false);
  }

  oomKillCount(): number {
    if (this.layout === 'unified') {
      const dir = this.unifiedDir ?? '';
      const file = join(dir, 'memory.events');
      if (exists(dir) && !exists(file)) {
        throw new CgroupError(
          'Unsupported',
          'read',
          `oom kill count requested but the memory controller is not enabled for ${dir}`,
          { path: file },
        );
      }
      return readKeyedNumber(file, 'oom_kill');
    }
    const dir = this.v1Dirs['memory'];
    if (dir === undefined) {
      throw new CgroupError(
        'Unsupported',
        'read',
        'oom kill count requested but the memory controller is not mounted',
      );
    }
    return readKeyedNumber(join(dir, 'memory.oom_control'), 'oom_kill');
  }

  exists(): boolean {
    return this.uniqueDirs().some((d) => exists(d));
  }

  async destroy(opts: DestroyOptions = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    if (!this.exists()) return;
    let delay = 2;
    let stuck: number[] = [];
    for (;;) {
      try {
        this.kill('SIGKILL');
      } catch (err) {
        if (!(err instanceof CgroupError && err.code === 'NotFound')) throw err;
      }
      stuck = this.pids();
      if (stuck.length === 0 || Date.now() > deadline) break;
      await sleep(delay);
      delay = Math.min(delay * 2, 100);
    }
    // Remove every directory that can be removed, even if some processes refuse to die.
    const errors: CgroupError[] = [];
    for (const top of this.uniqueDirs()) {
      for (const d of cgroupTreeDeepestFirst(top)) {
        try {
          await this.rmdirRetry(d, stuck.length === 0 ? deadline : 0);
        } catch (err) {
          errors.push(err instanceof CgroupError ? err : fsError('rmdir', d, err));
        }
      }
    }
    if (stuck.length > 0) {
      throw new CgroupError(
        'Busy',
        'rmdir',
        `destroy ${this.path}: processes ${stuck.join(', ')} still running after SIGKILL and ${timeoutMs} ms`,
        { path: this.path, errno: 'EBUSY' },
      );
    }
    const first = errors[0];
    if (first !== undefined) {
      if (errors.length === 1) throw first;
      throw new CgroupError(first.code, 'rmdir', errors.map((e) => e.message).join('; '), {
        path: first.path ?? this.path,
        errno: first.errno ?? 'EUNKNOWN',
        cause: errors,
      });
    }
  }

  private async rmdirRetry(dir: string, deadline: number): Promise<void> {
    let delay = 2;
    for (;;) {
      try {
        rmdirSync(dir);
        return;
      } catch (err) {
        const errno = errnoOf(err);
        if (errno === 'ENOENT') return;
        if ((errno !== 'EBUSY' && errno !== 'ENOTEMPTY') || Date.now() > deadline) {
          throw fsError('rmdir', dir, err);
        }
      }
      try {
        this.kill('SIGKILL');
      } catch {
        // the rmdir retry reports what matters
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 100);
    }
  }
}
