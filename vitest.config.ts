import { defineConfig } from 'vitest/config';

// Two projects: fast unit tests, and integration tests that talk to the real services
// started by scripts/services.sh (endpoints come from the environment).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/integration/**'],
          // Generous: CLI tests spawn processes, and a loaded CI machine can be several times slower.
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
