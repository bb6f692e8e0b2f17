import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CgroupError, fieldError, fieldName } from './errors.js';
import { writeFile } from './fsutil.js';
import type { ApplyResult } from './resources.js';

/** One file write of a plan. */
export interface WriteStep {
  kind: 'write';
  /** The OCI field it implements, e.g. `memory.limit` (for error messages). */
  field: string;
  dir: string;
  file: string;
  data: string;
  /**
   * If the kernel answers EINVAL, retry once right after the write of this file (runc's order
   * dance: a smaller `cpu.cfs_period_us` can be refused until `cpu.cfs_quota_us` is lowered).
   */
  retryAfter?: string;
  /**
   * Runs after a successful write with the file's path. Returns a reason when the kernel accepted
   * but ignored the value (the write is then reported in `skipped`), throws to reject it.
   */
  check?: (file: string) => string | undefined;
}

/** Something other than a file write, e.g. loading an eBPF program. */
export interface ActionStep {
  kind: 'action';
  field: string;
  /** What `applied` records, e.g. `"bpf:cgroup_device=12 insns"`. */
  label: string;
  run(): void;
}

export type Step = WriteStep | ActionStep;

/** Everything `apply()` will do, decided (and validated) before the first write. */
export interface Plan {
  steps: Step[];
  skipped: ApplyResult['skipped'];
}

export function newPlan(): Plan {
  return { steps: [], skipped: [] };
}

/** Add a write step. */
export function write(
  plan: Plan,
  field: string,
  dir: string,
  file: string,
  data: string,
  extra: Pick<WriteStep, 'retryAfter' | 'check'> = {},
): void {
  plan.steps.push({ kind: 'write', field, dir, file, data, ...extra });
}

/** Record a requested resource that is not enforced, with the reason. */
export function skip(plan: Plan, field: string, reason: string): void {
  plan.skipped.push({ resource: field, reason });
}

/**
 * Check that every file a plan writes exists, so a missing file (a cgroup that was not created, a
 * controller knob this kernel lacks) is reported before anything is written.
 */
export function checkPlanFiles(plan: Plan): void {
  const missingDirs = new Set<string>();
  for (const s of plan.steps) {
    if (s.kind !== 'write') continue;
    const file = join(s.dir, s.file);
    if (existsSync(file)) continue;
    const dirMissing = missingDirs.has(s.dir) || !existsSync(s.dir);
    if (dirMissing) missingDirs.add(s.dir);
    const why = dirMissing
      ? `the cgroup directory ${s.dir} does not exist (create() it first)`
      : 'the kernel does not provide this file here';
    throw new CgroupError(
      'NotFound',
      'write',
      `${fieldName(s.field)}: cannot write "${s.data}" to ${file}: ENOENT (${why}); nothing was written`,
      { path: file, errno: 'ENOENT', data: s.data, field: s.field },
    );
  }
}

/** Re-throw a write failure with the OCI field in front. */
function withField(err: unknown, field: string): unknown {
  if (!(err instanceof CgroupError) || err.op !== 'write' || err.field !== undefined) return err;
  const details: ConstructorParameters<typeof CgroupError>[3] = { cause: err.cause ?? err };
  if (err.path !== undefined) details.path = err.path;
  if (err.errno !== undefined) details.errno = err.errno;
  if (err.data !== undefined) details.data = err.data;
  return fieldError(field, err.message, details, err.code);
}

/** Run the steps in order, recording them in `result`. */
export function runPlan(plan: Plan, result: ApplyResult): void {
  result.skipped.push(...plan.skipped);
  const deferred = new Map<string, { step: WriteStep; err: unknown }[]>();
  const doWrite = (s: WriteStep): void => {
    const file = join(s.dir, s.file);
    writeFile(file, s.data);
    const ignored = s.check?.(file);
    if (ignored === undefined) result.applied.push(`${s.file}=${s.data}`);
    else result.skipped.push({ resource: s.field, reason: ignored });
  };
  for (const s of plan.steps) {
    try {
      if (s.kind === 'action') {
        s.run();
        result.applied.push(s.label);
        continue;
      }
      try {
        doWrite(s);
      } catch (err) {
        if (s.retryAfter === undefined || !(err instanceof CgroupError) || err.errno !== 'EINVAL') throw err;
        const list = deferred.get(s.retryAfter) ?? [];
        list.push({ step: s, err });
        deferred.set(s.retryAfter, list);
        continue;
      }
      for (const d of deferred.get(s.file) ?? []) {
        try {
          doWrite(d.step);
        } catch (err) {
          throw withField(err, d.step.field);
        }
      }
      deferred.delete(s.file);
    } catch (err) {
      throw withField(err, s.field);
    }
  }
  for (const list of deferred.values()) {
    const first = list[0];
    if (first !== undefined) throw withField(first.err, first.step.field);
  }
}
