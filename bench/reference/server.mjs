// The reference of the side-by-side benchmark: panva's oidc-provider configured like the NIXA the
// benchmark seeds (bench/run.py), so both answer the same load generator on the same paths:
//   - the same clients: bench-web (confidential, code + PKCE, first party: no consent page),
//     bench-service (client_credentials for the benchmark API), bench-api (the API: introspects);
//   - client_credentials tokens for the API asked with `resource` (RFC 8707), as ES256 JWTs
//     (RFC 9068); introspection (RFC 7662) and UserInfo enabled; ID tokens ES256. The library
//     refuses to introspect its JWT access tokens (unsupported_token_type), so a second indicator
//     of the same API (`resource.opaque_indicator`) issues opaque ones: those are what the
//     benchmark introspects here;
//   - NIXA's endpoint paths (/authorize, /token, /introspect, /userinfo, /jwks);
//   - a sign-in that posts a form (csrf field, username, password) to /interaction/<uid>/local.
// It keeps its state in the library's in-memory adapter: the counterpart of NIXA's embedded store.
//
//   node server.mjs --config bench-reference.json     (written by bench/run.py; see loadConfig)

import { createHash, createHmac, generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

import { Provider, errors } from 'oidc-provider';

function loadConfig() {
  const { values } = parseArgs({ options: { config: { type: 'string' } }, strict: true });
  if (!values.config) {
    process.stderr.write('usage: node server.mjs --config FILE\n');
    process.exit(2);
  }
  // { issuer, host, port, clients: [...], resource: { indicator, opaque_indicator, scope },
  //   citizens: [{ username, password, claims }] }
  return JSON.parse(readFileSync(values.config, 'utf8'));
}

const digest = (value) => createHash('sha256').update(value).digest();

function signingKeys() {
  // The keys NIXA's ring publishes at first start: one per algorithm it signs with.
  const jwk = (key, alg, kid) => ({ ...key.privateKey.export({ format: 'jwk' }), use: 'sig', alg, kid });
  return {
    keys: [
      jwk(generateKeyPairSync('ec', { namedCurve: 'P-256' }), 'ES256', 'bench-es256'),
      jwk(generateKeyPairSync('rsa', { modulusLength: 2048 }), 'RS256', 'bench-rs256'),
      jwk(generateKeyPairSync('ed25519'), 'EdDSA', 'bench-eddsa'),
    ],
  };
}

function htmlEscape(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function buildProvider(config) {
  // Passwords are compared as SHA-256 digests in constant time: the reference checks no slow hash,
  // the benchmark reports NIXA's flows with and without its argon2id check.
  const accounts = new Map(config.citizens.map((c) => [c.username, { ...c, digest: digest(c.password) }]));
  const { indicator, opaque_indicator: opaqueIndicator, scope } = config.resource;
  const provider = new Provider(config.issuer, {
    clients: config.clients,
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    jwks: signingKeys(),
    cookies: { keys: [randomBytes(32).toString('hex')] },
    routes: {
      authorization: '/authorize',
      token: '/token',
      introspection: '/introspect',
      userinfo: '/userinfo',
      jwks: '/jwks',
    },
    // offline_access as NIXA: a refresh token only when it is asked for (and the refresh_token grant exists).
    scopes: ['openid', 'offline_access', 'profile', 'email', scope],
    claims: {
      profile: ['name', 'given_name', 'family_name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      userinfo: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => false,
        async getResourceServerInfo(ctx, resourceIndicator) {
          if (resourceIndicator === indicator) {
            return { scope, audience: indicator, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } };
          }
          if (resourceIndicator === opaqueIndicator) return { scope, audience: opaqueIndicator, accessTokenFormat: 'opaque' };
          throw new errors.InvalidTarget();
        },
      },
    },
    findAccount: async (ctx, id) => {
      const account = accounts.get(id);
      return account && { accountId: id, claims: async () => ({ sub: id, ...account.claims }) };
    },
    // First-party client, as NIXA's bench-web: no consent page. Every flow of the benchmark is a
    // fresh browser, so each authorization gets a grant of exactly the scopes it asked for.
    async loadExistingGrant({ oidc }) {
      const { client, session, requestParamScopes } = oidc;
      const grant = new oidc.provider.Grant({ clientId: client.clientId, accountId: session.accountId });
      grant.addOIDCScope([...requestParamScopes].join(' '));
      await grant.save();
      return grant;
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl: { AccessToken: 600, AuthorizationCode: 60, ClientCredentials: 600, IdToken: 600, Interaction: 600, Session: 8 * 3600, Grant: 8 * 3600 },
  });
  return { provider, accounts };
}

function loginPage(uid, csrf, error) {
  return `<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><title>Đăng nhập / Sign in</title></head>
<body>
<h1>Đăng nhập / Sign in</h1>
${error ? `<p role="alert">${htmlEscape(error)}</p>` : ''}
<form method="post" action="/interaction/${htmlEscape(uid)}/local">
  <input type="hidden" name="csrf" value="${htmlEscape(csrf)}">
  <label>Tên đăng nhập / Username <input name="username" autocomplete="username"></label>
  <label>Mật khẩu / Password <input type="password" name="password" autocomplete="current-password"></label>
  <button type="submit">Đăng nhập / Sign in</button>
</form>
</body></html>`;
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 16_384) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, type, body) {
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' }).end(body);
}

async function handleInteraction(provider, accounts, csrfKey, req, res, post) {
  // The interaction is bound to this browser by the library's signed interaction cookie; the
  // csrf field is an HMAC of the interaction's uid, as NIXA's form carries one.
  const { uid, prompt } = await provider.interactionDetails(req, res);
  const csrf = createHmac('sha256', csrfKey).update(uid).digest('base64url');
  if (!post) {
    send(res, 200, 'text/html; charset=utf-8', loginPage(uid, csrf));
    return;
  }
  const form = await readForm(req);
  const given = Buffer.from(form.get('csrf') ?? '');
  if (given.length !== csrf.length || !timingSafeEqual(given, Buffer.from(csrf)) || prompt.name !== 'login') {
    send(res, 400, 'text/html; charset=utf-8', loginPage(uid, csrf, 'Phiên đăng nhập không hợp lệ / Invalid sign-in form'));
    return;
  }
  const account = accounts.get(form.get('username') ?? '');
  if (!account || !timingSafeEqual(account.digest, digest(form.get('password') ?? ''))) {
    send(res, 400, 'text/html; charset=utf-8', loginPage(uid, csrf, 'Sai tên đăng nhập hoặc mật khẩu / Wrong username or password'));
    return;
  }
  await provider.interactionFinished(req, res, { login: { accountId: account.username } }, { mergeWithLastSubmission: false });
}

function main() {
  const config = loadConfig();
  const { provider, accounts } = buildProvider(config);
  const csrfKey = randomBytes(32);
  const oidc = provider.callback();
  const server = http.createServer((req, res) => {
    const { pathname } = new URL(req.url, config.issuer);
    const interaction = /^\/interaction\/[\w-]+(\/local)?$/.exec(pathname);
    if (pathname === '/health') {
      send(res, 200, 'application/json', '{"status":"ok"}');
    } else if (interaction && (req.method === 'GET' ? !interaction[1] : req.method === 'POST' && interaction[1])) {
      handleInteraction(provider, accounts, csrfKey, req, res, req.method === 'POST').catch((err) => {
        if (!res.headersSent) send(res, 400, 'text/plain; charset=utf-8', `interaction failed: ${err.message}`);
      });
    } else {
      oidc(req, res);
    }
  });
  server.listen(config.port, config.host ?? '127.0.0.1', () => process.stdout.write(`listening on ${config.issuer}\n`));
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
