import { describe, expect, it } from 'vitest';
import { formatIp, formatMac, parseCidr, parseIp, parseMac } from '../src/index.js';

describe('address text', () => {
  it.each([
    ['10.0.0.1', '10.0.0.1'],
    ['::', '::'],
    ['::1', '::1'],
    ['fd00:0:0:0:0:0:0:1', 'fd00::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8:0000:0001:0001:0001:0001:0001', '2001:db8:0:1:1:1:1:1'],
    ['::ffff:10.1.2.3', '::ffff:10.1.2.3'],
    ['fe80::1:2', 'fe80::1:2'],
  ])('%s → %s', (input, out) => {
    const p = parseIp(input);
    expect(p).toBeDefined();
    expect(formatIp(p?.bytes ?? Buffer.alloc(0))).toBe(out);
  });

  it.each(['10.0.0', '10.0.0.256', '01.0.0.1', '1::2::3', 'g::1', '1:2:3:4:5:6:7:8:9', ''])(
    'rejects %s',
    (s) => {
      expect(parseIp(s)).toBeUndefined();
    },
  );

  it('parses CIDRs and MACs', () => {
    expect(parseCidr('10.0.0.0/8')?.prefix).toBe(8);
    expect(parseCidr('fd00::/64')?.prefix).toBe(64);
    expect(parseCidr('10.0.0.1')?.prefix).toBe(32);
    expect(parseCidr('10.0.0.0/33')).toBeUndefined();
    expect(formatMac(parseMac('02:AB:cd:00:00:01') ?? Buffer.alloc(0))).toBe('02:ab:cd:00:00:01');
    expect(parseMac('02:ab:cd')).toBeUndefined();
  });
});
