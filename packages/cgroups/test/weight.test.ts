import { describe, expect, it } from 'vitest';
import { sharesToWeight } from '../src/index.js';
import { swapMaxV2 } from '../src/v2.js';

describe('sharesToWeight', () => {
  it('pins the ends and the default', () => {
    expect(sharesToWeight(2)).toBe(1);
    expect(sharesToWeight(1024)).toBe(100);
    expect(sharesToWeight(262144)).toBe(10000);
  });

  it('handles unset and out-of-range shares', () => {
    expect(sharesToWeight(0)).toBe(0);
    expect(sharesToWeight(1)).toBe(1);
    expect(sharesToWeight(1_000_000)).toBe(10000);
  });

  it('is monotonic and within 1..10000', () => {
    let prev = 0;
    for (let s = 2; s <= 262144; s += 499) {
      const w = sharesToWeight(s);
      expect(w).toBeGreaterThanOrEqual(prev);
      expect(w).toBeGreaterThanOrEqual(1);
      expect(w).toBeLessThanOrEqual(10000);
      prev = w;
    }
  });

  it('matches known values of the formula', () => {
    expect(sharesToWeight(512)).toBe(59);
    expect(sharesToWeight(2048)).toBe(174);
  });
});

describe('swapMaxV2 (OCI memory+swap to memory.swap.max)', () => {
  it('converts', () => {
    expect(swapMaxV2(200, 100)).toBe('100');
    expect(swapMaxV2(100, 100)).toBe('0');
    expect(swapMaxV2(-1, 100)).toBe('max');
    expect(swapMaxV2(undefined, -1)).toBe('max');
    expect(swapMaxV2(undefined, 100)).toBeUndefined();
  });

  it('rejects swap below the limit or without a limit', () => {
    expect(() => swapMaxV2(50, 100)).toThrow(/linux\.resources\.memory\.swap: .*>= memory\.limit/);
    expect(() => swapMaxV2(50, undefined)).toThrow(/without a memory limit/);
  });
});
