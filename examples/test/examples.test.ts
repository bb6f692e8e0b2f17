// Each example is run as its README says, as a separate Node process, on the real kernel.
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const here = join(dirname(fileURLToPath(import.meta.url)), '..');
const notRoot = process.getuid?.() !== 0;

describe.skipIf(notRoot)('examples (need root: they start real containers)', () => {
  it('ci-job.mjs runs a job with limits, prints its log and what it used', async () => {
    const { stdout } = await run('node', [join(here, 'ci-job.mjs'), 'echo building; hostname; seq 1 3'], {
      cwd: here,
    });
    const lines = stdout.trim().split('\n');
    expect(lines.slice(0, 5)).toEqual(['building', 'ci', '1', '2', '3']);
    const report = JSON.parse(lines.at(-1) as string);
    expect(report.status).toBe(0);
    expect(report.oomKilled).toBe(false);
    expect(report.memoryPeakBytes).toBeGreaterThan(0);
    expect(report.cpuMs).toBeGreaterThanOrEqual(0);
  });

  it('ci-job.mjs reports a failing job and its exit status', async () => {
    const err = await run('node', [join(here, 'ci-job.mjs'), 'echo oops >&2; exit 3'], { cwd: here }).then(
      () => undefined,
      (e: { code: number; stdout: string }) => e,
    );
    expect(err?.code).toBe(1);
    const lines = (err?.stdout ?? '').trim().split('\n');
    expect(lines[0]).toBe('oops');
    expect(JSON.parse(lines.at(-1) as string).status).toBe(3);
  });

  it('ci-job.mjs: a job over its memory limit is OOM-killed and says so', async () => {
    // dd allocates its 300 MiB block at once inside a 256 MiB container.
    const err = await run(
      'node',
      [join(here, 'ci-job.mjs'), 'exec dd if=/dev/zero of=/dev/null bs=300M count=1'],
      {
        cwd: here,
      },
    ).then(
      () => undefined,
      (e: { code: number; stdout: string }) => e,
    );
    const report = JSON.parse((err?.stdout ?? '').trim().split('\n').at(-1) as string);
    expect(report.status).toBe(137);
    expect(report.oomKilled).toBe(true);
  });
});
