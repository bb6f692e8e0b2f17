import { closeSync, openSync, readlinkSync } from 'node:fs';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  isNetlinkError,
  type Link,
  type NetlinkError,
  type NetlinkEvent,
  type NetlinkHandle,
  openNetlink,
} from '../src/index.js';
import { cleanupNetns, ipCmd, ipJson, makeNetns, skipReason, sleeperIn } from './helpers.js';

const skip = skipReason();

async function netlinkError(p: Promise<unknown>): Promise<NetlinkError> {
  try {
    await p;
  } catch (e) {
    if (isNetlinkError(e)) return e;
    throw e;
  }
  throw new Error('expected a NetlinkError');
}

interface IpLink {
  ifindex: number;
  ifname: string;
  mtu: number;
  address?: string;
  operstate: string;
  master?: string;
  flags: string[];
  link_type: string;
  linkinfo?: { info_kind?: string };
}
interface IpAddr {
  ifindex: number;
  addr_info: {
    family: string;
    local: string;
    prefixlen: number;
    broadcast?: string;
    label?: string;
    scope: string;
  }[];
}
interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  prefsrc?: string;
  metric?: number;
  scope?: string;
  type?: string;
}

describe.skipIf(skip !== undefined)(`netlink on a real kernel${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let ns: string;
  let nl: NetlinkHandle;

  beforeEach(() => {
    ns = makeNetns();
    nl = openNetlink({ netns: { name: ns } });
  });
  afterEach(() => {
    nl.close();
    cleanupNetns();
  });
  afterAll(() => cleanupNetns());

  it('a handle bound to a netns leaves the calling thread where it was', async () => {
    const before = readlinkSync('/proc/thread-self/ns/net');
    const links = await nl.links();
    expect(readlinkSync('/proc/thread-self/ns/net')).toBe(before);
    // A fresh netns has only lo.
    expect(links.map((l) => l.name)).toEqual(['lo']);
  });

  it('opens handles by path, pid, fd and name on the same namespace', async () => {
    await nl.linkAdd({ kind: 'bridge', name: 'tnlbr0' });
    const pid = await sleeperIn(ns);
    const fd = openSync(`/run/netns/${ns}`, 'r');
    try {
      for (const netns of [{ path: `/run/netns/${ns}` }, { pid }, { fd }, { name: ns }]) {
        const h = openNetlink({ netns });
        try {
          expect((await h.links()).map((l) => l.name).sort()).toEqual(['lo', 'tnlbr0']);
        } finally {
          h.close();
        }
      }
    } finally {
      closeSync(fd);
    }
  });

  it('lists links like `ip -json link show`', async () => {
    await nl.linkAdd({ kind: 'veth', name: 'tnlv0', peer: { name: 'tnlv1' }, mtu: 1400, up: true });
    await nl.linkAdd({ kind: 'bridge', name: 'tnlbr0', up: true });
    await nl.linkSet('tnlv0', { master: 'tnlbr0' });
    await nl.linkSet('lo', { up: true });
    const ours = await nl.links();
    const theirs = ipJson<IpLink[]>(ns, '-d', 'link', 'show');
    expect(ours.length).toBe(theirs.length);
    const byIndex = new Map(ours.map((l) => [l.index, l]));
    for (const t of theirs) {
      const o = byIndex.get(t.ifindex) as Link;
      expect(o.name).toBe(t.ifname);
      expect(o.mtu).toBe(t.mtu);
      expect(o.mac).toBe(t.address);
      expect(o.operState.toUpperCase()).toBe(t.operstate);
      expect(o.up).toBe(t.flags.includes('UP'));
      expect(o.kind).toBe(t.linkinfo?.info_kind);
      expect(o.master === undefined ? undefined : byIndex.get(o.master)?.name).toBe(t.master);
    }
  });

  it('adds, gets and deletes veth pairs; the peer can be created in another netns', async () => {
    await nl.linkAdd({ kind: 'veth', name: 'tnlv0', peer: { name: 'tnlv1', mac: '02:00:00:00:00:01' } });
    const v0 = await nl.link('tnlv0');
    const v1 = await nl.link('tnlv1');
    expect(v0.kind).toBe('veth');
    expect(v0.parent).toBe(v1.index);
    expect(v1.mac).toBe('02:00:00:00:00:01');
    expect((await nl.link({ index: v0.index })).name).toBe('tnlv0');

    const other = makeNetns();
    await nl.linkAdd({
      kind: 'veth',
      name: 'tnlh0',
      peer: { name: 'eth0', netns: { name: other } },
    });
    const inner = openNetlink({ netns: { name: other } });
    try {
      await inner.linkSet('eth0', { up: true });
      const eth0 = await inner.link('eth0');
      expect(eth0.up).toBe(true);
      expect(eth0.linkNetnsId).toBeDefined();
      expect((await nl.link('tnlh0')).linkNetnsId).toBeDefined();
    } finally {
      inner.close();
    }
    await nl.linkDel('tnlv1');
    expect((await netlinkError(nl.link('tnlv0'))).code).toBe('NotFound');
    await nl.linkDel('tnlh0');
    expect(ipJson<IpLink[]>(other, 'link', 'show').map((l) => l.ifname)).toEqual(['lo']);
    await nl.linkDel('tnlv0', { ifMissing: 'ignore' });
  });

  it('sets up/down, mtu, name, MAC, master/nomaster', async () => {
    await nl.linkAdd({ kind: 'bridge', name: 'tnlbr0' });
    await nl.linkAdd({ kind: 'veth', name: 'tnlv0', peer: { name: 'tnlv1' } });
    await nl.linkSet('tnlv0', { up: true, mtu: 1280, mac: '02:11:22:33:44:55', master: 'tnlbr0' });
    let l = await nl.link('tnlv0');
    expect([l.up, l.mtu, l.mac, l.slaveKind]).toEqual([true, 1280, '02:11:22:33:44:55', 'bridge']);
    expect(l.master).toBe((await nl.link('tnlbr0')).index);
    expect(ipCmd(ns, 'link', 'show', 'tnlv0')).toContain('master tnlbr0');
    await nl.linkSet('tnlv0', { master: null, up: false, name: 'tnlren' });
    l = await nl.link('tnlren');
    expect([l.up, l.master, l.name]).toEqual([false, undefined, 'tnlren']);
    expect((await netlinkError(nl.link('tnlv0'))).code).toBe('NotFound');
  });

  it('creates bridges with options and changes them', async () => {
    await nl.linkAdd({
      kind: 'bridge',
      name: 'tnlbr0',
      stp: true,
      forwardDelay: 4,
      helloTime: 1,
      priority: 4096,
    });
    let b = (await nl.link('tnlbr0')).bridge;
    expect(b).toMatchObject({
      stp: true,
      forwardDelay: 4,
      helloTime: 1,
      priority: 4096,
      vlanFiltering: false,
    });
    const d = ipJson<{ linkinfo: { info_data: { forward_delay: number; stp_state: number } } }[]>(
      ns,
      '-d',
      'link',
      'show',
      'tnlbr0',
    )[0];
    expect(d?.linkinfo.info_data.forward_delay).toBe(400);
    expect(d?.linkinfo.info_data.stp_state).toBe(1);
    // (vlan_filtering is left alone: CONFIG_BRIDGE_VLAN_FILTERING is off on some kernels.)
    await nl.linkSet('tnlbr0', { bridge: { stp: false, forwardDelay: 2, ageingTime: 60 } });
    b = (await nl.link('tnlbr0')).bridge;
    expect(b).toMatchObject({ stp: false, forwardDelay: 2, ageingTime: 60 });
  });

  it('creates macvlan links (and dummy, ipvlan, vlan where the kernel has them)', async (ctx) => {
    await nl.linkAdd({ kind: 'veth', name: 'tnlv0', peer: { name: 'tnlv1' } });
    await nl.linkAdd({ kind: 'macvlan', name: 'tnlmv0', parent: 'tnlv0', mode: 'private' });
    const mv = await nl.link('tnlmv0');
    expect(mv.kind).toBe('macvlan');
    expect(mv.macvlan?.mode).toBe('private');
    expect(mv.parent).toBe((await nl.link('tnlv0')).index);
    const missing: string[] = [];
    const tryKind = async (f: () => Promise<void>, kind: string, check: () => Promise<void>) => {
      try {
        await f();
      } catch (e) {
        if (isNetlinkError(e) && e.code === 'NotSupported') {
          missing.push(kind);
          return;
        }
        throw e;
      }
      await check();
    };
    await tryKind(
      () => nl.linkAdd({ kind: 'dummy', name: 'tnld0' }),
      'dummy',
      async () => expect((await nl.link('tnld0')).kind).toBe('dummy'),
    );
    await tryKind(
      () => nl.linkAdd({ kind: 'ipvlan', name: 'tnliv0', parent: 'tnlv1', mode: 'l3' }),
      'ipvlan',
      async () => expect((await nl.link('tnliv0')).ipvlan?.mode).toBe('l3'),
    );
    await tryKind(
      () => nl.linkAdd({ kind: 'vlan', name: 'tnlvl0', parent: 'tnlv0', id: 42 }),
      'vlan',
      async () => expect((await nl.link('tnlvl0')).vlan).toEqual({ id: 42, protocol: '802.1Q' }),
    );
    if (missing.length)
      ctx.annotate(`kernel has no ${missing.join(', ')} (CONFIG off): creation answered NotSupported`);
  });

  it('moves links into a netns by pid, fd and path, renaming on the way', async () => {
    const other = makeNetns();
    const pid = await sleeperIn(other);
    await nl.linkAdd({ kind: 'veth', name: 'tnla0', peer: { name: 'tnlb0' } });
    await nl.linkAdd({ kind: 'veth', name: 'tnla1', peer: { name: 'tnlb1' } });
    await nl.linkAdd({ kind: 'veth', name: 'tnla2', peer: { name: 'tnlb2' } });
    await nl.linkSet('tnlb0', { netns: { pid }, name: 'eth0', up: true });
    const fd = openSync(`/run/netns/${other}`, 'r');
    try {
      await nl.linkSet('tnlb1', { netns: { fd } });
    } finally {
      closeSync(fd);
    }
    await nl.linkSet('tnlb2', { netns: { path: `/run/netns/${other}` } });
    const names = ipJson<IpLink[]>(other, 'link', 'show').map((l) => l.ifname);
    expect(names.sort()).toEqual(['eth0', 'lo', 'tnlb1', 'tnlb2']);
    expect((await netlinkError(nl.link('tnlb0'))).code).toBe('NotFound');
  });

  it('adds, lists and deletes IPv4 and IPv6 addresses like `ip -json addr show`', async () => {
    await nl.linkAdd({ kind: 'veth', name: 'tnlv0', peer: { name: 'tnlv1' }, up: true });
    await nl.linkSet('lo', { up: true });
    await nl.addrAdd('tnlv0', '10.77.0.2/24', { broadcast: true, label: 'tnlv0:a' });
    await nl.addrAdd('tnlv0', '10.78.0.2/16', { broadcast: '10.78.255.254' });
    await nl.addrAdd('tnlv0', 'fd77::2/64', { noDad: true });
    const ours = await nl.addrs();
    const theirs = ipJson<IpAddr[]>(ns, 'addr', 'show').flatMap((i) =>
      i.addr_info.map((a) => ({ ...a, ifindex: i.ifindex })),
    );
    const key = (x: { ifindex: number; local: string; prefixlen: number }) =>
      `${x.ifindex} ${x.local}/${x.prefixlen}`;
    expect(
      ours.map((a) => key({ ifindex: a.index, local: a.address, prefixlen: a.prefixLength })).sort(),
    ).toEqual(theirs.map(key).sort());
    for (const t of theirs) {
      const o = ours.find((a) => a.index === t.ifindex && a.address === t.local);
      expect(o?.broadcast).toBe(t.broadcast);
      expect(o?.label).toBe(t.label);
      expect(o?.scope === 'universe' ? 'global' : o?.scope).toBe(t.scope);
      expect(o?.family).toBe(t.family === 'inet' ? 4 : 6);
    }
    expect((await nl.addrs({ family: 6, link: 'tnlv0' })).map((a) => a.cidr)).toContain('fd77::2/64');
    expect((await nl.addrs({ family: 4, link: 'tnlv0' })).map((a) => a.cidr).sort()).toEqual([
      '10.77.0.2/24',
      '10.78.0.2/16',
    ]);
    await nl.addrDel('tnlv0', '10.77.0.2/24');
    await nl.addrDel('tnlv0', 'fd77::2/64');
    expect(
      (await nl.addrs({ link: 'tnlv0' })).map((a) => a.cidr).filter((c) => !c.startsWith('fe80')),
    ).toEqual(['10.78.0.2/16']);
    const dup = await netlinkError(nl.addrAdd('tnlv0', '10.78.0.2/16'));
    expect(dup.code).toBe('AlreadyExists');
    await nl.addrAdd('tnlv0', '10.78.0.2/16', { mode: 'replace' });
    expect((await netlinkError(nl.addrDel('tnlv0', '10.99.0.1/24'))).code).toBe('NotFound');
  });

  it('adds, replaces, lists and deletes routes, default routes and other tables', async () => {
    await nl.linkAdd({ kind: 'veth', name: 'tnlv0', peer: { name: 'tnlv1' }, up: true });
    await nl.linkSet('tnlv1', { up: true });
    await nl.addrAdd('tnlv0', '10.80.0.1/24');
    await nl.addrAdd('tnlv0', 'fd80::1/64', { noDad: true });
    await nl.routeAdd({ dst: 'default', gateway: '10.80.0.254' });
    await nl.routeAdd({ dst: '10.81.0.0/16', gateway: '10.80.0.2', metric: 50 });
    await nl.routeAdd({ dst: '10.82.0.0/16', link: 'tnlv0', src: '10.80.0.1' });
    await nl.routeAdd({ dst: 'fd81::/64', gateway: 'fd80::2' });
    await nl.routeAdd({ dst: '10.83.0.0/16', type: 'blackhole' });
    await nl.routeAdd({ dst: '10.81.0.0/16', gateway: '10.80.0.3', metric: 50 }, { mode: 'replace' });
    await nl.routeAdd({ dst: 'default', gateway: '10.80.0.9', table: 100 });
    expect(
      (await netlinkError(nl.routeAdd({ dst: '10.81.0.0/16', gateway: '10.80.0.3', metric: 50 }))).code,
    ).toBe('AlreadyExists');

    const ours = (await nl.routes({ family: 4 })).map((r) => `${r.dst} ${r.gateway ?? '-'} ${r.type}`).sort();
    const theirs = ipJson<IpRoute[]>(ns, 'route', 'show')
      .map((r) => `${r.dst} ${r.gateway ?? '-'} ${r.type ?? 'unicast'}`)
      .sort();
    expect(ours).toEqual(theirs);
    expect(ours).toContain('10.81.0.0/16 10.80.0.3 unicast');
    expect(ours).toContain('default 10.80.0.254 unicast');
    const v6 = (await nl.routes({ family: 6 })).map((r) => `${r.dst} ${r.gateway ?? '-'}`);
    const v6theirs = ipJson<IpRoute[]>(ns, '-6', 'route', 'show').map((r) => `${r.dst} ${r.gateway ?? '-'}`);
    expect(v6.sort()).toEqual(v6theirs.sort());
    const t100 = await nl.routes({ table: 100 });
    expect(t100.map((r) => [r.dst, r.gateway, r.table])).toEqual([['default', '10.80.0.9', 100]]);
    expect(ipJson<IpRoute[]>(ns, 'route', 'show', 'table', '100').map((r) => r.gateway)).toEqual([
      '10.80.0.9',
    ]);

    await nl.routeDel({ dst: 'default', table: 100 });
    await nl.routeDel({ dst: '10.81.0.0/16' });
    await nl.routeDel({ dst: 'default' });
    expect((await nl.routes({ family: 4 })).map((r) => r.dst).sort()).toEqual([
      '10.80.0.0/24',
      '10.82.0.0/16',
      '10.83.0.0/16',
    ]);
    expect((await netlinkError(nl.routeDel({ dst: '10.99.0.0/16' }))).code).toBe('NotFound');
  });

  it('adds and lists neighbours like `ip -json neigh`', async () => {
    await nl.linkAdd({ kind: 'veth', name: 'tnlv0', peer: { name: 'tnlv1' }, up: true });
    await nl.addrAdd('tnlv0', '10.84.0.1/24');
    await nl.neighAdd({ link: 'tnlv0', address: '10.84.0.7', mac: '02:00:00:00:00:07' });
    await nl.neighAdd({ link: 'tnlv0', address: 'fd84::7', mac: '02:00:00:00:00:08', state: 'reachable' });
    const ours = await nl.neighbours({ link: 'tnlv0' });
    const theirs = ipJson<{ dst: string; lladdr: string; state: string[] }[]>(
      ns,
      'neigh',
      'show',
      'dev',
      'tnlv0',
    );
    expect(ours.map((x) => `${x.address} ${x.mac}`).sort()).toEqual(
      theirs.map((x) => `${x.dst} ${x.lladdr}`).sort(),
    );
    expect(ours.find((x) => x.address === '10.84.0.7')?.state).toEqual(['permanent']);
    await nl.neighDel({ link: 'tnlv0', address: '10.84.0.7' });
    expect((await nl.neighbours({ family: 4 })).map((x) => x.address)).not.toContain('10.84.0.7');
  });

  it('streams link and address events until closed', async () => {
    const sub = nl.subscribe(['link', 'addr']);
    const seen: NetlinkEvent[] = [];
    const reader = (async () => {
      for await (const e of sub) {
        seen.push(e);
        if (e.type === 'addr' && e.action === 'new' && e.address.address === '10.85.0.1') break;
      }
    })();
    await nl.linkAdd({ kind: 'veth', name: 'tnlv0', peer: { name: 'tnlv1' } });
    await nl.addrAdd('tnlv0', '10.85.0.1/24');
    await reader;
    expect(sub.closed).toBe(true);
    expect(seen.some((e) => e.type === 'link' && e.action === 'new' && e.link.name === 'tnlv0')).toBe(true);

    // Callback form, and events from a netns the caller's thread never entered.
    const got: string[] = [];
    const cb = nl.subscribe(['link'], {
      onEvent: (e) => e.type === 'link' && got.push(`${e.action} ${e.link.name}`),
    });
    await nl.linkDel('tnlv0');
    const end = Date.now() + 2000;
    while (!got.includes('del tnlv0') && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    cb.close();
    expect(got).toContain('del tnlv0');
  });

  it('turns kernel refusals into typed errors with errno, operation and the ext-ack text', async () => {
    await nl.linkAdd({ kind: 'veth', name: 'tnlv0', peer: { name: 'tnlv1' } });
    const exists = await netlinkError(nl.linkAdd({ kind: 'veth', name: 'tnlv0', peer: { name: 'tnlv2' } }));
    expect([exists.code, exists.errnoName, exists.errno, exists.op]).toEqual([
      'AlreadyExists',
      'EEXIST',
      17,
      'RTM_NEWLINK tnlv0 (veth)',
    ]);
    expect(exists.message).toMatch(/^RTM_NEWLINK tnlv0 \(veth\): EEXIST/);

    const kind = await netlinkError(nl.linkAdd({ kind: 'nosuchkind' as 'dummy', name: 'tnlx0' }));
    expect(kind.code).toBe('NotSupported');
    expect(kind.kernelMessage).toBe('Unknown device type');
    expect(kind.message).toBe(
      'RTM_NEWLINK tnlx0 (nosuchkind): EOPNOTSUPP (operation not supported): Unknown device type',
    );

    await nl.linkSet('tnlv0', { up: true });
    await nl.addrAdd('tnlv0', '10.86.0.1/24');
    const gw = await netlinkError(nl.routeAdd({ dst: '10.87.0.0/16', gateway: '10.99.0.1' }));
    expect(gw.errnoName).toBe('ENETUNREACH');
    expect(gw.kernelMessage).toMatch(/gateway/i);

    const nf = await netlinkError(nl.linkDel('tnlnone'));
    expect([nf.code, nf.errnoName, nf.op]).toEqual(['NotFound', 'ENODEV', 'RTM_DELLINK tnlnone']);

    const bad = await netlinkError(nl.addrAdd('tnlv0', '10.0.0.300/24'));
    expect([bad.code, bad.errno]).toEqual(['InvalidArgument', 0]);
    expect((await netlinkError(nl.linkAdd({ kind: 'bridge', name: 'x'.repeat(16) }))).code).toBe(
      'InvalidArgument',
    );

    const nsErr = (() => {
      try {
        openNetlink({ netns: { name: 'tnl-does-not-exist' } });
      } catch (e) {
        return e as NetlinkError;
      }
      throw new Error('expected an error');
    })();
    expect(nsErr.code).toBe('NotFound');
  });
});
