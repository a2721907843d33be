/**
 * `tokensmith/verifier`: Hono middleware for resource servers that accept tokensmith's RFC 9068 JWT
 * access tokens, verified offline. The contract (what is checked, in which order, and every answer)
 * is written once, on {@link bearerAuth} in `bearer-auth.ts`.
 *
 * @example
 * ```ts
 * import { bearerAuth } from 'tokensmith/verifier'
 *
 * const jwks = { uri: `${issuer}/.well-known/jwks.json` }
 * app.use('/api/*', bearerAuth({ issuer, audience: 'https://api.example.com', jwks }))
 * ```
 */
export { DEFAULT_ALGORITHMS } from './algorithms.js'
export { bearerAuth, type BearerAuthMiddleware } from './bearer-auth.js'
export { scopesOf } from './claims.js'
export { DPOP_ALGORITHMS, type DpopReplay } from './dpop.js'
export { createMemoryDpopReplay, type MemoryDpopReplayOptions } from './dpop-replay.js'
export type { AuthScheme, BearerErrorCode, RejectReason } from './errors.js'
export type { FetchOutcome, RequestOutcome, VerifierMetricsOptions } from './metrics.js'
export { BEARER_AUTH_DEFAULTS } from './options.js'
export type {
  AccessTokenClaims,
  BearerAuthOptions,
  BearerAuthStats,
  BearerAuthVariables,
  DpopOptions,
  DpopProofContext,
  FailOpenInfo,
  LocalJwks,
  RejectInfo,
  RemoteJwks,
  RevocationCheck,
} from './types.js'
