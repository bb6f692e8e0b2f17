import { describe, expect, it } from 'vitest';
import { CgroupError, resolveCgroupPath } from '../src/index.js';

function errorOf(fn: () => unknown): CgroupError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CgroupError) return err;
    throw err;
  }
  throw new Error('expected a CgroupError');
}

describe('resolveCgroupPath', () => {
  it('uses <parent>/<id> without a cgroupsPath', () => {
    expect(resolveCgroupPath(undefined, 'c1')).toBe('/nsinit/c1');
    expect(resolveCgroupPath('', 'c1')).toBe('/nsinit/c1');
    expect(resolveCgroupPath(undefined, 'c1', '/custom/parent/')).toBe('/custom/parent/c1');
    expect(resolveCgroupPath(undefined, 'c1', '/')).toBe('/c1');
  });

  it('keeps absolute paths, cleaned', () => {
    expect(resolveCgroupPath('/a/b', 'c1')).toBe('/a/b');
    expect(resolveCgroupPath('/a//b/./c/', 'c1')).toBe('/a/b/c');
    expect(resolveCgroupPath('/a/../../b', 'c1')).toBe('/b');
  });

  it('puts relative paths under the parent', () => {
    expect(resolveCgroupPath('a/b', 'c1')).toBe('/nsinit/a/b');
    expect(resolveCgroupPath('c2', 'c1', '/p')).toBe('/p/c2');
    expect(resolveCgroupPath('../../x', 'c1', '/p')).toBe('/x');
  });

  it('rejects the systemd slice syntax with a clear message', () => {
    const e = errorOf(() => resolveCgroupPath('system.slice:nsinit:c1', 'c1'));
    expect(e.code).toBe('Unsupported');
    expect(e.op).toBe('resolve');
    expect(e.message).toMatch(/systemd/);
    expect(e.message).toMatch(/not available/);
  });

  it('rejects unusable input', () => {
    expect(errorOf(() => resolveCgroupPath('/', 'c1')).code).toBe('Invalid');
    expect(errorOf(() => resolveCgroupPath('/..', 'c1')).code).toBe('Invalid');
    expect(errorOf(() => resolveCgroupPath(undefined, 'a/b')).code).toBe('Invalid');
    expect(errorOf(() => resolveCgroupPath(undefined, '..')).code).toBe('Invalid');
    expect(errorOf(() => resolveCgroupPath(undefined, '')).code).toBe('Invalid');
    expect(errorOf(() => resolveCgroupPath('/a\nb', 'c1')).code).toBe('Invalid');
    expect(errorOf(() => resolveCgroupPath(undefined, 'c1', 'relative')).code).toBe('Invalid');
  });
});
