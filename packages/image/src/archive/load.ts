/**
 * `load`: images from a tar stream into the store. The format is told by content, not by name:
 *
 * - an OCI image layout (`oci-layout` + `index.json` + `blobs/`), as `skopeo copy … oci-archive:`
 *   and our `save --format oci` write;
 * - Docker's `docker save` format (`manifest.json` with `Config`, `RepoTags`, `Layers`), old
 *   (`<id>.json`, `<id>/layer.tar`, symlinks between layer dirs) and as skopeo writes it
 *   (`<diff ID>.tar`);
 * - Docker ≥ 25's combined format, which has both (the OCI index is used, `RepoTags` add names);
 * - any of them gzip-compressed.
 *
 * Safety: every blob goes through {@link ContentStore.ingest}, which checks its digest (a
 * `blobs/sha256/<hex>` entry is streamed straight in; other files are spooled to a temporary
 * file while they are hashed, then ingested); layers of a Docker archive must match the config's
 * diff IDs; each image must be complete. Names are set only after everything was stored, so a
 * failed load leaves no name pointing at a partial image (the blobs it stored are unreferenced
 * and go at the next garbage collection).
 */
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { type Digest, Digester, parseDigest } from '../digest.js';
import { fsError, ImageError, isImageError } from '../errors.js';
import { isIndexMediaType, isManifestMediaType, MediaType, sniffCompression } from '../media.js';
import { parseReference } from '../reference.js';
import { MAX_DOCUMENT_SIZE, withStoreLease } from '../resolve.js';
import {
  type Descriptor,
  type Manifest,
  parseImageConfig,
  parseIndex,
  parseManifestOrIndex,
} from '../schema.js';
import { type ContentStore, REF_NAME_ANNOTATION } from '../store.js';
import { CONTAINERD_NAME_ANNOTATION } from './save.js';
import { readTar, type TarEntry } from './tar.js';

export interface LoadOptions {
  store: ContentStore;
  /** Where files that are not named by their digest are spooled; default `<store dir>/../tmp`. */
  tmpDir?: string | undefined;
}

/** One image loaded. */
export interface LoadedImage {
  /** Full names set (may be empty: an untagged image, kept in `index.json` without a name). */
  names: string[];
  /** The `index.json` entry (manifest or index). */
  descriptor: Descriptor;
  /** The image ID (config digest) of a manifest; undefined for an index. */
  id?: Digest | undefined;
}

/** What the archive held, by path. */
type Held =
  | { kind: 'bytes'; data: Buffer }
  | { kind: 'blob'; digest: Digest; size: number }
  | { kind: 'spool'; file: string; digest: Digest; size: number; head: Buffer };

const SMALL = /(^|\/)(manifest\.json|index\.json|oci-layout|repositories|json|VERSION)$|\.json$/;

async function readAll(body: AsyncIterable<Buffer>, limit: number, what: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += c.length;
    if (n > limit) throw new ImageError('SizeMismatch', `archive: ${what} is larger than ${limit} bytes`);
    parts.push(c);
  }
  return Buffer.concat(parts);
}

class Loader {
  readonly store: ContentStore;
  readonly files = new Map<string, Held>();
  readonly links = new Map<string, string>();
  spoolDir: string | undefined;
  #tmpRoot: string;
  #spooled = 0;

  constructor(store: ContentStore, tmpRoot: string) {
    this.store = store;
    this.#tmpRoot = tmpRoot;
  }

  async entry(e: TarEntry): Promise<void> {
    if (e.type === 'symlink' || e.type === 'hardlink') {
      if (e.linkpath === undefined) return;
      const target =
        e.type === 'symlink' ? posix.join(posix.dirname(e.path), e.linkpath) : posix.normalize(e.linkpath);
      this.links.set(e.path, target.replace(/^\.?\//, ''));
      return;
    }
    if (e.type !== 'file') return;
    const blob = /^blobs\/(sha256|sha512)\/([0-9a-f]+)$/.exec(e.path);
    if (blob) {
      const digest = parseDigest(`${blob[1]}:${blob[2]}`, `archive: ${e.path}`);
      const w = await this.store.ingest({ digest, size: e.size });
      if (!w.present) {
        try {
          for await (const c of e.body) await w.write(c);
          await w.commit();
        } catch (err) {
          await w.abort();
          if (isImageError(err)) throw new ImageError(err.code, `archive: ${e.path}: ${err.message}`);
          throw err;
        }
      }
      this.files.set(e.path, { kind: 'blob', digest, size: e.size });
      return;
    }
    if (SMALL.test(e.path) && e.size <= MAX_DOCUMENT_SIZE) {
      this.files.set(e.path, { kind: 'bytes', data: await readAll(e.body, MAX_DOCUMENT_SIZE, e.path) });
      return;
    }
    // A layer tar named otherwise: spool it while hashing.
    if (!this.spoolDir) {
      await mkdir(this.#tmpRoot, { recursive: true });
      this.spoolDir = await mkdtemp(join(this.#tmpRoot, 'load-'));
    }
    const file = join(this.spoolDir, String(++this.#spooled));
    const h = await open(file, 'wx', 0o600);
    const digester = new Digester();
    let head: Buffer | undefined;
    try {
      for await (const c of e.body) {
        head ??= Buffer.from(c.subarray(0, 8));
        digester.update(c);
        let done = 0;
        while (done < c.length) done += (await h.write(c, done)).bytesWritten;
      }
    } catch (err) {
      throw fsError('spool', file, err);
    } finally {
      await h.close();
    }
    this.files.set(e.path, {
      kind: 'spool',
      file,
      digest: digester.digest(),
      size: digester.size,
      head: head ?? Buffer.alloc(0),
    });
  }

  /** The file an archive path names, following links. */
  get(path: string, what: string): Held {
    let p = path.replace(/^\.?\//, '');
    for (let i = 0; i < 16; i++) {
      const f = this.files.get(p);
      if (f) return f;
      const l = this.links.get(p);
      if (l === undefined) break;
      p = l;
    }
    throw new ImageError('InvalidDocument', `archive: ${what} "${path}" is not in the archive`);
  }

  bytes(path: string, what: string): Buffer | undefined {
    let f: Held;
    try {
      f = this.get(path, what);
    } catch {
      return undefined;
    }
    return f.kind === 'bytes' ? f.data : undefined;
  }

  /** Makes sure the store holds the file's content; returns its digest and size. */
  async toStore(path: string, what: string): Promise<{ digest: Digest; size: number; head: Buffer }> {
    const f = this.get(path, what);
    if (f.kind === 'blob') {
      const src = this.store.createReadStream(f.digest);
      let head = Buffer.alloc(0);
      for await (const c of src as AsyncIterable<Buffer>) {
        head = Buffer.from(c.subarray(0, 8));
        break;
      }
      src.destroy();
      return { digest: f.digest, size: f.size, head };
    }
    if (f.kind === 'bytes') {
      const digest = await this.store.put(f.data);
      return { digest, size: f.data.length, head: f.data.subarray(0, 8) };
    }
    const w = await this.store.ingest({ digest: f.digest, size: f.size });
    if (!w.present) {
      try {
        for await (const c of createReadStream(f.file) as AsyncIterable<Buffer>) await w.write(c);
        await w.commit();
      } catch (err) {
        await w.abort();
        throw err;
      }
    }
    return { digest: f.digest, size: f.size, head: f.head };
  }

  async cleanup(): Promise<void> {
    if (this.spoolDir) await rm(this.spoolDir, { recursive: true, force: true });
  }
}

/** The digest of a stored gzip blob's uncompressed content. */
async function gunzipDigest(store: ContentStore, digest: Digest): Promise<Digest> {
  const d = new Digester();
  const g = createGunzip();
  store.createReadStream(digest).pipe(g);
  for await (const c of g as AsyncIterable<Buffer>) d.update(c);
  return d.digest();
}

/** Checks that the image (or, for an index, at least one of its manifests) is complete in the store. */
async function checkComplete(store: ContentStore, d: Descriptor, what: string, depth = 0): Promise<void> {
  if (!(await store.has(d.digest)))
    throw new ImageError('NotFound', `${what}: ${d.digest} is not in the archive`);
  if (depth > 4) throw new ImageError('InvalidDocument', `${what}: indexes nested too deeply`);
  if (!isIndexMediaType(d.mediaType) && !isManifestMediaType(d.mediaType)) return;
  const doc = parseManifestOrIndex(
    await store.read(d.digest, { maxSize: MAX_DOCUMENT_SIZE }),
    d.mediaType,
    `${what}: ${d.digest}`,
  );
  if (doc.kind === 'manifest') {
    parseImageConfig(
      await store.read(doc.manifest.config.digest, { maxSize: MAX_DOCUMENT_SIZE }),
      `${what}: config`,
    );
    for (const l of doc.manifest.layers)
      if (!(await store.has(l.digest)))
        throw new ImageError('NotFound', `${what}: layer ${l.digest} is not in the archive`);
    return;
  }
  let firstError: unknown;
  let complete = 0;
  for (const m of doc.index.manifests) {
    try {
      await checkComplete(store, m, what, depth + 1);
      complete++;
    } catch (e) {
      firstError ??= e;
    }
  }
  if (complete === 0)
    throw firstError ?? new ImageError('InvalidDocument', `${what}: the index lists no manifests`);
}

/** A name from an OCI index entry: containerd's full name, else a `ref.name` that is a reference (not a bare tag). */
function ociName(d: Descriptor): string | undefined {
  const full = d.annotations?.[CONTAINERD_NAME_ANNOTATION];
  const ref = d.annotations?.[REF_NAME_ANNOTATION];
  for (const candidate of [full, ref]) {
    if (candidate === undefined) continue;
    if (candidate === ref && !/[/:@]/.test(candidate)) continue; // a bare tag: no repository to put it in
    try {
      return parseReference(candidate).toString();
    } catch {
      // not a reference
    }
  }
  return undefined;
}

function dockerManifest(doc: unknown): { Config: string; RepoTags: string[]; Layers: string[] }[] {
  if (!Array.isArray(doc))
    throw new ImageError('InvalidDocument', 'archive: manifest.json: expected an array');
  return doc.map((e, i) => {
    const o = e as { Config?: unknown; RepoTags?: unknown; Layers?: unknown };
    if (typeof o?.Config !== 'string')
      throw new ImageError('InvalidDocument', `archive: manifest.json[${i}].Config: expected a file name`);
    if (!Array.isArray(o.Layers) || !o.Layers.every((l) => typeof l === 'string'))
      throw new ImageError('InvalidDocument', `archive: manifest.json[${i}].Layers: expected file names`);
    if (o.RepoTags != null && (!Array.isArray(o.RepoTags) || !o.RepoTags.every((t) => typeof t === 'string')))
      throw new ImageError('InvalidDocument', `archive: manifest.json[${i}].RepoTags: expected names`);
    return {
      Config: o.Config,
      RepoTags: (o.RepoTags as string[] | null) ?? [],
      Layers: o.Layers as string[],
    };
  });
}

function parseJSON(data: Buffer, what: string): unknown {
  try {
    return JSON.parse(data.toString('utf8'));
  } catch (e) {
    throw new ImageError('InvalidDocument', `archive: ${what}: not JSON (${(e as Error).message})`);
  }
}

/**
 * Loads every image of a tar archive (plain or gzip) read from `input`.
 * @throws ImageError `InvalidDocument` (not an image archive, bad JSON, naming the file),
 * `DigestMismatch` (a blob or layer is not what its digest or diff ID says), `NotFound` (a file
 * the manifests name is missing).
 */
export function loadImages(input: Readable, opts: LoadOptions): Promise<LoadedImage[]> {
  return withStoreLease(opts.store, () => load(input, opts));
}

async function load(input: Readable, opts: LoadOptions): Promise<LoadedImage[]> {
  const { store } = opts;
  const loader = new Loader(store, opts.tmpDir ?? join(dirname(store.dir), 'tmp'));
  try {
    await readTar(input, (e) => loader.entry(e));
    const indexBytes = loader.bytes('index.json', 'index.json');
    const manifestBytes = loader.bytes('manifest.json', 'manifest.json');
    const layout = loader.bytes('oci-layout', 'oci-layout');
    const docker = manifestBytes ? dockerManifest(parseJSON(manifestBytes, 'manifest.json')) : undefined;
    /** Full names and the index.json entry to give them, set only at the very end. */
    const results: LoadedImage[] = [];

    if (indexBytes && layout) {
      const index = parseIndex(parseJSON(indexBytes, 'index.json'), 'archive: index.json');
      // RepoTags of Docker's manifest.json, by config file digest (combined format).
      const tagsByConfig = new Map<string, string[]>();
      for (const m of docker ?? []) {
        const f = loader.files.get(m.Config.replace(/^\.?\//, ''));
        if (f && f.kind === 'blob') tagsByConfig.set(f.digest, m.RepoTags);
      }
      const byDigest = new Map<string, LoadedImage>();
      for (const [i, m] of index.manifests.entries()) {
        const what = `archive: index.json manifests[${i}]`;
        await checkComplete(store, m, what);
        const { annotations: _, ...descriptor } = m;
        let r = byDigest.get(m.digest);
        if (!r) {
          r = { names: [], descriptor };
          if (isManifestMediaType(m.mediaType)) {
            const doc = parseManifestOrIndex(await store.read(m.digest), m.mediaType, what);
            if (doc.kind === 'manifest') r.id = doc.manifest.config.digest;
          }
          byDigest.set(m.digest, r);
          results.push(r);
        }
        const name = ociName(m);
        if (name !== undefined && !r.names.includes(name)) r.names.push(name);
        if (r.id !== undefined)
          for (const t of tagsByConfig.get(r.id) ?? []) {
            const n = parseReference(t).toString();
            if (!r.names.includes(n)) r.names.push(n);
          }
      }
    } else if (docker) {
      for (const [i, m] of docker.entries()) {
        const what = `archive: manifest.json[${i}]`;
        const cfg = await loader.toStore(m.Config, `${what}.Config`);
        const config = parseImageConfig(
          await store.read(cfg.digest, { maxSize: MAX_DOCUMENT_SIZE }),
          `${what} config`,
        );
        if (config.rootfs.diff_ids.length !== m.Layers.length)
          throw new ImageError(
            'InvalidDocument',
            `${what}: ${m.Layers.length} layers but the config has ${config.rootfs.diff_ids.length} diff_ids`,
          );
        const layers: Descriptor[] = [];
        for (const [j, path] of m.Layers.entries()) {
          const l = await loader.toStore(path, `${what}.Layers[${j}]`);
          const diffID = config.rootfs.diff_ids[j] as Digest;
          const compression = sniffCompression(l.head);
          let mediaType: string = MediaType.ociLayer;
          if (compression === 'none') {
            if (l.digest !== diffID)
              throw new ImageError(
                'DigestMismatch',
                `${what}.Layers[${j}] (${path}): content has digest ${l.digest}, the config's diff ID is ${diffID}`,
              );
          } else if (compression === 'gzip') {
            mediaType = MediaType.ociLayerGzip;
            const got = await gunzipDigest(store, l.digest);
            if (got !== diffID)
              throw new ImageError(
                'DigestMismatch',
                `${what}.Layers[${j}] (${path}): uncompressed content has digest ${got}, the config's diff ID is ${diffID}`,
              );
          } else mediaType = MediaType.ociLayerZstd; // not checked here: unpacking checks the diff ID
          layers.push({ mediaType, digest: l.digest, size: l.size });
        }
        const manifest: Manifest = {
          schemaVersion: 2,
          mediaType: MediaType.ociManifest,
          config: { mediaType: MediaType.ociConfig, digest: cfg.digest, size: cfg.size },
          layers,
        };
        const md = await store.putJSON(manifest, MediaType.ociManifest);
        const descriptor: Descriptor = {
          ...md,
          platform: {
            architecture: config.architecture,
            os: config.os,
            ...(config.variant ? { variant: config.variant } : {}),
          },
        };
        const names = m.RepoTags.map((t) => {
          try {
            return parseReference(t).toString();
          } catch (e) {
            throw new ImageError('InvalidReference', `${what}.RepoTags: ${(e as Error).message}`);
          }
        });
        results.push({ names, descriptor, id: cfg.digest });
      }
    } else {
      throw new ImageError(
        'InvalidDocument',
        'archive: neither an OCI image layout (oci-layout, index.json) nor a docker save archive (manifest.json)',
      );
    }
    if (results.length === 0) throw new ImageError('InvalidDocument', 'archive: it holds no images');

    // Everything is stored: now the names.
    await setNames(store, results);
    return results;
  } finally {
    await loader.cleanup();
  }
}

/** Points every name at its image, and keeps unnamed images as unnamed entries: one `index.json` update. */
async function setNames(store: ContentStore, results: LoadedImage[]): Promise<void> {
  const names = new Set(results.flatMap((r) => r.names));
  await store.updateIndex((index) => {
    const manifests = index.manifests.filter((m) => {
      const n = m.annotations?.[REF_NAME_ANNOTATION];
      return n === undefined || !names.has(n);
    });
    for (const r of results) {
      if (r.names.length === 0) {
        if (!manifests.some((m) => m.digest === r.descriptor.digest)) manifests.push(r.descriptor);
        continue;
      }
      for (const n of r.names)
        manifests.push({
          ...r.descriptor,
          annotations: { ...(r.descriptor.annotations ?? {}), [REF_NAME_ANNOTATION]: n },
        });
    }
    return { ...index, manifests };
  });
}
