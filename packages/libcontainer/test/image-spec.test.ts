// The image config → runtime config conversion: Docker's args/env/user rules, safe reading of the
// image's /etc/passwd and /etc/group, annotations, volumes and the bundle's config.json.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ImageConfig } from '@tsc/image';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  createImageBundle,
  DEFAULT_PATH,
  imageSpec,
  readRootfsFile,
  resolveUserSpec,
} from '../src/image/index.js';
import { defaultSpec, loadConfig } from '../src/index.js';

const PASSWD = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
# a comment
app:x:1000:1000:App:/home/app:/bin/sh
broken line
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
`;
const GROUP = `root:x:0:
wheel:x:10:root,app
audio:x:29:app
staff:x:50:
app:x:1000:
`;

let tmp: string;
let rootfs: string;

function image(config: ImageConfig['config'] = {}, extra: Partial<ImageConfig> = {}): ImageConfig {
  return {
    architecture: 'amd64',
    os: 'linux',
    created: '2024-01-02T03:04:05Z',
    config,
    rootfs: { type: 'layers', diff_ids: [] },
    ...extra,
  };
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-image-spec-'));
  rootfs = path.join(tmp, 'rootfs');
  fs.mkdirSync(path.join(rootfs, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(rootfs, 'etc/passwd'), PASSWD);
  fs.writeFileSync(path.join(rootfs, 'etc/group'), GROUP);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('args (Docker override rules)', () => {
  const run = (config: ImageConfig['config'], overrides = {}) =>
    imageSpec({ config: image(config), rootfs, overrides }).spec.process?.args;

  test('Entrypoint + Cmd', () => {
    expect(run({ Entrypoint: ['/ep', '-x'], Cmd: ['a', 'b'] })).toEqual(['/ep', '-x', 'a', 'b']);
    expect(run({ Cmd: ['sh'] })).toEqual(['sh']);
    expect(run({ Entrypoint: ['/ep'] })).toEqual(['/ep']);
  });
  test('arguments replace Cmd, keep Entrypoint', () => {
    expect(run({ Entrypoint: ['/ep'], Cmd: ['a'] }, { cmd: ['z'] })).toEqual(['/ep', 'z']);
    expect(run({ Entrypoint: ['/ep'], Cmd: ['a'] }, { cmd: [] })).toEqual(['/ep', 'a']);
  });
  test('--entrypoint resets Cmd unless arguments are given', () => {
    expect(run({ Entrypoint: ['/ep'], Cmd: ['a'] }, { entrypoint: ['/other'] })).toEqual(['/other']);
    expect(run({ Entrypoint: ['/ep'], Cmd: ['a'] }, { entrypoint: ['/other'], cmd: ['q'] })).toEqual([
      '/other',
      'q',
    ]);
    // --entrypoint "" clears it
    expect(run({ Entrypoint: ['/ep'], Cmd: ['a'] }, { entrypoint: [''], cmd: ['ls'] })).toEqual(['ls']);
  });
  test('no command at all is a clear error', () => {
    expect(() => imageSpec({ config: image({}), rootfs, image: 'scratchy' })).toThrow(
      'image "scratchy" has no command: give one after the image name',
    );
    expect(() =>
      imageSpec({ config: image({ Entrypoint: ['/ep'] }), rootfs, overrides: { entrypoint: [''] } }),
    ).toThrow(/has no command/);
  });
});

describe('env, cwd, hostname, terminal, root', () => {
  test('image env, then -e (replace or append); PATH, HOSTNAME, HOME filled in', () => {
    const { spec } = imageSpec({
      config: image({ Env: ['A=1', 'B=2'], Cmd: ['sh'] }),
      rootfs,
      overrides: { env: ['B=3', 'C=4', 'FROM_HOST', 'UNSET_ON_HOST'], hostname: 'box' },
      hostEnv: { FROM_HOST: 'yes' },
    });
    expect(spec.process?.env).toEqual([
      `PATH=${DEFAULT_PATH}`,
      'HOSTNAME=box',
      'A=1',
      'B=3',
      'C=4',
      'FROM_HOST=yes',
      'HOME=/root',
    ]);
    expect(spec.hostname).toBe('box');
  });
  test('the image PATH is kept; TERM with a terminal', () => {
    const { spec } = imageSpec({
      config: image({ Env: ['PATH=/x', 'HOME=/h'], Cmd: ['sh'] }),
      rootfs,
      overrides: { terminal: true },
    });
    expect(spec.process?.env).toEqual(['HOSTNAME=nsinit', 'TERM=xterm', 'PATH=/x', 'HOME=/h']);
    expect(spec.process?.terminal).toBe(true);
  });
  test('cwd: WorkingDir, -w, / by default; relative refused', () => {
    const cwd = (c: ImageConfig['config'], o = {}) =>
      imageSpec({ config: image({ Cmd: ['sh'], ...c }), rootfs, overrides: o }).spec.process?.cwd;
    expect(cwd({})).toBe('/');
    expect(cwd({ WorkingDir: '/srv/app' })).toBe('/srv/app');
    expect(cwd({ WorkingDir: '/srv/app' }, { workdir: '/tmp' })).toBe('/tmp');
    expect(() => cwd({}, { workdir: 'rel' })).toThrow('working directory "rel" must be absolute');
  });
  test('root: the rootfs path, read-write unless asked; the base is kept', () => {
    const base = defaultSpec({ rootless: true });
    const { spec } = imageSpec({
      config: image({ Cmd: ['sh'] }),
      rootfs,
      base,
      overrides: { readonly: true },
    });
    expect(spec.root).toEqual({ path: rootfs, readonly: true });
    expect(spec.linux?.namespaces?.some((n) => n.type === 'user')).toBe(true);
    expect(imageSpec({ config: image({ Cmd: ['sh'] }), rootfs }).spec.root?.readonly).toBe(false);
  });
});

describe('user', () => {
  const u = (spec: string) => resolveUserSpec(spec, PASSWD, GROUP);
  test('names, numbers and groups like runc/Docker', () => {
    expect(u('')).toEqual({ uid: 0, gid: 0, additionalGids: [10], home: '/root', name: 'root' });
    expect(u('app')).toEqual({
      uid: 1000,
      gid: 1000,
      additionalGids: [10, 29],
      home: '/home/app',
      name: 'app',
    });
    expect(u('1000')).toMatchObject({ uid: 1000, gid: 1000, additionalGids: [10, 29], name: 'app' });
    expect(u('app:staff')).toMatchObject({ uid: 1000, gid: 50, additionalGids: [] });
    expect(u('app:77')).toMatchObject({ uid: 1000, gid: 77, additionalGids: [] });
    expect(u('4242')).toEqual({ uid: 4242, gid: 0, additionalGids: [], home: '/' });
    expect(u('4242:4343')).toEqual({ uid: 4242, gid: 4343, additionalGids: [], home: '/' });
    expect(resolveUserSpec('5:6', undefined, undefined)).toMatchObject({ uid: 5, gid: 6 });
  });
  test('unknown names are clear errors', () => {
    expect(() => u('ghost')).toThrow(`user "ghost": no user "ghost" in the image's /etc/passwd`);
    expect(() => u('app:ghosts')).toThrow(`no group "ghosts" in the image's /etc/group`);
    expect(() => resolveUserSpec('app', undefined, undefined)).toThrow(/the image has no \/etc\/passwd/);
  });
  test('through imageSpec: process.user and additionalGids; a missing image user names the image', () => {
    const r = imageSpec({ config: image({ Cmd: ['id'], User: 'app' }), rootfs });
    expect(r.spec.process?.user).toEqual({ uid: 1000, gid: 1000, additionalGids: [10, 29] });
    expect(r.spec.process?.env).toContain('HOME=/home/app');
    expect(
      imageSpec({ config: image({ Cmd: ['id'], User: 'app' }), rootfs, overrides: { user: '0:0' } }).spec
        .process?.user,
    ).toEqual({ uid: 0, gid: 0 });
    expect(() => imageSpec({ config: image({ Cmd: ['id'], User: 'nobody2' }), rootfs, image: 'x' })).toThrow(
      `image "x": user "nobody2": no user "nobody2" in the image's /etc/passwd`,
    );
  });
});

describe('reading the untrusted rootfs', () => {
  test('a symlink to a host file resolves inside the rootfs', () => {
    const evil = path.join(tmp, 'evil');
    fs.mkdirSync(path.join(evil, 'etc'), { recursive: true });
    const secret = path.join(tmp, 'host-secret');
    fs.writeFileSync(secret, 'hostuser:x:0:0::/:/bin/sh\n');
    fs.symlinkSync(secret, path.join(evil, 'etc/passwd'));
    // absolute symlink: resolved as <rootfs><target>, which does not exist
    expect(readRootfsFile(evil, '/etc/passwd')).toBeUndefined();
    // a relative one climbing out stays in the root too
    fs.rmSync(path.join(evil, 'etc/passwd'));
    fs.symlinkSync('../../../../../../../../etc/hostname', path.join(evil, 'etc/passwd'));
    fs.writeFileSync(path.join(evil, 'etc/hostname'), 'inside\n');
    expect(readRootfsFile(evil, '/etc/passwd')?.toString()).toBe('inside\n');
    expect(() => imageSpec({ config: image({ Cmd: ['sh'], User: 'hostuser' }), rootfs: evil })).toThrow(
      /no user "hostuser"/,
    );
  });
  test('a FIFO or a directory is refused, not read', () => {
    const r = path.join(tmp, 'fifo');
    fs.mkdirSync(path.join(r, 'etc'), { recursive: true });
    execFileSync('mkfifo', [path.join(r, 'etc/passwd')]);
    expect(() => readRootfsFile(r, '/etc/passwd')).toThrow('/etc/passwd in the image is not a regular file');
    fs.mkdirSync(path.join(r, 'etc/group'));
    expect(() => readRootfsFile(r, '/etc/group')).toThrow(/not a regular file/);
  });
  test('a missing file is undefined; numeric users need none', () => {
    const r = path.join(tmp, 'empty');
    fs.mkdirSync(r);
    expect(readRootfsFile(r, '/etc/passwd')).toBeUndefined();
    expect(imageSpec({ config: image({ Cmd: ['x'], User: '12:34' }), rootfs: r }).spec.process?.user).toEqual(
      {
        uid: 12,
        gid: 34,
      },
    );
  });
});

describe('annotations, ports, volumes, stop signal', () => {
  const cfg = image(
    {
      Cmd: ['sh'],
      Labels: { 'org.example.a': '1', 'org.opencontainers.image.os': 'label-loses' },
      ExposedPorts: { '80/tcp': {}, '53/udp': {} },
      Volumes: { '/data': {}, '/cache': {} },
      StopSignal: 'SIGQUIT',
    },
    { author: 'me', variant: 'v8' },
  );
  test('labels and the image-spec annotations', () => {
    const r = imageSpec({ config: cfg, rootfs, image: 'docker.io/library/x:1' });
    expect(r.spec.annotations).toEqual({
      'org.example.a': '1',
      'org.opencontainers.image.os': 'linux',
      'org.opencontainers.image.architecture': 'amd64',
      'org.opencontainers.image.variant': 'v8',
      'org.opencontainers.image.author': 'me',
      'org.opencontainers.image.created': '2024-01-02T03:04:05Z',
      'org.opencontainers.image.exposedPorts': '53/udp,80/tcp',
      'org.opencontainers.image.stopSignal': 'SIGQUIT',
      'org.opencontainers.image.ref.name': 'docker.io/library/x:1',
    });
    expect(r.exposedPorts).toEqual(['53/udp', '80/tcp']);
    expect(r.volumes).toEqual(['/cache', '/data']);
    expect(r.stopSignal).toBe('SIGQUIT');
    expect(r.spec.mounts?.some((m) => m.destination === '/data')).toBe(false);
  });
  test('volumes as tmpfs when asked', () => {
    const r = imageSpec({ config: cfg, rootfs, volumes: 'tmpfs' });
    expect(
      r.spec.mounts?.filter((m) => m.type === 'tmpfs' && m.source === 'tmpfs').map((m) => m.destination),
    ).toEqual(['/dev', '/cache', '/data']);
  });
});

describe('createImageBundle', () => {
  test('writes a valid config.json atomically with root.path the rootfs', async () => {
    const bundle = path.join(tmp, 'bundle');
    const { spec } = imageSpec({ config: image({ Cmd: ['sh'] }), rootfs });
    const file = await createImageBundle({
      bundleDir: bundle,
      rootfs,
      spec: { ...spec, root: { path: 'x' } },
    });
    expect(file).toBe(path.join(bundle, 'config.json'));
    expect(fs.readdirSync(bundle)).toEqual(['config.json']);
    const loaded = loadConfig(bundle);
    expect(loaded.root?.path).toBe(rootfs);
    expect(loaded.process?.args).toEqual(['sh']);
  });
  test('refuses an invalid spec and leaves nothing', async () => {
    const bundle = path.join(tmp, 'bundle-bad');
    const { spec } = imageSpec({ config: image({ Cmd: ['sh'] }), rootfs });
    const bad = { ...spec, process: { ...spec.process, cwd: 'relative' } } as typeof spec;
    await expect(createImageBundle({ bundleDir: bundle, rootfs, spec: bad })).rejects.toThrow(/process\.cwd/);
    expect(fs.existsSync(path.join(bundle, 'config.json'))).toBe(false);
  });
});
