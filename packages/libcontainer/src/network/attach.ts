import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isNetlinkError, type NetlinkHandle, openNetlink } from '@tsc/netlink';
import { ContainerError, isContainerError } from '../errors.js';
import { processStartTime, StateStore, validateId } from '../state.js';
import { hostsFile, resolvConf, writeNetworkFiles } from './files.js';
import { gatewayOf, ipToNum, macOf, numToIp, parseSubnet, type Subnet } from './ipv4.js';
import {
  containerTag,
  deleteNetworkChain,
  deleteTableIfEmpty,
  deleteTaggedRules,
  ensureNetworkRules,
  listRules,
} from './nft.js';
import { startProxy, stopProxy } from './proxy.js';
import { checkPublishConflicts } from './publish.js';
import {
  type Lease,
  type NetworkFile,
  readStore,
  removeStore,
  storedBridges,
  withNetworkLock,
  writeStore,
} from './store.js';
import type {
  AttachOptions,
  BridgeNetworkOptions,
  ContainerLink,
  GcReport,
  NetworkAttachment,
  NetworkMode,
} from './types.js';

/** Defaults of a bridge network. 10.88.0.0/16 is podman's and 172.17.0.0/16 Docker's, so we take another. */
export const DEFAULT_BRIDGE = 'nsinit0';
export const DEFAULT_SUBNET = '172.29.0.0/16';
export const DEFAULT_NFT_TABLE = 'nsinit';

/** The host end of a container's veth pair: `veth` + the first 8 hex digits of sha256(id). */
export function hostVethName(id: string): string {
  return `veth${createHash('sha256').update(id).digest('hex').slice(0, 8)}`;
}

const attachmentPath = (root: string, id: string) => join(root, id, 'network.json');

/** A container's recorded network (`<root>/<id>/network.json`), or undefined. */
export function readAttachment(root: string, id: string): NetworkAttachment | undefined {
  try {
    return JSON.parse(readFileSync(attachmentPath(root, id), 'utf8')) as NetworkAttachment;
  } catch {
    return undefined;
  }
}

function writeAttachment(root: string, a: NetworkAttachment): void {
  const path = attachmentPath(root, a.id);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(a, null, 1), { mode: 0o600 });
  renameSync(tmp, path);
}

function checkBridgeName(bridge: string): void {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(bridge)) {
    throw new ContainerError(
      'InvalidArgument',
      `invalid bridge name "${bridge}" (1-15 of A-Z a-z 0-9 _ . -)`,
    );
  }
}

/** Parse `bridge`, `none`, `host` or `container:<id>`. */
export function parseNetworkMode(s: string): NetworkMode {
  if (s === 'bridge' || s === 'none' || s === 'host') return s;
  if (s.startsWith('container:') && s.length > 'container:'.length) {
    validateId(s.slice('container:'.length));
    return s as NetworkMode;
  }
  throw new ContainerError(
    'InvalidArgument',
    `invalid network mode "${s}": use bridge, none, host or container:<id>`,
  );
}

/**
 * What the caller must do before creating a container in `mode`: for `container:<id>`, join the
 * network namespace at `netnsPath` (the other container's init must be running); for `host`,
 * create no network namespace; otherwise create a new one.
 */
export function resolveNetworkMode(
  root: string,
  mode: NetworkMode,
): { newNetns: boolean; netnsPath?: string } {
  if (mode === 'host') return { newNetns: false };
  if (!mode.startsWith('container:')) return { newNetns: true };
  const other = mode.slice('container:'.length);
  const s = new StateStore(root).open(other).read();
  if (!s?.pid || processStartTime(s.pid) !== s.pidStartTime) {
    throw new ContainerError('InvalidState', `network mode ${mode}: container "${other}" is not running`, {
      id: other,
    });
  }
  return { newNetns: false, netnsPath: `/proc/${s.pid}/ns/net` };
}

function alive(l: { pid: number; startTime: string }): boolean {
  return processStartTime(l.pid) === l.startTime;
}

/** A lease whose container is gone: its state directory was removed, or its init died. */
function stale(root: string, l: Lease): boolean {
  return !existsSync(join(root, l.id)) || !alive(l);
}

async function ensureBridge(
  nl: NetlinkHandle,
  bridge: string,
  subnet: Subnet,
): Promise<{ index: number; mtu: number }> {
  let br = await nl.link(bridge).catch((e: unknown) => {
    if (isNetlinkError(e) && e.code === 'NotFound') return undefined;
    throw e;
  });
  if (!br) {
    await nl.linkAdd({ kind: 'bridge', name: bridge, up: true });
    br = await nl.link(bridge);
  }
  if (br.kind !== 'bridge') {
    throw new ContainerError(
      'InvalidArgument',
      `"${bridge}" exists and is not a bridge (it is ${br.kind ?? 'a device'})`,
    );
  }
  const gw = gatewayOf(subnet);
  const addrs = await nl.addrs({ family: 4, link: { index: br.index } });
  if (!addrs.some((a) => a.address === gw && a.prefixLength === subnet.prefix)) {
    await nl.addrAdd({ index: br.index }, `${gw}/${subnet.prefix}`, { broadcast: true, mode: 'replace' });
  }
  if (!br.up) await nl.linkSet({ index: br.index }, { up: true });
  return { index: br.index, mtu: br.mtu };
}

function allocate(f: NetworkFile, subnet: Subnet): string | undefined {
  const first = subnet.base + 2; // .0 network, .1 gateway
  const last = subnet.base + subnet.size - 2; // broadcast excluded
  const count = last - first + 1;
  const after = f.last ? (ipToNum(f.last) ?? first - 1) : first - 1;
  for (let i = 1; i <= count; i++) {
    const n = first + ((after - first + i + count) % count);
    const ip = numToIp(n);
    if (!f.leases[ip]) return ip;
  }
  return undefined;
}

function enableIpForward(): void {
  const path = '/proc/sys/net/ipv4/ip_forward';
  if (readFileSync(path, 'utf8').trim() !== '1') writeFileSync(path, '1');
}

/** Undo one lease's veth, rules and proxy (not the lease itself). Idempotent. */
async function teardownLease(nl: NetlinkHandle, table: string, l: Lease): Promise<void> {
  stopProxy(l.proxy);
  // Only published ports make rules; gc finds any that a crash left without a lease.
  if (l.ports.length) await deleteTaggedRules(table, new Set([containerTag(l.id)]));
  // The veth usually went with the container's namespace; a leftover one is deleted here.
  await nl.linkDel(l.hostVeth, { ifMissing: 'ignore' });
}

function resolveLinks(root: string, links: readonly ContainerLink[] | undefined) {
  return (links ?? []).map((l) => {
    validateId(l.id);
    const a = readAttachment(root, l.id);
    if (!a?.ip) {
      throw new ContainerError(
        'NotFound',
        `link ${l.id}: container "${l.id}" has no bridge network address`,
        { id: l.id },
      );
    }
    const alias = l.alias ?? l.id;
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(alias)) {
      throw new ContainerError('InvalidArgument', `link ${l.id}: invalid alias "${alias}"`);
    }
    return { id: l.id, alias, ip: a.ip };
  });
}

function wrap(e: unknown, id: string, step: string): ContainerError {
  if (isContainerError(e)) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new ContainerError('System', `container "${id}": network: ${step}: ${msg}`, { id, step, cause: e });
}

/**
 * Set up a container's network, after it was created with its own network namespace (bridge,
 * none) and before it is started. Bridge mode: the bridge (created on first use with the gateway
 * address), an address leased under the network lock, a veth pair whose peer is created in the
 * container's namespace as `eth0`, lo up, a default route, NAT rules and the port proxy for
 * `publish`, and the name files in `filesDir`. On failure everything done so far is undone.
 */
export async function attachNetwork(o: AttachOptions): Promise<NetworkAttachment> {
  validateId(o.id);
  const mode = o.mode ?? 'bridge';
  if (!existsSync(join(o.root, o.id))) {
    throw new ContainerError('NotFound', `container "${o.id}" does not exist`, { id: o.id });
  }
  const hostname = o.hostname ?? o.id.slice(0, 63);
  const ports = [...(o.publish ?? [])];
  checkPublishConflicts(ports);
  const links = resolveLinks(o.root, o.links);
  const base: NetworkAttachment = { id: o.id, mode, hostname, ports: [], expose: [...(o.expose ?? [])] };
  const texts = (ip?: string) => ({
    hosts: hostsFile({ ip, hostname, id: o.id, links, addHosts: o.addHosts ?? [] }),
    hostname,
    resolvConf: resolvConf({ dns: o.dns, search: o.dnsSearch, options: o.dnsOptions }),
  });

  if (mode !== 'bridge') {
    if (ports.length) {
      throw new ContainerError(
        'InvalidArgument',
        `container "${o.id}": ports can only be published in bridge mode`,
      );
    }
    const a: NetworkAttachment = { ...base };
    if (mode === 'none') {
      const nl = openNetlink({ netns: { pid: o.pid } });
      try {
        await nl.linkSet('lo', { up: true });
      } catch (e) {
        throw wrap(e, o.id, 'lo up');
      } finally {
        nl.close();
      }
    } else if (mode !== 'host') {
      const r = resolveNetworkMode(o.root, mode);
      if (r.netnsPath) a.netnsPath = r.netnsPath;
      const other = readAttachment(o.root, mode.slice('container:'.length));
      if (other?.ip) a.ip = other.ip;
    }
    if (o.filesDir) {
      const t = texts(a.ip);
      if (mode === 'host') {
        t.hosts = readFileSync('/etc/hosts', 'utf8');
        t.resolvConf = o.dns?.length ? t.resolvConf : readFileSync('/etc/resolv.conf', 'utf8');
      }
      a.files = writeNetworkFiles(o.filesDir, t);
    }
    writeAttachment(o.root, a);
    return a;
  }

  const bridge = o.bridge ?? DEFAULT_BRIDGE;
  checkBridgeName(bridge);
  const subnet = parseSubnet(o.subnet ?? DEFAULT_SUBNET);
  const startTime = processStartTime(o.pid);
  if (startTime === undefined) {
    throw new ContainerError('InvalidState', `container "${o.id}": its init (pid ${o.pid}) is not running`, {
      id: o.id,
    });
  }
  const hostVeth = hostVethName(o.id);
  const host = openNetlink();
  let lease: Lease | undefined;
  let table = o.nftTable ?? DEFAULT_NFT_TABLE;
  let step = 'lease an address';
  try {
    let br = { index: 0, mtu: 1500 };
    await withNetworkLock(o.root, bridge, async () => {
      let f = readStore(o.root, bridge);
      if (f && f.subnet !== subnet.cidr) {
        throw new ContainerError(
          'InvalidArgument',
          `bridge ${bridge} already serves subnet ${f.subnet}, not ${subnet.cidr} (remove the network first)`,
        );
      }
      f ??= {
        version: 1,
        bridge,
        subnet: subnet.cidr,
        gateway: gatewayOf(subnet),
        nftTable: table,
        leases: {},
      };
      table = f.nftTable;
      step = `create bridge ${bridge}`;
      br = await ensureBridge(host, bridge, subnet);
      step = 'lease an address';
      const mine = Object.values(f.leases).find((l) => l.id === o.id);
      if (mine) {
        if (!stale(o.root, mine) && mine.pid === o.pid) {
          throw new ContainerError(
            'AlreadyExists',
            `container "${o.id}" is attached to ${bridge} already (${mine.ip})`,
            {
              id: o.id,
            },
          );
        }
        await teardownLease(host, table, mine);
        delete f.leases[mine.ip];
      }
      let ip = allocate(f, subnet);
      if (!ip) {
        // Full: reclaim the leases of containers that are gone.
        for (const l of Object.values(f.leases)) {
          if (!stale(o.root, l)) continue;
          await teardownLease(host, table, l);
          delete f.leases[l.ip];
        }
        ip = allocate(f, subnet);
      }
      if (!ip)
        throw new ContainerError('System', `no free address left in ${subnet.cidr} (bridge ${bridge})`);
      lease = {
        id: o.id,
        ip,
        pid: o.pid,
        startTime,
        hostVeth,
        mac: macOf(ip),
        ports,
        created: new Date().toISOString(),
      };
      f.leases[ip] = lease;
      f.last = ip;
      writeStore(o.root, f);
      // One nft run: the table, the bridge's masquerade chain, this container's DNAT rules.
      step = `nftables table ${table}`;
      await ensureNetworkRules(table, bridge, subnet.cidr, { id: o.id, ip, ports });
    });
    const l = lease as unknown as Lease;
    const mtu = o.mtu ?? br.mtu;

    step = `create veth ${hostVeth}`;
    const veth = {
      kind: 'veth' as const,
      name: hostVeth,
      mtu,
      master: { index: br.index },
      up: true,
      peer: { name: 'eth0', netns: { pid: o.pid }, mac: l.mac, mtu },
    };
    try {
      await host.linkAdd(veth);
    } catch (e) {
      if (!(isNetlinkError(e) && e.code === 'AlreadyExists')) throw e;
      // A leftover of an earlier attach of this id that died half-way (names come from the id).
      const owner = Object.values(readStore(o.root, bridge)?.leases ?? {}).find(
        (x) => x.hostVeth === hostVeth && x.id !== o.id,
      );
      if (owner) throw e;
      await host.linkDel(hostVeth, { ifMissing: 'ignore' });
      await host.linkAdd(veth);
    }

    step = 'configure eth0 in the container';
    const gateway = gatewayOf(subnet);
    const inner = openNetlink({ netns: { pid: o.pid } });
    try {
      await inner.linkSet('lo', { up: true });
      const eth0 = { index: (await inner.link('eth0')).index };
      await inner.addrAdd(eth0, `${l.ip}/${subnet.prefix}`, { broadcast: true });
      await inner.linkSet(eth0, { up: true });
      await inner.routeAdd({ dst: 'default', gateway, link: eth0 });
    } finally {
      inner.close();
    }

    if (o.ipForward !== false) {
      step = 'enable net.ipv4.ip_forward';
      enableIpForward();
    }
    const a: NetworkAttachment = {
      ...base,
      bridge,
      subnet: subnet.cidr,
      nftTable: table,
      ip: l.ip,
      prefixLength: subnet.prefix,
      gateway,
      mac: l.mac,
      ifname: 'eth0',
      hostVeth,
      ports,
    };
    if (ports.length && o.userlandProxy !== false) {
      step = 'start port proxy';
      const proxy = await startProxy({
        id: o.id,
        containerIp: l.ip,
        ports,
        watch: { pid: o.pid, startTime },
        ...(o.proxyCommand ? { command: o.proxyCommand } : {}),
      });
      a.proxy = proxy;
      await withNetworkLock(o.root, bridge, async () => {
        const f = readStore(o.root, bridge);
        const cur = f?.leases[l.ip];
        if (f && cur && cur.id === o.id) {
          cur.proxy = proxy;
          writeStore(o.root, f);
        } else {
          stopProxy(proxy);
          throw new ContainerError('System', `container "${o.id}": its lease vanished while attaching (gc?)`);
        }
      });
    }
    if (links.length) a.links = links;
    step = 'write hosts, hostname, resolv.conf';
    if (o.filesDir) a.files = writeNetworkFiles(o.filesDir, texts(l.ip));
    writeAttachment(o.root, a);
    return a;
  } catch (e) {
    const err = wrap(e, o.id, step);
    if (lease) await detachNetwork({ root: o.root, id: o.id }).catch(() => {});
    throw err;
  } finally {
    host.close();
  }
}

/**
 * Undo {@link attachNetwork} for container `id` from what is on disk alone: kill the proxy,
 * delete the container's nftables rules and host veth, release its address, remove
 * `network.json`. Idempotent; works after everything was SIGKILLed, and whether or not the
 * container's state directory still exists.
 */
export async function detachNetwork(o: { root: string; id: string }): Promise<void> {
  validateId(o.id);
  const nl = openNetlink();
  try {
    for (const bridge of storedBridges(o.root)) {
      const f = readStore(o.root, bridge);
      const mine = Object.values(f?.leases ?? {}).filter((l) => l.id === o.id);
      if (!f || !mine.length) continue;
      for (const l of mine) await teardownLease(nl, f.nftTable, l);
      await withNetworkLock(o.root, bridge, async () => {
        const g = readStore(o.root, bridge);
        if (!g) return;
        for (const l of mine) if (g.leases[l.ip]?.id === o.id) delete g.leases[l.ip];
        writeStore(o.root, g);
      });
    }
  } finally {
    nl.close();
  }
  rmSync(attachmentPath(o.root, o.id), { force: true });
}

/**
 * Remove what containers that no longer exist left behind on every bridge network under `root`:
 * leases (with their veth, rules, proxy) whose state directory is gone or whose init died, rules
 * tagged with a container that has no lease, and host veths on our bridges that no lease owns.
 */
export async function gcNetworks(o: { root: string }): Promise<GcReport> {
  const report: GcReport = { leases: [], rules: 0, veths: [] };
  const nl = openNetlink();
  try {
    for (const bridge of storedBridges(o.root)) {
      // Look at the kernel first, then at the leases: a lease is written before its veth and
      // rules exist, so anything seen here that has no lease below is a leftover.
      const first = readStore(o.root, bridge);
      if (!first) continue;
      const brIndex = await nl.link(bridge).then(
        (l) => l.index,
        () => undefined,
      );
      const veths = brIndex === undefined ? [] : (await nl.links()).filter((l) => l.master === brIndex);
      const rules = await listRules(first.nftTable);
      const f = readStore(o.root, bridge);
      if (!f) continue;
      const dead = Object.values(f.leases).filter((l) => stale(o.root, l));
      for (const l of dead) {
        await teardownLease(nl, f.nftTable, l);
        report.leases.push({ bridge, id: l.id, ip: l.ip });
      }
      await withNetworkLock(o.root, bridge, async () => {
        const g = readStore(o.root, bridge);
        if (!g) return;
        for (const l of dead) if (g.leases[l.ip]?.created === l.created) delete g.leases[l.ip];
        writeStore(o.root, g);
      });
      const live = Object.values(f.leases).filter((l) => !dead.includes(l));
      const liveTags = new Set(live.map((l) => containerTag(l.id)));
      const orphanTags = new Set(
        rules.map((r) => r.comment ?? '').filter((c) => c.startsWith('ctr:') && !liveTags.has(c)),
      );
      if (orphanTags.size) report.rules += await deleteTaggedRules(f.nftTable, orphanTags);
      const liveVeths = new Set(live.map((l) => l.hostVeth));
      for (const v of veths) {
        if (/^veth[0-9a-f]{8}$/.test(v.name) && !liveVeths.has(v.name)) {
          await nl.linkDel({ index: v.index }, { ifMissing: 'ignore' });
          report.veths.push(v.name);
        }
      }
    }
  } finally {
    nl.close();
  }
  return report;
}

/**
 * Delete a bridge network: its bridge, its masquerade rule, its file and lock under `root`, and
 * the nftables table once no rule is left in it. Fails with InvalidState while a container that
 * still runs holds a lease, unless `force` (which tears those down too).
 */
export async function removeNetwork(
  o: { root: string; force?: boolean } & BridgeNetworkOptions,
): Promise<void> {
  const bridge = o.bridge ?? DEFAULT_BRIDGE;
  checkBridgeName(bridge);
  const nl = openNetlink();
  try {
    await withNetworkLock(o.root, bridge, async () => {
      const f = readStore(o.root, bridge);
      const table = f?.nftTable ?? o.nftTable ?? DEFAULT_NFT_TABLE;
      const leases = Object.values(f?.leases ?? {});
      const live = leases.filter((l) => !stale(o.root, l));
      if (live.length && !o.force) {
        throw new ContainerError(
          'InvalidState',
          `network ${bridge} is in use by ${live.map((l) => l.id).join(', ')} (detach them or use force)`,
        );
      }
      for (const l of leases) await teardownLease(nl, table, l);
      await deleteNetworkChain(table, bridge);
      await deleteTableIfEmpty(table);
      await nl.linkDel(bridge, { ifMissing: 'ignore' });
      removeStore(o.root, bridge);
    });
  } finally {
    nl.close();
  }
}

/**
 * Docker's link environment variables for `links`, from the other containers' recorded networks
 * and exposed ports: `ALIAS_NAME=/<name>/<alias>`, `ALIAS_PORT=tcp://ip:port` (lowest port),
 * and per port `ALIAS_PORT_80_TCP=tcp://ip:80`, `…_ADDR`, `…_PORT`, `…_PROTO`.
 */
export function linkEnv(o: {
  root: string;
  name: string;
  links: readonly ContainerLink[];
}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const l of o.links) {
    validateId(l.id);
    const a = readAttachment(o.root, l.id);
    if (!a?.ip) {
      throw new ContainerError(
        'NotFound',
        `link ${l.id}: container "${l.id}" has no bridge network address`,
        { id: l.id },
      );
    }
    const alias = l.alias ?? l.id;
    const p = alias.toUpperCase().replace(/[^A-Z0-9]/g, '_');
    env[`${p}_NAME`] = `/${o.name}/${alias}`;
    const seen = new Map<string, { port: number; protocol: string }>();
    for (const e of a.expose) seen.set(`${e.port}/${e.protocol}`, { port: e.port, protocol: e.protocol });
    for (const m of a.ports)
      seen.set(`${m.containerPort}/${m.protocol}`, { port: m.containerPort, protocol: m.protocol });
    const ports = [...seen.values()].sort((x, y) => x.port - y.port || x.protocol.localeCompare(y.protocol));
    const lowest = ports[0];
    if (lowest) env[`${p}_PORT`] = `${lowest.protocol}://${a.ip}:${lowest.port}`;
    for (const x of ports) {
      const k = `${p}_PORT_${x.port}_${x.protocol.toUpperCase()}`;
      env[k] = `${x.protocol}://${a.ip}:${x.port}`;
      env[`${k}_ADDR`] = a.ip;
      env[`${k}_PORT`] = String(x.port);
      env[`${k}_PROTO`] = x.protocol;
    }
  }
  return env;
}
