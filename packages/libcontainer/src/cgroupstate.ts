/**
 * Helpers of the cgroup operations of {@link Container} (pause, resume, stats, events, update): the
 * container's cgroup or a clear `Unsupported` error, the freezer check of the live status, and
 * CgroupErrors turned into ContainerErrors.
 */
import { CgroupError, type CgroupManager, openCgroup } from '@tsc/cgroups';
import { ContainerError, type ContainerErrorCode } from './errors.js';
import type { StoredState } from './state.js';

/**
 * The cgroup of a container, for operation `what` ("pause", "stats", …).
 * @throws {ContainerError} `Unsupported` when the container has none (rootless without a delegated cgroup)
 */
export function requireCgroup(s: StoredState, what: string): CgroupManager {
  if (!s.cgroupPath) {
    throw new ContainerError(
      'Unsupported',
      `cannot ${what} container "${s.id}": it has no cgroup (a rootless container without a delegated cgroup)`,
      { id: s.id },
    );
  }
  return openCgroup({ path: s.cgroupPath });
}

/** Whether the container's cgroup is frozen (its freezer says FROZEN); false without a cgroup or freezer. */
export function cgroupFrozen(s: StoredState): boolean {
  if (!s.cgroupPath) return false;
  try {
    return openCgroup({ path: s.cgroupPath }).state() === 'frozen';
  } catch {
    return false;
  }
}

const CODES: Record<string, ContainerErrorCode> = {
  Invalid: 'InvalidArgument',
  NotFound: 'InvalidState',
  Unsupported: 'Unsupported',
  Busy: 'System',
  PermissionDenied: 'System',
  System: 'System',
};

/** A failure of cgroup operation `what` on container `id`, as one ContainerError line. */
export function cgroupFailure(id: string, what: string, e: unknown): ContainerError {
  if (e instanceof ContainerError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const code = e instanceof CgroupError ? (CODES[e.code] ?? 'System') : 'System';
  return new ContainerError(code, `${what} container "${id}": ${msg}`, { id, cause: e });
}
