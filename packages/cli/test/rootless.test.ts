// Rootless nsinit on the real kernel: an ordinary user (created for this file, removed after it)
// runs `nsinit spec --rootless`, `run`, `create`/`exec`/`list`/`delete` with its state under
// $XDG_RUNTIME_DIR/nsinit or /tmp/nsinit-<uid>, and several id ranges through newuidmap/newgidmap
// with /etc/subuid and /etc/subgid entries (both files are restored afterwards). Needs root to set up.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { COMMAND, cgroupDirs, REPO, type Result, STACK_LINE, show, skipReason, waitFor } from './helpers.js';

// biome-ignore lint/suspicious/noExplicitAny: tests edit configs freely
type Spec = any;

const skip = skipReason() ?? (fs.existsSync('/usr/bin/setpriv') ? undefined : 'needs setpriv (util-linux)');
const USER = `tsc-rootless-${process.pid}`;
/** The host range of the user's subordinate ids. */
const SUB_START = 200000;
const SUB_COUNT = 65536;

/** `Uid:` or `Gid:` of /proc/<pid>/status: real, effective, saved, fs. */
function hostIds(pid: number, which: 'Uid' | 'Gid'): number[] {
  const line = new RegExp(`^${which}:\\s+(.*)$`, 'm').exec(
    fs.readFileSync(`/proc/${pid}/status`, 'utf8'),
  )?.[1];
  return (line ?? '').trim().split(/\s+/).map(Number);
}

/** Lines of an id map, whitespace normalised ("0 1001 1"). */
function mapLines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.replace(/^\w+=/, '').trim().split(/\s+/).join(' '))
    .filter((l) => /^\d+ \d+ \d+$/.test(l));
}

describe.skipIf(skip !== undefined)(`rootless nsinit${skip ? ` (${skip})` : ''}`, () => {
  let uid: number;
  let gid: number;
  let home: string;
  let tmp: string;
  let rootfs: string;
  let createdUser = false;
  const saved = new Map<string, string | undefined>();
  let n = 0;
  let seq = 0;
  const ids: string[] = [];
  const stateRoots: string[] = [];

  /** Start nsinit as the user (setpriv: real and effective ids, its groups, no capabilities). */
  function startAsUser(
    args: string[],
    opts: { cwd: string; env?: Record<string, string> },
  ): { done: Promise<Result>; stdout(): string } {
    const k = ++seq;
    const outFile = path.join(tmp, `out-${k}`);
    const errFile = path.join(tmp, `err-${k}`);
    const out = fs.openSync(outFile, 'w+');
    const err = fs.openSync(errFile, 'w+');
    const bin = COMMAND[0] as string;
    const child = spawn(
      'setpriv',
      [
        '--reuid',
        String(uid),
        '--regid',
        String(gid),
        '--init-groups',
        '--',
        bin,
        ...COMMAND.slice(1),
        ...args,
      ],
      {
        cwd: opts.cwd,
        stdio: ['ignore', out, err],
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, USER, LOGNAME: USER, ...opts.env },
      },
    );
    fs.closeSync(out);
    fs.closeSync(err);
    const done = new Promise<Result>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`nsinit ${args.join(' ')} (as ${USER}): no exit after 20 s`));
      }, 20_000);
      child.on('error', reject);
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        const r: Result = {
          code,
          signal,
          stdout: fs.readFileSync(outFile, 'utf8'),
          stderr: fs.readFileSync(errFile, 'utf8'),
        };
        // No invocation may end in a JavaScript stack trace.
        expect(r.stderr, show(r)).not.toMatch(STACK_LINE);
        resolve(r);
      });
    });
    return { done, stdout: () => fs.readFileSync(outFile, 'utf8') };
  }

  function asUser(args: string[], opts: { cwd: string; env?: Record<string, string> }): Promise<Result> {
    return startAsUser(args, opts).done;
  }

  /** A new container id; afterAll kills whatever state of it is left under the user's state roots. */
  function newId(): string {
    const id = `rl${process.pid}-${++n}`;
    ids.push(id);
    return id;
  }

  /** A bundle dir owned by the user, with `spec --rootless` run there by the user. */
  async function rootlessBundle(): Promise<{ dir: string; spec: Spec; gate: string }> {
    const dir = fs.mkdtempSync(path.join(tmp, 'bundle-'));
    fs.chownSync(dir, uid, gid);
    const r = await asUser(['spec', '--rootless'], { cwd: dir });
    expect(r.code, show(r)).toBe(0);
    const file = path.join(dir, 'config.json');
    expect(fs.statSync(file).uid).toBe(uid);
    const spec: Spec = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(spec.linux.uidMappings).toEqual([{ containerID: 0, hostID: uid, size: 1 }]);
    expect(spec.linux.gidMappings).toEqual([{ containerID: 0, hostID: gid, size: 1 }]);
    expect(spec.linux.namespaces.map((x: { type: string }) => x.type)).toContain('user');
    // A dir the container waits on (as /home): the test creates "go" in it to let it end.
    const gate = fs.mkdtempSync(path.join(tmp, 'gate-'));
    fs.chmodSync(gate, 0o755);
    spec.process.terminal = false;
    spec.root.path = rootfs;
    spec.mounts.push({ destination: '/home', type: 'bind', source: gate, options: ['rbind', 'ro'] });
    return { dir, spec, gate };
  }

  function writeSpec(dir: string, spec: Spec): void {
    // Rewritten in place: the file stays the user's.
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec, null, 2));
  }

  const WAIT_GATE = 'echo READY; while [ ! -e /home/go ]; do sleep 0.05; done';

  beforeAll(() => {
    for (const f of ['/etc/subuid', '/etc/subgid']) {
      saved.set(f, fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : undefined);
    }
    try {
      execFileSync('id', ['-u', USER], { stdio: 'pipe' });
    } catch {
      execFileSync('useradd', ['-m', '-s', '/bin/sh', USER], { stdio: 'pipe' });
      createdUser = true;
    }
    uid = Number(execFileSync('id', ['-u', USER]).toString().trim());
    gid = Number(execFileSync('id', ['-g', USER]).toString().trim());
    home = execFileSync('sh', ['-c', `getent passwd ${USER} | cut -d: -f6`])
      .toString()
      .trim();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nsinit-rootless-'));
    fs.chmodSync(tmp, 0o755);
    rootfs = path.join(tmp, 'rootfs');
    execFileSync('sh', [path.join(REPO, 'scripts/build-rootfs.sh'), rootfs], { stdio: 'pipe' });
    // The user reaches the CLI and the rootfs through world-traversable dirs only.
    for (const p of [rootfs, path.join(rootfs, 'bin/busybox'), COMMAND[COMMAND.length - 1] as string]) {
      fs.accessSync(p, fs.constants.R_OK);
    }
  });

  afterAll(() => {
    // Containers a failed test left: kill their inits by pid (they run as the user).
    for (const root of [...stateRoots, `/tmp/nsinit-${uid}`]) {
      for (const id of ids) {
        try {
          const st = JSON.parse(fs.readFileSync(path.join(root, id, 'state.json'), 'utf8'));
          if (st.pid > 0) process.kill(st.pid, 'SIGKILL');
        } catch {
          // no state, or gone
        }
      }
    }
    if (createdUser) {
      try {
        execFileSync('userdel', ['-r', '-f', USER], { stdio: 'pipe' });
      } catch {
        // reported by the missing-user check of the next run
      }
    }
    for (const [f, text] of saved) {
      if (text === undefined) fs.rmSync(f, { force: true });
      else fs.writeFileSync(f, text);
    }
    if (uid) fs.rmSync(`/tmp/nsinit-${uid}`, { recursive: true, force: true });
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('spec --rootless and run: root inside, own uid outside, a cgroup warning, state under $XDG_RUNTIME_DIR', async () => {
    const { dir, spec, gate } = await rootlessBundle();
    spec.process.args = [
      'sh',
      '-c',
      `id; echo "uidmap=$(cat /proc/self/uid_map)"; echo setgroups=$(cat /proc/self/setgroups); ${WAIT_GATE}`,
    ];
    writeSpec(dir, spec);
    const xdg = fs.mkdtempSync(path.join(tmp, 'xdg-'));
    fs.chownSync(xdg, uid, gid);
    fs.chmodSync(xdg, 0o700);
    const id = newId();
    stateRoots.push(path.join(xdg, 'nsinit'));
    const run = startAsUser(['run', id], { cwd: dir, env: { XDG_RUNTIME_DIR: xdg } });
    const stateFile = path.join(xdg, 'nsinit', id, 'state.json');
    await waitFor('the container to start', () => fs.existsSync(stateFile) && run.stdout().includes('READY'));
    const state = JSON.parse(fs.readFileSync(stateFile, 'utf8'));
    expect(fs.statSync(stateFile).uid).toBe(uid);
    // The init runs as the user on the host, in no cgroup of its own.
    expect(hostIds(state.pid, 'Uid')).toEqual([uid, uid, uid, uid]);
    expect(cgroupDirs(id)).toEqual([]);
    fs.writeFileSync(path.join(gate, 'go'), '');
    const r = await run.done;
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout, show(r)).toMatch(/^uid=0\(root\) gid=0\(root\)/m);
    expect(mapLines(r.stdout)).toEqual([`0 ${uid} 1`]);
    // A single mapping of the user's own id is written after setgroups "deny".
    expect(r.stdout).toMatch(/^setgroups=deny$/m);
    expect(r.stderr, show(r)).toMatch(
      new RegExp(
        `^nsinit: warning: rootless: no cgroup is writable by uid ${uid} here, so the container gets no cgroup of its own`,
        'm',
      ),
    );
    expect(fs.existsSync(path.join(xdg, 'nsinit', id))).toBe(false);
  });

  test('hooks in the container namespaces run for a rootless container (run, and create + start)', async () => {
    const { dir, spec } = await rootlessBundle();
    spec.process.args = ['true'];
    const out = fs.mkdtempSync(path.join(tmp, 'hooks-'));
    fs.chownSync(out, uid, gid);
    // createContainer runs before pivot_root (host paths): it records its user namespace in a
    // host dir. startContainer runs after it (container paths): its exit status is checked.
    spec.hooks = {
      createContainer: [
        { path: '/bin/sh', args: ['sh', '-c', `readlink /proc/self/ns/user > ${out}/create-$(date +%s%N)`] },
      ],
      startContainer: [
        { path: '/bin/sh', args: ['sh', '-c', 'test "$(cat /proc/self/uid_map | wc -l)" -ge 1'] },
      ],
    };
    writeSpec(dir, spec);
    const id = newId();
    const r = await asUser(['run', id], { cwd: dir });
    expect(r.code, show(r)).toBe(0);
    const id2 = newId();
    const c = await asUser(['create', id2], { cwd: dir });
    expect(c.code, show(c)).toBe(0);
    const st = await asUser(['start', id2], { cwd: dir });
    expect(st.code, show(st)).toBe(0);
    const d = await asUser(['delete', '--force', id2], { cwd: dir });
    expect(d.code, show(d)).toBe(0);
    const files = fs.readdirSync(out).filter((f) => f.startsWith('create-'));
    expect(files.length).toBe(2);
    const own = fs.readlinkSync('/proc/self/ns/user');
    for (const f of files) {
      const ns = fs.readFileSync(path.join(out, f), 'utf8').trim();
      expect(ns).toMatch(/^user:\[\d+\]$/);
      // The hook ran in the container's user namespace, not ours.
      expect(ns).not.toBe(own);
    }
  });

  test('create, list, exec, delete as the user with the state under /tmp/nsinit-<uid>', async () => {
    const { dir, spec } = await rootlessBundle();
    spec.process.args = ['sleep', '30'];
    writeSpec(dir, spec);
    const id = newId();
    const c = await asUser(['create', id], { cwd: dir });
    expect(c.code, show(c)).toBe(0);
    const stateDir = `/tmp/nsinit-${uid}/${id}`;
    expect(fs.statSync(stateDir).uid).toBe(uid);
    const l1 = await asUser(['list'], { cwd: dir });
    expect(l1.code, show(l1)).toBe(0);
    expect(l1.stdout).toMatch(new RegExp(`^${id}\\s+\\d+\\s+created\\s+${dir}\\s`, 'm'));
    const s = await asUser(['start', id], { cwd: dir });
    expect(s.code, show(s)).toBe(0);
    const lj = await asUser(['list', '--format', 'json'], { cwd: dir });
    const listed = JSON.parse(lj.stdout).find((x: { id: string }) => x.id === id);
    expect(listed?.status).toBe('running');
    const initPid: number = listed.pid;

    // exec joins the user namespace first: without its capabilities there, the others are EPERM.
    const e = await asUser(
      ['exec', id, 'sh', '-c', 'id -u; readlink /proc/self/ns/user; readlink /proc/self/ns/pid'],
      {
        cwd: dir,
      },
    );
    expect(e.code, show(e)).toBe(0);
    const [inUid, userNs, pidNs] = e.stdout.trim().split('\n');
    expect(inUid).toBe('0');
    expect(userNs).toBe(fs.readlinkSync(`/proc/${initPid}/ns/user`));
    expect(pidNs).toBe(fs.readlinkSync(`/proc/${initPid}/ns/pid`));

    const d = await asUser(['delete', '--force', id], { cwd: dir });
    expect(d.code, show(d)).toBe(0);
    expect(fs.existsSync(stateDir)).toBe(false);
    const l2 = await asUser(['list', '--quiet'], { cwd: dir });
    expect(l2.code, show(l2)).toBe(0);
    expect(l2.stdout.split('\n')).not.toContain(id);
  });

  describe('several id ranges through newuidmap and newgidmap', () => {
    beforeAll(() => {
      if (!fs.existsSync('/usr/bin/newuidmap') || !fs.existsSync('/usr/bin/newgidmap')) {
        execFileSync('apt-get', ['install', '-y', 'uidmap'], { stdio: 'pipe', timeout: 120_000 });
      }
      for (const f of ['/etc/subuid', '/etc/subgid']) {
        fs.appendFileSync(f, `${USER}:${SUB_START}:${SUB_COUNT}\n`);
      }
    });

    function ranges(own: number) {
      return [
        { containerID: 0, hostID: own, size: 1 },
        { containerID: 1, hostID: SUB_START, size: SUB_COUNT },
      ];
    }

    test('uid 1000 inside is 200999 on the host, and uid_map shows both ranges', async () => {
      const { dir, spec, gate } = await rootlessBundle();
      spec.linux.uidMappings = ranges(uid);
      spec.linux.gidMappings = ranges(gid);
      spec.process.user = { uid: 1000, gid: 1000 };
      spec.process.args = [
        'sh',
        '-c',
        `echo ids=$(id -u):$(id -g); echo "uidmap=$(cat /proc/self/uid_map)"; echo "gidmap=$(cat /proc/self/gid_map)"; ${WAIT_GATE}`,
      ];
      writeSpec(dir, spec);
      const id = newId();
      const run = startAsUser(['run', id], { cwd: dir });
      const stateFile = `/tmp/nsinit-${uid}/${id}/state.json`;
      await waitFor(
        'the container to start',
        () => fs.existsSync(stateFile) && run.stdout().includes('READY'),
      );
      const pid = JSON.parse(fs.readFileSync(stateFile, 'utf8')).pid;
      const hostId = SUB_START + 1000 - 1;
      expect(hostIds(pid, 'Uid')).toEqual([hostId, hostId, hostId, hostId]);
      expect(hostIds(pid, 'Gid')).toEqual([hostId, hostId, hostId, hostId]);
      expect(mapLines(fs.readFileSync(`/proc/${pid}/uid_map`, 'utf8'))).toEqual([
        `0 ${uid} 1`,
        `1 ${SUB_START} ${SUB_COUNT}`,
      ]);
      fs.writeFileSync(path.join(gate, 'go'), '');
      const r = await run.done;
      expect(r.code, show(r)).toBe(0);
      expect(r.stdout).toMatch(/^ids=1000:1000$/m);
      const maps = mapLines(r.stdout);
      expect(maps).toEqual([
        `0 ${uid} 1`,
        `1 ${SUB_START} ${SUB_COUNT}`,
        `0 ${gid} 1`,
        `1 ${SUB_START} ${SUB_COUNT}`,
      ]);
      expect(fs.existsSync(`/tmp/nsinit-${uid}/${id}`)).toBe(false);
    });

    test('a range outside /etc/subuid is refused by newgidmap, and nothing is left', async () => {
      const { dir, spec } = await rootlessBundle();
      spec.linux.uidMappings = [...ranges(uid).slice(0, 1), { containerID: 1, hostID: 400000, size: 10 }];
      spec.linux.gidMappings = [...ranges(gid).slice(0, 1), { containerID: 1, hostID: 400000, size: 10 }];
      spec.process.args = ['true'];
      writeSpec(dir, spec);
      const id = newId();
      const r = await asUser(['run', id], { cwd: dir });
      expect(r.code, show(r)).toBe(1);
      expect(r.stderr, show(r)).toMatch(/^nsinit: newgidmap \d+ 0 \d+ 1 1 400000 10: newgidmap: .+$/m);
      expect(fs.existsSync(`/tmp/nsinit-${uid}/${id}`)).toBe(false);
    });
  });
});
