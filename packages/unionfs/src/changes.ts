/**
 * A container's changes: listed like `docker diff`, and written as an OCI layer tar (whiteouts as
 * `.wh.NAME`, opaque directories as `.wh..wh..opq`, PAX headers for long names and xattrs),
 * deterministic (sorted, parents first, same bytes for the same tree).
 */
import {
  type BigIntStats,
  closeSync,
  lstatSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
} from 'node:fs';
import { join } from 'node:path';
import { lgetxattr, lgetxattrs, major, minor } from './sys.js';
import { type EntryType, TAR_END, tarHeader, tarPadding } from './tar.js';
import { byteOrder, type TreeNode, walkTree } from './tree.js';

/** One change of a container, as `docker diff` prints it. */
export interface Change {
  /** `A` added, `C` changed, `D` deleted. */
  kind: 'A' | 'C' | 'D';
  /** Absolute path inside the container, e.g. `/etc/hosts`. */
  path: string;
}

/** What a diff walk produces: changes, and for export the node to write (absent for deletions). */
interface Item {
  change: Change;
  rel: string;
  node?: TreeNode;
  /** An overlay opaque directory (its lower contents are gone). */
  opaque?: boolean;
  /** A deletion the opaque marker of its directory already expresses: listed, not exported. */
  covered?: boolean;
}

const OPAQUE = ['trusted.overlay.opaque', 'user.overlay.opaque'] as const;

function tryLstat(p: string): BigIntStats | undefined {
  try {
    return lstatSync(p, { bigint: true });
  } catch {
    return undefined;
  }
}

const isWhiteout = (st: BigIntStats) => st.isCharacterDevice() && st.rdev === 0n;
const isOpaque = (abs: string) => OPAQUE.some((n) => lgetxattr(abs, n)?.toString() === 'y');

/** What a stack of overlay lower layers (topmost first) shows at `rel`. */
export function inLowers(lowers: readonly string[], rel: string): BigIntStats | undefined {
  const parts = rel.split('/');
  for (const lower of lowers) {
    let hiddenBelow = false;
    let missing = false;
    for (let i = 1; i < parts.length; i++) {
      const st = tryLstat(join(lower, ...parts.slice(0, i)));
      if (st === undefined) {
        missing = true;
        break;
      }
      if (!st.isDirectory()) return undefined; // a file or whiteout hides everything below
      if (isOpaque(join(lower, ...parts.slice(0, i)))) hiddenBelow = true;
    }
    if (!missing) {
      const st = tryLstat(join(lower, rel));
      if (st !== undefined) return isWhiteout(st) ? undefined : st;
    }
    if (hiddenBelow) return undefined;
  }
  return undefined;
}

/** Names the lower layers show in directory `rel`. */
function lowerNames(lowers: readonly string[], rel: string): string[] {
  const seen = new Map<string, boolean>();
  for (const lower of lowers) {
    const dir = rel ? join(lower, rel) : lower;
    const st = tryLstat(dir);
    if (st === undefined) continue;
    if (!st.isDirectory()) break;
    for (const name of readdirSync(dir)) {
      if (seen.has(name)) continue;
      const cst = tryLstat(join(dir, name));
      seen.set(name, cst !== undefined && !isWhiteout(cst));
    }
    if (isOpaque(dir)) break;
  }
  return [...seen].filter(([, present]) => present).map(([n]) => n);
}

/** Changes recorded in an overlay upper directory against its lower layers (topmost first). */
export function overlayItems(upper: string, lowers: readonly string[]): Item[] {
  const items: Item[] = [];
  for (const node of walkTree(upper)) {
    const { rel, st } = node;
    const path = `/${rel}`;
    if (isWhiteout(st)) {
      if (inLowers(lowers, rel) !== undefined) items.push({ change: { kind: 'D', path }, rel });
      continue;
    }
    const lower = inLowers(lowers, rel);
    const opaque = st.isDirectory() && isOpaque(node.abs);
    items.push({ change: { kind: lower ? 'C' : 'A', path }, rel, node, opaque });
    if (opaque && lower?.isDirectory()) {
      const upperNames = new Set(readdirSync(node.abs));
      for (const name of lowerNames(lowers, rel).sort(byteOrder))
        if (!upperNames.has(name))
          items.push({
            change: { kind: 'D', path: `${path}/${name}` },
            rel: `${rel}/${name}`,
            covered: true,
          });
    }
  }
  return sortItems(items);
}

function sameNode(a: TreeNode, b: BigIntStats): boolean {
  const s = a.st;
  if ((s.mode & 0o170000n) !== (b.mode & 0o170000n)) return false;
  if (s.mode !== b.mode || s.uid !== b.uid || s.gid !== b.gid) return false;
  if (s.isDirectory()) return s.mtimeNs === b.mtimeNs;
  if (s.isSymbolicLink()) return true; // compared by target below
  if (s.isCharacterDevice() || s.isBlockDevice()) return s.rdev === b.rdev;
  return s.size === b.size && s.mtimeNs === b.mtimeNs;
}

/** Changes between a full tree (`rootfs`) and the tree it started as (`base`): copy and btrfs drivers. */
export function treeItems(rootfs: string, base: string | undefined): Item[] {
  const items: Item[] = [];
  for (const node of walkTree(rootfs)) {
    const b = base === undefined ? undefined : tryLstat(join(base, node.rel));
    const path = `/${node.rel}`;
    if (b === undefined) items.push({ change: { kind: 'A', path }, rel: node.rel, node });
    else if (
      !sameNode(node, b) ||
      (node.st.isSymbolicLink() && readlinkSync(node.abs) !== readlinkSync(join(base as string, node.rel)))
    )
      items.push({ change: { kind: 'C', path }, rel: node.rel, node });
  }
  if (base !== undefined) {
    let gone: string | undefined;
    for (const node of walkTree(base)) {
      if (gone !== undefined && node.rel.startsWith(`${gone}/`)) continue;
      gone = undefined;
      if (tryLstat(join(rootfs, node.rel)) === undefined) {
        items.push({ change: { kind: 'D', path: `/${node.rel}` }, rel: node.rel });
        gone = node.rel;
      } else if (node.st.isDirectory() && !tryLstat(join(rootfs, node.rel))?.isDirectory()) gone = node.rel;
    }
  }
  return sortItems(items);
}

function sortItems(items: Item[]): Item[] {
  // parents before children: compare component by component
  return items.sort((a, b) => {
    const pa = a.rel.split('/');
    const pb = b.rel.split('/');
    for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
      const c = byteOrder(pa[i] as string, pb[i] as string);
      if (c !== 0) return c;
    }
    return pa.length - pb.length;
  });
}

export function changesOf(items: Item[]): Change[] {
  return items.map((i) => i.change);
}

function entryType(st: BigIntStats): EntryType | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return undefined;
}

function xattrsForExport(abs: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const [k, v] of lgetxattrs(abs)) {
    if (k.startsWith('trusted.overlay.') || k.startsWith('user.overlay.')) continue;
    out.set(k, v);
  }
  return out;
}

/** The layer tar of a list of changes, as a stream of chunks. */
export function* layerTar(items: Item[]): Generator<Buffer> {
  const links = new Map<string, string>();
  const whiteoutMeta = { mode: 0o644, uid: 0, gid: 0, mtime: 0 };
  for (const item of items) {
    const { rel, node } = item;
    if (item.covered) continue;
    if (node === undefined) {
      const i = rel.lastIndexOf('/');
      const wh = i < 0 ? `.wh.${rel}` : `${rel.slice(0, i)}/.wh.${rel.slice(i + 1)}`;
      yield tarHeader({ path: wh, type: 'file', ...whiteoutMeta });
      continue;
    }
    const st = node.st;
    const type = entryType(st);
    if (type === undefined) continue; // sockets
    const common = {
      path: rel,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtime: Number(st.mtimeNs / 1_000_000_000n),
    };
    if (type !== 'dir' && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      const first = links.get(key);
      if (first !== undefined) {
        yield tarHeader({ ...common, type: 'link', linkpath: first });
        continue;
      }
      links.set(key, rel);
    }
    const xattrs = xattrsForExport(node.abs);
    if (type === 'file') {
      const size = Number(st.size);
      yield tarHeader({ ...common, type, size, xattrs });
      const fd = openSync(node.abs, 'r');
      try {
        let pos = 0;
        while (pos < size) {
          const buf = Buffer.allocUnsafe(Math.min(1 << 20, size - pos));
          const n = readSync(fd, buf, 0, buf.length, pos);
          if (n === 0) break;
          yield n === buf.length ? buf : buf.subarray(0, n);
          pos += n;
        }
        // a file that shrank while being read: pad with zeros to the size in its header
        if (pos < size) yield Buffer.alloc(size - pos);
      } finally {
        closeSync(fd);
      }
      const pad = tarPadding(size);
      if (pad.length) yield pad;
      continue;
    }
    if (type === 'symlink') {
      yield tarHeader({ ...common, type, linkpath: readlinkSync(node.abs), xattrs });
      continue;
    }
    if (type === 'char' || type === 'block') {
      yield tarHeader({ ...common, type, devmajor: major(st.rdev), devminor: minor(st.rdev), xattrs });
      continue;
    }
    yield tarHeader({ ...common, type, xattrs });
    if (item.opaque) yield tarHeader({ path: `${rel}/.wh..wh..opq`, type: 'file', ...whiteoutMeta });
  }
  yield TAR_END;
}
