/** Public types of container networking. */

/**
 * How a container is networked:
 * - `bridge` (default): a veth pair to a host bridge, an address from the bridge's pool, NAT;
 * - `none`: its own namespace with only `lo` (up);
 * - `host`: the host's namespace (nothing to set up);
 * - `container:<id>`: the namespace of another container (the caller joins it; see
 *   {@link resolveNetworkMode}).
 */
export type NetworkMode = 'bridge' | 'none' | 'host' | `container:${string}`;

export type PortProtocol = 'tcp' | 'udp';

/** A published port: `[HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTO]`. */
export interface PortMapping {
  /** The host address to listen on; absent: every address. IPv4 only. */
  hostIp?: string;
  hostPort: number;
  containerPort: number;
  protocol: PortProtocol;
}

/** A port the container offers to linked containers (Docker's EXPOSE). */
export interface ExposedPort {
  port: number;
  protocol: PortProtocol;
}

/** `--link other:alias`. */
export interface ContainerLink {
  /** The other container's id. */
  id: string;
  /** The name this container knows it by (default: its id). */
  alias?: string;
}

/** A `--add-host name:ip` entry. */
export interface HostEntry {
  host: string;
  ip: string;
}

/** Where a bridge network lives; every field has a default. */
export interface BridgeNetworkOptions {
  /** Bridge name (default `nsinit0`). */
  bridge?: string;
  /** IPv4 subnet (default `172.29.0.0/16`); the first host address is the gateway. */
  subnet?: string;
  /** The nftables table (family ip) holding this runtime's rules (default `nsinit`). */
  nftTable?: string;
}

/** Options of {@link attachNetwork}. */
export interface AttachOptions extends BridgeNetworkOptions {
  /** The state root of the containers (as given to Container.create). */
  root: string;
  /** The container's id; its state directory `<root>/<id>` must exist. */
  id: string;
  /** The host pid of the container's init; its network namespace is configured. */
  pid: number;
  /** Default `bridge`. */
  mode?: NetworkMode;
  publish?: readonly PortMapping[];
  expose?: readonly ExposedPort[];
  links?: readonly ContainerLink[];
  /** Nameservers for resolv.conf (default: the host's, minus loopback ones). */
  dns?: readonly string[];
  dnsSearch?: readonly string[];
  dnsOptions?: readonly string[];
  addHosts?: readonly HostEntry[];
  /** The container's host name (default: its id, cut to 63 bytes). */
  hostname?: string;
  /**
   * Write `hosts`, `hostname` and `resolv.conf` into this directory, in place (the caller made
   * them with {@link prepareNetworkFiles} and bind-mounted them when creating the container).
   */
  filesDir?: string;
  /** MTU of eth0 (default: the bridge's). */
  mtu?: number;
  /** Run the userland proxy for published ports (default true). */
  userlandProxy?: boolean;
  /**
   * How to start the proxy: argv prefix, to which the proxy's arguments are appended (default:
   * `[process.execPath, <libcontainer dist>/network/proxy-main.mjs]`). A bundled CLI passes
   * its own hidden `proxy` command here (which calls {@link runPortProxy}).
   */
  proxyCommand?: readonly string[];
  /** Set net.ipv4.ip_forward to 1 when it is 0 (default true): needed for outbound NAT and DNAT. */
  ipForward?: boolean;
}

/** What {@link attachNetwork} did; also stored as `<root>/<id>/network.json`. */
export interface NetworkAttachment {
  id: string;
  mode: NetworkMode;
  hostname: string;
  /** `container:<id>` mode: the network namespace the container shares. */
  netnsPath?: string;
  /** Bridge mode fields. */
  bridge?: string;
  subnet?: string;
  nftTable?: string;
  /** The container's address, without prefix. */
  ip?: string;
  prefixLength?: number;
  gateway?: string;
  mac?: string;
  /** Always `eth0` in bridge mode. */
  ifname?: string;
  /** The host end of the veth pair (`veth` + 8 hex digits of sha256(id)). */
  hostVeth?: string;
  ports: PortMapping[];
  expose: ExposedPort[];
  /** The userland proxy's pid and start time (field 22 of /proc/<pid>/stat). */
  proxy?: { pid: number; startTime: string };
  /** The files written, when `filesDir` was given. */
  files?: { hosts: string; hostname: string; resolvConf: string };
  /** The hosts entries written for links: alias → ip. */
  links?: { id: string; alias: string; ip: string }[];
}

/** What {@link gcNetworks} removed. */
export interface GcReport {
  /** Leases of containers that are gone (their veth, rules and proxy went too). */
  leases: { bridge: string; id: string; ip: string }[];
  /** nftables rules that named a container without a lease. */
  rules: number;
  /** Host veths on our bridges that no lease owns. */
  veths: string[];
}
