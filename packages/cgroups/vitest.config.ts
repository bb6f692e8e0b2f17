import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Real-kernel tests share cgroup parents and /run/nsinit; run files one at a time.
    fileParallelism: false,
  },
});
