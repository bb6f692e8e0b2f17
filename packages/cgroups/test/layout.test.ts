import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CgroupError, detectLayout, openCgroup } from '../src/index.js';
import { knownV1Controllers, parseV1Mounts } from '../src/layout.js';

const MOUNTINFO = `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
33 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,clone_children,cpuset
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
41 22 0:31 / /mnt/elsewhere/memory rw,relatime - cgroup cgroup rw,memory
42 30 0:31 /x /sys/fs/cgroup/deeper/memory rw,relatime - cgroup cgroup rw,memory
`;

describe('parseV1Mounts', () => {
  const known = knownV1Controllers('#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t1\t1\n');

  it('finds v1 hierarchies under the root with their controllers', () => {
    const mounts = parseV1Mounts(MOUNTINFO, '/sys/fs/cgroup', known);
    expect(mounts).toEqual([
      { mountpoint: '/sys/fs/cgroup/cpu,cpuacct', mountRoot: '/', controllers: ['cpu', 'cpuacct'] },
      { mountpoint: '/sys/fs/cgroup/cpuset', mountRoot: '/', controllers: ['cpuset'] },
      { mountpoint: '/sys/fs/cgroup/memory', mountRoot: '/', controllers: ['memory'] },
      { mountpoint: '/sys/fs/cgroup/systemd', mountRoot: '/', controllers: ['name=systemd'] },
    ]);
  });

  it('ignores mounts outside the root', () => {
    expect(parseV1Mounts(MOUNTINFO, '/mnt/elsewhere', known).map((m) => m.mountpoint)).toEqual([
      '/mnt/elsewhere/memory',
    ]);
  });
});

describe('detectLayout', () => {
  it('reports a missing root as NotFound', () => {
    try {
      detectLayout('/nonexistent-cgroup-root');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(CgroupError);
      expect((err as CgroupError).code).toBe('NotFound');
      expect((err as CgroupError).op).toBe('detect');
    }
  });

  it('calls a directory without cgroup2 legacy, and a cgroup2 mount unified', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-cg-layout-'));
    try {
      expect(detectLayout(tmp)).toBe('legacy');
    } finally {
      fs.rmdirSync(tmp);
    }
    const cg2 = ['/sys/fs/cgroup', '/sys/fs/cgroup/unified'].find(
      (p) => fs.existsSync(p) && fs.statfsSync(p).type === 0x63677270,
    );
    if (cg2 !== undefined) expect(detectLayout(cg2)).toBe('unified');
  });

  it('detects this machine consistently with /proc/self/mountinfo', () => {
    const info = fs.readFileSync('/proc/self/mountinfo', 'utf8');
    const fstypeAt = (mp: string): string | undefined =>
      info
        .split('\n')
        .find((l) => l.split(' ')[4] === mp)
        ?.split(' - ')[1]
        ?.split(' ')[0];
    const expected =
      fstypeAt('/sys/fs/cgroup') === 'cgroup2'
        ? 'unified'
        : fstypeAt('/sys/fs/cgroup/unified') === 'cgroup2'
          ? 'hybrid'
          : 'legacy';
    expect(detectLayout()).toBe(expected);
  });

  it('openCgroup maps every mounted v1 controller (and unified) to a directory', () => {
    const m = openCgroup({ path: '/tsc-layout-probe/c1' });
    const dirs = m.dirs();
    if (m.layout === 'unified') {
      expect(dirs).toEqual({ unified: '/sys/fs/cgroup/tsc-layout-probe/c1' });
      return;
    }
    for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const [left, right] = line.split(' - ');
      if (right?.startsWith('cgroup ') !== true) continue;
      const mp = left?.split(' ')[4] ?? '';
      if (!mp.startsWith('/sys/fs/cgroup/')) continue;
      expect(Object.values(dirs)).toContain(`${mp}/tsc-layout-probe/c1`);
    }
    if (m.layout === 'hybrid') expect(dirs['unified']).toBe('/sys/fs/cgroup/unified/tsc-layout-probe/c1');
    expect(m.exists()).toBe(false);
  });

  it('openCgroup rejects relative paths and the root', () => {
    expect(() => openCgroup({ path: 'rel/c1' })).toThrow(/must be absolute/);
    expect(() => openCgroup({ path: '/' })).toThrow(/root cgroup/);
  });
});
