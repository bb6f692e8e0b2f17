/** Running images: an OCI image config as a runtime config, the image's user, the bundle. */
export {
  createImageBundle,
  DEFAULT_PATH,
  ImageAnnotation,
  type ImageOverrides,
  type ImageSpecOptions,
  type ImageSpecResult,
  type ImageVolumeMode,
  imageSpec,
} from './spec.js';
export {
  type ExecUser,
  parseGroup,
  parsePasswd,
  readRootfsFile,
  resolveImageUser,
  resolveUserSpec,
} from './user.js';
