/**
 * Containers run from images (`nsinit run --image`): the composition of the image store
 * (@tsc/image), the layer store (@tsc/unionfs), the image → runtime config conversion and the
 * container networks (@tsc/libcontainer), and the ordinary OCI lifecycle.
 *
 * On disk, per container `ID`:
 * - `<dataRoot>/containers/ID/`: its bundle (`config.json`, the `hosts`, `hostname` and
 *   `resolv.conf` bind-mounted into it) and `image.json`, the record of what it was made from;
 * - `<dataRoot>/layers/<driver>/containers/ID/`: its writable layer and rootfs mount (@tsc/unionfs);
 * - `<root>/ID/`: its ordinary container state (@tsc/libcontainer), with `network.json`.
 *
 * `image.json` is written before anything else is made, so a crash at any later point leaves
 * something {@link removeImageContainer} (called by `delete` and `--rm`) can clean up from.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import {
  addUnnamed,
  applyChanges,
  type Digest,
  Digester,
  hostPlatform,
  isImageError,
  MediaType,
  normalizeName,
  openImageStore,
  parsePlatform,
  type ResolvedImage,
  resolveImage,
  withStoreLease,
} from '@tsc/image';
import { Container, defaultSpec, type RuntimeConfig, validateId } from '@tsc/libcontainer';
import { createImageBundle, imageSpec } from '@tsc/libcontainer/image';
import {
  type ContainerLink,
  detachNetwork,
  type HostEntry,
  linkEnv,
  type NetworkMode,
  type PortMapping,
  parseNetworkMode,
  parsePublish,
  prepareNetworkFiles,
  readAttachment,
  resolveNetworkMode,
} from '@tsc/libcontainer/network';
import { LayerStore, OVERLAY_MAX_LAYERS } from '@tsc/unionfs';
import { UsageError } from './context.js';
import { hasImageContainer, imageContainerDir } from './image-container-dir.js';

export { hasImageContainer, imageContainerDir };

/** What `image.json` records about a container made from an image. */
export interface ImageContainerRecord {
  id: string;
  /** The image as the user named it. */
  image: string;
  /** The image ID (config digest) it runs on. */
  imageId: Digest;
  /** The full name it was found by, if any. */
  ref?: string | undefined;
  /** Remove the container and its writable layer when it exits. */
  rm: boolean;
  network: NetworkMode;
  created: string;
}

/** The `run --image` flags, parsed and checked. */
export interface ImageRunRequest {
  image: string;
  name?: string | undefined;
  cmd: string[];
  rm: boolean;
  network: NetworkMode;
  env: string[];
  workdir?: string | undefined;
  user?: string | undefined;
  entrypoint?: string[] | undefined;
  publish: PortMapping[];
  links: ContainerLink[];
  dns: string[];
  addHosts: HostEntry[];
  hostname?: string | undefined;
  readonly: boolean;
  terminal: boolean;
  platform?: string | undefined;
}

/** A prepared image container: its bundle exists and its rootfs is mounted; not yet created. */
export interface PreparedImageContainer {
  id: string;
  bundle: string;
  record: ImageContainerRecord;
  image: ResolvedImage;
  spec: RuntimeConfig;
  exposedPorts: string[];
  /** Where `hosts`, `hostname` and `resolv.conf` are (bridge and none modes). */
  filesDir?: string | undefined;
}

/** An image ID or ID prefix (which no registry can be asked for). */
function isImageIdLike(s: string): boolean {
  return /^(sha256:)?[0-9a-f]{4,64}$/.test(s);
}

/** The record of an image container, or undefined when `id` was not made from an image. */
export function readImageContainer(dataRoot: string, id: string): ImageContainerRecord | undefined {
  const file = join(imageContainerDir(dataRoot, id), 'image.json');
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ImageContainerRecord;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (e instanceof SyntaxError)
      return { id, image: '?', imageId: 'sha256:' as Digest, rm: false, network: 'none', created: '' };
    throw e;
  }
}

async function writeJSONAtomic(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  const h = await open(tmp, 'w', 0o600);
  try {
    await h.writeFile(`${JSON.stringify(value, null, 2)}\n`);
    await h.sync();
  } finally {
    await h.close();
  }
  await rename(tmp, file);
}

/** A fresh container id like Docker's short ids: 12 hex digits. */
export function newContainerId(): string {
  return randomBytes(6).toString('hex');
}

function parseHostEntry(s: string): HostEntry {
  const i = s.indexOf(':');
  const host = s.slice(0, i);
  const ip = s.slice(i + 1);
  if (i <= 0 || !ip || !/^[A-Za-z0-9.-]+$/.test(host))
    throw new UsageError(`--add-host "${s}": expected HOST:IP, e.g. db:172.29.0.5`);
  return { host, ip };
}

function parseLink(s: string): ContainerLink {
  const [id, alias, extra] = s.split(':');
  if (!id || extra !== undefined || alias === '')
    throw new UsageError(`--link "${s}": expected NAME or NAME:ALIAS`);
  validateId(id);
  return alias === undefined ? { id } : { id, alias };
}

/** Raw flags of `run --image`, as commander gives them. */
export interface ImageRunFlags {
  image: string;
  name?: string;
  rm?: boolean;
  network?: string;
  env?: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  publish?: string[];
  link?: string[];
  dns?: string[];
  addHost?: string[];
  hostname?: string;
  readOnly?: boolean;
  tty?: boolean;
  platform?: string;
}

/** Checks every flag before anything is made: a bad one is a one-line error naming it. */
export function parseImageRunFlags(f: ImageRunFlags, cmd: string[]): ImageRunRequest {
  if (f.name !== undefined) {
    try {
      validateId(f.name);
    } catch {
      throw new UsageError(`--name "${f.name}": use letters, digits, "_", "+", "-" and "."`);
    }
  }
  const network = parseNetworkMode(f.network ?? 'bridge');
  const publish = (f.publish ?? []).map((p) => parsePublish(p));
  if (publish.length > 0 && network !== 'bridge')
    throw new UsageError(`--publish needs the bridge network, not --network ${network}`);
  const links = (f.link ?? []).map(parseLink);
  if (links.length > 0 && network !== 'bridge')
    throw new UsageError(`--link needs the bridge network, not --network ${network}`);
  if (f.workdir !== undefined && !f.workdir.startsWith('/'))
    throw new UsageError(`--workdir "${f.workdir}": must be an absolute path`);
  if (f.platform !== undefined) parsePlatform(f.platform);
  return {
    image: f.image,
    name: f.name,
    cmd,
    rm: f.rm === true,
    network,
    env: f.env ?? [],
    workdir: f.workdir,
    user: f.user,
    entrypoint: f.entrypoint === undefined ? undefined : f.entrypoint === '' ? [] : [f.entrypoint],
    publish,
    links,
    dns: f.dns ?? [],
    addHosts: (f.addHost ?? []).map(parseHostEntry),
    hostname: f.hostname,
    readonly: f.readOnly === true,
    terminal: f.tty === true,
    platform: f.platform,
  };
}

/**
 * Resolves the image, unpacks its layers (once), makes the writable layer and mounts the rootfs,
 * and writes the bundle. On failure everything made so far is removed again.
 */
export async function prepareImageContainer(
  o: { root: string; dataRoot: string },
  req: ImageRunRequest,
  /** Called when the store lacks the image (named, not by ID): e.g. pull it; it is then looked up again. */
  onMissing?: () => Promise<void>,
): Promise<PreparedImageContainer> {
  const id = req.name ?? newContainerId();
  const dir = imageContainerDir(o.dataRoot, id);
  if (existsSync(join(o.root, id)))
    throw new UsageError(`container name "${id}" is already in use: delete it first (nsinit delete ${id})`);
  // Before anything is made: the image, and the other container of --network container:ID.
  const netns = resolveNetworkMode(o.root, req.network);
  const linkVars = req.links.length
    ? Object.entries(linkEnv({ root: o.root, name: id, links: req.links })).map(([k, v]) => `${k}=${v}`)
    : [];
  const store = await openImageStore(o.dataRoot);
  const platform = req.platform ? parsePlatform(req.platform) : undefined;
  let image: ResolvedImage;
  try {
    image = await resolveImage(store, req.image, platform);
  } catch (e) {
    if (!onMissing || !(isImageError(e) && e.code === 'NotFound') || isImageIdLike(req.image)) throw e;
    await onMissing();
    image = await resolveImage(store, req.image, platform);
  }
  const layers = await LayerStore.open({ root: o.dataRoot });
  await layers.unpackImage({
    content: store,
    layers: image.manifest.layers,
    diffIDs: image.config.rootfs.diff_ids,
    owner: `image:${image.id}`,
  });

  if (existsSync(dir)) await removeImageContainer({ ...o, id }); // remains of a crashed run
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const record: ImageContainerRecord = {
    id,
    image: req.image,
    imageId: image.id,
    ref: image.ref,
    rm: req.rm,
    network: req.network,
    created: new Date().toISOString(),
  };
  try {
    await writeJSONAtomic(join(dir, 'image.json'), record);
    // Docker's init layer of mount points (/proc, /sys, /etc/hosts…) between the image and the
    // writable layer, so diff and commit show only the container's own changes. An image at
    // overlay's limit of lower layers has no room for it: its mount points go to the writable
    // layer (and show in diff).
    const diffIDs = image.config.rootfs.diff_ids;
    const init = diffIDs.length < OVERLAY_MAX_LAYERS;
    const prepared = await layers.prepare(id, diffIDs, { volatile: req.rm, init });
    const hostname = (req.hostname ?? id).slice(0, 63);
    const { spec, exposedPorts } = imageSpec({
      config: image.config,
      rootfs: prepared.rootfs,
      image: req.image,
      base: defaultSpec(),
      overrides: {
        cmd: req.cmd,
        env: [...linkVars, ...req.env],
        hostname,
        readonly: req.readonly,
        terminal: req.terminal,
        ...(req.entrypoint !== undefined ? { entrypoint: req.entrypoint } : {}),
        ...(req.workdir !== undefined ? { workdir: req.workdir } : {}),
        ...(req.user !== undefined ? { user: req.user } : {}),
      },
    });
    const linux = spec.linux ?? {};
    spec.linux = linux;
    const others = (linux.namespaces ?? []).filter((n) => n.type !== 'network');
    if (netns.newNetns) others.push({ type: 'network' });
    else if (netns.netnsPath) others.push({ type: 'network', path: netns.netnsPath });
    linux.namespaces = others;
    let filesDir: string | undefined;
    if (req.network !== 'host') {
      // Filled in by attachNetwork once the container's namespaces exist; bind-mounted now.
      filesDir = dir;
      const files = prepareNetworkFiles(dir);
      const binds = [
        { destination: '/etc/hosts', source: files.hosts },
        { destination: '/etc/hostname', source: files.hostname },
        { destination: '/etc/resolv.conf', source: files.resolvConf },
      ];
      spec.mounts = [
        ...(spec.mounts ?? []).filter((m) => !binds.some((b) => b.destination === m.destination)),
        ...binds.map((b) => ({ ...b, type: 'bind', options: ['rbind', 'rprivate'] })),
      ];
    }
    await createImageBundle({ bundleDir: dir, rootfs: prepared.rootfs, spec });
    return { id, bundle: dir, record, image, spec, exposedPorts, filesDir };
  } catch (e) {
    await removeImageContainer({ ...o, id }).catch(() => {});
    throw e;
  }
}

/**
 * Removes what an image container has beyond its OCI state: its network (veth, address lease,
 * rules, port proxy), its writable layer and rootfs mount, and its bundle. Idempotent; works
 * from disk alone after a crash. The caller deletes the OCI container first.
 */
export async function removeImageContainer(o: { root: string; dataRoot: string; id: string }): Promise<void> {
  const dir = imageContainerDir(o.dataRoot, o.id);
  await detachNetwork({ root: o.root, id: o.id });
  const layers = await LayerStore.open({ root: o.dataRoot });
  await layers.remove(o.id);
  await rm(dir, { recursive: true, force: true });
}

/**
 * `inspect` of a container: its OCI state, and for a container made from an image what Docker
 * shows too: the image, its exposed ports, and the network (address, gateway, MAC, published ports).
 */
export function inspectContainer(o: { root: string; dataRoot: string }, id: string): Record<string, unknown> {
  const state = Container.load(id, o.root).state();
  const out: Record<string, unknown> = { ...state };
  const rec = readImageContainer(o.dataRoot, id);
  if (rec) {
    out.Image = rec.imageId;
    out.ImageName = rec.ref ?? rec.image;
    out.AutoRemove = rec.rm;
  }
  const a = readAttachment(o.root, id);
  if (a) {
    const ports: Record<string, { HostIp: string; HostPort: string }[] | null> = {};
    for (const e of a.expose) ports[`${e.port}/${e.protocol}`] = null;
    for (const p of a.ports) {
      const key = `${p.containerPort}/${p.protocol}`;
      const list = ports[key] ?? [];
      list.push({ HostIp: p.hostIp ?? '0.0.0.0', HostPort: String(p.hostPort) });
      ports[key] = list;
    }
    out.Config = {
      Hostname: a.hostname,
      ExposedPorts: Object.fromEntries(a.expose.map((e) => [`${e.port}/${e.protocol}`, {}])),
    };
    out.NetworkSettings = {
      NetworkMode: a.mode,
      Bridge: a.bridge ?? '',
      IPAddress: a.ip ?? '',
      IPPrefixLen: a.prefixLength ?? 0,
      Gateway: a.gateway ?? '',
      MacAddress: a.mac ?? '',
      Ports: ports,
    };
  }
  return out;
}

/**
 * `nsinit import`: a root filesystem tarball (plain or gzip) as a one-layer image in the store:
 * the layer stored gzip'd, its diffID computed while streaming, a config (host platform, the
 * `--change` instructions, one history entry) and an OCI manifest; named when `ref` is given.
 * Returns the image ID.
 */
export async function importTarball(
  dataRoot: string,
  input: string | NodeJS.ReadableStream,
  o: { file: string; ref?: string; changes?: string[]; message?: string },
): Promise<Digest> {
  const store = await openImageStore(dataRoot);
  const changes = applyChanges({}, o.changes ?? []); // bad instructions fail before any work
  const tmp = join(dataRoot, 'tmp');
  await mkdir(tmp, { recursive: true });
  const base = join(tmp, `import-${process.pid}-${randomBytes(4).toString('hex')}`);
  const given = `${base}.in`;
  let spool = given;
  try {
    // 1. The input as given, to disk, hashed. 2. Its tar hashed (the diffID), and gzip'd when it
    // was plain (the layer blob is always gzip).
    const asGiven = new Digester();
    await pipeline(
      typeof input === 'string' ? createReadStream(input) : input,
      hashing(asGiven),
      createWriteStream(given),
    );
    if (asGiven.size === 0) throw new UsageError(`import ${o.file}: the input is empty`);
    const head = Buffer.alloc(2);
    const fh = await open(given, 'r');
    await fh.read(head, 0, 2, 0);
    await fh.close();
    const gzipped = head[0] === 0x1f && head[1] === 0x8b;
    const raw = new Digester();
    let layerDigest: Digest;
    if (gzipped) {
      await pipeline(
        createReadStream(given),
        createGunzip(),
        hashing(raw),
        new Writable({ write: (_c, _e, done) => done() }),
      );
      layerDigest = asGiven.digest();
    } else {
      const packed = new Digester();
      spool = `${base}.tar.gz`;
      await pipeline(
        createReadStream(given),
        hashing(raw),
        createGzip({ level: 6 }),
        hashing(packed),
        createWriteStream(spool),
      );
      layerDigest = packed.digest();
    }
    const diffID = raw.digest();
    const size = (await stat(spool)).size;
    return await withStoreLease(store, async () => {
      const w = await store.ingest({ digest: layerDigest, size });
      if (!w.present) {
        try {
          for await (const chunk of createReadStream(spool)) await w.write(chunk as Buffer);
          await w.commit();
        } catch (e) {
          await w.abort();
          throw e;
        }
      }
      const { architecture, os, variant } = hostPlatform();
      const created = new Date().toISOString();
      const config = await store.putJSON(
        {
          created,
          architecture,
          os,
          ...(variant ? { variant } : {}),
          config: changes,
          rootfs: { type: 'layers', diff_ids: [diffID] },
          history: [
            { created, created_by: `nsinit import ${o.file}`, ...(o.message ? { comment: o.message } : {}) },
          ],
        },
        MediaType.ociConfig,
      );
      const manifest = await store.putJSON(
        {
          schemaVersion: 2,
          mediaType: MediaType.ociManifest,
          config,
          layers: [{ mediaType: MediaType.ociLayerGzip, digest: layerDigest, size }],
        },
        MediaType.ociManifest,
      );
      if (o.ref !== undefined) await store.setRef(normalizeName(o.ref), manifest);
      else await addUnnamed(store, manifest);
      return config.digest;
    });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR')
      throw new UsageError(`import ${o.file}: not a valid gzip stream (${(e as Error).message})`);
    if (code === 'ENOENT' && o.file !== '-') throw new UsageError(`import ${o.file}: no such file`);
    throw e;
  } finally {
    await rm(given, { force: true });
    await rm(`${base}.tar.gz`, { force: true });
  }
}

/** A pass-through that feeds a digester. */
function hashing(d: Digester): Transform {
  return new Transform({
    transform(chunk: Buffer, _e, done) {
      d.update(chunk);
      done(null, chunk);
    },
  });
}
