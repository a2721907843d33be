import type { Deps } from '../deps.js'

/** Per-request values that handlers leave for the request log. */
export type AppVariables = {
  clientId?: string
  jti?: string
}

export type AppEnv = { Variables: AppVariables }
export type { Deps }
