/**
 * An OCI image config turned into a runtime config (`config.json`), with Docker's rules for
 * `docker run IMAGE [CMD…]` and the annotations of the image-spec's conversion document.
 */
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { isAbsolute, join, posix, resolve } from 'node:path';
import type { ImageConfig } from '@tsc/image';
import { ContainerError } from '../errors.js';
import type { Mount, RuntimeConfig } from '../spec/config.js';
import { defaultSpec } from '../spec/default.js';
import { parseConfig } from '../spec/parse.js';
import { type ExecUser, resolveImageUser } from './user.js';

/** The `PATH` Docker gives a container whose image sets none. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Annotations of the image-spec's "conversion to runtime config" section. */
export const ImageAnnotation = {
  os: 'org.opencontainers.image.os',
  architecture: 'org.opencontainers.image.architecture',
  variant: 'org.opencontainers.image.variant',
  author: 'org.opencontainers.image.author',
  created: 'org.opencontainers.image.created',
  stopSignal: 'org.opencontainers.image.stopSignal',
  exposedPorts: 'org.opencontainers.image.exposedPorts',
  /** The image ID (config digest) or name, when the caller gives it. */
  ref: 'org.opencontainers.image.ref.name',
} as const;

/** What a user said on the command line, over the image's config. */
export interface ImageOverrides {
  /** `--entrypoint`: replaces the image's Entrypoint and drops its Cmd; `[]` clears it. */
  entrypoint?: string[] | undefined;
  /** The arguments after the image name: replace the image's Cmd (when not empty). */
  cmd?: string[] | undefined;
  /** `-e K=V`, or `-e K` to take K from this process's environment (dropped when unset there). */
  env?: string[] | undefined;
  /** `-w`: absolute. */
  workdir?: string | undefined;
  /** `-u`: `name`, `uid`, `uid:gid`, `name:group`… */
  user?: string | undefined;
  hostname?: string | undefined;
  /** Mount the rootfs read-only (default read-write, as Docker). */
  readonly?: boolean | undefined;
  /** Give the process a terminal (also sets TERM=xterm when the env has none). */
  terminal?: boolean | undefined;
}

/**
 * What to do with the image's `Volumes`:
 * - `ignore` (default): nothing; writes go to the container's rootfs (podman's `--image-volume ignore`);
 * - `tmpfs`: an empty tmpfs on each (podman's `--image-volume tmpfs`), so they are never in a commit.
 */
export type ImageVolumeMode = 'ignore' | 'tmpfs';

export interface ImageSpecOptions {
  config: ImageConfig;
  /** The mounted rootfs: `root.path`, and where `/etc/passwd` and `/etc/group` are read from. */
  rootfs: string;
  overrides?: ImageOverrides | undefined;
  /** The config to start from; default {@link defaultSpec}() (which the caller may have made rootless). */
  base?: RuntimeConfig | undefined;
  /** The image's name as the user gave it, for messages and the `ref.name` annotation. */
  image?: string | undefined;
  volumes?: ImageVolumeMode | undefined;
  /** The environment `-e K` takes values from; default `process.env`. */
  hostEnv?: NodeJS.ProcessEnv | undefined;
}

export interface ImageSpecResult {
  spec: RuntimeConfig;
  /** The user the process runs as, resolved. */
  user: ExecUser;
  /** `80/tcp`, … (Docker publishes nothing by itself; networks decide). */
  exposedPorts: string[];
  /** The image's volume paths (see {@link ImageVolumeMode}). */
  volumes: string[];
  stopSignal?: string | undefined;
}

function envKey(e: string): string {
  const i = e.indexOf('=');
  return i < 0 ? e : e.slice(0, i);
}

/** Sets or replaces `K=V` in a list (Docker's ReplaceOrAppendEnvValues). */
function setEnv(list: string[], entry: string): void {
  const k = envKey(entry);
  const i = list.findIndex((e) => envKey(e) === k);
  if (i >= 0) list[i] = entry;
  else list.push(entry);
}

/**
 * Builds the runtime config for running an image: args from Entrypoint and Cmd with Docker's
 * override rules, env (image, then `-e`; PATH, HOSTNAME, HOME and with a terminal TERM filled
 * in when missing), cwd, the user resolved in the image's files, labels and the image-spec
 * annotations, read-only root and terminal. Everything else comes from `base`.
 * @throws ContainerError `InvalidArgument`: `image "busybox" has no command: give one after the image name`,
 * an unknown user, a relative workdir.
 */
export function imageSpec(opts: ImageSpecOptions): ImageSpecResult {
  const { config: image, rootfs } = opts;
  const o = opts.overrides ?? {};
  const c = image.config ?? {};
  const what = opts.image !== undefined ? `image "${opts.image}"` : 'the image';
  const spec: RuntimeConfig = structuredClone(opts.base ?? defaultSpec());

  // Args: --entrypoint resets the image's Cmd; arguments replace Cmd.
  const cmdGiven = o.cmd !== undefined && o.cmd.length > 0;
  let entrypoint: string[];
  let cmd: string[];
  if (o.entrypoint !== undefined) {
    entrypoint = o.entrypoint.filter((a, i) => !(i === 0 && a === '' && o.entrypoint?.length === 1));
    cmd = cmdGiven ? (o.cmd as string[]) : [];
  } else {
    entrypoint = c.Entrypoint ?? [];
    cmd = cmdGiven ? (o.cmd as string[]) : (c.Cmd ?? []);
  }
  const args = [...entrypoint, ...cmd];
  if (args.length === 0)
    throw new ContainerError('InvalidArgument', `${what} has no command: give one after the image name`);

  // Env.
  const env: string[] = [];
  for (const e of c.Env ?? []) setEnv(env, e);
  const hostEnv = opts.hostEnv ?? process.env;
  for (const e of o.env ?? []) {
    if (e.includes('=')) {
      if (e.startsWith('=')) throw new ContainerError('InvalidArgument', `env "${e}": the name is empty`);
      setEnv(env, e);
    } else if (e !== '') {
      const v = hostEnv[e];
      if (v !== undefined) setEnv(env, `${e}=${v}`);
    }
  }
  const has = (k: string) => env.some((e) => envKey(e) === k);
  const hostname = o.hostname ?? spec.hostname;
  const front: string[] = [];
  if (!has('PATH')) front.push(`PATH=${DEFAULT_PATH}`);
  if (hostname !== undefined && !has('HOSTNAME')) front.push(`HOSTNAME=${hostname}`);
  if (o.terminal && !has('TERM')) front.push('TERM=xterm');

  // cwd.
  const cwd = o.workdir ?? (c.WorkingDir || '/');
  if (!posix.isAbsolute(cwd))
    throw new ContainerError(
      'InvalidArgument',
      `working directory "${cwd}" must be absolute${o.workdir === undefined ? ` (${what} sets it)` : ''}`,
    );

  // User.
  const userSpec = o.user ?? c.User ?? '';
  let user: ExecUser;
  try {
    user = resolveImageUser(rootfs, userSpec);
  } catch (e) {
    if (e instanceof ContainerError)
      throw new ContainerError('InvalidArgument', `${what}: ${e.message}`, { cause: e });
    throw e;
  }
  const home = has('HOME') ? [] : [`HOME=${user.home}`];

  spec.process = {
    ...(spec.process ?? { user: { uid: 0, gid: 0 }, cwd: '/' }),
    terminal: o.terminal === true,
    args,
    env: [...front, ...env, ...home],
    cwd: posix.normalize(cwd),
    user: {
      ...(spec.process?.user?.umask !== undefined ? { umask: spec.process.user.umask } : {}),
      uid: user.uid,
      gid: user.gid,
      ...(user.additionalGids.length > 0 ? { additionalGids: user.additionalGids } : {}),
    },
  };
  spec.root = { path: rootfs, readonly: o.readonly === true };
  if (hostname !== undefined) spec.hostname = hostname;

  // Annotations: labels, then the image-spec's (which win over labels of the same name).
  const annotations: Record<string, string> = { ...(spec.annotations ?? {}), ...(c.Labels ?? {}) };
  annotations[ImageAnnotation.os] = image.os;
  annotations[ImageAnnotation.architecture] = image.architecture;
  if (image.variant) annotations[ImageAnnotation.variant] = image.variant;
  if (image.author) annotations[ImageAnnotation.author] = image.author;
  if (image.created) annotations[ImageAnnotation.created] = image.created;
  const exposedPorts = Object.keys(c.ExposedPorts ?? {}).sort();
  if (exposedPorts.length > 0) annotations[ImageAnnotation.exposedPorts] = exposedPorts.join(',');
  if (c.StopSignal) annotations[ImageAnnotation.stopSignal] = c.StopSignal;
  if (opts.image !== undefined) annotations[ImageAnnotation.ref] = opts.image;
  spec.annotations = annotations;

  // Volumes.
  const volumes = Object.keys(c.Volumes ?? {}).sort();
  if ((opts.volumes ?? 'ignore') === 'tmpfs') {
    const mounts: Mount[] = [...(spec.mounts ?? [])];
    for (const v of volumes) {
      const destination = posix.resolve('/', v);
      if (mounts.some((m) => posix.normalize(m.destination) === destination)) continue;
      mounts.push({
        destination,
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['rw', 'nosuid', 'nodev', 'mode=755'],
      });
    }
    spec.mounts = mounts;
  }
  return { spec, user, exposedPorts, volumes, stopSignal: c.StopSignal };
}

/**
 * Writes `<bundleDir>/config.json` (validated; atomically: a temporary file renamed into place)
 * with `root.path` the mounted rootfs. Creates `bundleDir` if needed.
 * @throws ConfigError when the spec is invalid; ContainerError `System` when writing fails.
 */
export async function createImageBundle(opts: {
  bundleDir: string;
  rootfs: string;
  spec: RuntimeConfig;
}): Promise<string> {
  const rootfs = isAbsolute(opts.rootfs) ? opts.rootfs : resolve(opts.rootfs);
  const spec: RuntimeConfig = { ...opts.spec, root: { ...(opts.spec.root ?? {}), path: rootfs } };
  parseConfig(spec, { source: `${opts.bundleDir}/config.json` });
  const file = join(opts.bundleDir, 'config.json');
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    await mkdir(opts.bundleDir, { recursive: true, mode: 0o700 });
    const h = await open(tmp, 'wx', 0o600);
    try {
      await h.writeFile(`${JSON.stringify(spec, null, '\t')}\n`);
      await h.sync();
    } finally {
      await h.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new ContainerError('System', `writing ${file}: ${(e as Error).message}`, { cause: e });
  }
  return file;
}
