/**
 * Reading, verifying and inflating a gzip blob file on a thread of its own, so that it overlaps
 * the tar parsing and file creation of the thread that unpacks the layer.
 *
 * The worker reads the blob (1 MiB reads into one buffer), hashes it (digest and size checked
 * against the descriptor), inflates it into one reused buffer (as `InPlaceGunzip` does), hashes the
 * tar (the diffID) and copies each piece into a ring of slots in a SharedArrayBuffer. It waits
 * (`Atomics.wait`) when every slot is full, so memory stays bounded however slow the consumer.
 * A `piece` message names each filled slot; the consumer hands the slot back when done with it.
 * The worker's code is self-contained (only `node:` modules), so it starts from a bundle too.
 */
import { Worker } from 'node:worker_threads';
import { UnionfsError, type UnionfsErrorCode } from './errors.js';

/** Slot size: one inflate output buffer. */
const SLOT = 256 << 10;
const SLOTS = 8;
/** Control words: [0] slots handed back by the consumer (the worker waits on it), [1] stop. */
const FREED = 0;
const STOP = 1;

export interface InflateResult {
  /** The blob's digest and size as read. */
  digest: string;
  compressedSize: number;
  /** sha256 of the tar, and its size. */
  diffID: string;
  size: number;
}

type FromWorker =
  | { kind: 'piece'; slot: number; length: number; read: number }
  | { kind: 'done'; result: InflateResult }
  | { kind: 'error'; code: UnionfsErrorCode | undefined; zcode: string | undefined; message: string };

const SOURCE = `
(async () => {
  const { parentPort, workerData } = await import('node:worker_threads');
  const { openSync, readSync, closeSync } = await import('node:fs');
  const { createHash } = await import('node:crypto');
  const zlib = await import('node:zlib');
  const { path, algorithm, size, sab, slots, slotSize } = workerData;
  const ctrl = new Int32Array(sab, 0, 2);
  const ring = Buffer.from(sab, 8, slots * slotSize);
  let fd;
  try {
    const blobHash = createHash(algorithm);
    const tarHash = createHash('sha256');
    // gunzip into one reused buffer: the handle of a createGunzip() object, as gunzip.ts does
    // (written out here: a bundled caller has no gunzip.js next to it for a worker to import)
    const z = zlib.createGunzip();
    const handle = z._handle;
    const state = z._writeState;
    let zerr;
    handle.onerror = (message, errno, code) => { zerr = Object.assign(new Error(message), { errno, code }); };
    const out = Buffer.allocUnsafeSlow(slotSize);
    let ended = false;
    const inflate = (flush, input, emit) => {
      let inOff = 0;
      let inLen = input.length;
      while (!ended) {
        handle.writeSync(flush, input, inOff, inLen, out, 0, out.length);
        if (zerr) throw zerr;
        const availOut = state[0];
        const availIn = state[1];
        if (availOut < out.length) emit(out.subarray(0, out.length - availOut));
        inOff += inLen - availIn;
        inLen = availIn;
        if (availOut !== 0) {
          if (inLen > 0) ended = true;
          return;
        }
      }
    };
    let used = 0; // slots filled so far
    let read = 0;
    let tarSize = 0;
    const emit = (piece) => {
      tarHash.update(piece);
      tarSize += piece.length;
      // wait for a free slot: filled - freed < slots
      for (;;) {
        if (Atomics.load(ctrl, 1) !== 0) throw Object.assign(new Error('stopped'), { stopped: true });
        const freed = Atomics.load(ctrl, 0);
        if (used - freed < slots) break;
        Atomics.wait(ctrl, 0, freed, 1000);
      }
      const slot = used % slots;
      piece.copy(ring, slot * slotSize);
      used++;
      parentPort.postMessage({ kind: 'piece', slot, length: piece.length, read });
    };
    fd = openSync(path, 'r');
    const buf = Buffer.allocUnsafeSlow(1 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      read += n;
      if (size !== undefined && read > size) {
        parentPort.postMessage({ kind: 'error', code: 'SizeMismatch', message: 'more than the ' + size + ' bytes its descriptor gives' });
        return;
      }
      const chunk = buf.subarray(0, n);
      blobHash.update(chunk);
      inflate(zlib.constants.Z_NO_FLUSH, chunk, emit);
    }
    inflate(zlib.constants.Z_FINISH, Buffer.alloc(0), emit);
    z.destroy();
    parentPort.postMessage({ kind: 'done', result: { digest: algorithm + ':' + blobHash.digest('hex'), compressedSize: read, diffID: 'sha256:' + tarHash.digest('hex'), size: tarSize } });
  } catch (e) {
    if (e && e.stopped) return;
    parentPort.postMessage({ kind: 'error', code: undefined, zcode: e && typeof e.code === 'string' ? e.code : undefined, message: String(e && e.message ? e.message : e) });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
})();
`;

/**
 * Inflates the gzip blob file `path` on a worker thread; `onPiece` gets each piece of the tar in
 * order (valid only during the call) and the blob bytes read so far. Throwing from `onPiece`
 * stops everything and rejects with that error.
 *
 * Errors: `SizeMismatch` (more bytes than `size`), the zlib error of a corrupt or truncated
 * stream (with its `code`, e.g. `Z_DATA_ERROR`), `System` for anything else.
 */
export function inflateInWorker(
  path: string,
  opts: { algorithm: 'sha256' | 'sha512'; size?: number; signal?: AbortSignal },
  onPiece: (piece: Buffer, read: number) => void,
): Promise<InflateResult> {
  const sab = new SharedArrayBuffer(8 + SLOTS * SLOT);
  const ctrl = new Int32Array(sab, 0, 2);
  const ring = Buffer.from(sab, 8, SLOTS * SLOT);
  const worker = new Worker(SOURCE, {
    eval: true,
    workerData: {
      path,
      algorithm: opts.algorithm,
      size: opts.size,
      sab,
      slots: SLOTS,
      slotSize: SLOT,
    },
  });
  return new Promise<InflateResult>((resolve, reject) => {
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
      Atomics.store(ctrl, STOP, 1);
      Atomics.notify(ctrl, FREED);
      void worker.terminate();
      fn();
    };
    const onAbort = () =>
      finish(() =>
        reject(opts.signal?.reason ?? new DOMException('The operation was aborted', 'AbortError')),
      );
    if (opts.signal?.aborted) {
      onAbort();
      return;
    }
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (m: FromWorker) => {
      if (settled) return;
      switch (m.kind) {
        case 'piece':
          try {
            onPiece(ring.subarray(m.slot * SLOT, m.slot * SLOT + m.length), m.read);
          } catch (e) {
            finish(() => reject(e));
            return;
          }
          Atomics.add(ctrl, FREED, 1);
          Atomics.notify(ctrl, FREED);
          break;
        case 'done':
          finish(() => resolve(m.result));
          break;
        case 'error':
          finish(() =>
            reject(
              m.code
                ? new UnionfsError(m.code, m.message)
                : m.zcode?.startsWith('Z_')
                  ? Object.assign(new Error(m.message), { code: m.zcode })
                  : new UnionfsError('System', `inflate ${path}: ${m.message}`),
            ),
          );
          break;
      }
    });
    worker.on('error', (e) =>
      finish(() => reject(new UnionfsError('System', `inflate worker: ${e.message}`))),
    );
    worker.on('exit', (code) =>
      finish(() => reject(new UnionfsError('System', `inflate worker exited (${code}) before finishing`))),
    );
  });
}
