// The blob transport (src/http1.ts) against local servers: framing (length, chunked, close),
// heads split across reads, interim responses, backpressure, cuts, aborts, timeouts, TLS.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type RawHttpError, RawPool, rawRequest } from '../src/http1.js';
import { makeCerts, mkTmp } from './harness.js';

const PAYLOAD = Buffer.alloc(3 << 20);
for (let i = 0; i < PAYLOAD.length; i++) PAYLOAD[i] = (i * 7 + (i >> 11)) & 255;

/** A raw TCP server answering each connection with `answer(socket, requestHead)`. */
async function rawServer(
  answer: (s: net.Socket, head: string) => void,
): Promise<{ url: string; close: () => void }> {
  const srv = net.createServer((s) => {
    let head = '';
    s.on('data', (d) => {
      if (head.includes('\r\n\r\n')) return;
      head += d.toString('latin1');
      if (head.includes('\r\n\r\n')) answer(s, head);
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}`, close: () => srv.close() };
}

/** Reads a body with `consume`, holding every `holdEvery`th piece for a few ms. */
async function read(url: string, holdEvery = 0, opts: Parameters<typeof rawRequest>[2] = { headers: {} }) {
  const res = await rawRequest('GET', url, opts);
  const parts: Buffer[] = [];
  await res.body.consume((c) => {
    parts.push(Buffer.from(c));
    if (holdEvery && parts.length % holdEvery === 0) return new Promise((r) => setTimeout(r, 3));
    return undefined;
  });
  return { res, body: Buffer.concat(parts) };
}

describe('http1', () => {
  let srv: http.Server;
  let base: string;
  const seen: http.IncomingHttpHeaders[] = [];
  beforeAll(async () => {
    srv = http.createServer((req, res) => {
      seen.push(req.headers);
      if (req.url === '/chunked') {
        res.writeHead(200);
        let o = 0;
        const step = (): void => {
          if (o >= PAYLOAD.length) {
            res.end();
            return;
          }
          const n = 1 + ((o * 31) % 70_000);
          res.write(PAYLOAD.subarray(o, o + n));
          o += n;
          setImmediate(step);
        };
        step();
      } else if (req.url === '/length') {
        res.writeContinue();
        res.writeHead(200, { 'content-length': PAYLOAD.length, 'x-twice': ['a', 'b'] });
        res.end(PAYLOAD);
      } else if (req.url === '/cut') {
        res.writeHead(200, { 'content-length': 1000 });
        res.write(Buffer.alloc(500));
        setTimeout(() => res.socket?.destroy(), 20);
      } else if (req.url === '/stall') {
        res.writeHead(200, { 'content-length': 1000 });
        res.write(Buffer.alloc(10));
      } else if (req.url === '/none') {
        res.writeHead(204);
        res.end();
      } else {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end('{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}');
      }
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}`;
  });
  afterAll(() => {
    srv.closeAllConnections();
    srv.close();
  });

  test('content-length and chunked bodies arrive whole, with and without the consumer holding them', async () => {
    for (const p of ['/length', '/chunked'])
      for (const hold of [0, 1, 3]) {
        const { res, body } = await read(`${base}${p}`, hold);
        expect(res.statusCode).toBe(200);
        expect(body.equals(PAYLOAD)).toBe(true);
      }
    const { res } = await read(`${base}/length`);
    expect(res.headers['x-twice']).toEqual(['a', 'b']);
    expect(res.headers['content-length']).toBe(String(PAYLOAD.length));
  });

  test('the request carries the given headers, host and connection: close', async () => {
    seen.length = 0;
    await read(`${base}/none`, 0, { headers: { range: 'bytes=5-', authorization: 'Bearer x' } });
    expect(seen[0]).toMatchObject({ range: 'bytes=5-', authorization: 'Bearer x', connection: 'close' });
    expect(seen[0]?.host).toBe(new URL(base).host);
    await expect(rawRequest('GET', `${base}/none`, { headers: { 'x-a': 'b\r\nx-b: c' } })).rejects.toThrow(
      /line breaks/,
    );
  });

  test('an error body can be iterated; a 204 has no body', async () => {
    const res = await rawRequest('GET', `${base}/missing`, { headers: {} });
    expect(res.statusCode).toBe(404);
    let text = '';
    for await (const c of res.body) text += c.toString();
    expect(JSON.parse(text).errors[0].code).toBe('BLOB_UNKNOWN');
    const { res: r204, body } = await read(`${base}/none`);
    expect(r204.statusCode).toBe(204);
    expect(body.length).toBe(0);
  });

  test('a body cut short, a stalled body, an abort and a refused connection fail with a code', async () => {
    const cut = await rawRequest('GET', `${base}/cut`, { headers: {} });
    await expect(cut.body.consume(() => undefined)).rejects.toMatchObject({ code: 'UND_ERR_SOCKET' });
    const stall = await rawRequest('GET', `${base}/stall`, { headers: {}, bodyTimeout: 100 });
    await expect(stall.body.consume(() => undefined)).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    const ac = new AbortController();
    const res = await rawRequest('GET', `${base}/chunked`, { headers: {}, signal: ac.signal });
    let n = 0;
    const e = await res.body
      .consume((c) => {
        n += c.length;
        ac.abort();
      })
      .catch((x: unknown) => x);
    expect((e as Error).name).toBe('AbortError');
    expect(n).toBeLessThan(PAYLOAD.length);
    await expect(
      rawRequest('GET', `${base}/length`, { headers: {}, signal: ac.signal }),
    ).rejects.toMatchObject({
      name: 'AbortError',
    });
    await expect(rawRequest('GET', 'http://127.0.0.1:1/', { headers: {} })).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    });
  });

  test('consume settles only after the consumer let go; its own error wins', async () => {
    const res = await rawRequest('GET', `${base}/cut`, { headers: {} });
    let released = false;
    const e = await res.body
      .consume(
        () =>
          new Promise<void>((r) =>
            setTimeout(() => {
              released = true;
              r();
            }, 100),
          ),
      )
      .catch((x: unknown) => x);
    expect(released).toBe(true);
    expect((e as RawHttpError).code).toBe('UND_ERR_SOCKET');
    const res2 = await rawRequest('GET', `${base}/length`, { headers: {} });
    const mine = new Error('mine');
    await expect(res2.body.consume(() => Promise.reject(mine))).rejects.toBe(mine);
  });

  test('heads split in every place, bodies after the head in the same read, close-delimited bodies', async () => {
    const body = PAYLOAD.subarray(0, 200_000);
    const head = `HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nX-A: 1\r\n\r\n`;
    const whole = Buffer.concat([Buffer.from(head, 'latin1'), body]);
    let cutAt = 0;
    const s = await rawServer((sock) => {
      // the response in three writes, cut inside the head
      const a = cutAt;
      const b = Math.min(whole.length, a + 7);
      sock.write(whole.subarray(0, a));
      setTimeout(() => sock.write(whole.subarray(a, b)), 5);
      setTimeout(() => sock.end(whole.subarray(b)), 10);
    });
    try {
      for (cutAt = 1; cutAt < head.length + 3; cutAt += 5) {
        const { res, body: got } = await read(`${s.url}/`, 2);
        expect(res.statusCode).toBe(200);
        expect(res.headers['x-a']).toBe('1');
        expect(got.equals(body)).toBe(true);
      }
    } finally {
      s.close();
    }
    const c = await rawServer((sock) =>
      sock.end(Buffer.concat([Buffer.from('HTTP/1.0 200 OK\r\n\r\n'), body])),
    );
    try {
      expect((await read(`${c.url}/`, 1)).body.equals(body)).toBe(true);
    } finally {
      c.close();
    }
  });

  test('malformed answers are refused: status line, header line, content-length, chunk sizes', async () => {
    for (const answer of [
      'HTTP/2 200\r\n\r\n',
      'HTTP/1.1 200 OK\r\nno colon\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n',
    ]) {
      const s = await rawServer((sock) => sock.end(answer));
      try {
        const e = await rawRequest('GET', `${s.url}/`, { headers: {} })
          .then((r) => r.body.consume(() => undefined))
          .catch((x: unknown) => x);
        expect((e as RawHttpError).code, answer).toBe('ERR_HTTP_PARSE');
      } finally {
        s.close();
      }
    }
  });
});

describe('http1 keep-alive (RawPool)', () => {
  let srv: http.Server;
  let base: string;
  const sockets = new Set<net.Socket>();
  let connections = 0;
  beforeAll(async () => {
    srv = http.createServer((req, res) => {
      if (req.url === '/close') {
        res.writeHead(200, { 'content-length': 2, connection: 'close' });
        res.end('ok');
      } else if (req.url === '/chunked') {
        res.writeHead(200);
        res.write('a');
        res.end('b');
      } else if (req.url === '/big') {
        res.writeHead(200, { 'content-length': PAYLOAD.length });
        res.end(PAYLOAD);
      } else {
        res.writeHead(200, { 'content-length': 5 });
        res.end('hello');
      }
    });
    srv.keepAliveTimeout = 60_000;
    srv.on('connection', (s) => {
      connections++;
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}`;
  });
  afterAll(() => {
    srv.closeAllConnections();
    srv.close();
  });

  const get = async (pool: RawPool, p: string, hold = 0) => {
    const { body } = await read(`${base}${p}`, hold, { headers: {}, pool });
    return body.toString('latin1');
  };

  test('answers read to their end leave the connection for the next request; HEAD too', async () => {
    const pool = new RawPool();
    connections = 0;
    expect(await get(pool, '/a')).toBe('hello');
    expect(await get(pool, '/chunked')).toBe('ab');
    expect((await get(pool, '/big', 2)).length).toBe(PAYLOAD.length);
    const head = await rawRequest('HEAD', `${base}/a`, { headers: {}, pool });
    expect(head.headers['content-length']).toBe('5');
    await head.body.consume(() => undefined);
    expect(await get(pool, '/a')).toBe('hello');
    expect(connections).toBe(1);
    // two at once: two connections, both kept
    await Promise.all([get(pool, '/a'), get(pool, '/a')]);
    expect(connections).toBe(2);
    pool.close();
  });

  test('not kept: connection: close, a body not read to its end, no pool', async () => {
    const pool = new RawPool();
    connections = 0;
    expect(await get(pool, '/close')).toBe('ok');
    expect(await get(pool, '/a')).toBe('hello');
    expect(connections).toBe(2);
    const r = await rawRequest('GET', `${base}/big`, { headers: {}, pool });
    r.body.destroy();
    expect(await get(pool, '/a')).toBe('hello');
    expect(connections).toBe(3);
    const it = (await rawRequest('GET', `${base}/big`, { headers: {}, pool })).body[Symbol.asyncIterator]();
    await it.next();
    await it.return?.();
    expect(await get(pool, '/a')).toBe('hello');
    expect(connections).toBe(4);
    await read(`${base}/a`);
    await read(`${base}/a`);
    expect(connections).toBe(6);
    pool.close();
  });

  test('a kept connection the server closed meanwhile: the request goes on a new one', async () => {
    const pool = new RawPool();
    connections = 0;
    expect(await get(pool, '/a')).toBe('hello');
    for (const s of sockets) s.destroy();
    await new Promise((r) => setTimeout(r, 20));
    expect(await get(pool, '/a')).toBe('hello');
    // closed without our noticing (the kept socket is not read while idle)
    for (const s of sockets) s.end();
    expect(await get(pool, '/a')).toBe('hello');
    expect(connections).toBe(3);
    pool.close();
    await new Promise((r) => setTimeout(r, 20));
    expect(sockets.size).toBe(0);
  });
});

describe('http1 over TLS', () => {
  let tmp: string;
  let srv: https.Server;
  let certs: ReturnType<typeof makeCerts>;
  let url: string;
  beforeAll(async () => {
    tmp = mkTmp('tsc-http1-');
    certs = makeCerts(tmp);
    srv = https.createServer(
      { cert: fs.readFileSync(certs.cert), key: fs.readFileSync(certs.key) },
      (_q, res) => {
        res.writeHead(200, { 'content-length': PAYLOAD.length });
        res.end(PAYLOAD);
      },
    );
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    url = `https://127.0.0.1:${(srv.address() as net.AddressInfo).port}/`;
  });
  afterAll(() => {
    srv?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('the CA verifies the server; another CA or none is refused; unverified only when asked', async () => {
    const ca = [fs.readFileSync(certs.ca, 'utf8')];
    expect((await read(url, 2, { headers: {}, tls: { ca } })).body.equals(PAYLOAD)).toBe(true);
    for (const tls of [{ ca: [fs.readFileSync(certs.otherCa, 'utf8')] }, {}]) {
      const e = await rawRequest('GET', url, { headers: {}, tls }).catch((x: unknown) => x);
      expect((e as { code?: string }).code).toMatch(/CERT|SELF_SIGNED|UNABLE_TO/);
    }
    expect(
      (await read(url, 0, { headers: {}, tls: { rejectUnauthorized: false } })).body.equals(PAYLOAD),
    ).toBe(true);
  });
});
