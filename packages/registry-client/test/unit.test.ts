import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import {
  dockerConfigPath,
  dockerCredentials,
  isLoopbackHost,
  parseWWWAuthenticate,
  removeDockerCredentials,
  safeUrl,
  storeDockerCredentials,
} from '../src/index.js';
import { mkTmp } from './harness.js';

describe('WWW-Authenticate', () => {
  test('Bearer with a quoted scope holding commas', () => {
    expect(
      parseWWWAuthenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push"',
      ),
    ).toEqual([
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.docker.io/token',
          service: 'registry.docker.io',
          scope: 'repository:samalba/my-app:pull,push',
        },
      },
    ]);
  });
  test('several challenges, escapes, unquoted values, token68', () => {
    const c = parseWWWAuthenticate(
      'Basic realm="a \\"quoted\\", realm", charset=UTF-8, Bearer realm=http://x/t ,error="insufficient_scope", Negotiate abc123==',
    );
    expect(c).toEqual([
      { scheme: 'basic', params: { realm: 'a "quoted", realm', charset: 'UTF-8' } },
      { scheme: 'bearer', params: { realm: 'http://x/t', error: 'insufficient_scope' } },
      { scheme: 'negotiate', params: { '': 'abc123==' } },
    ]);
  });
  test('junk does not throw', () => {
    expect(parseWWWAuthenticate('')).toEqual([]);
    expect(() => parseWWWAuthenticate('  ,, "x" =')).not.toThrow();
  });
});

describe('Docker config.json', () => {
  const dir = mkTmp('tsc-dockercfg-');
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('DOCKER_CONFIG is respected', () => {
    expect(dockerConfigPath({ DOCKER_CONFIG: '/x/y' })).toBe('/x/y/config.json');
    expect(dockerConfigPath({ HOME: '/home/u' })).toBe('/home/u/.docker/config.json');
  });

  test('store, read (several key spellings), remove; other fields kept; mode 0600', async () => {
    const file = path.join(dir, 'a', 'config.json');
    fs.mkdirSync(path.dirname(file));
    fs.writeFileSync(
      file,
      JSON.stringify({
        auths: { 'https://other.example:5000/v1/': { auth: Buffer.from('o:p:q').toString('base64') } },
        psFormat: 'x',
      }),
    );
    expect(await dockerCredentials('other.example:5000', file)).toEqual({ username: 'o', password: 'p:q' });
    await storeDockerCredentials('127.0.0.1:5000', { username: 'me', password: 's3cret' }, file);
    await storeDockerCredentials('docker.io', { username: 'hub', password: 'h' }, file);
    const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(doc.psFormat).toBe('x');
    expect(doc.auths['127.0.0.1:5000'].auth).toBe(Buffer.from('me:s3cret').toString('base64'));
    expect(doc.auths['https://index.docker.io/v1/']).toBeDefined();
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(await dockerCredentials('127.0.0.1:5000', file)).toEqual({ username: 'me', password: 's3cret' });
    expect(await dockerCredentials('registry-1.docker.io', file)).toEqual({ username: 'hub', password: 'h' });
    expect(await dockerCredentials('nowhere:1', file)).toBeUndefined();
    expect(await removeDockerCredentials('127.0.0.1:5000', file)).toBe(true);
    expect(await removeDockerCredentials('127.0.0.1:5000', file)).toBe(false);
    expect(await dockerCredentials('127.0.0.1:5000', file)).toBeUndefined();
  });

  test('credsStore: a missing helper is explained; a present one is run; storing is refused', async () => {
    const file = path.join(dir, 'b.json');
    fs.writeFileSync(file, JSON.stringify({ credsStore: 'tsc-missing-helper' }));
    await expect(dockerCredentials('127.0.0.1:5000', file)).rejects.toThrow(
      /docker-credential-tsc-missing-helper is configured in Docker's config.json but not installed/,
    );
    await expect(
      storeDockerCredentials('127.0.0.1:5000', { username: 'a', password: 'b' }, file),
    ).rejects.toThrow(/cannot store credentials in a helper/);
    // A helper on PATH is run with the host on stdin.
    const bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(
      path.join(bin, 'docker-credential-tsctest'),
      '#!/bin/sh\nread host\necho "{\\"ServerURL\\":\\"$host\\",\\"Username\\":\\"u-$host\\",\\"Secret\\":\\"pw\\"}"\n',
      { mode: 0o755 },
    );
    fs.writeFileSync(file, JSON.stringify({ credHelpers: { 'reg.example': 'tsctest' } }));
    const oldPath = process.env.PATH;
    process.env.PATH = `${bin}:${oldPath}`;
    try {
      expect(await dockerCredentials('reg.example', file)).toEqual({
        username: 'u-reg.example',
        password: 'pw',
      });
      expect(await dockerCredentials('other.example', file)).toBeUndefined();
    } finally {
      process.env.PATH = oldPath;
    }
  });
});

test('safeUrl drops credentials and query; loopback hosts', () => {
  expect(safeUrl('https://u:p@h:5000/v2/x/blobs/uploads/abc?_state=SECRET&digest=sha256:1')).toBe(
    'https://h:5000/v2/x/blobs/uploads/abc',
  );
  expect(isLoopbackHost('127.0.0.1:5000')).toBe(true);
  expect(isLoopbackHost('localhost')).toBe(true);
  expect(isLoopbackHost('[::1]:5000')).toBe(true);
  expect(isLoopbackHost('registry.example:5000')).toBe(false);
});
