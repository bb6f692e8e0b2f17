#!/bin/sh
# Build a busybox root filesystem from Debian's busybox-static: DIR/bin/busybox,
# a symlink per applet, the usual top-level directories, /etc/passwd and /etc/group.
# Usage: scripts/build-rootfs.sh DIR
set -eu
dir=${1:?usage: build-rootfs.sh DIR}
bb=/bin/busybox
if ! "$bb" --list >/dev/null 2>&1 || ! ldd "$bb" 2>&1 | grep -q 'not a dynamic'; then
  echo "build-rootfs: $bb must be a static busybox: apt-get install busybox-static" >&2
  exit 1
fi
tmp="$dir.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/bin" "$tmp/sbin" "$tmp/usr/bin" "$tmp/usr/sbin" "$tmp/etc" "$tmp/proc" "$tmp/sys" "$tmp/dev" \
  "$tmp/tmp" "$tmp/root" "$tmp/home" "$tmp/var/tmp" "$tmp/run"
chmod 1777 "$tmp/tmp" "$tmp/var/tmp"
cp "$bb" "$tmp/bin/busybox"
for applet in $("$bb" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$tmp/bin/$applet"
done
cat > "$tmp/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$tmp/etc/group" <<'G'
root:x:0:
daemon:x:1:
tty:x:5:
nogroup:x:65534:
G
echo "nameserver 127.0.0.1" > "$tmp/etc/resolv.conf"
: > "$tmp/etc/hosts"
rm -rf "$dir"
mv "$tmp" "$dir"
