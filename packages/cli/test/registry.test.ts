// nsinit pull / push / login / logout against Debian's docker-registry on 127.0.0.1 (the
// built CLI as a subprocess; stdout is not a terminal, so progress is plain lines).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { digestOf } from '@tsc/image';
import { ContentStore, type Descriptor } from '@tsc/registry-client';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { COMMAND, freePort, type Registry, STACK_LINE, startRegistry, ustar } from './helpers.js';

const bin = COMMAND[COMMAND.length - 1] as string;
const skip = !fs.existsSync('/usr/bin/docker-registry')
  ? 'needs docker-registry'
  : !fs.existsSync(bin)
    ? `needs the built CLI (${bin})`
    : undefined;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function nsinit(args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(COMMAND[0] as string, [...COMMAND.slice(1), ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, NSINIT_DEBUG: '', ...(opts.env ?? {}) },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b;
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b;
    });
    child.stdin.end(opts.input ?? '');
    const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      expect(stderr).not.toMatch(STACK_LINE);
      resolve({ code, stdout, stderr });
    });
  });
}

const show = (r: Run) => `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;

/** A small image (config + layers of random bytes in gzip) named `name` in `store`. */
async function makeImage(
  store: ContentStore,
  name: string | undefined,
  arch = 'amd64',
  sizes = [2000, 300_000],
) {
  const layers: Descriptor[] = [];
  const diffIDs: string[] = [];
  for (const s of sizes) {
    // A real layer (the CLI's pull extracts it): one file of random bytes.
    const tar = ustar([
      { name: `blob-${arch}`, data: Buffer.concat([Buffer.from(`${arch}${name}`), randomBytes(s)]) },
    ]);
    diffIDs.push(digestOf(tar));
    const data = gzipSync(tar);
    layers.push({
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      digest: await store.put(data),
      size: data.length,
    });
  }
  const config = await store.putJSON(
    { architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: diffIDs } },
    'application/vnd.oci.image.config.v1+json',
  );
  const mt = 'application/vnd.oci.image.manifest.v1+json';
  const manifest = await store.putJSON({ schemaVersion: 2, mediaType: mt, config, layers }, mt);
  if (name) await store.setRef(name, manifest);
  return { manifest, layers };
}

describe.skipIf(skip !== undefined)('nsinit pull/push/login', () => {
  let tmp: string;
  let reg: Registry;
  let authReg: Registry;
  let src: ContentStore;
  const USER = 'bob';
  const PASS = 'Secret-Pa55-for-tests';

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nsinit-reg-'));
    reg = await startRegistry(tmp);
    authReg = await startRegistry(tmp, execFileSync('htpasswd', ['-Bbn', USER, PASS], { encoding: 'utf8' }));
    src = await ContentStore.open(path.join(tmp, 'src', 'content'));
  });
  afterAll(async () => {
    await reg?.stop();
    await authReg?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('pull prints Docker-like progress, stores into <data-root>/content; again: up to date; -q', async () => {
    const name = `${reg.host}/app/web:v1`;
    const img = await makeImage(src, name);
    const p = await nsinit(['--data-root', path.join(tmp, 'src'), 'push', name]);
    expect(p.code, show(p)).toBe(0);
    expect(p.stdout).toMatch(`The push refers to repository [${reg.host}/app/web]`);
    const id = img.layers[1]!.digest.slice(7, 19);
    expect(p.stdout).toMatch(`${id}: Pushed`);
    expect(p.stdout).toMatch(`v1: digest: ${img.manifest.digest} size: ${img.manifest.size}`);

    const root = path.join(tmp, 'root1');
    const r = await nsinit(['pull', '--data-root', root, name]);
    expect(r.code, show(r)).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe(`v1: Pulling from app/web`);
    expect(r.stdout).toMatch(`${id}: Pulling fs layer\n`);
    expect(r.stdout).toMatch(`${id}: Downloading\n`);
    expect(r.stdout).toMatch(`${id}: Download complete\n`);
    expect(lines.slice(-3)).toEqual([
      `Digest: ${img.manifest.digest}`,
      `Status: Downloaded newer image for ${name}`,
      name,
    ]);
    const store = await ContentStore.open(path.join(root, 'content'), { create: false });
    expect((await store.resolve(name))?.digest).toBe(img.manifest.digest);

    const again = await nsinit(['--data-root', root, 'pull', name]);
    expect(again.code, show(again)).toBe(0);
    expect(again.stdout).toMatch(`${id}: Already exists`);
    expect(again.stdout).toMatch(`Status: Image is up to date for ${name}`);

    const q = await nsinit(['pull', '-q', '--data-root', path.join(tmp, 'root2'), name]);
    expect(q.code, show(q)).toBe(0);
    expect(q.stdout).toBe(`${name}\n`);
  });

  test('pull extracts the layers into the layer store; run --image pulls an image it does not have', async () => {
    const name = `${reg.host}/app/extract:1`;
    await makeImage(src, name);
    expect((await nsinit(['--data-root', path.join(tmp, 'src'), 'push', '-q', name])).code).toBe(0);
    const root = path.join(tmp, 'extract');
    const r = await nsinit(['pull', '--data-root', root, name]);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(/: Extracting\n/);
    expect(r.stdout).toMatch(/: Pull complete\n/);
    const layerDirs = fs.readdirSync(path.join(root, 'layers'));
    expect(layerDirs.length).toBeGreaterThan(0);
    // run --image of an image that is not in the store: "Unable to find image", pull on stderr, then run.
    if (process.getuid?.() !== 0 || !fs.existsSync('/bin/busybox')) return;
    const rootfs = execFileSync('tar', ['-C', '/', '-cf', '-', 'bin/busybox'], { maxBuffer: 64 << 20 });
    const bb = await ContentStore.open(path.join(tmp, 'bbsrc', 'content'));
    const tar = rootfs;
    const gz = gzipSync(tar);
    const layer = {
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      digest: await bb.put(gz),
      size: gz.length,
    };
    const config = await bb.putJSON(
      {
        architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
        os: 'linux',
        config: { Cmd: ['/bin/busybox', 'echo', 'pulled and ran'] },
        rootfs: { type: 'layers', diff_ids: [digestOf(tar)] },
      },
      'application/vnd.oci.image.config.v1+json',
    );
    const mt = 'application/vnd.oci.image.manifest.v1+json';
    const bbName = `${reg.host}/app/bb:1`;
    await bb.setRef(
      bbName,
      await bb.putJSON({ schemaVersion: 2, mediaType: mt, config, layers: [layer] }, mt),
    );
    expect((await nsinit(['--data-root', path.join(tmp, 'bbsrc'), 'push', '-q', bbName])).code).toBe(0);
    const state = path.join(tmp, 'run-state');
    const run = await nsinit([
      '--root',
      state,
      '--data-root',
      path.join(tmp, 'autopull'),
      'run',
      '--image',
      bbName,
      '--rm',
      '--network',
      'none',
    ]);
    expect(run.code, show(run)).toBe(0);
    expect(run.stdout).toBe('pulled and ran\n');
    expect(run.stderr).toMatch(`Unable to find image '${bbName}' locally`);
    expect(run.stderr).toMatch('Pull complete');
  });

  test.skipIf(!fs.existsSync('/usr/bin/script'))(
    'on a terminal: live per-layer lines with a bar, bytes and speed',
    async () => {
      const name = `${reg.host}/app/tty:1`;
      const img = await makeImage(src, name, 'amd64', [3_000_000]);
      const p = await nsinit(['--data-root', path.join(tmp, 'src'), 'push', '-q', name]);
      expect(p.code, show(p)).toBe(0);
      const q = (x: string) => `'${x.replaceAll("'", "'\\''")}'`;
      const cmd = [...COMMAND, 'pull', '--data-root', path.join(tmp, 'tty-root'), name].map(q).join(' ');
      const out = execFileSync('script', ['-qec', cmd, '/dev/null'], {
        encoding: 'utf8',
        env: { ...process.env, TERM: 'xterm' },
      });
      const id = img.layers[0]!.digest.slice(7, 19);
      expect(out).toMatch(new RegExp(`${id}: Downloading \\[[= >]{50}\\]  [0-9.]+[kM]?B/3\\.00MB`));
      expect(out).toMatch(`${id}: Pull complete`);
      expect(out).toMatch('\x1b['); // cursor movement: the lines are redrawn in place
      expect(out).toMatch(`Status: Downloaded newer image for ${name}`);
    },
  );

  test('--platform chooses from a multi-arch index; push mounts from the pulled repository', async () => {
    const amd = await makeImage(src, undefined, 'amd64', [1000]);
    const arm = await makeImage(src, undefined, 'arm64', [1000]);
    const mt = 'application/vnd.oci.image.index.v1+json';
    const index = await src.putJSON(
      {
        schemaVersion: 2,
        mediaType: mt,
        manifests: [
          { ...amd.manifest, platform: { os: 'linux', architecture: 'amd64' } },
          { ...arm.manifest, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
        ],
      },
      mt,
    );
    const name = `${reg.host}/multi/x:1`;
    await src.setRef(name, index);
    const p = await nsinit(['--data-root', path.join(tmp, 'src'), 'push', '-q', name]);
    expect(p.code, show(p)).toBe(0);
    expect(p.stdout).toBe(`${index.digest}\n`);

    const root = path.join(tmp, 'root3');
    const r = await nsinit(['pull', '--platform', 'linux/arm64', '--data-root', root, name]);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(`Digest: ${index.digest}`);
    const store = await ContentStore.open(path.join(root, 'content'), { create: false });
    expect((await store.resolve(name))?.digest).toBe(arm.manifest.digest);

    const bad = await nsinit(['pull', '--platform', 'linux/s390x', '--data-root', root, name]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(
      `nsinit: pull ${name}: ${name}: no manifest for linux/s390x (it has linux/amd64, linux/arm64/v8)\n`,
    );

    // The pulled arm64 image pushed to another repository of the same registry: mounted.
    const m = await nsinit(['--data-root', root, 'push', '--from', name, `${reg.host}/multi/copy:arm`]);
    expect(m.code, show(m)).toBe(0);
    expect(m.stdout).toMatch(`${arm.layers[0]!.digest.slice(7, 19)}: Mounted from multi/x`);
    const info = JSON.parse(
      execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/multi/copy:arm`], {
        encoding: 'utf8',
      }),
    );
    expect(info.Architecture).toBe('arm64');
  });

  test('errors are one line: registry not running, invalid name, unknown image, nothing to push', async () => {
    const port = await freePort();
    const r = await nsinit(['pull', '--data-root', path.join(tmp, 'e'), `127.0.0.1:${port}/x`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `nsinit: pull 127.0.0.1:${port}/x:latest: connect ECONNREFUSED 127.0.0.1:${port} (is the registry running?)\n`,
    );
    const bad = await nsinit(['pull', '--data-root', path.join(tmp, 'e'), 'Bad Name']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('nsinit: invalid image reference "Bad Name": it contains white space\n');
    const none = await nsinit(['pull', '--data-root', path.join(tmp, 'e'), `${reg.host}/no/such:1`]);
    expect(none.stderr).toBe(
      `nsinit: pull ${reg.host}/no/such:1: manifest ${reg.host}/no/such:1 not found (MANIFEST_UNKNOWN)\n`,
    );
    const np = await nsinit(['--data-root', path.join(tmp, 'e'), 'push', `${reg.host}/nothing:1`]);
    expect(np.code).toBe(1);
    expect(np.stderr).toMatch(`nsinit: push ${reg.host}/nothing:1: no image named ${reg.host}/nothing:1 in`);
    const plat = await nsinit(['pull', '--platform', 'linux', `${reg.host}/x`]);
    expect(plat.stderr).toMatch(/^nsinit: --platform: invalid platform "linux"/);
  });

  test('login --password-stdin / logout with DOCKER_CONFIG; secrets never printed or logged', async () => {
    const cfgDir = path.join(tmp, 'docker');
    const env = { DOCKER_CONFIG: cfgDir };
    const log = path.join(tmp, 'nsinit.log');
    const name = `${authReg.host}/priv/img:1`;
    await makeImage(src, name, 'amd64', [500]);

    const anon = await nsinit(['--log', log, '--data-root', path.join(tmp, 'src'), 'push', name], { env });
    expect(anon.code).toBe(1);
    expect(anon.stderr).toMatch(/unauthorized \(no credentials for this registry: nsinit login\?\)/);

    const wrong = await nsinit(['--log', log, 'login', '-u', USER, '--password-stdin', authReg.host], {
      env,
      input: 'not-the-Secret-1\n',
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(
      `nsinit: login ${authReg.host}: login to ${authReg.host}: unauthorized (user "bob")`,
    );
    expect(fs.existsSync(path.join(cfgDir, 'config.json'))).toBe(false);

    const ok = await nsinit(['login', '--username', USER, '--password-stdin', authReg.host], {
      env,
      input: `${PASS}\n`,
    });
    expect(ok.code, show(ok)).toBe(0);
    expect(ok.stdout).toBe('Login Succeeded\n');
    const cfg = JSON.parse(fs.readFileSync(path.join(cfgDir, 'config.json'), 'utf8'));
    expect(cfg.auths[authReg.host].auth).toBe(Buffer.from(`${USER}:${PASS}`).toString('base64'));

    const pushed = await nsinit(['--log', log, '--data-root', path.join(tmp, 'src'), 'push', name], { env });
    expect(pushed.code, show(pushed)).toBe(0);
    const pulled = await nsinit(['--log', log, 'pull', '--data-root', path.join(tmp, 'auth-root'), name], {
      env,
    });
    expect(pulled.code, show(pulled)).toBe(0);

    const out = await nsinit(['logout', authReg.host], { env });
    expect(out.stdout).toBe(`Removing login credentials for ${authReg.host}\n`);
    const out2 = await nsinit(['logout', authReg.host], { env });
    expect(out2.stdout).toBe(`Not logged in to ${authReg.host}\n`);
    const denied = await nsinit(['--log', log, 'pull', '--data-root', path.join(tmp, 'auth-root2'), name], {
      env,
    });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/unauthorized/);

    const everything =
      [anon, wrong, ok, pushed, pulled, out, denied].map((r) => r.stdout + r.stderr).join('\n') +
      fs.readFileSync(log, 'utf8');
    for (const secret of ['not-the-Secret-1', PASS, Buffer.from(`${USER}:${PASS}`).toString('base64')])
      expect(everything).not.toContain(secret);
  });
});
