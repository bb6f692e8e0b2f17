#!/bin/sh
# CLI start-up, side by side with hyperfine: `nsinit run`, `crun run`, `runc run` of a busybox bundle
# whose process is `true`, and bare `node -e 0`.
#
# Usage: sh bench/cli-start.sh          (as root; BENCH_RUNS=N sets the runs, default 30)
# Writes bench/results/cli-start.md (--export-markdown) and bench/results/cli-start.json.
#
# hyperfine runs the commands without a shell (-N), so every run of a runtime reuses one container
# id: `run` deletes the container when it exits, and hyperfine stops at the first non-zero exit.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
runs=${BENCH_RUNS:-30}
results="$here/results"
cli_dir="$here/node_modules/@tsc/cli"
unified=/sys/fs/cgroup/unified
hugetlb=/sys/fs/cgroup/hugetlb

die() { echo "cli-start: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root"
for c in hyperfine crun runc node; do command -v "$c" >/dev/null || die "$c not found on PATH"; done
node=$(command -v node)
# `nsinit` exactly as @tsc/cli ships it: its package.json "bin".
nsinit=$(cd "$cli_dir" 2>/dev/null && "$node" -p 'const b = require("./package.json").bin; require("node:path").resolve(typeof b === "string" ? b : b.nsinit)') ||
  die "$cli_dir: no @tsc/cli package: run pnpm install"
[ -x "$nsinit" ] || die "$nsinit is missing: build first (pnpm -r run build)"
crun=$(command -v crun)
runc=$(command -v runc)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tsc-cli-bench-XXXXXX")
mounted_hugetlb=
created_hugetlb_dir=
children_before=

cleanup() {
  for rt in nsinit crun runc; do
    if [ -d "$tmp/state/$rt" ]; then
      case $rt in
      nsinit) "$nsinit" --root "$tmp/state/nsinit" delete -f "cli-nsinit" >/dev/null 2>&1 || true ;;
      *) "$rt" --root "$tmp/state/$rt" delete -f "cli-$rt" >/dev/null 2>&1 || true ;;
      esac
    fi
  done
  rm -rf "$tmp"
  if [ -n "$mounted_hugetlb" ] && [ -z "${BENCH_KEEP_HUGETLB:-}" ]; then
    # Remove the empty parent cgroups the runtimes left behind (nsinit keeps /nsinit), then unmount.
    for d in "$hugetlb"/*/; do
      [ -d "$d" ] || continue
      n=$(basename "$d")
      case " $children_before " in *" $n "*) continue ;; esac
      rmdir "$d" 2>/dev/null || true
    done
    if umount "$hugetlb"; then
      [ -z "$created_hugetlb_dir" ] || rmdir "$hugetlb"
      if grep -qw hugetlb "$unified/cgroup.controllers"; then
        echo "NOTE: unmounted $hugetlb; hugetlb is back in cgroup2."
      else
        echo "NOTE: unmounted $hugetlb, but the kernel keeps the hugetlb v1 hierarchy (child cgroups or" \
          "a mount in another namespace), so cgroup2 does not hold hugetlb for now."
      fi
    fi
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The bundle: busybox rootfs, and the config of defaultSpec({ args: ['true'] }) with terminal off.
# ociVersion 1.0.2 because crun 1.8 rejects "1.2.0" ("unknown version specified").
mkdir -p "$tmp/bundle" "$tmp/state/nsinit" "$tmp/state/crun" "$tmp/state/runc"
"$repo/scripts/build-rootfs.sh" "$tmp/bundle/rootfs"
(cd "$here" && "$node" --input-type=module -e "
  import { defaultSpec } from '@tsc/libcontainer';
  const s = defaultSpec({ args: ['true'] });
  s.process.terminal = false;
  s.ociVersion = '1.0.2';
  process.stdout.write(JSON.stringify(s, null, 2));
" >"$tmp/bundle/config.json")

# crun 1.8 refuses a hybrid host whose cgroup2 mount holds a controller (here: hugetlb).
if [ -f "$unified/cgroup.controllers" ]; then
  held=$(cat "$unified/cgroup.controllers")
  if [ -n "$held" ]; then
    [ "$held" = hugetlb ] || die "cgroup2 at $unified holds '$held': crun 1.8 refuses that; only hugetlb is moved here"
    if ! grep -q ' - cgroup .*[ ,]hugetlb' /proc/self/mountinfo; then
      [ -d "$hugetlb" ] || { mkdir "$hugetlb" && created_hugetlb_dir=1; }
      mount -t cgroup -o hugetlb cgroup "$hugetlb" ||
        die "mounting a v1 hugetlb hierarchy at $hugetlb failed (hugetlb enabled in a cgroup.subtree_control?)"
      mounted_hugetlb=1
      children_before=$(cd "$hugetlb" && for d in */; do [ -d "$d" ] && printf '%s ' "${d%/}"; done; true)
      echo "NOTE: mounted a cgroup v1 hugetlb hierarchy at $hugetlb (cgroup2 held hugetlb, which crun 1.8" \
        "refuses on a hybrid host); all runtimes now also use it.$([ -n "${BENCH_KEEP_HUGETLB:-}" ] &&
          echo ' It stays mounted (BENCH_KEEP_HUGETLB).' || echo ' It is unmounted at the end.')"
    fi
  fi
fi

ns_cmd="$nsinit --root $tmp/state/nsinit run -b $tmp/bundle cli-nsinit"
crun_cmd="$crun --root $tmp/state/crun run -b $tmp/bundle cli-crun"
runc_cmd="$runc --root $tmp/state/runc run -b $tmp/bundle cli-runc"
node_cmd="$node -e 0"

# Every command must work before anything is measured.
for cmd in "$ns_cmd" "$crun_cmd" "$runc_cmd" "$node_cmd"; do
  # shellcheck disable=SC2086 # the commands are word lists without spaces inside words
  $cmd </dev/null >/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; die "does not work here: $cmd"; }
done

mkdir -p "$results"
hyperfine -N --warmup 3 --runs "$runs" \
  --export-markdown "$results/cli-start.md" --export-json "$results/cli-start.json" \
  -n 'nsinit run' "$ns_cmd" \
  -n 'crun run' "$crun_cmd" \
  -n 'runc run' "$runc_cmd" \
  -n 'node -e 0' "$node_cmd"
echo "results: $results/cli-start.md, $results/cli-start.json"
