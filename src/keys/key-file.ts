import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto'
import { promisify } from 'node:util'
import { calculateJwkThumbprint, type JWK } from 'jose'
import { z } from 'zod'
import { SIGNING_ALGS, type SigningAlg } from './algorithms.js'

/**
 * One signing key per file in KEYS_DIR, named `<kid>.json`: its metadata and its private key as
 * PKCS#8 PEM. The key's state (next, current, retired) follows from the timestamps alone, so every
 * instance sharing the directory agrees without talking (see key-store.ts).
 */

export const keyFileSchema = z.object({
  kid: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'an RFC 7638 SHA-256 thumbprint'),
  alg: z.enum(SIGNING_ALGS),
  created: z.number().int().nonnegative(),
  /** Epoch seconds from which the key may sign. Before that it is published only ("next"). */
  activates: z.number().int().nonnegative(),
  privateKey: z.string().startsWith('-----BEGIN '),
})
export type KeyFile = z.infer<typeof keyFileSchema>

export interface KeyRecord {
  kid: string
  alg: SigningAlg
  created: number
  activates: number
  privateKey: KeyObject
  publicKey: KeyObject
  /** The public JWK as published: kty/crv/x/y or n/e, plus kid, alg, use. */
  publicJwk: JWK
}

const generate = promisify(generateKeyPair)

/** RSA keys are 3072 bits (NIST SP 800-57 for use beyond 2030; checklist SK-13). */
async function generatePrivateKey(alg: SigningAlg): Promise<KeyObject> {
  switch (alg) {
    case 'ES256':
      return (await generate('ec', { namedCurve: 'P-256' })).privateKey
    case 'EdDSA':
      return (await generate('ed25519', {})).privateKey
    case 'RS256':
    case 'PS256':
      return (await generate('rsa', { modulusLength: 3072 })).privateKey
  }
}

function checkKeyType(alg: SigningAlg, key: KeyObject): void {
  const type = key.asymmetricKeyType
  const details = key.asymmetricKeyDetails
  const ok =
    alg === 'ES256'
      ? type === 'ec' && details?.namedCurve === 'prime256v1'
      : alg === 'EdDSA'
        ? type === 'ed25519'
        : type === 'rsa' && (details?.modulusLength ?? 0) >= 2048
  if (!ok) throw new Error(`key type ${type} does not fit alg ${alg}`)
}

async function toRecord(meta: Omit<KeyFile, 'privateKey' | 'kid'>, privateKey: KeyObject): Promise<KeyRecord> {
  checkKeyType(meta.alg, privateKey)
  const publicKey = createPublicKey(privateKey)
  const jwk = publicKey.export({ format: 'jwk' }) as JWK
  // RFC 7638: the thumbprint of the required public members names the key.
  const kid = await calculateJwkThumbprint(jwk, 'sha256')
  return {
    kid,
    alg: meta.alg,
    created: meta.created,
    activates: meta.activates,
    privateKey,
    publicKey,
    publicJwk: { ...jwk, kid, alg: meta.alg, use: 'sig' },
  }
}

export async function generateKeyRecord(alg: SigningAlg, created: number, activates = created): Promise<KeyRecord> {
  return toRecord({ alg, created, activates }, await generatePrivateKey(alg))
}

export function serializeKeyRecord(record: KeyRecord): string {
  const file: KeyFile = {
    kid: record.kid,
    alg: record.alg,
    created: record.created,
    activates: record.activates,
    privateKey: record.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
  }
  return `${JSON.stringify(file, null, 2)}\n`
}

/**
 * Parses and checks one key file: schema, key type against alg, and that the kid is the key's own
 * thumbprint (a mismatch means a corrupt or tampered file). Throws an Error naming the problem;
 * never includes key material in the message.
 */
export async function parseKeyFile(text: string): Promise<KeyRecord> {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new Error('not valid JSON (truncated or half-written?)')
  }
  const parsed = keyFileSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    throw new Error(`field ${issue.path.join('.') || '(root)'}: ${issue.message}`)
  }
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey({ key: parsed.data.privateKey, format: 'pem' })
  } catch {
    throw new Error('privateKey is not a readable PKCS#8 PEM key')
  }
  const record = await toRecord(parsed.data, privateKey)
  if (record.kid !== parsed.data.kid) throw new Error(`kid ${parsed.data.kid} is not the key's thumbprint`)
  return record
}
