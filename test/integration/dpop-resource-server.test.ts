/**
 * A resource server behind `bearerAuth` over real HTTP, called by a real DPoP client: oauth4webapi's DPoP
 * handle and `protectedResourceRequest` make the proofs (RFC 9449 §7.1), as a second opinion on ours.
 */
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'

import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { generateKeyPair, SignJWT } from 'jose'
import * as oauth from 'oauth4webapi'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { type BearerAuthVariables, bearerAuth, DPOP_ALGORITHMS } from '../../src/verifier/index.js'
import { jwksOf, makeKey } from '../helpers/forge.js'

const ISSUER = 'https://auth.example.test'
const AUDIENCE = 'https://api.example.test'
const ALGS = DPOP_ALGORITHMS.join(' ')
const issuerKey = makeKey('ES256', 'as-1')

let server: ReturnType<typeof serve>
let base: URL

beforeAll(async () => {
  const app = new Hono<{ Variables: BearerAuthVariables }>()
  app.use('/api/*', bearerAuth({ issuer: ISSUER, audience: AUDIENCE, jwks: jwksOf(issuerKey), dpop: {} }))
  app.get('/api/whoami', (c) => c.json({ client: c.get('auth').client_id, jkt: c.get('dpop')?.jkt ?? null }))
  await new Promise<void>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve())
  })
  base = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`)
})

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

/** An RFC 9068 access token as the AS issues it, bound to `jkt` when given (RFC 9449 §6.1). */
function accessToken(jkt?: string): Promise<string> {
  return new SignJWT({ client_id: 'client-a', scope: 'read', ...(jkt === undefined ? {} : { cnf: { jkt } }) })
    .setProtectedHeader({ alg: 'ES256', kid: issuerKey.kid, typ: 'at+jwt' })
    .setIssuer(ISSUER)
    .setSubject('client-a')
    .setAudience(AUDIENCE)
    .setJti(crypto.randomUUID())
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(issuerKey.privateKey)
}

const insecure = { [oauth.allowInsecureRequests]: true }

async function dpopClient() {
  const keyPair = await generateKeyPair('ES256')
  const handle = oauth.DPoP({}, keyPair)
  return { handle, jkt: await handle.calculateThumbprint() }
}

/** The challenges oauth4webapi parsed from a refusal. */
async function challengesOf(call: Promise<Response>): Promise<oauth.WWWAuthenticateChallenge[]> {
  const error = await call.then(
    () => undefined,
    (thrown: unknown) => thrown,
  )
  expect(error).toBeInstanceOf(oauth.WWWAuthenticateChallengeError)
  return (error as oauth.WWWAuthenticateChallengeError).cause
}

describe('DPoP at a resource server, over HTTP, with oauth4webapi as the client', () => {
  it('a bound token with oauth4webapi proofs is accepted, request after request', async () => {
    const { handle, jkt } = await dpopClient()
    const token = await accessToken(jkt)
    for (let i = 0; i < 3; i++) {
      const response = await oauth.protectedResourceRequest(
        token,
        'GET',
        new URL('/api/whoami?n=1', base),
        undefined,
        null,
        {
          DPoP: handle,
          ...insecure,
        },
      )
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual({ client: 'client-a', jkt })
    }
  })

  it('the bound token sent as Bearer is refused: invalid_token in the Bearer challenge, DPoP offered beside it', async () => {
    const { jkt } = await dpopClient()
    const token = await accessToken(jkt)
    const challenges = await challengesOf(
      oauth.protectedResourceRequest(token, 'GET', new URL('/api/whoami', base), undefined, null, insecure),
    )
    expect(challenges).toEqual([
      { scheme: 'bearer', parameters: { realm: 'tokensmith', error: 'invalid_token' } },
      { scheme: 'dpop', parameters: { realm: 'tokensmith', algs: ALGS } },
    ])
  })

  it("another client's key: proofs from a key the token is not bound to are refused with invalid_token", async () => {
    const victim = await dpopClient()
    const thief = await dpopClient()
    const token = await accessToken(victim.jkt)
    const challenges = await challengesOf(
      oauth.protectedResourceRequest(token, 'GET', new URL('/api/whoami', base), undefined, null, {
        DPoP: thief.handle,
        ...insecure,
      }),
    )
    expect(challenges[1]).toEqual({
      scheme: 'dpop',
      parameters: { realm: 'tokensmith', error: 'invalid_token', algs: ALGS },
    })
  })

  it('a proof made for another URL is refused with invalid_dpop_proof', async () => {
    const { handle, jkt } = await dpopClient()
    const token = await accessToken(jkt)
    // The client signs for /api/other, the request goes to /api/whoami.
    const headers = new Headers()
    // biome-ignore lint/suspicious/noExplicitAny: addProof is the handle's internal signing entry point
    await (handle as any).addProof(new URL('/api/other', base), headers, 'GET', token)
    const response = await fetch(new URL('/api/whoami', base), {
      headers: { authorization: `DPoP ${token}`, dpop: headers.get('dpop') ?? '' },
    })
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toBe(
      `Bearer realm="tokensmith", DPoP realm="tokensmith", error="invalid_dpop_proof", algs="${ALGS}"`,
    )
  })

  it('two DPoP header fields on the wire are refused with invalid_dpop_proof', async () => {
    const { handle, jkt } = await dpopClient()
    const token = await accessToken(jkt)
    const proofs: string[] = []
    for (let i = 0; i < 2; i++) {
      const headers = new Headers()
      // biome-ignore lint/suspicious/noExplicitAny: addProof is the handle's internal signing entry point
      await (handle as any).addProof(new URL('/api/whoami', base), headers, 'GET', token)
      proofs.push(headers.get('dpop') ?? '')
    }
    const { status, challenge } = await new Promise<{ status: number; challenge: string | undefined }>(
      (resolve, reject) => {
        const req = httpRequest(new URL('/api/whoami', base), {
          // Raw header pairs: two `DPoP` fields, as a confused or malicious client sends them. With an
          // array Node adds no `Host`, which HTTP/1.1 requires (RFC 9112 §3.2).
          headers: [
            'host',
            base.host,
            'authorization',
            `DPoP ${token}`,
            'dpop',
            proofs[0] as string,
            'dpop',
            proofs[1] as string,
          ],
        })
        req.on('response', (res) => {
          res.resume()
          resolve({ status: res.statusCode ?? 0, challenge: res.headers['www-authenticate'] })
        })
        req.on('error', reject)
        req.end()
      },
    )
    expect({ status, challenge }).toEqual({
      status: 401,
      challenge: `Bearer realm="tokensmith", DPoP realm="tokensmith", error="invalid_dpop_proof", algs="${ALGS}"`,
    })
  })

  it('an unbound token still works as Bearer', async () => {
    const response = await oauth.protectedResourceRequest(
      await accessToken(),
      'GET',
      new URL('/api/whoami', base),
      undefined,
      null,
      insecure,
    )
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ client: 'client-a', jkt: null })
  })
})
