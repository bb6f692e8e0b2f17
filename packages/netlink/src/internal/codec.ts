/** Decoders from rtnetlink messages to the public types, and small encoders shared by verbs. */
import type {
  Address,
  BridgeOptions,
  IpvlanMode,
  Link,
  MacvlanMode,
  Neighbour,
  NeighbourState,
  OperState,
  Route,
  RouteType,
  Scope,
} from '../types.js';
import {
  AF_INET,
  ETH_P_8021AD,
  IFA,
  IFF_LOWER_UP,
  IFF_UP,
  IFLA,
  IFLA_BR,
  IFLA_INFO,
  IFLA_IPVLAN,
  IFLA_MACVLAN_MODE,
  IFLA_VLAN,
  IPVLAN_MODE,
  MACVLAN_MODE,
  NDA,
  NUD,
  RT_SCOPE,
  RTA,
  RTN,
} from './constants.js';
import { formatIp, formatMac } from './ip.js';
import { attrStr, attrU8, attrU16, attrU32, parseAttrs } from './wire.js';

const OPER: readonly OperState[] = [
  'unknown',
  'notpresent',
  'down',
  'lowerlayerdown',
  'testing',
  'dormant',
  'up',
];

function invert<K extends string>(o: Readonly<Record<K, number>>): Map<number, K> {
  return new Map(Object.entries(o).map(([k, v]) => [v as number, k as K]));
}
const SCOPES = invert<Scope>(RT_SCOPE);
const RTNS = invert(RTN) as Map<number, RouteType | 'unspec' | 'nat'>;
const MACVLAN = invert<MacvlanMode>(MACVLAN_MODE);
const IPVLAN = invert<IpvlanMode>(IPVLAN_MODE);

export function scopeName(n: number): Scope | number {
  return SCOPES.get(n) ?? n;
}

/** Bridge timers: the kernel uses clock_t (USER_HZ = 100). */
export const toCentis = (s: number) => Math.round(s * 100);
const fromCentis = (c: number) => c / 100;

function bridgeInfo(data: Buffer): Required<BridgeOptions> {
  const a = parseAttrs(data);
  return {
    stp: (attrU32(a.get(IFLA_BR.STP_STATE)) ?? 0) !== 0,
    forwardDelay: fromCentis(attrU32(a.get(IFLA_BR.FORWARD_DELAY)) ?? 0),
    helloTime: fromCentis(attrU32(a.get(IFLA_BR.HELLO_TIME)) ?? 0),
    maxAge: fromCentis(attrU32(a.get(IFLA_BR.MAX_AGE)) ?? 0),
    ageingTime: fromCentis(attrU32(a.get(IFLA_BR.AGEING_TIME)) ?? 0),
    priority: attrU16(a.get(IFLA_BR.PRIORITY)) ?? 0,
    vlanFiltering: (attrU8(a.get(IFLA_BR.VLAN_FILTERING)) ?? 0) !== 0,
  };
}

/** Decode an RTM_NEWLINK payload (ifinfomsg + attributes). */
export function decodeLink(p: Buffer): Link {
  const flags = p.readUInt32LE(8);
  const a = parseAttrs(p, 16);
  const link: Link = {
    index: p.readInt32LE(4),
    name: attrStr(a.get(IFLA.IFNAME)) ?? '',
    type: p.readUInt16LE(2),
    flags,
    up: (flags & IFF_UP) !== 0,
    lowerUp: (flags & IFF_LOWER_UP) !== 0,
    operState: OPER[attrU8(a.get(IFLA.OPERSTATE)) ?? 0] ?? 'unknown',
    mtu: attrU32(a.get(IFLA.MTU)) ?? 0,
  };
  const mac = a.get(IFLA.ADDRESS);
  if (mac) link.mac = formatMac(mac);
  const brd = a.get(IFLA.BROADCAST);
  if (brd) link.broadcast = formatMac(brd);
  const master = attrU32(a.get(IFLA.MASTER));
  if (master) link.master = master;
  const parent = attrU32(a.get(IFLA.LINK));
  if (parent !== undefined && parent !== link.index) link.parent = parent;
  const nsid = a.get(IFLA.LINK_NETNSID);
  if (nsid) link.linkNetnsId = nsid.readInt32LE(0);
  const txq = attrU32(a.get(IFLA.TXQLEN));
  if (txq !== undefined) link.txQueueLength = txq;
  const alias = attrStr(a.get(IFLA.IFALIAS));
  if (alias) link.alias = alias;
  const info = a.get(IFLA.LINKINFO);
  if (info) {
    const ia = parseAttrs(info);
    const kind = attrStr(ia.get(IFLA_INFO.KIND));
    if (kind) link.kind = kind;
    const slave = attrStr(ia.get(IFLA_INFO.SLAVE_KIND));
    if (slave) link.slaveKind = slave;
    const data = ia.get(IFLA_INFO.DATA);
    if (data) {
      if (kind === 'bridge') link.bridge = bridgeInfo(data);
      else if (kind === 'vlan') {
        const d = parseAttrs(data);
        const proto = d.get(IFLA_VLAN.PROTOCOL);
        link.vlan = {
          id: attrU16(d.get(IFLA_VLAN.ID)) ?? 0,
          protocol: proto && proto.readUInt16BE(0) === ETH_P_8021AD ? '802.1ad' : '802.1Q',
        };
      } else if (kind === 'macvlan' || kind === 'macvtap') {
        const m = attrU32(parseAttrs(data).get(IFLA_MACVLAN_MODE));
        if (m !== undefined) link.macvlan = { mode: MACVLAN.get(m) ?? 'bridge' };
      } else if (kind === 'ipvlan') {
        const m = attrU16(parseAttrs(data).get(IFLA_IPVLAN.MODE));
        if (m !== undefined) link.ipvlan = { mode: IPVLAN.get(m) ?? 'l2' };
      }
    }
  }
  return link;
}

/** Decode an RTM_NEWADDR payload (ifaddrmsg + attributes). */
export function decodeAddr(p: Buffer): Address {
  const family = p.readUInt8(0) === AF_INET ? 4 : 6;
  const prefixLength = p.readUInt8(1);
  const a = parseAttrs(p, 8);
  const addrB = a.get(IFA.ADDRESS);
  const localB = a.get(IFA.LOCAL);
  const address = formatIp((localB ?? addrB) as Buffer);
  const out: Address = {
    family,
    index: p.readUInt32LE(4),
    address,
    prefixLength,
    cidr: `${address}/${prefixLength}`,
    scope: scopeName(p.readUInt8(3)),
    flags: attrU32(a.get(IFA.FLAGS)) ?? p.readUInt8(2),
  };
  if (localB && addrB && !localB.equals(addrB)) out.peer = formatIp(addrB);
  const brd = a.get(IFA.BROADCAST);
  if (brd) out.broadcast = formatIp(brd);
  const label = attrStr(a.get(IFA.LABEL));
  if (label) out.label = label;
  return out;
}

/** Decode an RTM_NEWROUTE payload (rtmsg + attributes). */
export function decodeRoute(p: Buffer): Route {
  const family = p.readUInt8(0) === AF_INET ? 4 : 6;
  const dstLen = p.readUInt8(1);
  const a = parseAttrs(p, 12);
  const dstB = a.get(RTA.DST);
  const r: Route = {
    family,
    table: attrU32(a.get(RTA.TABLE)) ?? p.readUInt8(4),
    dst: dstB ? `${formatIp(dstB)}/${dstLen}` : dstLen === 0 ? 'default' : `?/${dstLen}`,
    protocol: p.readUInt8(5),
    scope: scopeName(p.readUInt8(6)),
    type: (RTNS.get(p.readUInt8(7)) as RouteType | undefined) ?? p.readUInt8(7),
  };
  const gw = a.get(RTA.GATEWAY);
  if (gw) r.gateway = formatIp(gw);
  const oif = attrU32(a.get(RTA.OIF));
  if (oif !== undefined) r.oif = oif;
  const src = a.get(RTA.PREFSRC);
  if (src) r.src = formatIp(src);
  const metric = attrU32(a.get(RTA.PRIORITY));
  if (metric !== undefined) r.metric = metric;
  return r;
}

const NUD_NAMES = Object.entries(NUD) as [NeighbourState, number][];

export function decodeNeigh(p: Buffer): Neighbour {
  const family = p.readUInt8(0) === AF_INET ? 4 : 6;
  const state = p.readUInt16LE(8);
  const a = parseAttrs(p, 12);
  const n: Neighbour = {
    family,
    index: p.readInt32LE(4),
    address: formatIp(a.get(NDA.DST) ?? Buffer.alloc(family === 4 ? 4 : 16)),
    state: NUD_NAMES.filter(([, bit]) => state & bit).map(([name]) => name),
  };
  const ll = a.get(NDA.LLADDR);
  if (ll) n.mac = formatMac(ll);
  return n;
}
