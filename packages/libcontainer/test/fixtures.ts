// Shared helpers of the real-kernel container tests: a busybox rootfs built once, bundles, state
// roots, unique ids, captured output, and cleanup that leaves no container, cgroup or temp dir behind.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openCgroup } from '@tsc/cgroups';
import {
  Container,
  type ContainerError,
  defaultSpec,
  isContainerError,
  type RuntimeConfig,
} from '../src/index.js';

/** Why the container tests are skipped, or undefined when they can run. */
export function skipUnlessRoot(): string | undefined {
  if (process.platform !== 'linux') return 'container tests need Linux';
  if (process.getuid?.() !== 0) return 'container tests need root';
  if (!fs.existsSync('/bin/busybox')) return 'container tests need busybox-static (/bin/busybox)';
  return undefined;
}

/** True when the container tests cannot run here (for `describe.skipIf`). */
export const notRoot = skipUnlessRoot() !== undefined;

const here = path.dirname(fileURLToPath(import.meta.url));
/** The repository root. */
export const REPO = path.resolve(here, '../../..');
/** The built package entry point (for child processes that import it). */
export const DIST_INDEX = path.resolve(here, '../dist/index.js');

/** The parent of every container cgroup (see resolveCgroupPath). */
export const CGROUP_PARENT = '/nsinit';
const CGROUP_ROOT = '/sys/fs/cgroup';

let sharedRootfs: string | undefined;

/**
 * The shared busybox rootfs, built once per uid under the temp dir. Parallel builders each build
 * into a private dir and rename it into place; the first rename wins, the others discard theirs.
 * Containers get it read-only (root.readonly), so sharing it is safe as long as a test needs no new
 * mount points in it: tests that do use {@link copyRootfs}.
 */
export function rootfs(): string {
  if (sharedRootfs) return sharedRootfs;
  const dir = path.join(os.tmpdir(), `tsc-test-rootfs-${process.getuid?.() ?? 0}`);
  const marker = path.join(dir, '.tsc-test-rootfs-complete');
  if (!fs.existsSync(marker)) {
    const build = `${dir}.build.${process.pid}.${Date.now()}`;
    execFileSync('sh', [path.join(REPO, 'scripts/build-rootfs.sh'), build], { stdio: 'pipe' });
    fs.writeFileSync(path.join(build, '.tsc-test-rootfs-complete'), '');
    try {
      fs.renameSync(build, dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      fs.rmSync(build, { recursive: true, force: true });
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      // Someone else finished first, or a stale incomplete dir is there: replace the latter.
      if (!fs.existsSync(marker)) {
        execFileSync('sh', [path.join(REPO, 'scripts/build-rootfs.sh'), build], { stdio: 'pipe' });
        fs.writeFileSync(path.join(build, '.tsc-test-rootfs-complete'), '');
        fs.rmSync(dir, { recursive: true, force: true });
        fs.renameSync(build, dir);
      }
    }
  }
  sharedRootfs = dir;
  return dir;
}

/** A listing of the shared rootfs's top level (to prove tests do not write into it). */
export function rootfsTopLevel(): string[] {
  return fs.readdirSync(rootfs()).sort();
}

// biome-ignore lint/suspicious/noExplicitAny: tests mutate configs freely, also into invalid shapes
export type LooseSpec = any;

/** Options of {@link Fixture.makeBundle}. */
export interface BundleOptions {
  args: string[];
  /** Change the config (typed loosely: tests also break it on purpose). */
  mutate?: ((spec: LooseSpec) => void) | undefined;
  /** Give the container a private, writable copy of the rootfs (for new mount points, a missing cwd). */
  copyRootfs?: boolean | undefined;
}

/** A bundle made by {@link Fixture.makeBundle}. */
export interface Bundle {
  dir: string;
  /** The rootfs the config points at. */
  rootfs: string;
  config: RuntimeConfig;
}

/** Output captured from a container's stdout and stderr (both go to one temp file). */
export interface Output {
  /** The stdio for CreateOptions: ['ignore', fd, fd]. */
  stdio: ['ignore', number, number];
  /** Everything written so far. */
  read(): string;
  /** Lines written so far, without the trailing empty one. */
  lines(): string[];
}

/**
 * Per test file: a state root (mkdtemp under /run), unique container ids, temp dirs, and cleanup.
 * Call {@link Fixture.cleanup} in afterEach and {@link Fixture.dispose} in afterAll.
 */
export class Fixture {
  readonly root: string;
  private readonly base: string;
  private readonly temps: string[] = [];
  private readonly fds: number[] = [];
  private readonly ids = new Set<string>();
  private n = 0;

  constructor(readonly name: string) {
    this.root = fs.mkdtempSync(`/run/tsc-test-${name}-`);
    this.base = fs.mkdtempSync(path.join(os.tmpdir(), `tsc-test-${name}-`));
  }

  /** A container id unique across files and runs: `<name>-<pid>-<n>`. */
  id(tag = 'c'): string {
    this.n += 1;
    const id = `${this.name}-${tag}-${process.pid}-${this.n}`;
    this.ids.add(id);
    return id;
  }

  /** A fresh temp dir, removed by {@link dispose}. */
  tempDir(tag = 'd'): string {
    const d = fs.mkdtempSync(path.join(this.base, `${tag}-`));
    this.temps.push(d);
    return d;
  }

  /** A fresh bundle dir with config.json (defaultSpec, terminal false, root.path = the rootfs). */
  makeBundle(opts: BundleOptions): Bundle {
    const dir = this.tempDir('bundle');
    let root = rootfs();
    if (opts.copyRootfs) {
      root = path.join(dir, 'rootfs');
      execFileSync('cp', ['-a', rootfs(), root]);
    }
    const spec: LooseSpec = defaultSpec({ args: opts.args });
    spec.process.terminal = false;
    spec.root.path = root;
    opts.mutate?.(spec);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec, null, 2));
    return { dir, rootfs: root, config: spec as RuntimeConfig };
  }

  /** A temp file for the container's stdout+stderr. */
  output(): Output {
    const file = path.join(this.tempDir('out'), 'out.txt');
    const fd = fs.openSync(file, 'w');
    this.fds.push(fd);
    const read = () => fs.readFileSync(file, 'utf8');
    return {
      stdio: ['ignore', fd, fd],
      read,
      lines: () =>
        read()
          .split('\n')
          .filter((l, i, a) => l !== '' || i < a.length - 1),
    };
  }

  /** Ids with a state dir under this fixture's root. */
  stateIds(): string[] {
    try {
      return fs.readdirSync(this.root).sort();
    } catch {
      return [];
    }
  }

  /** Force-delete every container left, and remove their cgroups should the delete not. */
  async cleanup(): Promise<void> {
    for (const id of this.stateIds()) {
      try {
        await Container.load(id, this.root).delete({ force: true });
      } catch {
        fs.rmSync(path.join(this.root, id), { recursive: true, force: true });
      }
    }
    for (const id of this.ids) {
      if (cgroupDirs(id).length) {
        try {
          await openCgroup({ path: `${CGROUP_PARENT}/${id}` }).destroy({ timeoutMs: 2000 });
        } catch {
          // reported by the test that left it
        }
      }
    }
    for (const fd of this.fds.splice(0)) {
      try {
        fs.closeSync(fd);
      } catch {
        // closed already
      }
    }
  }

  /** cleanup, then remove the state root and every temp dir. */
  async dispose(): Promise<void> {
    await this.cleanup();
    fs.rmSync(this.root, { recursive: true, force: true });
    fs.rmSync(this.base, { recursive: true, force: true });
  }
}

/** Every existing cgroup directory of container `id`, in any hierarchy under /sys/fs/cgroup. */
export function cgroupDirs(id: string): string[] {
  const out: string[] = [];
  for (const h of fs.readdirSync(CGROUP_ROOT)) {
    const d = path.join(CGROUP_ROOT, h, CGROUP_PARENT, id);
    if (fs.existsSync(d)) out.push(d);
  }
  return out;
}

/** The host directory of container `id`'s cgroup in v1 hierarchy `controller`. */
export function cgroupDir(id: string, controller: string): string {
  return path.join(CGROUP_ROOT, controller, CGROUP_PARENT, id);
}

/** Whether a process exists (and is not a zombie). */
export function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Await a promise that must reject with a ContainerError; returns it. */
export async function containerError(p: Promise<unknown>): Promise<ContainerError> {
  try {
    await p;
  } catch (e) {
    if (isContainerError(e)) return e;
    throw new Error(`expected a ContainerError, got ${String(e)}`, { cause: e });
  }
  throw new Error('expected a ContainerError, but the operation succeeded');
}

/** Call a function that must throw a ContainerError; returns it. */
export function containerErrorSync(f: () => unknown): ContainerError {
  try {
    f();
  } catch (e) {
    if (isContainerError(e)) return e;
    throw new Error(`expected a ContainerError, got ${String(e)}`, { cause: e });
  }
  throw new Error('expected a ContainerError, but the call returned');
}

/** Resolve after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `f` until it returns true, or fail after `ms`. */
export async function waitFor(f: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Write an executable shell script. */
export function script(file: string, body: string): string {
  fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return file;
}
