import { describe, expect, it } from 'vitest'
import { createApp } from '../../src/app.js'
import { FORM, basic, makeDeps } from '../helpers/make-deps.js'

// One JSON record per request with the outcome, client and token id; never a
// secret, a token or an Authorization value; caller-supplied text cannot forge a record.
describe('request logs', () => {
  it('record every authentication outcome with client_id and jti, and never a secret or a token', async () => {
    const deps = await makeDeps()
    const app = createApp(deps)
    const post = (path: string, body: string, authorization?: string) =>
      app.request(path, {
        method: 'POST',
        headers: { 'content-type': FORM, ...(authorization && { authorization }) },
        body,
      })

    const good = basic('svc-a', 'tks_secret-of-a')
    const issued = await post('/oauth/token', 'grant_type=client_credentials', good)
    const { access_token: token } = (await issued.json()) as { access_token: string }
    await post('/oauth/token', 'grant_type=client_credentials', basic('svc-a', 'tks_wrong-secret'))
    const forged = 'x\n{"level":50,"msg":"forged"}\u001b[31m'
    await post(
      '/oauth/token',
      `grant_type=client_credentials&client_id=${encodeURIComponent(forged)}&client_secret=tks_guess`,
    )
    await post('/oauth/introspect', `token=${token}`, good)
    await post('/oauth/revoke', `token=${token}`, good)

    const records = deps.logLines.map((line) => JSON.parse(line) as Record<string, unknown>)
    const requests = records.filter((r) => r.msg === 'request')
    expect(requests.map((r) => [r.path, r.status, r.client_id, r.error])).toEqual([
      ['/oauth/token', 200, 'svc-a', undefined],
      ['/oauth/token', 401, 'svc-a', 'invalid_client'],
      ['/oauth/token', 401, forged, 'invalid_client'],
      ['/oauth/introspect', 200, 'svc-a', undefined],
      ['/oauth/revoke', 200, 'svc-a', undefined],
    ])
    const jti = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti
    expect(requests[0]!.jti).toBe(jti)
    expect(requests[1]!.detail).toBe('unknown client or wrong secret')
    expect(requests[4]!.jti).toBe(jti)

    const text = deps.logLines.join('\n')
    for (const secret of [
      'tks_secret-of-a',
      'tks_wrong-secret',
      'tks_guess',
      token,
      token.split('.')[2]!,
      good.slice(6),
    ]) {
      expect(text).not.toContain(secret)
    }
    // The forged text stayed inside one record: no line of the log is a record of its making.
    expect(records.some((r) => r.msg === 'forged')).toBe(false)
    expect(deps.logLines.every((line) => !line.includes('\n') && !line.includes('\u001b'))).toBe(true)
  })
})
