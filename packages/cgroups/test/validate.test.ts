import { describe, expect, it } from 'vitest';
import { CgroupError, type LinuxResources } from '../src/index.js';
import { V2_FILES, validateResources } from '../src/resources.js';

function invalid(r: unknown, files = undefined as typeof V2_FILES | undefined): CgroupError {
  try {
    validateResources(r as LinuxResources, files);
  } catch (err) {
    if (err instanceof CgroupError) return err;
    throw err;
  }
  throw new Error('expected validation to fail');
}

describe('validateResources', () => {
  it('names the field and the file for non-integers', () => {
    const e = invalid({ memory: { limit: 1.5 } });
    expect(e.code).toBe('Invalid');
    expect(e.message).toMatch(/^linux\.resources\.memory\.limit: must be an integer/);
    expect(e.message).toContain('memory.limit_in_bytes');
    expect(invalid({ memory: { limit: 1.5 } }, V2_FILES).message).toContain('memory.max');
  });

  it('rejects negatives except -1 where OCI allows unlimited', () => {
    expect(invalid({ memory: { limit: -2 } }).message).toMatch(/memory\.limit: must be >= 0 or -1/);
    expect(invalid({ cpu: { shares: -1 } }).message).toMatch(/cpu\.shares: must be >= 0/);
    expect(invalid({ cpu: { period: -1 } }).message).toMatch(/cpu\.period: must be >= 0/);
    expect(invalid({ cpu: { quota: -5 } }).message).toMatch(/cpu\.quota: .*-1/);
    expect(invalid({ pids: { limit: -2 } }).message).toMatch(/pids\.limit/);
    const ok = validateResources({
      memory: { limit: -1, swap: -1 },
      cpu: { quota: -1 },
      pids: { limit: -1 },
    });
    expect(ok.memory).toEqual({ limit: -1, swap: -1 });
    expect(ok.cpu).toEqual({ quota: -1 });
    expect(ok.pids).toBe('max');
    expect(validateResources({ pids: { limit: 0 } }).pids).toBe('max');
    expect(validateResources({ pids: { limit: 7 } }).pids).toBe('7');
  });

  it('rejects overflow and wrong types', () => {
    expect(invalid({ memory: { limit: 2 ** 63 } }).message).toMatch(/memory\.limit: .*overflows/);
    expect(invalid({ memory: { limit: '100' } }).message).toMatch(/memory\.limit: must be a number/);
    expect(invalid({ memory: { swappiness: 101 } }).message).toMatch(
      /memory\.swappiness: must be at most 100/,
    );
    expect(invalid({ memory: { disableOOMKiller: 1 } }).message).toMatch(
      /disableOOMKiller: must be a boolean/,
    );
    expect(invalid({ cpu: { cpus: '0-1; rm' } }).message).toMatch(/cpu\.cpus: must be a list/);
    expect(invalid({ devices: {} }).message).toMatch(/devices: must be an array/);
  });

  it('checks swap against the limit', () => {
    expect(invalid({ memory: { limit: 100, swap: 50 } }).message).toMatch(/memory\.swap: .*>= memory\.limit/);
    expect(invalid({ memory: { limit: -1, swap: 50 } }).message).toMatch(/memory\.swap: must be -1/);
  });

  it('validates device rules and fills defaults', () => {
    expect(invalid({ devices: [{ allow: true, access: 'rx' }] }).message).toMatch(/devices\[0\]\.access/);
    expect(invalid({ devices: [{ allow: true, type: 'x' }] }).message).toMatch(/devices\[0\]\.type/);
    expect(invalid({ devices: [{ type: 'c' }] }).message).toMatch(/devices\[0\]\.allow: is required/);
    expect(invalid({ devices: [{ allow: true, major: 1.5 }] }).message).toMatch(
      /devices\[0\]\.major: must be an integer/,
    );
    const ok = validateResources({
      devices: [{ allow: false }, { allow: true, type: 'c', major: 1, minor: -1 }],
    });
    expect(ok.devices).toEqual([
      { allow: false, type: 'a', major: '*', minor: '*', access: 'rwm' },
      { allow: true, type: 'c', major: '1', minor: '*', access: 'rwm' },
    ]);
  });

  it('treats 0 and empty strings as unset, like runc', () => {
    const ok = validateResources({ memory: { limit: 0, swappiness: 0 }, cpu: { shares: 0, cpus: '' } });
    expect(ok.memory).toEqual({ swappiness: 0 });
    expect(ok.cpu).toEqual({});
  });
});
