// Test-only, loaded into a server process with `node --import`: makes it fail the way a bug would.
// SIGUSR2 throws from a signal handler (an uncaught exception), or with
// TOKENSMITH_TEST_CRASH=rejection rejects a promise nobody handles. With
// TOKENSMITH_TEST_CRASH=worker-start every cluster worker fails as it starts.
import cluster from 'node:cluster'

if (process.env.TOKENSMITH_TEST_CRASH === 'worker-start' && cluster.isWorker) {
  throw new Error('test: a worker that cannot start')
}
process.on('SIGUSR2', () => {
  if (process.env.TOKENSMITH_TEST_CRASH === 'rejection') void Promise.reject(new Error('test: an unhandled rejection'))
  else throw new Error('test: an uncaught exception')
})
