#!/usr/bin/env bash
# The main job: set everything up, build a busybox rootfs from Debian's
# busybox-static, and run a container in it that shows its isolation.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

bundle=build/demo
rm -rf "$bundle"
mkdir -p "$bundle"
bash scripts/build-rootfs.sh "$bundle/rootfs"
cat > "$bundle/rootfs/show-isolation" <<'SH'
#!/bin/sh
echo "hostname:       $(hostname)"
echo "my pid:         $$"
echo "processes (ps):"
ps -o pid,user,comm
echo "network:        $(ls /sys/class/net | tr '\n' ' ')"
echo "cgroup:         $(grep memory /proc/self/cgroup) (a cgroup namespace: / is the container's own)"
echo "memory limit:   $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"
echo "pids limit:     $(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)"
echo "capabilities:   $(grep CapEff /proc/self/status | cut -f2)"
echo "seccomp:        $(grep '^Seccomp:' /proc/self/status | cut -f2) (2 = filtered: Docker's default profile, from nsinit spec)"
echo "unshare:        $(unshare -n true 2>&1 || true)"
echo "root fs:        $(touch /x 2>&1 || true)"
SH
chmod 755 "$bundle/rootfs/show-isolation"
(cd "$bundle" && nsinit spec)
# runc's default config, adjusted: no terminal, a hostname, limits, and the script above.
node --input-type=module - "$bundle/config.json" <<'JS'
import { readFileSync, writeFileSync } from 'node:fs';
const file = process.argv[2];
const c = JSON.parse(readFileSync(file, 'utf8'));
c.process.terminal = false;
c.process.args = ['/show-isolation'];
c.hostname = 'demo';
c.linux.resources = { ...c.linux.resources, memory: { limit: 64 * 1024 * 1024 }, pids: { limit: 32 } };
writeFileSync(file, JSON.stringify(c, null, 2));
JS
id="demo-$$"
echo "== nsinit run -b $bundle $id  (its host cgroup: /sys/fs/cgroup/memory/nsinit/$id)"
nsinit run -b "$bundle" "$id"
