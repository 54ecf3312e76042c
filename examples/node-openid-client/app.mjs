// A small agency app that signs citizens in with NIXA: express + panva's openid-client v6 (a
// certified OpenID relying party library), jose for the back-channel logout token.
//
// What an agency app has to do, and nothing else:
// - sign in: authorization code + PKCE (S256), state and nonce; openid-client checks the
//   response's iss (RFC 9207), state, the code exchange and the ID token (signature from the
//   JWKS, iss, aud, exp, iat, nonce);
// - a level step-up: acr_values asks for a level, and the app checks the ID token's acr reaches it;
// - UserInfo with the access token (openid-client checks its sub is the ID token's);
// - RP-initiated logout (end_session_endpoint with id_token_hint, post_logout_redirect_uri, state);
// - back-channel logout: NIXA POSTs a logout token; the app verifies it (OpenID Connect
//   Back-Channel Logout 1.0 §2.6) and ends its own session for that sid.
//
// Configuration (environment): NIXA_ISSUER, CLIENT_ID, CLIENT_SECRET, APP_URL (this app's own
// address, which decides the port it listens on). Over https, trust a private CA with
// NODE_EXTRA_CA_CERTS. Plain http is allowed only when NIXA_ISSUER itself is http (the http
// sandbox); against an https issuer the library runs with its default checks.

import { randomBytes } from 'node:crypto'
import express from 'express'
import session from 'express-session'
import * as jose from 'jose'
import * as client from 'openid-client'

const ISSUER = (process.env.NIXA_ISSUER ?? 'http://127.0.0.1:8000').replace(/\/$/, '')
const CLIENT_ID = process.env.CLIENT_ID ?? 'example-openid-client'
const CLIENT_SECRET = process.env.CLIENT_SECRET ?? ''
const APP_URL = (process.env.APP_URL ?? 'http://127.0.0.1:8012').replace(/\/$/, '')

// NIXA's levels of assurance, lowest first (discovery lists them as acr_values_supported).
const LEVELS = ['urn:nixa:loa:low', 'urn:nixa:loa:substantial', 'urn:nixa:loa:high']
const LEVEL_NAMES = { [LEVELS[0]]: 'Thấp · Low', [LEVELS[1]]: 'Đáng kể · Substantial', [LEVELS[2]]: 'Cao · High' }
const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout'

if (!CLIENT_SECRET) {
  console.error('sample app: set CLIENT_SECRET (`nixa clients import client.json` prints it once)')
  process.exit(2)
}
const insecure = new URL(ISSUER).protocol === 'http:'
const config = await client.discovery(new URL(ISSUER), CLIENT_ID, {}, client.ClientSecretBasic(CLIENT_SECRET), {
  ...(insecure ? { execute: [client.allowInsecureRequests] } : {}),
  timeout: 10,
})
const server = config.serverMetadata()
// jose caches the key set and fetches it again when a token names a kid it does not hold (key rotation).
const jwks = jose.createRemoteJWKSet(new URL(server.jwks_uri))

// Signed-in users, server-side: the session cookie holds only an id, never a token.
const endedSids = new Map() // NIXA sessions ended by back-channel logout -> when
const seenLogoutJti = new Map()

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c])
const json = (v) => esc(JSON.stringify(v, null, 2))

function page(res, title, body, status = 200) {
  res.status(status).type('html').send(
    `<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>${esc(title)}</title>` +
      '<meta name="viewport" content="width=device-width, initial-scale=1"></head><body>' +
      '<header><strong>Ứng dụng mẫu (openid-client)</strong> · <span lang="en">Sample app (openid-client)</span></header>' +
      `<main id="main">${body}</main></body></html>`,
  )
}

function errorPage(res, error, description, status = 400) {
  page(res, 'Lỗi · Error', "<h1>Không đăng nhập được · <span lang='en'>Sign-in failed</span></h1>" +
    `<p role='alert' id='error'><code>${esc(error)}</code>: ${esc(description)}</p>` +
    "<p><a href='/'>Quay lại · <span lang='en'>Back</span></a></p>", status)
}

// The OAuth error in what openid-client throws: a JSON error body (ResponseBodyError) or, for a
// 401 such as a wrong client secret, the WWW-Authenticate challenge (WWWAuthenticateChallengeError).
function oauthError(err) {
  const challenge = Array.isArray(err.cause) ? err.cause[0]?.parameters : undefined
  return [err.error ?? challenge?.error ?? err.code ?? 'error', err.error_description ?? challenge?.error_description ?? err.message]
}

function levelForm(levels, label, button) {
  const options = levels.map((v) => `<option value="${v}">${esc(LEVEL_NAMES[v])}</option>`).join('')
  return `<form method="get" action="/login"><p><label for="acr">${label}</label> ` +
    `<select id="acr" name="acr">${options}</select> <button type="submit">${button}</button></p></form>`
}

function currentUser(req) {
  const user = req.session.user
  if (user && endedSids.has(user.claims.sid)) {
    delete req.session.user // NIXA told us this session was signed out
    return null
  }
  return user ?? null
}

const app = express()
app.disable('x-powered-by')
app.use(session({
  name: 'example_openid_client',
  secret: process.env.APP_SESSION_SECRET || randomBytes(32).toString('base64url'),
  resave: false,
  saveUninitialized: false,
  cookie: { httpOnly: true, sameSite: 'lax', secure: APP_URL.startsWith('https://') },
}))

app.get('/', (req, res) => {
  const user = currentUser(req)
  let note = ''
  if (req.query.state && req.query.state === req.session.logoutState) {
    delete req.session.logoutState
    note = "<p role='status' id='signed-out'>Bạn đã đăng xuất · <span lang='en'>You are signed out.</span></p>"
  }
  if (!user) {
    return page(res, 'Ứng dụng mẫu', note + "<h1>Đăng nhập bằng NIXA · <span lang='en'>Sign in with NIXA</span></h1>" +
      levelForm(LEVELS, "Mức độ đảm bảo · <span lang='en'>Level of assurance</span>", "Đăng nhập · <span lang='en'>Sign in</span>"))
  }
  const { claims } = user
  const higher = LEVELS.slice(LEVELS.indexOf(claims.acr) + 1)
  const stepUp = higher.length
    ? levelForm(higher, "Nâng mức · <span lang='en'>Step up to</span>", "Nâng mức · <span lang='en'>Step up</span>")
    : ''
  page(res, 'Ứng dụng mẫu',
    `<h1>Xin chào · <span lang='en'>Hello</span>, ${esc(claims.name ?? claims.sub)}</h1>` +
      `<p>Mức · <span lang='en'>Level</span>: <span id='acr'>${esc(claims.acr)}</span></p>` +
      "<h2>ID token (đã xác minh · <span lang='en'>verified</span>)</h2>" +
      `<pre id='id-token-claims'>${json(claims)}</pre>${stepUp}<p><a href='/userinfo'>UserInfo</a></p>` +
      '<form method="post" action="/logout"><button type="submit">Đăng xuất · <span lang="en">Sign out</span></button></form>')
})

app.get('/login', async (req, res) => {
  const acr = LEVELS.includes(req.query.acr) ? req.query.acr : LEVELS[0]
  const verifier = client.randomPKCECodeVerifier()
  const pending = { verifier, state: client.randomState(), nonce: client.randomNonce(), acr }
  req.session.pending = pending
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: `${APP_URL}/callback`,
    scope: 'openid profile email phone address',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state: pending.state,
    nonce: pending.nonce,
    acr_values: acr,
  })
  res.redirect(303, url.href)
})

app.get('/callback', async (req, res) => {
  const pending = req.session.pending
  delete req.session.pending
  if (req.query.error) {
    // An OAuth error NIXA sent back; openid-client would throw it too, after checking iss and state.
    return errorPage(res, req.query.error, req.query.error_description ?? '')
  }
  if (!pending) return errorPage(res, 'no_pending_sign_in', 'this browser has no sign-in in progress')
  let tokens
  try {
    tokens = await client.authorizationCodeGrant(config, new URL(req.originalUrl, APP_URL), {
      pkceCodeVerifier: pending.verifier,
      expectedState: pending.state,
      expectedNonce: pending.nonce,
      idTokenExpected: true,
    })
  } catch (err) {
    return errorPage(res, ...oauthError(err))
  }
  const claims = tokens.claims()
  if (!LEVELS.includes(claims.acr) || LEVELS.indexOf(claims.acr) < LEVELS.indexOf(pending.acr)) {
    return errorPage(res, 'insufficient_acr', `asked for ${pending.acr}, the ID token says ${claims.acr}`, 403)
  }
  req.session.regenerate((err) => {
    if (err) return errorPage(res, 'session_error', String(err), 500)
    req.session.user = { claims, idToken: tokens.id_token, accessToken: tokens.access_token }
    res.redirect(303, '/')
  })
})

app.get('/userinfo', async (req, res) => {
  const user = currentUser(req)
  if (!user) return res.redirect(303, '/')
  try {
    const info = await client.fetchUserInfo(config, user.accessToken, user.claims.sub) // checks sub
    page(res, 'UserInfo', `<h1>UserInfo</h1><pre id='userinfo'>${json(info)}</pre><p><a href='/'>←</a></p>`)
  } catch (err) {
    errorPage(res, ...oauthError(err), 502)
  }
})

app.post('/logout', (req, res) => {
  const user = req.session.user
  delete req.session.user
  if (!user) return res.redirect(303, '/')
  const state = client.randomState()
  req.session.logoutState = state
  const url = client.buildEndSessionUrl(config, { id_token_hint: user.idToken, post_logout_redirect_uri: `${APP_URL}/`, state })
  res.redirect(303, url.href)
})

// Back-Channel Logout 1.0 §2.6: signature, typ, iss, aud, iat, exp, jti, events, sid, no nonce.
async function verifyLogoutToken(token) {
  const { payload } = await jose.jwtVerify(token, jwks, {
    issuer: server.issuer,
    audience: CLIENT_ID,
    typ: 'logout+jwt',
    algorithms: server.id_token_signing_alg_values_supported,
    maxTokenAge: '5 minutes',
    requiredClaims: ['iat', 'exp', 'jti', 'events'],
  })
  if (typeof payload.events !== 'object' || !(BACKCHANNEL_EVENT in payload.events)) throw new Error('no back-channel logout event')
  if ('nonce' in payload) throw new Error('a logout token carries no nonce')
  if (!payload.sid) throw new Error('no sid (this app registers backchannel_logout_session_required)')
  return payload
}

app.post('/backchannel-logout', express.urlencoded({ extended: false, limit: '16kb' }), async (req, res) => {
  res.set('Cache-Control', 'no-store')
  let claims
  try {
    claims = await verifyLogoutToken(String(req.body?.logout_token ?? ''))
  } catch (err) {
    return res.status(400).type('text').send(`invalid logout token: ${err.code ?? err.name}: ${err.message}`)
  }
  if (seenLogoutJti.has(claims.jti)) return res.status(400).type('text').send('logout token replayed')
  const now = Date.now()
  for (const store of [seenLogoutJti, endedSids]) { // forget after a day: NIXA's sessions are shorter
    for (const [key, at] of store) if (at < now - 86400_000) store.delete(key)
  }
  seenLogoutJti.set(claims.jti, now)
  endedSids.set(claims.sid, now)
  res.status(200).end()
})

const url = new URL(APP_URL)
app.listen(Number(url.port || 80), url.hostname, () => {
  console.log(`sample app (openid-client) on ${APP_URL}, NIXA at ${ISSUER}, client ${CLIENT_ID}, ` +
    `allowInsecureRequests: ${insecure ? 'on (http issuer)' : 'off'}`)
})
