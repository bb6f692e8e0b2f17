#!/bin/busybox sh
# /init of the test VM (vm/build-initramfs.mjs puts it into the initramfs): mount the basics and
# cgroup2 (nsdelegate, as systemd mounts it), load modules, enable the v2 controllers, run
# vm/guest-tests.mjs (or vm/guest-vitest.mjs), print one result line and power off. run.sh
# decides pass/fail from the "VM-TESTS: N passed, M failed" line.
export PATH=/bin:/usr/bin:/sbin
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
# Without a /dev/console node in the archive the kernel started us with no stdio.
[ -t 1 ] || exec </dev/console >/dev/console 2>&1

fail() {
  echo "VM-INIT: $*"
  echo "VM-TESTS: 0 passed, 1 failed"
  poweroff -f
  sleep 5
  echo o >/proc/sysrq-trigger
}

# pivot_root(2) refuses to run while the caller's root is the initramfs itself (rootfs has no
# parent mount). Re-root onto a bind mount of / (what switch_root does, minus deleting the
# files): containers can then use pivot_root as on a real host.
if [ "$TSC_VM_REROOTED" != 1 ]; then
  mkdir -p /.root
  mount --bind / /.root || fail "bind / failed"
  umount -l /dev 2>/dev/null
  cd /.root || fail "cd /.root"
  mount --move . / || fail "mount --move failed"
  export TSC_VM_REROOTED=1
  exec chroot . /init "$@"
fi

mount -t proc proc /proc || fail "mount proc"
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || fail "mount cgroup2 failed"
ln -sf /proc/self/fd /dev/fd 2>/dev/null
hostname tsc-vm
ip link set lo up 2>/dev/null

for ko in $(cat /etc/modules.order); do
  insmod "$ko" || echo "VM-INIT: insmod $ko failed"
done

for c in memory pids cpu io cpuset hugetlb rdma; do
  echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control || echo "VM-INIT: cannot enable $c"
done

echo "VM-INIT: kernel $(uname -r), $(nproc) cpus, cmdline: $(cat /proc/cmdline)"
echo "VM-INIT: /sys/fs/cgroup: $(awk '$2 == "/sys/fs/cgroup" { print $3 }' /proc/mounts), controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
echo "VM-INIT: userland up after $(cut -d' ' -f1 /proc/uptime) s"

cd /repo || fail "no /repo"
# The node process stays in the root cgroup (exempt from the no-internal-processes rule).
if [ -n "${tsc_vm_vitest:-}" ]; then
  # vm/run.sh vitest[:PKGS[:FILTER]]: the project's own vitest suites (the kernel passes
  # tsc_vm_vitest=... from its command line on to us as an environment variable)
  # the libcontainer test fixture's shared busybox rootfs, prebuilt (its builder wants ldd)
  cp -a /srv/rootfs /tmp/tsc-test-rootfs-0 && : >/tmp/tsc-test-rootfs-0/.tsc-test-rootfs-complete
  node vm/guest-vitest.mjs
else
  node vm/guest-tests.mjs
fi
rc=$?
echo "VM-INIT: tests exited $rc after $(cut -d' ' -f1 /proc/uptime) s of guest uptime"
sync
poweroff -f
sleep 5
echo o >/proc/sysrq-trigger
