/**
 * Unpacks one OCI layer (a tar, gzip'd, zstd'd or plain) into a directory, verifying the blob's
 * digest and computing the diffID while it streams.
 *
 * Containment: every parent directory is opened with `openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS)`
 * relative to the layer's root fd, so a symlink met on the way (an absolute one, `..` chains) is
 * resolved as if the layer root were `/`; the entry itself is created relative to that parent fd
 * and never followed (`O_EXCL|O_NOFOLLOW`, `mknodat`, `symlinkat`, `linkat` without FOLLOW).
 * Names with a `..` component are refused; a leading `/` is dropped (as Docker and containerd do).
 *
 * The filesystem work is synchronous on purpose: a layer has tens of thousands of small files and
 * a promise per syscall costs more than the syscall. gzip blobs of 8 MiB or more (files, or streams
 * by their descriptor's size) are read, hashed and inflated on a thread of their own (`inflate.ts`);
 * smaller ones on this thread into one reused buffer ({@link InPlaceGunzip}); zstd runs on libuv's
 * pool. Blob reads are asynchronous.
 */

import { createHash, type Hash } from 'node:crypto';
import {
  type BigIntStats,
  chmodSync,
  createReadStream,
  fchmodSync,
  fchownSync,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  rmSync,
  type Stats,
  statSync,
  writeSync,
} from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { type Readable, Transform, type TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
// types only: a worker thread loads this module, and @tsc/image's index costs ~200 ms to load
import type { Compression, Digest } from '@tsc/image';
import { closeFd, S } from '@tsc/syscall';
import { isUnionfsError, UnionfsError } from './errors.js';
import { InPlaceGunzip } from './gunzip.js';
import { type InflateResult, inflateInWorker } from './inflate.js';
import {
  errCode,
  fchownat,
  fdPath,
  fsetxattr,
  lgetxattrs,
  linkat,
  lsetxattr,
  makedev,
  mkdirat,
  mknodat,
  O,
  openat,
  openInRoot,
  setxattr,
  symlinkat,
  syncfs,
  type Timespec,
  unlinkat,
  utimensat,
} from './sys.js';
import { type TarEntry, TarParser, type TarSink } from './tar.js';

/**
 * How whiteouts are written:
 * - `overlay`: as overlayfs reads them — a 0/0 char device for `.wh.NAME`, the
 *   `trusted.overlay.opaque=y` xattr for `.wh..wh..opq` (the layer is a layer of its own);
 * - `overlay-user`: the same with `user.overlay.opaque` (overlay mounted with `userxattr`, rootless);
 * - `aufs`: kept as aufs reads them, `.wh.NAME` files (the archive's own form);
 * - `applied`: by deleting from the directory, which already holds the layers below (copy, btrfs).
 */
export type WhiteoutFormat = 'overlay' | 'overlay-user' | 'aufs' | 'applied';

export interface UnpackLayerOptions {
  /** How the blob is compressed (from the media type, see `layerCompression`). */
  compression: Compression;
  /** How whiteouts become files. */
  whiteouts: WhiteoutFormat;
  /** The blob's digest: checked as it streams (`DigestMismatch`). */
  digest?: Digest;
  /** The blob's size from its descriptor (`SizeMismatch`). */
  size?: number;
  /** The expected diffID (sha256 of the uncompressed tar), from the image config. */
  diffID?: Digest;
  /**
   * For the overlay formats: the directories of the layers below, topmost first. A hardlink whose
   * target is in a lower layer copies that target up first; a directory created only because an
   * entry needs it takes the lower directory's owner and mode, so the merged view keeps them.
   * As a function, the layer is unpacked without them (in parallel with the layers below) and the
   * function is awaited at the end (when the layers below are complete) to fix those cases up.
   */
  lowers?: readonly string[] | (() => Promise<readonly string[]>);
  /** Skip what needs privilege (chown, device nodes, trusted.* xattrs) and report it. Default: not uid 0. */
  rootless?: boolean;
  /**
   * `dir` exists already (it holds the layers below, for `applied` whiteouts) and is the caller's:
   * not created here, and not removed on failure.
   */
  existing?: boolean;
  /**
   * Read, verify and inflate a gzip blob on a thread of its own, so that it overlaps the parsing
   * and file creation: `auto` (default) for blobs of 8 MiB or more (a stream: by its descriptor's
   * `size`), `always`, `never` (all on the calling thread). A stream's bytes are copied to the
   * thread as they arrive.
   */
  inflateThread?: 'auto' | 'always' | 'never';
  /**
   * Flush the filesystem (`syncfs`) once every entry is written, before returning: the layer's
   * files are on disk when the promise resolves.
   */
  sync?: boolean;
  /**
   * For a blob file read on the inflate thread: called with the `fstat` (bigint) of the
   * descriptor that is read; `true` when the caller vouches that this open file is exactly the
   * blob `digest` (a content store that checked and committed it, `ContentStore.verifiedHere`).
   * Its bytes are then not hashed again; the size is still counted and the diffID checked.
   */
  blobVerified?: (stats: BigIntStats) => boolean;
  signal?: AbortSignal;
  /** Called with the compressed bytes read so far, at most every 64 KiB of input. */
  onProgress?: (bytes: number) => void;
}

export interface UnpackLayerResult {
  /** sha256 of the uncompressed tar. */
  diffID: Digest;
  /** The blob's digest (as read). */
  digest: Digest;
  /** Compressed and uncompressed sizes. */
  compressedSize: number;
  size: number;
  entries: number;
  /** What could not be done (rootless: `chown`, `mknod`, privileged xattrs), one line each. */
  skipped: string[];
  /** `content-store` when `blobVerified` vouched for the blob file and it was not hashed again. */
  blobVerifiedBy: 'unpack' | 'content-store';
}

const MAX_SKIPPED = 200;
/** After a failed entry, blob bytes still read to check the blob's digest before reporting. */
const DRAIN_LIMIT = 256 << 20;
const IS_ROOT = process.getuid?.() === 0 && process.getgid?.() === 0;
const DIR_CACHE = 128;
const OPAQUE_TRUSTED = 'trusted.overlay.opaque';
const OPAQUE_USER = 'user.overlay.opaque';
const Y = Buffer.from('y');

let umaskCache: number | undefined;
function umask(): number {
  if (umaskCache === undefined) {
    const m = /^Umask:\s+([0-7]+)/m.exec(readFileSync('/proc/self/status', 'latin1'));
    umaskCache = m?.[1] ? Number.parseInt(m[1], 8) : 0o022;
  }
  return umaskCache;
}

/**
 * Cleans an archive name into a relative path: `./` and `/` prefixes and trailing slashes dropped,
 * empty and `.` components removed. `..` anywhere is refused.
 * @returns '' for the root itself.
 */
export function cleanPath(name: string, what: string): string {
  const parts: string[] = [];
  for (const p of name.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') throw new UnionfsError('Escape', `${what} "${name}" has a ".." component (refused)`);
    if (p.includes('\0')) throw new UnionfsError('InvalidTar', `NUL in ${what} "${name}"`);
    parts.push(p);
  }
  return parts.join('/');
}

/** `target` (a symlink's content) seen from directory `dir`, lexically, clamped at the root. */
function inRootJoin(dir: string, target: string): string {
  const out = target.startsWith('/') ? [] : dir.split('/').filter(Boolean);
  for (const p of target.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') out.pop();
    else out.push(p);
  }
  return out.join('/');
}

function splitParent(rel: string): [string, string] {
  const i = rel.lastIndexOf('/');
  return i < 0 ? ['', rel] : [rel.slice(0, i), rel.slice(i + 1)];
}

function typeBits(t: TarEntry['type']): number {
  switch (t) {
    case 'char':
      return S.IFCHR;
    case 'block':
      return S.IFBLK;
    case 'fifo':
      return S.IFIFO;
    default:
      return 0;
  }
}

interface DirMeta {
  rel: string;
  mode: number;
  atime: Timespec;
  mtime: Timespec;
}

/** The synchronous half: turns tar entries into files below a root fd. */
export class Extractor implements TarSink {
  readonly skipped: string[] = [];
  #skippedCount = 0;
  #rootFd: number;
  #format: WhiteoutFormat;
  #rootless: boolean;
  #lowers: readonly string[];
  /** Lowers come later (`fixup`): what needed them so far. */
  #deferred: { implicit: string[]; links: { rel: string; target: string; path: string }[] } | undefined;
  #lowerFds: (number | undefined)[] = [];
  #dirs = new Map<string, number>();
  #dirMeta: DirMeta[] = [];
  /** Paths this layer wrote (applied format: whiteouts and opaque markers must not delete them). */
  #written = new Set<string>();
  /** Directories this layer made opaque (overlay formats). */
  #opaque = new Set<string>();
  #file: { fd: number; e: TarEntry; rel: string; pos: number } | undefined;

  constructor(
    rootFd: number,
    opts: { whiteouts: WhiteoutFormat; rootless: boolean; lowers?: readonly string[]; deferLowers?: boolean },
  ) {
    if (opts.deferLowers) this.#deferred = { implicit: [], links: [] };
    this.#rootFd = rootFd;
    this.#format = opts.whiteouts;
    this.#rootless = opts.rootless;
    this.#lowers = opts.lowers ?? [];
  }

  #skip(what: string): void {
    this.#skippedCount++;
    if (this.skipped.length < MAX_SKIPPED) this.skipped.push(what);
    else if (this.skipped.length === MAX_SKIPPED) this.skipped.push('… (more skipped, list truncated)');
  }

  entry(e: TarEntry): void {
    let rel: string;
    try {
      rel = cleanPath(e.path, 'its name');
      this.#entry(e, rel);
    } catch (err) {
      throw this.#named(e.path, err);
    }
  }

  #named(path: string, err: unknown): unknown {
    if (isUnionfsError(err)) {
      if (err.message.startsWith('layer entry ')) return err;
      return new UnionfsError(err.code, `layer entry "${path}": ${err.message}`, { cause: err.cause });
    }
    const code = errCode(err);
    const msg = err instanceof Error ? err.message : String(err);
    return new UnionfsError(
      code === 'EXDEV' || code === 'ELOOP' ? 'Escape' : 'System',
      `layer entry "${path}": ${msg}`,
      { cause: err },
    );
  }

  data(chunk: Buffer): void {
    const f = this.#file;
    if (!f) return;
    let off = 0;
    while (off < chunk.length) {
      const n = writeSync(f.fd, chunk, off, chunk.length - off, f.pos);
      off += n;
      f.pos += n;
    }
  }

  end(): void {
    const f = this.#file;
    if (!f) return;
    this.#file = undefined;
    try {
      this.#ownModeXattrs(f.fd, f.e, f.rel, true);
      utimensat(f.fd, null, f.e.atime ?? f.e.mtime, f.e.mtime);
    } catch (err) {
      throw this.#named(f.e.path, err);
    } finally {
      closeFd(f.fd);
    }
  }

  #entry(e: TarEntry, rel: string): void {
    const [parentRel, base] = splitParent(rel);
    if (base.startsWith('.wh.')) {
      this.#whiteout(e, parentRel, base);
      return;
    }
    if (rel === '') {
      if (e.type !== 'dir') throw new UnionfsError('InvalidTar', 'the layer root is not a directory');
      this.#ownDirByFd(this.#rootFd, e, '');
      return;
    }
    const pfd = this.#parent(parentRel);
    if (this.#format === 'applied') this.#written.add(rel);
    switch (e.type) {
      case 'dir': {
        let overWhiteout = false;
        try {
          mkdirat(pfd, base, 0o700);
        } catch (err) {
          if (errCode(err) !== 'EEXIST') throw err;
          const st = lstatSync(fdPath(pfd, base));
          if (!st.isDirectory()) {
            overWhiteout = st.isCharacterDevice() && st.rdev === 0;
            this.#remove(pfd, base, rel, st);
            mkdirat(pfd, base, 0o700);
          }
        }
        const fd = openat(pfd, base, O.RDONLY | O.DIRECTORY | O.NOFOLLOW);
        if (overWhiteout && (this.#format === 'overlay' || this.#format === 'overlay-user')) {
          // `.wh.NAME` then `NAME/` in one layer: a new directory, not a merge with the lower one
          const name = this.#format === 'overlay' ? OPAQUE_TRUSTED : OPAQUE_USER;
          this.#setXattr(() => fsetxattr(fd, name, Y), name, rel);
          this.#opaque.add(rel);
        }
        this.#ownDirByFd(fd, e, rel);
        this.#cacheDir(rel, fd);
        return;
      }
      case 'file': {
        const flags = O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW;
        const mode = e.mode & 0o777;
        let fd: number;
        try {
          fd = openat(pfd, base, flags, mode);
        } catch (err) {
          if (errCode(err) !== 'EEXIST') throw err;
          this.#remove(pfd, base, rel);
          fd = openat(pfd, base, flags, mode);
        }
        this.#file = { fd, e, rel, pos: 0 };
        return;
      }
      case 'symlink':
        this.#create(pfd, base, rel, () => symlinkat(e.linkpath, pfd, base));
        this.#ownByName(pfd, base, e, rel);
        return;
      case 'link': {
        const target = cleanPath(e.linkpath, 'its hardlink target');
        if (target === '') throw new UnionfsError('InvalidTar', 'hardlink to the layer root');
        const [tParent, tBase] = splitParent(target);
        const tryLink = (): boolean => {
          let tfd: number;
          try {
            tfd = this.#parent(tParent, false);
            this.#create(pfd, base, rel, () => linkat(tfd, tBase, pfd, base));
            return true;
          } catch (err) {
            if (errCode(err) === 'ENOENT') return false;
            throw err;
          }
        };
        if (tryLink()) return;
        if (this.#deferred) {
          this.#deferred.links.push({ rel, target, path: e.path });
          return;
        }
        if (!(this.#copyUp(target) && tryLink()))
          throw new UnionfsError('InvalidTar', `hardlink target "${e.linkpath}" is not in the layer`);
        return;
      }
      case 'char':
      case 'block':
      case 'fifo': {
        const dev = makedev(e.devmajor, e.devminor);
        try {
          this.#create(pfd, base, rel, () => mknodat(pfd, base, typeBits(e.type) | (e.mode & 0o7777), dev));
        } catch (err) {
          if (errCode(err) !== 'EPERM') throw err;
          this.#skip(`mknod ${rel} (${e.type} ${e.devmajor}:${e.devminor}): EPERM`);
          return;
        }
        this.#ownByName(pfd, base, e, rel, (e.mode & umask()) !== 0);
        return;
      }
    }
  }

  /** Runs `make`; if the name exists, removes what is there (a directory with its contents) and retries. */
  #create(pfd: number, base: string, rel: string, make: () => void): void {
    try {
      make();
    } catch (err) {
      if (errCode(err) !== 'EEXIST') throw err;
      this.#remove(pfd, base, rel);
      make();
    }
  }

  #remove(pfd: number, base: string, rel: string, st?: Stats): void {
    const s = st ?? lstatSync(fdPath(pfd, base));
    if (s.isDirectory()) rmSync(fdPath(pfd, base), { recursive: true, force: true });
    else unlinkat(pfd, base, false);
    if (s.isDirectory() || s.isSymbolicLink()) this.#forget(rel);
  }

  /** Drops cached directory fds at or below `rel` (it was replaced or deleted). */
  #forget(rel: string): void {
    for (const [k, fd] of this.#dirs) {
      if (k === rel || k.startsWith(`${rel}/`) || rel === '') {
        closeFd(fd);
        this.#dirs.delete(k);
      }
    }
  }

  #cacheDir(rel: string, fd: number): void {
    const old = this.#dirs.get(rel);
    if (old !== undefined) {
      closeFd(old);
      this.#dirs.delete(rel);
    }
    if (this.#dirs.size >= DIR_CACHE) {
      const [k, v] = this.#dirs.entries().next().value as [string, number];
      closeFd(v);
      this.#dirs.delete(k);
    }
    this.#dirs.set(rel, fd);
  }

  /**
   * An fd of the directory `rel` inside the root, resolved in-root; made (with its missing parents)
   * when `create` and it does not exist.
   */
  #parent(rel: string, create = true, depth = 0): number {
    if (rel === '') return this.#rootFd;
    if (depth > 40) throw new UnionfsError('Escape', `too many levels of symlinks resolving "${rel}"`);
    const cached = this.#dirs.get(rel);
    if (cached !== undefined) {
      // keep recently used directories at the end (LRU)
      this.#dirs.delete(rel);
      this.#dirs.set(rel, cached);
      return cached;
    }
    let fd: number;
    try {
      fd = openInRoot(this.#rootFd, rel, O.PATH | O.DIRECTORY);
    } catch (err) {
      const code = errCode(err);
      if (code === 'ENOTDIR')
        throw new UnionfsError('InvalidTar', `a parent of it ("${rel}" or above) is not a directory`);
      if (code !== 'ENOENT' || !create) throw err;
      const [pp, base] = splitParent(rel);
      const pfd = this.#parent(pp, true, depth + 1);
      try {
        mkdirat(pfd, base, 0o755);
      } catch (e2) {
        if (errCode(e2) !== 'EEXIST') throw e2;
        // A symlink to a place that does not exist yet: make the directory where it points, read
        // inside the layer (as securejoin's MkdirAll does). The open below is contained anyway.
        const st = lstatSync(fdPath(pfd, base));
        if (!st.isSymbolicLink())
          throw new UnionfsError('InvalidTar', `its parent "${rel}" is not a directory`);
        const target = inRootJoin(pp, readlinkSync(fdPath(pfd, base)));
        fd = this.#parent(target, true, depth + 1);
        this.#cacheDir(rel, openInRoot(this.#rootFd, rel, O.PATH | O.DIRECTORY));
        return fd;
      }
      if (this.#format === 'applied') this.#written.add(rel);
      if (this.#deferred) this.#deferred.implicit.push(rel);
      else this.#implicitDirMeta(pfd, base, rel);
      fd = openInRoot(this.#rootFd, rel, O.PATH | O.DIRECTORY);
    }
    this.#cacheDir(rel, fd);
    return fd;
  }

  /** A directory an entry needed but the archive did not list: owner and mode from the layer below. */
  #implicitDirMeta(pfd: number, base: string, rel: string): void {
    for (let i = 0; i < this.#lowers.length; i++) {
      const lfd = this.#lowerFd(i);
      let fd: number;
      try {
        fd = openInRoot(lfd, rel, O.PATH | O.NOFOLLOW);
      } catch {
        continue;
      }
      try {
        const st = fstatSync(fd);
        if (!st.isDirectory()) return;
        if (!this.#rootless && (st.uid !== 0 || st.gid !== 0)) fchownat(pfd, base, st.uid, st.gid);
        this.#dirMeta.push({
          rel,
          mode: st.mode & 0o7777,
          atime: { sec: Math.floor(st.atimeMs / 1000), nsec: 0 },
          mtime: { sec: Math.floor(st.mtimeMs / 1000), nsec: 0 },
        });
        return;
      } finally {
        closeFd(fd);
      }
    }
  }

  #lowerFd(i: number): number {
    let fd = this.#lowerFds[i];
    if (fd === undefined) {
      fd = openat(-100, this.#lowers[i] as string, O.PATH | O.DIRECTORY);
      this.#lowerFds[i] = fd;
    }
    return fd;
  }

  /** Copies a file or symlink from the layers below into this layer (for a hardlink to it). */
  #copyUp(rel: string): boolean {
    const [pRel, base] = splitParent(rel);
    for (let i = 0; i < this.#lowers.length; i++) {
      let lpfd: number;
      try {
        lpfd = openInRoot(this.#lowerFd(i), pRel, O.PATH | O.DIRECTORY);
      } catch {
        continue;
      }
      try {
        let st: Stats;
        try {
          st = lstatSync(fdPath(lpfd, base));
        } catch {
          continue;
        }
        if (!st.isFile() && !st.isSymbolicLink()) return false; // a whiteout, a directory
        const pfd = this.#parent(pRel, true);
        const e: TarEntry = {
          path: rel,
          type: st.isFile() ? 'file' : 'symlink',
          size: st.size,
          mode: st.mode & 0o7777,
          uid: st.uid,
          gid: st.gid,
          mtime: { sec: Math.floor(st.mtimeMs / 1000), nsec: 0 },
          atime: undefined,
          linkpath: '',
          devmajor: 0,
          devminor: 0,
          xattrs: lgetxattrs(fdPath(lpfd, base)),
        };
        if (st.isSymbolicLink()) {
          symlinkat(readlinkSync(fdPath(lpfd, base)), pfd, base);
          this.#ownByName(pfd, base, e, rel);
          return true;
        }
        const rfd = openat(lpfd, base, O.RDONLY | O.NOFOLLOW);
        let wfd: number | undefined;
        try {
          wfd = openat(pfd, base, O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW, 0o600);
          const buf = Buffer.allocUnsafe(1 << 20);
          let pos = 0;
          for (;;) {
            const n = readSync(rfd, buf, 0, buf.length, pos);
            if (n === 0) break;
            let w = 0;
            while (w < n) w += writeSync(wfd, buf, w, n - w, pos + w);
            pos += n;
          }
          this.#ownModeXattrs(wfd, e, rel, true);
          fchmodSync(wfd, e.mode);
          utimensat(wfd, null, e.mtime, e.mtime);
        } finally {
          closeFd(rfd);
          if (wfd !== undefined) closeFd(wfd);
        }
        return true;
      } finally {
        closeFd(lpfd);
      }
    }
    return false;
  }

  #xattrAllowed(name: string, rel: string): boolean {
    if (name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.')) {
      this.#skip(`xattr ${name} on ${rel} (overlay's own attributes are never taken from a layer)`);
      return false;
    }
    return true;
  }

  #setXattr(set: () => void, name: string, rel: string): void {
    try {
      set();
    } catch (err) {
      const code = errCode(err);
      if (
        (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') &&
        (this.#rootless || !name.startsWith('user.'))
      )
        this.#skip(`xattr ${name} on ${rel}: ${code}`);
      else throw err;
    }
  }

  /** chown, chmod, xattrs (in that order: chown clears setuid bits and file capabilities). */
  #ownModeXattrs(fd: number, e: TarEntry, rel: string, chmod: boolean): void {
    const chowned = this.#chown(() => fchownSync(fd, e.uid, e.gid), e, rel);
    if (chmod && (chowned || e.mode & 0o7000 || e.mode & umask())) fchmodSync(fd, e.mode);
    for (const [k, v] of e.xattrs)
      if (this.#xattrAllowed(k, rel)) this.#setXattr(() => fsetxattr(fd, k, v), k, rel);
  }

  /** Returns whether it changed the owner. */
  #chown(doit: () => void, e: TarEntry, rel: string): boolean {
    if (this.#rootless) {
      if (e.uid !== 0 || e.gid !== 0) this.#skip(`chown ${rel} to ${e.uid}:${e.gid} (rootless)`);
      return false;
    }
    if (e.uid === 0 && e.gid === 0 && IS_ROOT) return false;
    try {
      doit();
      return true;
    } catch (err) {
      const code = errCode(err);
      if (code !== 'EPERM' && code !== 'EINVAL') throw err;
      this.#skip(`chown ${rel} to ${e.uid}:${e.gid}: ${code}`);
      return false;
    }
  }

  #ownDirByFd(fd: number, e: TarEntry, rel: string): void {
    this.#ownModeXattrs(fd, e, rel, false);
    this.#dirMeta.push({ rel, mode: e.mode, atime: e.atime ?? e.mtime, mtime: e.mtime });
  }

  /** Owner, mode, xattrs and times of a symlink or device node, by name in its parent. */
  #ownByName(pfd: number, base: string, e: TarEntry, rel: string, chmod = false): void {
    const chowned = this.#chown(() => fchownat(pfd, base, e.uid, e.gid), e, rel);
    if (e.type !== 'symlink' && (chmod || chowned || e.mode & 0o7000)) {
      const fd = openat(pfd, base, O.PATH | O.NOFOLLOW);
      try {
        chmodSync(fdPath(fd), e.mode); // through the O_PATH fd's magic link: the node itself
      } finally {
        closeFd(fd);
      }
    }
    for (const [k, v] of e.xattrs)
      if (this.#xattrAllowed(k, rel)) this.#setXattr(() => lsetxattr(fdPath(pfd, base), k, v), k, rel);
    utimensat(pfd, base, e.atime ?? e.mtime, e.mtime);
  }

  #whiteout(e: TarEntry, parentRel: string, base: string): void {
    const pfd = this.#parent(parentRel);
    if (base === '.wh..wh..opq') {
      switch (this.#format) {
        case 'aufs':
          this.#create(pfd, base, parentRel ? `${parentRel}/${base}` : base, () => {
            const fd = openat(pfd, base, O.WRONLY | O.CREAT | O.EXCL | O.NOFOLLOW, 0o444);
            closeFd(fd);
          });
          return;
        case 'overlay':
        case 'overlay-user': {
          const name = this.#format === 'overlay' ? OPAQUE_TRUSTED : OPAQUE_USER;
          this.#setXattr(() => setxattr(fdPath(pfd), name, Y), name, parentRel || '/');
          // overlay lists an opaque directory as it is: whiteouts in it would show up as entries
          this.#opaque.add(parentRel);
          for (const child of readdirSync(fdPath(pfd))) {
            const st = lstatSync(fdPath(pfd, child));
            if (st.isCharacterDevice() && st.rdev === 0) unlinkat(pfd, child, false);
          }
          return;
        }
        case 'applied':
          this.#clearExceptWritten(pfd, parentRel);
          return;
      }
    }
    if (base.startsWith('.wh..wh.')) return; // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs)
    const target = base.slice(4);
    if (target === '' || target === '.' || target === '..')
      throw new UnionfsError('InvalidTar', `bad whiteout name "${e.path}"`);
    const rel = parentRel ? `${parentRel}/${target}` : target;
    switch (this.#format) {
      case 'aufs': {
        const fd = openat(pfd, base, O.WRONLY | O.CREAT | O.NOFOLLOW, 0o444);
        closeFd(fd);
        return;
      }
      case 'overlay':
      case 'overlay-user':
        if (this.#opaque.has(parentRel)) return; // the opaque marker hides the lower entry already
        try {
          mknodat(pfd, target, S.IFCHR, 0n);
        } catch (err) {
          const code = errCode(err);
          if (code === 'EEXIST') return; // this layer wrote the path: it already hides the lower one
          if (code === 'EPERM') {
            this.#skip(`whiteout ${rel}: mknod EPERM (no CAP_MKNOD)`);
            return;
          }
          throw err;
        }
        this.#chown(() => fchownat(pfd, target, 0, 0), { ...e, uid: 0, gid: 0 }, rel);
        return;
      case 'applied': {
        if (this.#written.has(rel)) return;
        let st: Stats;
        try {
          st = lstatSync(fdPath(pfd, target));
        } catch {
          return;
        }
        this.#remove(pfd, target, rel, st);
        return;
      }
    }
  }

  /** `.wh..wh..opq` on a merged tree: delete what lower layers put in the directory. */
  #clearExceptWritten(dfd: number, rel: string): void {
    for (const name of readdirSync(fdPath(dfd))) {
      const child = rel ? `${rel}/${name}` : name;
      const st = lstatSync(fdPath(dfd, name));
      if (this.#written.has(child)) {
        if (st.isDirectory()) {
          const cfd = openat(dfd, name, O.PATH | O.DIRECTORY | O.NOFOLLOW);
          try {
            this.#clearExceptWritten(cfd, child);
          } finally {
            closeFd(cfd);
          }
        }
        continue;
      }
      this.#remove(dfd, name, child, st);
    }
  }

  /**
   * With `deferLowers`: now that the layers below are complete, give implicit directories their
   * lower owner and mode, and make the hardlinks whose targets are in lower layers.
   */
  fixup(lowers: readonly string[]): void {
    const d = this.#deferred;
    this.#deferred = undefined;
    this.#lowers = lowers;
    if (!d) return;
    for (const rel of d.implicit) {
      const [pp, base] = splitParent(rel);
      let pfd: number;
      try {
        pfd = this.#parent(pp, false);
      } catch {
        continue;
      }
      this.#implicitDirMeta(pfd, base, rel);
    }
    for (const l of d.links) {
      try {
        const [pRel, base] = splitParent(l.rel);
        const pfd = this.#parent(pRel, false);
        try {
          lstatSync(fdPath(pfd, base));
          continue; // a later entry of this layer took the name
        } catch {
          // free: link it
        }
        const [tParent, tBase] = splitParent(l.target);
        const link = () => linkat(this.#parent(tParent, false), tBase, pfd, base);
        try {
          link();
        } catch (err) {
          if (errCode(err) !== 'ENOENT' || !this.#copyUp(l.target))
            throw new UnionfsError(
              'InvalidTar',
              `hardlink target "${l.target}" is not in the layer or below`,
            );
          link();
        }
      } catch (err) {
        throw this.#named(l.path, err);
      }
    }
  }

  /** Applies the deferred directory modes and times (after their contents were written). */
  finish(): void {
    for (const fd of this.#dirs.values()) closeFd(fd);
    this.#dirs.clear();
    for (const d of this.#dirMeta) {
      // One open that can be changed (a thousand directories in a big layer): when it fails
      // (replaced or deleted later in the layer, no permission) the path below decides as before.
      let rfd: number | undefined;
      if (d.rel !== '') {
        try {
          rfd = openInRoot(this.#rootFd, d.rel, O.RDONLY | O.NOFOLLOW | O.DIRECTORY);
        } catch {
          rfd = undefined;
        }
      }
      if (rfd === undefined) {
        let fd: number;
        try {
          fd =
            d.rel === '' ? this.#rootFd : openInRoot(this.#rootFd, d.rel, O.PATH | O.NOFOLLOW | O.DIRECTORY);
        } catch {
          continue; // replaced or deleted later in the layer
        }
        try {
          rfd = openat(-100, fdPath(fd), O.RDONLY | O.DIRECTORY);
        } finally {
          if (fd !== this.#rootFd) closeFd(fd);
        }
      }
      try {
        fchmodSync(rfd, d.mode);
        utimensat(rfd, null, d.atime, d.mtime);
      } finally {
        closeFd(rfd);
      }
    }
    this.#dirMeta = [];
    this.close();
  }

  close(): void {
    if (this.#file) {
      closeFd(this.#file.fd);
      this.#file = undefined;
    }
    for (const fd of this.#dirs.values()) closeFd(fd);
    this.#dirs.clear();
    for (const fd of this.#lowerFds) if (fd !== undefined) closeFd(fd);
    this.#lowerFds = [];
  }

  get skippedCount(): number {
    return this.#skippedCount;
  }
}

type Algorithm = 'sha256' | 'sha512';
const algorithmOf = (d: Digest): Algorithm => d.slice(0, d.indexOf(':')) as Algorithm;
const hexDigest = (algorithm: Algorithm, h: Hash): Digest => `${algorithm}:${h.digest('hex')}` as Digest;

/** An error of @tsc/image (a caller's stream may throw one), recognised by its brand. */
function isImageError(e: unknown): e is Error & { code: string } {
  return (
    typeof e === 'object' &&
    e !== null &&
    (e as Record<symbol, unknown>)[Symbol.for('@tsc/image.ImageError')] === true
  );
}

/**
 * The blob as read: counts it (progress), hashes it and, with a descriptor, fails as soon as it is
 * longer than its size and at the end when its size or digest differ.
 */
class BlobCheck extends Transform {
  readonly algorithm: Algorithm;
  bytes = 0;
  #hash: Hash;
  #reported = 0;
  #digest: Digest | undefined;
  #expected: Digest | undefined;
  #size: number | undefined;
  #onProgress: ((bytes: number) => void) | undefined;

  constructor(expected: Digest | undefined, size: number | undefined, onProgress?: (bytes: number) => void) {
    super();
    this.algorithm = expected ? algorithmOf(expected) : 'sha256';
    this.#hash = createHash(this.algorithm);
    this.#expected = expected;
    this.#size = size;
    this.#onProgress = onProgress;
  }

  override _transform(chunk: Buffer, _e: BufferEncoding, done: TransformCallback): void {
    this.#hash.update(chunk);
    this.bytes += chunk.length;
    if (this.#onProgress && this.bytes - this.#reported >= 65536) {
      this.#reported = this.bytes;
      this.#onProgress(this.bytes);
    }
    if (this.#expected && this.#size !== undefined && this.bytes > this.#size) {
      done(
        new UnionfsError(
          'SizeMismatch',
          `layer ${this.#expected}: more than the ${this.#size} bytes its descriptor gives`,
        ),
      );
      return;
    }
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    const got = this.digest();
    if (this.#expected && this.#size !== undefined && this.bytes !== this.#size) {
      done(
        new UnionfsError(
          'SizeMismatch',
          `layer ${this.#expected}: ${this.bytes} bytes, its descriptor gives ${this.#size}`,
        ),
      );
      return;
    }
    if (this.#expected && got !== this.#expected) {
      done(
        new UnionfsError(
          'DigestMismatch',
          `layer ${this.#expected}: content has digest ${got}, expected ${this.#expected}`,
        ),
      );
      return;
    }
    done();
  }

  /** The digest of what was read (final once the stream ended). */
  digest(): Digest {
    this.#digest ??= hexDigest(this.algorithm, this.#hash);
    return this.#digest;
  }
}

/**
 * gzip blob files at least this big get an inflate thread: starting one costs ~90 ms of CPU, and
 * inflating takes ~10 ms per MB of blob, so below this the thread costs more than it overlaps.
 */
const INFLATE_THREAD_MIN = 8 << 20;

function blobSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0; // the stream path reports the error
  }
}

let inPlaceOk: boolean | undefined;
function inPlaceGunzipWorks(): boolean {
  if (inPlaceOk === undefined) {
    const g = InPlaceGunzip.create();
    inPlaceOk = g !== undefined;
    g?.close();
  }
  return inPlaceOk;
}

async function decompressor(c: Compression): Promise<Transform | undefined> {
  if (c === 'gzip') return createGunzip({ chunkSize: 1 << 20 });
  if (c === 'zstd') {
    const { DecompressStream } = await import('zstd-napi');
    return new DecompressStream();
  }
  return undefined;
}

/**
 * Throws DigestMismatch/SizeMismatch when the file is not the blob `digest` names; reads at most
 * DRAIN_LIMIT bytes (a bigger file is not judged here).
 */
async function checkBlobFile(path: string, digest: Digest, size: number | undefined): Promise<void> {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (size !== undefined && st.size !== size)
    throw new UnionfsError('SizeMismatch', `layer ${digest}: ${st.size} bytes, its descriptor gives ${size}`);
  if (st.size > DRAIN_LIMIT) return;
  const d = createHash(algorithmOf(digest));
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) d.update(chunk as Buffer);
  } catch {
    return;
  }
  const got = hexDigest(algorithmOf(digest), d);
  if (got !== digest)
    throw new UnionfsError(
      'DigestMismatch',
      `layer ${digest}: content has digest ${got}, expected ${digest}`,
    );
}

interface Sums {
  diffID: Digest;
  digest: Digest;
  compressedSize: number;
  size: number;
  /** The digest was not computed: the caller vouched for the blob file (`blobVerified`). */
  vouched?: boolean;
}

/**
 * After a failed entry, the rest of the blob is still read (not parsed, at most DRAIN_LIMIT bytes)
 * when its digest is checked, so that a blob that is not the one its descriptor names is reported
 * as DigestMismatch/SizeMismatch, not as whatever its first bad entry happens to be. The entry
 * error is reported when the blob verifies.
 */
class EntryErrors {
  error: unknown;
  #readAt = 0;
  readonly #drain: boolean;
  constructor(drain: boolean) {
    this.#drain = drain;
  }
  /** Parses `piece` unless an entry failed already; `read`: blob bytes read so far. */
  parse(parser: TarParser, piece: Buffer, read: number): void {
    if (this.error !== undefined) {
      if (read - this.#readAt > DRAIN_LIMIT) throw this.error;
      return;
    }
    try {
      parser.write(piece);
    } catch (e) {
      if (!this.#drain) throw e;
      this.error = e;
      this.#readAt = read;
    }
  }
}

/** The layer through Node streams: any blob (a path or a stream), any compression. */
async function viaStream(
  blob: string | Readable,
  parser: TarParser,
  opts: UnpackLayerOptions,
): Promise<Sums> {
  const diff = createHash('sha256');
  let diffSize = 0;
  const src = typeof blob === 'string' ? createReadStream(blob, { highWaterMark: 1 << 20 }) : blob;
  const check = new BlobCheck(opts.digest, opts.size, opts.onProgress);
  // An entry that fails does not end the stream at once when the blob's digest is checked: the
  // rest is read (not parsed, at most DRAIN_LIMIT bytes of the blob) so that a blob that is not
  // the one its descriptor names is reported as DigestMismatch/SizeMismatch, not as whatever
  // its first bad entry happens to be. The entry error is reported when the blob verifies.
  let entryError: unknown;
  let readAtError = 0;
  const drain = opts.digest !== undefined;
  // one piece of the tar: hashed (the diffID), then parsed into files
  const take = (piece: Buffer): void => {
    diff.update(piece);
    diffSize += piece.length;
    if (entryError !== undefined) return;
    try {
      parser.write(piece);
    } catch (e) {
      if (!drain) throw e;
      entryError = e;
      readAtError = check.bytes;
    }
  };
  const inflater = opts.compression === 'gzip' ? InPlaceGunzip.create() : undefined;
  const sink = new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _e, done) {
      try {
        if (entryError !== undefined) {
          // draining: only the blob's digest matters now
          done(check.bytes - readAtError > DRAIN_LIMIT ? (entryError as Error) : undefined);
          return;
        }
        if (inflater) inflater.write(chunk, take);
        else take(chunk);
        done();
      } catch (e) {
        done(e as Error);
      }
    },
    final(done) {
      try {
        if (entryError === undefined) inflater?.end(take);
        if (entryError !== undefined) {
          done(entryError as Error);
          return;
        }
        parser.finish();
        done();
      } catch (e) {
        done(e as Error);
      }
    },
  });
  const stages: (Readable | Transform | Writable)[] = [src, check];
  const dec = inflater ? undefined : await decompressor(opts.compression);
  if (dec) stages.push(dec);
  stages.push(sink);
  try {
    await (pipeline as (...s: unknown[]) => Promise<void>)(
      ...stages,
      ...(opts.signal ? [{ signal: opts.signal }] : []),
    );
  } finally {
    inflater?.close();
  }
  return {
    diffID: hexDigest('sha256', diff),
    digest: check.digest(),
    compressedSize: check.bytes,
    size: diffSize,
  };
}

/**
 * A gzip blob (a file, or a stream copied to the worker as it comes): read, verified and inflated
 * on a worker thread while this thread parses and writes.
 */
async function viaInflateWorker(
  blob: string | Readable,
  parser: TarParser,
  opts: UnpackLayerOptions,
): Promise<Sums> {
  const errors = new EntryErrors(opts.digest !== undefined);
  let reported = 0;
  const size = opts.digest !== undefined ? opts.size : undefined;
  // A blob file the caller vouches for: the descriptor it judged is the one the thread reads.
  let fd: number | undefined;
  let vouched = false;
  if (typeof blob === 'string' && opts.blobVerified && opts.digest) {
    try {
      fd = openSync(blob, 'r');
      vouched = opts.blobVerified(fstatSync(fd, { bigint: true }));
    } catch {
      // not readable here: the thread opens it and reports
    }
  }
  let r: InflateResult;
  try {
    r = await inflateInWorker(
      fd !== undefined ? { fd, hash: !vouched } : blob,
      {
        algorithm: opts.digest ? algorithmOf(opts.digest) : 'sha256',
        ...(size !== undefined ? { size } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      },
      (piece, read) => {
        if (opts.onProgress && read - reported >= 65536) {
          reported = read;
          opts.onProgress(read);
        }
        errors.parse(parser, piece, read);
      },
    );
  } catch (e) {
    // a stream is done with (as a pipeline would destroy it)
    if (typeof blob !== 'string') blob.destroy();
    if (isUnionfsError(e) && e.code === 'SizeMismatch')
      throw new UnionfsError('SizeMismatch', `layer ${opts.digest}: ${e.message}`);
    throw e;
  }
  if (vouched) r.digest = opts.digest as Digest;
  if (opts.digest) {
    if (size !== undefined && r.compressedSize !== size)
      throw new UnionfsError(
        'SizeMismatch',
        `layer ${opts.digest}: ${r.compressedSize} bytes, its descriptor gives ${size}`,
      );
    if (r.digest !== opts.digest)
      throw new UnionfsError(
        'DigestMismatch',
        `layer ${opts.digest}: content has digest ${r.digest}, expected ${opts.digest}`,
      );
  }
  if (errors.error !== undefined) throw errors.error;
  parser.finish();
  return {
    diffID: r.diffID as Digest,
    digest: r.digest as Digest,
    compressedSize: r.compressedSize,
    size: r.size,
    ...(vouched ? { vouched } : {}),
  };
}

/**
 * Unpacks a layer blob (a path or a stream) into `dir`, which must not exist yet: it is created,
 * and removed again when anything fails (a digest mismatch included), so a failure leaves nothing.
 *
 * @throws UnionfsError `DigestMismatch` (blob or diffID), `SizeMismatch`, `Escape`, `InvalidTar`,
 * `Unsupported`, `System` — each naming the entry or the digest.
 */
export async function unpackLayer(
  dir: string,
  blob: string | Readable,
  opts: UnpackLayerOptions,
): Promise<UnpackLayerResult> {
  if (!opts.existing) {
    try {
      await mkdir(dir, { mode: 0o755 });
    } catch (e) {
      throw new UnionfsError('System', `unpack: create ${dir}: ${errCode(e) ?? String(e)}`, { cause: e });
    }
  }
  let rootFd: number | undefined;
  let ex: Extractor | undefined;
  try {
    rootFd = openat(-100, dir, O.RDONLY | O.DIRECTORY);
    const extractor = new Extractor(rootFd, {
      whiteouts: opts.whiteouts,
      rootless: opts.rootless ?? process.getuid?.() !== 0,
      ...(Array.isArray(opts.lowers) ? { lowers: opts.lowers as readonly string[] } : {}),
      deferLowers: typeof opts.lowers === 'function',
    });
    ex = extractor;
    const parser = new TarParser(extractor);
    const sums =
      opts.compression === 'gzip' &&
      opts.inflateThread !== 'never' &&
      inPlaceGunzipWorks() &&
      (opts.inflateThread === 'always' ||
        (typeof blob === 'string' ? blobSize(blob) : (opts.size ?? 0)) >= INFLATE_THREAD_MIN)
        ? await viaInflateWorker(blob, parser, opts)
        : await viaStream(blob, parser, opts);
    if (typeof opts.lowers === 'function') extractor.fixup(await opts.lowers());
    extractor.finish();
    ex = undefined;
    const diffID = sums.diffID;
    if (opts.diffID !== undefined && diffID !== opts.diffID)
      throw new UnionfsError(
        'DigestMismatch',
        `layer ${opts.digest ?? dir}: uncompressed content has diffID ${diffID}, the image config says ${opts.diffID}`,
      );
    if (opts.sync) syncfs(rootFd);
    if (opts.onProgress) opts.onProgress(sums.compressedSize);
    return {
      diffID,
      digest: sums.digest,
      compressedSize: sums.compressedSize,
      size: sums.size,
      entries: parser.entries,
      skipped: extractor.skippedCount > 0 ? extractor.skipped : [],
      blobVerifiedBy: sums.vouched ? 'content-store' : 'unpack',
    };
  } catch (e) {
    ex?.close();
    if (rootFd !== undefined) closeFd(rootFd);
    rootFd = undefined;
    if (!opts.existing) await rm(dir, { recursive: true, force: true }).catch(() => {});
    // the stream stopped before the blob was verified (a corrupt compressed stream, a drain past
    // the limit): a blob file that is not the one named is reported as such
    const blobError =
      isImageError(e) || (isUnionfsError(e) && (e.code === 'DigestMismatch' || e.code === 'SizeMismatch'));
    if (!blobError && (e as Error)?.name !== 'AbortError' && typeof blob === 'string' && opts.digest)
      await checkBlobFile(blob, opts.digest, opts.size);
    if (isImageError(e))
      throw new UnionfsError(e.code === 'SizeMismatch' ? 'SizeMismatch' : 'DigestMismatch', e.message, {
        cause: e,
      });
    if (isUnionfsError(e)) throw e;
    const name = (e as Error)?.name;
    if (name === 'AbortError') throw e;
    const code = errCode(e);
    if (
      code === 'Z_DATA_ERROR' ||
      code === 'Z_BUF_ERROR' ||
      /zstd|incorrect header|unexpected end/i.test(String((e as Error)?.message))
    )
      throw new UnionfsError(
        'InvalidTar',
        `layer ${opts.digest ?? ''}: ${opts.compression} stream: ${(e as Error).message}`,
        { cause: e },
      );
    throw new UnionfsError('System', `unpack into ${dir}: ${(e as Error)?.message ?? String(e)}`, {
      cause: e,
    });
  } finally {
    if (rootFd !== undefined) closeFd(rootFd);
  }
}
