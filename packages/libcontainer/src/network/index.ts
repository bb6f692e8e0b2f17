/**
 * Container networks: bridge (veth + IPAM + NAT + published ports), none, host and
 * container:<id> modes, the name files, link environment variables, teardown and gc.
 * See docs/NETWORK.md.
 */
export {
  attachNetwork,
  DEFAULT_BRIDGE,
  DEFAULT_NFT_TABLE,
  DEFAULT_SUBNET,
  detachNetwork,
  gcNetworks,
  hostVethName,
  linkEnv,
  parseNetworkMode,
  readAttachment,
  removeNetwork,
  resolveNetworkMode,
} from './attach.js';
export { hostsFile, networkFilePaths, prepareNetworkFiles, resolvConf } from './files.js';
export { runPortProxy } from './proxy-main.mjs';
export { formatPublish, parseExpose, parsePublish } from './publish.js';
export type {
  AttachOptions,
  BridgeNetworkOptions,
  ContainerLink,
  ExposedPort,
  GcReport,
  HostEntry,
  NetworkAttachment,
  NetworkMode,
  PortMapping,
  PortProtocol,
} from './types.js';
