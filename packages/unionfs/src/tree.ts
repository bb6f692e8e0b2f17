/**
 * Whole-tree helpers on trusted store directories whose *contents* come from images: nothing here
 * follows a symlink found inside a tree (every step is an lstat, a readdir of a real directory, or
 * an `l*` call), so a hostile layer cannot redirect a copy or a walk.
 */
import {
  type BigIntStats,
  chmodSync,
  copyFileSync,
  constants as FS,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readlinkSync,
  symlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { AT } from '@tsc/syscall';
import { lgetxattrs, lsetxattr, major, makedev, minor, mknodat, utimensat } from './sys.js';

function ns(v: bigint): { sec: number; nsec: number } {
  return { sec: Number(v / 1_000_000_000n), nsec: Number(v % 1_000_000_000n) };
}

/** Copies owner, mode, xattrs and times of `st` (the source's lstat) onto `dst`. */
export function copyMeta(src: string, dst: string, st: BigIntStats): void {
  lchownSync(dst, Number(st.uid), Number(st.gid));
  if (!st.isSymbolicLink()) chmodSync(dst, Number(st.mode) & 0o7777);
  for (const [k, v] of lgetxattrs(src)) {
    try {
      lsetxattr(dst, k, v);
    } catch {
      // an attribute the target filesystem refuses (e.g. security.* on some filesystems)
    }
  }
  utimensat(AT.FDCWD, dst, ns(st.atimeNs), ns(st.mtimeNs));
}

/**
 * Copies `src` to `dst` (which must not exist) with everything a root filesystem has: hardlinks
 * (as hardlinks), device nodes, fifos, symlinks, xattrs, owners, setuid bits, times. File data is
 * reflinked where the filesystem can (btrfs, xfs) and copied otherwise.
 */
export function copyTree(src: string, dst: string): void {
  const links = new Map<string, string>();
  const dirs: [string, string, BigIntStats][] = [];
  const walk = (s: string, d: string) => {
    const st = lstatSync(s, { bigint: true });
    if (st.isDirectory()) {
      mkdirSync(d, { mode: 0o700 });
      for (const name of readdirSync(s)) walk(join(s, name), join(d, name));
      dirs.push([s, d, st]);
      return;
    }
    if (st.nlink > 1n && !st.isDirectory()) {
      const key = `${st.dev}:${st.ino}`;
      const first = links.get(key);
      if (first !== undefined) {
        linkSync(first, d);
        return;
      }
      links.set(key, d);
    }
    if (st.isFile()) copyFileSync(s, d, FS.COPYFILE_FICLONE);
    else if (st.isSymbolicLink()) symlinkSync(readlinkSync(s), d);
    else if (st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO())
      mknodat(AT.FDCWD, d, Number(st.mode), makedev(major(st.rdev), minor(st.rdev)));
    else return; // sockets are not part of a root filesystem
    copyMeta(s, d, st);
  };
  walk(src, dst);
  // directories last, deepest first: their times after their contents
  for (const [s, d, st] of dirs) copyMeta(s, d, st);
}

/** One node of a tree, as `walkTree` reports it. */
export interface TreeNode {
  /** Relative path, `/`-separated, no leading slash. */
  rel: string;
  abs: string;
  st: BigIntStats;
}

/** Every node below `root` (not the root itself), parents before children, names sorted bytewise. */
export function* walkTree(root: string, rel = ''): Generator<TreeNode> {
  const dir = rel ? join(root, rel) : root;
  const names = readdirSync(dir).sort(byteOrder);
  for (const name of names) {
    const r = rel ? `${rel}/${name}` : name;
    const abs = join(root, r);
    const st = lstatSync(abs, { bigint: true });
    yield { rel: r, abs, st };
    if (st.isDirectory()) yield* walkTree(root, r);
  }
}

/** Compares strings by their UTF-8 bytes (the order tar writers and Go use). */
export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}
