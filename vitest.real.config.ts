import { defineConfig } from 'vitest/config';

// The real thing: the default manifest's kubelet from the Go module proxy, the patch matrix
// and the LXC lab. Long (tens of minutes cold), so a separate command: npm run test:real.
export default defineConfig({
  test: {
    include: ['test/**/*.real.test.ts'],
    testTimeout: 80 * 60_000,
    hookTimeout: 80 * 60_000,
    fileParallelism: false,
    // a line per test as it ends (the CLI's own progress streams through while it runs)
    reporters: ['verbose'],
  },
});
