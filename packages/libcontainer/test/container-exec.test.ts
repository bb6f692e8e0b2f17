// Container.exec on the real kernel: the exec'd process joins every namespace and the cgroup of the
// container's init, gets the attributes of the process it was given (user, groups, env, cwd,
// capabilities, rlimits, no_new_privs, umask), leaks no fd, and reports its exit status; failures
// (a missing command, a stopped container) are ContainerErrors that leave nothing running.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Container, type Process } from '../src/index.js';
import {
  alive,
  type Bundle,
  type BundleOptions,
  cgroupDir,
  containerError,
  DIST_INDEX,
  Fixture,
  notRoot,
  type Output,
  rootfs,
  rootfsTopLevel,
  skipUnlessRoot,
  waitFor,
} from './fixtures.js';

const NAMESPACES = ['pid', 'mnt', 'uts', 'ipc', 'net', 'cgroup'] as const;

/** A child Node process that execs into a container with --preserve-fds style extra fds. */
const CHILD = `
const { Container } = await import(process.env.TSC_DIST);
const o = JSON.parse(process.env.TSC_EXEC);
const c = Container.load(o.id, o.root);
try {
  const p = await c.exec(o.proc, { preserveFds: o.preserveFds, pidFile: o.pidFile });
  const r = await p.exited;
  process.stderr.write('RESULT ' + JSON.stringify({ pid: p.pid, status: r.status }) + '\\n');
} catch (e) {
  process.stderr.write('ERROR ' + e.code + ' ' + e.message + '\\n');
}
`;

function kv(lines: string[]): Record<string, string> {
  const m: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf('=');
    if (i > 0) m[l.slice(0, i)] = l.slice(i + 1);
  }
  return m;
}

/** `Key:\tvalue` lines of /proc/<pid>/status as a map. */
function procStatus(pid: number): Record<string, string> {
  const m: Record<string, string> = {};
  for (const l of fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const i = l.indexOf(':');
    if (i > 0) m[l.slice(0, i)] = l.slice(i + 1).trim();
  }
  return m;
}

describe.skipIf(notRoot)(
  `Container.exec on the real kernel${notRoot ? ` (${skipUnlessRoot()})` : ''}`,
  () => {
    let fx: Fixture;
    let topLevel: string[];

    beforeAll(() => {
      fx = new Fixture('exec');
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

    /** A running `sleep 1000` container. */
    async function running(opts: Partial<BundleOptions> = {}) {
      const b: Bundle = fx.makeBundle({ args: ['sleep', '1000'], ...opts });
      const id = fx.id();
      const out = fx.output();
      const { container, exited } = await Container.run({
        id,
        bundle: b.dir,
        root: fx.root,
        stdio: out.stdio,
      });
      return { b, id, container, exited, pid: container.state().pid, out };
    }

    /** Exec `args` (with `extra` process fields) and wait for it: status and output lines. */
    async function execWait(c: Container, b: Bundle, args: string[], extra: Partial<Process> = {}) {
      const out: Output = fx.output();
      const p = await c.exec({ ...b.config.process!, ...extra, args }, { stdio: out.stdio });
      const exit = await p.exited;
      return { exit, lines: out.lines(), out: out.read(), pid: p.pid };
    }

    it('joins the pid/mnt/uts/ipc/net/cgroup namespaces and the cgroup of the init; sees its hostname and rootfs', async () => {
      const r = await running({
        copyRootfs: true,
        mutate: (s) => {
          s.hostname = 'exec-box';
        },
      });
      fs.writeFileSync(path.join(r.b.rootfs, 'marker'), 'in-the-rootfs\n');
      const out = fx.output();
      const p = await r.container.exec(
        { ...r.b.config.process!, args: ['sleep', '1000'] },
        { stdio: out.stdio },
      );
      expect(alive(p.pid)).toBe(true);
      for (const ns of NAMESPACES) {
        const mine = fs.readlinkSync(`/proc/${p.pid}/ns/${ns}`);
        expect(mine, ns).toBe(fs.readlinkSync(`/proc/${r.pid}/ns/${ns}`));
        // …and they are the container's own, not the host's.
        expect(mine, ns).not.toBe(fs.readlinkSync(`/proc/self/ns/${ns}`));
      }
      // In the container's cgroup in every v1 hierarchy that has one (memory and pids at least).
      const cg = fs.readFileSync(`/proc/${p.pid}/cgroup`, 'utf8').split('\n');
      const cgPath = (ctl: string) =>
        cg.find((l) => l.split(':')[1]?.split(',').includes(ctl))?.split(':')[2];
      expect(cgPath('memory')).toBe(`/nsinit/${r.id}`);
      expect(cgPath('pids')).toBe(`/nsinit/${r.id}`);
      expect(cgPath('memory')).toBe(
        fs
          .readFileSync(`/proc/${r.pid}/cgroup`, 'utf8')
          .split('\n')
          .find((l) => l.split(':')[1]?.split(',').includes('memory'))
          ?.split(':')[2],
      );
      expect(r.container.pids().sort()).toEqual([r.pid, p.pid].sort());
      expect(fs.readFileSync(path.join(cgroupDir(r.id, 'pids'), 'cgroup.procs'), 'utf8')).toContain(
        `${p.pid}\n`,
      );
      // Its pid in the container's pid namespace is not 1; its root is the rootfs.
      const nspid = procStatus(p.pid)['NSpid']?.split(/\s+/).map(Number) ?? [];
      expect(nspid).toHaveLength(2);
      expect(nspid[0]).toBe(p.pid);
      expect(nspid[1]).toBeGreaterThan(1);
      expect(fs.statSync(`/proc/${p.pid}/root`).ino).toBe(fs.statSync(r.b.rootfs).ino);

      const e = await execWait(r.container, r.b, [
        'sh',
        '-c',
        'hostname; cat /marker; echo $$; ls /; exit 7',
      ]);
      expect(e.exit).toEqual({ status: 7, coreDumped: false });
      expect(e.lines.slice(0, 2)).toEqual(['exec-box', 'in-the-rootfs']);
      expect(Number(e.lines[2])).toBeGreaterThan(1);
      expect(e.lines.slice(3).sort()).toEqual(
        fs
          .readdirSync(r.b.rootfs)
          .filter((n) => !n.startsWith('.'))
          .sort(),
      );

      // A signal ends it with the signal's status; deleting the container kills what is left.
      process.kill(p.pid, 'SIGTERM');
      expect(await p.exited).toEqual({ status: 143, signal: 15, coreDumped: false });
      const p2 = await r.container.exec(
        { ...r.b.config.process!, args: ['sleep', '1000'] },
        { stdio: out.stdio },
      );
      await r.container.delete({ force: true });
      expect(await p2.exited).toMatchObject({ signal: 9 });
      expect(await r.exited).toMatchObject({ signal: 9 });
    });

    it('applies user, additionalGids, env, cwd, umask, rlimits, no_new_privs and capabilities', async () => {
      const r = await running();
      const probe = [
        'sh',
        '-c',
        `echo "id=$(id)"; echo "cwd=$(pwd)"; echo "foo=$FOO"; echo "home=$HOME"; echo "umask=$(umask)"
       echo "nofile=$(ulimit -n)/$(ulimit -Hn)"
       grep -E '^(Cap|NoNewPrivs|Groups)' /proc/self/status | tr -d '\\t' | tr : =`,
      ];
      const u = await execWait(r.container, r.b, probe, {
        user: { uid: 1000, gid: 1000, additionalGids: [5, 100], umask: 0o027 },
        env: ['PATH=/bin', 'FOO=bar baz', 'HOME=/home'],
        cwd: '/tmp',
        rlimits: [{ type: 'RLIMIT_NOFILE', soft: 512, hard: 1024 }],
        noNewPrivileges: true,
        capabilities: {
          bounding: ['CAP_NET_BIND_SERVICE', 'CAP_KILL'],
          effective: ['CAP_NET_BIND_SERVICE'],
          permitted: ['CAP_NET_BIND_SERVICE'],
          inheritable: ['CAP_NET_BIND_SERVICE'],
          ambient: ['CAP_NET_BIND_SERVICE'],
        },
      });
      expect(u.exit.status, u.out).toBe(0);
      expect(kv(u.lines)).toEqual({
        id: 'uid=1000 gid=1000 groups=5(tty),100',
        cwd: '/tmp',
        foo: 'bar baz',
        home: '/home',
        umask: '0027',
        nofile: '512/1024',
        Groups: '5 100 ',
        // A non-root user keeps exactly its inheritable+ambient capability across exec.
        CapInh: '0000000000000400',
        CapPrm: '0000000000000400',
        CapEff: '0000000000000400',
        CapBnd: '0000000000000420',
        CapAmb: '0000000000000400',
        NoNewPrivs: '1',
      });

      // root with two capabilities only, and no no_new_privs.
      const caps = ['CAP_NET_RAW', 'CAP_SYS_ADMIN'];
      const root = await execWait(r.container, r.b, probe, {
        noNewPrivileges: false,
        capabilities: { bounding: caps, effective: caps, permitted: caps },
      });
      expect(kv(root.lines)).toMatchObject({
        // no supplementary groups at all (setgroups of an empty list)
        id: 'uid=0(root) gid=0(root)',
        Groups: ' ',
        cwd: '/',
        home: '/',
        umask: '0022',
        CapInh: '0000000000000000',
        CapPrm: '0000000000202000',
        CapEff: '0000000000202000',
        CapBnd: '0000000000202000',
        CapAmb: '0000000000000000',
        NoNewPrivs: '0',
      });
      // The init keeps its own (the default spec's) set: exec changed nothing of it.
      expect(procStatus(r.pid)['CapBnd']).toBe('0000000020000420');
    });

    it('leaks no fd into the process (only 0 1 2, and ls’s own 3)', async () => {
      const r = await running();
      const e = await execWait(r.container, r.b, ['ls', '/proc/self/fd']);
      expect(e.lines).toEqual(['0', '1', '2', '3']);
    });

    it('a command that does not exist: StartFailed "executable file not found", nothing left', async () => {
      const r = await running();
      for (const [args, msg] of [
        [['nonexistent-cmd'], 'exec "nonexistent-cmd": executable file not found in $PATH'],
        [['/bin/nonexistent-cmd'], 'exec "/bin/nonexistent-cmd"'],
      ] as const) {
        const e = await containerError(
          r.container.exec({ ...r.b.config.process!, args: [...args] }, { stdio: r.out.stdio }),
        );
        expect(e.code).toBe('StartFailed');
        expect(e.id).toBe(r.id);
        expect(e.message).toContain(msg);
        expect(e.message).toContain('ENOENT');
        expect(e.message).not.toContain('\n');
      }
      // a cwd that does not exist
      const e = await containerError(
        r.container.exec(
          { ...r.b.config.process!, args: ['true'], cwd: '/nonexistent' },
          { stdio: r.out.stdio },
        ),
      );
      expect(e.code).toBe('StartFailed');
      expect(e.message).toContain('chdir to cwd /nonexistent: ENOENT');
      // Only the init is in the cgroup; the container is unharmed.
      await waitFor(() => r.container.pids().length === 1, 3000, 'the failed execs to be gone');
      expect(r.container.pids()).toEqual([r.pid]);
      expect(r.container.state().status).toBe('running');
      expect(r.out.read()).toBe('');
    });

    it('a stopped container: InvalidState; a created one can be exec’d into before start', async () => {
      const b = fx.makeBundle({ args: ['true'] });
      const id = fx.id();
      const out = fx.output();
      const { container, exited } = await Container.run({
        id,
        bundle: b.dir,
        root: fx.root,
        stdio: out.stdio,
      });
      await exited;
      expect(container.state().status).toBe('stopped');
      const e = await containerError(container.exec({ ...b.config.process!, args: ['true'] }));
      expect(e.code).toBe('InvalidState');
      expect(e.message).toBe(`cannot exec in container "${id}": it is stopped`);
      await container.delete();
      const gone = await containerError(Promise.resolve().then(() => Container.load(id, fx.root)));
      expect(gone.code).toBe('NotFound');

      const b2 = fx.makeBundle({ args: ['sh', '-c', 'echo started'] });
      const out2 = fx.output();
      const c2 = await Container.create({ id: fx.id(), bundle: b2.dir, root: fx.root, stdio: out2.stdio });
      const x = await execWait(c2, b2, ['sh', '-c', 'echo exec; cat /proc/1/cmdline | tr "\\0" " "']);
      expect(x.exit.status).toBe(0);
      // The init still waits for start (it is the executor, not sh).
      expect(x.lines[0]).toBe('exec');
      expect(x.lines[1]).not.toContain('echo started');
      expect(out2.read()).toBe('');
      await c2.start();
      await waitFor(() => out2.read() === 'started\n', 5000, 'the started init');
    });

    it('terminal: true with a console socket that is not there is refused before anything starts', async () => {
      const r = await running();
      const sock = path.join(fx.tempDir('sock'), 'missing.sock');
      const e = await containerError(
        r.container.exec({ ...r.b.config.process!, args: ['true'], terminal: true }, { consoleSocket: sock }),
      );
      expect(e.code).toBe('InvalidArgument');
      expect(e.message).toBe(`console socket ${sock}: connect: ENOENT (no such file or directory)`);
      expect(r.container.pids()).toEqual([r.pid]);
    });

    it('pidFile holds the process’s host pid; preserveFds passes fds 3 and 4', async () => {
      const r = await running();
      const pidFile = path.join(fx.tempDir('pid'), 'exec.pid');
      const out = fx.output();
      const p = await r.container.exec(
        { ...r.b.config.process!, args: ['sleep', '1000'] },
        { stdio: out.stdio, pidFile },
      );
      expect(fs.readFileSync(pidFile, 'utf8')).toBe(String(p.pid));
      expect(alive(p.pid)).toBe(true);
      expect(fs.readlinkSync(`/proc/${p.pid}/ns/pid`)).toBe(fs.readlinkSync(`/proc/${r.pid}/ns/pid`));
      process.kill(p.pid, 'SIGKILL');
      await p.exited;

      // fds 3 and 4 of a runtime process (a child Node process that execs) reach the exec'd process.
      const dir = fx.tempDir('fds');
      const files = ['three', 'four'].map((n) => path.join(dir, n));
      const fds = files.map((f) => fs.openSync(f, 'w+'));
      const childOut = fx.output();
      const run = (preserveFds: number, script: string, pidFile?: string) =>
        new Promise<string>((resolve, reject) => {
          const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD], {
            stdio: ['ignore', childOut.stdio[1], 'pipe', ...fds],
            env: {
              ...process.env,
              TSC_DIST: DIST_INDEX,
              TSC_EXEC: JSON.stringify({
                id: r.id,
                root: fx.root,
                preserveFds,
                pidFile,
                proc: { ...r.b.config.process!, args: ['sh', '-c', script] },
              }),
            },
          });
          let err = '';
          child.stderr?.on('data', (d) => {
            err += d;
          });
          child.on('error', reject);
          child.on('exit', () => resolve(err));
        });
      try {
        const pf = path.join(dir, 'child.pid');
        const res = await run(2, 'echo to-three >&3; echo to-four >&4; ls /proc/self/fd', pf);
        const m = /^RESULT (.*)$/m.exec(res);
        expect(m, res).not.toBeNull();
        const result = JSON.parse(m?.[1] ?? '{}');
        expect(result.status).toBe(0);
        expect(fs.readFileSync(pf, 'utf8')).toBe(String(result.pid));
        expect(fs.readFileSync(files[0] as string, 'utf8')).toBe('to-three\n');
        expect(fs.readFileSync(files[1] as string, 'utf8')).toBe('to-four\n');
        // 0-2, the two passed fds, and ls's own directory fd: nothing else.
        expect(childOut.lines()).toEqual(['0', '1', '2', '3', '4', '5']);

        // Without preserveFds the same fds are not there.
        const res2 = await run(0, 'echo x >&3');
        expect(res2).toMatch(/RESULT .*"status":[1-9]/);
        expect(res2).toMatch(/[Bb]ad file descriptor/);
        expect(fs.readFileSync(files[0] as string, 'utf8')).toBe('to-three\n');
      } finally {
        for (const fd of fds) fs.closeSync(fd);
      }
    });
  },
);
