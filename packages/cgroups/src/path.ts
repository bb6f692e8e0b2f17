import { posix } from 'node:path';
import { CgroupError } from './errors.js';

/** The parent cgroup used for relative and absent `cgroupsPath` values. */
export const DEFAULT_PARENT = '/nsinit';

function resolveError(code: 'Invalid' | 'Unsupported', message: string): CgroupError {
  return new CgroupError(code, 'resolve', message);
}

function checkChars(what: string, value: string): void {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f]/.test(value)) {
    throw resolveError('Invalid', `${what} ${JSON.stringify(value)} contains control characters`);
  }
}

/** Lexically clean an absolute path; `..` cannot climb above `/` (like runc's CleanPath). */
function clean(p: string): string {
  return posix.normalize(`/${p}`).replace(/\/+$/, '') || '/';
}

/**
 * Turn the OCI `linux.cgroupsPath` (or none) into a cgroup path such as `/nsinit/c1`.
 *
 * - absent or empty: `<parent>/<id>`;
 * - absolute (`/a/b`): cleaned, used as is;
 * - relative (`a/b`): placed under `parent` (`/nsinit/a/b`);
 * - systemd slice syntax (`slice:prefix:name`): rejected, the systemd driver is not available.
 *
 * @param cgroupsPath - `linux.cgroupsPath` from config.json
 * @param id - the container id, used when `cgroupsPath` is absent
 * @param parent - absolute parent for relative and absent paths, `/nsinit` by default
 * @throws CgroupError `Unsupported` for systemd syntax, `Invalid` for unusable input (op `resolve`)
 */
export function resolveCgroupPath(
  cgroupsPath: string | undefined,
  id: string,
  parent: string = DEFAULT_PARENT,
): string {
  checkChars('cgroup parent', parent);
  if (!parent.startsWith('/')) {
    throw resolveError('Invalid', `cgroup parent ${JSON.stringify(parent)} must be an absolute path`);
  }
  const cleanParent = clean(parent);
  if (cgroupsPath === undefined || cgroupsPath === '') {
    checkChars('container id', id);
    if (id === '' || id === '.' || id === '..' || id.includes('/')) {
      throw resolveError(
        'Invalid',
        `container id ${JSON.stringify(id)} cannot be used as a cgroup name (empty, "." or "..", or contains "/")`,
      );
    }
    return cleanParent === '/' ? `/${id}` : `${cleanParent}/${id}`;
  }
  checkChars('cgroupsPath', cgroupsPath);
  if (!cgroupsPath.startsWith('/') && cgroupsPath.split(':').length === 3) {
    throw resolveError(
      'Unsupported',
      `cgroupsPath ${JSON.stringify(cgroupsPath)} uses the systemd "slice:prefix:name" syntax, but the systemd ` +
        'cgroup driver is not available; use a path such as "/mycontainers/c1" (absolute) or "c1" (relative)',
    );
  }
  const resolved = cgroupsPath.startsWith('/') ? clean(cgroupsPath) : clean(`${cleanParent}/${cgroupsPath}`);
  if (resolved === '/') {
    throw resolveError(
      'Invalid',
      `cgroupsPath ${JSON.stringify(cgroupsPath)} resolves to the root cgroup, which cannot be managed`,
    );
  }
  return resolved;
}

/** Check a cgroup path given to `openCgroup`: absolute, clean, not the root. */
export function checkCgroupPath(p: string): string {
  checkChars('cgroup path', p);
  if (!p.startsWith('/')) {
    throw resolveError(
      'Invalid',
      `cgroup path ${JSON.stringify(p)} must be absolute (see resolveCgroupPath)`,
    );
  }
  const c = clean(p);
  if (c === '/') throw resolveError('Invalid', 'the root cgroup "/" cannot be managed');
  return c;
}
