/**
 * The init layer of an image container, as Docker has one: between the image's layers and the
 * container's writable layer, it holds the mount points the runtime needs (`/proc`, `/sys`,
 * `/dev`, and the files `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf` that are bind-mounted).
 * Without it those would be created in the writable layer, and `diff` and `commit` would show them
 * as the container's own changes.
 *
 * The tar is deterministic (fixed times and owners), so each image gets it unpacked once.
 */
import { createHash } from 'node:crypto';

interface Entry {
  name: string;
  type: 'dir' | 'file';
  mode: number;
}

const ENTRIES: readonly Entry[] = [
  { name: 'dev/', type: 'dir', mode: 0o755 },
  { name: 'etc/', type: 'dir', mode: 0o755 },
  { name: 'etc/hostname', type: 'file', mode: 0o644 },
  { name: 'etc/hosts', type: 'file', mode: 0o644 },
  { name: 'etc/resolv.conf', type: 'file', mode: 0o644 },
  { name: 'proc/', type: 'dir', mode: 0o555 },
  { name: 'sys/', type: 'dir', mode: 0o555 },
];

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

/** The init layer as an uncompressed ustar archive. */
export function initLayerTar(): Buffer {
  const blocks: Buffer[] = [];
  for (const e of ENTRIES) {
    const h = Buffer.alloc(512);
    h.write(e.name, 0, 100, 'utf8');
    h.write(octal(e.mode, 8), 100);
    h.write(octal(0, 8), 108);
    h.write(octal(0, 8), 116);
    h.write(octal(0, 12), 124);
    h.write(octal(0, 12), 136);
    h.write('        ', 148);
    h.write(e.type === 'dir' ? '5' : '0', 156);
    h.write('ustar\u000000', 257);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    blocks.push(h);
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** `sha256:…` of {@link initLayerTar} (its diffID and, uncompressed, its blob digest). */
export function initLayerDigest(tar: Buffer = initLayerTar()): `sha256:${string}` {
  return `sha256:${createHash('sha256').update(tar).digest('hex')}`;
}
