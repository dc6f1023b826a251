import { defineConfig } from 'vitest/config';

// Every release besides the default: built for linux/amd64, its matrix and the L1 lab
// (npm run test:all-releases; about half an hour per release cold, under QEMU emulation).
export default defineConfig({
  test: {
    include: ['test/**/*.lab.test.ts'],
    testTimeout: 120 * 60_000,
    hookTimeout: 120 * 60_000,
    fileParallelism: false,
    reporters: ['verbose'],
  },
});
