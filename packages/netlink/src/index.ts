/**
 * `@tsc/netlink`: rtnetlink over raw NETLINK_ROUTE sockets through FFI — links (veth, bridge,
 * dummy, macvlan, ipvlan, vlan), addresses, routes, neighbours and events — with handles bound
 * to a network namespace.
 *
 * @example
 * import { openNetlink } from '@tsc/netlink';
 * const nl = openNetlink({ netns: { pid: 1234 } });
 * await nl.linkSet('lo', { up: true });
 * nl.close();
 *
 * @packageDocumentation
 */
export { isNetlinkError, NetlinkError, type NetlinkErrorCode, type NetlinkErrorDetails } from './errors.js';
export type { SubscribeOptions, Subscription } from './events.js';
export { NetlinkHandle, type OpenOptions, openNetlink } from './handle.js';
export { formatIp, formatMac, parseCidr, parseIp, parseMac } from './internal/ip.js';
export { describeNetns, inNetns, type NetnsRef } from './netns.js';
export type * from './types.js';
