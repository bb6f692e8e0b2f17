/**
 * @tsc/registry-client — an OCI distribution / Docker Registry HTTP API v2 client: pull into
 * and push from a `@tsc/image` ContentStore with streaming verification, resumable and retried
 * downloads, bounded concurrency, cross-repository mounts, and anonymous, Basic or Bearer auth
 * with Docker's config.json.
 *
 * @example
 * import { ContentStore, pull, resolveImage } from '@tsc/registry-client';
 * const store = await ContentStore.open('/var/lib/nsinit/content');
 * const r = await pull(store, 'busybox', { platform: 'linux/arm64' });
 * const img = await resolveImage(store, 'busybox', 'linux/arm64');
 */

// The image model, so that users (the CLI) need one dependency.
export {
  ContentStore,
  type Descriptor,
  type Digest,
  defaultDataRoot,
  familiarName,
  formatPlatform,
  hostPlatform,
  type ImageConfig,
  ImageError,
  isImageError,
  type Manifest,
  openImageStore,
  type Platform,
  parsePlatform,
  parseReference,
  type Reference,
  type ResolvedImage,
  resolveImage,
  withStoreLease,
} from '@tsc/image';
export {
  authKey,
  type Challenge,
  type CredentialSource,
  type Credentials,
  DOCKER_HUB_AUTH_KEY,
  dockerConfigPath,
  dockerCredentials,
  parseWWWAuthenticate,
  removeDockerCredentials,
  storeDockerCredentials,
} from './auth.js';
export { type ClientOptions, isLoopbackHost, RegistryClient, type RetryOptions } from './client.js';
export {
  isRegistryError,
  RegistryError,
  type RegistryErrorCode,
  type RegistryErrorDetail,
  safeUrl,
} from './errors.js';
export { checkLogin } from './login.js';
export {
  type BlobSinkInfo,
  downloadBlob,
  type FetchedManifest,
  fetchManifest,
  getManifest,
  listTags,
  MANIFEST_ACCEPT,
  MAX_CONFIG_SIZE,
  MAX_MANIFEST_SIZE,
  type OperationOptions,
  type PullOptions,
  type PullProgress,
  type PullResult,
  pull,
  repositoryScope,
} from './pull.js';
export { type PushOptions, type PushProgress, type PushResult, push } from './push.js';
