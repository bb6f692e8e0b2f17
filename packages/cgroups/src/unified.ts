import { existsSync, type Stats, statSync } from 'node:fs';
import { join } from 'node:path';
import { fieldError } from './errors.js';
import { readFileIfExists } from './fsutil.js';
import { type Plan, write } from './plan.js';

/** The controllers enabled for a cgroup v2 directory (its `cgroup.controllers`). */
export function enabledControllers(dir: string): Set<string> {
  const text = readFileIfExists(join(dir, 'cgroup.controllers')) ?? '';
  return new Set(text.trim().split(/\s+/).filter(Boolean));
}

/**
 * Plan OCI `unified` writes (keys already checked for syntax by `validateResources`): the key must
 * name a writable file of `dir` that belongs to an enabled controller (or one of the allowed
 * `cgroup.*` files). A value of several lines is written line by line, as runc does.
 */
export function planUnified(plan: Plan, dir: string, entries: readonly [string, string][]): void {
  const controllers = enabledControllers(dir);
  const dirExists = existsSync(dir);
  for (const [key, value] of entries) {
    const field = `unified[${JSON.stringify(key)}]`;
    const ctrl = key.slice(0, key.indexOf('.'));
    const file = join(dir, key);
    if (dirExists && ctrl !== 'cgroup' && !controllers.has(ctrl)) {
      throw fieldError(
        field,
        `the ${ctrl} controller is not enabled for ${dir} (not listed in ${join(dir, 'cgroup.controllers')}), so ${key} cannot be written`,
      );
    }
    let st: Stats | undefined;
    try {
      st = statSync(file);
    } catch {
      st = undefined;
    }
    if (dirExists && st === undefined) {
      throw fieldError(
        field,
        `${file} does not exist: not a file of the ${ctrl} controller on this kernel`,
        {
          path: file,
        },
        'NotFound',
      );
    }
    if (st !== undefined && (!st.isFile() || (st.mode & 0o222) === 0)) {
      throw fieldError(field, `${file} is read-only`, { path: file }, 'Invalid');
    }
    const lines = value.split('\n').filter((l) => l.trim() !== '');
    for (const line of lines.length === 0 ? [value] : lines) write(plan, field, dir, key, line);
  }
}
