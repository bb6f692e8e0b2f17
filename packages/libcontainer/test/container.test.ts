// Acceptance tests of Container on the real kernel: namespaces, cgroup limits, the create/start
// life cycle, kill/delete, config and start-up failures, mounts, capabilities, users, env, rlimits.
// Every container runs the shared busybox rootfs; its output goes to a temp file.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Container } from '../src/index.js';
import {
  alive,
  type BundleOptions,
  cgroupDir,
  cgroupDirs,
  containerError,
  Fixture,
  notRoot,
  rootfs,
  rootfsTopLevel,
  skipUnlessRoot,
  waitFor,
} from './fixtures.js';

const MiB = 1024 * 1024;

/** Pids of live (non-zombie) children of this process. */
function liveChildren(): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
    } catch {
      continue;
    }
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(rest[1]) === process.pid && rest[0] !== 'Z' && rest[0] !== 'X') out.push(Number(e));
  }
  return out;
}

describe.skipIf(notRoot)(`Container on the real kernel${notRoot ? ` (${skipUnlessRoot()})` : ''}`, () => {
  let fx: Fixture;
  let topLevel: string[];

  beforeAll(() => {
    fx = new Fixture('ctr');
    rootfs();
    topLevel = rootfsTopLevel();
  });
  afterEach(async () => {
    await fx.cleanup();
  });
  afterAll(async () => {
    await fx?.dispose();
    // No test may have written into the shared rootfs (new mount points, cwd dirs).
    if (topLevel) expect(rootfsTopLevel()).toEqual(topLevel);
  });

  /** Run a container to its end: exit info, output, and the id (the container is deleted). */
  async function runToEnd(opts: BundleOptions & { keep?: boolean }) {
    const b = fx.makeBundle(opts);
    const out = fx.output();
    const id = fx.id();
    const { container, exited } = await Container.run({ id, bundle: b.dir, root: fx.root, stdio: out.stdio });
    const exit = await exited;
    if (!opts.keep) await container.delete();
    return { exit, out: out.read(), lines: out.lines(), id, container, bundle: b };
  }

  /** `key=value` lines of the output as a map. */
  function kv(lines: string[]): Record<string, string> {
    const m: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf('=');
      if (i > 0) m[l.slice(0, i)] = l.slice(i + 1);
    }
    return m;
  }

  function assertGone(id: string): void {
    expect(fs.existsSync(path.join(fx.root, id))).toBe(false);
    expect(cgroupDirs(id)).toEqual([]);
  }

  describe('namespaces and exit status', () => {
    it('runs in new uts/pid/net namespaces with only fds 0-2 and returns the exit status', async () => {
      const r = await runToEnd({
        args: ['sh', '-c', 'hostname; echo $$; ls /sys/class/net; ls /proc/self/fd; exit 7'],
        mutate: (s) => {
          s.hostname = 'c1host';
        },
      });
      // 3 is ls's own directory fd; anything more would be an fd leaked from the runtime.
      expect(r.lines).toEqual(['c1host', '1', 'lo', '0', '1', '2', '3']);
      expect(r.exit.status).toBe(7);
      expect(r.exit.signal).toBeUndefined();
      assertGone(r.id);
    });
  });

  describe('cgroup limits', () => {
    const ddArgs = ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=100M', 'count=1'];

    it('the memory hog really needs 100 MiB: it succeeds without a limit', async () => {
      const r = await runToEnd({ args: ddArgs });
      expect(r.exit.status).toBe(0);
      expect(r.out).toContain('1+0 records out');
    });

    it('a 32 MiB memory limit OOM-kills it (137), and delete removes cgroup and state', async () => {
      const r = await runToEnd({
        args: ddArgs,
        keep: true,
        mutate: (s) => {
          s.linux.resources.memory = { limit: 32 * MiB, swap: 32 * MiB };
        },
      });
      expect(r.exit).toEqual({ status: 137, signal: 9, coreDumped: false });
      const mem = cgroupDir(r.id, 'memory');
      expect(fs.readFileSync(path.join(mem, 'memory.limit_in_bytes'), 'utf8').trim()).toBe(String(32 * MiB));
      if (fs.existsSync(path.join(mem, 'memory.memsw.limit_in_bytes'))) {
        expect(fs.readFileSync(path.join(mem, 'memory.memsw.limit_in_bytes'), 'utf8').trim()).toBe(
          String(32 * MiB),
        );
      }
      // The kernel's OOM killer did it (not a failed allocation or our own kill).
      expect(fs.readFileSync(path.join(mem, 'memory.oom_control'), 'utf8')).toMatch(/^oom_kill [1-9]/m);
      expect(r.container.state().status).toBe('stopped');
      await r.container.delete();
      assertGone(r.id);
    });

    it('a pids limit of 10 stops a fork storm inside; the host is unaffected', async () => {
      const b = fx.makeBundle({
        args: [
          'sh',
          '-c',
          // The storm runs in a child shell: ash exits when a fork fails.
          `sh -c 'i=0; while [ $i -lt 50 ]; do sleep 3 & i=$((i+1)); done; echo storm-survived'
           echo storm=$?
           echo current=$(cat /sys/fs/cgroup/pids/pids.current)
           echo max=$(cat /sys/fs/cgroup/pids/pids.max)
           sleep 1`,
        ],
        mutate: (s) => {
          s.linux.resources.pids = { limit: 10 };
        },
      });
      const out = fx.output();
      const id = fx.id();
      const { container, exited } = await Container.run({
        id,
        bundle: b.dir,
        root: fx.root,
        stdio: out.stdio,
      });
      const pidsDir = cgroupDir(id, 'pids');
      let done = false;
      let peak = 0;
      let peakListed = 0;
      void exited.then(() => {
        done = true;
      });
      while (!done) {
        try {
          peak = Math.max(peak, Number(fs.readFileSync(path.join(pidsDir, 'pids.current'), 'utf8')));
          // One read of one hierarchy: container.pids() unions every hierarchy, each read at
          // its own moment, so an exiting and a new process can both be counted.
          const procs = fs.readFileSync(path.join(pidsDir, 'cgroup.procs'), 'utf8').trim();
          peakListed = Math.max(peakListed, procs ? procs.split('\n').length : 0);
        } catch {
          // exited meanwhile
        }
        await new Promise((r) => setTimeout(r, 2));
      }
      const exit = await exited;
      const events = fs.readFileSync(path.join(pidsDir, 'pids.events'), 'utf8');
      await container.delete();
      const m = kv(out.lines());
      expect(out.read()).toMatch(/can't fork/);
      expect(out.read()).not.toContain('storm-survived');
      expect(m['storm']).not.toBe('0');
      expect(m['max']).toBe('10');
      // sh + 8 sleeps + cat: the cgroup is full.
      expect(m['current']).toBe('10');
      expect(peak).toBe(10);
      expect(peakListed).toBeLessThanOrEqual(10);
      expect(peakListed).toBeGreaterThan(1);
      expect(events).toMatch(/^max [1-9]/m);
      expect(exit.status).toBe(0);
      // The host can still fork.
      expect(execFileSync('sh', ['-c', 'echo host-ok']).toString()).toBe('host-ok\n');
      assertGone(id);
    });
  });

  describe('life cycle', () => {
    it('create waits for start; a duplicate id is refused; start runs it; delete removes everything', async () => {
      const shared = fx.tempDir('shared');
      const b = fx.makeBundle({
        args: ['sh', '-c', 'echo started > /tmp/started'],
        mutate: (s) => {
          s.mounts.push({ destination: '/tmp', type: 'bind', source: shared, options: ['rbind', 'rw'] });
        },
      });
      const out = fx.output();
      const id = fx.id();
      const c = await Container.create({ id, bundle: b.dir, root: fx.root, stdio: out.stdio });
      const st = c.state();
      expect(st).toMatchObject({
        id,
        status: 'created',
        bundle: b.dir,
        rootfs: b.rootfs,
        ociVersion: '1.2.0',
      });
      expect(st.pid).toBeGreaterThan(0);
      expect(alive(st.pid)).toBe(true);
      expect(cgroupDirs(id).length).toBeGreaterThan(0);
      // The init is in the container's cgroup.
      expect(c.pids()).toContain(st.pid);
      await new Promise((r) => setTimeout(r, 200));
      expect(fs.existsSync(path.join(shared, 'started'))).toBe(false);
      // The init is still the executor, waiting on the exec fifo: the user's sh was not exec'd yet.
      expect(fs.readFileSync(`/proc/${st.pid}/cmdline`, 'utf8')).not.toContain('echo started');

      const dup = await containerError(
        Container.create({ id, bundle: b.dir, root: fx.root, stdio: out.stdio }),
      );
      expect(dup.code).toBe('AlreadyExists');
      expect(dup.message).toContain(id);
      // The first container is unharmed.
      expect(c.state()).toMatchObject({ status: 'created', pid: st.pid });
      expect(Container.load(id, fx.root).state().status).toBe('created');
      expect(Container.list(fx.root).map((s) => s.id)).toEqual([id]);
      expect(cgroupDirs(id).length).toBeGreaterThan(0);

      await c.start();
      const started = path.join(shared, 'started');
      await waitFor(
        () => fs.existsSync(started) && fs.readFileSync(started, 'utf8') === 'started\n',
        5000,
        'the process to run',
      );
      await waitFor(() => c.state().status === 'stopped', 5000, 'the container to stop');
      expect(c.state().pid).toBe(0);
      expect((await containerError(c.start())).code).toBe('InvalidState');
      await c.delete();
      assertGone(id);
      expect(alive(st.pid)).toBe(false);
      expect((await containerError(Promise.resolve().then(() => Container.load(id, fx.root)))).code).toBe(
        'NotFound',
      );
    });

    it('delete of a running container needs force; with force it is killed and gone', async () => {
      const b = fx.makeBundle({ args: ['sleep', '1000'] });
      const id = fx.id();
      const out = fx.output();
      const { container, exited } = await Container.run({
        id,
        bundle: b.dir,
        root: fx.root,
        stdio: out.stdio,
      });
      const pid = container.state().pid;
      expect(container.state().status).toBe('running');
      const e = await containerError(container.delete());
      expect(e.code).toBe('InvalidState');
      expect(e.message).toContain('running');
      expect(alive(pid)).toBe(true);
      expect(container.state().status).toBe('running');
      await container.delete({ force: true });
      expect(await exited).toMatchObject({ status: 137, signal: 9 });
      expect(alive(pid)).toBe(false);
      assertGone(id);
    });

    it('kill(SIGTERM) reaches a trapping init (143); kill(SIGKILL) kills (137)', async () => {
      const b = fx.makeBundle({
        args: ['sh', '-c', 'trap "echo got-TERM; exit 143" TERM; echo ready; sleep 1000 & wait'],
      });
      const out = fx.output();
      const id = fx.id();
      const { container, exited } = await Container.run({
        id,
        bundle: b.dir,
        root: fx.root,
        stdio: out.stdio,
      });
      await waitFor(() => out.read().includes('ready'), 5000, 'the trap to be set');
      container.kill('SIGTERM');
      expect(await exited).toEqual({ status: 143, coreDumped: false });
      expect(out.lines()).toEqual(['ready', 'got-TERM']);
      expect(container.state().status).toBe('stopped');
      expect(() => container.kill('SIGTERM')).toThrow(/not running/);
      await container.delete();

      const b2 = fx.makeBundle({ args: ['sleep', '1000'] });
      const id2 = fx.id();
      const r2 = await Container.run({ id: id2, bundle: b2.dir, root: fx.root, stdio: out.stdio });
      r2.container.kill(9);
      expect(await r2.exited).toEqual({ status: 137, signal: 9, coreDumped: false });
      await r2.container.delete();
      assertGone(id);
      assertGone(id2);
    });
  });

  describe('invalid configs create nothing', () => {
    async function rejects(mutate: BundleOptions['mutate'], field: RegExp) {
      const b = fx.makeBundle({ args: ['true'], mutate });
      const id = fx.id();
      const e = await containerError(
        Container.run({ id, bundle: b.dir, root: fx.root, stdio: fx.output().stdio }),
      );
      expect(e.code).toBe('InvalidConfig');
      expect(e.message).not.toContain('\n');
      expect(e.message).toMatch(field);
      expect(fx.stateIds()).toEqual([]);
      expect(cgroupDirs(id)).toEqual([]);
      return e;
    }

    it('an unknown namespace type', async () => {
      await rejects((s) => {
        s.linux.namespaces.push({ type: 'bogus' });
      }, /config\.json: linux\.namespaces\[6\]\.type: invalid value "bogus"/);
    });

    it('a uid given as a string', async () => {
      await rejects((s) => {
        s.process.user.uid = '0';
      }, /config\.json: process\.user\.uid: expected integer, got string$/);
    });

    it('no root', async () => {
      await rejects((s) => {
        delete s.root;
      }, /config\.json: root: required$/);
    });

    it('a root.path that does not exist', async () => {
      const e = await rejects((s) => {
        s.root.path = '/nonexistent/rootfs';
      }, /^root\.path: \/nonexistent\/rootfs is not a directory/);
      expect(e.message).toContain('/nonexistent/rootfs');
    });

    it('a bind mount whose source does not exist', async () => {
      const e = await rejects((s) => {
        s.mounts.push({ destination: '/tmp', type: 'bind', source: '/nonexistent/src', options: ['rbind'] });
      }, /^mounts\[7\]\.source: \/nonexistent\/src does not exist$/);
      expect(e.message).toContain('/nonexistent/src');
    });
  });

  describe('start-up failures leave nothing behind', () => {
    async function startFails(args: string[], mutate?: BundleOptions['mutate']) {
      const before = new Set(liveChildren());
      const b = fx.makeBundle({ args, mutate });
      const id = fx.id();
      const out = fx.output();
      const e = await containerError(Container.run({ id, bundle: b.dir, root: fx.root, stdio: out.stdio }));
      expect(e.code).toBe('StartFailed');
      expect(e.message).not.toContain('\n');
      expect(e.id).toBe(id);
      expect(fx.stateIds()).toEqual([]);
      expect(cgroupDirs(id)).toEqual([]);
      // Neither the executor nor the container's init survives.
      await waitFor(() => liveChildren().every((p) => before.has(p)), 3000, 'no new child processes');
      return e;
    }

    it('a sysctl that does not exist: StartFailed naming the step', async () => {
      const e = await startFails(['true'], (s) => {
        s.linux.sysctl = { 'net.nonexistent.key': '1' };
      });
      expect(e.message).toContain('sysctl net.nonexistent.key: open /proc/sys/net/nonexistent/key: ENOENT');
      expect(e.step).toBe('sysctl net.nonexistent.key: open /proc/sys/net/nonexistent/key');
    });

    it('an executable that does not exist', async () => {
      const e = await startFails(['nonexistent-cmd']);
      expect(e.message).toContain('executable file not found');
      expect(e.message).toContain('nonexistent-cmd');
    });

    it('create (not run) fails the same way', async () => {
      const before = new Set(liveChildren());
      const b = fx.makeBundle({ args: ['/bin/nonexistent-cmd'] });
      const id = fx.id();
      const e = await containerError(
        Container.create({ id, bundle: b.dir, root: fx.root, stdio: fx.output().stdio }),
      );
      expect(e.code).toBe('StartFailed');
      expect(e.message).toContain('/bin/nonexistent-cmd');
      expect(fx.stateIds()).toEqual([]);
      expect(cgroupDirs(id)).toEqual([]);
      await waitFor(() => liveChildren().every((p) => before.has(p)), 3000, 'no new child processes');
    });

    it('a hard RLIMIT_NOFILE above the host hard limit: StartFailed naming setrlimit and EPERM', async (ctx) => {
      const limits = fs.readFileSync('/proc/self/limits', 'utf8');
      const hard = /^Max open files\s+\S+\s+(\S+)/m.exec(limits)?.[1];
      const capEff = BigInt(
        `0x${/^CapEff:\s+(\S+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1]}`,
      );
      const hasSysResource = (capEff & (1n << 24n)) !== 0n;
      if (!hard || hard === 'unlimited' || hasSysResource) {
        ctx.skip();
        return;
      }
      const want = Number(hard) + 10000;
      const e = await startFails(['true'], (s) => {
        s.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: want }];
      });
      expect(e.message).toContain(`setrlimit RLIMIT_NOFILE soft=1024 hard=${want}: EPERM`);
    });
  });

  describe('mounts', () => {
    it('/dev, /proc, read-only root, ro and rw binds, masked and read-only paths', async () => {
      const rw = fx.tempDir('rw');
      const ro = fx.tempDir('ro');
      fs.writeFileSync(path.join(ro, 'existing'), 'from-host\n');
      const r = await runToEnd({
        args: [
          'sh',
          '-c',
          `stat -c '%n %F %t:%T %a' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty
           echo fd=$(readlink /dev/fd)
           ps -o pid,comm > /tmp/ps
           touch /x 2>/dev/null; echo touch-root=$?
           echo rw > /tmp/written; echo rw-write=$?
           echo ro-read=$(cat /home/existing)
           touch /home/new 2>/dev/null; echo ro-write=$?
           for f in /proc/kcore /proc/keys /proc/timer_list; do
             [ -e $f ] && echo "masked $f $(wc -c < $f) $(stat -c %t:%T $f)"
           done
           echo acpi=$(ls -A /proc/acpi | wc -l) $(stat -f -c %T /proc/acpi)
           echo sysfs-firmware=$(ls -A /sys/firmware | wc -l)
           echo 1 > /proc/sys/net/ipv4/ip_forward 2>/dev/null; echo procsys-write=$?
           echo procsys-opts=$(awk '$2 == "/proc/sys" { print $4 }' /proc/mounts | cut -d, -f1)
           echo root-opts=$(awk '$2 == "/" { print $4 }' /proc/mounts | cut -d, -f1)`,
        ],
        mutate: (s) => {
          s.mounts.push(
            { destination: '/tmp', type: 'bind', source: rw, options: ['rbind', 'rw'] },
            { destination: '/home', type: 'bind', source: ro, options: ['rbind', 'ro'] },
          );
        },
      });
      expect(r.exit.status).toBe(0);
      const devs = r.lines.filter((l) => l.startsWith('/dev/'));
      expect(devs).toEqual([
        '/dev/null character special file 1:3 666',
        '/dev/zero character special file 1:5 666',
        '/dev/full character special file 1:7 666',
        '/dev/random character special file 1:8 666',
        '/dev/urandom character special file 1:9 666',
        '/dev/tty character special file 5:0 666',
      ]);
      const m = kv(r.lines);
      expect(m['fd']).toBe('/proc/self/fd');
      // A fresh proc: only the container's own processes (sh as pid 1, and ps).
      const ps = fs.readFileSync(path.join(rw, 'ps'), 'utf8').trim().split('\n').slice(1);
      expect(ps.map((l) => l.trim().split(/\s+/))).toEqual([
        ['1', 'sh'],
        [expect.stringMatching(/^\d+$/), 'ps'],
      ]);
      expect(m['touch-root']).not.toBe('0');
      expect(m['root-opts']).toBe('ro');
      expect(m['rw-write']).toBe('0');
      expect(fs.readFileSync(path.join(rw, 'written'), 'utf8')).toBe('rw\n');
      expect(m['ro-read']).toBe('from-host');
      expect(m['ro-write']).not.toBe('0');
      expect(fs.existsSync(path.join(ro, 'new'))).toBe(false);
      // Masked files are /dev/null (1:3, empty) inside (this host's kernel may lack /proc/kcore),
      // masked directories an empty tmpfs.
      const masked = ['/proc/kcore', '/proc/keys', '/proc/timer_list'].filter((f) => fs.existsSync(f));
      expect(masked.length).toBeGreaterThanOrEqual(2);
      expect(r.lines.filter((l) => l.startsWith('masked '))).toEqual(masked.map((f) => `masked ${f} 0 1:3`));
      if (fs.existsSync('/proc/acpi')) expect(m['acpi']).toBe('0 tmpfs');
      expect(m['sysfs-firmware']).toBe('0');
      expect(fs.readdirSync('/sys/firmware').length).toBeGreaterThan(0);
      expect(m['procsys-write']).not.toBe('0');
      expect(m['procsys-opts']).toBe('ro');
    });
  });

  describe('process attributes', () => {
    const DOCKER_CAPS = [
      'CAP_CHOWN',
      'CAP_DAC_OVERRIDE',
      'CAP_FSETID',
      'CAP_FOWNER',
      'CAP_MKNOD',
      'CAP_NET_RAW',
      'CAP_SETGID',
      'CAP_SETUID',
      'CAP_SETFCAP',
      'CAP_SETPCAP',
      'CAP_NET_BIND_SERVICE',
      'CAP_SYS_CHROOT',
      'CAP_KILL',
      'CAP_AUDIT_WRITE',
    ];
    const capLines = ['sh', '-c', "grep -E '^(Cap|NoNewPrivs)' /proc/1/status | tr -d '\\t' | tr : ="];

    it("Docker's default capability set is exactly a80425fb, nothing inheritable or ambient", async () => {
      const r = await runToEnd({
        args: capLines,
        mutate: (s) => {
          s.process.capabilities = {
            bounding: [...DOCKER_CAPS],
            effective: [...DOCKER_CAPS],
            permitted: [...DOCKER_CAPS],
          };
        },
      });
      expect(kv(r.lines)).toEqual({
        CapInh: '0000000000000000',
        CapPrm: '00000000a80425fb',
        CapEff: '00000000a80425fb',
        CapBnd: '00000000a80425fb',
        CapAmb: '0000000000000000',
        NoNewPrivs: '1',
      });
    });

    it('the default spec gives AUDIT_WRITE, KILL, NET_BIND_SERVICE; noNewPrivileges false shows 0', async () => {
      const r = await runToEnd({
        args: capLines,
        mutate: (s) => {
          s.process.noNewPrivileges = false;
        },
      });
      expect(kv(r.lines)).toMatchObject({
        CapInh: '0000000000000000',
        CapPrm: '0000000020000420',
        CapEff: '0000000020000420',
        CapBnd: '0000000020000420',
        NoNewPrivs: '0',
      });
    });

    it('a non-root user keeps exactly its inheritable+ambient capability across exec', async () => {
      // For root, exec recomputes permitted from the bounding set; for another uid only the
      // inheritable and ambient sets set by capset/prctl survive.
      const r = await runToEnd({
        args: capLines,
        mutate: (s) => {
          const nbs = ['CAP_NET_BIND_SERVICE'];
          s.process.user = { uid: 1000, gid: 1000 };
          s.process.capabilities.inheritable = [...nbs];
          s.process.capabilities.ambient = [...nbs];
          s.process.capabilities.permitted = [...nbs];
          s.process.capabilities.effective = [...nbs];
        },
      });
      expect(kv(r.lines)).toEqual({
        CapInh: '0000000000000400',
        CapPrm: '0000000000000400',
        CapEff: '0000000000000400',
        CapBnd: '0000000020000420',
        CapAmb: '0000000000000400',
        NoNewPrivs: '1',
      });
    });

    it('user 1000:1000 with additional gid 5', async () => {
      const r = await runToEnd({
        args: ['sh', '-c', 'id; grep -E "^(Uid|Gid|Groups|CapEff)" /proc/self/status | tr -s "\\t" " "'],
        mutate: (s) => {
          s.process.user = { uid: 1000, gid: 1000, additionalGids: [5] };
        },
      });
      expect(r.exit.status).toBe(0);
      expect(r.lines[0]).toMatch(/^uid=1000 gid=1000 groups=5\(tty\)$/);
      expect(r.lines.slice(1)).toEqual([
        'Uid: 1000 1000 1000 1000',
        'Gid: 1000 1000 1000 1000',
        'Groups: 5 ',
        'CapEff: 0000000000000000',
      ]);
    });

    it('env is set and cwd is the configured dir, created when missing', async () => {
      const r = await runToEnd({
        args: ['sh', '-c', 'echo "cwd=$(pwd)"; echo "foo=$FOO"; echo "home=$HOME"; echo "path=$PATH"'],
        copyRootfs: true,
        mutate: (s) => {
          s.process.cwd = '/work/deep/dir';
          s.process.env.push('FOO=bar baz');
        },
      });
      expect(kv(r.lines)).toEqual({
        cwd: '/work/deep/dir',
        foo: 'bar baz',
        home: '/',
        path: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      });
      expect(fs.statSync(path.join(r.bundle.rootfs, 'work/deep/dir')).isDirectory()).toBe(true);
    });

    it('rlimits: RLIMIT_NOFILE 1024/1024 from the default spec, and other values', async () => {
      const r = await runToEnd({ args: ['sh', '-c', 'ulimit -n; ulimit -Hn'] });
      expect(r.lines).toEqual(['1024', '1024']);
      const r2 = await runToEnd({
        args: ['sh', '-c', 'ulimit -n; ulimit -Hn'],
        mutate: (s) => {
          s.process.rlimits = [{ type: 'RLIMIT_NOFILE', soft: 512, hard: 2048 }];
        },
      });
      expect(r2.lines).toEqual(['512', '2048']);
    });
  });
});
