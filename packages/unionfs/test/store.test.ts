import { execFile, execFileSync, spawn } from 'node:child_process';
import {
  appendFileSync,
  closeSync,
  copyFileSync,
  createReadStream,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { ContentStore } from '@tsc/image';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountsUnder } from '../src/mounts.js';
import { chainIDs, LayerStore } from '../src/store.js';
import { buildTar, describeTree, isRoot, type Member, tmp } from './helpers.js';
import { makeImage, type TestImage } from './image.js';

const work = tmp('store');
const DIST = new URL('../dist/index.js', import.meta.url).pathname;
const hasUmoci = (() => {
  try {
    execFileSync('umoci', ['--version']);
    return true;
  } catch {
    return false;
  }
})();

afterAll(() => {
  for (const m of mountsUnder(work).reverse()) execFileSync('umount', ['-l', m]);
  rmSync(work, { recursive: true, force: true });
});

const cap = Buffer.from('0100000280200000000000000000000000000000', 'hex');
const skipOverlayXattrs = { skipXattr: (k: string) => k.startsWith('trusted.overlay.') };

/** Three layers: deletions, an opaque directory, hardlinks within and across layers, setuid files. */
function threeLayers(): Buffer[] {
  const l1: Member[] = [
    { path: './', type: 'dir', mode: 0o755 },
    { path: 'bin', type: 'dir' },
    { path: 'bin/busybox', data: 'BUSYBOX'.repeat(1000), mode: 0o755 },
    { path: 'bin/sh', type: 'symlink', linkpath: 'busybox' },
    { path: 'bin/su', data: 'su-binary', mode: 0o4755 },
    { path: 'bin/su-link', type: 'link', linkpath: 'bin/su' },
    { path: 'bin/ping', data: 'ping', mode: 0o755, xattrs: new Map([['security.capability', cap]]) },
    { path: 'etc', type: 'dir' },
    { path: 'etc/passwd', data: 'root:x:0:0::/root:/bin/sh\n' },
    { path: 'etc/shadow', data: 'root:*:1::::::\n', mode: 0o640, gid: 42 },
    { path: 'etc/note', data: 'n', xattrs: new Map([['user.comment', Buffer.from([0x80, 0xff, 0])]]) },
    { path: 'opt', type: 'dir' },
    { path: 'opt/app', type: 'dir', mode: 0o750, uid: 1000, gid: 1000 },
    { path: 'opt/app/old1', data: 'o1' },
    { path: 'opt/app/sub', type: 'dir' },
    { path: 'opt/app/sub/old2', data: 'o2' },
    { path: 'usr', type: 'dir' },
    { path: 'usr/share', type: 'dir' },
    { path: 'usr/share/doc', type: 'dir' },
    { path: 'usr/share/doc/README', data: 'readme' },
    { path: 'dev', type: 'dir' },
    { path: 'dev/null', type: 'char', mode: 0o666, devmajor: 1, devminor: 3 },
    { path: 'dev/fifo', type: 'fifo', mode: 0o600 },
    { path: 'home', type: 'dir' },
    { path: 'home/user', type: 'dir', mode: 0o700, uid: 1000, gid: 1000 },
    { path: 'home/user/.profile', data: 'export X=1\n', uid: 1000, gid: 1000 },
    { path: 'tmp', type: 'dir', mode: 0o1777 },
  ];
  const l2: Member[] = [
    { path: 'etc', type: 'dir' },
    { path: 'etc/.wh.shadow' },
    { path: 'etc/passwd', data: 'root:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n' },
    { path: 'opt', type: 'dir' },
    { path: 'opt/app', type: 'dir', mode: 0o755, uid: 1000, gid: 1000 },
    { path: 'opt/app/.wh..wh..opq' },
    { path: 'opt/app/new', data: 'new' },
    { path: 'usr/bin/su2', type: 'link', linkpath: 'bin/su' }, // across layers; usr/bin implicit
    { path: 'var/log/messages', data: 'log\n', mode: 0o600 },
  ];
  const l3: Member[] = [
    { path: 'usr/share/.wh.doc' },
    { path: 'usr/sbin', type: 'dir' },
    { path: 'usr/sbin/newsu', data: 'newsu', mode: 0o6755 },
    { path: 'usr/sbin/newsu-link', type: 'link', linkpath: 'usr/sbin/newsu' },
    { path: 'bin/.wh.ping' },
    { path: 'bin/ping', data: 'ping2', mode: 0o755 },
    { path: 'home/user/.profile', data: 'export X=2\n', uid: 1000, gid: 1000 },
  ];
  return [buildTar(l1), buildTar(l2), buildTar(l3)];
}

describe.skipIf(!isRoot)('LayerStore (overlay, real kernel)', () => {
  let image: TestImage;
  let store: LayerStore;
  const root = join(work, 'root');

  beforeAll(async () => {
    image = await makeImage(join(work, 'oci'), threeLayers(), 'three');
    store = await LayerStore.open({ root, driver: 'overlay', durable: false });
  });

  it('unpacks an image once, keyed by chain ID, and references it', async () => {
    const r = await store.unpackImage({ ...image, owner: 'image:three' });
    expect(r.map((l) => l.unpacked)).toEqual([true, true, true]);
    expect(r.map((l) => l.chainID)).toEqual(chainIDs(image.diffIDs));
    expect(r[2]?.parent).toBe(r[1]?.chainID);
    const again = await store.unpackImage({ ...image });
    expect(again.map((l) => l.unpacked)).toEqual([false, false, false]);
    expect((await store.references()).get('image:three')).toEqual([r[2]?.chainID]);
  });

  it.skipIf(!hasUmoci)('the merged view equals `umoci unpack` of the same image', async () => {
    const bundle = join(work, 'umoci-bundle');
    execFileSync('umoci', ['unpack', '--image', `${join(work, 'oci')}:three`, bundle]);
    const c = await store.prepare('accept', image.diffIDs, { readonly: true });
    try {
      const ours = describeTree(c.rootfs, skipOverlayXattrs);
      const theirs = describeTree(join(bundle, 'rootfs'), skipOverlayXattrs);
      expect([...ours]).toEqual([...theirs]);
      // spot checks on what the comparison covers
      expect(ours.get('etc/shadow')).toBeUndefined();
      expect(ours.get('opt/app/old1')).toBeUndefined();
      expect(ours.get('usr/share/doc')).toBeUndefined();
      expect(ours.get('usr/bin/su2')).toMatch(/^file 9 .* 4755 0:0$/);
      expect(ours.get('usr/sbin/newsu')).toMatch(/ 6755 0:0$/);
      expect(ours.get('bin/ping')).toMatch(/^file 5 /); // replaced, capability gone
      expect(() => writeFileSync(join(c.rootfs, 'x'), 'x')).toThrow(/EROFS/);
    } finally {
      await store.remove('accept');
    }
  });

  it('a blob file the content store object checked and committed is not hashed again; anything else is', async () => {
    const { randomBytes } = await import('node:crypto');
    const bigTar = buildTar([
      { path: 'big/a', data: randomBytes(9 << 20) },
      { path: 'big/b', data: 'b' },
    ]);
    const img = await makeImage(join(work, 'oci-vouched'), [
      buildTar([{ path: 'small', data: 's' }]),
      bigTar,
    ]);
    const big = img.layers[1] as (typeof img.layers)[number];
    expect(big.size).toBeGreaterThanOrEqual(8 << 20); // on the inflate thread (auto)
    const open = (name: string) =>
      LayerStore.open({ root: join(work, name), driver: 'overlay', durable: false });
    const r = await (await open('vouched-1')).unpackImage(img);
    expect(r.map((l) => l.blobVerifiedBy)).toEqual(['unpack', 'content-store']);
    // the same layout opened again: this object committed nothing, so it vouches for nothing
    const reopened = await ContentStore.open(join(work, 'oci-vouched'));
    const r2 = await (await open('vouched-2')).unpackImage({ ...img, content: reopened });
    expect(r2.map((l) => l.blobVerifiedBy)).toEqual(['unpack', 'unpack']);
    expect(r2.map((l) => l.chainID)).toEqual(r.map((l) => l.chainID));
    // a byte changed in place, even with the modification time put back: hashed, and refused
    const path = img.content.blobPath(big.digest);
    const st = statSync(path);
    const fd = openSync(path, 'r+');
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, 5000);
    writeSync(fd, Buffer.from([(byte[0] as number) ^ 0xff]), 0, 1, 5000);
    utimesSync(path, st.atime, st.mtime);
    const root3 = join(work, 'vouched-3');
    await expect((await open('vouched-3')).unpackImage(img)).rejects.toMatchObject({
      code: 'DigestMismatch',
    });
    expect(readdirSync(join(root3, 'layers', 'overlay', 'tmp'))).toEqual([]);
    // put back: the file is right again but not as committed (its change time moved): hashed
    writeSync(fd, byte, 0, 1, 5000);
    closeSync(fd);
    const r4 = await (await open('vouched-4')).unpackImage(img);
    expect(r4.map((l) => l.blobVerifiedBy)).toEqual(['unpack', 'unpack']);
    // replaced by a copy (another inode): hashed
    copyFileSync(path, `${path}.copy`);
    renameSync(`${path}.copy`, path);
    const r5 = await (await open('vouched-5')).unpackImage(img);
    expect(r5.map((l) => l.blobVerifiedBy)).toEqual(['unpack', 'unpack']);
  });

  it('layers unpacked on worker threads are the same', async () => {
    const other = await LayerStore.open({ root: join(work, 'workers'), driver: 'overlay', durable: false });
    const r = await other.unpackImage({ ...image, workers: 'always' });
    expect(r.map((l) => l.chainID)).toEqual(chainIDs(image.diffIDs));
    for (const l of r) {
      const a = describeTree(other.diffDir(l.chainID));
      const b = describeTree(store.diffDir(l.chainID));
      a.delete('.');
      b.delete('.');
      expect([...a]).toEqual([...b]);
    }
  });

  it('a container sees writes, deletes and changes in diff(); exportDiff reproduces them as a layer', async () => {
    const c = await store.prepare('c1', image.diffIDs);
    expect(mountsUnder(c.rootfs)).toEqual([c.rootfs]);
    writeFileSync(join(c.rootfs, 'etc/hostname'), 'box\n');
    appendFileSync(join(c.rootfs, 'etc/passwd'), 'guest:x:1001:1001::/:/bin/sh\n');
    unlinkSync(join(c.rootfs, 'bin/su-link'));
    rmSync(join(c.rootfs, 'opt/app'), { recursive: true });
    mkdirSync(join(c.rootfs, 'opt/app'));
    writeFileSync(join(c.rootfs, 'opt/app/fresh'), 'f');
    mkdirSync(join(c.rootfs, 'srv/data'), { recursive: true });
    expect(await store.diff('c1')).toEqual(
      [
        { kind: 'D', path: '/bin/su-link' },
        { kind: 'C', path: '/bin' },
        { kind: 'C', path: '/etc' },
        { kind: 'A', path: '/etc/hostname' },
        { kind: 'C', path: '/etc/passwd' },
        { kind: 'C', path: '/opt' },
        { kind: 'C', path: '/opt/app' },
        { kind: 'A', path: '/opt/app/fresh' },
        { kind: 'D', path: '/opt/app/new' },
        { kind: 'A', path: '/srv' },
        { kind: 'A', path: '/srv/data' },
      ].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
    );

    const out = await ContentStore.open(join(work, 'export'));
    const exp = await store.exportDiff('c1', out);
    const again = await store.exportDiff('c1', out);
    expect(again).toEqual(exp); // deterministic
    const top = chainIDs(image.diffIDs)[2];
    const layer = await store.unpack({
      blob: out.blobPath(exp.descriptor.digest),
      mediaType: exp.descriptor.mediaType,
      digest: exp.descriptor.digest,
      diffID: exp.diffID,
      ...(top ? { parent: top } : {}),
    });
    expect(layer.unpacked).toBe(true);
    const c2 = await store.prepare('c2', [...image.diffIDs, exp.diffID], { readonly: true });
    try {
      const a = describeTree(c.rootfs, skipOverlayXattrs);
      const b = describeTree(c2.rootfs, skipOverlayXattrs);
      for (const [k, v] of a)
        if (k.startsWith('opt/app') || k === 'opt' || k === 'srv') a.set(k, v.replace(/ \d+:\d+/, ''));
      for (const [k, v] of b)
        if (k.startsWith('opt/app') || k === 'opt' || k === 'srv') b.set(k, v.replace(/ \d+:\d+/, ''));
      expect([...b]).toEqual([...a]);
    } finally {
      await store.remove('c2');
      await store.remove('c1');
    }
    expect(existsSync(c.rootfs)).toBe(false);
    expect(mountsUnder(join(root, 'layers'))).toEqual([]);
    await store.remove('c1'); // idempotent
  });

  it('the mount outlives the process that made it; remove works afterwards', async () => {
    const script = `
const { LayerStore } = await import(${JSON.stringify(DIST)});
const store = await LayerStore.open({ root: ${JSON.stringify(root)}, driver: 'overlay' });
const c = await store.prepare('detached', ${JSON.stringify(image.diffIDs)}, { volatile: true });
console.log(c.rootfs);`;
    const rootfs = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
    }).trim();
    expect(readFileSync(join(rootfs, 'etc/passwd'), 'utf8')).toMatch(/^root:/);
    expect(mountsUnder(rootfs)).toEqual([rootfs]);
    await store.remove('detached');
    expect(mountsUnder(rootfs)).toEqual([]);
  });

  it('an init layer adds mount points where the image lacks them, outside diff()', async () => {
    const c = await store.prepare('init1', image.diffIDs, { init: true });
    try {
      for (const p of ['proc', 'sys', 'dev/pts', 'dev/shm'])
        expect(statSync(join(c.rootfs, p)).isDirectory()).toBe(true);
      for (const p of ['etc/hosts', 'etc/hostname', 'etc/resolv.conf', 'dev/console'])
        expect(statSync(join(c.rootfs, p)).isFile()).toBe(true);
      expect(describeTree(c.rootfs).get('etc')).toBe('dir 755 0:0'); // the image's /etc, not a new one
      expect(readFileSync(join(c.rootfs, 'etc/passwd'), 'utf8')).toMatch(/^root:/);
      expect(await store.diff('init1')).toEqual([]);
      writeFileSync(join(c.rootfs, 'etc/hostname'), 'box\n');
      expect(await store.diff('init1')).toEqual([
        { kind: 'C', path: '/etc' },
        { kind: 'C', path: '/etc/hostname' },
      ]);
    } finally {
      await store.remove('init1');
    }
  });

  it('a blob that does not match its digest leaves nothing in the store', async () => {
    const layer = image.layers[0];
    await expect(
      store.unpack({
        blob: image.content.blobPath(layer?.digest ?? 'sha256:'),
        mediaType: layer?.mediaType ?? '',
        digest: image.layers[2]?.digest ?? 'sha256:',
        diffID: 'sha256:0000000000000000000000000000000000000000000000000000000000000000',
      }),
    ).rejects.toThrow(/content has digest sha256:[0-9a-f]{64}, expected sha256:/);
    expect(readdirSync(join(store.dir, 'tmp'))).toEqual([]);
    expect((await store.list()).length).toBe(4);
  });

  it('a wrong blob whose entries fail mid-stream is still reported as a digest mismatch', async () => {
    // l2 alone fails at usr/bin/su2 (a hardlink into l1): the blob's digest wins over that
    for (let i = 0; i < 10; i++) {
      const layer = image.layers[1];
      await expect(
        store.unpack({
          blob: image.content.blobPath(layer?.digest ?? 'sha256:'),
          mediaType: layer?.mediaType ?? '',
          digest: image.layers[2]?.digest ?? 'sha256:',
          diffID: 'sha256:0000000000000000000000000000000000000000000000000000000000000000',
        }),
      ).rejects.toMatchObject({
        code: 'DigestMismatch',
        message: expect.stringMatching(/content has digest sha256:[0-9a-f]{64}, expected sha256:/),
      });
      // as a stream too
      await expect(
        store.unpack({
          blob: createReadStream(image.content.blobPath(layer?.digest ?? 'sha256:')),
          mediaType: layer?.mediaType ?? '',
          digest: image.layers[0]?.digest ?? 'sha256:',
        }),
      ).rejects.toMatchObject({ code: 'DigestMismatch' });
    }
    // the right blob still reports the entry
    const layer = image.layers[1];
    await expect(
      store.unpack({
        blob: image.content.blobPath(layer?.digest ?? 'sha256:'),
        mediaType: layer?.mediaType ?? '',
        digest: layer?.digest ?? 'sha256:',
      }),
    ).rejects.toThrow(/layer entry "usr\/bin\/su2": hardlink target "bin\/su" is not in the layer/);
    expect(readdirSync(join(store.dir, 'tmp'))).toEqual([]);
    expect((await store.list()).length).toBe(4);
  });

  it('gc deletes only unreferenced layers', async () => {
    const before = (await store.list()).length;
    expect(before).toBe(4);
    const usage = await store.usage();
    expect(usage).toMatchObject({ driver: 'overlay', layers: 4, containers: 0 });
    expect(usage.layerBytes).toBeGreaterThan(0);
    const { removed } = await store.gc();
    expect(removed).toHaveLength(1); // the exported layer, nobody references it
    await store.release('image:three');
    const c = await store.prepare('pin', image.diffIDs.slice(0, 2));
    expect((await store.gc()).removed).toEqual([chainIDs(image.diffIDs)[2]]);
    await store.remove('pin');
    expect((await store.gc()).removed.sort()).toEqual(chainIDs(image.diffIDs).slice(0, 2).sort());
    expect(await store.list()).toEqual([]);
    expect(existsSync(c.rootfs)).toBe(false);
  });
});

describe.skipIf(!isRoot)('LayerStore: 500 layers, concurrency, crashes', () => {
  const root = join(work, 'many');

  it('an image of 500 layers mounts (lowerdir+), and through the classic mount(2) fallback too', async () => {
    const tars: Buffer[] = [];
    for (let i = 0; i < 500; i++) tars.push(buildTar([{ path: `layers/l${i}`, data: `layer ${i}\n` }]));
    const image = await makeImage(join(work, 'oci500'), tars, 'many');
    const store = await LayerStore.open({ root, driver: 'overlay', durable: false });
    const t0 = Date.now();
    await store.unpackImage({ ...image, owner: 'image:many' });
    const unpackMs = Date.now() - t0;
    for (const api of ['fsconfig', 'classic'] as const) {
      const s = await LayerStore.open({ root, driver: 'overlay', durable: false, overlayApi: api });
      const c = await s.prepare(`big-${api}`, image.diffIDs);
      try {
        expect(c.mountApi).toBe(api);
        expect(readFileSync(join(c.rootfs, 'layers/l0'), 'utf8')).toBe('layer 0\n');
        expect(readFileSync(join(c.rootfs, 'layers/l499'), 'utf8')).toBe('layer 499\n');
        expect(readdirSync(join(c.rootfs, 'layers'))).toHaveLength(500);
        // a process (not this one) reads from the bottom layer
        expect(execFileSync('cat', [join(c.rootfs, 'layers/l0')], { encoding: 'utf8' })).toBe('layer 0\n');
      } finally {
        await s.remove(`big-${api}`);
      }
    }
    expect(unpackMs).toBeLessThan(60_000);
  }, 120_000);

  it('two processes unpacking the same layer unpack it once', async () => {
    const image = await makeImage(
      join(work, 'oci-conc'),
      [buildTar(Array.from({ length: 2000 }, (_, i) => ({ path: `f/${i}`, data: `${i}`.repeat(200) })))],
      'conc',
    );
    const croot = join(work, 'conc');
    const layer = image.layers[0];
    const script = `
const { LayerStore } = await import(${JSON.stringify(DIST)});
const store = await LayerStore.open({ root: ${JSON.stringify(croot)}, driver: 'overlay' });
const r = await store.unpack({ blob: ${JSON.stringify(image.content.blobPath(layer?.digest ?? 'sha256:'))}, mediaType: ${JSON.stringify(layer?.mediaType)}, digest: ${JSON.stringify(layer?.digest)}, diffID: ${JSON.stringify(image.diffIDs[0])} });
console.log(r.unpacked);`;
    const run = () =>
      new Promise<string>((resolve, reject) => {
        execFile(process.execPath, ['--input-type=module', '-e', script], (err, stdout) =>
          err ? reject(err) : resolve(stdout.trim()),
        );
      });
    const results = await Promise.all([run(), run()]);
    expect(results.sort()).toEqual(['false', 'true']);
    const store = await LayerStore.open({ root: croot, driver: 'overlay' });
    expect(await store.list()).toHaveLength(1);
    expect(readdirSync(join(store.dir, 'tmp'))).toEqual([]);
  });

  it('an unpack killed with SIGKILL leaves nothing trusted; the next run cleans up and unpacks', async () => {
    const big = Buffer.alloc(1 << 20, 7);
    const image = await makeImage(
      join(work, 'oci-crash'),
      [buildTar(Array.from({ length: 80 }, (_, i) => ({ path: `big/${i}`, data: big })))],
      'crash',
    );
    const croot = join(work, 'crash');
    const layer = image.layers[0];
    const script = `
const { LayerStore } = await import(${JSON.stringify(DIST)});
const store = await LayerStore.open({ root: ${JSON.stringify(croot)}, driver: 'overlay' });
await store.unpack({ blob: ${JSON.stringify(image.content.blobPath(layer?.digest ?? 'sha256:'))}, mediaType: ${JSON.stringify(layer?.mediaType)}, digest: ${JSON.stringify(layer?.digest)}, diffID: ${JSON.stringify(image.diffIDs[0])} });
console.log('finished');`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
    const tmpDir = join(croot, 'layers/overlay/tmp');
    const exited = new Promise((r) => child.on('exit', r));
    // kill it mid-unpack: once some files are on disk
    for (let i = 0; i < 2000; i++) {
      const dirs = existsSync(tmpDir) ? readdirSync(tmpDir) : [];
      const d = dirs[0] ? join(tmpDir, dirs[0], 'diff/big') : '';
      if (d && existsSync(d) && readdirSync(d).length >= 5) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill('SIGKILL');
    await exited;
    expect(readdirSync(tmpDir)).toHaveLength(1); // the dead unpack's directory
    expect(readdirSync(join(croot, 'layers/overlay/layers'))).toEqual([]);
    const store = await LayerStore.open({ root: croot, driver: 'overlay' });
    expect(readdirSync(tmpDir)).toEqual([]);
    const r = await store.unpack({
      blob: image.content.blobPath(layer?.digest ?? 'sha256:'),
      mediaType: layer?.mediaType ?? '',
      digest: layer?.digest ?? 'sha256:',
      diffID: image.diffIDs[0] ?? 'sha256:',
    });
    expect(r.unpacked).toBe(true);
    expect(statSync(join(store.diffDir(r.chainID), 'big/79')).size).toBe(1 << 20);
  });
});

describe.skipIf(!isRoot)('LayerStore: copy driver', () => {
  it('unpacks, prepares, diffs and exports like overlay', async () => {
    const image = await makeImage(join(work, 'oci-copy'), threeLayers(), 'three');
    const store = await LayerStore.open({ root: join(work, 'copyroot'), driver: 'copy', durable: false });
    await store.unpackImage({ ...image, owner: 'image:three' });
    const c = await store.prepare('cc', image.diffIDs);
    try {
      if (hasUmoci) {
        const bundle = join(work, 'umoci-copy');
        execFileSync('umoci', ['unpack', '--image', `${join(work, 'oci-copy')}:three`, bundle]);
        expect([...describeTree(c.rootfs)]).toEqual([...describeTree(join(bundle, 'rootfs'))]);
      }
      writeFileSync(join(c.rootfs, 'etc/hostname'), 'h');
      unlinkSync(join(c.rootfs, 'etc/passwd'));
      expect(await store.diff('cc')).toEqual([
        { kind: 'C', path: '/etc' },
        { kind: 'A', path: '/etc/hostname' },
        { kind: 'D', path: '/etc/passwd' },
      ]);
      const out = await ContentStore.open(join(work, 'export-copy'));
      const exp = await store.exportDiff('cc', out);
      const top = chainIDs(image.diffIDs)[2];
      await store.unpack({
        blob: out.blobPath(exp.descriptor.digest),
        mediaType: exp.descriptor.mediaType,
        digest: exp.descriptor.digest,
        ...(top ? { parent: top } : {}),
      });
      const ci = await store.prepare('cci', image.diffIDs, { init: true });
      expect(statSync(join(ci.rootfs, 'proc')).isDirectory()).toBe(true);
      expect((await store.diff('cci')).filter((c) => c.kind !== 'C')).toEqual([]);
      await store.remove('cci');
      const c2 = await store.prepare('cc2', [...image.diffIDs, exp.diffID]);
      expect([...describeTree(c2.rootfs)].filter(([k]) => k.startsWith('etc'))).toEqual(
        [...describeTree(c.rootfs)].filter(([k]) => k.startsWith('etc')),
      );
      await store.remove('cc2');
    } finally {
      await store.remove('cc');
    }
  });
});

const canBtrfs = (() => {
  try {
    execFileSync('mkfs.btrfs', ['--version'], { stdio: 'ignore' });
    return isRoot && readFileSync('/proc/filesystems', 'utf8').includes('btrfs');
  } catch {
    return false;
  }
})();

describe.skipIf(!canBtrfs)('LayerStore: btrfs driver on a loop-mounted btrfs', () => {
  const mnt = join(work, 'btrfs-mnt');
  beforeAll(() => {
    const img = join(work, 'btrfs.img');
    execFileSync('truncate', ['-s', '1G', img]);
    execFileSync('mkfs.btrfs', ['-q', img]);
    mkdirSync(mnt, { recursive: true });
    execFileSync('mount', ['-o', 'loop', img, mnt]);
  });
  afterAll(() => {
    try {
      execFileSync('umount', ['-R', mnt]);
    } catch {
      // the outer afterAll detaches what is left
    }
  });

  it('layers are subvolume snapshots; the container sees the image as umoci does; diff and gc work', async () => {
    const image = await makeImage(join(work, 'oci-btrfs'), threeLayers(), 'three');
    await expect(LayerStore.open({ root: join(work, 'not-btrfs'), driver: 'btrfs' })).rejects.toThrow(
      /not on a btrfs filesystem/,
    );
    const store = await LayerStore.open({ root: mnt, durable: false, driver: 'btrfs' });
    expect(store.driver).toBe('btrfs');
    const r = await store.unpackImage({ ...image, owner: 'image:three' });
    const subvols = execFileSync('btrfs', ['subvolume', 'list', mnt], { encoding: 'utf8' });
    for (const l of r) expect(subvols).toContain(`layers/${l.chainID.slice(7)}/diff`);
    const c = await store.prepare('b1', image.diffIDs);
    if (hasUmoci) {
      const bundle = join(work, 'umoci-btrfs');
      execFileSync('umoci', ['unpack', '--image', `${join(work, 'oci-btrfs')}:three`, bundle]);
      expect([...describeTree(c.rootfs)]).toEqual([...describeTree(join(bundle, 'rootfs'))]);
    }
    rmSync(join(c.rootfs, 'home'), { recursive: true });
    expect(await store.diff('b1')).toEqual([{ kind: 'D', path: '/home' }]);
    await store.remove('b1');
    await store.release('image:three');
    expect((await store.gc()).removed).toHaveLength(3);
    expect(execFileSync('btrfs', ['subvolume', 'list', mnt], { encoding: 'utf8' }).trim()).toBe('');
  });
});

const hasAufs = readFileSync('/proc/filesystems', 'utf8').includes('\taufs\n');
describe('LayerStore: aufs driver', () => {
  // Linux 6.18 has no aufs (it was never merged upstream): this runs only where /proc/filesystems lists it.
  it.skipIf(!hasAufs || !isRoot)(
    '(needs aufs in /proc/filesystems) mounts the image as umoci unpacks it',
    async () => {
      const image = await makeImage(join(work, 'oci-aufs'), threeLayers(), 'three');
      const store = await LayerStore.open({ root: join(work, 'aufsroot'), driver: 'aufs', durable: false });
      await store.unpackImage({ ...image });
      const c = await store.prepare('a1', image.diffIDs);
      try {
        const bundle = join(work, 'umoci-aufs');
        execFileSync('umoci', ['unpack', '--image', `${join(work, 'oci-aufs')}:three`, bundle]);
        expect([...describeTree(c.rootfs)]).toEqual([...describeTree(join(bundle, 'rootfs'))]);
      } finally {
        await store.remove('a1');
      }
    },
  );
  it.skipIf(hasAufs)('is refused clearly where the kernel has no aufs', async () => {
    await expect(LayerStore.open({ root: join(work, 'aufs'), driver: 'aufs' })).rejects.toThrow(
      /driver aufs: this kernel has no aufs/,
    );
  });
});
