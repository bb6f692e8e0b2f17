// HTTPS: a registry with a certificate from a test CA, trusted through caFile or Docker's
// certs.d layout; a wrong CA fails verification (no silent fallback to plain HTTP).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ContentStore, getManifest, pull, push, type RegistryError } from '../src/index.js';
import { makeCerts, makeImage, mkTmp, type Registry, skipReason, startRegistry } from './harness.js';

const skip = skipReason();
const FAST = { retry: { attempts: 2, baseDelayMs: 20 } };

describe.skipIf(skip !== undefined)('TLS', () => {
  let tmp: string;
  let reg: Registry;
  let certs: ReturnType<typeof makeCerts>;
  beforeAll(async () => {
    tmp = mkTmp('tsc-tls-');
    certs = makeCerts(tmp);
    reg = await startRegistry(tmp, { tls: { cert: certs.cert, key: certs.key } });
  });
  afterAll(async () => {
    await reg?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('caFile and certs.d/HOST/ca.crt are trusted and verified; a wrong CA is refused', async () => {
    const src = await ContentStore.open(path.join(tmp, 'src'));
    const name = `${reg.host}/tls/img:1`;
    const img = await makeImage(src, name, { layerSizes: [1000] });
    await push(src, name, { ...FAST, caFile: certs.ca, certsDir: path.join(tmp, 'none') });
    const certsDir = path.join(tmp, 'certs.d');
    fs.mkdirSync(path.join(certsDir, reg.host), { recursive: true });
    fs.copyFileSync(certs.ca, path.join(certsDir, reg.host, 'ca.crt'));
    expect((await getManifest(name, { ...FAST, certsDir })).descriptor.digest).toBe(img.manifest.digest);
    const e = await getManifest(name, {
      ...FAST,
      caFile: certs.otherCa,
      certsDir: path.join(tmp, 'none'),
    }).catch((x: unknown) => x);
    expect((e as RegistryError).code).toBe('Network');
    expect((e as Error).message).toMatch(/certificate|verify/i);
  });

  test('blobs come over verified TLS too (the blob transport has its own connections)', async () => {
    const src = await ContentStore.open(path.join(tmp, 'src2'));
    const name = `${reg.host}/tls/blobs:1`;
    const img = await makeImage(src, name, { layerSizes: [300_000, 5000] });
    await push(src, name, { ...FAST, caFile: certs.ca, certsDir: path.join(tmp, 'none') });
    const dst = await ContentStore.open(path.join(tmp, 'dst2'));
    const r = await pull(dst, name, { ...FAST, caFile: certs.ca, certsDir: path.join(tmp, 'none') });
    expect(r.manifestDescriptor.digest).toBe(img.manifest.digest);
    expect(r.downloadedBytes).toBeGreaterThan(300_000);
    for (const l of r.manifest.layers) expect(await dst.has(l.digest)).toBe(true);
  });
});
