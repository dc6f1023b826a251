import { defineConfig } from 'vitest/config';

// The whole curated conformance list (lab/conformance.json) against the patched kubelet in the
// L2 lab under every fault at once: npm run test:conformance (hours under TCG; the release
// workflow runs it, CI runs the quick tier inside test:real).
export default defineConfig({
  test: {
    include: ['test/**/*.conformance.test.ts'],
    testTimeout: 6 * 3600_000,
    hookTimeout: 6 * 3600_000,
    fileParallelism: false,
    reporters: ['verbose'],
  },
});
