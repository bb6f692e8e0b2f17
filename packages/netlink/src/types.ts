import type { NetnsRef } from './netns.js';

/** A link by name, or by index in the handle's namespace. */
export type LinkRef = string | { index: number };

/** Fields every new link may set. */
export interface LinkCommon {
  /** Interface name (at most 15 bytes). */
  name: string;
  mtu?: number;
  /** Hardware address, `aa:bb:cc:dd:ee:ff`. */
  mac?: string;
  /** Bring it up right away. */
  up?: boolean;
  /** Enslave it to this bridge (or bond). */
  master?: LinkRef;
  /** Create it in this namespace instead of the handle's. */
  netns?: NetnsRef;
  txQueueLength?: number;
}

/** The other end of a veth pair. */
export interface VethPeer {
  name: string;
  /** Create the peer directly in this namespace (`ip link add … peer name X netns Y`). */
  netns?: NetnsRef;
  mac?: string;
  mtu?: number;
  // No `up`: the kernel opens the peer before the pair is joined (ENOTCONN); raise it afterwards
  // through a handle in its namespace.
}

export interface VethSpec extends LinkCommon {
  kind: 'veth';
  peer: VethPeer;
}

/** Bridge options; times in seconds (the kernel keeps hundredths). */
export interface BridgeOptions {
  stp?: boolean;
  forwardDelay?: number;
  helloTime?: number;
  maxAge?: number;
  ageingTime?: number;
  priority?: number;
  vlanFiltering?: boolean;
}

export interface BridgeSpec extends LinkCommon, BridgeOptions {
  kind: 'bridge';
}

export interface DummySpec extends LinkCommon {
  kind: 'dummy';
}

export type MacvlanMode = 'private' | 'vepa' | 'bridge' | 'passthru' | 'source';
export interface MacvlanSpec extends LinkCommon {
  kind: 'macvlan';
  parent: LinkRef;
  /** Default `bridge`. */
  mode?: MacvlanMode;
}

export type IpvlanMode = 'l2' | 'l3' | 'l3s';
export interface IpvlanSpec extends LinkCommon {
  kind: 'ipvlan';
  parent: LinkRef;
  /** Default `l2`. */
  mode?: IpvlanMode;
  flags?: 'bridge' | 'private' | 'vepa';
}

export interface VlanSpec extends LinkCommon {
  kind: 'vlan';
  parent: LinkRef;
  id: number;
  /** Default `802.1Q`. */
  protocol?: '802.1Q' | '802.1ad';
}

/** A link to create: a discriminated union on `kind`. */
export type LinkSpec = VethSpec | BridgeSpec | DummySpec | MacvlanSpec | IpvlanSpec | VlanSpec;

/** Operational state (RFC 2863), as `ip` prints it in lower case. */
export type OperState = 'unknown' | 'notpresent' | 'down' | 'lowerlayerdown' | 'testing' | 'dormant' | 'up';

/** A link as the kernel reports it. */
export interface Link {
  index: number;
  name: string;
  /** `IFLA_INFO_KIND`: `veth`, `bridge`, … (absent for physical devices and lo). */
  kind?: string;
  /** ARPHRD_* hardware type (1 ether, 772 loopback). */
  type: number;
  /** IFF_* flags. */
  flags: number;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** Carrier (IFF_LOWER_UP). */
  lowerUp: boolean;
  operState: OperState;
  mtu: number;
  mac?: string;
  broadcast?: string;
  /** Index of the master (bridge) link. */
  master?: number;
  /** `IFLA_LINK`: the peer (veth) or parent (macvlan, vlan) index, possibly in another netns. */
  parent?: number;
  /** Set when `parent` is in another namespace: that namespace's id as seen from this one. */
  linkNetnsId?: number;
  txQueueLength?: number;
  alias?: string;
  /** `IFLA_INFO_SLAVE_KIND`, e.g. `bridge` for a bridge port. */
  slaveKind?: string;
  bridge?: Required<BridgeOptions>;
  vlan?: { id: number; protocol: '802.1Q' | '802.1ad' };
  macvlan?: { mode: MacvlanMode };
  ipvlan?: { mode: IpvlanMode };
}

/** Changes to an existing link; only the given fields change. */
export interface LinkChange {
  up?: boolean;
  mtu?: number;
  name?: string;
  mac?: string;
  /** A bridge to enslave it to, or `null` for nomaster. */
  master?: LinkRef | null;
  /** Move it into this namespace. */
  netns?: NetnsRef;
  txQueueLength?: number;
  alias?: string;
  /** Bridge options (bridges only). */
  bridge?: BridgeOptions;
}

export type Scope = 'universe' | 'site' | 'link' | 'host' | 'nowhere';

/** An interface address. */
export interface Address {
  family: 4 | 6;
  /** The link's index. */
  index: number;
  /** The local address (IFA_LOCAL, or IFA_ADDRESS when there is none). */
  address: string;
  prefixLength: number;
  /** `address/prefixLength`. */
  cidr: string;
  /** The peer of a point-to-point address, when it differs from `address`. */
  peer?: string;
  broadcast?: string;
  label?: string;
  scope: Scope | number;
  /** IFA_F_* flags. */
  flags: number;
}

/** Options of `addrAdd`. */
export interface AddressOptions {
  /** IPv4 broadcast address, or `true` to compute it from the prefix (`ip addr add … brd +`). */
  broadcast?: string | true;
  /** IPv4 label (must start with the link's name). */
  label?: string;
  /** Point-to-point peer. */
  peer?: string;
  scope?: Scope;
  /** IPv6: skip duplicate address detection (IFA_F_NODAD). */
  noDad?: boolean;
  /** `replace`: update an existing address instead of failing with AlreadyExists. */
  mode?: 'create' | 'replace';
}

export type RouteType =
  | 'unicast'
  | 'local'
  | 'broadcast'
  | 'anycast'
  | 'multicast'
  | 'blackhole'
  | 'unreachable'
  | 'prohibit'
  | 'throw';

/** A route to add or delete. */
export interface RouteSpec {
  /** `default`, a CIDR, or an address (a host route). */
  dst: string;
  /** The family of a `default` route when neither dst nor gateway says (default 4). */
  family?: 4 | 6;
  gateway?: string;
  /** The output link. */
  link?: LinkRef;
  /** Routing table id (default main, 254). */
  table?: number;
  metric?: number;
  /** Preferred source address. */
  src?: string;
  /** Default: `link` for a route without gateway through a link, else `universe`. */
  scope?: Scope;
  /** Default `unicast`. */
  type?: RouteType;
  /** RTPROT_* number (default 3, `boot`, as `ip route add`). */
  protocol?: number;
}

/** A route as the kernel reports it. */
export interface Route {
  family: 4 | 6;
  table: number;
  /** `default` or a CIDR (`10.0.0.0/24`, `10.0.0.1/32`). */
  dst: string;
  gateway?: string;
  /** Output link index. */
  oif?: number;
  src?: string;
  metric?: number;
  protocol: number;
  scope: Scope | number;
  type: RouteType | number;
}

/** Neighbour (ARP/NDP) states. */
export type NeighbourState =
  | 'incomplete'
  | 'reachable'
  | 'stale'
  | 'delay'
  | 'probe'
  | 'failed'
  | 'noarp'
  | 'permanent';

export interface Neighbour {
  family: 4 | 6;
  index: number;
  address: string;
  mac?: string;
  state: NeighbourState[];
}

export interface NeighbourSpec {
  link: LinkRef;
  address: string;
  mac: string;
  /** Default `permanent`. */
  state?: NeighbourState;
  mode?: 'create' | 'replace';
}

/** Event groups for `subscribe`. */
export type EventGroup = 'link' | 'addr' | 'route' | 'neigh';

/** A change the kernel announced. `overrun`: events were lost (ENOBUFS); re-read what you track. */
export type NetlinkEvent =
  | { type: 'link'; action: 'new' | 'del'; link: Link }
  | { type: 'addr'; action: 'new' | 'del'; address: Address }
  | { type: 'route'; action: 'new' | 'del'; route: Route }
  | { type: 'neigh'; action: 'new' | 'del'; neighbour: Neighbour }
  | { type: 'overrun' };
