// `nsinit run --image`, diff, commit and delete on the real kernel: images made by the test in a
// temporary data root (a busybox layer from busybox-static, small layers written here), overlay
// rootfs, bridge networks on a test bridge, published ports fetched over loopback.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  type ContainerConfig,
  digestOf,
  hostPlatform,
  MediaType,
  normalizeName,
  openImageStore,
  resolveImage,
} from '@tsc/image';
import { removeNetwork } from '@tsc/libcontainer/network';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRootfs, nsinit, type Result, STACK_LINE, show, ustar, waitFor } from './helpers.js';

const skip = (() => {
  if (process.getuid?.() !== 0) return 'needs root';
  if (!fs.existsSync('/bin/busybox')) return 'needs busybox-static';
  if (!fs.readFileSync('/proc/filesystems', 'utf8').includes('overlay')) return 'needs overlayfs';
  return undefined;
})();

/** Stores an image of `layers` (uncompressed tars, base first) named `name` in the data root. */
async function addImage(
  dataRoot: string,
  name: string,
  layers: Buffer[],
  config: ContainerConfig,
): Promise<void> {
  const store = await openImageStore(dataRoot);
  const descriptors = [];
  for (const tar of layers) {
    const gz = gzipSync(tar, { level: 1 });
    descriptors.push({ mediaType: MediaType.ociLayerGzip, digest: await store.put(gz), size: gz.length });
  }
  const { architecture, os: osName } = hostPlatform();
  const cfg = await store.putJSON(
    {
      architecture,
      os: osName,
      config,
      rootfs: { type: 'layers', diff_ids: layers.map((l) => digestOf(l)) },
      history: layers.map(() => ({ created_by: 'run-image.test.ts' })),
    },
    MediaType.ociConfig,
  );
  const manifest = await store.putJSON(
    { schemaVersion: 2, mediaType: MediaType.ociManifest, config: cfg, layers: descriptors },
    MediaType.ociManifest,
  );
  await store.setRef(normalizeName(name), manifest);
}

describe.skipIf(skip !== undefined)(`nsinit run --image ${skip ? `(skipped: ${skip})` : ''}`, () => {
  let tmp: string;
  let dataRoot: string;
  let root: string;
  // A test bridge and subnet of its own, so a real nsinit0 is never touched.
  const bridge = `tsri${process.pid % 10000}`;
  const net = ['--network', 'bridge', '--bridge', bridge, '--subnet', `172.30.${process.pid % 250}.0/24`];
  const ids: string[] = [];
  let n = 0;
  const id = () => {
    const v = `ri${process.pid}x${++n}`;
    ids.push(v);
    return v;
  };
  const ns = (args: string[], timeout = 30_000): Promise<Result> =>
    nsinit(tmp, ['--root', root, '--data-root', dataRoot, ...args], { timeout });

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-run-image-'));
    dataRoot = path.join(tmp, 'data');
    root = path.join(tmp, 'state');
    const busybox = execFileSync('tar', ['-C', buildRootfs(), '-cf', '-', '.'], { maxBuffer: 64 << 20 });
    await addImage(dataRoot, 'test/busybox', [busybox], {
      Env: ['PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'FROM_IMAGE=yes'],
      Cmd: ['sh', '-c', 'echo default command'],
      WorkingDir: '/tmp',
      ExposedPorts: { '80/tcp': {} },
    });
    // Three more layers: a changed file, a deleted one, an added tree.
    await addImage(
      dataRoot,
      'test/layered:1',
      [
        busybox,
        ustar([
          { name: 'app/', dir: true },
          { name: 'app/a.txt', data: 'layer 1\n' },
          { name: 'app/gone.txt', data: 'deleted above\n' },
        ]),
        ustar([
          { name: 'app/', dir: true },
          { name: 'app/a.txt', data: 'layer 2\n' },
          { name: 'app/.wh.gone.txt' },
        ]),
      ],
      { Env: ['PATH=/bin'], Entrypoint: ['cat'], Cmd: ['/app/a.txt'] },
    );
  }, 120_000);

  afterAll(async () => {
    for (const i of ids)
      if (fs.existsSync(path.join(root, i)) || fs.existsSync(path.join(dataRoot, 'containers', i)))
        await ns(['delete', '--force', i]).catch(() => undefined);
    await removeNetwork({ root, bridge, force: true }).catch(() => undefined);
    execFileSync('sh', [
      '-c',
      `grep -q ' ${tmp}' /proc/mounts && umount -R ${tmp}/data/layers/*/containers/*/rootfs || true`,
    ]);
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('runs the image command with its env and workdir; arguments after the name replace Cmd', async () => {
    const c = id();
    const r = await ns(['run', '--image', 'test/busybox', '--name', c, '--network', 'none']);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toBe('default command\n');
    const r2 = await ns([
      'run',
      '--image',
      'test/busybox',
      '--rm',
      '--network',
      'none',
      '-e',
      'X=1',
      '-w',
      '/etc',
      '--hostname',
      'h1',
      '--',
      'sh',
      '-c',
      'echo $FROM_IMAGE $X $(pwd) $(hostname); exit 5',
    ]);
    expect(r2.code, show(r2)).toBe(5);
    expect(r2.stdout).toBe('yes 1 /etc h1\n');
  });

  it('stacks layers with whiteouts, and --entrypoint replaces the entrypoint', async () => {
    const r = await ns(['run', '--image', 'test/layered:1', '--rm', '--network', 'none']);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toBe('layer 2\n');
    const r2 = await ns([
      'run',
      '--image',
      'test/layered:1',
      '--rm',
      '--network',
      'none',
      '--entrypoint',
      'ls',
      '--',
      '/app',
    ]);
    expect(r2.stdout).toBe('a.txt\n');
  });

  it('diff lists exactly what a container changed; commit makes an image that has them; the base is untouched', async () => {
    const c = id();
    const r = await ns([
      'run',
      '--image',
      'test/layered:1',
      '--name',
      c,
      '--network',
      'none',
      '--entrypoint',
      'sh',
      '--',
      '-c',
      'echo new > /app/new.txt && rm /app/a.txt && echo changed >> /etc/profile.d.txt; mkdir /data; echo d > /data/x; chmod 700 /bin/busybox',
    ]);
    expect(r.code, show(r)).toBe(0);
    const d = await ns(['diff', c]);
    expect(d.code, show(d)).toBe(0);
    // Exactly the container's changes: the mount points (/etc/hosts…) are in the init layer.
    expect(d.stdout.trim().split('\n').sort()).toEqual(
      [
        'A /app/new.txt',
        'A /data',
        'A /data/x',
        'A /etc/profile.d.txt',
        'C /app',
        'C /bin',
        'C /bin/busybox',
        'C /etc',
        'D /app/a.txt',
      ].sort(),
    );
    const cm = await ns([
      'commit',
      '-c',
      'CMD ["/app/new.txt"]',
      '-m',
      'test commit',
      c,
      'test/committed:v1',
    ]);
    expect(cm.code, show(cm)).toBe(0);
    expect(cm.stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
    const run = await ns(['run', '--image', 'test/committed:v1', '--rm', '--network', 'none']);
    expect(run.code, show(run)).toBe(0);
    expect(run.stdout).toBe('new\n');
    const gone = await ns([
      'run',
      '--image',
      'test/committed:v1',
      '--rm',
      '--network',
      'none',
      '--entrypoint',
      'sh',
      '--',
      '-c',
      'ls /app; cat /data/x; stat -c %a /bin/busybox',
    ]);
    expect(gone.stdout).toBe('new.txt\nd\n700\n');
    const base = await ns(['run', '--image', 'test/layered:1', '--rm', '--network', 'none']);
    expect(base.stdout).toBe('layer 2\n');
    const store = await openImageStore(dataRoot);
    const committed = await resolveImage(store, 'test/committed:v1');
    expect(committed.config.history?.at(-1)?.comment).toBe('test commit');
    expect(committed.config.rootfs.diff_ids).toHaveLength(4);
  });

  it('--rm removes the container, its writable layer and its mount; delete does the same for a kept one', async () => {
    const c = id();
    const r = await ns([
      'run',
      '--image',
      'test/busybox',
      '--name',
      c,
      '--rm',
      '--network',
      'none',
      '--',
      'true',
    ]);
    expect(r.code, show(r)).toBe(0);
    expect(fs.existsSync(path.join(root, c))).toBe(false);
    expect(fs.existsSync(path.join(dataRoot, 'containers', c))).toBe(false);
    expect(fs.readFileSync('/proc/mounts', 'utf8')).not.toContain(`/containers/${c}/`);
    const k = id();
    expect(
      (await ns(['run', '--image', 'test/busybox', '--name', k, '--network', 'none', '--', 'true'])).code,
    ).toBe(0);
    expect(fs.readFileSync('/proc/mounts', 'utf8')).toContain(`/containers/${k}/`);
    const del = await ns(['delete', k]);
    expect(del.code, show(del)).toBe(0);
    expect(fs.existsSync(path.join(dataRoot, 'containers', k))).toBe(false);
    expect(fs.readFileSync('/proc/mounts', 'utf8')).not.toContain(`/containers/${k}/`);
  });

  it('-d leaves the container running for state, exec and kill; -d --rm is removed when it exits', async () => {
    const c = id();
    const r = await ns([
      'run',
      '--image',
      'test/busybox',
      '--name',
      c,
      '-d',
      '--network',
      'none',
      '--',
      'sleep',
      '100',
    ]);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toBe(`${c}\n`);
    const st = JSON.parse((await ns(['state', c])).stdout) as { status: string };
    expect(st.status).toBe('running');
    const ex = await ns(['exec', c, 'cat', '/etc/hostname']);
    expect(ex.stdout).toBe(`${c}\n`);
    await ns(['kill', c, 'KILL']);
    await waitFor(
      'stopped',
      async () => (JSON.parse((await ns(['state', c])).stdout) as { status: string }).status === 'stopped',
    );
    expect((await ns(['delete', c])).code).toBe(0);

    const t = id();
    const d = await ns([
      'run',
      '--image',
      'test/busybox',
      '--name',
      t,
      '-d',
      '--rm',
      '--network',
      'none',
      '--',
      'sleep',
      '0.3',
    ]);
    expect(d.code, show(d)).toBe(0);
    await waitFor(
      'removed by the monitor',
      () => !fs.existsSync(path.join(dataRoot, 'containers', t)),
      15_000,
    );
    expect(fs.existsSync(path.join(root, t))).toBe(false);
  });

  it('bridge network: two containers reach each other by link alias; a published port is served on loopback', async () => {
    const web = id();
    const port = 20000 + (process.pid % 20000);
    const w = await ns([
      'run',
      '--image',
      'test/busybox',
      '--name',
      web,
      '-d',
      ...net,
      '-p',
      `127.0.0.1:${port}:80`,
      '--',
      'sh',
      '-c',
      'mkdir /www && echo hello-web > /www/index.html && exec httpd -f -p 80 -h /www',
    ]);
    expect(w.code, show(w)).toBe(0);
    const page = await waitFor('the published port', async () => {
      const res = await fetch(`http://127.0.0.1:${port}/`).catch(() => undefined);
      return res?.ok ? await res.text() : undefined;
    });
    expect(page).toBe('hello-web\n');
    const insp = JSON.parse((await ns(['inspect', web])).stdout) as {
      Image: string;
      Config: { ExposedPorts: Record<string, object> };
      NetworkSettings: { IPAddress: string; Ports: Record<string, { HostIp: string; HostPort: string }[]> };
    }[];
    expect(insp[0]?.Image).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(insp[0]?.Config.ExposedPorts).toEqual({ '80/tcp': {} });
    expect(insp[0]?.NetworkSettings.IPAddress).toMatch(/^172\.30\./);
    expect(insp[0]?.NetworkSettings.Ports['80/tcp']).toEqual([
      { HostIp: '127.0.0.1', HostPort: String(port) },
    ]);
    const client = await ns([
      'run',
      '--image',
      'test/busybox',
      '--rm',
      ...net,
      '--link',
      `${web}:webby`,
      '--',
      'sh',
      '-c',
      'ls /sys/class/net | sort | tr "\\n" " "; echo; echo $WEBBY_PORT_80_TCP_PORT; wget -qO- http://webby/',
    ]);
    expect(client.code, show(client)).toBe(0);
    expect(client.stdout).toBe('eth0 lo \n80\nhello-web\n');
    expect((await ns(['delete', '--force', web])).code).toBe(0);
    const after = await fetch(`http://127.0.0.1:${port}/`).then(
      () => 'served',
      () => 'refused',
    );
    expect(after).toBe('refused');
  });

  it('50 containers started and removed concurrently: distinct addresses, nothing left behind', async () => {
    const names = Array.from({ length: 50 }, () => id());
    // Ten nsinit processes at a time (2 cores); all fifty containers are alive at the end.
    const pool = async (fn: (name: string) => Promise<void>) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          while (next < names.length) await fn(names[next++] as string);
        }),
      );
    };
    await pool(async (name) => {
      const r = await ns(
        ['run', '--image', 'test/busybox', '--name', name, '-d', ...net, '--', 'sleep', '300'],
        120_000,
      );
      expect(r.code, `${name}: ${show(r)}`).toBe(0);
    });
    const ips = names.map((name) => {
      const a = JSON.parse(fs.readFileSync(path.join(root, name, 'network.json'), 'utf8')) as { ip: string };
      return a.ip;
    });
    expect(new Set(ips).size).toBe(50);
    const inside = await ns(['exec', names[49] as string, 'sh', '-c', 'ip -o -4 addr show eth0']);
    expect(inside.stdout).toContain(`inet ${ips[49]}/`);
    await pool(async (name) => {
      const r = await ns(['delete', '--force', name], 60_000);
      expect(r.code, `${name}: ${show(r)}`).toBe(0);
    });
    const store = JSON.parse(fs.readFileSync(path.join(root, `network@${bridge}.json`), 'utf8')) as {
      leases: Record<string, unknown>;
    };
    expect(Object.keys(store.leases)).toEqual([]);
    expect(execFileSync('ip', ['-o', 'link', 'show', 'master', bridge], { encoding: 'utf8' }).trim()).toBe(
      '',
    );
    for (const name of names) {
      expect(fs.existsSync(path.join(root, name))).toBe(false);
      expect(fs.existsSync(path.join(dataRoot, 'containers', name))).toBe(false);
    }
    expect(fs.readFileSync('/proc/mounts', 'utf8')).not.toContain(`/containers/${names[0]}/`);
  }, 600_000);

  it('a 500-layer image (the overlay limit) mounts and runs', async () => {
    const layers: Buffer[] = [
      execFileSync('tar', ['-C', buildRootfs(), '-cf', '-', '.'], { maxBuffer: 64 << 20 }),
    ];
    for (let i = 1; i < 500; i++)
      layers.push(
        ustar([
          { name: 'layers/', dir: true },
          { name: `layers/${i}`, data: `${i}\n` },
        ]),
      );
    await addImage(dataRoot, 'test/deep', layers, {
      Env: ['PATH=/bin'],
      Cmd: ['sh', '-c', 'ls /layers | wc -l; cat /layers/1 /layers/499'],
    });
    const r = await ns(['run', '--image', 'test/deep', '--rm', '--network', 'none'], 120_000);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout.replace(/ +/g, '')).toBe('499\n1\n499\n');
  }, 180_000);

  it('import makes a one-layer image from a rootfs tarball (plain or gzip) that runs', async () => {
    const plain = path.join(tmp, 'rootfs.tar');
    execFileSync('tar', ['-C', buildRootfs(), '-cf', plain, '.']);
    const r = await ns([
      'import',
      '-c',
      'CMD ["sh","-c","echo imported"]',
      '-m',
      'from a tarball',
      plain,
      'test/imported:1',
    ]);
    expect(r.code, show(r)).toBe(0);
    expect(r.stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
    const run = await ns(['run', '--image', 'test/imported:1', '--rm', '--network', 'none']);
    expect(run.stdout, show(run)).toBe('imported\n');
    execFileSync('gzip', ['-k', plain]);
    const gz = await ns(['import', `${plain}.gz`, 'test/imported:gz']);
    expect(gz.code, show(gz)).toBe(0);
    const run2 = await ns([
      'run',
      '--image',
      'test/imported:gz',
      '--rm',
      '--network',
      'none',
      '--',
      'echo',
      'gz',
    ]);
    expect(run2.stdout, show(run2)).toBe('gz\n');
    const store = await openImageStore(dataRoot);
    const a = await resolveImage(store, 'test/imported:1');
    const b = await resolveImage(store, 'test/imported:gz');
    expect(a.config.rootfs.diff_ids).toEqual(b.config.rootfs.diff_ids); // the same tar inside
    expect(a.config.history?.[0]?.comment).toBe('from a tarball');
    const missing = await ns(['import', path.join(tmp, 'nope.tar'), 'test/x']);
    expect(missing.stderr).toMatch(/^nsinit: import .*nope\.tar: no such file\n$/);
    const bad = await ns(['import', '-c', 'BOGUS x', plain, 'test/x']);
    expect(bad.stderr).toMatch(/invalid change "BOGUS x"/);
  });

  it('bad input is one clear line and leaves nothing behind', async () => {
    const cases: [string[], RegExp][] = [
      [
        ['--image', 'test/nosuch', '--pull', 'never'],
        /image "test\/nosuch" not found in .*\(pull it with nsinit pull test\/nosuch\)/,
      ],
      [['--image', '127.0.0.1:1/nosuch'], /pull 127\.0\.0\.1:1\/nosuch.*ECONNREFUSED/],
      [['--image', 'test/busybox', '--pull', 'sometimes'], /--pull "sometimes"/],
      [['--image', 'test/busybox', '-p', '99999:80'], /invalid port mapping "99999:80"/],
      [['--image', 'test/busybox', '--network', 'bogus'], /invalid network mode "bogus"/],
      [['--image', 'test/busybox', '--network', 'none', '-u', 'nobody2'], /user "nobody2"/],
      [
        ['--image', 'test/busybox', '--network', 'none', '--', '/nonexistent'],
        /exec "\/nonexistent": ENOENT/,
      ],
      [['--image', 'test/busybox', '--link', 'nope:x'], /link nope/],
      [['--image', 'test/busybox', '--name', 'bad/name'], /--name "bad\/name"/],
    ];
    for (const [args, re] of cases) {
      const r = await ns(['run', ...args]);
      expect(r.code, show(r)).toBe(1);
      expect(r.stderr).toMatch(re);
      expect(r.stderr).not.toMatch(STACK_LINE);
      // One error line (an automatic pull may print its progress before it).
      expect(
        r.stderr
          .trim()
          .split('\n')
          .filter((l) => l.startsWith('nsinit:')),
      ).toHaveLength(1);
    }
    expect(fs.readdirSync(path.join(dataRoot, 'containers')).filter((d) => !ids.includes(d))).toEqual([]);
    const listed = JSON.parse((await ns(['list', '--format', 'json'])).stdout || 'null') as
      | { id: string }[]
      | null;
    expect((listed ?? []).map((s) => s.id).filter((i) => !ids.includes(i))).toEqual([]);
  });
});
