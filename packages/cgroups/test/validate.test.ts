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

  it('validates cpu idle/burst and the memory extras', () => {
    expect(invalid({ cpu: { idle: 2 } }).message).toBe(
      'linux.resources.cpu.idle: must be 0 or 1, got 2 (written to cpu.idle)',
    );
    expect(invalid({ cpu: { burst: -1 } }).message).toMatch(/cpu\.burst: must be >= 0/);
    expect(invalid({ memory: { kernel: -3 } }).message).toMatch(/memory\.kernel: must be >= 0 or -1.*kmem/);
    expect(invalid({ memory: { checkBeforeUpdate: 'yes' } }).message).toMatch(
      /checkBeforeUpdate: must be a boolean/,
    );
    const ok = validateResources({
      cpu: { idle: 0, burst: 0 },
      memory: { kernelTCP: -1, useHierarchy: false, checkBeforeUpdate: true },
    });
    expect(ok.cpu).toEqual({ idle: 0, burst: 0 }); // 0 is a value for idle and burst
    expect(ok.memory).toEqual({ kernelTCP: -1, useHierarchy: false, checkBeforeUpdate: true });
  });

  it('validates blockIO: weights 10..1000, device numbers, required rates', () => {
    expect(invalid({ blockIO: { weight: 5 } }).message).toBe(
      'linux.resources.blockIO.weight: must be 10..1000, got 5 (written to blkio.weight)',
    );
    expect(invalid({ blockIO: { weight: 5 } }, V2_FILES).message).toMatch(/io\.bfq\.weight or io\.weight/);
    expect(invalid({ blockIO: { leafWeight: 1001 } }).message).toMatch(
      /blockIO\.leafWeight: must be 10\.\.1000/,
    );
    expect(invalid({ blockIO: { weightDevice: [{ major: 8, minor: 0 }] } }).message).toMatch(
      /blockIO\.weightDevice\[0\]: needs a weight or a leafWeight/,
    );
    expect(invalid({ blockIO: { weightDevice: [{ minor: 0, weight: 100 }] } }).message).toMatch(
      /blockIO\.weightDevice\[0\]\.major: is required/,
    );
    expect(
      invalid({ blockIO: { throttleWriteIOPSDevice: [{ major: 4096, minor: 0, rate: 1 }] } }).message,
    ).toBe(
      'linux.resources.blockIO.throttleWriteIOPSDevice[0].major: must be 0..4095, got 4096 (written to blkio.throttle.write_iops_device)',
    );
    expect(invalid({ blockIO: { throttleReadBpsDevice: {} } }).message).toMatch(
      /throttleReadBpsDevice: must be an array/,
    );
    const ok = validateResources({
      blockIO: { weight: 0, throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 0 }] },
    }).blockIO;
    expect(ok.weight).toBeUndefined(); // 0 = unset, as in runc
    expect(ok.throttle.throttleReadBpsDevice).toEqual([{ major: 8, minor: 0, rate: 0 }]);
  });

  it('validates hugepageLimits, network and rdma', () => {
    expect(invalid({ hugepageLimits: [{ pageSize: '2M', limit: 1 }] }).message).toMatch(
      /hugepageLimits\[0\]\.pageSize: must be a size such as "2MB"/,
    );
    expect(invalid({ hugepageLimits: [{ pageSize: '2MB' }] }).message).toMatch(
      /hugepageLimits\[0\]\.limit: is required/,
    );
    expect(
      invalid({
        hugepageLimits: [
          { pageSize: '2MB', limit: 1 },
          { pageSize: '2MB', limit: 2 },
        ],
      }).message,
    ).toMatch(/hugepageLimits\[1\]\.pageSize: 2MB is listed twice/);
    expect(invalid({ network: { classID: 2 ** 32 } }).message).toMatch(
      /network\.classID: must be at most 4294967295/,
    );
    expect(invalid({ network: { priorities: [{ name: 'eth 0', priority: 1 }] } }).message).toMatch(
      /network\.priorities\[0\]\.name: must be a network interface name/,
    );
    expect(invalid({ rdma: { 'mlx5 0': { hcaHandles: 1 } } }).message).toMatch(
      /rdma\["mlx5 0"\]: must be an RDMA device name/,
    );
    expect(invalid({ rdma: { mlx5_0: {} } }).message).toBe(
      'linux.resources.rdma["mlx5_0"]: needs hcaHandles or hcaObjects (written to rdma.max)',
    );
    expect(invalid({ devices: [{ allow: true, major: 5000 }] }).message).toMatch(
      /devices\[0\]\.major: must be -1 \(all\) or 0\.\.4095/,
    );
    const ok = validateResources({
      hugepageLimits: [{ pageSize: '1GB', limit: -1 }],
      network: { classID: 0, priorities: [{ name: 'eth0', priority: 0 }] },
      rdma: { mlx5_0: { hcaObjects: 0 } },
      unified: { 'memory.high': '1', 'cgroup.max.depth': '2' },
    });
    expect(ok.hugepageLimits).toEqual([{ pageSize: '1GB', limit: -1 }]);
    expect(ok.network).toEqual({ classID: 0, priorities: [{ name: 'eth0', priority: 0 }] });
    expect(ok.rdma).toEqual([{ device: 'mlx5_0', hcaObjects: 0 }]);
    expect(ok.unified).toEqual([
      ['memory.high', '1'],
      ['cgroup.max.depth', '2'],
    ]);
  });

  it('errors carry the field', () => {
    const e = invalid({ blockIO: { weightDevice: [{ major: 1, minor: 1, weight: 1 }] } });
    expect(e.field).toBe('blockIO.weightDevice[0].weight');
    expect(e.code).toBe('Invalid');
  });
});
