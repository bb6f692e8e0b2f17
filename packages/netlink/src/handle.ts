import { closeSync } from 'node:fs';
import { call, closeFd } from '@tsc/syscall';
import { NetlinkError } from './errors.js';
import { openEventSocket, type SubscribeOptions, type Subscription } from './events.js';
import { decodeAddr, decodeLink, decodeNeigh, decodeRoute, toCentis } from './internal/codec.js';
import {
  AF_INET,
  AF_INET6,
  AF_UNSPEC,
  ETH_P_8021AD,
  ETH_P_8021Q,
  IFA,
  IFADDRMSG_LEN,
  IFF_UP,
  IFINFOMSG_LEN,
  IFLA,
  IFLA_BR,
  IFLA_INFO,
  IFLA_IPVLAN,
  IFLA_MACVLAN_MODE,
  IFLA_VLAN,
  IPVLAN_FLAGS,
  IPVLAN_MODE,
  MACVLAN_MODE,
  NDA,
  NDMSG_LEN,
  NLM_F_APPEND,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  NUD,
  RT_SCOPE,
  RT_TABLE,
  RTA,
  RTEXT_FILTER_SKIP_STATS,
  RTM,
  RTMSG_LEN,
  RTN,
  RTPROT,
  VETH_INFO_PEER,
} from './internal/constants.js';
import { parseCidr, parseIp, parseMac } from './internal/ip.js';
import { openRouteSocket, REQ, REQ_ACK, REQ_DUMP, RequestSocket } from './internal/socket.js';
import { MessageBuilder } from './internal/wire.js';
import { describeNetns, type NetnsRef, openNetns } from './netns.js';
import type {
  Address,
  AddressOptions,
  BridgeOptions,
  EventGroup,
  Link,
  LinkChange,
  LinkRef,
  LinkSpec,
  Neighbour,
  NeighbourSpec,
  Route,
  RouteSpec,
} from './types.js';

/** Options of {@link openNetlink}. */
export interface OpenOptions {
  /** Work inside this network namespace (default: the calling thread's). */
  netns?: NetnsRef;
  /** How long to wait for any one answer, ms (default 5000). */
  timeoutMs?: number;
  /** How often a dump that the kernel flags as interrupted is retried before failing (default 3). */
  dumpRetries?: number;
}

const IFNAMSIZ = 16;
const F_DUPFD_CLOEXEC = 1030;

function refName(ref: LinkRef): string {
  return typeof ref === 'string' ? ref : `#${ref.index}`;
}

function checkName(name: string, op: string): void {
  const n = Buffer.byteLength(name);
  if (n === 0 || n >= IFNAMSIZ || /[/\s:]/.test(name) || name === '.' || name === '..') {
    throw new NetlinkError(
      op,
      'InvalidArgument',
      `invalid interface name "${name}" (1-15 bytes, no "/", ":" or spaces)`,
    );
  }
}

function mac(s: string, op: string): Buffer {
  const b = parseMac(s);
  if (!b) throw new NetlinkError(op, 'InvalidArgument', `invalid MAC address "${s}"`);
  return b;
}

function ip(s: string, op: string, family?: 4 | 6): { family: 4 | 6; bytes: Buffer } {
  const p = parseIp(s);
  if (!p) throw new NetlinkError(op, 'InvalidArgument', `invalid IP address "${s}"`);
  if (family !== undefined && p.family !== family) {
    throw new NetlinkError(op, 'InvalidArgument', `"${s}" is not an IPv${family} address`);
  }
  return p;
}

function cidr(s: string, op: string): { family: 4 | 6; bytes: Buffer; prefix: number } {
  const p = parseCidr(s);
  if (!p) throw new NetlinkError(op, 'InvalidArgument', `invalid address "${s}" (expected ADDRESS/PREFIX)`);
  return p;
}

const afOf = (f: 4 | 6) => (f === 4 ? AF_INET : AF_INET6);

function modeFlags(mode: 'create' | 'replace' | 'append' | undefined): number {
  if (mode === 'replace') return NLM_F_CREATE | NLM_F_REPLACE;
  if (mode === 'append') return NLM_F_CREATE | NLM_F_APPEND;
  return NLM_F_CREATE | NLM_F_EXCL;
}

/** Open netns fds for the duration of one request. */
class FdScope {
  private readonly fds: number[] = [];
  /** Write IFLA_NET_NS_PID (for a pid) or IFLA_NET_NS_FD. */
  netns(m: MessageBuilder, ref: NetnsRef): void {
    if ('pid' in ref) {
      m.u32(IFLA.NET_NS_PID, ref.pid);
      return;
    }
    const { fd, owned } = openNetns(ref);
    if (owned) this.fds.push(fd);
    m.u32(IFLA.NET_NS_FD, fd);
  }
  close(): void {
    for (const fd of this.fds.splice(0)) closeSync(fd);
  }
}

/**
 * A NETLINK_ROUTE socket bound to one network namespace for its whole life, and the verbs of
 * `ip link`, `ip addr`, `ip route` and `ip neigh` on it. Requests on one handle are answered in
 * order (each completes before the next is sent). Close it with {@link NetlinkHandle.close}.
 */
export class NetlinkHandle {
  private readonly sock: RequestSocket;
  /** Our own fd of the namespace (for event sockets opened later), undefined for the caller's. */
  private readonly nsFd: number | undefined;
  private readonly subs = new Set<Subscription>();

  /** @internal use {@link openNetlink}. */
  constructor(opts: OpenOptions = {}) {
    let nsFd: number | undefined;
    if (opts.netns) {
      const { fd, owned } = openNetns(opts.netns);
      // Keep a private copy of a caller's fd, so the caller may close theirs.
      nsFd = owned ? fd : call('fcntl', [fd, F_DUPFD_CLOEXEC, 0], { op: 'dup netns fd' });
    }
    try {
      const fd = openRouteSocket(nsFd, false);
      this.sock = new RequestSocket(fd, {
        timeoutMs: opts.timeoutMs ?? 5000,
        dumpRetries: opts.dumpRetries ?? 3,
      });
    } catch (e) {
      if (nsFd !== undefined) closeFd(nsFd);
      if (e instanceof NetlinkError && opts.netns) {
        throw new NetlinkError(`open netlink in ${describeNetns(opts.netns)}`, e.code, e.message, {
          errno: e.errno,
          cause: e,
        });
      }
      throw e;
    }
    this.nsFd = nsFd;
  }

  /** Close the socket and every subscription made through this handle. Idempotent. */
  close(): void {
    for (const s of this.subs) s.close();
    this.sock.close();
    if (this.nsFd !== undefined && !this.closedNs) {
      this.closedNs = true;
      closeFd(this.nsFd);
    }
  }
  private closedNs = false;

  // ---- links ----

  private linkGet(ref: LinkRef, op: string): MessageBuilder {
    const m = new MessageBuilder(RTM.GETLINK, REQ, 64);
    m.struct(IFINFOMSG_LEN).writeInt32LE(typeof ref === 'string' ? 0 : ref.index, 4);
    if (typeof ref === 'string') {
      checkName(ref, op);
      m.str(IFLA.IFNAME, ref);
    }
    m.u32(IFLA.EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    return m;
  }

  /** One link by name or index; NetlinkError `NotFound` when there is none. */
  async link(ref: LinkRef): Promise<Link> {
    return this.linkSync(ref);
  }

  private linkSync(ref: LinkRef): Link {
    const op = `RTM_GETLINK ${refName(ref)}`;
    const m = this.linkGet(ref, op);
    const [l] = this.sock.collect(
      () => m,
      op,
      (r) => (r.type === RTM.NEWLINK ? decodeLink(r.payload) : undefined),
      false,
    );
    if (!l) throw new NetlinkError(op, 'NotFound', 'no answer');
    return l;
  }

  /** The index of a link (no request when `ref` is an index). */
  private index(ref: LinkRef): number {
    return typeof ref === 'string' ? this.linkSync(ref).index : ref.index;
  }

  /** Every link in the namespace (`ip link show`). */
  async links(): Promise<Link[]> {
    const op = 'RTM_GETLINK dump';
    return this.sock.collect(
      () => {
        const m = new MessageBuilder(RTM.GETLINK, REQ_DUMP, 64);
        m.struct(IFINFOMSG_LEN);
        m.u32(IFLA.EXT_MASK, RTEXT_FILTER_SKIP_STATS);
        return m;
      },
      op,
      (r) => (r.type === RTM.NEWLINK ? decodeLink(r.payload) : undefined),
      true,
    );
  }

  /**
   * Create a link (`ip link add`). Fails with `AlreadyExists` when the name is taken. A veth's
   * peer can be created straight in another namespace (`peer.netns`).
   */
  async linkAdd(spec: LinkSpec): Promise<void> {
    const op = `RTM_NEWLINK ${spec.name} (${spec.kind})`;
    checkName(spec.name, op);
    const fds = new FdScope();
    try {
      const m = new MessageBuilder(RTM.NEWLINK, REQ_ACK | NLM_F_CREATE | NLM_F_EXCL, 256);
      const hdr = m.struct(IFINFOMSG_LEN);
      if (spec.up) {
        hdr.writeUInt32LE(IFF_UP, 8);
        hdr.writeUInt32LE(IFF_UP, 12);
      }
      m.str(IFLA.IFNAME, spec.name);
      if (spec.mtu !== undefined) m.u32(IFLA.MTU, spec.mtu);
      if (spec.mac !== undefined) m.bytes(IFLA.ADDRESS, mac(spec.mac, op));
      if (spec.txQueueLength !== undefined) m.u32(IFLA.TXQLEN, spec.txQueueLength);
      if (spec.master !== undefined) m.u32(IFLA.MASTER, this.index(spec.master));
      if (spec.netns) fds.netns(m, spec.netns);
      if (spec.kind === 'macvlan' || spec.kind === 'ipvlan' || spec.kind === 'vlan') {
        m.u32(IFLA.LINK, this.index(spec.parent));
      }
      const info = m.begin(IFLA.LINKINFO);
      m.str(IFLA_INFO.KIND, spec.kind);
      switch (spec.kind) {
        case 'veth': {
          const p = spec.peer;
          checkName(p.name, op);
          const data = m.begin(IFLA_INFO.DATA);
          const peer = m.begin(VETH_INFO_PEER);
          m.struct(IFINFOMSG_LEN);
          m.str(IFLA.IFNAME, p.name);
          if (p.mtu !== undefined) m.u32(IFLA.MTU, p.mtu);
          if (p.mac !== undefined) m.bytes(IFLA.ADDRESS, mac(p.mac, op));
          if (p.netns) fds.netns(m, p.netns);
          m.end(peer);
          m.end(data);
          break;
        }
        case 'bridge':
          m.nest(IFLA_INFO.DATA, () => bridgeAttrs(m, spec));
          break;
        case 'macvlan':
          m.nest(IFLA_INFO.DATA, () => m.u32(IFLA_MACVLAN_MODE, MACVLAN_MODE[spec.mode ?? 'bridge']));
          break;
        case 'ipvlan':
          m.nest(IFLA_INFO.DATA, () => {
            m.u16(IFLA_IPVLAN.MODE, IPVLAN_MODE[spec.mode ?? 'l2']);
            if (spec.flags) m.u16(IFLA_IPVLAN.FLAGS, IPVLAN_FLAGS[spec.flags]);
          });
          break;
        case 'vlan':
          if (!Number.isInteger(spec.id) || spec.id < 0 || spec.id > 4094) {
            throw new NetlinkError(op, 'InvalidArgument', `invalid VLAN id ${spec.id} (0-4094)`);
          }
          m.nest(IFLA_INFO.DATA, () => {
            m.u16(IFLA_VLAN.ID, spec.id);
            m.be16(IFLA_VLAN.PROTOCOL, spec.protocol === '802.1ad' ? ETH_P_8021AD : ETH_P_8021Q);
          });
          break;
        case 'dummy':
          break;
        default: {
          // A kind this package does not know: let the kernel say whether it has it.
          break;
        }
      }
      m.end(info);
      this.sock.request(m, op);
    } finally {
      fds.close();
    }
  }

  /** Delete a link (`ip link del`); deleting one end of a veth deletes both. */
  async linkDel(ref: LinkRef, opts: { ifMissing?: 'throw' | 'ignore' } = {}): Promise<void> {
    const op = `RTM_DELLINK ${refName(ref)}`;
    const m = new MessageBuilder(RTM.DELLINK, REQ_ACK, 64);
    m.struct(IFINFOMSG_LEN).writeInt32LE(typeof ref === 'string' ? 0 : ref.index, 4);
    if (typeof ref === 'string') {
      checkName(ref, op);
      m.str(IFLA.IFNAME, ref);
    }
    try {
      this.sock.request(m, op);
    } catch (e) {
      if (opts.ifMissing === 'ignore' && e instanceof NetlinkError && e.code === 'NotFound') return;
      throw e;
    }
  }

  /**
   * Change a link (`ip link set`): up/down, mtu, name, MAC, master/nomaster, namespace, bridge
   * options. A move to another namespace happens first, so `{ netns, name: 'eth0', up: true }`
   * moves, renames and raises it there in one request.
   */
  async linkSet(ref: LinkRef, change: LinkChange): Promise<void> {
    const op = `RTM_NEWLINK ${refName(ref)} (set)`;
    const fds = new FdScope();
    try {
      const m = new MessageBuilder(RTM.NEWLINK, REQ_ACK, 128);
      const hdr = m.struct(IFINFOMSG_LEN);
      let index = typeof ref === 'string' ? 0 : ref.index;
      if (typeof ref === 'string') checkName(ref, op);
      if (change.name !== undefined) {
        checkName(change.name, op);
        if (index === 0) index = this.index(ref);
        m.str(IFLA.IFNAME, change.name);
      } else if (typeof ref === 'string') {
        m.str(IFLA.IFNAME, ref);
      }
      hdr.writeInt32LE(index, 4);
      if (change.up !== undefined) {
        hdr.writeUInt32LE(change.up ? IFF_UP : 0, 8);
        hdr.writeUInt32LE(IFF_UP, 12);
      }
      if (change.mtu !== undefined) m.u32(IFLA.MTU, change.mtu);
      if (change.mac !== undefined) m.bytes(IFLA.ADDRESS, mac(change.mac, op));
      if (change.txQueueLength !== undefined) m.u32(IFLA.TXQLEN, change.txQueueLength);
      if (change.alias !== undefined) m.str(IFLA.IFALIAS, change.alias);
      if (change.master !== undefined)
        m.u32(IFLA.MASTER, change.master === null ? 0 : this.index(change.master));
      if (change.netns) fds.netns(m, change.netns);
      if (change.bridge) {
        const b = change.bridge;
        m.nest(IFLA.LINKINFO, () => {
          m.str(IFLA_INFO.KIND, 'bridge');
          m.nest(IFLA_INFO.DATA, () => bridgeAttrs(m, b));
        });
      }
      this.sock.request(m, op);
    } finally {
      fds.close();
    }
  }

  // ---- addresses ----

  /** Addresses (`ip addr show`), optionally of one family or one link. */
  async addrs(filter: { family?: 4 | 6; link?: LinkRef } = {}): Promise<Address[]> {
    const index = filter.link === undefined ? 0 : this.index(filter.link);
    return this.sock.collect(
      () => {
        const m = new MessageBuilder(RTM.GETADDR, REQ_DUMP, 32);
        const h = m.struct(IFADDRMSG_LEN);
        h.writeUInt8(filter.family ? afOf(filter.family) : AF_UNSPEC, 0);
        h.writeUInt32LE(index, 4);
        return m;
      },
      'RTM_GETADDR dump',
      (r) => (r.type === RTM.NEWADDR ? decodeAddr(r.payload) : undefined),
      true,
    );
  }

  private addrMsg(
    type: number,
    flags: number,
    ref: LinkRef,
    cidrText: string,
    op: string,
    o: AddressOptions = {},
  ) {
    const c = cidr(cidrText, op);
    const m = new MessageBuilder(type, flags, 96);
    const h = m.struct(IFADDRMSG_LEN);
    h.writeUInt8(afOf(c.family), 0);
    h.writeUInt8(c.prefix, 1);
    h.writeUInt8(o.scope ? RT_SCOPE[o.scope] : 0, 3);
    h.writeUInt32LE(this.index(ref), 4);
    m.bytes(IFA.LOCAL, c.bytes);
    m.bytes(IFA.ADDRESS, o.peer ? ip(o.peer, op, c.family).bytes : c.bytes);
    if (o.broadcast !== undefined && c.family === 4) {
      let b: Buffer;
      if (o.broadcast === true) {
        const v = c.bytes.readUInt32BE(0);
        const mask = c.prefix === 0 ? 0 : (0xffffffff << (32 - c.prefix)) >>> 0;
        b = Buffer.alloc(4);
        b.writeUInt32BE((v | ~mask) >>> 0);
      } else {
        b = ip(o.broadcast, op, 4).bytes;
      }
      m.bytes(IFA.BROADCAST, b);
    }
    if (o.label !== undefined) m.str(IFA.LABEL, o.label);
    if (o.noDad) m.u32(IFA.FLAGS, 0x02 /* IFA_F_NODAD */);
    return m;
  }

  /** Add an address (`ip addr add 10.0.0.2/24 dev X`). */
  async addrAdd(link: LinkRef, address: string, opts: AddressOptions = {}): Promise<void> {
    const op = `RTM_NEWADDR ${address} dev ${refName(link)}`;
    const flags =
      REQ_ACK | (opts.mode === 'replace' ? NLM_F_CREATE | NLM_F_REPLACE : NLM_F_CREATE | NLM_F_EXCL);
    this.sock.request(this.addrMsg(RTM.NEWADDR, flags, link, address, op, opts), op);
  }

  /** Delete an address (`ip addr del 10.0.0.2/24 dev X`). */
  async addrDel(link: LinkRef, address: string): Promise<void> {
    const op = `RTM_DELADDR ${address} dev ${refName(link)}`;
    this.sock.request(this.addrMsg(RTM.DELADDR, REQ_ACK, link, address, op), op);
  }

  // ---- routes ----

  /** Routes (`ip route show`): table main unless `table` says another id or `all`. */
  async routes(filter: { family?: 4 | 6; table?: number | 'all'; link?: LinkRef } = {}): Promise<Route[]> {
    const table = filter.table ?? RT_TABLE.main;
    const oif = filter.link === undefined ? undefined : this.index(filter.link);
    const fams: (4 | 6)[] = filter.family ? [filter.family] : [4, 6];
    const out: Route[] = [];
    for (const f of fams) {
      out.push(
        ...this.sock.collect(
          () => {
            const m = new MessageBuilder(RTM.GETROUTE, REQ_DUMP, 48);
            m.struct(RTMSG_LEN).writeUInt8(afOf(f), 0);
            if (table !== 'all') m.u32(RTA.TABLE, table);
            if (oif !== undefined) m.u32(RTA.OIF, oif);
            return m;
          },
          'RTM_GETROUTE dump',
          (r) => (r.type === RTM.NEWROUTE ? decodeRoute(r.payload) : undefined),
          true,
        ),
      );
    }
    // The kernel filters by table for IPv4; IPv6 dumps may include cached clones of other tables.
    return table === 'all' ? out : out.filter((r) => r.table === table);
  }

  private routeMsg(type: number, flags: number, r: RouteSpec, op: string): MessageBuilder {
    let family: 4 | 6 | undefined = r.family;
    let dst: { bytes: Buffer; prefix: number } | undefined;
    if (r.dst !== 'default') {
      const c = cidr(r.dst, op);
      family = c.family;
      dst = c;
    }
    const gw = r.gateway === undefined ? undefined : ip(r.gateway, op, family);
    family ??= gw?.family ?? 4;
    const table = r.table ?? RT_TABLE.main;
    const m = new MessageBuilder(type, flags, 96);
    const h = m.struct(RTMSG_LEN);
    h.writeUInt8(afOf(family), 0);
    h.writeUInt8(dst?.prefix ?? 0, 1);
    h.writeUInt8(table < 256 ? table : 0, 4);
    if (type === RTM.NEWROUTE) {
      const scope =
        r.scope ?? (!gw && r.link !== undefined && (r.type ?? 'unicast') === 'unicast' ? 'link' : 'universe');
      h.writeUInt8(r.protocol ?? RTPROT.boot, 5);
      h.writeUInt8(RT_SCOPE[scope], 6);
      h.writeUInt8(RTN[r.type ?? 'unicast'], 7);
    } else {
      h.writeUInt8(RT_SCOPE.nowhere, 6);
      if (r.type) h.writeUInt8(RTN[r.type], 7);
    }
    if (dst) m.bytes(RTA.DST, dst.bytes);
    if (gw) m.bytes(RTA.GATEWAY, gw.bytes);
    if (r.link !== undefined) m.u32(RTA.OIF, this.index(r.link));
    if (r.metric !== undefined) m.u32(RTA.PRIORITY, r.metric);
    if (r.src !== undefined) m.bytes(RTA.PREFSRC, ip(r.src, op, family).bytes);
    m.u32(RTA.TABLE, table);
    return m;
  }

  /** Add a route (`ip route add|replace|append`); default mode `create` fails when it exists. */
  async routeAdd(route: RouteSpec, opts: { mode?: 'create' | 'replace' | 'append' } = {}): Promise<void> {
    const op = `RTM_NEWROUTE ${route.dst}${route.gateway ? ` via ${route.gateway}` : ''}`;
    this.sock.request(this.routeMsg(RTM.NEWROUTE, REQ_ACK | modeFlags(opts.mode), route, op), op);
  }

  /** Delete a route (`ip route del`); fields left out match any route. */
  async routeDel(route: RouteSpec): Promise<void> {
    const op = `RTM_DELROUTE ${route.dst}`;
    this.sock.request(this.routeMsg(RTM.DELROUTE, REQ_ACK, route, op), op);
  }

  // ---- neighbours ----

  /** Neighbour entries (`ip neigh show`). */
  async neighbours(filter: { family?: 4 | 6; link?: LinkRef } = {}): Promise<Neighbour[]> {
    const index = filter.link === undefined ? undefined : this.index(filter.link);
    return this.sock.collect(
      () => {
        const m = new MessageBuilder(RTM.GETNEIGH, REQ_DUMP, 32);
        m.struct(NDMSG_LEN).writeUInt8(filter.family ? afOf(filter.family) : AF_UNSPEC, 0);
        if (index !== undefined) m.u32(8 /* NDA_IFINDEX */, index);
        return m;
      },
      'RTM_GETNEIGH dump',
      (r) => (r.type === RTM.NEWNEIGH ? decodeNeigh(r.payload) : undefined),
      true,
    );
  }

  private neighMsg(
    type: number,
    flags: number,
    link: LinkRef,
    address: string,
    op: string,
    n?: NeighbourSpec,
  ) {
    const a = ip(address, op);
    const m = new MessageBuilder(type, flags, 64);
    const h = m.struct(NDMSG_LEN);
    h.writeUInt8(afOf(a.family), 0);
    h.writeInt32LE(this.index(link), 4);
    if (n) h.writeUInt16LE(NUD[n.state ?? 'permanent'], 8);
    m.bytes(NDA.DST, a.bytes);
    if (n) m.bytes(NDA.LLADDR, mac(n.mac, op));
    return m;
  }

  /** Add a neighbour entry (`ip neigh add 10.0.0.9 lladdr … dev X`), permanent by default. */
  async neighAdd(n: NeighbourSpec): Promise<void> {
    const op = `RTM_NEWNEIGH ${n.address} dev ${refName(n.link)}`;
    const flags = REQ_ACK | (n.mode === 'replace' ? NLM_F_CREATE | NLM_F_REPLACE : NLM_F_CREATE | NLM_F_EXCL);
    this.sock.request(this.neighMsg(RTM.NEWNEIGH, flags, n.link, n.address, op, n), op);
  }

  /** Delete a neighbour entry. */
  async neighDel(n: { link: LinkRef; address: string }): Promise<void> {
    const op = `RTM_DELNEIGH ${n.address} dev ${refName(n.link)}`;
    this.sock.request(this.neighMsg(RTM.DELNEIGH, REQ_ACK, n.link, n.address, op), op);
  }

  // ---- events ----

  /**
   * Subscribe to kernel announcements for `groups` in this handle's namespace, on a socket of
   * its own (non-blocking, read from the event loop). Iterate the result, or pass `onEvent`.
   * An `{ type: 'overrun' }` event means events were lost: re-read what you track.
   */
  subscribe(groups: readonly EventGroup[], opts: SubscribeOptions = {}): Subscription {
    const s = openEventSocket(this.nsFd, groups, opts, () => this.subs.delete(s));
    this.subs.add(s);
    return s;
  }
}

function bridgeAttrs(m: MessageBuilder, b: BridgeOptions): void {
  if (b.forwardDelay !== undefined) m.u32(IFLA_BR.FORWARD_DELAY, toCentis(b.forwardDelay));
  if (b.helloTime !== undefined) m.u32(IFLA_BR.HELLO_TIME, toCentis(b.helloTime));
  if (b.maxAge !== undefined) m.u32(IFLA_BR.MAX_AGE, toCentis(b.maxAge));
  if (b.ageingTime !== undefined) m.u32(IFLA_BR.AGEING_TIME, toCentis(b.ageingTime));
  if (b.stp !== undefined) m.u32(IFLA_BR.STP_STATE, b.stp ? 1 : 0);
  if (b.priority !== undefined) m.u16(IFLA_BR.PRIORITY, b.priority);
  if (b.vlanFiltering !== undefined) m.u8(IFLA_BR.VLAN_FILTERING, b.vlanFiltering ? 1 : 0);
}

/**
 * Open a handle: a NETLINK_ROUTE socket in the calling thread's network namespace, or in
 * `opts.netns` (entered for the socket() call only, see {@link inNetns}).
 *
 * @example
 * const nl = openNetlink({ netns: { name: 'blue' } });
 * await nl.linkAdd({ kind: 'veth', name: 'v0', peer: { name: 'v1' } });
 * nl.close();
 */
export function openNetlink(opts: OpenOptions = {}): NetlinkHandle {
  return new NetlinkHandle(opts);
}
