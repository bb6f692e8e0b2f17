// Container's cgroup operations on the real kernel: pause/resume (the freezer stops a counter and
// state() says paused), SIGKILL and delete --force of a paused container, stats(), OOM events(),
// and update() of live limits proven by effect (a fork storm, a memory hog), with its validation.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Container, type RunningContainer, toRuncStats } from '../src/index.js';
import {
  alive,
  cgroupDir,
  cgroupDirs,
  containerError,
  containerErrorSync,
  Fixture,
  type LooseSpec,
  notRoot,
  type Output,
  rootfs,
  rootfsTopLevel,
  skipUnlessRoot,
  sleep,
  waitFor,
} from './fixtures.js';

const MiB = 1024 * 1024;
/** Writes an incrementing counter to /tmp/count (a host dir) every 50 ms. */
const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done';

describe.skipIf(notRoot)(
  `Container cgroup operations on the real kernel${notRoot ? ` (${skipUnlessRoot()})` : ''}`,
  () => {
    let fx: Fixture;
    let topLevel: string[];

    beforeAll(() => {
      fx = new Fixture('cgops');
      rootfs();
      topLevel = rootfsTopLevel();
    });
    afterEach(async () => {
      await fx.cleanup();
    });
    afterAll(async () => {
      await fx?.dispose();
      if (topLevel) expect(rootfsTopLevel()).toEqual(topLevel);
    });

    interface Started extends RunningContainer {
      id: string;
      /** The host dir mounted rw at /tmp in the container. */
      shared: string;
      out: Output;
    }

    /** Run `script` with a host dir bound at /tmp. */
    async function start(script: string, mutate?: (s: LooseSpec) => void): Promise<Started> {
      const shared = fx.tempDir('shared');
      const b = fx.makeBundle({
        args: ['sh', '-c', script],
        mutate: (s) => {
          s.mounts.push({ destination: '/tmp', type: 'bind', source: shared, options: ['rbind', 'rw'] });
          mutate?.(s);
        },
      });
      const out = fx.output();
      const id = fx.id();
      const r = await Container.run({ id, bundle: b.dir, root: fx.root, stdio: out.stdio });
      return { ...r, id, shared, out };
    }

    function readCount(shared: string): string {
      try {
        return fs.readFileSync(path.join(shared, 'count'), 'utf8').trim();
      } catch {
        return '';
      }
    }

    /** Wait until the counter has advanced past what it says now. */
    async function advances(shared: string, what: string): Promise<void> {
      const before = readCount(shared);
      await waitFor(
        () => {
          const now = readCount(shared);
          return now !== '' && now !== before;
        },
        5000,
        what,
      );
    }

    describe('pause and resume', () => {
      it('pause freezes every process (the counter stops, state says paused); resume thaws', async () => {
        const c = await start(COUNTER);
        await advances(c.shared, 'the counter to start');
        c.container.pause();
        expect(c.container.state().status).toBe('paused');
        expect(fs.readFileSync(path.join(cgroupDir(c.id, 'freezer'), 'freezer.state'), 'utf8').trim()).toBe(
          'FROZEN',
        );
        // Listed as paused too, from a fresh load (the status is derived, not stored).
        expect(Container.list(fx.root).find((s) => s.id === c.id)?.status).toBe('paused');
        const frozenAt = readCount(c.shared);
        await sleep(500);
        expect(readCount(c.shared)).toBe(frozenAt);

        c.container.resume();
        expect(c.container.state().status).toBe('running');
        await advances(c.shared, 'the counter to move again after resume');
      });

      it('refuses pause when not running, resume when not paused; both name the state', async () => {
        const c = await start(COUNTER);
        const notPaused = containerErrorSync(() => c.container.resume());
        expect(notPaused.code).toBe('InvalidState');
        expect(notPaused.message).toBe(`cannot resume container "${c.id}": it is running, not paused`);
        c.container.pause();
        const twice = containerErrorSync(() => c.container.pause());
        expect(twice.code).toBe('InvalidState');
        expect(twice.message).toMatch(/it is paused, not running/);
        c.container.resume();
        c.container.kill('SIGKILL');
        await c.exited;
        const stopped = containerErrorSync(() => c.container.pause());
        expect(stopped.code).toBe('InvalidState');
        expect(stopped.message).toBe(`cannot pause container "${c.id}": it is stopped, not running`);
      });

      it('kill SIGKILL ends a paused container (a frozen task dies only once thawed)', async () => {
        const c = await start(COUNTER);
        const pid = c.container.state().pid;
        c.container.pause();
        c.container.kill('KILL');
        const exit = await Promise.race([c.exited, sleep(5000).then(() => 'timeout' as const)]);
        expect(exit).toEqual({ status: 137, signal: 9, coreDumped: false });
        expect(alive(pid)).toBe(false);
        expect(c.container.state().status).toBe('stopped');
      });

      it('delete refuses a paused container; delete --force removes it, its cgroup and state', async () => {
        const c = await start(COUNTER);
        const pid = c.container.state().pid;
        c.container.pause();
        const e = await containerError(c.container.delete());
        expect(e.message).toBe(`cannot delete container "${c.id}" that is not stopped: paused`);
        await c.container.delete({ force: true });
        await c.exited;
        expect(alive(pid)).toBe(false);
        expect(cgroupDirs(c.id)).toEqual([]);
        expect(fs.existsSync(path.join(fx.root, c.id))).toBe(false);
      });
    });

    describe('stats', () => {
      it('reports CPU time, memory usage and the process count of a busy container', async () => {
        const c = await start('while true; do :; done & sleep 1000');
        await waitFor(() => c.container.pids().length >= 2, 5000, 'the busy loop and sleep');
        await sleep(300);
        const s = c.container.stats();
        expect(s.version).toBe(1);
        expect(s.memory?.usage).toBeGreaterThan(0);
        expect(s.pids?.current).toBe(c.container.pids().length);
        expect(s.cpu?.usage.total).toBeGreaterThan(100_000_000); // 0.1 s of the busy loop
        const runc = toRuncStats(s);
        expect(runc.pids.current).toBe(s.pids?.current);
        expect(runc.memory.usage?.usage).toBe(s.memory?.usage);
      });
    });

    describe('events', () => {
      it('yields OOM events of a 32 MiB container whose process allocates 64 MiB', async () => {
        const c = await start(
          'sleep 0.5; while true; do dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; sleep 0.3; done',
          (s) => {
            s.linux.resources.memory = { limit: 32 * MiB, swap: 32 * MiB };
          },
        );
        const ac = new AbortController();
        const timer = setTimeout(() => ac.abort(), 10_000);
        const seen: { type: string; count: number }[] = [];
        for await (const e of c.container.events({ signal: ac.signal })) {
          seen.push(e);
          if (seen.length === 2) break;
        }
        clearTimeout(timer);
        expect(seen.map((e) => e.type)).toEqual(['oom', 'oom']);
        expect(seen[1]?.count).toBeGreaterThan(seen[0]?.count ?? 0);
        // The init (the shell) survived: only the dd processes were killed.
        expect(c.container.state().status).toBe('running');
      });

      it('the event stream ends when the container is deleted', async () => {
        const c = await start('sleep 1000');
        const events = c.container.events();
        const ended = (async () => {
          for await (const _ of events) {
            // no OOM expected
          }
          return 'ended';
        })();
        await sleep(200);
        await c.container.delete({ force: true });
        expect(await Promise.race([ended, sleep(5000).then(() => 'still running')])).toBe('ended');
      });
    });

    describe('update', () => {
      it('lowers pids.max of a running container: a fork storm inside then fails beyond 3 tasks', async () => {
        // Waits for /tmp/go, then starts 8 background sleeps in a child shell.
        const storm =
          'while [ ! -f /tmp/go ]; do sleep 0.05; done; ' +
          "sh -c 'for i in 1 2 3 4 5 6 7 8; do sleep 30 & done; echo started' > /tmp/storm 2>&1; " +
          'echo $? > /tmp/done; sleep 1000';
        const c = await start(storm, (s) => {
          s.linux.resources.pids = { limit: 20 };
        });
        const pidsMax = path.join(cgroupDir(c.id, 'pids'), 'pids.max');
        expect(fs.readFileSync(pidsMax, 'utf8').trim()).toBe('20');
        const r = c.container.update({ pids: { limit: 3 } });
        expect(r.applied).toEqual(['pids.max=3']);
        expect(fs.readFileSync(pidsMax, 'utf8').trim()).toBe('3');
        expect(c.container.config().linux?.resources?.pids?.limit).toBe(3);

        fs.writeFileSync(path.join(c.shared, 'go'), '');
        await waitFor(() => fs.existsSync(path.join(c.shared, 'done')), 5000, 'the fork storm to finish');
        const out = fs.readFileSync(path.join(c.shared, 'storm'), 'utf8');
        expect(out).toMatch(/can't fork/);
        expect(out).not.toMatch(/started/);
        expect(c.container.pids().length).toBeLessThanOrEqual(3);
        expect(
          Number(fs.readFileSync(path.join(cgroupDir(c.id, 'pids'), 'pids.events'), 'utf8').split(' ')[1]),
        ).toBeGreaterThan(0);
      });

      it('raises a memory limit live: a 64 MiB allocation that was OOM-killed then succeeds', async () => {
        const c = await start(
          'while true; do if dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; then echo DD_OK; else echo DD_FAIL; fi; sleep 0.1; done',
          (s) => {
            s.linux.resources.memory = { limit: 32 * MiB, swap: 32 * MiB };
          },
        );
        await waitFor(() => c.out.read().includes('DD_FAIL'), 10_000, 'an OOM-killed dd');
        expect(c.out.read()).not.toContain('DD_OK');
        c.container.update({ memory: { limit: 128 * MiB, swap: 128 * MiB } });
        const mem = cgroupDir(c.id, 'memory');
        expect(Number(fs.readFileSync(path.join(mem, 'memory.limit_in_bytes'), 'utf8'))).toBe(128 * MiB);
        expect(Number(fs.readFileSync(path.join(mem, 'memory.memsw.limit_in_bytes'), 'utf8'))).toBe(
          128 * MiB,
        );
        await waitFor(() => c.out.read().includes('DD_OK'), 10_000, 'dd to succeed under the new limit');
        // The stored config has the new values, merged with the old ones.
        expect(c.container.config().linux?.resources?.memory).toEqual({ limit: 128 * MiB, swap: 128 * MiB });
      });

      it('validates before writing anything: field names in one-line errors', async () => {
        const c = await start('sleep 1000', (s) => {
          s.linux.resources.pids = { limit: 20 };
        });
        const pidsMax = path.join(cgroupDir(c.id, 'pids'), 'pids.max');
        const bad: [unknown, string, RegExp][] = [
          [
            { pids: { limit: 5 }, memory: { limit: 'x' } },
            'InvalidArgument',
            /^linux\.resources\.memory\.limit: expected integer, got string$/,
          ],
          [{ pids: { limt: 5 } }, 'InvalidArgument', /^linux\.resources\.pids\.limt: unknown property/],
          [{ memroy: {} }, 'InvalidArgument', /^linux\.resources\.memroy: unknown property/],
          [
            { devices: [{ allow: true }] },
            'InvalidArgument',
            /^linux\.resources\.devices: device rules cannot be changed on a live container$/,
          ],
          [{ memory: { limit: -2 } }, 'InvalidArgument', /^linux\.resources\.memory\.limit: must be >= -1/],
          // The kernel's verdict, still naming the field.
          [
            { pids: { limit: 5 }, cpu: { cpus: '999' } },
            'InvalidArgument',
            /linux\.resources\.cpu\.cpus: write "999" to .*cpuset\.cpus: ERANGE/,
          ],
        ];
        for (const [input, code, re] of bad) {
          // biome-ignore lint/suspicious/noExplicitAny: invalid input on purpose
          const e = containerErrorSync(() => c.container.update(input as any));
          expect(e.code, e.message).toBe(code);
          expect(e.message).toMatch(re);
          expect(e.message).not.toContain('\n');
        }
        expect(fs.readFileSync(pidsMax, 'utf8').trim()).toBe('20');
        expect(c.container.config().linux?.resources?.pids?.limit).toBe(20);

        c.container.kill('SIGKILL');
        await c.exited;
        const stopped = containerErrorSync(() => c.container.update({ pids: { limit: 5 } }));
        expect(stopped.code).toBe('InvalidState');
        expect(stopped.message).toBe(`cannot update container "${c.id}": it is stopped`);
      });
    });

    it('a container without a cgroup (rootless) gets Unsupported for pause, resume, stats, events, update', async () => {
      const c = await start('sleep 1000');
      // What a rootless create without a delegated cgroup stores.
      const file = path.join(fx.root, c.id, 'state.json');
      const st = JSON.parse(fs.readFileSync(file, 'utf8'));
      st.cgroupPath = '';
      fs.writeFileSync(file, JSON.stringify(st));
      const ops: [string, () => unknown][] = [
        ['pause', () => c.container.pause()],
        ['get stats of', () => c.container.stats()],
        ['watch events of', () => c.container.events()],
        ['update', () => c.container.update({ pids: { limit: 5 } })],
      ];
      for (const [what, op] of ops) {
        const e = containerErrorSync(op);
        expect(e.code).toBe('Unsupported');
        expect(e.message).toBe(
          `cannot ${what} container "${c.id}": it has no cgroup (a rootless container without a delegated cgroup)`,
        );
      }
      // resume: not paused comes first (a container without a cgroup is never paused).
      expect(containerErrorSync(() => c.container.resume()).code).toBe('InvalidState');
      expect(c.container.state().status).toBe('running');
      st.cgroupPath = `/nsinit/${c.id}`;
      fs.writeFileSync(file, JSON.stringify(st));
    });
  },
);
