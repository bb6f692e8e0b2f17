#!/usr/bin/env node
import { execFileSync } from 'node:child_process';
// A CI runner's view of @tsc/libcontainer: run one shell job in a throwaway busybox container
// with memory, pids and CPU limits, its output in a log file, and report the exit status and what
// the job used (from the container's cgroup, read before it is deleted).
//
//   node examples/ci-job.mjs 'echo building; seq 1 3; exit 3'      (as root)
//
// Prints the log, then one JSON line: { status, signal, oomKilled, cpuMs, memoryPeakBytes, pids }.
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Container, defaultSpec } from '@tsc/libcontainer';

const job = process.argv[2];
if (!job) {
  console.error('usage: node examples/ci-job.mjs SHELL-COMMAND');
  process.exit(2);
}

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const work = mkdtempSync(join(tmpdir(), 'tsc-ci-job-'));
const bundle = join(work, 'bundle');
execFileSync('sh', [join(repo, 'scripts/build-rootfs.sh'), join(bundle, 'rootfs')], { stdio: 'ignore' });

// runc's default config, made non-interactive, with the job and its limits.
const spec = defaultSpec({ args: ['sh', '-c', job] });
spec.process.terminal = false;
spec.hostname = 'ci';
spec.linux.resources = {
  ...spec.linux.resources,
  memory: { limit: 256 * 1024 * 1024 },
  pids: { limit: 128 },
  cpu: { quota: 100_000, period: 100_000 }, // one CPU
};
writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));

const logFile = join(work, 'job.log');
const log = openSync(logFile, 'w');
const id = `ci-${randomBytes(4).toString('hex')}`;
let container;
try {
  const run = await Container.run({ id, bundle, stdio: ['ignore', log, log] });
  container = run.container;
  const exit = await run.exited;
  const stats = container.stats(); // the cgroup outlives the job until delete
  process.stdout.write(readFileSync(logFile, 'utf8'));
  console.log(
    JSON.stringify({
      status: exit.status,
      signal: exit.signal ?? null,
      oomKilled: exit.status === 137 && (stats.memory?.failcnt ?? 0) > 0,
      cpuMs: Math.round((stats.cpu?.usage.total ?? 0) / 1e6),
      memoryPeakBytes: stats.memory?.maxUsage || stats.memory?.usage || null,
      pids: stats.pids?.current ?? null,
    }),
  );
  process.exitCode = exit.status === 0 ? 0 : 1;
} finally {
  closeSync(log);
  await container?.delete({ force: true });
  rmSync(work, { recursive: true, force: true });
}
