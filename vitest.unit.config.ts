import { defineConfig } from 'vitest/config';

/**
 * The fast tier (npm run test:unit): tests that need no container engine, no Go, no network and
 * no root, only Node and a shell. Files run in parallel; about half a minute. `npm test` runs
 * these and every engine/e2e test after them; test/workflows.test.ts keeps this list honest.
 */
export const UNIT_TEST_FILES = [
  'test/artifacts.test.ts',
  'test/exec.test.ts',
  'test/lab-l2.test.ts',
  'test/lab-leftovers.test.ts',
  'test/lab-profiles.test.ts',
  'test/lab-report.test.ts',
  'test/lab-verdict.test.ts',
  'test/lxc-settings.test.ts',
  'test/manifest.test.ts',
  'test/progress.test.ts',
  'test/publish-faults.test.ts',
  'test/publish-input.test.ts',
  'test/publish-retry.test.ts',
  'test/tar-entries.test.ts',
];

export default defineConfig({
  test: {
    include: UNIT_TEST_FILES,
    testTimeout: 60_000,
  },
});
