/**
 * Reading, verifying and inflating a gzip blob on a thread of its own, so that it overlaps the
 * tar parsing and file creation of the thread that unpacks the layer.
 *
 * The worker reads the blob — a file (1 MiB reads into one buffer), or a stream the calling
 * thread copies into an input ring of 1 MiB slots in a SharedArrayBuffer (a layer unpacked while
 * it downloads) — hashes it (digest and size checked against the descriptor), inflates it into
 * one reused buffer (as `InPlaceGunzip` does), hashes the tar (the diffID) and copies each piece
 * into an output ring of slots in a SharedArrayBuffer. It waits (`Atomics.wait`) when every
 * output slot is full or no input is there, so memory stays bounded however slow either side.
 * A `piece` message names each filled slot; the consumer hands the slot back when done with it.
 * The calling thread waits for free input slots with `Atomics.waitAsync` (never blocking).
 * The worker's code is self-contained (only `node:` modules), so it starts from a bundle too.
 */
import { closeSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { UnionfsError, type UnionfsErrorCode } from './errors.js';

/** Slot size: one inflate output buffer. */
const SLOT = 256 << 10;
const SLOTS = 8;
/** Control words: [0] slots handed back by the consumer (the worker waits on it), [1] stop. */
const FREED = 0;
const STOP = 1;
/** Input ring (stream sources): slots of this size. */
const IN_SLOT = 1 << 20;
const IN_SLOTS = 4;
/** Input control words: [0] slots filled by the caller, [1] slots consumed by the worker, [2] ended. */
const IN_FILLED = 0;
const IN_CONSUMED = 1;
const IN_ENDED = 2;
/** Layout of the SharedArrayBuffer: control, output ring, input control and lengths, input ring. */
const OUT_RING_AT = 8;
const IN_CTRL_AT = OUT_RING_AT + SLOTS * SLOT;
const IN_LENS_AT = IN_CTRL_AT + 16;
const IN_RING_AT = IN_LENS_AT + 4 * IN_SLOTS;

export interface InflateResult {
  /** The blob's digest and size as read (no digest for a source read with `hash: false`). */
  digest: string | undefined;
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
  const { path, fd: givenFd, hash, algorithm, size, sab, slots, slotSize, inAt, inSlots, inSlotSize } = workerData;
  const ctrl = new Int32Array(sab, 0, 2);
  const ring = Buffer.from(sab, 8, slots * slotSize);
  const stopped = () => Object.assign(new Error('stopped'), { stopped: true });
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
        if (Atomics.load(ctrl, 1) !== 0) throw stopped();
        const freed = Atomics.load(ctrl, 0);
        if (used - freed < slots) break;
        Atomics.wait(ctrl, 0, freed, 1000);
      }
      const slot = used % slots;
      piece.copy(ring, slot * slotSize);
      used++;
      parentPort.postMessage({ kind: 'piece', slot, length: piece.length, read });
    };
    // the blob's bytes: from the file, or from the input ring the caller fills
    let next;
    if (path !== undefined || givenFd !== undefined) {
      // a descriptor of the caller's is read from its start and left open
      if (givenFd === undefined) fd = openSync(path, 'r');
      const from = givenFd ?? fd;
      const buf = Buffer.allocUnsafeSlow(1 << 20);
      let pos = 0;
      next = () => {
        const n = readSync(from, buf, 0, buf.length, pos);
        pos += n;
        return n === 0 ? undefined : buf.subarray(0, n);
      };
    } else {
      const inCtrl = new Int32Array(sab, inAt.ctrl, 3);
      const inLens = new Int32Array(sab, inAt.lens, inSlots);
      const inRing = Buffer.from(sab, inAt.ring, inSlots * inSlotSize);
      let consumed = 0;
      let pending = false;
      next = () => {
        if (pending) {
          // the previous slot is processed: hand it back
          pending = false;
          consumed++;
          Atomics.store(inCtrl, 1, consumed);
          Atomics.notify(inCtrl, 1);
        }
        for (;;) {
          if (Atomics.load(ctrl, 1) !== 0) throw stopped();
          const filled = Atomics.load(inCtrl, 0);
          if (filled > consumed) {
            const slot = consumed % inSlots;
            pending = true;
            return inRing.subarray(slot * inSlotSize, slot * inSlotSize + inLens[slot]);
          }
          // the caller fills, then ends: a slot filled before the end is seen after it
          if (Atomics.load(inCtrl, 2) !== 0 && Atomics.load(inCtrl, 0) === consumed) return undefined;
          Atomics.wait(inCtrl, 0, filled, 1000);
        }
      };
    }
    for (;;) {
      const chunk = next();
      if (chunk === undefined) break;
      const n = chunk.length;
      read += n;
      if (size !== undefined && read > size) {
        parentPort.postMessage({ kind: 'error', code: 'SizeMismatch', message: 'more than the ' + size + ' bytes its descriptor gives' });
        return;
      }
      if (hash) blobHash.update(chunk);
      inflate(zlib.constants.Z_NO_FLUSH, chunk, emit);
    }
    inflate(zlib.constants.Z_FINISH, Buffer.alloc(0), emit);
    z.destroy();
    parentPort.postMessage({ kind: 'done', result: { digest: hash ? algorithm + ':' + blobHash.digest('hex') : undefined, compressedSize: read, diffID: 'sha256:' + tarHash.digest('hex'), size: tarSize } });
  } catch (e) {
    if (e && e.stopped) return;
    parentPort.postMessage({ kind: 'error', code: undefined, zcode: e && typeof e.code === 'string' ? e.code : undefined, message: String(e && e.message ? e.message : e) });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
})();
`;

/**
 * Inflates a gzip blob on a worker thread: the file `source`, or the bytes of the stream `source`
 * (copied into the worker's input ring as they come; when the ring is full the stream is not
 * read until the worker frees a slot). `onPiece` gets each piece of the tar in order (valid only
 * during the call) and the blob bytes read so far. Throwing from `onPiece` stops everything and
 * rejects with that error; so does a failing stream (its error).
 *
 * Errors: `SizeMismatch` (more bytes than `size`), the zlib error of a corrupt or truncated
 * stream (with its `code`, e.g. `Z_DATA_ERROR`), `System` for anything else.
 */
export function inflateInWorker(
  source: string | { fd: number; hash: boolean } | AsyncIterable<Buffer>,
  opts: { algorithm: 'sha256' | 'sha512'; size?: number; signal?: AbortSignal },
  onPiece: (piece: Buffer, read: number) => void,
): Promise<InflateResult> {
  const fd = typeof source === 'object' && 'fd' in source ? source : undefined;
  const fromFile = typeof source === 'string' || fd !== undefined;
  const sab = new SharedArrayBuffer(fromFile ? OUT_RING_AT + SLOTS * SLOT : IN_RING_AT + IN_SLOTS * IN_SLOT);
  const ctrl = new Int32Array(sab, 0, 2);
  const ring = Buffer.from(sab, OUT_RING_AT, SLOTS * SLOT);
  let worker: Worker;
  try {
    worker = new Worker(SOURCE, {
      eval: true,
      workerData: {
        path: typeof source === 'string' ? source : undefined,
        fd: fd?.fd,
        hash: fd ? fd.hash : true,
        algorithm: opts.algorithm,
        size: opts.size,
        sab,
        slots: SLOTS,
        slotSize: SLOT,
        inAt: { ctrl: IN_CTRL_AT, lens: IN_LENS_AT, ring: IN_RING_AT },
        inSlots: IN_SLOTS,
        inSlotSize: IN_SLOT,
      },
    });
  } catch (e) {
    if (fd) closeSync(fd.fd);
    throw e;
  }
  // the thread reads the caller's descriptor (which it now owns) until it has exited: closed then
  if (fd) worker.once('exit', () => closeSync(fd.fd));
  return new Promise<InflateResult>((resolve, reject) => {
    let settled = false;
    const inCtrl = fromFile ? undefined : new Int32Array(sab, IN_CTRL_AT, 3);
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
      Atomics.store(ctrl, STOP, 1);
      Atomics.notify(ctrl, FREED);
      if (inCtrl) {
        Atomics.notify(inCtrl, IN_FILLED);
        // a feeder waiting for a free input slot wakes up and sees `settled`
        Atomics.add(inCtrl, IN_CONSUMED, 1);
        Atomics.notify(inCtrl, IN_CONSUMED);
      }
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
                  : new UnionfsError(
                      'System',
                      `inflate ${typeof source === 'string' ? source : fd ? `fd ${fd.fd}` : 'stream'}: ${m.message}`,
                    ),
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
    if (inCtrl && !fromFile) {
      feed(source as AsyncIterable<Buffer>, sab, inCtrl, () => settled).then(
        () => {
          if (settled) return;
          Atomics.store(inCtrl, IN_ENDED, 1);
          Atomics.notify(inCtrl, IN_FILLED);
        },
        (e: unknown) => finish(() => reject(e)),
      );
    }
  });
}

/** `Atomics.waitAsync` (V8 has it since Node 16; TypeScript's lib only from es2024). */
const waitAsync = (
  Atomics as unknown as {
    waitAsync: (
      a: Int32Array,
      index: number,
      value: number,
      timeout: number,
    ) => { async: false; value: string } | { async: true; value: Promise<string> };
  }
).waitAsync;

/**
 * Copies the stream into the input ring, slot by slot (1 MiB each; a chunk may fill several),
 * waiting without blocking (`Atomics.waitAsync`) while every slot is in use. Stops (and lets the
 * stream be destroyed) once `stopped()`.
 */
async function feed(
  source: AsyncIterable<Buffer>,
  sab: SharedArrayBuffer,
  inCtrl: Int32Array,
  stopped: () => boolean,
): Promise<void> {
  const lens = new Int32Array(sab, IN_LENS_AT, IN_SLOTS);
  const ring = Buffer.from(sab, IN_RING_AT, IN_SLOTS * IN_SLOT);
  let filled = 0;
  let fill = 0; // bytes in the slot being filled (not yet handed over)
  const handOver = () => {
    lens[filled % IN_SLOTS] = fill;
    filled++;
    fill = 0;
    Atomics.store(inCtrl, IN_FILLED, filled);
    Atomics.notify(inCtrl, IN_FILLED);
  };
  /** Waits until the slot `filled` is free: the worker consumed `filled - IN_SLOTS + 1` slots. */
  const slotFree = async () => {
    for (;;) {
      if (stopped()) return false;
      const consumed = Atomics.load(inCtrl, IN_CONSUMED);
      if (filled - consumed < IN_SLOTS) return true;
      const w = waitAsync(inCtrl, IN_CONSUMED, consumed, 1000);
      if (w.async) await w.value;
    }
  };
  for await (const chunk of source) {
    for (let off = 0; off < chunk.length; ) {
      if (fill === 0 && !(await slotFree())) return;
      const slot = filled % IN_SLOTS;
      const n = Math.min(chunk.length - off, IN_SLOT - fill);
      chunk.copy(ring, slot * IN_SLOT + fill, off, off + n);
      fill += n;
      off += n;
      if (fill === IN_SLOT) handOver();
    }
    if (stopped()) return;
    // hand over what this chunk brought: the worker need not wait for a full slot
    if (fill > 0) handOver();
  }
  if (fill > 0) handOver();
}
