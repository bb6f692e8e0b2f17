import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { lgetxattrs } from '../src/sys.js';
import { TAR_END, type TarHeaderInput, tarHeader, tarPadding } from '../src/tar.js';

export const isRoot = process.getuid?.() === 0;

export function tmp(prefix: string): string {
  return mkdtempSync(join('/tmp', `tsc-unionfs-${prefix}-`));
}

/** One member for {@link buildTar}: our own writer (raw paths, no checks: hostile archives too). */
export type Member = Partial<TarHeaderInput> & { path: string; data?: string | Buffer };

export function buildTar(members: Member[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    const data = m.data === undefined ? Buffer.alloc(0) : Buffer.from(m.data);
    parts.push(
      tarHeader({
        type: 'file',
        mode: m.type === 'dir' ? 0o755 : 0o644,
        uid: 0,
        gid: 0,
        mtime: 1_700_000_000,
        ...m,
        size: m.type === undefined || m.type === 'file' ? data.length : 0,
      }),
    );
    if (data.length) parts.push(data, tarPadding(data.length));
  }
  parts.push(TAR_END);
  return Buffer.concat(parts);
}

export function gz(b: Buffer): Buffer {
  return gzipSync(b);
}

export function sha256(b: Buffer): `sha256:${string}` {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

/**
 * Builds a tar with Python's tarfile (an independent writer). `spec` is Python code run with
 * `tf` (an open TarFile, PAX or GNU format) and helpers `add(name, type, **kw)`.
 */
let python: string | undefined;
/** The real interpreter (a pyenv shim costs a second per start). */
export function python3(): string {
  python ??= execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], {
    encoding: 'utf8',
  }).trim();
  return python;
}

export function pyTar(out: string, spec: string, format: 'pax' | 'gnu' = 'pax'): void {
  const script = `
import tarfile, io, sys
fmt = tarfile.PAX_FORMAT if sys.argv[2] == 'pax' else tarfile.GNU_FORMAT
tf = tarfile.open(sys.argv[1], 'w', format=fmt)
def add(name, type=tarfile.REGTYPE, data=b'', mode=0o644, uid=0, gid=0, linkname='', devmajor=0, devminor=0, pax=None, mtime=1700000000):
    ti = tarfile.TarInfo(name)
    ti.type = type; ti.mode = mode; ti.uid = uid; ti.gid = gid; ti.mtime = mtime
    ti.linkname = linkname; ti.devmajor = devmajor; ti.devminor = devminor
    if pax: ti.pax_headers = pax
    if type in (tarfile.REGTYPE,):
        ti.size = len(data); tf.addfile(ti, io.BytesIO(data))
    else:
        tf.addfile(ti)
${spec}
tf.close()
`;
  execFileSync(python3(), ['-c', script, out, format]);
}

/** A comparable description of a tree: type, mode, owner, size, content hash, link target, xattrs. */
export function describeTree(
  root: string,
  opts: { skipXattr?: (name: string) => boolean } = {},
): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    const abs = rel ? join(root, rel) : root;
    const st = lstatSync(abs);
    let what: string;
    if (st.isDirectory()) what = 'dir';
    else if (st.isFile())
      what = `file ${st.size} ${createHash('sha256').update(readFileSync(abs)).digest('hex').slice(0, 16)}`;
    else if (st.isSymbolicLink()) what = `symlink ${readlinkSync(abs)}`;
    else if (st.isCharacterDevice()) what = `char ${st.rdev}`;
    else if (st.isBlockDevice()) what = `block ${st.rdev}`;
    else if (st.isFIFO()) what = 'fifo';
    else what = 'other';
    const xattrs = [...lgetxattrs(abs)]
      .filter(([k]) => !(opts.skipXattr?.(k) ?? false))
      .map(([k, v]) => `${k}=${v.toString('hex')}`)
      .join(',');
    const mode = st.isSymbolicLink() ? '' : (st.mode & 0o7777).toString(8);
    out.set(rel || '.', `${what} ${mode} ${st.uid}:${st.gid}${xattrs ? ` [${xattrs}]` : ''}`);
    if (st.isDirectory()) for (const n of readdirSync(abs).sort()) walk(rel ? `${rel}/${n}` : n);
  };
  walk('');
  return out;
}

export function writeBlob(dir: string, name: string, data: Buffer): string {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
}

/** Files of a directory tree, for "nothing was written outside" checks. */
export function listAll(root: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const n of readdirSync(rel ? join(root, rel) : root)) {
      const r = rel ? `${rel}/${n}` : n;
      out.push(r);
      if (lstatSync(join(root, r)).isDirectory()) walk(r);
    }
  };
  walk('');
  return out.sort();
}
