// `nsinit exec` end to end, through the built launcher (dist/nsinit, the bundle with its code cache) against real
// containers: the process runs inside the container with the flags applied, its exit status and
// signals pass through, --process files are validated, and errors are one line. Needs root on Linux.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
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

// biome-ignore lint/suspicious/noExplicitAny: tests edit configs freely
type Spec = any;

const skip = skipReason();

/** `Key:\tvalue` lines (of /proc/<pid>/status) as `Key=value`. */
function kv(text: string): Record<string, string> {
  const m: Record<string, string> = {};
  for (const l of text.split('\n')) {
    const i = l.indexOf(':');
    if (i > 0) m[l.slice(0, i)] = l.slice(i + 1).trim();
  }
  return m;
}

describe.skipIf(skip !== undefined)('nsinit exec', () => {
  let tmp: string;
  let root: string;
  let rootfs: string;
  let template: Spec;
  let created: string[] = [];
  let n = 0;

  function newId(name: string): string {
    const id = `clx${process.pid}-${name}-${++n}`;
    created.push(id);
    return id;
  }

  /** nsinit with this file's state root; never a JS stack trace. */
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

  function tmpDir(name: string): string {
    return fs.mkdtempSync(path.join(tmp, `${name}-`));
  }

  /** Pids in the container's cgroup, read from the host. */
  function cgroupPids(id: string): number[] {
    const procs = path.join('/sys/fs/cgroup/pids/nsinit', id, 'cgroup.procs');
    if (!fs.existsSync(procs)) return [];
    return fs.readFileSync(procs, 'utf8').split('\n').filter(Boolean).map(Number);
  }

  /** A running `sleep 1000` container (run -d): its id and init pid. */
  async function running(o: { hostname?: string; home?: string; mutate?: (s: Spec) => void } = {}) {
    const id = newId('c');
    const dir = tmpDir('bundle');
    const s: Spec = structuredClone(template);
    s.process.args = ['sleep', '1000'];
    if (o.hostname) s.hostname = o.hostname;
    if (o.home)
      s.mounts.push({ destination: '/home', type: 'bind', source: o.home, options: ['rbind', 'rw'] });
    o.mutate?.(s);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(s, null, 2));
    ok(await ns(['run', '-d', '-b', dir, id]));
    const st = JSON.parse(ok(await ns(['state', id])).stdout);
    expect(st.status).toBe('running');
    return { id, pid: st.pid as number };
  }

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nsinit-exec-test-'));
    root = path.join(tmp, 'state');
    fs.mkdirSync(root);
    rootfs = buildRootfs();
    // A busybox with inheritable+effective file capabilities (named grep: busybox picks the applet
    // by name). A process with CAP_SYS_ADMIN or CAP_NET_RAW in its inheritable set would get them.
    fs.mkdirSync(path.join(rootfs, 'capbin'));
    fs.copyFileSync(path.join(rootfs, 'bin/busybox'), path.join(rootfs, 'capbin/grep'));
    execFileSync('setcap', ['cap_net_raw,cap_sys_admin+ei', path.join(rootfs, 'capbin/grep')]);
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

  test('runs inside the container: its hostname, a pid > 1, the exit status', async () => {
    const c = await running({ hostname: 'exec-host' });
    const r = await ns(['exec', c.id, 'sh', '-c', 'hostname; echo $$; readlink /proc/1/exe; exit 5']);
    expect(r.code, show(r)).toBe(5);
    expect(r.stderr).toBe('');
    const [host, pid, initExe] = r.stdout.split('\n');
    expect(host).toBe('exec-host');
    expect(Number(pid)).toBeGreaterThan(1);
    expect(initExe).toBe('/bin/busybox');
    // The options after the id belong to the command.
    const r2 = await ns(['exec', c.id, 'sh', '-c', 'echo "$@"', 'sh', '-u', '--cwd', 'x']);
    expect(ok(r2).stdout).toBe('-u --cwd x\n');
    // The exec'd process is gone; the init runs on.
    expect(cgroupPids(c.id)).toEqual([c.pid]);
  });

  test('-u 1000:1000 -g 5 --cwd /tmp -e FOO=bar', async () => {
    const c = await running();
    const r = ok(
      await ns([
        'exec',
        '-u',
        '1000:1000',
        '-g',
        '5',
        '--cwd',
        '/tmp',
        '-e',
        'FOO=bar',
        '-e',
        'BAZ=a b',
        c.id,
        'sh',
        '-c',
        'id; pwd; echo "$FOO|$BAZ|$PATH"',
      ]),
    );
    expect(r.stdout).toBe(
      'uid=1000 gid=1000 groups=5(tty)\n/tmp\nbar|a b|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n',
    );
    // -u with a uid only keeps the config's gid (0).
    expect(ok(await ns(['exec', '-u', '7', c.id, 'id'])).stdout).toBe('uid=7 gid=0(root)\n');
    fails(await ns(['exec', '-u', 'nobody', c.id, 'id']), /--user: expected uid\[:gid\]/);
  });

  test('-c CAP_SYS_ADMIN adds to effective, permitted and bounding, never to inheritable (CVE-2022-29162)', async () => {
    const c = await running({
      mutate: (s) => {
        // so that file capabilities apply on exec at all
        s.process.noNewPrivileges = false;
      },
    });
    const base = kv(ok(await ns(['exec', c.id, 'cat', '/proc/self/status'])).stdout);
    expect(base).toMatchObject({ CapInh: '0000000000000000', CapEff: '0000000020000420' });
    const r = kv(ok(await ns(['exec', '-c', 'CAP_SYS_ADMIN', c.id, 'cat', '/proc/self/status'])).stdout);
    expect(r).toMatchObject({
      CapInh: '0000000000000000',
      CapPrm: '0000000020200420',
      CapEff: '0000000020200420',
      CapBnd: '0000000020200420',
      CapAmb: '0000000000000000',
    });
    // A non-root process running a binary with inheritable file caps gets nothing from them.
    const u = ok(
      await ns([
        'exec',
        '-u',
        '1000:1000',
        '-c',
        'CAP_SYS_ADMIN',
        '-c',
        'CAP_NET_RAW',
        c.id,
        '/capbin/grep',
        '^Cap',
        '/proc/self/status',
      ]),
    );
    expect(kv(u.stdout)).toMatchObject({
      CapInh: '0000000000000000',
      CapPrm: '0000000000000000',
      CapEff: '0000000000000000',
    });
    fails(await ns(['exec', '-c', 'CAP_BOGUS', c.id, 'true']), /unknown capability "CAP_BOGUS"/);
  });

  test('--process process.json runs that process; an invalid one is one line naming the field', async () => {
    const c = await running();
    const dir = tmpDir('proc');
    const good = path.join(dir, 'process.json');
    fs.writeFileSync(
      good,
      JSON.stringify({
        args: ['sh', '-c', 'echo "$FOO"; id; pwd; grep CapEff /proc/self/status'],
        env: ['FOO=from-json', 'PATH=/bin'],
        cwd: '/etc',
        user: { uid: 2, gid: 3 },
        terminal: false,
      }),
    );
    const r = ok(await ns(['exec', '--process', good, c.id]));
    // The config's process is not merged in: no capabilities unless the file asks.
    expect(r.stdout).toBe('from-json\nuid=2 gid=3\n/etc\nCapEff:\t0000000000000000\n');

    const cases: [unknown, RegExp][] = [
      [
        { args: ['sh'], cwd: '/', user: { uid: 'x', gid: 0 } },
        /bad\.json: user\.uid: expected integer, got string$/m,
      ],
      [{ args: 'sh', cwd: '/', user: { uid: 0, gid: 0 } }, /bad\.json: args: expected array, got string$/m],
      [{ args: ['sh'], user: { uid: 0, gid: 0 } }, /bad\.json: cwd/],
    ];
    const bad = path.join(dir, 'bad.json');
    for (const [proc, re] of cases) {
      fs.writeFileSync(bad, JSON.stringify(proc));
      const b = await ns(['exec', '-p', bad, c.id]);
      fails(b, re);
      expect(b.stdout).toBe('');
    }
    fs.writeFileSync(bad, '{');
    fails(await ns(['exec', '-p', bad, c.id]), /bad\.json: invalid JSON at line/);
    fails(await ns(['exec', '-p', path.join(dir, 'missing.json'), c.id]), /missing\.json/);
    fails(await ns(['exec', '-p', good, c.id, 'true']), /either --process or a command/);
    fails(await ns(['exec', c.id]), /a command \(or --process\) is required/);
    expect(cgroupPids(c.id)).toEqual([c.pid]);
  });

  test('-d --pid-file returns at once; the pid file names a running process in the container', async () => {
    const c = await running();
    const pidFile = path.join(tmpDir('pid'), 'exec.pid');
    const t0 = Date.now();
    ok(await ns(['exec', '-d', '--pid-file', pidFile, c.id, 'sleep', '1000'], { timeout: 10_000 }));
    expect(Date.now() - t0).toBeLessThan(5000);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    expect(pid).toBeGreaterThan(0);
    expect(alive(pid)).toBe(true);
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toBe('sleep\x001000\x00');
    expect(fs.readlinkSync(`/proc/${pid}/ns/pid`)).toBe(fs.readlinkSync(`/proc/${c.pid}/ns/pid`));
    expect(fs.readlinkSync(`/proc/${pid}/ns/mnt`)).toBe(fs.readlinkSync(`/proc/${c.pid}/ns/mnt`));
    expect(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8')).toContain(`:/nsinit/${c.id}\n`);
    expect(cgroupPids(c.id).sort()).toEqual([c.pid, pid].sort());
    // delete -f ends it with the container.
    ok(await ns(['delete', '-f', c.id]));
    await waitFor('the exec’d process to die', () => !alive(pid));
  });

  test('SIGTERM is forwarded: a trap’s exit code, or 143', async () => {
    const home = tmpDir('home');
    const c = await running({ home });
    const p = spawnNsinit(tmp, [
      '--root',
      root,
      'exec',
      c.id,
      'sh',
      '-c',
      'trap "exit 42" TERM; echo ready > /home/ready; while :; do sleep 0.1; done',
    ]);
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

    // A SIGTERM that arrives while the process is still being set up (the executor is in the
    // cgroup, sleep not exec'd yet) is held and forwarded once it runs: 143, nothing left.
    const before = cgroupPids(c.id).length;
    const p2 = spawnNsinit(tmp, ['--root', root, 'exec', c.id, 'sleep', '1000']);
    try {
      await waitFor('the executor to join the cgroup', () => cgroupPids(c.id).length > before, 10_000);
    } catch (e) {
      p2.kill('SIGKILL');
      throw e;
    }
    p2.kill('SIGTERM');
    const r2 = await p2.done;
    expect(r2.code, show(r2)).toBe(143);
    expect(cgroupPids(c.id)).toEqual([c.pid]);
  });

  test('--preserve-fds 1 passes fd 3 to the process', async () => {
    const c = await running();
    const file = path.join(tmp, 'exec-fd3.txt');
    const fd = fs.openSync(file, 'w+');
    try {
      const r = await ns(['exec', '--preserve-fds', '1', c.id, 'sh', '-c', 'echo hi >&3; ls /proc/self/fd'], {
        extraFds: [fd],
      });
      expect(r.code, show(r)).toBe(0);
      expect(r.stdout).toBe('0\n1\n2\n3\n4\n');
      expect(fs.readFileSync(file, 'utf8')).toBe('hi\n');
      const r2 = await ns(['exec', c.id, 'sh', '-c', 'echo x >&3'], { extraFds: [fd] });
      expect(r2.code, show(r2)).not.toBe(0);
      expect(r2.stderr).toMatch(/bad file descriptor/i);
      expect(fs.readFileSync(file, 'utf8')).toBe('hi\n');
    } finally {
      fs.closeSync(fd);
    }
  });

  test('errors: unknown id, a stopped container, a missing command, -d -t: one line, exit 1', async () => {
    fails(await ns(['exec', `clx${process.pid}-nosuch`, 'true']), /does not exist/);
    const c = await running();
    fails(await ns(['exec', c.id, 'nonexistent-cmd']), /exec "nonexistent-cmd": executable file not found/);
    const t = await ns(['exec', '-d', '-t', c.id, 'true']);
    fails(t, /cannot allocate a tty if nsinit will detach without setting --console-socket/);
    fails(
      await ns(['exec', '--console-socket', path.join(tmp, 'sock'), c.id, 'true']),
      /cannot use a console socket .* when process.terminal is false/,
    );
    expect(cgroupPids(c.id)).toEqual([c.pid]);
    ok(await ns(['kill', c.id, 'KILL']));
    await waitFor('the init to die', () => !alive(c.pid));
    fails(await ns(['exec', c.id, 'true']), /cannot exec in container "[^"]+": it is stopped/);
  });
});
