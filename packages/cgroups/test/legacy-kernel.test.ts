// The legacy layout (v1 only, no cgroup2 anywhere, so no cgroup.kill) on the real kernel: a child
// in a private mount namespace mounts a tmpfs with this host's v1 hierarchies and drives the built
// package (dist/) there. The mounts vanish with the namespace; the cgroups are the host's.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCgroup } from '../src/index.js';
import { findV1Mounts } from '../src/layout.js';
import { delay, isRoot } from './helpers.js';

const pkg = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const mounts = isRoot ? findV1Mounts() : [];
const hasUnshare = fs.existsSync('/usr/bin/unshare') || fs.existsSync('/bin/unshare');
const run = isRoot && hasUnshare && mounts.some((m) => m.controllers.includes('freezer'));
const CG = `/tsc-cgtest-${process.pid}-legacy`;

/** Whether a v1 controller is bound to no hierarchy yet (hierarchy 0 in /proc/cgroups). */
function unbound(controller: string): boolean {
  const line = fs
    .readFileSync('/proc/cgroups', 'utf8')
    .split('\n')
    .find((l) => l.split(/\s+/)[0] === controller);
  return line?.split(/\s+/)[1] === '0';
}

function netClsHierarchy(): { hierarchy: string; cgroups: number } {
  const f = fs
    .readFileSync('/proc/cgroups', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('net_cls\t'))
    ?.split(/\s+/);
  return { hierarchy: f?.[1] ?? '?', cgroups: Number(f?.[2]) };
}

// net_cls/net_prio are mounted by nobody on this host: the network test binds them to a private
// hierarchy for its duration and unbinds them again (the hierarchy dies with its last mount once
// it has no child cgroups).
const netSkip = !run
  ? ''
  : !['net_cls', 'net_prio'].every((c) =>
        fs.readFileSync('/proc/cgroups', 'utf8').match(new RegExp(`^${c}\\s`, 'm')),
      )
    ? 'the kernel has no net_cls/net_prio controller (CONFIG_CGROUP_NET_CLASSID, CONFIG_CGROUP_NET_PRIO)'
    : !(unbound('net_cls') && unbound('net_prio'))
      ? 'net_cls/net_prio are already bound to a hierarchy on this host (the test needs a private one it can unbind)'
      : ['nft', 'ip', 'nsenter'].find(
            (b) => !['/usr/sbin', '/sbin', '/usr/bin', '/bin'].some((d) => fs.existsSync(`${d}/${b}`)),
          )
        ? 'nft, ip and nsenter are needed to see the packets (apt-get install nftables iproute2 util-linux)'
        : undefined;

// The network test's child: applies linux.resources.network to a cgroup of a private
// net_cls,net_prio hierarchy, then makes processes send UDP datagrams through the veth `dev`
// (host end of a pair whose peer is in a network namespace the test made) to `dst`, from inside
// the cgroup (ports 5001 and, after update(), 5003) and from outside (5002). The test counts them
// with nftables on the veth's egress hook.
const NET_SCRIPT = `
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
const [lib, root, parent, dev, dst] = process.argv.slice(2);
const { openCgroup, detectLayout } = await import(lib);
const out = { layout: detectLayout(root) };
const m = openCgroup({ path: parent + '/net', root });
m.create();
// 20 datagrams from one socket, opened after the process was moved (so no socket predates the cgroup).
const SEND = 'const s = require("dgram").createSocket("udp4"); let n = 0;' +
  'const f = () => s.send("x", +process.argv[1], process.argv[2], (e) => { if (e) throw e; if (++n < 20) f(); else s.close(); }); f();';
function send(port, cg) {
  const c = spawn('sh', ['-c', 'read x; exec "$0" -e "$1" "$2" "$3"', process.execPath, SEND, String(port), dst], {
    stdio: ['pipe', 'ignore', 'inherit'],
  });
  const exited = new Promise((r) => c.on('exit', (code, signal) => r(code ?? signal)));
  if (cg) cg.addProcess(c.pid);
  c.stdin.end('\\n');
  return exited;
}
const priomap = () => fs.readFileSync(m.dirs().net_prio + '/net_prio.ifpriomap', 'utf8').split('\\n').find((l) => l.startsWith(dev + ' '));
out.applied = m.apply({ network: { classID: 0x100001, priorities: [{ name: dev, priority: 5 }] } }).applied;
out.classid = fs.readFileSync(m.dirs().net_cls + '/net_cls.classid', 'utf8').trim();
out.ifpriomap = priomap();
out.inside = await send(5001, m);
out.outside = await send(5002, undefined);
out.updated = m.update({ network: { classID: 0x100002, priorities: [{ name: dev, priority: 7 }] } }).applied;
out.ifpriomap2 = priomap();
out.afterUpdate = await send(5003, m);
try {
  m.apply({ unified: { 'memory.high': '1' } });
} catch (err) {
  out.unified = err.message;
}
await m.destroy();
fs.rmdirSync(root + '/net' + parent);
console.log(JSON.stringify(out));
`;

function distIsStale(): boolean {
  const built = path.join(pkg, 'dist/index.js');
  if (!fs.existsSync(built)) return true;
  const builtAt = fs.statSync(built).mtimeMs;
  const src = path.join(pkg, 'src');
  return fs.readdirSync(src).some((f) => fs.statSync(path.join(src, f)).mtimeMs > builtAt);
}

const SCRIPT = `
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
const { openCgroup, detectLayout } = await import(process.argv[2]);
const root = process.argv[3];
const out = { layout: detectLayout(root) };
const m = openCgroup({ path: process.argv[4] + '/c1', root });
out.dirKeys = Object.keys(m.dirs()).sort();
m.create();
out.applied = m.apply({ pids: { limit: 10 } }).applied;
const exits = [];
const gated = (script) => {
  const c = spawn('sh', ['-c', 'read x; ' + script], { stdio: ['pipe', 'ignore', 'ignore'] });
  exits.push(new Promise((r) => c.on('exit', (code, signal) => r(signal))));
  return c;
};
const a = gated('sleep 1000 & sleep 1000 & wait');
m.addProcess(a.pid);
const nested = openCgroup({ path: m.path + '/n', root });
nested.create();
const b = gated('exec sleep 1000');
nested.addProcess(b.pid);
a.stdin.write('\\n');
b.stdin.write('\\n');
const deadline = Date.now() + 5000;
while (m.pids().length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
out.pidsBefore = m.pids().length;
nested.freeze();
out.nestedState = fs.readFileSync(nested.dirs().freezer + '/freezer.state', 'utf8').trim();
m.kill();
out.signals = await Promise.race([
  Promise.all(exits),
  new Promise((r) => setTimeout(() => r('timeout'), 5000).unref()),
]);
// Killed processes leave the cgroup as they finish exiting: allow them a moment.
const gone = Date.now() + 2000;
while (m.pids().length > 0 && Date.now() < gone) await new Promise((r) => setTimeout(r, 10));
out.pidsAfter = m.pids().length;
await m.destroy();
out.left = Object.values(m.dirs()).filter((d) => fs.existsSync(d));
console.log(JSON.stringify(out));
`;

describe.skipIf(!run)('legacy layout on the real kernel (needs root, unshare and a v1 freezer)', () => {
  let tmp = '';
  beforeAll(() => {
    // The child runs plain node, so it needs the built package: rebuild when dist/ is stale.
    if (distIsStale())
      execFileSync(
        process.execPath,
        [createRequire(import.meta.url).resolve('typescript/bin/tsc'), '-p', 'tsconfig.json'],
        {
          cwd: pkg,
          stdio: 'inherit',
        },
      );
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-cg-legacy-'));
    fs.writeFileSync(path.join(tmp, 'script.mjs'), SCRIPT);
    fs.writeFileSync(path.join(tmp, 'net.mjs'), NET_SCRIPT);
    fs.writeFileSync(path.join(tmp, 'container.mjs'), CONTAINER_SCRIPT);
  }, 120_000);

  afterAll(async () => {
    await openCgroup({ path: CG }).destroy();
    if (tmp !== '') fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('kills through the v1 freezer (thawing self-frozen nested cgroups) and destroys', async () => {
    const root = path.join(tmp, 'root');
    const { code, stdout, stderr } = await privateMounts([
      `mkdir -p ${root}`,
      `mount -t tmpfs tmpfs ${root}`,
      ...mounts.map((m) => {
        const dir = path.join(root, m.controllers.join(','));
        const opts = m.controllers.map((c) => (c.startsWith('name=') ? `none,${c}` : c)).join(',');
        return `mkdir -p ${dir} && mount -t cgroup -o ${opts} cgroup ${dir}`;
      }),
      `exec "${process.execPath}" ${path.join(tmp, 'script.mjs')} ${path.join(pkg, 'dist/index.js')} ${root} ${CG}`,
    ]);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const out = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
    expect(out['layout']).toBe('legacy');
    expect(out['dirKeys']).not.toContain('unified');
    expect(out['dirKeys']).toEqual(expect.arrayContaining(['freezer', 'memory', 'pids']));
    expect(out['applied']).toEqual(['pids.max=10']);
    expect(out['pidsBefore']).toBe(4);
    expect(out['nestedState']).toBe('FROZEN');
    expect(out['signals']).toEqual(['SIGKILL', 'SIGKILL']);
    expect(out['pidsAfter']).toBe(0);
    expect(out['left']).toEqual([]);
    expect(openCgroup({ path: CG }).exists()).toBe(true); // the parent stays; afterAll removes it
  });

  it('network by effect: packets from the cgroup carry net_cls.classid and the net_prio.ifpriomap priority', async (ctx) => {
    if (netSkip !== undefined) ctx.skip(true, netSkip);
    const root = path.join(tmp, 'netroot');
    const netdir = path.join(root, 'net');
    const rules = [5001, 5002, 5003].flatMap((port) =>
      ['meta cgroup 0x00100001', 'meta cgroup 0x00100002', 'meta priority 0:5', 'meta priority 0:7', ''].map(
        (m) => `udp dport ${port} ${m} counter comment "${port} ${m || 'all'}"`,
      ),
    );
    const net = await testNet(rules);
    try {
      const { code, stdout, stderr } = await privateMounts([
        `mkdir -p ${root}`,
        `mount -t tmpfs tmpfs ${root}`,
        `mkdir ${netdir} && mount -t cgroup -o net_cls,net_prio cgroup ${netdir}`,
        `"${process.execPath}" ${path.join(tmp, 'net.mjs')} ${path.join(pkg, 'dist/index.js')} ${root} ${CG} ${net.dev} ${net.dst}`,
        WAIT_NET_CLS_RELEASED,
        `umount ${netdir}`,
      ]);
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      const out = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
      expect(out['layout']).toBe('legacy');
      expect(out['applied']).toEqual(['net_cls.classid=1048577', `net_prio.ifpriomap=${net.dev} 5`]);
      expect(out['classid']).toBe('1048577');
      expect(out['ifpriomap']).toBe(`${net.dev} 5`);
      expect(out['updated']).toEqual(['net_cls.classid=1048578', `net_prio.ifpriomap=${net.dev} 7`]);
      expect(out['ifpriomap2']).toBe(`${net.dev} 7`);
      expect([out['inside'], out['outside'], out['afterUpdate']]).toEqual([0, 0, 0]);
      expect(out['unified']).toBe(
        'linux.resources.unified["memory.high"]: unified keys are cgroup v2 files, and this host has only cgroup v1 hierarchies',
      );
      expect(await net.counters(['5001 all', '5002 all', '5003 all'], 20)).toEqual({
        // in the cgroup: classid 0x100001 (net_cls 1:1) and priority 5 on this device
        '5001 all': 20,
        '5001 meta cgroup 0x00100001': 20,
        '5001 meta cgroup 0x00100002': 0,
        '5001 meta priority 0:5': 20,
        '5001 meta priority 0:7': 0,
        // outside: neither
        '5002 all': 20,
        '5002 meta cgroup 0x00100001': 0,
        '5002 meta cgroup 0x00100002': 0,
        '5002 meta priority 0:5': 0,
        '5002 meta priority 0:7': 0,
        // in the cgroup after update(): the new classid and priority
        '5003 all': 20,
        '5003 meta cgroup 0x00100001': 0,
        '5003 meta cgroup 0x00100002': 20,
        '5003 meta priority 0:5': 0,
        '5003 meta priority 0:7': 20,
      });
    } finally {
      net.close();
      await expectNetClsUnbound();
    }
  });

  it('network by effect in a container: Container.run with linux.resources.network tags its pings', async (ctx) => {
    if (netSkip !== undefined) ctx.skip(true, netSkip);
    if (!fs.existsSync(LIBCONTAINER))
      ctx.skip(true, `${LIBCONTAINER} is not built (pnpm --filter @tsc/libcontainer build)`);
    // The container runs from a child with a private mount namespace whose /sys/fs/cgroup is a new
    // tmpfs holding bind mounts of this host's hierarchies plus a private net_cls,net_prio one, so
    // @tsc/libcontainer (default root) finds net_cls and net_prio. It shares the host's network
    // namespace (no network namespace in its spec), where the test's veth is.
    const rootfs = path.join(tmp, 'rootfs');
    if (!fs.existsSync(rootfs))
      execFileSync('sh', [path.join(pkg, '../../scripts/build-rootfs.sh'), rootfs], { stdio: 'pipe' });
    const rules = ['meta cgroup 0x00100003', 'meta cgroup 0x00100001', 'meta priority 0:3', ''].map(
      (m) => `icmp type echo-request ${m} counter comment "ping ${m || 'all'}"`,
    );
    const net = await testNet(rules);
    const cgroupRoot = path.join(tmp, 'cgroot');
    const id = `tsc-cgtest-${process.pid}-net`;
    try {
      const binds = mounts.map((m) => {
        const name = path.basename(m.mountpoint);
        return `mkdir ${cgroupRoot}/${name} && mount --bind ${m.mountpoint} ${cgroupRoot}/${name}`;
      });
      const { code, stdout, stderr } = await privateMounts([
        `mkdir -p ${cgroupRoot}`,
        `mount -t tmpfs tmpfs ${cgroupRoot}`,
        ...binds,
        ...(fs.existsSync('/sys/fs/cgroup/unified')
          ? [`mkdir ${cgroupRoot}/unified && mount --bind /sys/fs/cgroup/unified ${cgroupRoot}/unified`]
          : []),
        `mkdir ${cgroupRoot}/net_cls,net_prio && mount -t cgroup -o net_cls,net_prio cgroup ${cgroupRoot}/net_cls,net_prio`,
        `mount --move ${cgroupRoot} /sys/fs/cgroup`,
        `"${process.execPath}" ${path.join(tmp, 'container.mjs')} ${LIBCONTAINER} ${id} ${rootfs} ${path.join(tmp, 'state')} ${net.dev} ${net.dst}`,
        WAIT_NET_CLS_RELEASED,
        'umount /sys/fs/cgroup/net_cls,net_prio',
      ]);
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      const out = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
      // Inside, /proc/self/cgroup names the container's cgroup in the net_cls,net_prio hierarchy.
      expect(out['cgroup']).toMatch(/^\d+:net_cls,net_prio:\/$|:net_cls,net_prio:\/nsinit\//m);
      expect(out['output']).toMatch(/5 packets transmitted/);
      expect(out['exit']).toEqual({ status: 0 });
      expect(out['left']).toEqual([]);
      expect(await net.counters(['ping all'], 5)).toEqual({
        'ping all': 5,
        'ping meta cgroup 0x00100003': 5,
        'ping meta cgroup 0x00100001': 0,
        'ping meta priority 0:3': 5,
      });
    } finally {
      net.close();
      await expectNetClsUnbound();
    }
  });
});

/** The container test's child: Container.run of a busybox ping with linux.resources.network. */
const CONTAINER_SCRIPT = `
import * as fs from 'node:fs';
const [lib, id, rootfs, state, dev, dst] = process.argv.slice(2);
const { Container, defaultSpec } = await import(lib);
const dir = fs.mkdtempSync('/tmp/tsc-cgtest-bundle-');
const spec = defaultSpec({ args: ['sh', '-c', 'cat /proc/self/cgroup; ping -c 5 -i 0.2 -W 2 ' + dst] });
spec.process.terminal = false;
for (const set of ['bounding', 'effective', 'permitted']) spec.process.capabilities[set].push('CAP_NET_RAW');
spec.root.path = rootfs;
spec.linux.namespaces = spec.linux.namespaces.filter((n) => n.type !== 'network');
spec.linux.resources = { ...spec.linux.resources, network: { classID: 0x100003, priorities: [{ name: dev, priority: 3 }] } };
fs.writeFileSync(dir + '/config.json', JSON.stringify(spec));
const outFile = dir + '/out.txt';
const fd = fs.openSync(outFile, 'w');
const { container, exited } = await Container.run({ id, bundle: dir, root: state, stdio: ['ignore', fd, fd] });
const ex = await exited;
fs.closeSync(fd);
const output = fs.readFileSync(outFile, 'utf8');
const cgDir = '/sys/fs/cgroup/net_cls,net_prio/nsinit/' + id;
await container.delete({ force: true });
const left = fs.existsSync(cgDir) ? [cgDir] : [];
// The runtime leaves its parent cgroup (/nsinit) behind; in this private hierarchy it must go too.
fs.rmdirSync('/sys/fs/cgroup/net_cls,net_prio/nsinit');
fs.rmSync(dir, { recursive: true, force: true });
console.log(JSON.stringify({
  exit: ex.signal ? { signal: ex.signal } : { status: ex.status },
  output,
  cgroup: output.split('\\n').filter((l) => l.includes('net_cls')).join('\\n'),
  left,
}));
`;

const LIBCONTAINER = path.join(pkg, '../libcontainer/dist/index.js');

/**
 * The hierarchy is destroyed at the last unmount only if it has no child cgroups left, and removed
 * cgroups are released asynchronously: wait (up to 2 s) until net_cls counts only its root cgroup.
 */
const WAIT_NET_CLS_RELEASED = `for i in $(seq 200); do [ "$(awk '$1=="net_cls"{print $3}' /proc/cgroups)" = 1 ] && break; sleep 0.01; done`;

/** Run a shell script in a child with a private mount namespace; its mounts die with it. */
async function privateMounts(
  lines: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(
    'unshare',
    ['-m', '--propagation', 'private', 'sh', '-c', ['set -e', ...lines].join('\n')],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return { code, stdout, stderr };
}

/**
 * A veth pair for the network tests: the host end `dev` (net_prio's ifpriomap only knows devices
 * of the initial network namespace) and its peer, with address `dst`, in a network namespace held
 * by a sleeping child. Traffic goes only to `dst`. An nftables netdev table of the test counts it
 * on the host end's egress hook, which runs after the kernel set skb->priority from the sending
 * socket's net_prio cgroup; `meta cgroup` is the socket's net_cls classid.
 */
async function testNet(rules: string[]): Promise<{
  dev: string;
  dst: string;
  counters(wait: string[], n: number): Promise<Record<string, number>>;
  close(): void;
}> {
  const dev = `tsccg${process.pid % 100000}a`;
  const peer = `tsccg${process.pid % 100000}b`;
  const net = `10.213.${process.pid % 250}`;
  const table = `tsc_cgtest_${process.pid}`;
  const sh = (script: string) =>
    execFileSync('sh', ['-c', `set -e\n${script}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  const holder = spawn('unshare', ['-n', 'sleep', '600'], { stdio: 'ignore' });
  const close = (): void => {
    holder.kill('SIGKILL');
    try {
      sh(`nft delete table netdev ${table} 2>/dev/null || true; ip link del ${dev} 2>/dev/null || true`);
    } catch {}
  };
  try {
    const ownNs = fs.readlinkSync('/proc/self/ns/net');
    const deadline = Date.now() + 5000;
    while (fs.readlinkSync(`/proc/${holder.pid}/ns/net`) === ownNs) {
      if (Date.now() > deadline) throw new Error('unshare -n did not make a network namespace');
      await delay(10);
    }
    sh(`ip link add ${dev} type veth peer name ${peer} netns ${holder.pid}
ip addr add ${net}.1/30 dev ${dev}
ip link set ${dev} up
nsenter -t ${holder.pid} -n sh -ec 'ip link set lo up; ip addr add ${net}.2/30 dev ${peer}; ip link set ${peer} up'
nft -f - <<EOF
table netdev ${table} {
  chain egress { type filter hook egress device ${dev} priority 0; ${rules.join('; ')}; }
}
EOF`);
  } catch (err) {
    close();
    throw err;
  }
  const read = (): Record<string, number> => {
    const json = JSON.parse(
      execFileSync('nft', ['-j', 'list', 'table', 'netdev', table], { encoding: 'utf8' }),
    ) as {
      nftables: { rule?: { comment?: string; expr: { counter?: { packets: number } }[] } }[];
    };
    const c: Record<string, number> = {};
    for (const { rule } of json.nftables) {
      const n = rule?.expr.find((e) => e.counter !== undefined)?.counter?.packets;
      if (rule?.comment !== undefined && n !== undefined) c[rule.comment] = n;
    }
    return c;
  };
  return {
    dev,
    dst: `${net}.2`,
    // Packets can wait in the ARP queue for a moment after their sender exited.
    counters: async (wait, n) => {
      const until = Date.now() + 5000;
      let c = read();
      while (wait.some((k) => c[k] !== n) && Date.now() < until) {
        await delay(50);
        c = read();
      }
      return c;
    },
    close,
  };
}

/**
 * net_cls is unbound again (hierarchy 0); if the kernel kept the hierarchy, mount and unmount it once
 * more now that it is empty.
 */
async function expectNetClsUnbound(): Promise<void> {
  const deadline = Date.now() + 2000;
  while (netClsHierarchy().hierarchy !== '0' && Date.now() < deadline) await delay(20);
  if (netClsHierarchy().hierarchy !== '0') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-cg-netfix-'));
    execFileSync('unshare', [
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      `mount -t cgroup -o net_cls,net_prio cgroup ${dir} && umount ${dir}`,
    ]);
    fs.rmdirSync(dir);
    await delay(100);
  }
  expect(netClsHierarchy().hierarchy).toBe('0');
}
