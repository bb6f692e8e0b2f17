import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { CompressStream } from 'zstd-napi';
import { InPlaceGunzip } from '../src/gunzip.js';
import { lgetxattr, lgetxattrs } from '../src/sys.js';
import { unpackLayer } from '../src/unpack.js';
import { buildTar, gz, isRoot, listAll, pyTar, sha256, tmp, writeBlob } from './helpers.js';

const work = tmp('unpack');
afterAll(() => rmSync(work, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(work, `out${n++}`);

async function unpackBuf(
  tar: Buffer,
  opts: Partial<Parameters<typeof unpackLayer>[2]> = {},
  dir = fresh(),
): Promise<{ dir: string; res: Awaited<ReturnType<typeof unpackLayer>> }> {
  const res = await unpackLayer(dir, Readable.from([tar]), {
    compression: 'none',
    whiteouts: 'overlay',
    ...opts,
  });
  return { dir, res };
}

describe('InPlaceGunzip (gzip into one reused buffer)', () => {
  /** Inflates `blob` fed in `step`-byte chunks; returns the output or throws as the gunzip does. */
  function inflate(blob: Buffer, step: number): Buffer {
    const g = InPlaceGunzip.create();
    if (!g) throw new Error('no in-place gunzip on this Node');
    const out: Buffer[] = [];
    const emit = (piece: Buffer) => out.push(Buffer.from(piece)); // copy: the buffer is reused
    try {
      for (let i = 0; i < blob.length; i += step) g.write(blob.subarray(i, i + step), emit);
      g.end(emit);
    } finally {
      g.close();
    }
    return Buffer.concat(out);
  }
  // incompressible enough to span several output buffers, compressible enough to be quick
  const data = Buffer.alloc(3_000_000);
  for (let i = 0; i < data.length; i++) data[i] = ((i * 7919) % 251) ^ (i >> 10);

  it('is available on this Node (else unpacking falls back to the slower stream)', () => {
    expect(InPlaceGunzip.create()).toBeDefined();
  });

  it('gives the bytes node:zlib gives, whatever the input chunking', () => {
    const blob = gzipSync(data);
    for (const step of [1 << 20, 65536, 4093, blob.length])
      expect(inflate(blob, step).equals(data)).toBe(true);
  });

  it('reads multi-member gzip like gunzipSync, and stops at what follows the data like the stream', () => {
    const two = Buffer.concat([gzipSync(data.subarray(0, 1000)), gzipSync(data.subarray(1000, 5000))]);
    expect(inflate(two, 777).equals(gunzipSync(two))).toBe(true);
    const padded = Buffer.concat([gzipSync(data.subarray(0, 1000)), Buffer.alloc(512)]);
    expect(inflate(padded, 100).equals(data.subarray(0, 1000))).toBe(true);
  });

  it('fails on corrupt and truncated input with zlib error codes', () => {
    const blob = gzipSync(data);
    const corrupt = Buffer.from(blob);
    corrupt.fill(0x55, 100, 200);
    expect(() => inflate(corrupt, 65536)).toThrow(expect.objectContaining({ code: 'Z_DATA_ERROR' }));
    expect(() => inflate(blob.subarray(0, blob.length - 100), 65536)).toThrow(
      expect.objectContaining({ code: 'Z_BUF_ERROR', message: 'unexpected end of file' }),
    );
    expect(() => inflate(Buffer.from('not gzip at all'), 5)).toThrow(/incorrect header check/);
  });
});

describe.skipIf(!isRoot)('unpackLayer: entry types (root)', () => {
  it('unpacks every entry type from a Python-made PAX archive, byte-exact xattrs and long names', async () => {
    const tarPath = join(work, 'types.tar');
    const longName = `${'d'.repeat(120)}/${'f'.repeat(150)}`;
    pyTar(
      tarPath,
      `
add('./', tarfile.DIRTYPE, mode=0o755)
add('etc', tarfile.DIRTYPE, mode=0o750, uid=1, gid=2)
add('etc/passwd', data=b'root:x:0:0\\n', mode=0o644)
add('bin', tarfile.DIRTYPE)
add('bin/su', data=b'\\x7fELF...', mode=0o4755)
add('bin/sg', data=b'x', mode=0o2711, uid=0, gid=5)
add('tmp', tarfile.DIRTYPE, mode=0o1777)
add('bin/ping', data=b'ping', mode=0o755, pax={'SCHILY.xattr.security.capability': bytes.fromhex('0100000280200000000000000000000000000000').decode('utf-8', 'surrogateescape'), 'SCHILY.xattr.user.note': 'héllo'})
add('bin/sh', tarfile.SYMTYPE, linkname='/bin/busybox')
add('bin/hard', tarfile.LNKTYPE, linkname='bin/su')
add('dev', tarfile.DIRTYPE)
add('dev/null', tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)
add('dev/loop0', tarfile.BLKTYPE, mode=0o660, devmajor=7, devminor=0, gid=6)
add('dev/fifo', tarfile.FIFOTYPE, mode=0o600)
add('${longName}', data=b'long')
add('${'l'.repeat(110)}', tarfile.SYMTYPE, linkname='${'t'.repeat(200)}')
add('ünïcødé/名前.txt', data=b'utf8')
add('owned', data=b'o', uid=1000, gid=1000, mode=0o640)
`,
    );
    const dir = fresh();
    const res = await unpackLayer(dir, tarPath, { compression: 'none', whiteouts: 'overlay' });
    expect(res.skipped).toEqual([]);
    expect(res.diffID).toBe(sha256(readFileSync(tarPath)));
    expect(readFileSync(join(dir, 'etc/passwd'), 'utf8')).toBe('root:x:0:0\n');
    expect(statSync(join(dir, 'etc')).mode & 0o7777).toBe(0o750);
    expect(statSync(join(dir, 'etc')).uid).toBe(1);
    expect(statSync(join(dir, 'bin/su')).mode & 0o7777).toBe(0o4755);
    expect(statSync(join(dir, 'bin/sg')).mode & 0o7777).toBe(0o2711);
    expect(statSync(join(dir, 'bin/sg')).gid).toBe(5);
    expect(statSync(join(dir, 'tmp')).mode & 0o7777).toBe(0o1777);
    expect(lgetxattr(join(dir, 'bin/ping'), 'security.capability')?.toString('hex')).toBe(
      '0100000280200000000000000000000000000000',
    );
    expect(lgetxattr(join(dir, 'bin/ping'), 'user.note')?.toString()).toBe('héllo');
    expect(readlinkSync(join(dir, 'bin/sh'))).toBe('/bin/busybox');
    expect(statSync(join(dir, 'bin/hard')).ino).toBe(statSync(join(dir, 'bin/su')).ino);
    const nul = lstatSync(join(dir, 'dev/null'));
    expect(nul.isCharacterDevice() && nul.rdev === 0x103).toBe(true);
    expect(lstatSync(join(dir, 'dev/loop0')).isBlockDevice()).toBe(true);
    expect(lstatSync(join(dir, 'dev/loop0')).gid).toBe(6);
    expect(lstatSync(join(dir, 'dev/fifo')).isFIFO()).toBe(true);
    expect(readFileSync(join(dir, longName), 'utf8')).toBe('long');
    expect(readlinkSync(join(dir, 'l'.repeat(110)))).toBe('t'.repeat(200));
    expect(readFileSync(join(dir, 'ünïcødé/名前.txt'), 'utf8')).toBe('utf8');
    expect(statSync(join(dir, 'owned')).uid).toBe(1000);
    expect(statSync(join(dir, 'owned')).mtimeMs).toBe(1_700_000_000_000);
    expect(statSync(join(dir, 'etc')).mtimeMs).toBe(1_700_000_000_000); // after its contents
  });

  it('reads GNU long names (L/K) and base-256 numbers', async () => {
    const tarPath = join(work, 'gnu.tar');
    const name = `gnu/${'n'.repeat(200)}`;
    pyTar(
      tarPath,
      `
add('${name}', data=b'gnu')
add('gnu/${'s'.repeat(120)}', tarfile.SYMTYPE, linkname='${'k'.repeat(180)}')
add('gnu/big', data=b'b', uid=10000000, gid=10000001)
`,
      'gnu',
    );
    const dir = fresh();
    await unpackLayer(dir, tarPath, { compression: 'none', whiteouts: 'overlay' });
    expect(readFileSync(join(dir, name), 'utf8')).toBe('gnu');
    expect(readlinkSync(join(dir, 'gnu', 's'.repeat(120)))).toBe('k'.repeat(180));
    expect(statSync(join(dir, 'gnu/big')).uid).toBe(10000000);
  });

  it('gzip and zstd blobs: digest verified, diffID computed, mismatches leave nothing', async () => {
    const tar = buildTar([
      { path: 'a', data: 'A'.repeat(100_000) },
      { path: 'b/c', data: 'c' },
    ]);
    const gzBlob = gz(tar);
    const gzPath = writeBlob(work, 'l.tgz', gzBlob);
    const zst = await new Promise<Buffer>((resolve, reject) => {
      const parts: Buffer[] = [];
      const c = new CompressStream();
      c.on('data', (d: Buffer) => parts.push(d));
      c.on('end', () => resolve(Buffer.concat(parts)));
      c.on('error', reject);
      c.end(tar);
    });
    const zPath = writeBlob(work, 'l.zst', zst);
    for (const [p, compression, blob] of [
      [gzPath, 'gzip', gzBlob],
      [zPath, 'zstd', zst],
    ] as const) {
      const dir = fresh();
      const r = await unpackLayer(dir, p, {
        compression,
        whiteouts: 'overlay',
        digest: sha256(blob),
        size: blob.length,
        diffID: sha256(tar),
      });
      expect(r.diffID).toBe(sha256(tar));
      expect(readFileSync(join(dir, 'a'), 'utf8')).toHaveLength(100_000);
      const bad = fresh();
      await expect(
        unpackLayer(bad, p, { compression, whiteouts: 'overlay', digest: sha256(Buffer.from('x')) }),
      ).rejects.toThrow(/content has digest sha256:[0-9a-f]+, expected sha256:/);
      expect(existsSync(bad)).toBe(false);
      const bad2 = fresh();
      await expect(
        unpackLayer(bad2, p, { compression, whiteouts: 'overlay', diffID: sha256(Buffer.from('y')) }),
      ).rejects.toThrow(/diffID sha256:[0-9a-f]+, the image config says/);
      expect(existsSync(bad2)).toBe(false);
    }
  });

  it.each(['always', 'never'] as const)(
    'gzip blob files (inflate thread: %s): wrong sizes, corrupt and truncated streams are reported and leave nothing',
    async (inflateThread) => {
      const tar = buildTar([
        { path: 'a', data: 'A'.repeat(300_000) },
        { path: 'b', data: 'b' },
      ]);
      const blob = gz(tar);
      const p = writeBlob(work, 'sized.tgz', blob);
      const base = {
        compression: 'gzip',
        whiteouts: 'overlay',
        digest: sha256(blob),
        inflateThread,
      } as const;
      for (const [size, msg] of [
        [blob.length - 1, /more than the \d+ bytes its descriptor gives/],
        [blob.length + 1, /: \d+ bytes, its descriptor gives \d+/],
      ] as const) {
        const dir = fresh();
        await expect(unpackLayer(dir, p, { ...base, size })).rejects.toMatchObject({
          code: 'SizeMismatch',
          message: expect.stringMatching(msg),
        });
        expect(existsSync(dir)).toBe(false);
      }
      // without a descriptor: the gzip error itself
      const corrupt = Buffer.from(blob);
      corrupt.fill(0x55, 40, 80);
      const cp = writeBlob(work, 'corrupt.tgz', corrupt);
      const dir = fresh();
      await expect(
        unpackLayer(dir, cp, { compression: 'gzip', whiteouts: 'overlay', inflateThread }),
      ).rejects.toMatchObject({
        code: 'InvalidTar',
        message: expect.stringMatching(/gzip stream/),
      });
      expect(existsSync(dir)).toBe(false);
      const tp = writeBlob(work, 'truncated.tgz', blob.subarray(0, blob.length - 20));
      await expect(
        unpackLayer(fresh(), tp, { compression: 'gzip', whiteouts: 'overlay', inflateThread }),
      ).rejects.toThrow(/unexpected end of file/);
      // with the descriptor's digest, a corrupt blob is a blob that is not the one named
      await expect(unpackLayer(fresh(), cp, { ...base, size: blob.length })).rejects.toMatchObject({
        code: 'DigestMismatch',
      });
      // the same layer on the calling thread and on the inflate thread: the same result
      const r1 = await unpackLayer(fresh(), p, { ...base, size: blob.length, inflateThread: 'never' });
      const r2 = await unpackLayer(fresh(), p, { ...base, size: blob.length, inflateThread: 'always' });
      expect(r2).toEqual(r1);
      expect(r1.diffID).toBe(sha256(tar));
      // aborted: rejects, nothing left
      const ac = new AbortController();
      const d3 = fresh();
      const pending = unpackLayer(d3, p, { ...base, signal: ac.signal });
      ac.abort();
      await expect(pending).rejects.toThrow();
      expect(existsSync(d3)).toBe(false);
    },
  );

  /** `blob` as a stream of pieces of varied sizes (a few bytes to 2.5 MiB), optionally failing at `failAt`. */
  function pieces(blob: Buffer, failAt?: number): Readable {
    const sizes = [1, 70_000, 1 << 20, 5, (5 << 19) + 3, 300_000];
    const out: Buffer[] = [];
    for (let i = 0, k = 0; i < blob.length; k++) {
      const n = sizes[k % sizes.length] as number;
      out.push(blob.subarray(i, i + n));
      i += n;
    }
    if (failAt === undefined) return Readable.from(out);
    return new Readable({
      read() {
        let sent = 0;
        for (const b of out) {
          if (sent + b.length > failAt) break;
          this.push(b);
          sent += b.length;
        }
        this.destroy(Object.assign(new Error('the download failed'), { code: 'ECONNRESET' }));
      },
    });
  }

  it('a gzip stream on the inflate thread: the same layer as from the file; sizes, digests, corruption, a failing stream, an abort', async () => {
    // ~9 MB of tar: many small files and big ones that do not compress, so the blob spans input slots
    const members: Parameters<typeof buildTar>[0] = [];
    for (let i = 0; i < 300; i++) members.push({ path: `d${i % 7}/f${i}`, data: `file ${i} `.repeat(i + 1) });
    const rnd = randomBytes(4_500_000);
    members.push({ path: 'big1', data: rnd }, { path: 'big2', data: Buffer.concat([rnd, rnd.subarray(7)]) });
    const tar = buildTar(members);
    const blob = gz(tar);
    expect(blob.length).toBeGreaterThan(8 << 20);
    const p = writeBlob(work, 'stream-src.tgz', blob);
    const base = {
      compression: 'gzip',
      whiteouts: 'overlay',
      digest: sha256(blob),
      size: blob.length,
    } as const;
    const fromFile = await unpackLayer(fresh(), p, { ...base, inflateThread: 'always' });
    const d1 = fresh();
    const viaThread = await unpackLayer(d1, pieces(blob), {
      ...base,
      diffID: sha256(tar),
      inflateThread: 'always',
    });
    expect(viaThread).toEqual(fromFile);
    expect(readFileSync(join(d1, 'big2')).equals(Buffer.concat([rnd, rnd.subarray(7)]))).toBe(true);
    // 'auto' takes the thread for a stream whose descriptor says 8 MiB or more, and is the same
    const auto = await unpackLayer(fresh(), pieces(blob), { ...base, inflateThread: 'auto' });
    expect(auto).toEqual(fromFile);
    for (const [opts, code] of [
      [{ size: blob.length - 1 }, 'SizeMismatch'],
      [{ size: blob.length + 1 }, 'SizeMismatch'],
      [{ digest: sha256(Buffer.from('other')) }, 'DigestMismatch'],
      [{ diffID: sha256(Buffer.from('other')) }, 'DigestMismatch'],
    ] as const) {
      const dir = fresh();
      await expect(
        unpackLayer(dir, pieces(blob), { ...base, ...opts, inflateThread: 'always' }),
      ).rejects.toMatchObject({ code });
      expect(existsSync(dir)).toBe(false);
    }
    const corrupt = Buffer.from(blob);
    corrupt.fill(0x55, 4000, 4100);
    // corrupt: the inflate error, or DigestMismatch when inflating got to the end, on either thread
    // (a file would be re-hashed after an inflate error; a stream cannot be read again)
    for (const inflateThread of ['always', 'never'] as const) {
      const dc = fresh();
      await expect(unpackLayer(dc, pieces(corrupt), { ...base, inflateThread })).rejects.toMatchObject({
        code: expect.stringMatching(/^(InvalidTar|DigestMismatch)$/),
      });
      expect(existsSync(dc)).toBe(false);
    }
    // a stream that fails (the download broke): its error, nothing left, the stream destroyed
    const df = fresh();
    const failing = pieces(blob, 2_000_000);
    await expect(unpackLayer(df, failing, { ...base, inflateThread: 'always' })).rejects.toThrow(
      /the download failed/,
    );
    expect(existsSync(df)).toBe(false);
    expect(failing.destroyed).toBe(true);
    // aborted while the stream waits for more bytes
    const ac = new AbortController();
    const da = fresh();
    const stalled = new Readable({ read() {} });
    stalled.push(blob.subarray(0, 1_500_000));
    const pending = unpackLayer(da, stalled, { ...base, inflateThread: 'always', signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    await expect(pending).rejects.toThrow();
    expect(existsSync(da)).toBe(false);
    expect(stalled.destroyed).toBe(true);
  });

  it('the inflate thread may finish and exit long before this thread has handled its pieces', async () => {
    const tar = buildTar([
      { path: 'a', data: randomBytes(600_000) },
      { path: 'b', data: 'b' },
    ]);
    const blob = gz(tar);
    const p = writeBlob(work, 'slow-consumer.tgz', blob);
    let first = true;
    const dir = fresh();
    const r = await unpackLayer(dir, p, {
      compression: 'gzip',
      whiteouts: 'overlay',
      digest: sha256(blob),
      size: blob.length,
      inflateThread: 'always',
      onProgress: () => {
        if (!first) return;
        first = false;
        const t = Date.now();
        while (Date.now() - t < 400); // the worker is done and gone meanwhile
      },
    });
    expect(r.diffID).toBe(sha256(tar));
    expect(readFileSync(join(dir, 'b'), 'utf8')).toBe('b');
  });

  it('refuses sparse files and truncated archives clearly', async () => {
    const tarPath = join(work, 'sparse.tar');
    pyTar(
      tarPath,
      `add('s', data=b'x', pax={'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.name': 's'})`,
    );
    await expect(
      unpackLayer(fresh(), tarPath, { compression: 'none', whiteouts: 'overlay' }),
    ).rejects.toThrow(/"s": GNU sparse files are not supported/);
    const tar = buildTar([{ path: 'a', data: 'x'.repeat(2000) }]);
    await expect(unpackBuf(tar.subarray(0, 1024))).rejects.toThrow(/truncated tar archive/);
  });

  it('overlay whiteouts: .wh. becomes a 0/0 char device, .wh..wh..opq the opaque xattr', async () => {
    const { dir } = await unpackBuf(
      buildTar([
        { path: 'etc', type: 'dir' },
        { path: 'etc/.wh.shadow' },
        { path: 'opt', type: 'dir' },
        { path: 'opt/.wh..wh..opq' },
        { path: 'opt/new', data: 'n' },
        { path: 'kept', data: 'k' },
        { path: '.wh.kept' }, // a whiteout after this layer's own file does not delete it
      ]),
    );
    const w = lstatSync(join(dir, 'etc/shadow'));
    expect(w.isCharacterDevice() && w.rdev === 0).toBe(true);
    expect(lgetxattr(join(dir, 'opt'), 'trusted.overlay.opaque')?.toString()).toBe('y');
    expect(readFileSync(join(dir, 'kept'), 'utf8')).toBe('k');
    expect(existsSync(join(dir, 'opt/.wh..wh..opq'))).toBe(false);
    // a whiteout then a directory of the same name in one layer: a new (opaque) directory
    const r = await unpackBuf(
      buildTar([{ path: '.wh.d' }, { path: 'd', type: 'dir' }, { path: 'd/f', data: 'f' }]),
    );
    expect(lgetxattr(join(r.dir, 'd'), 'trusted.overlay.opaque')?.toString()).toBe('y');
    const u = await unpackBuf(buildTar([{ path: 'o', type: 'dir' }, { path: 'o/.wh..wh..opq' }]), {
      whiteouts: 'overlay-user',
    });
    expect(lgetxattr(join(u.dir, 'o'), 'user.overlay.opaque')?.toString()).toBe('y');
  });

  it('applied whiteouts delete from the tree below, except what this layer wrote', async () => {
    const dir = fresh();
    await unpackLayer(
      dir,
      Readable.from([
        buildTar([
          { path: 'etc/shadow', data: 's' },
          { path: 'etc/keep', data: 'k' },
          { path: 'opt/a/b', data: 'b' },
          { path: 'opt/c', data: 'c' },
        ]),
      ]),
      { compression: 'none', whiteouts: 'applied' },
    );
    await unpackLayer(
      dir,
      Readable.from([
        buildTar([
          { path: 'opt/c', data: 'new c' },
          { path: 'etc/.wh.shadow' },
          { path: 'opt/.wh..wh..opq' }, // after this layer's opt/c: keeps it
          { path: 'opt/.wh.c' }, // also keeps it
        ]),
      ]),
      { compression: 'none', whiteouts: 'applied', existing: true },
    );
    expect(listAll(dir)).toEqual(['etc', 'etc/keep', 'opt', 'opt/c']);
    expect(readFileSync(join(dir, 'opt/c'), 'utf8')).toBe('new c');
  });

  it('drops overlay attributes carried in a layer and reports them', async () => {
    const { dir, res } = await unpackBuf(
      buildTar([
        { path: 'd', type: 'dir', xattrs: new Map([['trusted.overlay.opaque', Buffer.from('y')]]) },
        { path: 'f', data: 'x', xattrs: new Map([['trusted.overlay.redirect', Buffer.from('/etc')]]) },
      ]),
    );
    expect(lgetxattrs(join(dir, 'd')).size).toBe(0);
    expect(lgetxattrs(join(dir, 'f')).size).toBe(0);
    expect(res.skipped.join('\n')).toMatch(/trusted.overlay.opaque on d/);
  });

  it('rootless: skips chown and mknod and reports them', async () => {
    const { dir, res } = await unpackBuf(
      buildTar([
        { path: 'f', data: 'x', uid: 5, gid: 5 },
        { path: 'null', type: 'char', devmajor: 1, devminor: 3 },
      ]),
      { rootless: true },
    );
    expect(statSync(join(dir, 'f')).uid).toBe(0);
    expect(res.skipped).toContain('chown f to 5:5 (rootless)');
    // as root mknod works; the record only appears when it really fails
    expect(existsSync(join(dir, 'null'))).toBe(true);
  });
});

describe.skipIf(!isRoot)('unpackLayer: nothing escapes the layer', () => {
  const outside = join(work, 'outside');
  const sentinel = () => listAll(outside);

  async function hostile(members: Parameters<typeof buildTar>[0]) {
    mkdirSync(outside, { recursive: true });
    writeFileSync(join(outside, 'victim'), 'v');
    const before = sentinel();
    const dir = fresh();
    let err: unknown;
    try {
      await unpackLayer(dir, Readable.from([buildTar(members)]), {
        compression: 'none',
        whiteouts: 'applied',
      });
    } catch (e) {
      err = e;
    }
    expect(sentinel()).toEqual(before);
    expect(readFileSync(join(outside, 'victim'), 'utf8')).toBe('v');
    return { dir, err: err as Error | undefined };
  }

  it('".." in a name is refused, naming the entry', async () => {
    const { err, dir } = await hostile([{ path: '../outside/pwned', data: 'x' }]);
    expect(err?.message).toMatch(
      /layer entry "..\/outside\/pwned": its name "..\/outside\/pwned" has a ".." component/,
    );
    expect(existsSync(dir)).toBe(false);
  });

  it('an absolute name stays inside the layer', async () => {
    const { err, dir } = await hostile([{ path: `${outside}/abs`, data: 'x' }]);
    expect(err).toBeUndefined();
    expect(readFileSync(join(dir, outside, 'abs'), 'utf8')).toBe('x');
  });

  it('a symlink pointing outside, then a file written through it: stays inside', async () => {
    const { err, dir } = await hostile([
      { path: 'evil', type: 'symlink', linkpath: outside },
      { path: 'evil/pwned', data: 'x' },
      { path: 'rel', type: 'symlink', linkpath: '../../../../../../..' },
      { path: 'rel/tmp/pwned2', data: 'y' },
    ]);
    // resolved as if the layer were the root: written to <layer><outside>/pwned
    expect(err).toBeUndefined();
    expect(readFileSync(join(dir, outside, 'pwned'), 'utf8')).toBe('x');
    expect(readFileSync(join(dir, 'tmp/pwned2'), 'utf8')).toBe('y');
    expect(existsSync('/tmp/pwned2')).toBe(false);
  });

  it('a hardlink to a path outside is refused', async () => {
    const a = await hostile([{ path: 'h', type: 'link', linkpath: '../outside/victim' }]);
    expect(a.err?.message).toMatch(
      /layer entry "h": its hardlink target "..\/outside\/victim" has a ".." component/,
    );
    const b = await hostile([{ path: 'h', type: 'link', linkpath: join(outside, 'victim') }]);
    expect(b.err?.message).toMatch(/layer entry "h": hardlink target ".*victim" is not in the layer/);
    const c = await hostile([
      { path: 'evil', type: 'symlink', linkpath: outside },
      { path: 'h', type: 'link', linkpath: 'evil/victim' },
    ]);
    expect(c.err?.message).toMatch(/layer entry "h": hardlink target "evil\/victim" is not in the layer/);
  });

  it('a symlink as a parent, and a directory replaced by a symlink: contained', async () => {
    const { dir } = await hostile([
      { path: 'd', type: 'dir' },
      { path: 'd/x', data: '1' },
      { path: 'd', type: 'symlink', linkpath: outside },
      { path: 'd/victim', data: 'overwritten?' },
      { path: 'd/deeper/y', data: '2' },
    ]);
    expect(lstatSync(join(dir, 'd')).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(dir, outside, 'victim'), 'utf8')).toBe('overwritten?');
    expect(readFileSync(join(dir, outside, 'deeper/y'), 'utf8')).toBe('2');
  });

  it('a dir replaced by a symlink across layers (applied on one tree): contained', async () => {
    mkdirSync(outside, { recursive: true });
    const before = sentinel();
    const dir = fresh();
    await unpackLayer(dir, Readable.from([buildTar([{ path: 'lib/a', data: 'a' }])]), {
      compression: 'none',
      whiteouts: 'applied',
    });
    await unpackLayer(dir, Readable.from([buildTar([{ path: 'lib', type: 'symlink', linkpath: outside }])]), {
      compression: 'none',
      whiteouts: 'applied',
      existing: true,
    });
    await unpackLayer(
      dir,
      Readable.from([buildTar([{ path: 'lib/pwned', data: 'p' }, { path: 'lib/.wh.victim' }])]),
      {
        compression: 'none',
        whiteouts: 'applied',
        existing: true,
      },
    );
    expect(sentinel()).toEqual(before);
    expect(readFileSync(join(dir, outside, 'pwned'), 'utf8')).toBe('p');
  });

  it('a whiteout cannot delete outside', async () => {
    const { err } = await hostile([
      { path: 'evil', type: 'symlink', linkpath: outside },
      { path: 'evil/.wh.victim' },
      { path: '.wh..wh..opq' },
    ]);
    expect(err).toBeUndefined();
  });
});

const hasSetpriv = (() => {
  try {
    execFileSync('setpriv', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe.skipIf(!isRoot || !hasSetpriv)('unpackLayer without CAP_MKNOD and CAP_CHOWN', () => {
  it('skips device nodes and chown, reports them, and unpacks the rest', () => {
    const blob = join(work, 'nocaps.tar');
    writeFileSync(
      blob,
      buildTar([
        { path: 'f', data: 'x', uid: 5, gid: 5 },
        { path: 'dev/null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3 },
        { path: 'fifo', type: 'fifo' },
        { path: 'etc/.wh.gone' },
      ]),
    );
    const dir = fresh();
    const dist = new URL('../dist/unpack.js', import.meta.url).pathname;
    const script = `const { unpackLayer } = await import(${JSON.stringify(dist)});
const r = await unpackLayer(${JSON.stringify(dir)}, ${JSON.stringify(blob)}, { compression: 'none', whiteouts: 'overlay' });
console.log(JSON.stringify(r.skipped));`;
    // root without CAP_MKNOD and CAP_CHOWN in its bounding set (so not in its capabilities after exec)
    const out = execFileSync(
      'setpriv',
      ['--bounding-set=-mknod,-chown', process.execPath, '--input-type=module', '-e', script],
      { encoding: 'utf8' },
    );
    const skipped = JSON.parse(out) as string[];
    expect(skipped).toContain('chown f to 5:5: EPERM');
    expect(skipped).toContain('mknod dev/null (char 1:3): EPERM');
    // a 0/0 whiteout device needs no CAP_MKNOD (Linux 5.8+)
    expect(skipped.filter((l) => l.includes('whiteout'))).toEqual([]);
    expect(lstatSync(join(dir, 'etc/gone')).rdev).toBe(0);
    expect(readFileSync(join(dir, 'f'), 'utf8')).toBe('x');
    expect(lstatSync(join(dir, 'fifo')).isFIFO()).toBe(true);
    expect(existsSync(join(dir, 'dev/null'))).toBe(false);
  });
});
