#!/usr/bin/env bash
# Boot Debian 12's own 6.1 kernel in qemu (TCG) with cgroup_no_v1=all and run vm/guest-tests.mjs
# against the built packages. Run after `pnpm -r build`. See vm/README.md.
#
#   vm/run.sh [TEST-SELECTION]
#     TEST-SELECTION: a regex on the names of the checks in vm/guest-tests.mjs ('memory|container'),
#     or vitest[:PKGS[:FILTER]] to run the project's own vitest files instead (vitest:cgroups:v2-kernel)
#
# Environment: TSC_VM_TIMEOUT (seconds for the whole boot, default 600), TSC_VM_SMP (2),
# TSC_VM_MEM (2048), TSC_VM_APPEND (more kernel parameters), TSC_VM_STRICT=1 (count known issues, "# TODO" checks, as failures), TSC_VM_KERNEL (a bzImage; its modules must be under /lib/modules or
# TSC_VM_MODBASE/lib/modules), TSC_VM_NO_BUILD=1 (reuse vm/build/initramfs.cpio.gz).
# Exit 0 only if the guest printed "VM-TESTS: N passed, 0 failed" with N >= 1.
set -euo pipefail
VM=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$VM")
BUILD=$VM/build
TIMEOUT=${TSC_VM_TIMEOUT:-600}
SELECT=${1:-}
mkdir -p "$BUILD"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
log() { echo "run.sh: $*" >&2; }
T0=$(now)

# ---- host packages ----------------------------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
if ! /bin/busybox --list >/dev/null 2>&1 || [[ "$(ldd /bin/busybox 2>&1 || true)" != *"not a dynamic"* ]]; then
  need+=(busybox-static)
fi
command -v cpio >/dev/null || need+=(cpio)
command -v file >/dev/null || need+=(file)
command -v modinfo >/dev/null || need+=(kmod)
[ -x /usr/bin/rdma ] || need+=(iproute2) # rdma: the soft-RoCE device of the rdma check
apt_updated=
apt_update() { [ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }; }
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt_update
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# ---- the 6.1 kernel ---------------------------------------------------------------------------
# Use an installed one (linux-image-amd64 on Debian 12) if present. Otherwise fetch the package
# linux-image-amd64 depends on and unpack it under vm/build/kernel: the same files without running
# its postinst (update-initramfs, /vmlinuz symlinks), which takes minutes and changes the host.
MODBASE=${TSC_VM_MODBASE:-/}
KERNEL=${TSC_VM_KERNEL:-}
if [ "$KERNEL" = fetch ]; then
  KERNEL= # force the download below (or reuse vm/build/kernel)
elif [ -z "$KERNEL" ]; then
  for k in /boot/vmlinuz-6.1.*; do
    [ -f "$k" ] && [ -d "/lib/modules/${k#/boot/vmlinuz-}" ] && KERNEL=$k
  done
fi
if [ -z "$KERNEL" ]; then
  for k in "$BUILD"/kernel/boot/vmlinuz-6.1.*; do [ -f "$k" ] && KERNEL=$k && MODBASE=$BUILD/kernel; done
fi
if [ -z "$KERNEL" ]; then
  apt_update
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-6\.1/ { print $2; exit }')
  [ -n "$pkg" ] || { log "cannot resolve linux-image-amd64 to a 6.1 kernel package"; exit 2; }
  log "fetching $pkg (unpacked into vm/build/kernel, not installed)"
  rm -rf "$BUILD/kernel" "$BUILD/kernel-deb" && mkdir -p "$BUILD/kernel-deb"
  (cd "$BUILD/kernel-deb" && apt-get download -qq "$pkg")
  dpkg-deb -x "$BUILD"/kernel-deb/*.deb "$BUILD/kernel"
  rm -rf "$BUILD/kernel-deb"
  for k in "$BUILD"/kernel/boot/vmlinuz-6.1.*; do [ -f "$k" ] && KERNEL=$k && MODBASE=$BUILD/kernel; done
  [ -n "$KERNEL" ] || { log "no vmlinuz in $pkg"; exit 2; }
fi
KVER=${KERNEL##*/vmlinuz-}
T1=$(now)

# ---- initramfs --------------------------------------------------------------------------------
# TEST-SELECTION "vitest[:PKGS[:FILTER]]" runs the project's vitest suites of PKGS (comma-separated,
# default cgroups) instead of guest-tests.mjs; the initramfs then also holds vitest (~15 MiB more).
IMG=$BUILD/initramfs.cpio.gz
build_args=()
vitest_pkgs=
if [[ "$SELECT" == vitest* ]]; then
  IFS=: read -r _ vitest_pkgs vitest_filter <<<"$SELECT"
  vitest_pkgs=${vitest_pkgs:-cgroups}
  IMG=$BUILD/initramfs-vitest.cpio.gz
  build_args=(--vitest "$vitest_pkgs")
fi
if [ "${TSC_VM_NO_BUILD:-}" != 1 ] || [ ! -f "$IMG" ]; then
  node "$VM/build-initramfs.mjs" --kver "$KVER" --modbase "$MODBASE" --out "$IMG" "${build_args[@]}"
fi
T2=$(now)

# ---- boot -------------------------------------------------------------------------------------
append="console=ttyS0 quiet cgroup_no_v1=all panic=-1"
[ "${TSC_VM_STRICT:-}" != 1 ] || append="$append tsc_vm_strict=1"
[ -z "${TSC_VM_APPEND:-}" ] || append="$append $TSC_VM_APPEND"
if [ -n "$vitest_pkgs" ]; then
  append="$append tsc_vm_vitest=$vitest_pkgs${vitest_filter:+ tsc_vm_vitest_filter=$vitest_filter}"
elif [ -n "$SELECT" ]; then
  append="$append tsc_vm_select=$(printf %s "$SELECT" | base64 -w0 | tr '+/' '-_' | tr -d '=')"
fi
# A scratch disk for the io.bfq.weight check (/dev/vda in the guest). qemu throttles it to
# 8 MiB/s, so the device, not TCG's CPU, is the bottleneck and BFQ has device time to divide.
DISK=$BUILD/scratch.img
rm -f "$DISK" && truncate -s 64M "$DISK"
CONSOLE=$BUILD/console.log
log "booting $KERNEL (TCG, ${TSC_VM_SMP:-2} cpus, ${TSC_VM_MEM:-2048} MiB), timeout ${TIMEOUT}s; console follows"
set +e
timeout -k 10 "$TIMEOUT" qemu-system-x86_64 \
  -accel tcg -cpu max -m "${TSC_VM_MEM:-2048}" -smp "${TSC_VM_SMP:-2}" \
  -nographic -no-reboot -nic none \
  -drive "file=$DISK,if=virtio,format=raw,cache=unsafe,throttling.bps-total=8388608" \
  -kernel "$KERNEL" -initrd "$IMG" -append "$append" </dev/null 2>&1 |
  sed -u -e 's/\r$//' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' | tee "$CONSOLE"
status=("${PIPESTATUS[@]}")
set -e
T3=$(now)
qemu_rc=${status[0]}

summary=$(grep -a '^VM-TESTS: ' "$CONSOLE" | tail -n 1 || true)
up=$(sed -n 's/^VM-INIT: userland up after \([0-9.]*\) s$/\1/p' "$CONSOLE" | tail -n 1)
log "times: packages+kernel $(secs "$T0" "$T1") s, initramfs $(secs "$T1" "$T2") s, VM $(secs "$T2" "$T3") s (userland after ${up:-?} s of guest uptime), total $(secs "$T0" "$T3") s"
if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
  log "FAIL: timed out after ${TIMEOUT}s (console: $CONSOLE)"
  exit 1
fi
grep -a '^not ok - .* # TODO' "$CONSOLE" | sed 's/^/run.sh: known issue: /' >&2 || true
if [[ "$summary" =~ ^VM-TESTS:\ ([0-9]+)\ passed,\ 0\ failed$ ]] && [ "${BASH_REMATCH[1]}" -ge 1 ]; then
  log "PASS: ${summary#VM-TESTS: }"
  exit 0
fi
grep -a '^not ok - ' "$CONSOLE" | grep -v ' # TODO' >&2 || true
log "FAIL: ${summary:-no VM-TESTS line} (qemu exit $qemu_rc; console: $CONSOLE)"
exit 1
