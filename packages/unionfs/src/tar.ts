/**
 * A streaming tar reader (POSIX ustar, PAX `x`/`g` headers, GNU `L`/`K` long names, base-256
 * numbers) and a writer (ustar + PAX), both byte-exact: PAX values — xattrs above all — stay
 * `Buffer`s, never strings.
 *
 * The reader is push-based and synchronous: `write(chunk)` parses everything the chunk holds and
 * calls the sink for each entry and each piece of file data. No promise per entry.
 */
import { UnionfsError } from './errors.js';

export type EntryType = 'file' | 'link' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

/** One archive member, with PAX and GNU extensions already applied. */
export interface TarEntry {
  /** The name as archived (not normalised). */
  path: string;
  type: EntryType;
  /** Data bytes that follow (files only; 0 for every other type). */
  size: number;
  /** Permission bits including setuid/setgid/sticky (07777). */
  mode: number;
  uid: number;
  gid: number;
  mtime: { sec: number; nsec: number };
  atime: { sec: number; nsec: number } | undefined;
  /** Symlink target or hardlink target. */
  linkpath: string;
  devmajor: number;
  devminor: number;
  /** `SCHILY.xattr.*` (and `LIBARCHIVE.xattr.*`) values, byte-exact. */
  xattrs: Map<string, Buffer>;
}

export interface TarSink {
  entry(e: TarEntry): void;
  /** A piece of the current file's data (consecutive, in order). Valid only during the call. */
  data(chunk: Buffer): void;
  /** The current entry's data is complete. */
  end(): void;
}

const BLOCK = 512;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Names are UTF-8 in practice; other bytes (old GNU tars in Latin-1) are read as Latin-1. */
function decodeName(b: Buffer): string {
  try {
    return utf8.decode(b);
  } catch {
    return b.toString('latin1');
  }
}

function cstr(block: Buffer, off: number, len: number): Buffer {
  const end = block.indexOf(0, off);
  return block.subarray(off, end < 0 || end > off + len ? off + len : end);
}

function num(block: Buffer, off: number, len: number, what: string): number {
  const first = block[off] as number;
  if (first & 0x80) {
    if (first === 0xff) throw new UnionfsError('InvalidTar', `negative base-256 ${what} in a tar header`);
    let v = first & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + (block[off + i] as number);
    return v;
  }
  const s = block
    .toString('latin1', off, off + len)
    .replace(/\0.*$/s, '')
    .trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new UnionfsError('InvalidTar', `bad octal ${what} "${s}" in a tar header`);
  return Number.parseInt(s, 8);
}

function checksumOk(block: Buffer): boolean {
  const want = num(block, 148, 8, 'checksum');
  let u = 0;
  let s = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 32 : (block[i] as number);
    u += b;
    s += b > 127 ? b - 256 : b;
  }
  return want === u || want === s;
}

function isZero(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

function parseTime(v: string, key: string): { sec: number; nsec: number } {
  const m = /^(-?\d+)(?:\.(\d{1,9})\d*)?$/.exec(v);
  if (!m) throw new UnionfsError('InvalidTar', `bad PAX ${key} "${v}"`);
  return { sec: Number(m[1]), nsec: m[2] ? Number(m[2].padEnd(9, '0')) : 0 };
}

interface Pax {
  text: Map<string, string>;
  xattrs: Map<string, Buffer>;
}

function parsePax(data: Buffer, into: Pax): void {
  let off = 0;
  while (off < data.length) {
    if (data[off] === 0) break; // padding some writers leave
    const sp = data.indexOf(0x20, off);
    if (sp < 0) throw new UnionfsError('InvalidTar', 'bad PAX record (no length)');
    const len = Number(data.toString('latin1', off, sp));
    if (!Number.isInteger(len) || len <= sp - off || off + len > data.length)
      throw new UnionfsError('InvalidTar', 'bad PAX record length');
    const rec = data.subarray(sp + 1, off + len - 1); // without the trailing newline
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw new UnionfsError('InvalidTar', 'bad PAX record (no "=")');
    const key = rec.toString('utf8', 0, eq);
    const value = rec.subarray(eq + 1);
    if (key.startsWith('SCHILY.xattr.')) into.xattrs.set(key.slice(13), Buffer.from(value));
    else if (key.startsWith('LIBARCHIVE.xattr.'))
      into.xattrs.set(decodeURIComponent(key.slice(17)), Buffer.from(value.toString('latin1'), 'base64'));
    else into.text.set(key, decodeName(value));
    off += len;
  }
}

type State = 'header' | 'data' | 'meta' | 'end';

/** See the module comment. Throws {@link UnionfsError} `InvalidTar`/`Unsupported` from `write`. */
export class TarParser {
  #sink: TarSink;
  #state: State = 'header';
  /** A partial header or meta record carried across chunks. */
  #carry: Buffer[] = [];
  #carryLen = 0;
  /** Bytes of data left in the current entry, and padding after it. */
  #remaining = 0;
  #padding = 0;
  #metaType = '';
  #metaSize = 0;
  #global: Pax = { text: new Map(), xattrs: new Map() };
  #pax: Pax | undefined;
  #longName: string | undefined;
  #longLink: string | undefined;
  #zeroBlocks = 0;
  #entries = 0;

  constructor(sink: TarSink) {
    this.#sink = sink;
  }

  /** True once the end-of-archive marker was read (later bytes are ignored). */
  get ended(): boolean {
    return this.#state === 'end';
  }

  get entries(): number {
    return this.#entries;
  }

  write(chunk: Buffer): void {
    let off = 0;
    const n = chunk.length;
    while (off < n) {
      switch (this.#state) {
        case 'end':
          return;
        case 'data': {
          if (this.#remaining > 0) {
            const take = Math.min(this.#remaining, n - off);
            this.#sink.data(chunk.subarray(off, off + take));
            this.#remaining -= take;
            off += take;
            if (this.#remaining === 0) this.#sink.end();
          } else {
            const take = Math.min(this.#padding, n - off);
            this.#padding -= take;
            off += take;
          }
          if (this.#remaining === 0 && this.#padding === 0) this.#state = 'header';
          break;
        }
        case 'header':
        case 'meta': {
          const need = this.#state === 'header' ? BLOCK : this.#metaSize + this.#pad(this.#metaSize);
          const avail = n - off;
          let block: Buffer;
          if (this.#carryLen === 0 && avail >= need) {
            block = chunk.subarray(off, off + need);
            off += need;
          } else {
            const take = Math.min(need - this.#carryLen, avail);
            this.#carry.push(chunk.subarray(off, off + take));
            this.#carryLen += take;
            off += take;
            if (this.#carryLen < need) {
              // keep a copy: the caller may reuse the chunk's memory
              this.#carry = [Buffer.concat(this.#carry)];
              return;
            }
            block = Buffer.concat(this.#carry, need);
            this.#carry = [];
            this.#carryLen = 0;
          }
          if (this.#state === 'header') this.#header(block);
          else this.#meta(block.subarray(0, this.#metaSize));
          break;
        }
      }
    }
  }

  /** Call after the last chunk: fails when the archive was cut short. */
  finish(): void {
    if (this.#state === 'end' || (this.#state === 'header' && this.#carryLen === 0 && this.#zeroBlocks > 0))
      return;
    if (this.#state === 'header' && this.#carryLen === 0 && this.#entries === 0 && !this.#pax)
      throw new UnionfsError('InvalidTar', 'empty layer: not a tar archive (no end-of-archive marker)');
    throw new UnionfsError('InvalidTar', 'truncated tar archive (no end-of-archive marker)');
  }

  #pad(size: number): number {
    return (BLOCK - (size % BLOCK)) % BLOCK;
  }

  #header(block: Buffer): void {
    if (isZero(block)) {
      if (++this.#zeroBlocks >= 2) this.#state = 'end';
      return;
    }
    this.#zeroBlocks = 0;
    if (!checksumOk(block))
      throw new UnionfsError(
        'InvalidTar',
        `tar header checksum mismatch after ${this.#entries} entries (not a tar archive, or corrupt)`,
      );
    const type = String.fromCharCode(block[156] as number);
    const size = num(block, 124, 12, 'size');
    if (type === 'x' || type === 'g' || type === 'L' || type === 'K') {
      if (size > 64 << 20) throw new UnionfsError('InvalidTar', `a ${size}-byte "${type}" tar header`);
      this.#metaType = type;
      this.#metaSize = size;
      this.#state = 'meta';
      if (size === 0) this.#meta(Buffer.alloc(0));
      return;
    }
    const magic = block.toString('latin1', 257, 263);
    const posix = magic === 'ustar\0';
    let name = decodeName(cstr(block, 0, 100));
    if (posix && block[345] !== 0) name = `${decodeName(cstr(block, 345, 155))}/${name}`;
    const pax = this.#pax;
    const text = new Map([...this.#global.text, ...(pax?.text ?? [])]);
    const xattrs = new Map([...this.#global.xattrs, ...(pax?.xattrs ?? [])]);
    this.#pax = undefined;
    const path = text.get('path') ?? this.#longName ?? name;
    const linkpath = text.get('linkpath') ?? this.#longLink ?? decodeName(cstr(block, 157, 100));
    this.#longName = undefined;
    this.#longLink = undefined;
    for (const k of text.keys())
      if (k.startsWith('GNU.sparse.'))
        throw new UnionfsError('Unsupported', `tar entry "${path}": GNU sparse files are not supported`);
    let etype: EntryType;
    switch (type) {
      case '0':
      case '\0':
      case '7':
        etype = path.endsWith('/') && type === '\0' ? 'dir' : 'file';
        break;
      case '1':
        etype = 'link';
        break;
      case '2':
        etype = 'symlink';
        break;
      case '3':
        etype = 'char';
        break;
      case '4':
        etype = 'block';
        break;
      case '5':
      case 'D':
        etype = 'dir';
        break;
      case '6':
        etype = 'fifo';
        break;
      case 'S':
        throw new UnionfsError('Unsupported', `tar entry "${path}": GNU sparse files are not supported`);
      case 'V':
        // a volume label: no file
        this.#skipData(size);
        return;
      default:
        throw new UnionfsError(
          'Unsupported',
          `tar entry "${path}": entry type "${type.replace(/[^\x20-\x7e]/g, '?')}" is not supported`,
        );
    }
    const paxSize = text.get('size');
    const dataSize = paxSize !== undefined ? Number(paxSize) : size;
    if (!Number.isSafeInteger(dataSize) || dataSize < 0)
      throw new UnionfsError('InvalidTar', `tar entry "${path}": bad size`);
    const uid = text.has('uid') ? Number(text.get('uid')) : num(block, 108, 8, 'uid');
    const gid = text.has('gid') ? Number(text.get('gid')) : num(block, 116, 8, 'gid');
    const mtime = text.has('mtime')
      ? parseTime(text.get('mtime') as string, 'mtime')
      : { sec: num(block, 136, 12, 'mtime'), nsec: 0 };
    const atime = text.has('atime') ? parseTime(text.get('atime') as string, 'atime') : undefined;
    const e: TarEntry = {
      path,
      type: etype,
      size: etype === 'file' ? dataSize : 0,
      mode: num(block, 100, 8, 'mode') & 0o7777,
      uid,
      gid,
      mtime,
      atime,
      linkpath,
      devmajor: etype === 'char' || etype === 'block' ? num(block, 329, 8, 'devmajor') : 0,
      devminor: etype === 'char' || etype === 'block' ? num(block, 337, 8, 'devminor') : 0,
      xattrs,
    };
    this.#entries++;
    this.#sink.entry(e);
    // Hardlinks and others may carry data in odd archives: skip it.
    if (etype === 'file') {
      this.#remaining = dataSize;
      this.#padding = this.#pad(dataSize);
      this.#state = 'data';
      if (dataSize === 0) {
        this.#sink.end();
        if (this.#padding === 0) this.#state = 'header';
      }
    } else {
      this.#sink.end();
      this.#skipData(etype === 'dir' || etype === 'symlink' || etype === 'link' ? size : dataSize);
    }
  }

  #skipData(size: number): void {
    if (size === 0) return;
    // A sink-less data section: count it as padding.
    this.#remaining = 0;
    this.#padding = size + this.#pad(size);
    this.#state = 'data';
  }

  #meta(data: Buffer): void {
    this.#state = 'header';
    switch (this.#metaType) {
      case 'x':
        this.#pax ??= { text: new Map(), xattrs: new Map() };
        parsePax(data, this.#pax);
        break;
      case 'g':
        parsePax(data, this.#global);
        break;
      case 'L':
        this.#longName = decodeName(cstr(data, 0, data.length));
        break;
      case 'K':
        this.#longLink = decodeName(cstr(data, 0, data.length));
        break;
    }
  }
}

// ------------------------------------------------------------------------------------ writer

/** What {@link tarHeader} writes for one member. */
export interface TarHeaderInput {
  path: string;
  type: EntryType;
  size?: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  linkpath?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: ReadonlyMap<string, Buffer>;
}

const TYPEFLAG: Record<EntryType, string> = {
  file: '0',
  link: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
};

function octal(block: Buffer, off: number, len: number, v: number): boolean {
  const s = v.toString(8);
  if (s.length > len - 1) return false;
  block.write(s.padStart(len - 1, '0'), off, 'latin1');
  block[off + len - 1] = 0;
  return true;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), 'latin1'), body]);
}

function ustar(input: {
  name: Buffer;
  type: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  linkname: Buffer;
  devmajor: number;
  devminor: number;
}): Buffer {
  const b = Buffer.alloc(BLOCK);
  input.name.copy(b, 0, 0, 100);
  octal(b, 100, 8, input.mode);
  octal(b, 108, 8, input.uid);
  octal(b, 116, 8, input.gid);
  octal(b, 124, 12, input.size);
  octal(b, 136, 12, input.mtime);
  b.write(input.type, 156, 'latin1');
  input.linkname.copy(b, 157, 0, 100);
  b.write('ustar\u000000', 257, 'latin1');
  octal(b, 329, 8, input.devmajor);
  octal(b, 337, 8, input.devminor);
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i] as number;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}

/**
 * The header block(s) of one member: a PAX `x` header first when the name or link target does not
 * fit (or is not ASCII), a number is too large for its field, or the member has xattrs.
 * Deterministic: same input, same bytes.
 */
export function tarHeader(h: TarHeaderInput): Buffer {
  const name = Buffer.from(h.type === 'dir' && !h.path.endsWith('/') ? `${h.path}/` : h.path, 'utf8');
  const link = Buffer.from(h.linkpath ?? '', 'utf8');
  const size = h.size ?? 0;
  const records: Buffer[] = [];
  const ascii = (s: string) => /^[\x20-\x7e]*$/.test(s);
  if (name.length > 100 || !ascii(h.path)) records.push(paxRecord('path', name));
  if (link.length > 100 || !ascii(h.linkpath ?? '')) records.push(paxRecord('linkpath', link));
  if (size > 0o77777777777) records.push(paxRecord('size', Buffer.from(String(size))));
  if (h.uid > 0o7777777) records.push(paxRecord('uid', Buffer.from(String(h.uid))));
  if (h.gid > 0o7777777) records.push(paxRecord('gid', Buffer.from(String(h.gid))));
  for (const [k, v] of [...(h.xattrs ?? [])].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    records.push(paxRecord(`SCHILY.xattr.${k}`, v));
  const main = ustar({
    name: name.length > 100 ? name.subarray(0, 100) : name,
    type: TYPEFLAG[h.type],
    size: size > 0o77777777777 ? 0 : size,
    mode: h.mode & 0o7777,
    uid: h.uid > 0o7777777 ? 0 : h.uid,
    gid: h.gid > 0o7777777 ? 0 : h.gid,
    mtime: Math.max(0, Math.min(Math.floor(h.mtime), 0o77777777777)),
    linkname: link.length > 100 ? link.subarray(0, 100) : link,
    devmajor: h.devmajor ?? 0,
    devminor: h.devminor ?? 0,
  });
  if (records.length === 0) return main;
  const data = Buffer.concat(records);
  const paxName = Buffer.from(`PaxHeaders/${h.path.split('/').pop() ?? ''}`.slice(0, 99), 'utf8');
  const paxHdr = ustar({
    name: paxName.subarray(0, 100),
    type: 'x',
    size: data.length,
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: 0,
    linkname: Buffer.alloc(0),
    devmajor: 0,
    devminor: 0,
  });
  return Buffer.concat([paxHdr, data, Buffer.alloc((BLOCK - (data.length % BLOCK)) % BLOCK), main]);
}

/** Zero bytes that pad `size` bytes of member data to a block boundary. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** The end-of-archive marker: two zero blocks. */
export const TAR_END: Buffer = Buffer.alloc(2 * BLOCK);
