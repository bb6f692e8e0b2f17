import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Real-kernel tests share cgroup parents and /run/nsinit; run files one at a time.
    fileParallelism: false,
    // One retry: a few real-kernel tests race with process exit on a loaded 2-core machine
    // (each such flake seen so far was fixed in the test; this is the safety net, and vitest
    // still reports a test that needed it). A deterministic failure fails twice.
    retry: 1,
  },
});
