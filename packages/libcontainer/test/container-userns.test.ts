// User, time and joined namespaces on the real kernel: id maps seen from inside and from the host,
// files created by a mapped root, invalid mappings, joining another container's network and uts
// namespaces by path (and a path of the wrong kind), time namespace offsets, and exec into a
// user-namespaced container. Containers with a user namespace get a private rootfs copy chowned to
// the mapped root (100000), like a rootless image.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { namespacesOf } from '@tsc/namespaces';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Container, type RunningContainer } from '../src/index.js';
import {
  type Bundle,
  cgroupDirs,
  containerError,
  Fixture,
  type LooseSpec,
  notRoot,
  type Output,
  rootfs,
  skipUnlessRoot,
  waitFor,
} from './fixtures.js';

type IdMap = { containerID: number; hostID: number; size: number };

/** Host root 100000 .. 165535 is the container's 0 .. 65535. */
const ONE_RANGE: IdMap[] = [{ containerID: 0, hostID: 100000, size: 65536 }];
const HOST_ROOT = 100000;

/** The `Uid:` or `Gid:` line of /proc/<pid>/status: real, effective, saved, fs. */
function hostIds(pid: number, which: 'Uid' | 'Gid'): number[] {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const line = new RegExp(`^${which}:\\s+(.*)$`, 'm').exec(status)?.[1] ?? '';
  return line.trim().split(/\s+/).map(Number);
}

/** `key=value` lines of the output as a map. */
function kv(text: string): Record<string, string> {
  const m: Record<string, string> = {};
  for (const l of text.split('\n')) {
    const i = l.indexOf('=');
    if (i > 0) m[l.slice(0, i)] = l.slice(i + 1);
  }
  return m;
}

/** Lines of an id map file, whitespace normalised: "0 100000 65536". */
function mapLines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/).join(' '))
    .filter(Boolean);
}

/** Seconds of uptime (first field of /proc/uptime). */
function uptime(text: string): number {
  return Number(text.trim().split(/\s+/)[0]);
}

describe.skipIf(notRoot)(`user, time and joined namespaces${notRoot ? ` (${skipUnlessRoot()})` : ''}`, () => {
  let fx: Fixture;

  beforeAll(() => {
    fx = new Fixture('userns');
    rootfs();
  });
  afterEach(async () => {
    await fx.cleanup();
  });
  afterAll(async () => {
    await fx?.dispose();
  });

  /** Add a user namespace with these mappings (uid and gid alike) to a spec. */
  function withUserns(spec: LooseSpec, maps: IdMap[] = ONE_RANGE): void {
    spec.linux.namespaces.push({ type: 'user' });
    spec.linux.uidMappings = maps;
    spec.linux.gidMappings = maps;
  }

  /**
   * A bundle whose writable rootfs copy belongs to the mapped root. The directories above it are
   * made traversable: the container's root is uid 100000 on the host and has no rights over
   * host-root-owned private dirs.
   */
  function usernsBundle(args: string[], mutate?: (s: LooseSpec) => void, maps: IdMap[] = ONE_RANGE): Bundle {
    const b = fx.makeBundle({
      args,
      copyRootfs: true,
      mutate: (s) => {
        withUserns(s, maps);
        s.root.readonly = false;
        mutate?.(s);
      },
    });
    execFileSync('chown', ['-R', '-h', `${HOST_ROOT}:${HOST_ROOT}`, b.rootfs]);
    fs.chmodSync(b.dir, 0o711);
    fs.chmodSync(path.dirname(b.dir), 0o711);
    return b;
  }

  async function start(b: Bundle, id = fx.id()): Promise<RunningContainer & { out: Output; id: string }> {
    const out = fx.output();
    const r = await Container.run({ id, bundle: b.dir, root: fx.root, stdio: out.stdio });
    return { ...r, out, id };
  }

  /** Kill a running container and wait for its init. */
  async function stop(r: RunningContainer): Promise<void> {
    try {
      r.container.kill('SIGKILL');
    } catch {
      // ended already
    }
    await r.exited;
  }

  it('maps root to host uid 100000: id, uid_map, /proc/<pid>/status, owned files, /dev/null', async () => {
    const data = fx.tempDir('data');
    fs.chmodSync(data, 0o755);
    fs.chownSync(data, HOST_ROOT, HOST_ROOT);
    const b = usernsBundle(
      [
        'sh',
        '-c',
        [
          'echo uid=$(id -u) gid=$(id -g)',
          'echo user=$(id -un)',
          'echo "uidmap=$(cat /proc/self/uid_map)"',
          'echo "gidmap=$(cat /proc/self/gid_map)"',
          'echo made > /made-in-rootfs',
          'echo made > /data/made-in-bind',
          'echo x > /dev/null && echo devnull-write=ok',
          'echo "devnull-read=$(cat /dev/null | wc -c)"',
          'echo devnull-kind=$(stat -c %F,%t,%T /dev/null)',
          'echo READY',
          'exec sleep 30',
        ].join('; '),
      ],
      (s) => {
        s.mounts.push({ destination: '/data', type: 'bind', source: data, options: ['rbind', 'rw'] });
      },
    );
    const r = await start(b);
    await waitFor(() => r.out.read().includes('READY'), 10_000, 'the container to report');
    const pid = r.container.state().pid;
    // From the host: the init runs as 100000 (real, effective, saved, fs).
    expect(hostIds(pid, 'Uid')).toEqual([HOST_ROOT, HOST_ROOT, HOST_ROOT, HOST_ROOT]);
    expect(hostIds(pid, 'Gid')).toEqual([HOST_ROOT, HOST_ROOT, HOST_ROOT, HOST_ROOT]);
    expect(mapLines(fs.readFileSync(`/proc/${pid}/uid_map`, 'utf8'))).toEqual(['0 100000 65536']);
    // A user namespace of its own.
    expect(namespacesOf(pid, ['user']).user.inode).not.toBe(namespacesOf('self', ['user']).user.inode);
    await stop(r);

    const o = kv(r.out.read());
    expect(o.uid, r.out.read()).toBe('0 gid=0');
    expect(o.user).toBe('root');
    expect(mapLines(o.uidmap ?? '')).toEqual(['0 100000 65536']);
    expect(mapLines(o.gidmap ?? '')).toEqual(['0 100000 65536']);
    expect(o['devnull-write']).toBe('ok');
    expect(o['devnull-read']).toBe('0');
    // The host's node, bind-mounted (mknod is not allowed in a user namespace).
    expect(o['devnull-kind']).toBe('character special file,1,3');
    for (const f of [path.join(b.rootfs, 'made-in-rootfs'), path.join(data, 'made-in-bind')]) {
      const st = fs.statSync(f);
      expect([st.uid, st.gid], f).toEqual([HOST_ROOT, HOST_ROOT]);
      expect(fs.readFileSync(f, 'utf8')).toBe('made\n');
    }
  });

  it('maps several ranges: uid 1500 inside is 200500 on the host', async () => {
    const maps: IdMap[] = [
      { containerID: 0, hostID: 100000, size: 1000 },
      { containerID: 1000, hostID: 200000, size: 1000 },
    ];
    const b = usernsBundle(
      [
        'sh',
        '-c',
        'echo uid=$(id -u) gid=$(id -g); echo "uidmap=$(cat /proc/self/uid_map | tr \'\\n\' ,)"; echo READY; exec sleep 30',
      ],
      (s) => {
        s.process.user = { uid: 1500, gid: 1500 };
      },
      maps,
    );
    const r = await start(b);
    await waitFor(() => r.out.read().includes('READY'), 10_000, 'the container to report');
    const pid = r.container.state().pid;
    expect(hostIds(pid, 'Uid')).toEqual([200500, 200500, 200500, 200500]);
    expect(hostIds(pid, 'Gid')).toEqual([200500, 200500, 200500, 200500]);
    await stop(r);
    const o = kv(r.out.read());
    expect(o.uid, r.out.read()).toBe('1500 gid=1500');
    expect(mapLines((o.uidmap ?? '').replaceAll(',', '\n'))).toEqual(['0 100000 1000', '1000 200000 1000']);
  });

  it('the id maps are written for the init even when its sync overtakes the pid report (40 starts)', async () => {
    // The init asks for its id maps right after clone3, on the socket the executor reports the
    // pid on: the two messages race. A read-only shared rootfs is enough for `true`.
    const b = fx.makeBundle({ args: ['true'], mutate: (s) => withUserns(s) });
    for (let i = 0; i < 40; i++) {
      const r = await start(b);
      const exit = await r.exited;
      expect(exit.status, `start ${i}: ${r.out.read()}`).toBe(0);
      await r.container.delete();
    }
  });

  describe('invalid id mappings are InvalidConfig naming the field, and create nothing', () => {
    const cases: [string, (s: LooseSpec) => void, RegExp][] = [
      [
        'overlapping container ids',
        (s) =>
          withUserns(s, [
            { containerID: 0, hostID: 100000, size: 1000 },
            { containerID: 500, hostID: 300000, size: 1000 },
          ]),
        /^linux\.uidMappings\[1\]: container ids overlap linux\.uidMappings\[0\]/,
      ],
      [
        'overlapping host ids',
        (s) =>
          withUserns(s, [
            { containerID: 0, hostID: 100000, size: 1000 },
            { containerID: 1000, hostID: 100500, size: 1000 },
          ]),
        /^linux\.uidMappings\[1\]: host ids overlap linux\.uidMappings\[0\]/,
      ],
      [
        'a size-0 gid mapping',
        (s) => {
          withUserns(s);
          s.linux.gidMappings = [
            { containerID: 0, hostID: 100000, size: 1 },
            { containerID: 1, hostID: 100001, size: 0 },
          ];
        },
        /^linux\.gidMappings\[1\]\.size: must be at least 1/,
      ],
      [
        'mappings without a user namespace',
        (s) => {
          s.linux.uidMappings = ONE_RANGE;
          s.linux.gidMappings = ONE_RANGE;
        },
        /^linux\.uidMappings: mappings are given but no new user namespace is/,
      ],
      [
        'gid mappings alone without a user namespace',
        (s) => {
          s.linux.gidMappings = ONE_RANGE;
        },
        /^linux\.gidMappings: mappings are given but no new user namespace is/,
      ],
      [
        'a user namespace without mappings',
        (s) => {
          s.linux.namespaces.push({ type: 'user' });
        },
        /^linux\.uidMappings: a new user namespace needs uidMappings and gidMappings/,
      ],
      [
        'a user namespace without gid mappings',
        (s) => {
          s.linux.namespaces.push({ type: 'user' });
          s.linux.uidMappings = ONE_RANGE;
        },
        /^linux\.gidMappings: a new user namespace needs uidMappings and gidMappings/,
      ],
    ];
    it.each(cases)('%s', async (_name, mutate, re) => {
      const b = fx.makeBundle({ args: ['true'], mutate });
      const id = fx.id();
      const e = await containerError(
        Container.run({ id, bundle: b.dir, root: fx.root, stdio: fx.output().stdio }),
      );
      expect(e.code, e.message).toBe('InvalidConfig');
      expect(e.message).toMatch(re);
      expect(fx.stateIds()).toEqual([]);
      expect(cgroupDirs(id)).toEqual([]);
    });
  });

  describe('joining namespaces by path', () => {
    /** A container "alpha" with a veth pair in its network namespace, running until killed. */
    async function alpha(): Promise<RunningContainer & { pid: number; out: Output; id: string }> {
      const b = fx.makeBundle({
        args: ['sleep', '30'],
        mutate: (s) => {
          s.hostname = 'alpha';
        },
      });
      const r = await start(b, fx.id('alpha'));
      const pid = r.container.state().pid;
      execFileSync('nsenter', [
        '-t',
        String(pid),
        '-n',
        'ip',
        'link',
        'add',
        'tscv0',
        'type',
        'veth',
        'peer',
        'tscv1',
      ]);
      return { ...r, pid };
    }

    it("a container joining another's network and uts namespaces sees its hostname and interfaces", async () => {
      const a = await alpha();
      const b = fx.makeBundle({
        args: [
          'sh',
          '-c',
          'echo host=$(hostname); echo "net=$(ls /sys/class/net | tr \'\\n\' " ")"; ' +
            'echo "dev=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | sort | tr \'\\n\' " ")"; echo READY; exec sleep 30',
        ],
        mutate: (s) => {
          s.hostname = 'beta'; // ignored: the uts namespace is joined, not created
          for (const ns of s.linux.namespaces) {
            if (ns.type === 'network') ns.path = `/proc/${a.pid}/ns/net`;
            if (ns.type === 'uts') ns.path = `/proc/${a.pid}/ns/uts`;
          }
        },
      });
      const r = await start(b, fx.id('beta'));
      await waitFor(() => r.out.read().includes('READY'), 10_000, 'beta to report');
      const bpid = r.container.state().pid;
      const na = namespacesOf(a.pid);
      const nb = namespacesOf(bpid);
      const host = namespacesOf('self');
      expect(nb.network).toEqual(na.network);
      expect(nb.uts).toEqual(na.uts);
      expect(nb.network.inode).not.toBe(host.network.inode);
      // Everything else is beta's own.
      for (const t of ['pid', 'mount', 'ipc', 'cgroup'] as const) {
        expect(nb[t].inode, t).not.toBe(na[t].inode);
        expect(nb[t].inode, t).not.toBe(host[t].inode);
      }
      await stop(r);
      await stop(a);
      const o = kv(r.out.read());
      expect(o.host, r.out.read()).toBe('alpha');
      expect(o.net?.trim().split(' ').sort()).toEqual(['lo', 'tscv0', 'tscv1']);
      expect(o.dev?.trim().split(' ')).toEqual(['lo', 'tscv0', 'tscv1']);
    });

    it('a path of the wrong kind, a file that is no namespace and a missing path are InvalidConfig', async () => {
      const a = await alpha();
      const cases: [string, string, RegExp][] = [
        ['network', `/proc/${a.pid}/ns/uts`, /is a uts namespace, not network$/],
        ['uts', '/etc/hostname', /is not a namespace file \(its filesystem is not nsfs\)$/],
        ['ipc', `/proc/${a.pid}/ns/ipc-missing`, /does not exist$/],
      ];
      for (const [type, nsPath, re] of cases) {
        let index = -1;
        const b = fx.makeBundle({
          args: ['true'],
          mutate: (s) => {
            index = s.linux.namespaces.findIndex((n: { type: string }) => n.type === type);
            s.linux.namespaces[index].path = nsPath;
          },
        });
        const id = fx.id();
        const e = await containerError(
          Container.run({ id, bundle: b.dir, root: fx.root, stdio: fx.output().stdio }),
        );
        expect(e.code, e.message).toBe('InvalidConfig');
        expect(index).toBeGreaterThanOrEqual(0);
        expect(e.message.startsWith(`linux.namespaces[${index}].path: ${nsPath} `), e.message).toBe(true);
        expect(e.message).toMatch(re);
        expect(fx.stateIds()).toEqual([a.id]);
        expect(cgroupDirs(id)).toEqual([]);
      }
      await stop(a);
    });
  });

  it('a time namespace shifts boottime and monotonic by linux.timeOffsets', async () => {
    const b = fx.makeBundle({
      args: [
        'sh',
        '-c',
        'echo "uptime=$(cat /proc/uptime)"; echo "offsets=$(cat /proc/self/timens_offsets | tr \'\\n\' ,)"',
      ],
      mutate: (s) => {
        s.linux.namespaces.push({ type: 'time' });
        s.linux.timeOffsets = { monotonic: { secs: 86400 }, boottime: { secs: 172800 } };
      },
    });
    const hostBefore = uptime(fs.readFileSync('/proc/uptime', 'utf8'));
    const r = await start(b);
    expect((await r.exited).status).toBe(0);
    const hostAfter = uptime(fs.readFileSync('/proc/uptime', 'utf8'));
    const o = kv(r.out.read());
    const inside = uptime(o.uptime ?? '');
    expect(inside, r.out.read()).toBeGreaterThanOrEqual(hostBefore + 172000);
    expect(inside).toBeLessThanOrEqual(hostAfter + 172800 + 1);
    expect(mapLines((o.offsets ?? '').replaceAll(',', '\n'))).toEqual([
      'monotonic 86400 0',
      'boottime 172800 0',
    ]);
    expect(fs.readFileSync('/proc/self/timens_offsets', 'utf8')).toMatch(
      /^monotonic\s+0\s+0\nboottime\s+0\s+0\n$/,
    );
  });

  it('exec into a user-namespaced container joins its user namespace: uid 0 inside, 100000 outside', async () => {
    const b = usernsBundle(['sleep', '30']);
    const r = await start(b);
    const initPid = r.container.state().pid;
    const out = fx.output();
    const p = await r.container.exec(
      {
        ...r.container.config().process!,
        args: [
          'sh',
          '-c',
          'echo uid=$(id -u); echo "uidmap=$(cat /proc/self/uid_map)"; echo READY; exec sleep 30',
        ],
      },
      { stdio: out.stdio },
    );
    await waitFor(() => out.read().includes('READY'), 10_000, 'the exec to report');
    expect(namespacesOf(p.pid).user).toEqual(namespacesOf(initPid).user);
    expect(namespacesOf(p.pid)).toEqual(namespacesOf(initPid));
    expect(hostIds(p.pid, 'Uid')).toEqual([HOST_ROOT, HOST_ROOT, HOST_ROOT, HOST_ROOT]);
    process.kill(p.pid, 'SIGKILL');
    await p.exited;
    await stop(r);
    const o = kv(out.read());
    expect(o.uid, out.read()).toBe('0');
    expect(mapLines(o.uidmap ?? '')).toEqual(['0 100000 65536']);
  });
});
