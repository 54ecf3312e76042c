// A relying party built on panva's openid-client (a certified OpenID RP library), driven by the
// Python interop tests. It reads one JSON command per line on stdin and answers one JSON line on
// stdout: {"ok": true, ...result} or {"ok": false, "error": ..., "message": ..., "body": ...}.
// State (discovered configuration, PKCE verifier, state, nonce, client key) lives in this process
// between commands, so the browser part of a flow can be driven from Python in between.
//
// Commands ({"op": NAME, ...}):
//   genkey                                  -> {jwk}  an ES256 key pair; the public JWK to register
//   discover {issuer, client_id, auth, client_secret?, metadata?}
//                                           -> {server}  the discovered server metadata
//   authorize_url {redirect_uri, scope, extra?}
//                                           -> {url, state, nonce}
//   callback {url}                          -> {tokens, claims}  (authorizationCodeGrant)
//   userinfo {access_token, sub}            -> {userinfo}
//   refresh {refresh_token}                 -> {tokens, claims}
//   revoke {token, hint?}                   -> {}
//   introspect {token, hint?}               -> {introspection}
//   client_credentials {scope?}             -> {tokens}
//   end_session {id_token_hint, post_logout_redirect_uri, state}
//                                           -> {url}
//
// Every check is openid-client's own: nothing here relaxes validation except allowing plain
// http to the loopback test server (allowInsecureRequests).

import * as readline from 'node:readline'
import * as client from 'openid-client'

const state = { config: null, privateKey: null, kid: null, verifier: null, state: null, nonce: null }

function tokensOut(tokens) {
  const out = { ...tokens }
  let claims = null
  try {
    claims = tokens.claims() ?? null
  } catch {
    claims = null
  }
  return { tokens: out, claims }
}

const ops = {
  async genkey() {
    const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])
    const jwk = await crypto.subtle.exportKey('jwk', pair.publicKey)
    state.kid = `rp-${client.randomState().slice(0, 12)}`
    state.privateKey = pair.privateKey
    return { jwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, kid: state.kid, alg: 'ES256', use: 'sig' } }
  },

  async discover({ issuer, client_id, auth, client_secret, metadata }) {
    let clientAuth
    if (auth === 'private_key_jwt') {
      if (!state.privateKey) throw new Error('genkey first')
      clientAuth = client.PrivateKeyJwt({ key: state.privateKey, kid: state.kid })
    } else if (auth === 'client_secret_post') {
      clientAuth = client.ClientSecretPost(client_secret)
    } else if (auth === 'none') {
      clientAuth = client.None()
    } else {
      clientAuth = client.ClientSecretBasic(client_secret)
    }
    state.config = await client.discovery(new URL(issuer), client_id, metadata ?? {}, clientAuth, {
      execute: [client.allowInsecureRequests],
      timeout: 10,
    })
    return { server: state.config.serverMetadata() }
  },

  async authorize_url({ redirect_uri, scope, extra }) {
    state.verifier = client.randomPKCECodeVerifier()
    state.state = client.randomState()
    state.nonce = client.randomNonce()
    const url = client.buildAuthorizationUrl(state.config, {
      redirect_uri,
      scope,
      code_challenge: await client.calculatePKCECodeChallenge(state.verifier),
      code_challenge_method: 'S256',
      state: state.state,
      nonce: state.nonce,
      ...(extra ?? {}),
    })
    return { url: url.href, state: state.state, nonce: state.nonce }
  },

  async callback({ url }) {
    const tokens = await client.authorizationCodeGrant(state.config, new URL(url), {
      pkceCodeVerifier: state.verifier,
      expectedState: state.state,
      expectedNonce: state.nonce,
      idTokenExpected: true,
    })
    return tokensOut(tokens)
  },

  async userinfo({ access_token, sub }) {
    return { userinfo: await client.fetchUserInfo(state.config, access_token, sub) }
  },

  async refresh({ refresh_token }) {
    return tokensOut(await client.refreshTokenGrant(state.config, refresh_token))
  },

  async revoke({ token, hint }) {
    await client.tokenRevocation(state.config, token, hint ? { token_type_hint: hint } : undefined)
    return {}
  },

  async introspect({ token, hint }) {
    return { introspection: await client.tokenIntrospection(state.config, token, hint ? { token_type_hint: hint } : undefined) }
  },

  async client_credentials({ scope }) {
    const tokens = await client.clientCredentialsGrant(state.config, scope ? { scope } : undefined)
    return { tokens: { ...tokens } }
  },

  async end_session({ id_token_hint, post_logout_redirect_uri, state: logoutState }) {
    const url = client.buildEndSessionUrl(state.config, { id_token_hint, post_logout_redirect_uri, state: logoutState })
    return { url: url.href }
  },
}

function describe(err) {
  const out = { ok: false, error: err?.name ?? 'Error', message: String(err?.message ?? err) }
  if (err?.code) out.code = err.code
  if (err?.error) out.oauth_error = err.error
  if (err?.error_description) out.oauth_error_description = err.error_description
  if (err?.status) out.status = err.status
  const cause = err?.cause
  if (cause !== undefined) {
    try {
      out.cause = cause instanceof Response ? `HTTP ${cause.status}` : JSON.parse(JSON.stringify(cause))
    } catch {
      out.cause = String(cause)
    }
  }
  return out
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
for await (const line of rl) {
  if (!line.trim()) continue
  let reply
  try {
    const cmd = JSON.parse(line)
    const op = ops[cmd.op]
    if (!op) throw new Error(`unknown op ${cmd.op}`)
    reply = { ok: true, ...(await op(cmd)) }
  } catch (err) {
    reply = describe(err)
  }
  process.stdout.write(JSON.stringify(reply) + '\n')
}
