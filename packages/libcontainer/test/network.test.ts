// Container networks on the real kernel: bridge networking between real busybox containers
// (ping by address and by link alias, only lo and eth0, a published httpd reached from the host's
// loopback through the proxy and from a host address through DNAT), none and container:<id>
// modes, 50 concurrent attaches and detaches from worker processes (flock), teardown and gc
// from disk after SIGKILL. Test bridge tsct<pid>, subnet 172.31.<n>.0/24, nft table tsct<pid>:
// the real nsinit0 and table nsinit are never touched; traffic stays on loopback and that subnet.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { openNetlink } from '@tsc/netlink';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Container } from '../src/index.js';
import {
  attachNetwork,
  detachNetwork,
  gcNetworks,
  hostVethName,
  linkEnv,
  type NetworkAttachment,
  prepareNetworkFiles,
  readAttachment,
  removeNetwork,
  resolveNetworkMode,
} from '../src/network/index.js';
import { listRules, ruleCounters } from '../src/network/nft.js';
import { readStore } from '../src/network/store.js';
import { DIST_INDEX, Fixture, type LooseSpec, notRoot, skipUnlessRoot, waitFor } from './fixtures.js';

/** The built network subpath (@tsc/libcontainer/network), which the worker processes import. */
const DIST_NETWORK = path.join(path.dirname(DIST_INDEX), 'network', 'index.js');

function skipReason(): string | undefined {
  const r = skipUnlessRoot();
  if (r) return r;
  try {
    execFileSync('nft', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'network tests need nft (nftables)';
  }
  if (!fs.existsSync(DIST_NETWORK))
    return 'network tests start workers from dist: build @tsc/libcontainer first';
  return undefined;
}
const skip = notRoot ? skipUnlessRoot() : skipReason();

const BR = `tsct${process.pid}`.slice(0, 15);
const SUBNET = `172.31.${(process.pid % 200) + 20}.0/24`;
const TABLE = `tsct${process.pid}`;
const NET = { bridge: BR, subnet: SUBNET, nftTable: TABLE, ipForward: false } as const;
// vitest runs the sources; the proxy is a separate Node process and runs the built script.
const PROXY = [process.execPath, path.join(path.dirname(DIST_INDEX), 'network', 'proxy-main.mjs')];

const CAPS = ['CAP_NET_RAW', 'CAP_NET_BIND_SERVICE', 'CAP_KILL', 'CAP_AUDIT_WRITE'];

/** A free TCP port on 127.0.0.1. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
  });
}

/** A process in a new network namespace (`unshare -n sleep`), standing in for a container's init. */
async function sleeper(): Promise<number> {
  const c = spawn('unshare', ['-n', 'sleep', '600'], { stdio: 'ignore', detached: true });
  c.unref();
  const pid = c.pid as number;
  const own = fs.readlinkSync('/proc/self/ns/net');
  await waitFor(
    () => {
      try {
        return fs.readlinkSync(`/proc/${pid}/ns/net`) !== own;
      } catch {
        return false;
      }
    },
    5000,
    'unshare',
  );
  return pid;
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** A worker process: attaches or detaches the given containers through the built library. */
const WORKER = `
const lib = await import(process.env.TSC_DIST);
const o = JSON.parse(process.env.TSC_JOB);
const out = [];
await Promise.all(o.items.map(async (it) => {
  try {
    if (o.op === 'attach') {
      const a = await lib.attachNetwork({ ...o.net, root: o.root, id: it.id, pid: it.pid, publish: it.publish ?? [], userlandProxy: o.proxy });
      out.push({ id: it.id, ip: a.ip, hostVeth: a.hostVeth, proxy: a.proxy });
    } else {
      await lib.detachNetwork({ root: o.root, id: it.id });
      out.push({ id: it.id });
    }
  } catch (e) {
    out.push({ id: it.id, error: e.message });
  }
}));
process.stdout.write(JSON.stringify(out) + '\\n');
if (o.hang) setInterval(() => {}, 1000);
`;

interface WorkerResult {
  id: string;
  ip?: string;
  hostVeth?: string;
  proxy?: { pid: number };
  error?: string;
}

/** Run a worker; with `hang`, resolve once it printed its result and return it still running. */
function worker(job: object, hang = false): Promise<{ results: WorkerResult[]; pid: number }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, ['--input-type=module', '-e', WORKER], {
      env: { ...process.env, TSC_DIST: DIST_NETWORK, TSC_JOB: JSON.stringify({ ...job, hang }) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => {
      out += d;
      if (hang && out.includes('\n')) resolve({ results: JSON.parse(out), pid: c.pid as number });
    });
    c.stderr.on('data', (d) => {
      err += d;
    });
    c.on('exit', (code) => {
      if (hang) return;
      if (code !== 0) reject(new Error(`worker exited ${code}: ${err}`));
      else resolve({ results: JSON.parse(out), pid: c.pid as number });
    });
  });
}

describe.skipIf(skip !== undefined)(`container networks${skip ? ` (skipped: ${skip})` : ''}`, () => {
  const fx = new Fixture('net');
  const pids: number[] = [];

  interface Ctr {
    c: Container;
    id: string;
    a: NetworkAttachment;
    config: LooseSpec;
    files: string;
  }

  async function container(o: {
    tag: string;
    args?: string[];
    links?: { id: string; alias: string }[];
    publish?: { hostIp?: string; hostPort: number; containerPort: number; protocol: 'tcp' | 'udp' }[];
    expose?: { port: number; protocol: 'tcp' | 'udp' }[];
    mode?: 'bridge' | 'none';
  }): Promise<Ctr> {
    const id = fx.id(o.tag);
    const files = fx.tempDir('files');
    const f = prepareNetworkFiles(files);
    const b = fx.makeBundle({
      args: o.args ?? ['sleep', '600'],
      mutate: (spec) => {
        spec.process.capabilities = { bounding: CAPS, effective: CAPS, permitted: CAPS };
        spec.mounts.push(
          { destination: '/etc/hosts', type: 'bind', source: f.hosts, options: ['bind', 'ro'] },
          { destination: '/etc/resolv.conf', type: 'bind', source: f.resolvConf, options: ['bind', 'ro'] },
        );
      },
    });
    const c = await Container.create({ id, bundle: b.dir, root: fx.root, stdio: fx.output().stdio });
    const a = await attachNetwork({
      ...NET,
      root: fx.root,
      id,
      pid: c.state().pid,
      mode: o.mode ?? 'bridge',
      filesDir: files,
      links: o.links ?? [],
      publish: o.publish ?? [],
      expose: o.expose ?? [],
      addHosts: [{ host: 'extra.test', ip: '192.0.2.77' }],
      proxyCommand: PROXY,
    });
    await c.start();
    return { c, id, a, config: b.config, files };
  }

  async function run(x: Ctr, args: string[]): Promise<{ status: number; out: string }> {
    const out = fx.output();
    const p = await x.c.exec({ ...x.config.process, args }, { stdio: out.stdio });
    const r = await p.exited;
    return { status: r.status, out: out.read() };
  }

  async function leftovers(): Promise<{ veths: string[]; leases: number; rules: string[] }> {
    const nl = openNetlink();
    try {
      const br = await nl.link(BR).catch(() => undefined);
      const veths = br ? (await nl.links()).filter((l) => l.master === br.index).map((l) => l.name) : [];
      const leases = Object.keys(readStore(fx.root, BR)?.leases ?? {}).length;
      const rules = (await listRules(TABLE)).map((r) => r.comment ?? '').filter((c) => c.startsWith('ctr:'));
      return { veths, leases, rules };
    } finally {
      nl.close();
    }
  }

  beforeAll(() => {
    fs.mkdirSync(fx.root, { recursive: true });
  });
  afterEach(async () => {
    for (const id of fx.stateIds()) {
      if (!id.includes('@')) await detachNetwork({ root: fx.root, id }).catch(() => {});
    }
    await fx.cleanup();
    for (const p of pids.splice(0)) kill(p);
  });
  afterAll(async () => {
    await removeNetwork({ root: fx.root, ...NET, force: true }).catch(() => {});
    await fx.dispose();
    // Nothing of ours may remain.
    expect(execFileSync('ip', ['-br', 'link'], { encoding: 'utf8' })).not.toContain(BR);
    expect(execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' })).not.toContain(TABLE);
  });

  it('two containers ping each other by address and by link alias; each sees only lo and eth0', async () => {
    const a = await container({ tag: 'a', expose: [{ port: 80, protocol: 'tcp' }] });
    const b = await container({ tag: 'b', links: [{ id: a.id, alias: 'db' }] });
    expect(a.a.ip).toMatch(/^172\.31\.\d+\.\d+$/);
    expect(b.a.ip).not.toBe(a.a.ip);
    expect(a.a.hostVeth).toBe(hostVethName(a.id));
    expect(readAttachment(fx.root, a.id)?.ip).toBe(a.a.ip);

    expect(await run(a, ['ping', '-c1', '-W2', b.a.ip as string])).toMatchObject({ status: 0 });
    expect(await run(b, ['ping', '-c1', '-W2', a.a.ip as string])).toMatchObject({ status: 0 });
    const byAlias = await run(b, ['ping', '-c1', '-W2', 'db']);
    expect(byAlias.out).toContain(a.a.ip);
    expect(byAlias.status).toBe(0);

    for (const x of [a, b]) {
      expect((await run(x, ['ls', '/sys/class/net'])).out.split(/\s+/).filter(Boolean).sort()).toEqual([
        'eth0',
        'lo',
      ]);
      const route = await run(x, ['ip', 'route']);
      expect(route.out).toContain(`default via ${x.a.gateway}`);
    }
    const hosts = (await run(b, ['cat', '/etc/hosts'])).out;
    expect(hosts).toContain(`${a.a.ip}\tdb ${a.id}`);
    expect(hosts).toContain(`${b.a.ip}\t${b.id}`);
    expect(hosts).toContain('192.0.2.77\textra.test');
    expect(hosts).toMatch(/^127\.0\.0\.1\tlocalhost$/m);
    const resolv = (await run(b, ['cat', '/etc/resolv.conf'])).out;
    expect(resolv).toMatch(/^nameserver /m);
    expect(resolv).not.toMatch(/^nameserver 127\./m);
    expect(fs.readFileSync(path.join(b.files, 'hostname'), 'utf8')).toBe(`${b.id}\n`);

    expect(linkEnv({ root: fx.root, name: b.id, links: [{ id: a.id, alias: 'db' }] })).toEqual({
      DB_NAME: `/${b.id}/db`,
      DB_PORT: `tcp://${a.a.ip}:80`,
      DB_PORT_80_TCP: `tcp://${a.a.ip}:80`,
      DB_PORT_80_TCP_ADDR: a.a.ip,
      DB_PORT_80_TCP_PORT: '80',
      DB_PORT_80_TCP_PROTO: 'tcp',
    });

    // container:<id> resolves to a's namespace; none gives only lo, up.
    const r = resolveNetworkMode(fx.root, `container:${a.id}`);
    expect(r.netnsPath).toBe(`/proc/${a.c.state().pid}/ns/net`);
    const n = await container({ tag: 'none', mode: 'none' });
    expect(n.a.ip).toBeUndefined();
    expect((await run(n, ['ls', '/sys/class/net'])).out.trim()).toBe('lo');
    expect((await run(n, ['ping', '-c1', '-W1', '127.0.0.1'])).status).toBe(0);

    await a.c.delete({ force: true });
    await detachNetwork({ root: fx.root, id: a.id });
    await detachNetwork({ root: fx.root, id: a.id }); // idempotent
    await b.c.delete({ force: true });
    await detachNetwork({ root: fx.root, id: b.id });
    expect(await leftovers()).toEqual({ veths: [], leases: 0, rules: [] });
  });

  it('publishes a busybox httpd: host loopback through the proxy, a host address through DNAT', async () => {
    const lo = await freePort();
    const any = await freePort();
    const web = await container({
      tag: 'web',
      args: ['httpd', '-f', '-p', '80', '-h', '/etc'],
      publish: [
        { hostIp: '127.0.0.1', hostPort: lo, containerPort: 80, protocol: 'tcp' },
        { hostPort: any, containerPort: 80, protocol: 'tcp' },
      ],
    });
    const proxy = web.a.proxy?.pid as number;
    expect(proxy).toBeGreaterThan(0);
    // httpd listens (on [::]:80) once the container runs: read its sockets from its netns.
    await waitFor(
      () => {
        try {
          const pid = String(web.c.state().pid);
          const tcp = ['tcp', 'tcp6'].map((f) => fs.readFileSync(`/proc/${pid}/net/${f}`, 'utf8')).join('');
          return / [0-9A-F]+:0050 [0-9A-F]+:0000 0A /.test(tcp);
        } catch {
          return false;
        }
      },
      5000,
      'httpd to listen',
    );
    expect(await httpGet(`http://127.0.0.1:${lo}/group`)).toContain('root:x:0:');
    // To the gateway (a host address on the bridge): rewritten by the output chain's DNAT rule.
    const before = (await ruleCounters(TABLE, web.id)).reduce((x, y) => x + y, 0);
    expect(await httpGet(`http://${web.a.gateway}:${any}/passwd`)).toContain('root:x:0:0');
    const after = (await ruleCounters(TABLE, web.id)).reduce((x, y) => x + y, 0);
    expect(after).toBeGreaterThan(before);

    // A second container cannot take the same host port.
    const clash = container({
      tag: 'clash',
      publish: [{ hostIp: '127.0.0.1', hostPort: lo, containerPort: 80, protocol: 'tcp' }],
    });
    await expect(clash).rejects.toMatchObject({ code: 'AlreadyExists' });

    await web.c.delete({ force: true });
    await detachNetwork({ root: fx.root, id: web.id });
    await waitFor(
      () =>
        !fs.existsSync(`/proc/${proxy}`) || fs.readFileSync(`/proc/${proxy}/stat`, 'utf8').includes(') Z'),
      3000,
      'proxy exit',
    );
    await expect(httpGet(`http://127.0.0.1:${lo}/group`)).rejects.toThrow();
    expect(await leftovers()).toEqual({ veths: [], leases: 0, rules: [] });
  });

  it('attaches and detaches 50 namespaces concurrently from 5 processes without a collision or leftover', async () => {
    const items: { id: string; pid: number; publish: object[] }[] = [];
    const base = await freePort();
    for (let i = 0; i < 50; i++) {
      const pid = await sleeper();
      pids.push(pid);
      const id = fx.id('many');
      fs.mkdirSync(path.join(fx.root, id));
      items.push({
        id,
        pid,
        publish: [{ hostPort: 20000 + ((base + i) % 40000), containerPort: 80, protocol: 'tcp' }],
      });
    }
    const groups = [0, 1, 2, 3, 4].map((g) => items.filter((_, i) => i % 5 === g));
    const job = (op: string, its: typeof items) => ({
      op,
      root: fx.root,
      net: NET,
      items: its,
      proxy: false,
    });
    const attached = (await Promise.all(groups.map((g) => worker(job('attach', g))))).flatMap(
      (w) => w.results,
    );
    expect(attached.filter((r) => r.error)).toEqual([]);
    const ips = attached.map((r) => r.ip);
    expect(new Set(ips).size).toBe(50);
    const state = await leftovers();
    expect(state.veths.length).toBe(50);
    expect(state.leases).toBe(50);
    expect(state.rules.length).toBe(100);
    // Each namespace has its own address on eth0.
    for (const it of items.slice(0, 5)) {
      const nl = openNetlink({ netns: { pid: it.pid } });
      try {
        const want = attached.find((r) => r.id === it.id)?.ip;
        expect((await nl.addrs({ family: 4, link: 'eth0' })).map((x) => x.address)).toEqual([want]);
      } finally {
        nl.close();
      }
    }
    const detached = (await Promise.all(groups.map((g) => worker(job('detach', g))))).flatMap(
      (w) => w.results,
    );
    expect(detached.filter((r) => r.error)).toEqual([]);
    expect(await leftovers()).toEqual({ veths: [], leases: 0, rules: [] });
    for (const it of items) fs.rmSync(path.join(fx.root, it.id), { recursive: true });
  });

  it('enables net.ipv4.ip_forward when asked (restored afterwards) and refuses a second subnet for the bridge', async () => {
    const file = '/proc/sys/net/ipv4/ip_forward';
    const before = fs.readFileSync(file, 'utf8').trim();
    const pid = await sleeper();
    pids.push(pid);
    const id = fx.id('fwd');
    fs.mkdirSync(path.join(fx.root, id));
    try {
      if (before !== '0') fs.writeFileSync(file, '0');
      const a = await attachNetwork({ ...NET, ipForward: true, root: fx.root, id, pid });
      expect(fs.readFileSync(file, 'utf8').trim()).toBe('1');
      expect(a.mac).toMatch(/^02:42:ac:1f:/);
      await expect(
        attachNetwork({ ...NET, subnet: '172.30.99.0/24', root: fx.root, id: `${id}x`, pid }),
      ).rejects.toThrow(/does not exist|already serves subnet/);
      fs.mkdirSync(path.join(fx.root, `${id}x`));
      await expect(
        attachNetwork({ ...NET, subnet: '172.30.99.0/24', root: fx.root, id: `${id}x`, pid }),
      ).rejects.toMatchObject({ code: 'InvalidArgument' });
      await expect(attachNetwork({ ...NET, root: fx.root, id, pid })).rejects.toMatchObject({
        code: 'AlreadyExists',
      });
      await detachNetwork({ root: fx.root, id });
    } finally {
      fs.writeFileSync(file, before);
      fs.rmSync(path.join(fx.root, id), { recursive: true, force: true });
      fs.rmSync(path.join(fx.root, `${id}x`), { recursive: true, force: true });
    }
    expect(await leftovers()).toEqual({ veths: [], leases: 0, rules: [] });
  });

  it('tears down from disk after the attaching process was SIGKILLed, and gc reclaims dead containers', async () => {
    const port = await freePort();
    const pidA = await sleeper();
    const pidB = await sleeper();
    pids.push(pidA, pidB);
    const ida = fx.id('killed');
    const idb = fx.id('gone');
    fs.mkdirSync(path.join(fx.root, ida));
    fs.mkdirSync(path.join(fx.root, idb));
    const w = await worker(
      {
        op: 'attach',
        root: fx.root,
        net: NET,
        proxy: true,
        items: [
          {
            id: ida,
            pid: pidA,
            publish: [{ hostIp: '127.0.0.1', hostPort: port, containerPort: 80, protocol: 'tcp' }],
          },
          { id: idb, pid: pidB, publish: [] },
        ],
      },
      true,
    );
    expect(w.results.filter((r) => r.error)).toEqual([]);
    kill(w.pid); // SIGKILL: no in-memory state survives
    const proxy = w.results.find((r) => r.id === ida)?.proxy?.pid as number;
    expect(fs.existsSync(`/proc/${proxy}`)).toBe(true); // detached: it outlived its parent
    expect((await leftovers()).leases).toBe(2);

    // a: torn down from the files alone.
    await detachNetwork({ root: fx.root, id: ida });
    await waitFor(() => !fs.existsSync(`/proc/${proxy}`), 3000, 'proxy killed');
    expect((await leftovers()).veths).toEqual([hostVethName(idb)]);

    // b: its init dies (SIGKILL) and its state directory goes; gc reclaims the lease and its rules.
    kill(pidB);
    await waitFor(() => !fs.existsSync(`/proc/${pidB}`), 3000, 'init gone');
    fs.rmSync(path.join(fx.root, idb), { recursive: true });
    const report = await gcNetworks({ root: fx.root });
    expect(report.leases.map((l) => l.id)).toEqual([idb]);
    expect(await leftovers()).toEqual({ veths: [], leases: 0, rules: [] });
    fs.rmSync(path.join(fx.root, ida), { recursive: true });
  });
});
