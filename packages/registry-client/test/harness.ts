// Test servers, all on 127.0.0.1: Debian's docker-registry (the reference distribution
// registry 2.8) in anonymous, htpasswd and token mode, a JWT token server it trusts, a
// fault-injecting HTTP proxy, and image builders.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash, createPrivateKey, randomBytes, randomUUID, sign, X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { type ContentStore, type Descriptor, type Digest, digestOf, MediaType } from '@tsc/image';

export function skipReason(): string | undefined {
  if (!fs.existsSync('/usr/bin/docker-registry'))
    return 'needs docker-registry (apt install docker-registry)';
  return undefined;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitHttp(url: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const req = http.get(url, (res) => {
        res.resume();
        resolve(true);
      });
      req.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`${url} did not come up`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface Registry {
  host: string;
  port: number;
  dir: string;
  stop(): Promise<void>;
  log(): string;
}

export interface RegistryOptions {
  /** Serve HTTPS with this certificate and key. */
  tls?: { cert: string; key: string };
  auth?:
    | { htpasswd: string }
    | { token: { realm: string; service: string; issuer: string; certFile: string } };
}

/** Starts docker-registry on 127.0.0.1:<free port> with its storage in a temp dir. */
export async function startRegistry(tmp: string, options: RegistryOptions = {}): Promise<Registry> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(tmp, 'registry-'));
  let auth = '';
  if (options.auth && 'htpasswd' in options.auth) {
    const file = path.join(dir, 'htpasswd');
    fs.writeFileSync(file, options.auth.htpasswd);
    auth = `auth:\n  htpasswd:\n    realm: tsc-test\n    path: ${file}\n`;
  } else if (options.auth && 'token' in options.auth) {
    const t = options.auth.token;
    auth = `auth:\n  token:\n    realm: ${t.realm}\n    service: ${t.service}\n    issuer: ${t.issuer}\n    rootcertbundle: ${t.certFile}\n`;
  }
  const config = path.join(dir, 'config.yml');
  fs.writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n  secret: tsc-test-secret\n${options.tls ? `  tls:\n    certificate: ${options.tls.cert}\n    key: ${options.tls.key}\n` : ''}${auth}`,
  );
  const logFile = path.join(dir, 'log.txt');
  const out = fs.openSync(logFile, 'w');
  const child: ChildProcess = spawn('/usr/bin/docker-registry', ['serve', config], {
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  await waitHttp(`http://127.0.0.1:${port}/v2/`);
  return {
    host: `127.0.0.1:${port}`,
    port,
    dir,
    log: () => fs.readFileSync(logFile, 'utf8'),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) {
          resolve();
          return;
        }
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** A test CA and a server certificate for IP 127.0.0.1 signed by it (and a second, unrelated CA). */
export function makeCerts(tmp: string): { ca: string; otherCa: string; cert: string; key: string } {
  const dir = fs.mkdtempSync(path.join(tmp, 'certs-'));
  const f = (n: string) => path.join(dir, n);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const run = (args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  run([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.crt'),
    '-days',
    '2',
    '-subj',
    '/CN=tsc-test-ca',
  ]);
  run([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    f('other.key'),
    '-out',
    f('other.crt'),
    '-days',
    '2',
    '-subj',
    '/CN=tsc-other-ca',
  ]);
  run(['req', ...ec, '-keyout', f('srv.key'), '-out', f('srv.csr'), '-subj', '/CN=127.0.0.1']);
  fs.writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  run([
    'x509',
    '-req',
    '-in',
    f('srv.csr'),
    '-CA',
    f('ca.crt'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('srv.crt'),
    '-days',
    '2',
    '-extfile',
    f('ext.cnf'),
  ]);
  return { ca: f('ca.crt'), otherCa: f('other.crt'), cert: f('srv.crt'), key: f('srv.key') };
}

/** `htpasswd -Bbn user pass` (registry 2.8 wants bcrypt). */
export function htpasswd(user: string, pass: string): string {
  return execFileSync('htpasswd', ['-Bbn', user, pass], { encoding: 'utf8' });
}

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  certFile: string;
  /** Every token request: the scopes asked for and the account (undefined when anonymous). */
  requests: Array<{ scopes: string[]; account: string | undefined }>;
  stop(): Promise<void>;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

/**
 * A token server issuing ES256 JWTs with the signing certificate in `x5c` (registry 2.8
 * verifies the chain against `rootcertbundle`), for `user`/`pass` only.
 */
export async function startTokenServer(tmp: string, user: string, pass: string): Promise<TokenServer> {
  const dir = fs.mkdtempSync(path.join(tmp, 'token-'));
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '2',
      '-subj',
      '/CN=tsc-token-issuer',
    ],
    { stdio: 'ignore' },
  );
  const key = createPrivateKey(fs.readFileSync(keyFile));
  const der = new X509Certificate(fs.readFileSync(certFile)).raw;
  const port = await freePort();
  const service = 'tsc-test';
  const issuer = 'tsc-issuer';
  const requests: TokenServer['requests'] = [];
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    const scopes = u.searchParams.getAll('scope');
    const h = req.headers.authorization;
    let account: string | undefined;
    if (h?.startsWith('Basic ')) {
      const [a, p] = Buffer.from(h.slice(6), 'base64').toString().split(':');
      if (a !== user || p !== pass) {
        requests.push({ scopes, account: a });
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] }));
        return;
      }
      account = a;
    }
    requests.push({ scopes, account });
    const access = scopes
      .map((s) => s.split(':'))
      .filter((p) => p.length >= 3)
      .map(([type, ...rest]) => {
        const actions = (rest.pop() as string).split(',');
        return {
          type,
          name: rest.join(':'),
          actions: account ? actions : actions.filter((x) => x === 'pull'),
        };
      });
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'ES256', typ: 'JWT', x5c: [der.toString('base64')] };
    const claims = {
      iss: issuer,
      sub: account ?? '',
      aud: service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const data = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = sign('sha256', Buffer.from(data), { key, dsaEncoding: 'ieee-p1363' });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        token: `${data}.${b64url(sig)}`,
        expires_in: 300,
        issued_at: new Date().toISOString(),
      }),
    );
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certFile,
    requests,
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** What the fault proxy does to one request; return undefined to forward it untouched. */
export type Fault =
  | { kind: 'status'; status: number }
  | { kind: 'cut'; afterBytes: number }
  | { kind: 'corrupt' }
  | { kind: 'body'; status: number; headers: Record<string, string>; body: Buffer };

export interface FaultProxy {
  host: string;
  /** Every request the proxy saw: method, path, Range header. */
  seen: Array<{ method: string; path: string; range: string | undefined }>;
  /** Decides per request. */
  fault: (req: { method: string; path: string; n: number }) => Fault | undefined;
  stop(): Promise<void>;
}

/** An HTTP proxy in front of `target` (host:port) that injects faults. */
export async function startProxy(target: string): Promise<FaultProxy> {
  const [thost, tport] = target.split(':') as [string, string];
  const port = await freePort();
  const counts = new Map<string, number>();
  const proxy: FaultProxy = {
    host: `127.0.0.1:${port}`,
    seen: [],
    fault: () => undefined,
    stop: async () => {},
  };
  const server = http.createServer((req, res) => {
    const p = (req.url ?? '/').split('?')[0] as string;
    const key = `${req.method} ${p}`;
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    proxy.seen.push({ method: req.method ?? '', path: p, range: req.headers.range });
    const f = proxy.fault({ method: req.method ?? '', path: p, n });
    if (f?.kind === 'status') {
      req.resume();
      res.writeHead(f.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'injected failure' }] }));
      return;
    }
    if (f?.kind === 'body') {
      req.resume();
      res.writeHead(f.status, { ...f.headers, 'content-length': String(f.body.length) });
      res.end(f.body);
      return;
    }
    const up = http.request(
      {
        host: thost,
        port: Number(tport),
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target },
      },
      (ures) => {
        const headers = { ...ures.headers };
        res.writeHead(ures.statusCode ?? 502, headers);
        let sent = 0;
        ures.on('data', (chunk: Buffer) => {
          if (f?.kind === 'cut') {
            const room = f.afterBytes - sent;
            if (room <= 0) return;
            const part = chunk.subarray(0, room);
            sent += part.length;
            res.write(part);
            if (sent >= f.afterBytes) {
              ures.destroy();
              res.socket?.destroy();
            }
            return;
          }
          if (f?.kind === 'corrupt') {
            const c = Buffer.from(chunk);
            c[0] = (c[0] ?? 0) ^ 0xff;
            res.write(c);
            return;
          }
          res.write(chunk);
        });
        ures.on('end', () => res.end());
        ures.on('error', () => res.destroy());
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  proxy.stop = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return proxy;
}

/** A gzipped tar with one file (a real layer). */
export function tarGzLayer(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${content.length.toString(8).padStart(11, '0')}\0`, 124);
  header.write(
    `${Math.floor(Date.now() / 1000)
      .toString(8)
      .padStart(11, '0')}\0`,
    136,
  );
  header.write('        ', 148);
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const pad = Buffer.alloc((512 - (content.length % 512)) % 512);
  return gzipSync(Buffer.concat([header, content, pad, Buffer.alloc(1024)]));
}

export interface BuiltImage {
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
}

/** Puts an image (config + layers of random content) in a store and names it. */
export async function makeImage(
  store: ContentStore,
  name: string | undefined,
  options: { arch?: string; layerSizes?: number[]; docker?: boolean; seed?: string } = {},
): Promise<BuiltImage> {
  const arch = options.arch ?? 'amd64';
  const layers: Descriptor[] = [];
  const diffIds: Digest[] = [];
  for (const [i, size] of (options.layerSizes ?? [1000, 200_000]).entries()) {
    const content = Buffer.concat([Buffer.from(`${options.seed ?? ''}${arch}-${i}-`), randomBytes(size)]);
    const tar = tarGzLayer(`file-${i}`, content);
    const { gunzipSync } = await import('node:zlib');
    diffIds.push(digestOf(gunzipSync(tar)));
    const digest = await store.put(tar);
    layers.push({
      mediaType: options.docker ? MediaType.dockerLayerGzip : MediaType.ociLayerGzip,
      digest,
      size: tar.length,
    });
  }
  const config = await store.putJSON(
    {
      architecture: arch,
      os: 'linux',
      ...(arch === 'arm64' ? { variant: 'v8' } : {}),
      config: { Cmd: ['/bin/sh'], Env: ['PATH=/bin'] },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: diffIds.map(() => ({ created_by: 'test' })),
    },
    options.docker ? MediaType.dockerConfig : MediaType.ociConfig,
  );
  const mt = options.docker ? MediaType.dockerManifest : MediaType.ociManifest;
  const manifest = await store.putJSON({ schemaVersion: 2, mediaType: mt, config, layers }, mt);
  if (name) await store.setRef(name, manifest);
  return { manifest, config, layers };
}

/** An index of images made by {@link makeImage}. */
export async function makeIndex(
  store: ContentStore,
  name: string,
  images: Array<{ image: BuiltImage; arch: string }>,
): Promise<Descriptor> {
  const manifests = images.map(({ image, arch }) => ({
    ...image.manifest,
    platform: { os: 'linux', architecture: arch, ...(arch === 'arm64' ? { variant: 'v8' } : {}) },
  }));
  const index = await store.putJSON(
    { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests },
    MediaType.ociIndex,
  );
  await store.setRef(name, index);
  return index;
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export function mkTmp(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
