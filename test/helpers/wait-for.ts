/**
 * Retries `check` until it passes (resolves, or returns without throwing) or `timeoutMs` elapses;
 * then the last failure is rethrown. For things that settle in the background, such as a Redis
 * client reconnecting. `intervalMs` is the pause between attempts (0: as soon as the last one ends).
 */
export async function waitFor<T>(check: () => Promise<T> | T, timeoutMs = 5000, intervalMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await check()
    } catch (error) {
      if (Date.now() >= deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, intervalMs))
    }
  }
}
