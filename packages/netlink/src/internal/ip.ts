/** IPv4/IPv6 and MAC text <-> bytes, without a C library (inet_pton/ntop rules, RFC 5952 output). */

export interface ParsedIp {
  family: 4 | 6;
  bytes: Buffer;
}

function parseV4(s: string): Buffer | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const b = Buffer.alloc(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i] as string;
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255 || (p.length > 1 && p[0] === '0')) return undefined;
    b[i] = Number(p);
  }
  return b;
}

function parseV6(s: string): Buffer | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(s)) return undefined;
  let groups: number[] = [];
  const pushGroups = (part: string, out: number[]): boolean => {
    if (part === '') return true;
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const it = items[i] as string;
      if (it.includes('.')) {
        if (i !== items.length - 1) return false;
        const v4 = parseV4(it);
        if (!v4) return false;
        out.push(v4.readUInt16BE(0), v4.readUInt16BE(2));
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(it)) return false;
        out.push(Number.parseInt(it, 16));
      }
    }
    return true;
  };
  const dbl = s.indexOf('::');
  if (dbl >= 0) {
    if (s.indexOf('::', dbl + 1) >= 0) return undefined;
    const head: number[] = [];
    const tail: number[] = [];
    if (!pushGroups(s.slice(0, dbl), head) || !pushGroups(s.slice(dbl + 2), tail)) return undefined;
    if (head.length + tail.length > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else if (!pushGroups(s, groups) || groups.length !== 8) {
    return undefined;
  }
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => {
    b.writeUInt16BE(g, i * 2);
  });
  return b;
}

/** Parse an IPv4 or IPv6 address; undefined when it is neither. */
export function parseIp(s: string): ParsedIp | undefined {
  const v4 = parseV4(s);
  if (v4) return { family: 4, bytes: v4 };
  const v6 = parseV6(s);
  return v6 ? { family: 6, bytes: v6 } : undefined;
}

/** Format 4 or 16 address bytes the way inet_ntop does. */
export function formatIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) return Buffer.from(b).toString('hex');
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(((b[i * 2] as number) << 8) | (b[i * 2 + 1] as number));
  // IPv4-mapped (::ffff:a.b.c.d) like glibc.
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  }
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** Parse `addr/len` (or a bare address, full length). */
export function parseCidr(s: string): { family: 4 | 6; bytes: Buffer; prefix: number } | undefined {
  const slash = s.indexOf('/');
  const ip = parseIp(slash < 0 ? s : s.slice(0, slash));
  if (!ip) return undefined;
  const max = ip.family === 4 ? 32 : 128;
  if (slash < 0) return { ...ip, prefix: max };
  const p = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(p) || Number(p) > max) return undefined;
  return { ...ip, prefix: Number(p) };
}

/** Parse `aa:bb:cc:dd:ee:ff`. */
export function parseMac(s: string): Buffer | undefined {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(s)) return undefined;
  return Buffer.from(s.replaceAll(':', ''), 'hex');
}

/** Lower-case colon-separated hex, as `ip` prints hardware addresses. */
export function formatMac(b: Uint8Array): string {
  return Buffer.from(b)
    .toString('hex')
    .replace(/(..)(?!$)/g, '$1:');
}
