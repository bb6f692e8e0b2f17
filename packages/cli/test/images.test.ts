// nsinit images, rmi, tag, inspect, save, load and the `image` group, run as the built CLI against
// temporary data roots.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { digestOf, type ImageConfig, MediaType, openImageStore } from '@tsc/image';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { COMMAND, nsinit, type Result, STACK_LINE, show, skipReason } from './helpers.js';

const skip = skipReason();

describe.skipIf(skip !== undefined)('nsinit image commands', () => {
  let tmp: string;
  let dataRoot: string;
  let id: string;
  let manifestDigest: string;

  async function ns(args: string[], root = dataRoot): Promise<Result> {
    const r = await nsinit(tmp, ['--data-root', root, ...args]);
    expect(r.stderr, show(r)).not.toMatch(STACK_LINE);
    return r;
  }
  function ok(r: Result): Result {
    expect(r.code, show(r)).toBe(0);
    return r;
  }
  function fails(r: Result, re: RegExp): void {
    expect(r.code, show(r)).toBe(1);
    expect(r.stderr, show(r)).toMatch(/^nsinit: [^\n]+\n$/);
    expect(r.stderr, show(r)).toMatch(re);
  }

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nsinit-images-'));
    dataRoot = path.join(tmp, 'data');
    // A busybox image: one layer made with tar(1).
    const src = path.join(tmp, 'layer-src');
    fs.mkdirSync(path.join(src, 'bin'), { recursive: true });
    fs.copyFileSync('/bin/busybox', path.join(src, 'bin/busybox'));
    fs.symlinkSync('busybox', path.join(src, 'bin/sh'));
    const layer = execFileSync('tar', ['-C', src, '--owner=0', '--group=0', '-cf', '-', 'bin'], {
      maxBuffer: 1 << 26,
    });
    const store = await openImageStore(dataRoot);
    const layerDigest = await store.put(layer);
    const config: ImageConfig = {
      created: new Date(Date.now() - 3 * 86_400_000).toISOString(),
      architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/bin'], Cmd: ['sh'], Labels: { a: 'b' }, ExposedPorts: { '80/tcp': {} } },
      rootfs: { type: 'layers', diff_ids: [digestOf(layer)] },
      history: [{ created: '2024-01-01T00:00:00Z', created_by: 'tar' }],
    };
    const cfg = await store.putJSON(config, MediaType.ociConfig);
    const m = await store.putJSON(
      {
        schemaVersion: 2,
        mediaType: MediaType.ociManifest,
        config: cfg,
        layers: [{ mediaType: MediaType.ociLayer, digest: layerDigest, size: layer.length }],
      },
      MediaType.ociManifest,
    );
    await store.setRef('docker.io/library/busybox:latest', m);
    id = cfg.digest;
    manifestDigest = m.digest;
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('images: table, --digests, -q, --format json, a filter', async () => {
    const r = ok(await ns(['images']));
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
    expect(lines[1]).toMatch(
      new RegExp(`^busybox\\s+latest\\s+${id.slice(7, 19)}\\s+3 days ago\\s+\\d(\\.\\d+)?MB$`),
    );
    expect(ok(await ns(['images', '--digests'])).stdout).toContain(manifestDigest);
    expect(ok(await ns(['images', '-q'])).stdout).toBe(`${id.slice(7, 19)}\n`);
    const j = JSON.parse(ok(await ns(['images', '--format', 'json'])).stdout.trim());
    expect(j).toMatchObject({
      Repository: 'busybox',
      Tag: 'latest',
      ID: id.slice(7, 19),
      Digest: manifestDigest,
    });
    expect(
      ok(await ns(['images', 'busybox']))
        .stdout.trim()
        .split('\n'),
    ).toHaveLength(2);
    expect(
      ok(await ns(['images', 'other']))
        .stdout.trim()
        .split('\n'),
    ).toHaveLength(1);
    fails(await ns(['images', '--format', 'yaml']), /--format: expected table or json/);
  });

  test('NSINIT_DATA_ROOT is the default data root; an empty store lists only the header', async () => {
    const r = spawnSync(COMMAND[0] as string, [...COMMAND.slice(1), 'image', 'ls'], {
      env: { ...process.env, NSINIT_DATA_ROOT: dataRoot },
      encoding: 'utf8',
    });
    expect(r.stdout).toContain('busybox');
    expect(ok(await ns(['images'], path.join(tmp, 'empty'))).stdout).toMatch(
      /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE\n$/,
    );
  });

  test('tag and inspect', async () => {
    ok(await ns(['tag', 'busybox', 'me/box:1']));
    ok(await ns(['image', 'tag', id.slice(7, 15), 'localhost:5000/box']));
    const [img] = JSON.parse(ok(await ns(['inspect', 'me/box:1'])).stdout);
    expect(img).toMatchObject({
      Id: id,
      RepoTags: ['busybox:latest', 'me/box:1', 'localhost:5000/box:latest'],
      Architecture: expect.any(String),
      Os: 'linux',
      Config: {
        Env: ['PATH=/bin'],
        Cmd: ['sh'],
        Entrypoint: null,
        Labels: { a: 'b' },
        ExposedPorts: { '80/tcp': {} },
      },
      RootFS: { Type: 'layers', Layers: [expect.stringMatching(/^sha256:/)] },
      History: [{ Created: '2024-01-01T00:00:00Z', CreatedBy: 'tar', Comment: '', EmptyLayer: false }],
    });
    expect(img.RepoDigests).toContain(`busybox@${manifestDigest}`);
    expect(img.Size).toBeGreaterThan(100_000);
    const r = await ns(['inspect', 'nope']);
    fails(r, /image "nope" not found in .*\/content \(pull it with nsinit pull nope\)/);
    expect(r.stdout).toBe('[]\n');
    fails(await ns(['tag', 'busybox', 'Bad:Name']), /invalid image reference "Bad:Name"/);
    fails(await ns(['tag', 'nope', 'x']), /image "nope" not found/);
    ok(await ns(['rmi', 'me/box:1', 'localhost:5000/box']));
  });

  test('save (docker and oci) and load (file, stdin, gzip) into another data root', async () => {
    const d = path.join(tmp, 'b.tar');
    const o = path.join(tmp, 'o.tar');
    ok(await ns(['save', '-o', d, 'busybox']));
    ok(await ns(['image', 'save', '--format', 'oci', '-o', o, 'busybox:latest']));
    expect(execFileSync('tar', ['tf', d], { encoding: 'utf8' })).toContain('manifest.json');
    expect(execFileSync('tar', ['tf', o], { encoding: 'utf8' })).toContain('oci-layout');
    fails(await ns(['save', '--format', 'zip', '-o', d, 'busybox']), /--format: expected docker or oci/);
    fails(await ns(['save', '-o', path.join(tmp, 'x.tar'), 'nope']), /image "nope" not found/);
    expect(fs.existsSync(path.join(tmp, 'x.tar'))).toBe(false);

    const other = path.join(tmp, 'other');
    expect(ok(await ns(['load', '-i', d], other)).stdout).toBe('Loaded image: busybox:latest\n');
    // stdin, gzip-compressed
    execFileSync('sh', ['-c', `gzip -c '${o}' > '${o}.gz'`]);
    const third = path.join(tmp, 'third');
    const r = spawnSync('sh', ['-c', `"$@" < '${o}.gz'`, 'sh', ...COMMAND, '--data-root', third, 'load'], {
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toBe('Loaded image: busybox:latest\n');
    for (const root of [other, third]) {
      const [img] = JSON.parse(ok(await ns(['inspect', 'busybox'], root)).stdout);
      expect(img.Id).toBe(id);
    }
    fails(await ns(['load', '-i', path.join(tmp, 'missing.tar')], other), /load: .*missing\.tar: ENOENT/);
    fs.writeFileSync(path.join(tmp, 'junk'), 'junk'.repeat(300));
    fails(await ns(['load', '-i', path.join(tmp, 'junk')], other), /archive: /);
  });

  test('rmi: by name, by ID (forced when several names), blobs collected', async () => {
    const root = path.join(tmp, 'rmi');
    const d = path.join(tmp, 'rmi.tar');
    ok(await ns(['save', '-o', d, 'busybox']));
    ok(await ns(['load', '-i', d], root));
    ok(await ns(['tag', 'busybox', 'again:1'], root));
    fails(
      await ns(['rmi', id.slice(7, 19)], root),
      /conflict: unable to delete [0-9a-f]{12} \(must be forced\)/,
    );
    expect(ok(await ns(['rmi', 'again:1'], root)).stdout).toBe('Untagged: again:1\n');
    ok(await ns(['tag', 'busybox', 'again:1'], root));
    expect(ok(await ns(['image', 'rm', '-f', id.slice(7, 19)], root)).stdout).toBe(
      `Untagged: again:1\nUntagged: busybox:latest\nDeleted: ${id}\n`,
    );
    expect(fs.readdirSync(path.join(root, 'content/blobs/sha256'))).toEqual([]);
    fails(await ns(['rmi', 'busybox'], root), /image "busybox" not found/);
  });
});
