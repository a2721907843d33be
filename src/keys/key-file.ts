import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto'
import { promisify } from 'node:util'
import { calculateJwkThumbprint, type JWK } from 'jose'
import { z } from 'zod'
import { SIGNING_ALGS, type SigningAlg } from './algorithms.js'

/**
 * One signing key per file in KEYS_DIR, named `<kid>.json`: its metadata and its private key as
 * PKCS#8 PEM (encrypted PKCS#8 when KEYS_PASSPHRASE is set). The key's state follows from the
 * timestamps alone (see key-states.ts), so every instance sharing the directory agrees without
 * talking. A revoked key keeps a tombstone: its metadata without the private key.
 */

const kid = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be an RFC 7638 SHA-256 thumbprint')

export const keyFileSchema = z
  .object({
    kid,
    alg: z.enum(SIGNING_ALGS),
    created: z.number().int().nonnegative(),
    /** Epoch seconds from which the key signs; before that it is published only. null: standby, not scheduled. */
    activates: z.number().int().nonnegative().nullable(),
    /** Set by `keys revoke`: the key is compromised, unpublished, and its tokens refused. */
    revoked: z.number().int().nonnegative().optional(),
    privateKey: z.string().startsWith('-----BEGIN ').optional(),
  })
  .strict()
  .refine((file) => (file.revoked === undefined) === (file.privateKey !== undefined), {
    message: 'a key file holds a privateKey unless it is revoked, and a revoked one holds none',
  })
export type KeyFile = z.infer<typeof keyFileSchema>

export interface KeyRecord {
  kid: string
  alg: SigningAlg
  created: number
  activates: number | null
  privateKey: KeyObject
  publicKey: KeyObject
  /** The public JWK as published: kty/crv/x/y or n/e, plus kid, alg, use. */
  publicJwk: JWK
  /** The file as stored (private key still encrypted), so metadata can change without re-encrypting. */
  stored: KeyFile
}

/** What is left of a revoked key: enough to keep refusing its tokens and to prune it later. */
export interface Tombstone {
  kid: string
  alg: SigningAlg
  created: number
  revoked: number
}

const generate = promisify(generateKeyPair)

/** RSA keys are 3072 bits (NIST SP 800-57 for use beyond 2030). */
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

async function thumbprint(publicKey: KeyObject): Promise<{ kid: string; jwk: JWK }> {
  const jwk = publicKey.export({ format: 'jwk' }) as JWK
  // RFC 7638: the thumbprint of the required public members names the key.
  return { kid: await calculateJwkThumbprint(jwk, 'sha256'), jwk }
}

/** PKCS#8 PEM, encrypted (PBES2, AES-256-CBC) when a passphrase is given. */
function exportPrivateKey(key: KeyObject, passphrase: string | undefined): string {
  return (
    passphrase
      ? key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase })
      : key.export({ type: 'pkcs8', format: 'pem' })
  ) as string
}

export async function generateKeyRecord(
  alg: SigningAlg,
  created: number,
  activates: number | null = created,
  passphrase?: string,
): Promise<KeyRecord> {
  const privateKey = await generatePrivateKey(alg)
  const publicKey = createPublicKey(privateKey)
  const { kid, jwk } = await thumbprint(publicKey)
  const stored: KeyFile = { kid, alg, created, activates, privateKey: exportPrivateKey(privateKey, passphrase) }
  return { kid, alg, created, activates, privateKey, publicKey, publicJwk: { ...jwk, kid, alg, use: 'sig' }, stored }
}

export function serializeKeyFile(file: KeyFile): string {
  return `${JSON.stringify(file, null, 2)}\n`
}

export const serializeKeyRecord = (record: KeyRecord): string => serializeKeyFile(record.stored)

/**
 * Parses and checks one key file: schema, passphrase, key type against alg, and that the kid is the
 * key's own thumbprint (a mismatch means a corrupt or tampered file). Throws an Error naming the
 * problem; never includes key material or the passphrase in the message.
 */
export async function parseKeyFile(text: string, passphrase?: string): Promise<KeyRecord | Tombstone> {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new Error('not valid JSON (truncated or half-written?)')
  }
  const parsed = keyFileSchema.safeParse(json)
  if (!parsed.success) {
    const [issue] = parsed.error.issues
    throw new Error(`field ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`)
  }
  const file = parsed.data
  if (file.revoked !== undefined) return { kid: file.kid, alg: file.alg, created: file.created, revoked: file.revoked }

  const pem = file.privateKey
  if (pem === undefined) throw new Error('a key file holds a privateKey unless it is revoked') // the schema's rule
  const encrypted = pem.startsWith('-----BEGIN ENCRYPTED ') // encrypted PKCS#8 (RFC 5958 §3)
  if (encrypted && !passphrase) throw new Error('the private key is encrypted: set KEYS_PASSPHRASE')
  let privateKey: KeyObject
  try {
    privateKey = createPrivateKey(encrypted ? { key: pem, format: 'pem', passphrase } : { key: pem, format: 'pem' })
  } catch {
    throw new Error(
      encrypted ? 'KEYS_PASSPHRASE does not decrypt the private key' : 'privateKey is not a readable PKCS#8 PEM key',
    )
  }
  checkKeyType(file.alg, privateKey)
  const publicKey = createPublicKey(privateKey)
  const { kid, jwk } = await thumbprint(publicKey)
  if (kid !== file.kid) throw new Error(`kid ${file.kid} is not the key's thumbprint`)
  return {
    kid,
    alg: file.alg,
    created: file.created,
    activates: file.activates,
    privateKey,
    publicKey,
    publicJwk: { ...jwk, kid, alg: file.alg, use: 'sig' },
    stored: file,
  }
}

export const isTombstone = (key: KeyRecord | Tombstone): key is Tombstone => !('privateKey' in key)
