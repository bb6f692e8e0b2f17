/**
 * @tsc/libcontainer — create, start, wait for, signal and delete OCI
 * containers from a runtime-spec bundle.
 *
 * @example
 * import { Container } from '@tsc/libcontainer';
 * const { container, exited } = await Container.run({ id: 'c1', bundle: '/srv/busybox' });
 * const { status } = await exited;   // the container process's exit status
 * await container.delete();
 *
 * Container networks (bridge, veth, IPAM, NAT, ports) are `@tsc/libcontainer/network`, running
 * images (image config → runtime config, the image's user) `@tsc/libcontainer/image`: subpaths,
 * so a program that only runs bundles does not load netlink, nftables or the image store.
 */

export {
  type ApplyResult,
  type CgroupStats,
  type OomEvent,
  type RuncStats,
  runcEventJSON,
  runcStatsJSON,
  toRuncStats,
} from '@tsc/cgroups';
export { defaultProfile as defaultSeccompProfile, nativeArch } from '@tsc/seccomp';
export type { ExitInfo } from '@tsc/syscall';
export {
  Container,
  type ContainerState,
  type ContainerStatus,
  type CreateOptions,
  type ExecedProcess,
  type ExecOptions,
  loadBundleConfig,
  OCI_VERSION,
  type RunningContainer,
} from './container.js';
export { ContainerError, type ContainerErrorCode, isContainerError } from './errors.js';
export { parseResources, parseResourcesJSON } from './resources.js';
export * from './spec/index.js';
export { DEFAULT_ROOT, defaultRoot, validateId } from './state.js';
export {
  attachConsole,
  type ConsoleAttachment,
  type ConsoleSize,
  getConsoleSize,
  makeRaw,
  setConsoleSize,
} from './terminal.js';
