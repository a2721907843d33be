import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Fault tests start their own redis-server; keep CPU contention sane on a 2-core machine.
    maxWorkers: 2,
  },
})
