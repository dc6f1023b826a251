import { defineConfig } from 'vitest/config';

// Tests run real git, Go and a container engine: generous timeouts, files in sequence
// (two cores; parallel container builds only fight each other).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/**/*.real.test.ts', 'test/**/*.conformance.test.ts', 'test/**/*.lab.test.ts', 'node_modules/**'],
    testTimeout: 15 * 60_000,
    hookTimeout: 15 * 60_000,
    fileParallelism: false,
  },
});
