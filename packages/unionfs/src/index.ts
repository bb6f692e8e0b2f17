/**
 * @tsc/unionfs — layered copy-on-write root filesystems: a hardened OCI layer unpacker, a
 * content-addressed layer store (overlay, aufs, btrfs, copy drivers), and a container's changes
 * as a `docker diff` list or as a new layer.
 *
 * @example
 * import { LayerStore } from '@tsc/unionfs';
 * const store = await LayerStore.open({ root: '/var/lib/nsinit' });
 * await store.unpackImage({ content, layers: manifest.layers, diffIDs: config.rootfs.diff_ids, owner: 'image:…' });
 * const { rootfs } = await store.prepare('c1', config.rootfs.diff_ids);
 */
export { type Change, inLowers } from './changes.js';
export { isUnionfsError, UnionfsError, type UnionfsErrorCode } from './errors.js';
export { hasLowerdirPlus, OVERLAY_MAX_LAYERS } from './mounts.js';
export {
  type ChainID,
  chainIDs,
  DEFAULT_INIT_LAYER,
  type DriverName,
  type InitLayer,
  type LayerInfo,
  LayerStore,
  type LayerStoreOptions,
  type PreparedContainer,
  type PrepareOptions,
  type StoreUsage,
  type UnpackRequest,
  type UnpackResult,
} from './store.js';
export { type EntryType, type TarEntry, TarParser, type TarSink } from './tar.js';
export {
  cleanPath,
  type UnpackLayerOptions,
  type UnpackLayerResult,
  unpackLayer,
  type WhiteoutFormat,
} from './unpack.js';
