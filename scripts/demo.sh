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

# ---- Build, ship and run: the same rootfs as an image, through a registry, on a network ----
data="$PWD/build/demo-data"
state="$PWD/build/demo-state"
rm -rf "$data" "$state" build/demo-registry
export NSINIT_DATA_ROOT="$data"
port=5123
regpid=
cleanup() {
  nsinit --root "$state" delete --force demo-web >/dev/null 2>&1 || true
  [ -n "$regpid" ] && kill "$regpid" 2>/dev/null || true
}
trap cleanup EXIT
mkdir -p build/demo-registry
cat > build/demo-registry/config.yml <<YML
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $PWD/build/demo-registry/data } }
http: { addr: 127.0.0.1:$port }
YML
docker-registry serve build/demo-registry/config.yml >/dev/null 2>&1 &
regpid=$!
for _ in $(seq 50); do /bin/busybox wget -q -O /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null && break; sleep 0.1; done

echo
echo "== build: nsinit import (the rootfs as a one-layer image that serves a page)"
tar -C "$bundle/rootfs" -cf build/demo-rootfs.tar .
nsinit import -c 'CMD ["sh","-c","mkdir -p /www && echo hello from $(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"]' \
  build/demo-rootfs.tar "127.0.0.1:$port/demo/web:1"
echo "== ship: nsinit push, rmi, nsinit pull (docker-registry on 127.0.0.1:$port)"
nsinit push "127.0.0.1:$port/demo/web:1" | tail -1
nsinit rmi "127.0.0.1:$port/demo/web:1" >/dev/null
nsinit pull "127.0.0.1:$port/demo/web:1" | tail -2
nsinit images
echo "== run: a detached web container on the nsinit0 bridge, published on 127.0.0.1:18080"
nsinit --root "$state" run --image "127.0.0.1:$port/demo/web:1" --name demo-web -d -p 127.0.0.1:18080:80
for _ in $(seq 50); do page=$(/bin/busybox wget -q -O - http://127.0.0.1:18080/ 2>/dev/null) && break; sleep 0.1; done
echo "host fetched:   ${page:-nothing}"
echo "== a second container reaches it by its link alias"
nsinit --root "$state" run --image "127.0.0.1:$port/demo/web:1" --rm --link demo-web:web -- \
  sh -c 'echo "eth0: $(ip -o -4 addr show eth0 | cut -d" " -f7)  web: $(grep -w web /etc/hosts | cut -f1)"; wget -qO- http://web/'
echo "== what the web container changed (nsinit diff)"
nsinit --root "$state" diff demo-web
nsinit --root "$state" delete --force demo-web
echo "== deleted: its veth, address, rules and writable layer are gone"
