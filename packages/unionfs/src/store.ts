/**
 * The layer store: each layer unpacked once, keyed by chain ID, reference-counted by owners
 * (images, containers), crash-safe and safe between processes; containers' writable layers and
 * their mounts.
 *
 * On disk, below `<root>/layers/<driver>/`:
 *
 *     lock                   flock: shared by unpack/prepare/remove/retain, exclusive by gc
 *     layers/<hex>/diff      the layer's tree (overlay, aufs: this layer only; copy, btrfs: merged)
 *     layers/<hex>/layer.json  written before the rename that makes the layer visible
 *     locks/<hex>.lock       flock: one unpack of a chain at a time, across processes
 *     tmp/<name>/            unpacks in progress, each flock'd by its process; a dir whose lock
 *                            is free belongs to a dead process and is deleted, never read
 *     refs/<owner>/<hex>     owner (e.g. `image:sha256:…`, `container:c1`) uses chain <hex>
 *     containers/<id>/       container.json, upper/, work/ (overlay), rootfs/ (the mount point)
 *     empty/                 the lower layer of an image without layers
 */
import {
  type BigIntStats,
  createReadStream,
  createWriteStream,
  constants as FS,
  mkdirSync,
  readFileSync,
  statfsSync,
} from 'node:fs';
import {
  chmod,
  chown,
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import {
  type ContentStore,
  type Descriptor,
  type Digest,
  Digester,
  digestOf,
  layerCompression,
  MediaType,
  parseDigest,
  splitDigest,
} from '@tsc/image';
import { closeFd, flock, isSysError } from '@tsc/syscall';
import { type Change, changesOf, inLowers, layerTar, overlayItems, treeItems } from './changes.js';
import { isUnionfsError, UnionfsError } from './errors.js';
import {
  bindSelf,
  btrfsSnapshot,
  btrfsSubvolCreate,
  btrfsSubvolDelete,
  isBtrfs,
  isMountPoint,
  mountAufs,
  mountOverlay,
  mountsUnder,
  unmount,
} from './mounts.js';
import { errCode, O, openat } from './sys.js';
import { TAR_END, tarHeader } from './tar.js';
import { copyTree } from './tree.js';
import { cleanPath, type UnpackLayerOptions, unpackLayer, type WhiteoutFormat } from './unpack.js';
import { unpackLayerInWorker } from './worker.js';

/** A storage driver. */
export type DriverName = 'overlay' | 'aufs' | 'btrfs' | 'copy';

/** The chain ID of a layer stack: identifies a layer together with everything below it. */
export type ChainID = Digest;

/** chainID(1) = diffID(1); chainID(n) = sha256(chainID(n-1) + " " + diffID(n)) (OCI image spec). */
export function chainIDs(diffIDs: readonly Digest[]): ChainID[] {
  const out: ChainID[] = [];
  for (const d of diffIDs) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : digestOf(`${prev} ${d}`));
  }
  return out;
}

/** A stored layer. */
export interface LayerInfo {
  chainID: ChainID;
  diffID: Digest;
  /** The chain below, or null for a base layer. */
  parent: ChainID | null;
  /** Number of layers in the chain (1 for a base layer). */
  depth: number;
  /** The blob it was unpacked from, and its media type. */
  digest: Digest | null;
  mediaType: string | null;
  /** Bytes of the uncompressed tar. */
  size: number;
  created: string;
  /** What could not be done when unpacking (rootless), see `UnpackLayerResult.skipped`. */
  skipped: string[];
}

export interface LayerStoreOptions {
  /** The data root; the store lives in `<root>/layers/<driver>/`. Default `/var/lib/nsinit`. */
  root?: string;
  /** Force a driver; default: the best available (overlay, then btrfs on btrfs, aufs, copy). */
  driver?: DriverName;
  /** Unpack without privileges (no chown, no device nodes); default: when not uid 0. */
  rootless?: boolean;
  /** Overlay only: which mount interface (the classic one exists for kernels before 6.8). */
  overlayApi?: 'auto' | 'fsconfig' | 'classic';
  /**
   * Flush each unpacked layer to disk (syncfs) before it becomes visible (default true). Without
   * it, a power loss can leave a visible layer with empty files.
   */
  durable?: boolean;
}

export interface UnpackRequest {
  /** The layer blob: a file path or a stream (a stream is destroyed unread if the layer exists). */
  blob: string | Readable;
  /** The layer's media type (decides the decompression). */
  mediaType: string;
  /** The blob's digest, verified while unpacking. */
  digest: Digest;
  /** The blob's size, verified too. */
  size?: number;
  /** The expected diffID (the image config's `rootfs.diff_ids[i]`): checked, and lets an existing layer be found without reading the blob. */
  diffID?: Digest;
  /** The chain ID of the layers below; absent for the base layer. */
  parent?: ChainID;
  /** Reference the layer for this owner in the same step (so a concurrent gc cannot take it). */
  owner?: string;
  signal?: AbortSignal;
  /** Compressed bytes read so far. */
  onProgress?: (bytes: number) => void;
}

export interface UnpackResult extends LayerInfo {
  /** False when the layer was already in the store. */
  unpacked: boolean;
  /**
   * Who checked the blob's digest for this unpack: the unpacker hashing what it read, or (see
   * `unpackImage`) the content store that committed it, for a blob file it vouches for.
   */
  blobVerifiedBy?: 'unpack' | 'content-store';
}

/**
 * Mount points a runtime needs in every root filesystem (Docker's `-init` layer): made only
 * where the image lacks them, in a layer between the image and the writable layer (overlay,
 * aufs) or recorded (copy, btrfs), so `diff` and `exportDiff` show only what the container did.
 */
export interface InitLayer {
  /** Directories, e.g. `proc`. */
  dirs?: readonly string[];
  /** Empty files (bind-mount targets), e.g. `etc/hosts`. */
  files?: readonly string[];
}

/** What `init: true` makes: Docker's init layer, without `.dockerenv`. */
export const DEFAULT_INIT_LAYER: InitLayer = {
  dirs: ['proc', 'sys', 'dev', 'dev/pts', 'dev/shm'],
  files: ['etc/hosts', 'etc/hostname', 'etc/resolv.conf', 'dev/console'],
};

export interface PrepareOptions {
  /** Mount the root filesystem read-only. */
  readonly?: boolean;
  /** An init layer of mount points (`true`: {@link DEFAULT_INIT_LAYER}). */
  init?: InitLayer | boolean;
  /**
   * A throwaway container: overlay's `volatile` (no syncs of the writable layer). After a crash
   * or reboot the writable layer is discarded when the container is prepared again.
   */
  volatile?: boolean;
}

export interface PreparedContainer {
  id: string;
  /** The root filesystem, an absolute path; a mount point that outlives this process. */
  rootfs: string;
  driver: DriverName;
  /** Chain IDs base→top of the image the container runs on. */
  chainIDs: ChainID[];
  readonly: boolean;
  volatile: boolean;
  /** For overlay, how it was mounted. */
  mountApi?: 'fsconfig' | 'classic';
}

interface ContainerRecord {
  id: string;
  driver: DriverName;
  chainIDs: ChainID[];
  readonly: boolean;
  volatile: boolean;
  created: string;
  /** Paths the init layer made (overlay: in `init/`; copy, btrfs: in the rootfs, left out of diffs). */
  init?: string[];
}

export interface StoreUsage {
  driver: DriverName;
  layers: number;
  /** Sum of the layers' uncompressed tar sizes. */
  layerBytes: number;
  containers: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const hexOf = (d: Digest) => splitDigest(d).hex;
/** Blobs at least this big unpack on a worker thread in unpackImage (a worker costs ~150 ms of CPU to start). */
const WORKER_MIN_BLOB = 4 << 20;
/**
 * `workers: 'auto'` uses workers only with at least this many CPUs. On 2 cores the main thread
 * (inflate, hashes, file creation) and the kernel's writeback already fill the machine: workers
 * cost ~1 s more CPU for the bench image and were slower in wall time too (docs/UNIONFS.md §5).
 */
const WORKER_MIN_CPUS = 4;
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

async function lockFile(
  path: string,
  mode: 'shared' | 'exclusive',
  signal?: AbortSignal,
): Promise<FileHandle> {
  const h = await open(path, FS.O_RDWR | FS.O_CREAT, 0o600);
  try {
    for (let delay = 2; ; delay = Math.min(delay * 2, 100)) {
      try {
        flock(h.fd, mode, false);
        return h;
      } catch (e) {
        if (!isSysError(e) || (e.code !== 'EAGAIN' && e.code !== 'EWOULDBLOCK')) throw e;
      }
      signal?.throwIfAborted();
      await sleep(delay);
    }
  } catch (e) {
    await h.close();
    throw e;
  }
}

/** Writes a new file (0600), flushed to disk before returning when `durable`. */
async function writeFileDurable(path: string, data: string, durable: boolean): Promise<void> {
  const h = await open(path, FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL, 0o600);
  try {
    await h.writeFile(data);
    if (durable) await h.sync();
  } finally {
    await h.close();
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, FS.O_RDONLY | FS.O_DIRECTORY);
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

function detectDriver(base: string): DriverName {
  const fss = readFileSync('/proc/filesystems', 'utf8');
  if (/\toverlay$/m.test(fss)) return 'overlay';
  if (isBtrfs(Number(statfsSync(base).type))) return 'btrfs';
  if (/\taufs$/m.test(fss)) return 'aufs';
  return 'copy';
}

/** See the module comment. Open with {@link LayerStore.open}. */
export class LayerStore {
  /** The store's directory, `<root>/layers/<driver>`. */
  readonly dir: string;
  readonly driver: DriverName;
  readonly rootless: boolean;
  #overlayApi: 'auto' | 'fsconfig' | 'classic';
  #ancestryCache = new Map<ChainID, ChainID[]>();
  #durable: boolean;

  private constructor(dir: string, driver: DriverName, opts: LayerStoreOptions) {
    this.dir = dir;
    this.driver = driver;
    this.rootless = opts.rootless ?? process.getuid?.() !== 0;
    this.#overlayApi = opts.overlayApi ?? 'auto';
    this.#durable = opts.durable ?? true;
  }

  /**
   * Opens (creating) the store and deletes what dead processes left in `tmp/`.
   * @throws UnionfsError `Unsupported` when a forced driver cannot work here.
   */
  static async open(options: LayerStoreOptions = {}): Promise<LayerStore> {
    const root = options.root ?? '/var/lib/nsinit';
    const top = join(root, 'layers');
    await mkdir(top, { recursive: true, mode: 0o700 });
    const driver = options.driver ?? detectDriver(top);
    const fss = readFileSync('/proc/filesystems', 'utf8');
    if (driver === 'overlay' && !/\toverlay$/m.test(fss))
      throw new UnionfsError('Unsupported', 'driver overlay: this kernel has no overlay filesystem');
    if (driver === 'aufs' && !/\taufs$/m.test(fss))
      throw new UnionfsError(
        'Unsupported',
        'driver aufs: this kernel has no aufs (not in /proc/filesystems)',
      );
    if (driver === 'btrfs' && !isBtrfs(Number(statfsSync(top).type)))
      throw new UnionfsError('Unsupported', `driver btrfs: ${top} is not on a btrfs filesystem`);
    const dir = join(top, driver);
    for (const d of ['layers', 'locks', 'tmp', 'refs', 'containers', 'empty'])
      await mkdir(join(dir, d), { recursive: true, mode: 0o700 });
    const store = new LayerStore(dir, driver, options);
    await store.#cleanTmp();
    return store;
  }

  #whiteouts(): WhiteoutFormat {
    switch (this.driver) {
      case 'overlay':
        return this.rootless ? 'overlay-user' : 'overlay';
      case 'aufs':
        return 'aufs';
      default:
        return 'applied';
    }
  }

  #layerDir(chain: ChainID): string {
    return join(this.dir, 'layers', hexOf(chain));
  }

  /** The directory holding a layer's tree (for overlay, to list as a lower layer). */
  diffDir(chain: ChainID): string {
    return join(this.#layerDir(chain), 'diff');
  }

  /** A stored layer, or undefined. */
  async get(chain: ChainID): Promise<LayerInfo | undefined> {
    try {
      return JSON.parse(await readFile(join(this.#layerDir(chain), 'layer.json'), 'utf8')) as LayerInfo;
    } catch (e) {
      if (errCode(e) === 'ENOENT') return undefined;
      throw e;
    }
  }

  /**
   * The chain IDs from `chain` down to its base layer (topmost first). A chain ID names its whole
   * ancestry, so the answer is cached for good.
   */
  async #ancestry(chain: ChainID): Promise<ChainID[]> {
    const hit = this.#ancestryCache.get(chain);
    if (hit) return hit;
    const info = await this.get(chain);
    if (!info) throw new UnionfsError('NotFound', `layer ${chain} is not in the store`);
    const out = [chain, ...(info.parent === null ? [] : await this.#ancestry(info.parent))];
    this.#ancestryCache.set(chain, out);
    return out;
  }

  /**
   * Unpacks a layer on top of `parent` (once: when it is present, or another process is unpacking
   * it, this returns the stored layer). The blob's digest and the diffID are checked while it
   * streams; on any failure nothing is left behind.
   */
  async unpack(req: UnpackRequest): Promise<UnpackResult> {
    if (req.parent !== undefined && !(await this.get(req.parent)))
      throw new UnionfsError('NotFound', `parent layer ${req.parent} is not in the store`);
    return this.#unpack(req, undefined);
  }

  /**
   * One layer. With `parentReady` (unpackImage on overlay/aufs) the parent may still be being
   * unpacked: this layer streams at the same time and waits for it only to fix up hardlinks into
   * lower layers and implicit directories, and to become visible after it.
   */
  async #unpack(
    req: UnpackRequest,
    parentReady: Promise<unknown> | undefined,
    useWorker = false,
    blobVerified?: (stats: BigIntStats) => boolean,
  ): Promise<UnpackResult> {
    const digest = parseDigest(req.digest, 'layer digest');
    const compression = layerCompression(req.mediaType);
    if (compression === undefined)
      throw new UnionfsError(
        'Unsupported',
        `layer ${digest}: media type ${req.mediaType} is not a layer this store unpacks`,
      );
    const parent = req.parent;
    const global = await lockFile(join(this.dir, 'lock'), 'shared', req.signal);
    let chainLock: FileHandle | undefined;
    let tmp: string | undefined;
    let tmpLock: number | undefined;
    const existing = async (chain: ChainID): Promise<UnpackResult | undefined> => {
      const info = await this.get(chain);
      if (!info) return undefined;
      if (typeof req.blob !== 'string') req.blob.destroy();
      if (req.owner !== undefined) await this.#addRef(req.owner, chain);
      return { ...info, unpacked: false };
    };
    try {
      if (req.diffID !== undefined) {
        const d = parseDigest(req.diffID, 'diffID');
        const c: ChainID = parent ? digestOf(`${parent} ${d}`) : d;
        const hit = await existing(c);
        if (hit) return hit;
        chainLock = await lockFile(join(this.dir, 'locks', `${hexOf(c)}.lock`), 'exclusive', req.signal);
        const hit2 = await existing(c);
        if (hit2) return hit2;
      }
      tmp = join(
        this.dir,
        'tmp',
        `${Date.now().toString(36)}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
      );
      mkdirSync(tmp, { mode: 0o700 });
      tmpLock = openat(-100, tmp, O.RDONLY | O.DIRECTORY);
      flock(tmpLock, 'exclusive', false);
      const diff = join(tmp, 'diff');
      const applied = this.driver === 'copy' || this.driver === 'btrfs';
      if (applied && parentReady) await parentReady;
      if (this.driver === 'btrfs') {
        if (parent) btrfsSnapshot(this.diffDir(parent), diff);
        else btrfsSubvolCreate(diff);
      } else if (this.driver === 'copy') {
        if (parent) copyTree(this.diffDir(parent), diff);
        else mkdirSync(diff, { mode: 0o755 });
      }
      const lowers = async () => {
        if (parentReady) await parentReady;
        return parent ? (await this.#ancestry(parent)).map((c) => this.diffDir(c)) : [];
      };
      const unpackFn =
        useWorker && typeof req.blob === 'string'
          ? (d: string, b: string | Readable, o: UnpackLayerOptions) => unpackLayerInWorker(d, b as string, o)
          : unpackLayer;
      const res = await unpackFn(diff, req.blob, {
        compression,
        whiteouts: this.#whiteouts(),
        digest,
        ...(req.size !== undefined ? { size: req.size } : {}),
        ...(req.diffID !== undefined ? { diffID: req.diffID } : {}),
        ...(applied ? { existing: true } : { lowers: parentReady ? lowers : await lowers() }),
        rootless: this.rootless,
        // the flush runs where the layer was unpacked (a worker thread): the main thread and the
        // other layers go on meanwhile
        sync: this.#durable,
        ...(req.signal ? { signal: req.signal } : {}),
        ...(req.onProgress ? { onProgress: req.onProgress } : {}),
        ...(blobVerified && !useWorker ? { blobVerified } : {}),
      });
      if (parentReady) await parentReady;
      const parentInfo = parent ? await this.get(parent) : undefined;
      if (parent && !parentInfo)
        throw new UnionfsError('NotFound', `parent layer ${parent} is not in the store`);
      const chain = parent ? digestOf(`${parent} ${res.diffID}`) : res.diffID;
      if (!chainLock) {
        chainLock = await lockFile(join(this.dir, 'locks', `${hexOf(chain)}.lock`), 'exclusive', req.signal);
        const hit = await existing(chain);
        if (hit) return hit;
      }
      const info: LayerInfo = {
        chainID: chain,
        diffID: res.diffID,
        parent: parent ?? null,
        depth: (parentInfo?.depth ?? 0) + 1,
        digest: res.digest,
        mediaType: req.mediaType,
        size: res.size,
        created: new Date().toISOString(),
        skipped: res.skipped,
      };
      // the layer's files were flushed by unpackLayer's syncfs; layer.json is flushed on its own
      await writeFileDurable(join(tmp, 'layer.json'), `${JSON.stringify(info)}\n`, this.#durable);
      if (this.#durable) await fsyncDir(tmp);
      if (req.owner !== undefined) await this.#addRef(req.owner, chain);
      await rename(tmp, this.#layerDir(chain));
      tmp = undefined;
      if (this.#durable) await fsyncDir(join(this.dir, 'layers'));
      return { ...info, unpacked: true, blobVerifiedBy: res.blobVerifiedBy };
    } catch (e) {
      if (isUnionfsError(e) || (e as Error)?.name === 'AbortError') throw e;
      throw new UnionfsError('System', `unpack layer ${digest}: ${(e as Error)?.message ?? String(e)}`, {
        cause: e,
      });
    } finally {
      if (tmp !== undefined) await this.#removeTree(tmp);
      if (tmpLock !== undefined) closeFd(tmpLock);
      await chainLock?.close();
      await global.close();
    }
  }

  /**
   * Unpacks every layer of an image from a content store (manifest layers and config diffIDs,
   * base first) and references the top chain for `owner` (e.g. `image:<config digest>`).
   * With overlay (and aufs) up to `parallel` layers (default 3) stream at once (their blob reads
   * overlap the others' work; on worker threads, see `workers`, all of it does); each layer
   * becomes visible only after the one below it.
   */
  async unpackImage(req: {
    content: ContentStore;
    layers: readonly Descriptor[];
    diffIDs: readonly Digest[];
    owner?: string;
    /** Layers streaming at once (overlay, aufs); default 3. */
    parallel?: number;
    /**
     * Unpack layers on worker threads (when `parallel` > 1): `auto` (default) for blobs of 4 MiB
     * and more when the machine has 4 CPUs or more, `always`, `never`. Each layer's inflate and
     * file creation (kernel time on the calling thread) then run on a thread of their own. On 2
     * CPUs they cost more CPU than they overlap (measured, docs/UNIONFS.md §5), so `auto` does not
     * use them there.
     */
    workers?: 'auto' | 'always' | 'never';
    signal?: AbortSignal;
    onProgress?: (layer: number, bytes: number) => void;
  }): Promise<UnpackResult[]> {
    if (req.layers.length !== req.diffIDs.length)
      throw new UnionfsError(
        'DigestMismatch',
        `the manifest lists ${req.layers.length} layers, the config ${req.diffIDs.length} diffIDs`,
      );
    const chains = chainIDs(req.diffIDs.map((d, i) => parseDigest(d, `diffIDs[${i}]`)));
    const width = this.driver === 'overlay' || this.driver === 'aufs' ? Math.max(1, req.parallel ?? 3) : 1;
    const results: Promise<UnpackResult>[] = [];
    let running = 0;
    const slots: (() => void)[] = [];
    const slot = async () => {
      if (running >= width) await new Promise<void>((r) => slots.push(r));
      running++;
    };
    const free = () => {
      running--;
      slots.shift()?.();
    };
    const abort = new AbortController();
    const signal = req.signal ? AbortSignal.any([req.signal, abort.signal]) : abort.signal;
    for (const [i, layer] of req.layers.entries()) {
      const below = results[i - 1];
      const parent = chains[i - 1];
      await slot();
      const p = this.#unpack(
        {
          blob: req.content.blobPath(layer.digest),
          mediaType: layer.mediaType,
          digest: layer.digest,
          size: layer.size,
          diffID: req.diffIDs[i] as Digest,
          ...(parent ? { parent } : {}),
          ...(req.owner !== undefined && i === req.layers.length - 1 ? { owner: req.owner } : {}),
          signal,
          ...(req.onProgress ? { onProgress: (b: number) => req.onProgress?.(i, b) } : {}),
        },
        below,
        width > 1 &&
          (req.workers === 'always' ||
            ((req.workers ?? 'auto') === 'auto' &&
              availableParallelism() >= WORKER_MIN_CPUS &&
              (layer.size ?? 0) >= WORKER_MIN_BLOB)),
        // a blob the content store object itself checked and committed, unchanged since, is not
        // hashed again (its size is still counted and the diffID always checked)
        typeof req.content.verifiedHere === 'function'
          ? (stats: BigIntStats) => req.content.verifiedHere(layer.digest, stats)
          : undefined,
      ).finally(free);
      p.catch(() => abort.abort());
      results.push(p);
    }
    const settled = await Promise.allSettled(results);
    const failed = settled.find((r) => r.status === 'rejected' && (r.reason as Error)?.name !== 'AbortError');
    if (failed) throw (failed as PromiseRejectedResult).reason;
    const aborted = settled.find((r) => r.status === 'rejected');
    if (aborted) throw (aborted as PromiseRejectedResult).reason;
    return settled.map((r) => (r as PromiseFulfilledResult<UnpackResult>).value);
  }

  #ownerDir(owner: string): string {
    if (owner === '') throw new UnionfsError('NotFound', 'an owner name must not be empty');
    return join(
      this.dir,
      'refs',
      encodeURIComponent(owner).replace(/^\.+/, (m) => '%2E'.repeat(m.length)),
    );
  }

  async #addRef(owner: string, chain: ChainID): Promise<void> {
    const d = this.#ownerDir(owner);
    await mkdir(d, { recursive: true, mode: 0o700 });
    await writeFile(join(d, hexOf(chain)), '');
  }

  /** References `chain` (and so everything below it) for `owner`: gc keeps it. */
  async retain(owner: string, chain: ChainID): Promise<void> {
    const g = await lockFile(join(this.dir, 'lock'), 'shared');
    try {
      if (!(await this.get(chain))) throw new UnionfsError('NotFound', `layer ${chain} is not in the store`);
      await this.#addRef(owner, chain);
    } finally {
      await g.close();
    }
  }

  /** Drops `owner`'s reference to `chain`, or all of its references. */
  async release(owner: string, chain?: ChainID): Promise<void> {
    const d = this.#ownerDir(owner);
    if (chain === undefined) await rm(d, { recursive: true, force: true });
    else {
      await rm(join(d, hexOf(chain)), { force: true });
      if ((await readdir(d).catch(() => [])).length === 0) await rm(d, { recursive: true, force: true });
    }
  }

  /** Owners and the chains they reference. */
  async references(): Promise<Map<string, ChainID[]>> {
    const out = new Map<string, ChainID[]>();
    for (const o of await readdir(join(this.dir, 'refs'))) {
      const chains = (await readdir(join(this.dir, 'refs', o)).catch(() => [] as string[])).map(
        (h) => `sha256:${h}` as ChainID,
      );
      out.set(decodeURIComponent(o), chains);
    }
    return out;
  }

  /** Every stored layer. */
  async list(): Promise<LayerInfo[]> {
    const out: LayerInfo[] = [];
    for (const hex of await readdir(join(this.dir, 'layers'))) {
      const info = await this.get(`sha256:${hex}`);
      if (info) out.push(info);
    }
    return out;
  }

  async usage(): Promise<StoreUsage> {
    const layers = await this.list();
    return {
      driver: this.driver,
      layers: layers.length,
      layerBytes: layers.reduce((s, l) => s + l.size, 0),
      containers: (await readdir(join(this.dir, 'containers'))).filter((n) => !n.endsWith('.lock')).length,
    };
  }

  /**
   * Deletes every layer that no owner references (directly or as the parent of a referenced
   * layer), and unpacks abandoned by dead processes. Waits for running unpacks.
   */
  async gc(): Promise<{ removed: ChainID[] }> {
    const g = await lockFile(join(this.dir, 'lock'), 'exclusive');
    try {
      const live = new Set<string>();
      for (const chains of (await this.references()).values())
        for (const c of chains) {
          let cur: ChainID | null = c;
          while (cur !== null && !live.has(cur)) {
            live.add(cur);
            cur = (await this.get(cur))?.parent ?? null;
          }
        }
      const removed: ChainID[] = [];
      for (const hex of await readdir(join(this.dir, 'layers'))) {
        const chain = `sha256:${hex}` as ChainID;
        if (live.has(chain)) continue;
        // out of the namespace first (a rename is atomic), then delete
        const doomed = join(this.dir, 'tmp', `gc-${hex}-${process.pid}`);
        await rename(join(this.dir, 'layers', hex), doomed);
        const lockFd = openat(-100, doomed, O.RDONLY | O.DIRECTORY); // so no tmp/ cleaner races us
        try {
          flock(lockFd, 'exclusive', false);
          await this.#removeTree(doomed);
        } finally {
          closeFd(lockFd);
        }
        this.#ancestryCache.delete(chain);
        await rm(join(this.dir, 'locks', `${hex}.lock`), { force: true });
        removed.push(chain);
      }
      await this.#cleanTmp();
      return { removed };
    } finally {
      await g.close();
    }
  }

  /** Deletes tmp/ entries whose process is gone (their flock is free). */
  async #cleanTmp(): Promise<void> {
    const tmpDir = join(this.dir, 'tmp');
    for (const name of await readdir(tmpDir)) {
      const p = join(tmpDir, name);
      let fd: number;
      try {
        fd = openat(-100, p, O.RDONLY | O.DIRECTORY);
      } catch {
        await rm(p, { recursive: true, force: true });
        continue;
      }
      try {
        flock(fd, 'exclusive', false);
      } catch {
        closeFd(fd);
        continue; // a live unpack
      }
      try {
        await this.#removeTree(p);
      } finally {
        closeFd(fd);
      }
    }
  }

  async #removeTree(p: string): Promise<void> {
    if (this.driver === 'btrfs') {
      for (const sub of ['diff', 'rootfs']) btrfsSubvolDelete(join(p, sub));
      btrfsSubvolDelete(p);
    }
    await rm(p, { recursive: true, force: true });
  }

  // --------------------------------------------------------------------------------- containers

  #containerDir(id: string): string {
    if (!ID_RE.test(id)) throw new UnionfsError('NotFound', `"${id}" is not a valid container id`);
    return join(this.dir, 'containers', id);
  }

  async #container(id: string): Promise<ContainerRecord | undefined> {
    try {
      return JSON.parse(
        await readFile(join(this.#containerDir(id), 'container.json'), 'utf8'),
      ) as ContainerRecord;
    } catch (e) {
      if (errCode(e) === 'ENOENT') return undefined;
      throw e;
    }
  }

  /**
   * Creates the container's writable layer on the image `diffIDs` (base→top; every layer must be
   * unpacked) and mounts its root filesystem. Idempotent: for an existing container it mounts it
   * again if needed (after a reboot) and returns it. The mount outlives this process.
   */
  async prepare(
    id: string,
    diffIDs: readonly Digest[],
    options: PrepareOptions = {},
  ): Promise<PreparedContainer> {
    const dir = this.#containerDir(id);
    const chains = chainIDs(diffIDs.map((d, i) => parseDigest(d, `diffIDs[${i}]`)));
    for (const [i, c] of chains.entries())
      if (!(await this.get(c)))
        throw new UnionfsError('NotFound', `layer ${i} (diffID ${diffIDs[i]}) is not unpacked in the store`);
    const g = await lockFile(join(this.dir, 'lock'), 'shared');
    const cl = await lockFile(`${dir}.lock`, 'exclusive');
    try {
      let rec = await this.#container(id);
      if (rec && rec.chainIDs.join() !== chains.join())
        throw new UnionfsError('InUse', `container ${id} exists on other layers`);
      if (!rec) {
        await this.#removeContainerDir(dir); // a half-made one from a crash
        rec = {
          id,
          driver: this.driver,
          chainIDs: chains,
          readonly: options.readonly ?? false,
          volatile: options.volatile ?? false,
          created: new Date().toISOString(),
        };
        await mkdir(dir, { mode: 0o700 });
        await this.#makeWritable(dir, chains);
        const init = options.init === true ? DEFAULT_INIT_LAYER : options.init || undefined;
        if (init) rec.init = await this.#makeInit(dir, chains, init);
        await writeFile(join(dir, 'container.json'), `${JSON.stringify(rec)}\n`);
        const top = chains[chains.length - 1];
        if (top) await this.#addRef(`container:${id}`, top);
      }
      const rootfs = join(dir, 'rootfs');
      let mountApi: 'fsconfig' | 'classic' | undefined;
      if (!isMountPoint(rootfs)) mountApi = await this.#mount(dir, rec);
      return {
        id,
        rootfs,
        driver: this.driver,
        chainIDs: chains,
        readonly: rec.readonly,
        volatile: rec.volatile,
        ...(mountApi ? { mountApi } : {}),
      };
    } finally {
      await cl.close();
      await g.close();
    }
  }

  async #makeWritable(dir: string, chains: ChainID[]): Promise<void> {
    const top = chains[chains.length - 1];
    const rootfs = join(dir, 'rootfs');
    if (this.driver === 'overlay' || this.driver === 'aufs') {
      for (const d of ['upper', 'work', 'rootfs']) await mkdir(join(dir, d), { mode: 0o755 });
      if (top) {
        // the merged root takes the upper root's attributes: give it the image's
        const st = await stat(this.diffDir(top));
        const upper = join(dir, 'upper');
        if (!this.rootless) await chown(upper, st.uid, st.gid);
        await chmod(upper, st.mode & 0o7777);
      }
    } else if (this.driver === 'btrfs') {
      if (top) btrfsSnapshot(this.diffDir(top), rootfs);
      else btrfsSubvolCreate(rootfs);
    } else {
      if (top) copyTree(this.diffDir(top), rootfs);
      else await mkdir(rootfs, { mode: 0o755 });
    }
  }

  /** Makes the init layer's missing entries; returns what it made (implicit parents included). */
  async #makeInit(dir: string, chains: ChainID[], init: InitLayer): Promise<string[]> {
    const overlay = this.driver === 'overlay' || this.driver === 'aufs';
    const lowers = overlay ? [...chains].reverse().map((c) => this.diffDir(c)) : [join(dir, 'rootfs')];
    const members: Parameters<typeof tarHeader>[0][] = [];
    const made = new Set<string>();
    const want = [
      ...(init.dirs ?? []).map((p) => ({ rel: p, type: 'dir' as const })),
      ...(init.files ?? []).map((p) => ({ rel: p, type: 'file' as const })),
    ];
    for (const { rel: raw, type } of want) {
      const rel = cleanPath(raw, 'init layer path');
      if (rel === '' || inLowers(lowers, rel) !== undefined) continue;
      const parts = rel.split('/');
      for (let i = 1; i < parts.length; i++) {
        const p = parts.slice(0, i).join('/');
        if (!made.has(p) && inLowers(lowers, p) === undefined) made.add(p);
      }
      made.add(rel);
      members.push({ path: rel, type, mode: type === 'dir' ? 0o755 : 0o644, uid: 0, gid: 0, mtime: 0 });
    }
    const tar = Buffer.concat([...members.map((m) => tarHeader(m)), TAR_END]);
    const target = overlay ? join(dir, 'init') : join(dir, 'rootfs');
    await unpackLayer(target, Readable.from([tar]), {
      compression: 'none',
      whiteouts: overlay ? this.#whiteouts() : 'applied',
      rootless: this.rootless,
      ...(overlay ? { lowers } : { existing: true }),
    });
    return [...made].sort();
  }

  async #mount(dir: string, rec: ContainerRecord): Promise<'fsconfig' | 'classic' | undefined> {
    const rootfs = join(dir, 'rootfs');
    const lowers = [...rec.chainIDs].reverse().map((c) => this.diffDir(c));
    if (rec.init && (this.driver === 'overlay' || this.driver === 'aufs')) lowers.unshift(join(dir, 'init'));
    if (lowers.length === 0) lowers.push(join(this.dir, 'empty'));
    if (this.driver === 'overlay') {
      if (rec.volatile) {
        // a volatile upper that lived through a crash is not trusted: start empty again
        await rm(join(dir, 'work'), { recursive: true, force: true });
        await mkdir(join(dir, 'work'), { mode: 0o755 });
      }
      return mountOverlay(
        {
          lowers,
          upper: join(dir, 'upper'),
          work: join(dir, 'work'),
          target: rootfs,
          readonly: rec.readonly,
          volatile: rec.volatile,
          userxattr: this.rootless,
          api: this.#overlayApi,
        },
        join(this.dir, 'tmp', `mnt-${process.pid}-${Math.random().toString(36).slice(2, 8)}`),
      );
    }
    if (this.driver === 'aufs') {
      mountAufs({ lowers, upper: join(dir, 'upper'), target: rootfs, readonly: rec.readonly });
      return undefined;
    }
    bindSelf(rootfs, rec.readonly);
    return undefined;
  }

  /** Unmounts a container's root filesystem and keeps its writable layer (`prepare` mounts it again). */
  async unmount(id: string): Promise<void> {
    const rootfs = join(this.#containerDir(id), 'rootfs');
    while (isMountPoint(rootfs)) if (!unmount(rootfs)) break;
  }

  /** Unmounts, deletes the writable layer and drops the container's references. Idempotent. */
  async remove(id: string): Promise<void> {
    const dir = this.#containerDir(id);
    const g = await lockFile(join(this.dir, 'lock'), 'shared');
    const cl = await lockFile(`${dir}.lock`, 'exclusive');
    try {
      await this.#removeContainerDir(dir);
      await this.release(`container:${id}`);
    } finally {
      await cl.close();
      await rm(`${dir}.lock`, { force: true });
      await g.close();
    }
  }

  async #removeContainerDir(dir: string): Promise<void> {
    const rootfs = join(dir, 'rootfs');
    for (const m of mountsUnder(dir).reverse()) unmount(m);
    while (isMountPoint(rootfs)) if (!unmount(rootfs)) break;
    if (this.driver === 'btrfs') btrfsSubvolDelete(rootfs);
    await rm(dir, { recursive: true, force: true });
  }

  /** Containers in the store. */
  async containers(): Promise<(PreparedContainer & { mounted: boolean })[]> {
    const out: (PreparedContainer & { mounted: boolean })[] = [];
    for (const name of await readdir(join(this.dir, 'containers'))) {
      if (name.endsWith('.lock')) continue;
      const rec = await this.#container(name).catch(() => undefined);
      if (!rec) continue;
      const rootfs = join(this.dir, 'containers', name, 'rootfs');
      out.push({
        id: rec.id,
        rootfs,
        driver: rec.driver,
        chainIDs: rec.chainIDs,
        readonly: rec.readonly,
        volatile: rec.volatile,
        mounted: isMountPoint(rootfs),
      });
    }
    return out;
  }

  async #items(id: string) {
    const rec = await this.#container(id);
    if (!rec) throw new UnionfsError('NotFound', `container ${id} is not in the layer store`);
    const dir = this.#containerDir(id);
    const lowers = [...rec.chainIDs].reverse().map((c) => this.diffDir(c));
    if (this.driver === 'overlay' || this.driver === 'aufs') {
      if (rec.init) lowers.unshift(join(dir, 'init'));
      return overlayItems(join(dir, 'upper'), lowers);
    }
    // init entries were made with mtime 0: untouched they are not the container's changes
    const initMade = new Set(rec.init ?? []);
    const items = treeItems(join(dir, 'rootfs'), lowers[0]);
    return items.flatMap((i) => {
      if (!(initMade.has(i.rel) && i.change.kind === 'A')) return [i];
      return i.node && i.node.st.mtimeNs !== 0n
        ? [{ ...i, change: { ...i.change, kind: 'C' as const } }]
        : [];
    });
  }

  /** What the container changed, like `docker diff`: sorted, parents first. */
  async diff(id: string): Promise<Change[]> {
    return changesOf(await this.#items(id));
  }

  /**
   * The container's changes as a gzip'd OCI layer, written into `out`. Returns its descriptor and
   * diffID (for `rootfs.diff_ids` of a committed image). Deterministic for the same changes.
   */
  async exportDiff(id: string, out: ContentStore): Promise<{ descriptor: Descriptor; diffID: Digest }> {
    const items = await this.#items(id);
    const tmp = join(this.dir, 'tmp', `export-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
    await mkdir(tmp, { mode: 0o700 });
    const lockFd = openat(-100, tmp, O.RDONLY | O.DIRECTORY);
    flock(lockFd, 'exclusive', false);
    try {
      const diff = new Digester();
      const gz = new Digester();
      const tar = Readable.from(
        (function* () {
          for (const chunk of layerTar(items)) {
            diff.update(chunk);
            yield chunk;
          }
        })(),
      );
      const file = join(tmp, 'layer.tar.gz');
      const hash = new Transform({
        transform(chunk: Buffer, _e: BufferEncoding, done: TransformCallback) {
          gz.update(chunk);
          done(null, chunk);
        },
      });
      await pipeline(tar, createGzip({ level: 6, chunkSize: 1 << 16 }), hash, createWriteStream(file));
      const digest = gz.digest();
      const size = gz.size;
      const ingest = await out.ingest({ digest, size });
      if (!ingest.present) {
        try {
          for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }))
            await ingest.write(chunk as Buffer);
          await ingest.commit();
        } catch (e) {
          await ingest.abort();
          throw e;
        }
      }
      return { descriptor: { mediaType: MediaType.ociLayerGzip, digest, size }, diffID: diff.digest() };
    } finally {
      closeFd(lockFd);
      await rm(tmp, { recursive: true, force: true });
    }
  }
}
