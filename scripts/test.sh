#!/usr/bin/env bash
# Run every test: set up (Debian packages, pnpm, dependencies, build), then
# lint, typecheck and the test suites of every package, as root on this kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TURBO_TELEMETRY_DISABLED=1
pnpm run lint
pnpm run typecheck
pnpm run test
# cgroup v2 with controllers: Debian's 6.1 kernel in qemu (TCG) with cgroup_no_v1=all. Two boots:
# the checks of vm/guest-tests.mjs, then the cgroups package's own vitest suite; both always run.
vm_rc=0
bash vm/run.sh || vm_rc=1
bash vm/run.sh vitest:cgroups || vm_rc=1
exit "$vm_rc"
