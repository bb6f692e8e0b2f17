// The cgroup verbs end to end, through the built launcher (dist/nsinit, the bundle with its code cache) against
// real containers: pause/resume stop and restart a counter, kill/delete of a paused container,
// events (--stats, OOM lines, the end when the container goes), stats (the docker-like view) and
// update (flags, -r from stdin, live limits proven by effect). Needs root on Linux (hybrid v1 host).
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import {
  alive,
  buildRootfs,
  COMMAND,
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
const MiB = 1024 * 1024;
/** Writes an incrementing counter to /home/count (a host dir) every 50 ms. */
const COUNTER = 'i=0; while true; do i=$((i+1)); echo $i > /home/count; sleep 0.05; done';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(skip !== undefined)('nsinit pause, resume, events, stats, update', () => {
  let tmp: string;
  let root: string;
  let rootfs: string;
  let template: Spec;
  let created: string[] = [];
  let n = 0;

  function newId(name: string): string {
    const id = `clg${process.pid}-${name}-${++n}`;
    created.push(id);
    return id;
  }

  /** nsinit with this file's state root; never a JS stack trace. */
  async function ns(args: string[], opts: NsinitOptions = {}): Promise<Result> {
    const r = await nsinit(tmp, ['--root', root, ...args], opts);
    expect(r.stderr, show(r)).not.toMatch(STACK_LINE);
    return r;
  }

  /** nsinit with `input` on its stdin. */
  function nsStdin(args: string[], input: string): Result {
    const r = spawnSync(COMMAND[0] as string, [...COMMAND.slice(1), '--root', root, ...args], {
      input,
      encoding: 'utf8',
      timeout: 20_000,
      cwd: tmp,
    });
    return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
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

  async function status(id: string): Promise<string> {
    const r = ok(await ns(['state', id]));
    return JSON.parse(r.stdout).status;
  }

  function tmpDir(name: string): string {
    return fs.mkdtempSync(path.join(tmp, `${name}-`));
  }

  /** A cgroup file of container `id` in v1 hierarchy `controller`, read from the host. */
  function cgFile(id: string, controller: string, file: string): string {
    return fs.readFileSync(path.join('/sys/fs/cgroup', controller, 'nsinit', id, file), 'utf8').trim();
  }

  /** A running container (run -d) of `script`, with a host dir bound rw at /home. */
  async function running(script: string, mutate?: (s: Spec) => void) {
    const id = newId('c');
    const home = tmpDir('home');
    const dir = tmpDir('bundle');
    const s: Spec = structuredClone(template);
    s.process.args = ['sh', '-c', script];
    s.mounts.push({ destination: '/home', type: 'bind', source: home, options: ['rbind', 'rw'] });
    mutate?.(s);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(s, null, 2));
    ok(await ns(['run', '-d', '-b', dir, id]));
    const st = JSON.parse(ok(await ns(['state', id])).stdout);
    expect(st.status).toBe('running');
    return { id, pid: st.pid as number, home };
  }

  function count(home: string): string {
    try {
      return fs.readFileSync(path.join(home, 'count'), 'utf8').trim();
    } catch {
      return '';
    }
  }

  async function advances(home: string, what: string): Promise<void> {
    const before = count(home);
    await waitFor(what, () => count(home) !== '' && count(home) !== before, 5000);
  }

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nsinit-cgroups-test-'));
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

  test('pause stops the counter and state/list say paused; resume restarts it', async () => {
    const c = await running(COUNTER);
    await advances(c.home, 'the counter to start');
    const r = ok(await ns(['pause', c.id]));
    expect(r.stdout + r.stderr).toBe('');
    expect(await status(c.id)).toBe('paused');
    expect(JSON.parse(ok(await ns(['list', '-f', 'json'])).stdout)[0].status).toBe('paused');
    expect(cgFile(c.id, 'freezer', 'freezer.state')).toBe('FROZEN');
    const frozen = count(c.home);
    await sleep(500);
    expect(count(c.home)).toBe(frozen);

    ok(await ns(['resume', c.id]));
    expect(await status(c.id)).toBe('running');
    await advances(c.home, 'the counter to move after resume');
  });

  test('pause of a stopped container, resume of a running one: one-line errors', async () => {
    const c = await running('sleep 1000');
    fails(
      await ns(['resume', c.id]),
      new RegExp(`cannot resume container "${c.id}": it is running, not paused`),
    );
    ok(await ns(['kill', c.id, 'KILL']));
    await waitFor('the init to die', () => !alive(c.pid));
    fails(
      await ns(['pause', c.id]),
      new RegExp(`^nsinit: cannot pause container "${c.id}": it is stopped, not running`),
    );
    fails(await ns(['events', '--stats', c.id]), /container "[^"]+" is not running \(it is stopped\)/);
    fails(await ns(['pause', 'no-such-container']), /container "no-such-container" does not exist/);
  });

  test('kill KILL ends a paused container; delete --force removes another paused one', async () => {
    const a = await running(COUNTER);
    ok(await ns(['pause', a.id]));
    ok(await ns(['kill', a.id, 'KILL']));
    await waitFor('the paused init to die', () => !alive(a.pid), 5000);
    expect(await status(a.id)).toBe('stopped');

    const b = await running(COUNTER);
    ok(await ns(['pause', b.id]));
    fails(await ns(['delete', b.id]), /that is not stopped: paused/);
    ok(await ns(['delete', '--force', b.id]));
    expect(alive(b.pid)).toBe(false);
    expect(cgroupDirs(b.id)).toEqual([]);
    expect(fs.existsSync(path.join(root, b.id))).toBe(false);
  });

  test('events --stats prints one runc stats event', async () => {
    const c = await running('while true; do :; done & sleep 1000');
    await sleep(200);
    const r = ok(await ns(['events', '--stats', c.id]));
    const lines = r.stdout.split('\n').filter(Boolean);
    expect(lines, show(r)).toHaveLength(1);
    const e = JSON.parse(lines[0] as string);
    expect(e.type).toBe('stats');
    expect(e.id).toBe(c.id);
    expect(e.data.memory.usage.usage).toBeGreaterThan(0);
    expect(e.data.pids.current).toBeGreaterThanOrEqual(1);
    expect(e.data.cpu.usage.total).toBeGreaterThan(0);
    // The unlimited v1 limit printed exactly, as Go prints a uint64.
    expect(lines[0]).toContain('"limit":9223372036854771712');
  });

  test('events streams stats every interval and an oom line, and ends when the container is deleted', async () => {
    const c = await running(
      'sleep 0.5; while true; do dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null; sleep 0.3; done',
      (s) => {
        s.linux.resources.memory = { limit: 32 * MiB, swap: 32 * MiB };
      },
    );
    const ev = spawnNsinit(tmp, ['--root', root, 'events', '--interval', '300ms', c.id]);
    const oomKills = () => Number(/oom_kill (\d+)/.exec(cgFile(c.id, 'memory', 'memory.oom_control'))?.[1]);
    await waitFor('an OOM kill in the container', () => oomKills() >= 1, 10_000);
    await sleep(1000);
    ok(await ns(['delete', '--force', c.id]));
    const r = await ev.done;
    expect(r.code, show(r)).toBe(0);
    const events = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));
    expect(events, show(r)).toContainEqual({ type: 'oom', id: c.id });
    const stats = events.filter((e) => e.type === 'stats');
    expect(stats.length, show(r)).toBeGreaterThanOrEqual(3);
    expect(stats[0].id).toBe(c.id);
    expect(stats[0].data.memory.usage.limit).toBe(32 * MiB);
    expect(r.stderr).toBe('');
  });

  test('events stops on SIGINT', async () => {
    const c = await running('sleep 1000');
    // stdout is a pipe here (events starts no container), so the first line can be awaited.
    const ev = spawn(
      COMMAND[0] as string,
      [...COMMAND.slice(1), '--root', root, 'events', '--interval', '10s', c.id],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    let err = '';
    ev.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    ev.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    const exit = new Promise<number | null>((resolve) => ev.on('exit', (code) => resolve(code)));
    await waitFor('the first stats line', () => out.includes('\n'), 10_000);
    ev.kill('SIGINT');
    const code = await Promise.race([exit, sleep(5000).then(() => 'no exit')]);
    if (code === 'no exit') ev.kill('SIGKILL');
    expect(code, err).toBe(0);
    expect(
      out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l).type),
    ).toEqual(['stats']);
  });

  test('stats --no-stream prints a table row with the id, CPU %, memory usage and pids', async () => {
    const c = await running('while true; do :; done & sleep 1000', (s) => {
      s.linux.resources.memory = { limit: 64 * MiB };
    });
    const r = ok(await ns(['stats', '--no-stream', '--interval', '300ms', c.id]));
    const lines = r.stdout.split('\n').filter(Boolean);
    expect(lines, show(r)).toHaveLength(2);
    expect(lines[0]).toMatch(/^CONTAINER ID\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+PIDS$/);
    const row = lines[1] as string;
    expect(row).not.toContain('\x1b'); // not a TTY: no screen clearing
    const m = new RegExp(
      `^${c.id}\\s+(\\d+\\.\\d\\d)%\\s+([\\d.]+)(B|KiB|MiB) / 64MiB\\s+(\\d+\\.\\d\\d)%\\s+(\\d+)$`,
    ).exec(row);
    expect(m, row).not.toBeNull();
    expect(Number(m?.[1])).toBeGreaterThan(20); // the busy loop
    expect(Number(m?.[2])).toBeGreaterThan(0);
    expect(Number(m?.[5])).toBeGreaterThanOrEqual(2);
  });

  test('stats streams rows once per interval and stops when the container is gone', async () => {
    const c = await running('sleep 1000');
    const st = spawnNsinit(tmp, ['--root', root, 'stats', '--interval', '200ms', c.id]);
    await sleep(1200);
    ok(await ns(['delete', '--force', c.id]));
    const r = await st.done;
    expect(r.code, show(r)).toBe(0);
    const lines = r.stdout.split('\n').filter(Boolean);
    expect(lines[0]).toMatch(/^CONTAINER ID/);
    expect(lines.filter((l) => l.startsWith('CONTAINER ID'))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith(c.id)).length, show(r)).toBeGreaterThanOrEqual(3);
  });

  test('update --memory 64m --pids-limit 20 changes the live limits; pids 3 stops a fork storm', async () => {
    const storm =
      'while [ ! -f /home/go ]; do sleep 0.05; done; ' +
      "sh -c 'for i in 1 2 3 4 5 6 7 8; do sleep 30 & done; echo started' > /home/storm 2>&1; " +
      'echo $? > /home/done; sleep 1000';
    const c = await running(storm);
    ok(await ns(['update', '--memory', '64m', '--pids-limit', '20', c.id]));
    expect(cgFile(c.id, 'memory', 'memory.limit_in_bytes')).toBe(String(64 * MiB));
    expect(cgFile(c.id, 'pids', 'pids.max')).toBe('20');
    const stored = JSON.parse(fs.readFileSync(path.join(root, c.id, 'state.json'), 'utf8'));
    expect(stored.config.linux.resources.memory.limit).toBe(64 * MiB);
    expect(stored.config.linux.resources.pids.limit).toBe(20);

    ok(await ns(['update', '--pids-limit', '3', c.id]));
    expect(cgFile(c.id, 'pids', 'pids.max')).toBe('3');
    fs.writeFileSync(path.join(c.home, 'go'), '');
    await waitFor('the fork storm to end', () => fs.existsSync(path.join(c.home, 'done')), 5000);
    const out = fs.readFileSync(path.join(c.home, 'storm'), 'utf8');
    expect(out).toMatch(/can't fork/);
    expect(out).not.toMatch(/started/);
    const procs = fs.readFileSync('/sys/fs/cgroup/pids/nsinit/' + c.id + '/cgroup.procs', 'utf8');
    expect(procs.split('\n').filter(Boolean).length).toBeLessThanOrEqual(3);
  });

  test('update -r - reads OCI linux.resources from stdin; flags override it', async () => {
    const c = await running('sleep 1000');
    const json = JSON.stringify({ memory: { limit: 48 * MiB, reservation: 16 * MiB }, pids: { limit: 7 } });
    const r = nsStdin(['update', '-r', '-', '--pids-limit', '9', c.id], json);
    expect(r.code, show(r)).toBe(0);
    expect(cgFile(c.id, 'memory', 'memory.limit_in_bytes')).toBe(String(48 * MiB));
    expect(cgFile(c.id, 'memory', 'memory.soft_limit_in_bytes')).toBe(String(16 * MiB));
    expect(cgFile(c.id, 'pids', 'pids.max')).toBe('9');

    const bad = nsStdin(['update', '-r', '-', c.id], '{"pids": {"limit": "many"}}');
    fails(bad, /^nsinit: --resources \(stdin\): pids\.limit: expected integer, got string$/m);
    const notJson = nsStdin(['update', '-r', '-', c.id], '{"pids":\n {"limit": 5,}}');
    fails(notJson, /--resources \(stdin\): invalid JSON at line 2, column \d+/);
    expect(cgFile(c.id, 'pids', 'pids.max')).toBe('9');
  });

  test('update: bad values are one-line errors naming the flag, and change nothing', async () => {
    const c = await running('sleep 1000');
    const before = cgFile(c.id, 'memory', 'memory.limit_in_bytes');
    fails(await ns(['update', '--memory', 'abc', c.id]), /^nsinit: --memory: invalid size "abc"/);
    fails(await ns(['update', '--cpu-quota', '1.5', c.id]), /^nsinit: --cpu-quota: expected an integer/);
    fails(await ns(['update', '--pids-limit', 'lots', c.id]), /^nsinit: --pids-limit: expected an integer/);
    fails(await ns(['update', '--cpu-idle', '2', c.id]), /^nsinit: --cpu-idle: expected 0 or 1/);
    fails(await ns(['update', '--blkio-weight', '5', c.id]), /^nsinit: --blkio-weight: expected 10\.\.1000/);
    fails(await ns(['update', '--cpuset-cpus', 'all', c.id]), /^nsinit: --cpuset-cpus: expected a list/);
    fails(await ns(['update', c.id]), /^nsinit: update: nothing to change/);
    fails(
      await ns(['update', '--cpuset-cpus', '999', c.id]),
      /linux\.resources\.cpu\.cpus: write "999" to .*cpuset\.cpus: ERANGE/,
    );
    expect(cgFile(c.id, 'memory', 'memory.limit_in_bytes')).toBe(before);
    // Suffixes as runc reads them (binary units).
    ok(await ns(['update', '--memory', '1.5g', '--memory-reservation', '512k', c.id]));
    expect(cgFile(c.id, 'memory', 'memory.limit_in_bytes')).toBe(String(1.5 * 1024 * MiB));
    expect(cgFile(c.id, 'memory', 'memory.soft_limit_in_bytes')).toBe(String(512 * 1024));
  });
});
