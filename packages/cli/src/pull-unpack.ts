/**
 * Pull and unpack at once (`nsinit pull`, `run --image` of a missing image): the first layer the
 * layer store lacks is unpacked from its download as the bytes arrive (a tee through the
 * registry client's `blobSink`), and the other layers are unpacked from the content store as
 * soon as their blobs are there, while that one is still streaming.
 *
 * Trust: the unpacker checks the streamed layer's digest and size itself, and its stream ends
 * only after the content store has verified and committed the blob, so a layer becomes visible
 * in the layer store only when its blob is in the content store. A wrong blob fails the pull
 * (the content store deletes it; the unpacker deletes what it wrote). Any other trouble with the
 * stream (a resumed download the tee cannot follow, another process storing the blob) only
 * costs the head start: the layer is then unpacked from the stored blob, which is verified again.
 * Concurrent pulls sharing layers unpack each once: the layer store's chain locks decide.
 */
import { PassThrough } from 'node:stream';
import type { ContentStore, Descriptor, Digest, ImageConfig, Manifest, Reference } from '@tsc/image';
import type { BlobSinkInfo, PullOptions, PullProgress, PullResult } from '@tsc/registry-client';
import { type ChainID, chainIDs, isUnionfsError, type LayerStore, type UnpackResult } from '@tsc/unionfs';

/** Bytes the streamed layer may run ahead of its unpacker before its download waits. */
const STREAM_BUFFER = 16 << 20;

export interface PullUnpackOptions extends Omit<PullOptions, 'blobSink' | 'onProgress' | 'tag'> {
  onProgress?: (event: PullProgress) => void;
  /** Compressed bytes of `layer` unpacked so far. */
  onExtract?: (layer: Descriptor, bytes: number) => void;
  /** Unpack the first missing layer while it downloads (default true). */
  stream?: boolean;
  /** unpackImage's worker threads (default `never`: see the note at the call). */
  workers?: 'auto' | 'always' | 'never';
}

export interface PullUnpackResult {
  pull: PullResult;
  /** One per manifest layer, base first (`unpacked: false` for layers the store had). */
  layers: UnpackResult[];
  /** The layer unpacked from its download stream, when one was. */
  streamed?: { index: number; result: UnpackResult };
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (v: T) => void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** The pull's blobs and config, with each layer unpacked into `layers` (referenced by `image:<config digest>`). */
export async function pullAndUnpack(
  store: ContentStore,
  layers: LayerStore,
  ref: Reference,
  options: PullUnpackOptions = {},
): Promise<PullUnpackResult> {
  const { pull } = await import('@tsc/registry-client');
  const { onProgress, onExtract, stream: streaming = true, workers = 'never', ...pullOptions } = options;
  const ac = new AbortController();
  const outer = options.signal;
  outer?.throwIfAborted();
  const onOuter = () => ac.abort(outer?.reason);
  outer?.addEventListener('abort', onOuter, { once: true });
  const signal = ac.signal;

  // A layer may be unpacked by unpackImage once its blob is stored, or once its streamed unpack
  // is under way (it holds the chain's lock: unpackImage then waits and finds the layer).
  const ready = new Map<string, Deferred<void>>();
  const readyOf = (digest: string) => {
    let d = ready.get(digest);
    if (!d) {
      d = deferred();
      ready.set(digest, d);
    }
    return d;
  };
  const readySet = new Set<string>();
  const markReady = (digest: string) => {
    readySet.add(digest);
    readyOf(digest).resolve();
    schedule();
  };
  // Layers whose blobs are there are unpacked before the rest have downloaded (on a slow link
  // the big last layer would hold them back): a prefix of the image (every layer below ready)
  // goes to unpackImage, without an owner. These runs only save time: their failures are
  // ignored (what they could not do, the final unpackImage of the whole image does and reports).
  let meta: { manifest: Manifest; config: ImageConfig } | undefined;
  /**
   * unpackImage of the image's first `n` layers without an owner (a prefix run), or of the whole
   * image, its diffIDs as the config has them (unpackImage checks they match the layers), owned.
   */
  const unpackFirst = (manifest: Manifest, config: ImageConfig, n?: number) =>
    layers.unpackImage({
      content: store,
      layers: n === undefined ? manifest.layers : manifest.layers.slice(0, n),
      diffIDs:
        n === undefined
          ? (config.rootfs.diff_ids as Digest[])
          : (config.rootfs.diff_ids as Digest[]).slice(0, n),
      ...(n === undefined ? { owner: `image:${manifest.config.digest}` } : {}),
      signal,
      workers,
      ...(onExtract
        ? {
            onProgress: (i: number, bytes: number) =>
              manifest.layers[i] && onExtract(manifest.layers[i], bytes),
          }
        : {}),
    });
  let covered = 0;
  const prefixRuns: Promise<unknown>[] = [];
  /** Layers the prefix runs or the stream unpacked (unpackImage then finds them present). */
  const doneEarly = new Map<string, UnpackResult>();
  const schedule = () => {
    if (!meta || signal.aborted) return;
    const { manifest, config } = meta;
    let j = 0;
    while (j < manifest.layers.length && readySet.has((manifest.layers[j] as Descriptor).digest)) j++;
    if (j <= covered || j >= manifest.layers.length || j - 1 === streamed?.index) return;
    covered = j;
    prefixRuns.push(
      unpackFirst(manifest, config, j)
        .then((rs) => {
          for (const x of rs) if (x.unpacked) doneEarly.set(x.chainID, x);
        })
        .catch(() => {}),
    );
  };
  const known = deferred<{ manifest: Manifest; config: Promise<ImageConfig> }>();
  let plan: Promise<{ chains: ChainID[]; first: number } | undefined> | undefined;
  let streamed: { index: number; unpack: Promise<UnpackResult> } | undefined;

  /** The first layer the layer store lacks (its parent is there), if the config is usable. */
  const firstMissing = async (manifest: Manifest, config: ImageConfig) => {
    const diffIDs = config.rootfs.diff_ids;
    if (diffIDs.length !== manifest.layers.length) return undefined;
    let chains: ChainID[];
    try {
      chains = chainIDs(diffIDs as Digest[]);
    } catch {
      return undefined; // unpackImage reports it
    }
    for (const [i, c] of chains.entries()) if (!(await layers.get(c))) return { chains, first: i };
    return undefined;
  };

  const blobSink = async (desc: Descriptor, info: BlobSinkInfo) => {
    known.resolve({ manifest: info.manifest, config: info.config });
    if (!meta)
      info.config.then(
        (c) => {
          meta ??= { manifest: info.manifest, config: c };
          schedule();
        },
        () => {},
      );
    if (!streaming || streamed) return undefined;
    const config = await info.config;
    plan ??= firstMissing(info.manifest, config);
    const p = await plan;
    if (!p || info.index !== p.first || streamed) return undefined;
    const index = info.index;
    const pass = new PassThrough({ highWaterMark: STREAM_BUFFER });
    const parent = p.chains[index - 1];
    let started = false;
    const unpack = layers.unpack({
      blob: pass,
      mediaType: desc.mediaType,
      digest: desc.digest,
      size: desc.size,
      diffID: config.rootfs.diff_ids[index] as Digest,
      ...(parent ? { parent } : {}),
      signal,
      onProgress: (bytes) => {
        if (!started) {
          started = true; // it reads, so it holds the chain lock
          markReady(desc.digest);
        }
        onExtract?.(desc, bytes);
      },
    });
    streamed = { index, unpack };
    unpack.then(
      () => markReady(desc.digest),
      // Failed before or while reading: the tee must not wait for it (and the layer is
      // unpacked from the stored blob instead).
      () => pass.destroy(),
    );
    return pass;
  };

  let firstError: { error: unknown } | undefined;
  const fail = (e: unknown) => {
    firstError ??= { error: e };
    ac.abort(e);
  };
  const pulled = pull(store, ref, {
    ...pullOptions,
    signal,
    blobSink,
    onProgress: (e) => {
      if (e.type === 'blob' && e.kind === 'layer' && (e.status === 'complete' || e.status === 'exists'))
        markReady(e.digest);
      onProgress?.(e);
    },
  });
  pulled.catch(fail);

  const unpackAll = (manifest: Manifest, config: ImageConfig) => unpackFirst(manifest, config);

  try {
    // Start unpacking as soon as every layer is ready (or the pull is done).
    const early = await Promise.race([
      pulled.then(() => undefined),
      known.promise.then(async ({ manifest, config }) => {
        const c = await config;
        await Promise.all(manifest.layers.map((l) => readyOf(l.digest).promise));
        return { manifest, config: c };
      }),
    ]);
    let results: UnpackResult[] | undefined;
    if (early) {
      try {
        results = await unpackAll(early.manifest, early.config);
      } catch (e) {
        // The streamed layer failed and its blob was not stored yet when unpackImage wanted it:
        // once the pull is done, everything is in the store.
        const retry =
          streamed !== undefined &&
          !signal.aborted &&
          isUnionfsError(e) &&
          e.code === 'System' &&
          (await streamed.unpack.then(
            () => false,
            () => true,
          ));
        if (!retry) throw e;
      }
    }
    const res = await pulled;
    results ??= await unpackAll(res.manifest, res.config);
    const s = streamed ? await streamed.unpack.catch(() => undefined) : undefined;
    if (s?.unpacked) doneEarly.set(s.chainID, s);
    await Promise.allSettled(prefixRuns);
    // unpackImage found those layers present: report what unpacked them
    results = results.map((x) => (x.unpacked ? x : (doneEarly.get(x.chainID) ?? x)));
    return {
      pull: res,
      layers: results,
      ...(streamed && s ? { streamed: { index: streamed.index, result: s } } : {}),
    };
  } catch (e) {
    fail(e);
    throw firstError?.error ?? e;
  } finally {
    outer?.removeEventListener('abort', onOuter);
    // Nothing is left running: a failed streamed unpack has removed what it wrote.
    await Promise.allSettled([pulled, streamed?.unpack, ...prefixRuns]);
  }
}
