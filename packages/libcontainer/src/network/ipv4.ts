import { ContainerError } from '../errors.js';

/** An IPv4 subnet in numbers. */
export interface Subnet {
  /** Network address as an unsigned 32-bit number. */
  base: number;
  prefix: number;
  /** Number of addresses. */
  size: number;
  /** `a.b.c.d/p` normalised. */
  cidr: string;
}

export function ipToNum(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return (
    (((parts[0] as number) << 24) |
      ((parts[1] as number) << 16) |
      ((parts[2] as number) << 8) |
      (parts[3] as number)) >>>
    0
  );
}

export function numToIp(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** Parse an IPv4 subnet (`172.29.0.0/16`); between /8 and /30. */
export function parseSubnet(s: string): Subnet {
  const [ip, p] = s.split('/');
  const base = ipToNum(ip ?? '');
  const prefix = Number(p);
  if (base === undefined || !/^\d+$/.test(p ?? '') || prefix < 8 || prefix > 30) {
    throw new ContainerError(
      'InvalidArgument',
      `invalid subnet "${s}": expected an IPv4 network A.B.C.D/8 to /30`,
    );
  }
  const size = 2 ** (32 - prefix);
  const net = (base - (base % size)) >>> 0;
  if (net !== base) {
    throw new ContainerError(
      'InvalidArgument',
      `invalid subnet "${s}": host bits are set (did you mean ${numToIp(net)}/${prefix}?)`,
    );
  }
  return { base, prefix, size, cidr: `${numToIp(base)}/${prefix}` };
}

/** The gateway: the first host address. */
export function gatewayOf(n: Subnet): string {
  return numToIp(n.base + 1);
}

/** A locally administered MAC derived from the IPv4 address (as Docker does: 02:42:a.b.c.d). */
export function macOf(ip: string): string {
  const n = ipToNum(ip) ?? 0;
  const b = [0x02, 0x42, n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}
