#!/bin/sh
# Build the static executor next to the compiled TypeScript (dist/nsinit-executor).
set -eu
cd "$(dirname "$0")/.."
CC=${CC:-gcc}
if ! command -v "$CC" >/dev/null 2>&1; then
  echo "build-executor: $CC not found; install gcc and libc6-dev (static libc)" >&2
  exit 1
fi
mkdir -p dist
"$CC" -static -Os -Wall -Wextra -Werror -fno-asynchronous-unwind-tables -o dist/nsinit-executor.tmp src/executor.c
strip dist/nsinit-executor.tmp 2>/dev/null || true
mv dist/nsinit-executor.tmp dist/nsinit-executor
