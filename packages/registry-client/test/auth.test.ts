// Basic auth (htpasswd) and Bearer tokens (a JWT server the registry trusts) against
// docker-registry 2.8, and that secrets never show in errors.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  ContentStore,
  checkLogin,
  pull,
  push,
  RegistryClient,
  type RegistryError,
  storeDockerCredentials,
} from '../src/index.js';
import {
  freePort,
  htpasswd,
  makeImage,
  mkTmp,
  type Registry,
  skipReason,
  startRegistry,
  startTokenServer,
  type TokenServer,
} from './harness.js';

const skip = skipReason();
const FAST = { retry: { attempts: 2, baseDelayMs: 20 } };
const USER = 'alice';
const PASS = 'pa55-Very-Secret-w0rd';

describe.skipIf(skip !== undefined)('htpasswd basic auth', () => {
  let tmp: string;
  let reg: Registry;
  let src: ContentStore;
  beforeAll(async () => {
    tmp = mkTmp('tsc-basic-');
    reg = await startRegistry(tmp, { auth: { htpasswd: htpasswd(USER, PASS) } });
    src = await ContentStore.open(path.join(tmp, 'src'));
  });
  afterAll(async () => {
    await reg?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('anonymous is refused clearly; credentials (given or from config.json) work', async () => {
    const name = `${reg.host}/b/img:1`;
    await makeImage(src, name, { layerSizes: [5000] });
    const cfg = path.join(tmp, 'empty-config.json');
    const e = await push(src, name, { ...FAST, dockerConfig: cfg }).catch((x: unknown) => x);
    expect((e as RegistryError).code).toBe('Unauthorized');
    expect((e as Error).message).toMatch(/unauthorized \(no credentials for this registry: nsinit login\?\)/);

    await push(src, name, { ...FAST, credentials: { username: USER, password: PASS } });
    const withCfg = path.join(tmp, 'docker', 'config.json');
    await storeDockerCredentials(reg.host, { username: USER, password: PASS }, withCfg);
    const store = await ContentStore.open(path.join(tmp, 'dst'));
    await pull(store, name, { ...FAST, dockerConfig: withCfg });
    expect(await store.resolve(name)).toBeDefined();
  });

  test('wrong password: Unauthorized naming the user, never the password', async () => {
    const store = await ContentStore.open(path.join(tmp, 'dst2'));
    const e = await pull(store, `${reg.host}/b/img:1`, {
      ...FAST,
      credentials: { username: USER, password: 'wrong-SECRET-x' },
    }).catch((x: unknown) => x);
    expect((e as RegistryError).code).toBe('Unauthorized');
    expect((e as Error).message).toMatch(/user "alice"/);
    const everything = JSON.stringify(e, Object.getOwnPropertyNames(e)) + String((e as Error).stack);
    expect(everything).not.toMatch(/wrong-SECRET-x/);
    expect(everything).not.toMatch(Buffer.from(`${USER}:wrong-SECRET-x`).toString('base64'));
    await expect(checkLogin(reg.host, { username: USER, password: 'nope' }, FAST)).rejects.toThrow(
      /unauthorized/,
    );
    await checkLogin(reg.host, { username: USER, password: PASS }, FAST);
  });
});

describe.skipIf(skip !== undefined)('token auth', () => {
  let tmp: string;
  let reg: Registry;
  let tokens: TokenServer;
  let src: ContentStore;
  beforeAll(async () => {
    tmp = mkTmp('tsc-token-');
    tokens = await startTokenServer(tmp, USER, PASS);
    reg = await startRegistry(tmp, { auth: { token: tokens } });
    src = await ContentStore.open(path.join(tmp, 'src'));
  });
  afterAll(async () => {
    await reg?.stop();
    await tokens?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('push and pull with Bearer tokens for the right scopes, cached; mount asks for the source pull scope', async () => {
    const creds = { username: USER, password: PASS };
    const name = `${reg.host}/t/base:1`;
    await makeImage(src, name, { layerSizes: [20_000, 30_000] });
    tokens.requests.length = 0;
    const client = new RegistryClient({ ...FAST, credentials: creds });
    try {
      await push(src, name, { client });
      // One token for the whole push (cached), with pull,push on the repository.
      expect(tokens.requests).toEqual([{ scopes: ['repository:t/base:pull,push'], account: USER }]);
      const store = await ContentStore.open(path.join(tmp, 'dst'));
      await pull(store, name, { client });
      expect(tokens.requests.at(-1)).toEqual({ scopes: ['repository:t/base:pull'], account: USER });
      const n = tokens.requests.length;
      await pull(await ContentStore.open(path.join(tmp, 'dst-b')), name, { client });
      expect(tokens.requests.length).toBe(n);

      // Cross-repository mount: the token covers the source's pull scope too.
      await store.setRef(`${reg.host}/t/derived:1`, (await store.resolve(name))!);
      const r = await push(store, `${reg.host}/t/derived:1`, { client });
      expect(r.mounted).toBe(3);
      expect(tokens.requests.at(-1)?.scopes.sort()).toEqual([
        'repository:t/base:pull',
        'repository:t/derived:pull,push',
      ]);
    } finally {
      await client.close();
    }
  });

  test('anonymous token: pull only is granted, a push is denied; bad password names the user only', async () => {
    const e = await push(src, `${reg.host}/t/base:1`, {
      ...FAST,
      dockerConfig: path.join(tmp, 'none.json'),
    }).catch((x: unknown) => x);
    expect((e as RegistryError).code).toBe('Unauthorized');
    const e2 = await pull(await ContentStore.open(path.join(tmp, 'x')), `${reg.host}/t/base:1`, {
      ...FAST,
      credentials: { username: USER, password: 'bad-SECRET-y' },
    }).catch((x: unknown) => x);
    expect((e2 as Error).message).toMatch(/authentication failed for user "alice"/);
    expect(JSON.stringify(e2, Object.getOwnPropertyNames(e2))).not.toMatch(/bad-SECRET-y/);
  });

  test('the token service is down: a clear error', async () => {
    await tokens.stop();
    const e = await pull(await ContentStore.open(path.join(tmp, 'y')), `${reg.host}/t/base:1`, {
      ...FAST,
      credentials: { username: USER, password: PASS },
    }).catch((x: unknown) => x);
    expect((e as RegistryError).code).toBe('Auth');
    expect((e as Error).message).toMatch(
      new RegExp(
        `token service ${tokens.realm.replace(/[/.]/g, '\\$&')}: connect ECONNREFUSED 127\\.0\\.0\\.1:\\d+`,
      ),
    );
    void freePort;
  });
});
