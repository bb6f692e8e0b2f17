#!/usr/bin/env bash
# Set up a fresh Debian 12 machine (as root) for tsc: Debian packages, pnpm,
# the workspace's dependencies, the build, and `nsinit` on the PATH.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# Runtime: iproute2, nftables/iptables (NAT and published ports), uidmap, btrfs-progs.
# Build: gcc/libc6-dev/make (the static executor), g++/python3 (zstd-napi compiles with node-gyp).
# Tests and benchmarks: busybox-static (rootfs), docker-registry + apache2-utils (htpasswd),
# skopeo and umoci (image interop), crun/runc (peers), hyperfine, strace, qemu + cpio (cgroup v2 VM),
# libseccomp-dev (cross-checks of our BPF), zstd.
need_pkgs=(busybox-static gcc g++ python3 libc6-dev make file iproute2 util-linux uidmap crun runc hyperfine strace
  qemu-system-x86 cpio libseccomp-dev nftables iptables btrfs-progs docker-registry apache2-utils skopeo umoci zstd)
missing=()
for p in "${need_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v pnpm >/dev/null 2>&1 || ! pnpm --version 2>/dev/null | grep -q '^10\.'; then
  echo "setup: installing pnpm 10"
  # corepack's shims cannot fetch pnpm here; use npm.
  corepack disable >/dev/null 2>&1 || true
  npm install -g pnpm@10 >/dev/null
fi

export TURBO_TELEMETRY_DISABLED=1
# node-gyp (zstd-napi) must build against the installed Node headers, never download them.
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node.h ]; then export npm_config_nodedir=/usr; fi
pnpm install --frozen-lockfile
pnpm run build

ln -sf "$PWD/packages/cli/dist/nsinit" /usr/local/bin/nsinit
chmod +x packages/cli/dist/nsinit packages/cli/dist/main.js
echo "setup: done; nsinit is $(command -v nsinit)"
