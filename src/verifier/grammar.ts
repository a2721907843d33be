/**
 * RFC 6749 §3.3 `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`: printable ASCII without space, `"`
 * or `\`. The one definition, for the scopes `bearerAuth` requires and the scopes the server registers
 * and grants.
 */
export const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/
