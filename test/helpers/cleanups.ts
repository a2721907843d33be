import { afterEach } from 'vitest'

/** Registers `cleanup` to run after the current test. */
export type Defer = (cleanup: () => unknown) => void

/**
 * Cleanups for one test file: call at its top level. What a test registers runs after it, last
 * registered first (a server stops after the clients connected to it close).
 */
export function useCleanups(): Defer {
  const cleanups: (() => unknown)[] = []
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  })
  return (cleanup) => void cleanups.push(cleanup)
}
