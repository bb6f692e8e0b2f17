// End-to-end tests of the nsinit CLI: the built dist/main.js run as a subprocess against real
// containers (namespaces, cgroups, a busybox rootfs). Needs root on Linux.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultSeccompProfile, nativeArch } from '@tsc/libcontainer';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import {
  alive,
  buildRootfs,
  cgroupDirs,
  type NsinitOptions,
  nsinit,
  type Result,
  STACK_LINE,
  show,
  skipReason,
  spawnNsinit,
  waitFor,
} from './helpers.js';

// biome-ignore lint/suspicious/noExplicitAny: tests edit configs freely, also into invalid shapes
type Spec = any;

const skip = skipReason();
const ACCEPTANCE = 'hostname; echo $$; ls /sys/class/net; ls /proc/self/fd; exit 7';

describe.skipIf(skip !== undefined)('nsinit CLI', () => {
  let tmp: string;
  let root: string;
  let rootfs: string;
  let template: Spec;
  let created: string[] = [];
  let n = 0;

  /** A unique container id (also unique as a cgroup name across concurrent test runs). */
  function newId(name: string): string {
    const id = `cli${process.pid}-${name}-${++n}`;
    created.push(id);
    return id;
  }

  /** nsinit with this file's state root; no invocation may ever print a JS stack trace. */
  async function ns(args: string[], opts: NsinitOptions = {}): Promise<Result> {
    const r = await nsinit(tmp, ['--root', root, ...args], opts);
    expect(r.stderr, show(r)).not.toMatch(STACK_LINE);
    return r;
  }

  function ok(r: Result): Result {
    expect(r.code, show(r)).toBe(0);
    return r;
  }

  /** Exit 1 and exactly one line `nsinit: …` on stderr, matching `re`. */
  function fails(r: Result, re: RegExp): void {
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr, show(r)).toMatch(/^nsinit: [^\n]+\n$/);
    expect(r.stderr, show(r)).toMatch(re);
  }

  async function state(id: string): Promise<Spec> {
    return JSON.parse(ok(await ns(['state', id])).stdout);
  }

  async function status(id: string): Promise<string> {
    const r = await ns(['state', id]);
    return r.code === 0 ? JSON.parse(r.stdout).status : `state failed: ${r.stderr}`;
  }

  /** Wait for the init to die (cheaply, without nsinit), then `state` must say stopped. */
  async function stopped(id: string, pid: number): Promise<void> {
    await waitFor(`container ${id} (pid ${pid}) to exit`, () => !alive(pid));
    expect(await status(id)).toBe('stopped');
  }

  /** Pids in the container's cgroup, read from the host (for polling without nsinit). */
  function cgroupPids(id: string): number[] {
    const procs = path.join('/sys/fs/cgroup/pids/nsinit', id, 'cgroup.procs');
    if (!fs.existsSync(procs)) return [];
    return fs.readFileSync(procs, 'utf8').split('\n').filter(Boolean).map(Number);
  }

  function tmpDir(name: string): string {
    return fs.mkdtempSync(path.join(tmp, `${name}-`));
  }

  interface BundleOpts {
    hostname?: string;
    /** Bind this host dir read-write at /home in the container. */
    home?: string;
    mutate?: (s: Spec) => void;
  }

  /** A bundle dir whose config.json runs `args` on the shared (read-only) rootfs. */
  function bundle(args: string[], o: BundleOpts = {}): string {
    const dir = tmpDir('bundle');
    const s: Spec = structuredClone(template);
    s.process.args = args;
    if (o.hostname) s.hostname = o.hostname;
    if (o.home)
      s.mounts.push({ destination: '/home', type: 'bind', source: o.home, options: ['rbind', 'rw'] });
    o.mutate?.(s);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(s, null, 2));
    return dir;
  }

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nsinit-cli-test-'));
    root = path.join(tmp, 'state');
    fs.mkdirSync(root);
    rootfs = buildRootfs();
    const t = tmpDir('template');
    ok(await nsinit(tmp, ['spec'], { cwd: t }));
    template = JSON.parse(fs.readFileSync(path.join(t, 'config.json'), 'utf8'));
    template.process.terminal = false;
    template.root.path = rootfs;
  });

  afterEach(async () => {
    const ids = created;
    created = [];
    for (const id of ids) {
      if (!fs.existsSync(path.join(root, id)) && cgroupDirs(id).length === 0) continue;
      const r = await nsinit(tmp, ['--root', root, 'delete', '-f', id]);
      expect(r.code, `cleanup of ${id}: ${show(r)}`).toBe(0);
    }
    expect(fs.readdirSync(root), 'containers left in the state root').toEqual([]);
  });

  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    if (rootfs) fs.rmSync(path.dirname(rootfs), { recursive: true, force: true });
  });

  describe('spec', () => {
    test('writes runc’s default config.json once; --rootless has a user namespace and no network one', async () => {
      const dir = tmpDir('spec');
      ok(await ns(['spec'], { cwd: dir }));
      expect(fs.readdirSync(dir)).toEqual(['config.json']);
      const text = fs.readFileSync(path.join(dir, 'config.json'), 'utf8');
      const s = JSON.parse(text);
      expect(s.ociVersion).toMatch(/^1\.\d+\.\d+$/);
      expect(s.root).toEqual({ path: 'rootfs', readonly: true });
      expect(s.process.args).toEqual(['sh']);
      expect(s.process.terminal).toBe(true);
      expect(s.process.noNewPrivileges).toBe(true);
      const caps = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];
      for (const set of ['bounding', 'effective', 'permitted']) {
        expect([...s.process.capabilities[set]].sort(), set).toEqual(caps);
      }
      expect(s.mounts.map((m: Spec) => `${m.destination}:${m.type}`)).toEqual([
        '/proc:proc',
        '/dev:tmpfs',
        '/dev/pts:devpts',
        '/dev/shm:tmpfs',
        '/dev/mqueue:mqueue',
        '/sys:sysfs',
        '/sys/fs/cgroup:cgroup',
      ]);
      expect(s.linux.namespaces.map((x: Spec) => x.type)).toEqual([
        'pid',
        'network',
        'ipc',
        'uts',
        'mount',
        'cgroup',
      ]);
      expect(s.linux.maskedPaths).toContain('/proc/kcore');
      expect(s.linux.readonlyPaths).toContain('/proc/sys');

      const again = await ns(['spec'], { cwd: dir });
      fails(again, /config\.json/);
      expect(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).toBe(text);

      const rl = tmpDir('spec-rootless');
      ok(await ns(['spec', '--rootless', '--bundle', rl]));
      const r = JSON.parse(fs.readFileSync(path.join(rl, 'config.json'), 'utf8'));
      const types = r.linux.namespaces.map((x: Spec) => x.type);
      expect(types).toContain('user');
      expect(types).not.toContain('network');
      expect(r.linux.uidMappings).toEqual([{ containerID: 0, hostID: 0, size: 1 }]);
      expect(r.linux.gidMappings).toEqual([{ containerID: 0, hostID: 0, size: 1 }]);
      expect(r.linux.resources).toBeUndefined();
    });

    test.skipIf(!['x86_64', 'aarch64'].includes(nativeArch() ?? ''))(
      "includes linux.seccomp: Docker's default profile for the config's capabilities, loaded by run",
      async () => {
        const dir = tmpDir('spec-seccomp');
        ok(await ns(['spec'], { cwd: dir }));
        const s = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
        const arch = nativeArch() as 'x86_64' | 'aarch64';
        expect(s.linux.seccomp).toEqual(
          JSON.parse(
            JSON.stringify(defaultSeccompProfile(arch, { capabilities: s.process.capabilities.bounding })),
          ),
        );
        expect(s.linux.seccomp).toMatchObject({ defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 1 });
        // Without CAP_SYS_ADMIN nothing allows unshare, mount or keyctl.
        const allowed = s.linux.seccomp.syscalls
          .filter((r: Spec) => r.action === 'SCMP_ACT_ALLOW')
          .flatMap((r: Spec) => r.names);
        expect(allowed).toContain('read');
        for (const name of ['unshare', 'mount', 'keyctl']) expect(allowed).not.toContain(name);

        // The template of these tests is that config: the filter is loaded. busybox `unshare true`
        // calls unshare(0), which needs no capability: only the filter refuses it.
        const probe = "grep '^Seccomp:' /proc/self/status; unshare true; echo unshare=$?";
        const on = await ns(['run', '-b', bundle(['sh', '-c', probe]), newId('seccomp')]);
        expect(on.code, show(on)).toBe(0);
        expect(on.stdout).toBe('Seccomp:\t2\nunshare=1\n');
        expect(on.stderr).toMatch(/^unshare: .*Operation not permitted$/m);
        const off = await ns([
          'run',
          '-b',
          bundle(['sh', '-c', probe], {
            mutate: (x) => {
              delete x.linux.seccomp;
            },
          }),
          newId('noseccomp'),
        ]);
        expect(off.code, show(off)).toBe(0);
        expect(off.stdout).toBe('Seccomp:\t0\nunshare=0\n');
      },
    );
  });

  describe('run', () => {
    async function acceptance(extra: string[]): Promise<void> {
      const id = newId('acc');
      const b = bundle(['sh', '-c', ACCEPTANCE], { hostname: 'box-7' });
      const r = await ns(['run', ...extra, '-b', b, id]);
      expect(r.code, show(r)).toBe(7);
      expect(r.stdout).toBe('box-7\n1\nlo\n0\n1\n2\n3\n');
      expect(r.stderr).toBe('');
      expect(ok(await ns(['list', '-q'])).stdout).toBe('');
      expect(fs.existsSync(`/sys/fs/cgroup/memory/nsinit/${id}`)).toBe(false);
      expect(cgroupDirs(id)).toEqual([]);
    }

    test('acceptance: hostname, pid 1, only lo, fds 0-3, exit status; nothing left behind', async () => {
      await acceptance([]);
    });

    test('--no-pivot runs the acceptance process too', async () => {
      await acceptance(['--no-pivot']);
    });

    test('--keep leaves the stopped container for delete', async () => {
      const id = newId('keep');
      const r = await ns(['run', '--keep', '-b', bundle(['sh', '-c', 'exit 3']), id]);
      expect(r.code, show(r)).toBe(3);
      expect(await status(id)).toBe('stopped');
      expect(ok(await ns(['list', '-q'])).stdout).toBe(`${id}\n`);
      ok(await ns(['delete', id]));
      expect(ok(await ns(['list', '-q'])).stdout).toBe('');
      expect(cgroupDirs(id)).toEqual([]);
    });

    test('-d returns while the container keeps running; kill and delete end it', async () => {
      const id = newId('detach');
      const t0 = Date.now();
      ok(await ns(['run', '-d', '-b', bundle(['sleep', '1000']), id], { timeout: 10_000 }));
      expect(Date.now() - t0).toBeLessThan(10_000);
      const s = await state(id);
      expect(s.status).toBe('running');
      expect(alive(s.pid)).toBe(true);
      expect(cgroupDirs(id).length).toBeGreaterThan(0);
      ok(await ns(['kill', id, 'KILL']));
      await stopped(id, s.pid);
      ok(await ns(['delete', id]));
      fails(await ns(['state', id]), /does not exist/);
      expect(cgroupDirs(id)).toEqual([]);
    });

    test('forwards SIGTERM to the container and exits with its status', async () => {
      const id = newId('sigterm');
      const home = tmpDir('home');
      const b = bundle(
        ['sh', '-c', 'trap "exit 42" TERM; echo ready > /home/ready; while :; do sleep 0.1; done'],
        { home },
      );
      const p = spawnNsinit(tmp, ['--root', root, 'run', '-b', b, id]);
      try {
        await waitFor('the trap to be set', () => fs.existsSync(path.join(home, 'ready')));
      } catch (e) {
        p.kill('SIGKILL');
        throw e;
      }
      p.kill('SIGTERM');
      const r = await p.done;
      expect(r.stderr).not.toMatch(STACK_LINE);
      expect(r.code, show(r)).toBe(42);
      expect(ok(await ns(['list', '-q'])).stdout).toBe('');
      expect(cgroupDirs(id)).toEqual([]);
    });

    test('--preserve-fds 1 passes fd 3; without it the container has no fd 3', async () => {
      const file = path.join(tmp, 'fd3.txt');
      const fd = fs.openSync(file, 'w+');
      try {
        const r = await ns(
          ['run', '--preserve-fds', '1', '-b', bundle(['sh', '-c', 'echo hi >&3']), newId('fds')],
          {
            extraFds: [fd],
          },
        );
        expect(r.code, show(r)).toBe(0);
        expect(fs.readFileSync(file, 'utf8')).toBe('hi\n');

        fs.truncateSync(file);
        const r2 = await ns(['run', '-b', bundle(['sh', '-c', 'echo x >&3']), newId('nofds')], {
          extraFds: [fd],
        });
        expect(r2.code, show(r2)).not.toBe(0);
        expect(r2.stderr).toMatch(/bad file descriptor/i);
        expect(fs.readFileSync(file, 'utf8')).toBe('');
      } finally {
        fs.closeSync(fd);
      }
    });

    test('--systemd-cgroup fails with one line and creates nothing', async () => {
      const id = newId('systemd');
      const r = await ns(['--systemd-cgroup', 'run', '-b', bundle(['true']), id]);
      fails(r, /systemd/);
      expect(fs.readdirSync(root)).toEqual([]);
      expect(cgroupDirs(id)).toEqual([]);
    });
  });

  describe('create, start, state, list, delete', () => {
    test('the whole life cycle, and a second create of the same id', async () => {
      const id = newId('c2');
      const home = tmpDir('home');
      const b = bundle(['sh', '-c', 'echo started > /home/started'], { home });
      const pidFile = path.join(tmp, `${id}.pid`);
      // A relative bundle path: state must report it absolute.
      const r = await ns(['create', '-b', path.relative(tmp, b), '--pid-file', pidFile, id], { cwd: tmp });
      expect(r.code, show(r)).toBe(0);
      expect(r.stderr).toBe('');

      const s = await state(id);
      expect(s.status).toBe('created');
      expect(s.id).toBe(id);
      expect(s.ociVersion).toMatch(/^1\.\d+\.\d+$/);
      expect(Number.isInteger(s.pid) && s.pid > 0).toBe(true);
      expect(path.isAbsolute(s.bundle)).toBe(true);
      expect(s.bundle).toBe(b);
      expect(alive(s.pid)).toBe(true);
      expect(fs.readFileSync(pidFile, 'utf8').trim()).toBe(String(s.pid));
      expect(fs.existsSync(path.join(home, 'started'))).toBe(false);
      const cgroups = cgroupDirs(id);
      expect(cgroups.length).toBeGreaterThan(0);

      const dup = await ns(['create', '-b', b, id]);
      expect(dup.code, show(dup)).toBe(1);
      expect(dup.stderr).toBe(`nsinit: container "${id}" already exists\n`);
      const s2 = await state(id);
      expect(s2.status).toBe('created');
      expect(s2.pid).toBe(s.pid);
      expect(alive(s.pid)).toBe(true);
      expect(cgroupDirs(id)).toEqual(cgroups);
      expect(fs.readFileSync(pidFile, 'utf8').trim()).toBe(String(s.pid));

      const table = ok(await ns(['list']))
        .stdout.trimEnd()
        .split('\n');
      expect(table[0]).toMatch(/^ID\s+PID\s+STATUS\s+BUNDLE\s+CREATED\s+OWNER$/);
      expect(table.slice(1).map((l) => l.split(/\s+/))).toEqual([
        [id, String(s.pid), 'created', b, s.created, 'root'],
      ]);
      const json = JSON.parse(ok(await ns(['list', '-f', 'json'])).stdout);
      expect(json).toEqual([expect.objectContaining({ id, pid: s.pid, status: 'created', bundle: b })]);
      expect(ok(await ns(['list', '-q'])).stdout).toBe(`${id}\n`);

      const st = await ns(['start', id]);
      expect(st.code, show(st)).toBe(0);
      await waitFor('the container process to write /home/started', () =>
        fs.existsSync(path.join(home, 'started')),
      );
      expect(fs.readFileSync(path.join(home, 'started'), 'utf8')).toBe('started\n');
      await stopped(id, s.pid);
      fails(await ns(['start', id]), /stopped/);

      ok(await ns(['delete', id]));
      fails(await ns(['state', id]), /does not exist/);
      expect(ok(await ns(['list', '-q'])).stdout).toBe('');
      expect(cgroupDirs(id)).toEqual([]);
      expect(fs.readdirSync(root)).toEqual([]);
    });
  });

  describe('kill and delete', () => {
    test('delete of a running container needs -f', async () => {
      const id = newId('busy');
      ok(await ns(['run', '-d', '-b', bundle(['sleep', '1000']), id]));
      const s = await state(id);
      fails(await ns(['delete', id]), /not stopped/);
      expect(await status(id)).toBe('running');
      expect(alive(s.pid)).toBe(true);
      ok(await ns(['delete', '-f', id]));
      expect(alive(s.pid)).toBe(false);
      fails(await ns(['state', id]), /does not exist/);
      expect(cgroupDirs(id)).toEqual([]);
    });

    test('delete -f of an unknown id succeeds', async () => {
      const r = await ns(['delete', '-f', `cli${process.pid}-nosuch`]);
      expect(r.code, show(r)).toBe(0);
      expect(r.stderr).toBe('');
      fails(await ns(['delete', `cli${process.pid}-nosuch`]), /does not exist/);
    });

    test.each(['KILL', '9', 'SIGKILL'])('kill ID %s stops the container', async (sig) => {
      const id = newId(`kill${sig}`);
      ok(await ns(['run', '-d', '-b', bundle(['sleep', '1000']), id]));
      const s = await state(id);
      expect(s.status).toBe('running');
      ok(await ns(['kill', id, sig]));
      await stopped(id, s.pid);
      fails(await ns(['kill', id, sig]), /not running/);
      ok(await ns(['delete', id]));
      expect(cgroupDirs(id)).toEqual([]);
    });

    test('kill rejects an unknown signal', async () => {
      const id = newId('badsig');
      ok(await ns(['run', '-d', '-b', bundle(['sleep', '1000']), id]));
      fails(await ns(['kill', id, 'SIGNOPE']), /SIGNOPE/);
      expect(await status(id)).toBe('running');
    });

    test('kill -a signals every process of the container', async () => {
      const id = newId('killall');
      const home = tmpDir('home');
      // The init (pid 1 of its namespace, no TERM handler) ignores SIGTERM; its children do not.
      const b = bundle(
        ['sh', '-c', 'sleep 1000 & sleep 1000 & wait; echo waited > /home/waited; exec sleep 1000'],
        {
          home,
        },
      );
      ok(await ns(['run', '-d', '-b', b, id]));
      const s = await state(id);
      await waitFor('three processes', () => cgroupPids(id).length === 3);
      // Plain kill reaches only the init, which ignores it: the children live on.
      ok(await ns(['kill', id, 'TERM']));
      await new Promise((r) => setTimeout(r, 300));
      expect(JSON.parse(ok(await ns(['ps', '-f', 'json', id])).stdout)).toHaveLength(3);
      ok(await ns(['kill', '-a', id]));
      await waitFor('the children to die', () => fs.existsSync(path.join(home, 'waited')));
      expect(await status(id)).toBe('running');
      ok(await ns(['kill', '-a', id, 'KILL']));
      await stopped(id, s.pid);
      expect(JSON.parse(ok(await ns(['ps', '-f', 'json', id])).stdout)).toEqual([]);
      ok(await ns(['delete', id]));
    });
  });

  describe('ps', () => {
    test('json lists host pids including the init; the table has a PID header and the init row', async () => {
      const id = newId('ps');
      ok(await ns(['run', '-d', '-b', bundle(['sh', '-c', 'sleep 1000 & wait']), id]));
      const s = await state(id);
      await waitFor('two processes', () => cgroupPids(id).length === 2);
      const pids: number[] = JSON.parse(ok(await ns(['ps', '-f', 'json', id])).stdout);
      expect(pids).toHaveLength(2);
      expect(pids).toContain(s.pid);
      for (const p of pids) {
        expect(alive(p)).toBe(true);
        expect(fs.readFileSync(`/proc/${p}/cgroup`, 'utf8')).toContain(`/nsinit/${id}`);
      }

      const table = ok(await ns(['ps', id]))
        .stdout.trimEnd()
        .split('\n');
      const header = (table[0] ?? '').trim().split(/\s+/);
      const col = header.indexOf('PID');
      expect(col, table.join('\n')).toBeGreaterThanOrEqual(0);
      const rows = table.slice(1).map((l) => l.trim().split(/\s+/));
      expect(rows.map((r) => Number(r[col])).sort()).toEqual([...pids].sort());
      const init = rows.find((r) => Number(r[col]) === s.pid);
      expect(init?.join(' ')).toMatch(/sh -c sleep 1000 & wait/);

      const custom = ok(await ns(['ps', id, '--', '-o', 'pid,comm']))
        .stdout.trimEnd()
        .split('\n');
      expect(custom[0]?.trim().split(/\s+/)).toEqual(['PID', 'COMMAND']);
      expect(custom.slice(1).map((l) => l.trim().split(/\s+/)[0])).toContain(String(s.pid));

      fails(await ns(['ps', `cli${process.pid}-nosuch`]), /does not exist/);
    });
  });

  describe('errors', () => {
    const cases: [string, (s: Spec) => void, RegExp][] = [
      [
        'unknown namespace type',
        (s) => {
          s.linux.namespaces[0].type = 'bogus';
        },
        /linux\.namespaces\[0\]\.type/,
      ],
      [
        'uid as a string',
        (s) => {
          s.process.user.uid = '0';
        },
        /process\.user\.uid/,
      ],
      [
        'missing root',
        (s) => {
          delete s.root;
        },
        // the field as a token ("…/config.json: root: required"), not root.path or a path
        /[\s:]root[\s:]/,
      ],
    ];

    test.each(cases)(
      'invalid config (%s): one line naming the field, nothing created',
      async (_name, mutate, re) => {
        const b = bundle(['true'], { mutate });
        for (const verb of ['run', 'create']) {
          const id = newId('bad');
          const r = await ns([verb, '-b', b, id]);
          fails(r, re);
          expect(r.stdout).toBe('');
          expect(fs.readdirSync(root)).toEqual([]);
          expect(cgroupDirs(id)).toEqual([]);
        }
      },
    );

    test('state of an unknown container, and an invalid id', async () => {
      fails(await ns(['state', `cli${process.pid}-nosuch`]), /does not exist/);
      fails(await ns(['state', '../x']), /invalid container id/);
    });

    test('--log with --log-format json and text records the error', async () => {
      const jsonLog = path.join(tmp, 'log.json');
      const r = await ns(['--log', jsonLog, '--log-format', 'json', 'state', `cli${process.pid}-nosuch`]);
      fails(r, /does not exist/);
      const lines = fs.readFileSync(jsonLog, 'utf8').trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      const entry = JSON.parse(lines[0] ?? '');
      expect(entry.level).toBe('error');
      expect(entry.msg).toMatch(/does not exist/);
      expect(Number.isNaN(Date.parse(entry.time))).toBe(false);

      const textLog = path.join(tmp, 'log.txt');
      const r2 = await ns(['--log', textLog, '--log-format', 'text', 'delete', `cli${process.pid}-nosuch`]);
      fails(r2, /does not exist/);
      const text = fs.readFileSync(textLog, 'utf8');
      expect(text).toMatch(/^time="[^"]+" level=error msg="[^\n]*does not exist[^\n]*"\n$/);
    });
  });
});
