/** Thrown by a `waitFor` check to stop waiting at once: what it waits for can no longer happen. */
export class GiveUp extends Error {}

/**
 * Retries `check` until it passes (resolves, or returns without throwing) or `timeoutMs` elapses;
 * then the last failure is rethrown. For things that settle in the background, such as a Redis
 * client reconnecting or a process starting to listen. `intervalMs` is the pause between attempts
 * (0: as soon as the last one ends). A check that throws `GiveUp` ends the wait with that error.
 */
export async function waitFor<T>(check: () => Promise<T> | T, timeoutMs = 5000, intervalMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await check()
    } catch (error) {
      if (error instanceof GiveUp || Date.now() >= deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, intervalMs))
    }
  }
}
