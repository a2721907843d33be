import { randomBytes } from 'node:crypto'
import { decodeJwt, decodeProtectedHeader, jwtVerify, SignJWT } from 'jose'
import type { BenchContext } from './fixture.js'
import type { Measurement, Ratio } from './figures.js'
import { loadEndpoint } from './http-load.js'
import { countOps } from './ops-loop.js'

/**
 * The measurements of one `npm run bench`, run in this order against one server. To add one, write
 * a Measurement (`loadEndpoint` for HTTP, `countOps` for an in-process loop), list it here, and
 * list any ratio below; the table and the JSON line pick both up.
 */

const tokenEndpoint: Measurement = {
  name: 'token_endpoint',
  what: 'POST /oauth/token, client_secret_basic, autocannon',
  run: (context, report) => loadEndpoint(context, { path: '/oauth/token', method: 'POST', ...context.tokenRequest }, report),
}

const sortedKeys = (object: object) => Object.keys(object).sort().join(',')
const canonical = (object: object) => JSON.stringify(Object.entries(object).sort(([a], [b]) => (a < b ? -1 : 1)))

/**
 * The server's token, signed again by jose in this process: same key, header and claims as the
 * sample the server issued, with a fresh iat, exp and jti (16 random bytes, as newJti) each time,
 * as the server does per request.
 */
function signLikeServer(context: BenchContext): () => Promise<string> {
  const header = decodeProtectedHeader(context.sampleToken)
  const sample = decodeJwt(context.sampleToken)
  const ttl = sample.exp! - sample.iat!
  const key = context.signingKey
  return () => {
    const iat = Math.floor(Date.now() / 1000)
    return new SignJWT({ client_id: sample.client_id, scope: sample.scope })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })
      .setIssuer(sample.iss!)
      .setSubject(sample.sub!)
      .setAudience(sample.aud!)
      .setIssuedAt(iat)
      .setExpirationTime(iat + ttl)
      .setJti(randomBytes(16).toString('base64url'))
      .sign(key.privateKey)
  }
}

/** The raw figure is only a yardstick if it signs what the server signs: same header, same claim names. */
function checkSameShape(serverToken: string, benchToken: string): void {
  const server = { header: decodeProtectedHeader(serverToken), claims: decodeJwt(serverToken) }
  const bench = { header: decodeProtectedHeader(benchToken), claims: decodeJwt(benchToken) }
  const problems = [
    canonical(server.header) !== canonical(bench.header) && `header ${JSON.stringify(server.header)} vs ${JSON.stringify(bench.header)}`,
    sortedKeys(server.claims) !== sortedKeys(bench.claims) && `claims ${sortedKeys(server.claims)} vs ${sortedKeys(bench.claims)}`,
  ].filter(Boolean)
  if (problems.length > 0) throw new Error(`raw_sign does not sign what the server signs (server vs bench): ${problems.join('; ')}`)
}

const rawSign: Measurement = {
  name: 'raw_sign',
  what: 'jose SignJWT of the same token, one at a time, in this process, server idle',
  async run(context, report) {
    const sign = signLikeServer(context)
    checkSameShape(context.sampleToken, await sign())
    const { rawWarmup, rawSeconds } = context.options
    report(`raw sign: ${rawWarmup} s warm-up, ${rawSeconds} s measured`)
    return { figures: await countOps(sign, { warmup: rawWarmup, seconds: rawSeconds }), problems: [] }
  },
}

const protectedRoute: Measurement = {
  name: 'protected_route',
  what: 'GET behind bearerAuth (remote JWKS, Redis revocation feed), autocannon',
  run: (context, report) =>
    loadEndpoint(
      { ...context, server: context.resourceServer },
      { path: '/api/orders', method: 'GET', headers: { authorization: `Bearer ${context.sampleToken}` } },
      report,
    ),
}

const rawVerify: Measurement = {
  name: 'raw_verify',
  what: 'jose jwtVerify of the same token (alg, typ, iss, aud checked), in this process',
  async run(context, report) {
    const { publicKey, alg } = context.signingKey
    const claims = decodeJwt(context.sampleToken)
    const verify = () =>
      jwtVerify(context.sampleToken, publicKey, { algorithms: [alg], typ: 'at+jwt', issuer: claims.iss!, audience: context.audience })
    await verify() // fails the run here if the token does not verify
    const { rawWarmup, rawSeconds } = context.options
    report(`raw verify: ${rawWarmup} s warm-up, ${rawSeconds} s measured`)
    return { figures: await countOps(verify, { warmup: rawWarmup, seconds: rawSeconds }), problems: [] }
  },
}

export const MEASUREMENTS: Measurement[] = [tokenEndpoint, rawSign, protectedRoute, rawVerify]

export const RATIOS: Ratio[] = [
  {
    name: 'token_endpoint_vs_raw_sign_pct',
    label: 'token endpoint req/s ÷ raw sign ops/s',
    numerator: 'token_endpoint',
    denominator: 'raw_sign',
  },
  {
    name: 'protected_route_vs_raw_verify_pct',
    label: 'protected route req/s ÷ raw verify ops/s',
    numerator: 'protected_route',
    denominator: 'raw_verify',
  },
]
