export { type LoadedImage, type LoadOptions, loadImages } from './load.js';
export {
  type ArchiveFormat,
  CONTAINERD_NAME_ANNOTATION,
  type SaveOptions,
  saveImages,
  saveImagesToFile,
} from './save.js';
export { archivePath, readTar, type TarEntry, TarWriter } from './tar.js';
