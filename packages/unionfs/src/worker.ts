/**
 * Unpacking a layer on a worker thread: decompression, parsing and the file-system calls of one
 * layer run there, so two layers of an image create their files on two cores at once (file
 * creation is kernel time on the calling thread; the main thread alone would serialise it).
 */
import { Worker } from 'node:worker_threads';
import { UnionfsError, type UnionfsErrorCode } from './errors.js';
import type { UnpackLayerOptions, UnpackLayerResult } from './unpack.js';

/** Messages from the worker. */
type FromWorker =
  | { kind: 'progress'; bytes: number }
  | { kind: 'lowers' }
  | { kind: 'done'; result: UnpackLayerResult }
  | { kind: 'error'; code: UnionfsErrorCode | 'AbortError'; message: string };

const WORKER_SOURCE = `
(async () => {
  // import(), not require: the worker may inherit --input-type=module from its parent
  const { parentPort, workerData } = await import('node:worker_threads');
  const { unpackLayer } = await import(workerData.module);
  const { dir, blob, opts, deferLowers } = workerData;
  try {
    const result = await unpackLayer(dir, blob, {
      ...opts,
      ...(deferLowers
        ? { lowers: () => new Promise((resolve) => { parentPort.once('message', (m) => resolve(m.lowers)); parentPort.postMessage({ kind: 'lowers' }); }) }
        : {}),
      onProgress: (bytes) => parentPort.postMessage({ kind: 'progress', bytes }),
    });
    parentPort.postMessage({ kind: 'done', result });
  } catch (e) {
    parentPort.postMessage({ kind: 'error', code: e && e.code ? e.code : 'System', message: String(e && e.message ? e.message : e) });
  }
})();
`;

/** `unpackLayer` of a blob file, on a worker thread. Same options and errors. */
export function unpackLayerInWorker(
  dir: string,
  blob: string,
  opts: UnpackLayerOptions,
): Promise<UnpackLayerResult> {
  const { lowers, signal, onProgress, ...plain } = opts;
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: {
      // from the sources (vitest) the worker, plain Node, loads the built module
      module: new URL(import.meta.url.endsWith('.ts') ? '../dist/unpack.js' : './unpack.js', import.meta.url)
        .href,
      dir,
      blob,
      opts: { ...plain, ...(Array.isArray(lowers) ? { lowers } : {}) },
      deferLowers: typeof lowers === 'function',
    },
  });
  return new Promise<UnpackLayerResult>((resolve, reject) => {
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const onAbort = () => {
      void worker.terminate();
      finish(() => reject(signal?.reason ?? new UnionfsError('System', 'aborted')));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (m: FromWorker) => {
      switch (m.kind) {
        case 'progress':
          onProgress?.(m.bytes);
          break;
        case 'lowers':
          if (typeof lowers === 'function')
            lowers().then(
              (l) => worker.postMessage({ lowers: l }),
              (e: unknown) => {
                void worker.terminate();
                finish(() => reject(e));
              },
            );
          break;
        case 'done':
          void worker.terminate();
          finish(() => resolve(m.result));
          break;
        case 'error':
          void worker.terminate();
          finish(() => reject(new UnionfsError(m.code === 'AbortError' ? 'System' : m.code, m.message)));
          break;
      }
    });
    worker.on('error', (e) =>
      finish(() => reject(new UnionfsError('System', `unpack worker: ${e.message}`))),
    );
    worker.on('exit', (code) =>
      finish(() => reject(new UnionfsError('System', `unpack worker exited (${code}) before finishing`))),
    );
  });
}
