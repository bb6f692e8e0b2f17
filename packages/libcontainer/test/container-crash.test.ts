// The runtime process dies (SIGKILL) at arbitrary points of create and start: a later
// `delete --force` must leave no state dir, no cgroup, no process and no mount behind.
// The dying runtime is a child Node process running the built package (dist/).
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Container, isContainerError } from '../src/index.js';
import { cgroupDirs, DIST_INDEX, Fixture, notRoot, rootfs, sleep, waitFor } from './fixtures.js';

/** The runtime: create, then start, reporting each phase on stdout, then hang until killed. */
const CHILD = `
const { Container } = await import(process.env.TSC_DIST);
const o = JSON.parse(process.env.TSC_CRASH);
process.chdir(o.cwd);
process.stdout.write('go\\n');
const c = await Container.create({ id: o.id, bundle: o.bundle, root: o.root, stdio: ['ignore', 'ignore', 'ignore'] });
process.stdout.write('created\\n');
await c.start();
process.stdout.write('started\\n');
setInterval(() => {}, 1000);
`;

/** Processes whose cmdline contains `marker` or whose cwd is `dir` (executors inherit the runtime's cwd). */
function processesOf(marker: string, dir: string): string[] {
  const found: string[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0').join(' ');
      const stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      let cwd = '';
      try {
        cwd = fs.readlinkSync(`/proc/${e}/cwd`);
      } catch {
        // a kernel thread, or gone
      }
      if (cmdline.includes(marker) || cwd === dir) found.push(`${e}: ${cmdline} (cwd ${cwd})`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function waitLine(child: ChildProcess, seen: Set<string>, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (seen.has(line)) return resolve();
    const onData = () => {
      if (seen.has(line)) {
        child.stdout?.off('data', onData);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', () =>
      seen.has(line) ? resolve() : reject(new Error(`child exited before "${line}"`)),
    );
  });
}

describe.skipIf(notRoot)('SIGKILL of the runtime during create/start', () => {
  let fx: Fixture;

  beforeAll(() => {
    if (!fs.existsSync(DIST_INDEX)) {
      throw new Error(`${DIST_INDEX} is missing: build the package first (pnpm -r run build)`);
    }
    fx = new Fixture('crash');
    rootfs();
  });
  afterEach(async () => {
    await fx.cleanup();
  });
  afterAll(async () => {
    await fx?.dispose();
  });

  it('a later delete --force cleans up whatever point the runtime died at', async () => {
    const ITERATIONS = 15;
    const phases: string[] = [];
    for (let i = 0; i < ITERATIONS; i++) {
      const id = fx.id('k');
      const marker = `tsc-crash-marker-${process.pid}-${i}`;
      const cwd = fx.tempDir('cwd');
      const b = fx.makeBundle({ args: ['sh', '-c', 'sleep 1000', marker] });
      const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
        env: {
          TSC_DIST: pathToFileURL(DIST_INDEX).href,
          TSC_CRASH: JSON.stringify({ id, bundle: b.dir, root: fx.root, cwd }),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const seen = new Set<string>();
      let stderr = '';
      child.stdout?.on('data', (d: Buffer) => {
        for (const l of d.toString().split('\n')) if (l) seen.add(l);
      });
      child.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      await waitLine(child, seen, 'go');
      if (i === ITERATIONS - 2) await waitLine(child, seen, 'created');
      else if (i === ITERATIONS - 1) await waitLine(child, seen, 'started');
      else await sleep(Math.floor((i / (ITERATIONS - 3)) * 150 + Math.random() * 10));
      child.kill('SIGKILL');
      await exited;
      const phase = seen.has('started') ? 'started' : seen.has('created') ? 'created' : 'creating';
      phases.push(phase);
      expect(stderr, `iteration ${i}: the runtime must not fail by itself`).toBe('');

      try {
        await Container.load(id, fx.root).delete({ force: true });
      } catch (e) {
        if (!isContainerError(e) || e.code !== 'NotFound') throw e;
        fs.rmSync(path.join(fx.root, id), { recursive: true, force: true });
      }

      const where = `iteration ${i} (killed while ${phase})`;
      expect(fs.existsSync(path.join(fx.root, id)), where).toBe(false);
      expect(cgroupDirs(id), where).toEqual([]);
      let left: string[] = [];
      await waitFor(
        () => {
          left = processesOf(marker, cwd);
          return left.length === 0;
        },
        3000,
        `${where}: processes to be gone`,
      ).catch(() => undefined);
      expect(left, where).toEqual([]);
      const mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8');
      expect(mountinfo.includes(rootfs()), where).toBe(false);
      expect(mountinfo.includes(b.dir), where).toBe(false);
    }
    // The kills did land at different points.
    expect(phases).toContain('creating');
    expect(phases.filter((p) => p !== 'creating').length).toBeGreaterThanOrEqual(2);
    expect(phases).toContain('started');
    expect(fx.stateIds()).toEqual([]);
  });
});
