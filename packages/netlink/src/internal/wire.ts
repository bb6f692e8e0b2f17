/**
 * The wire layer: a message builder that writes header, fixed struct and (nested) attributes
 * straight into one buffer, aligning once in one place, and an attribute parser that returns
 * views into the received buffer (no copies).
 */
import { NLMSG_HDRLEN } from './constants.js';

const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;

export function align4(n: number): number {
  return (n + 3) & ~3;
}

/** Builds one netlink message. Start with the fixed struct, then attributes. */
export class MessageBuilder {
  private buf: Buffer;
  private off = NLMSG_HDRLEN;

  constructor(
    readonly type: number,
    readonly flags: number,
    size = 256,
  ) {
    this.buf = Buffer.alloc(size);
  }

  private reserve(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.off + n + 64));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }

  /** Append the fixed struct (ifinfomsg, rtmsg, …), `len` zero bytes; returns its offset. */
  struct(len: number): Buffer {
    this.reserve(align4(len));
    const view = this.buf.subarray(this.off, this.off + len);
    this.off += align4(len);
    return view;
  }

  /** Write the fixed struct with a callback receiving a view of it. */
  fixed(len: number, fill: (b: Buffer) => void): this {
    fill(this.struct(len));
    return this;
  }

  bytes(type: number, data: Uint8Array): this {
    const len = 4 + data.length;
    this.reserve(align4(len));
    this.buf.writeUInt16LE(len, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.buf.set(data, this.off + 4);
    this.off += align4(len);
    return this;
  }

  u8(type: number, v: number): this {
    this.reserve(8);
    this.buf.writeUInt16LE(5, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.buf.writeUInt8(v, this.off + 4);
    this.off += 8;
    return this;
  }

  u16(type: number, v: number): this {
    this.reserve(8);
    this.buf.writeUInt16LE(6, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.buf.writeUInt16LE(v, this.off + 4);
    this.off += 8;
    return this;
  }

  /** A big-endian u16 (vlan protocol). */
  be16(type: number, v: number): this {
    this.reserve(8);
    this.buf.writeUInt16LE(6, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.buf.writeUInt16BE(v, this.off + 4);
    this.off += 8;
    return this;
  }

  u32(type: number, v: number): this {
    this.reserve(8);
    this.buf.writeUInt16LE(8, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.buf.writeUInt32LE(v >>> 0, this.off + 4);
    this.off += 8;
    return this;
  }

  /** A NUL-terminated string. */
  str(type: number, s: string): this {
    const n = Buffer.byteLength(s);
    const len = 4 + n + 1;
    this.reserve(align4(len));
    this.buf.writeUInt16LE(len, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.buf.write(s, this.off + 4);
    this.buf[this.off + 4 + n] = 0;
    this.off += align4(len);
    return this;
  }

  /** Open a nested attribute; close it with {@link end}. */
  begin(type: number): number {
    this.reserve(4);
    const at = this.off;
    this.buf.writeUInt16LE(type | NLA_F_NESTED, at + 2);
    this.off += 4;
    return at;
  }

  end(at: number): this {
    this.buf.writeUInt16LE(this.off - at, at);
    return this;
  }

  /** Nested attribute written by a callback (reads top-down). */
  nest(type: number, body: (b: this) => void): this {
    const at = this.begin(type);
    body(this);
    return this.end(at);
  }

  /** Finish: write the header with `seq` and return the bytes (a view of the internal buffer). */
  finish(seq: number): Buffer {
    this.buf.writeUInt32LE(this.off, 0);
    this.buf.writeUInt16LE(this.type, 4);
    this.buf.writeUInt16LE(this.flags, 6);
    this.buf.writeUInt32LE(seq >>> 0, 8);
    this.buf.writeUInt32LE(0, 12);
    return this.buf.subarray(0, this.off);
  }
}

/** One received netlink message: header fields and a view of its payload. */
export interface RawMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** The payload after the 16-byte header. */
  payload: Buffer;
}

/** Split a datagram into messages (views into `buf`). */
export function* messages(buf: Buffer, n: number): Generator<RawMessage> {
  let off = 0;
  while (off + NLMSG_HDRLEN <= n) {
    const len = buf.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > n) break;
    yield {
      type: buf.readUInt16LE(off + 4),
      flags: buf.readUInt16LE(off + 6),
      seq: buf.readUInt32LE(off + 8),
      pid: buf.readUInt32LE(off + 12),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    };
    off += align4(len);
  }
}

/** Attributes by type (the last one wins; views into the buffer). */
export type Attrs = Map<number, Buffer>;

/** Parse the attributes of `buf` from `start`. */
export function parseAttrs(buf: Buffer, start = 0): Attrs {
  const out: Attrs = new Map();
  let off = start;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) break;
    out.set(buf.readUInt16LE(off + 2) & NLA_TYPE_MASK, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return out;
}

/** A NUL-terminated string attribute. */
export function attrStr(b: Buffer | undefined): string | undefined {
  if (b === undefined) return undefined;
  const z = b.indexOf(0);
  return b.toString('utf8', 0, z < 0 ? b.length : z);
}

export function attrU32(b: Buffer | undefined): number | undefined {
  return b !== undefined && b.length >= 4 ? b.readUInt32LE(0) : undefined;
}

export function attrU8(b: Buffer | undefined): number | undefined {
  return b !== undefined && b.length >= 1 ? b.readUInt8(0) : undefined;
}

export function attrU16(b: Buffer | undefined): number | undefined {
  return b !== undefined && b.length >= 2 ? b.readUInt16LE(0) : undefined;
}
