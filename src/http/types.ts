import type { Deps } from '../deps.js'

/** Per-request values that handlers leave for the request log. */
export type AppVariables = {
  /** The request's correlation id (src/http/middleware/request-id.ts): `request_id` of its log records. */
  requestId?: string
  clientId?: string
  jti?: string
  /** The OAuth error code answered, and why (for the log only, never the client). */
  error?: string
  errorDetail?: string
}

export type AppEnv = { Variables: AppVariables }
export type { Deps }
