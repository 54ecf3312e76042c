// A stand-in mobile operator's sign-in (Mobile Connect style) built on panva's certified
// oidc-provider: code flow with PKCE, RFC 9207 `iss`, `login_hint` carrying the MSISDN and
// `acr_values` for the level. The subscriber "confirms on the phone" through a tiny HTML page
// that a test can submit without a browser. Synthetic data only; nothing is persisted.
//
//   node operator.mjs --port 9100 --issuer http://127.0.0.1:9100 \
//     --client-id nixa --client-secret s3cret --redirect-uri http://127.0.0.1:8000/login/callback/operator
//   node operator.mjs --config operator.json     (same keys, plus `clients: [...]` for several)

import { createHash, createHmac, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

import { Provider } from 'oidc-provider';

// Mobile Connect levels: "2" = the subscriber confirms on the handset, "3" = confirms with a PIN.
const ACR_SUPPORTED = ['2', '3'];
const DEFAULT_ACR = '2';
// RFC 8176 values: "mca" = multiple-channel (browser, then the handset over the mobile network);
// at level 3 the subscriber also enters a PIN on the handset, hence "pin" and "mfa".
const AMR_BY_ACR = { 2: ['mca'], 3: ['mca', 'pin', 'mfa'] };

function loadConfig() {
  const { values } = parseArgs({
    options: {
      config: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      issuer: { type: 'string' },
      'client-id': { type: 'string' },
      'client-secret': { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true },
      'token-endpoint-auth-method': { type: 'string' },
      'subscriber-salt': { type: 'string' },
    },
    strict: true,
  });
  const fromFile = values.config ? JSON.parse(readFileSync(values.config, 'utf8')) : {};
  const config = {
    host: values.host ?? fromFile.host ?? '127.0.0.1',
    port: Number(values.port ?? fromFile.port ?? 0),
    issuer: values.issuer ?? fromFile.issuer,
    subscriberSalt: values['subscriber-salt'] ?? fromFile.subscriber_salt ?? 'nixa-sandbox-operator',
    clients: [...(fromFile.clients ?? [])],
  };
  if (values['client-id']) {
    config.clients.push({
      client_id: values['client-id'],
      client_secret: values['client-secret'],
      redirect_uris: values['redirect-uri'] ?? [],
      token_endpoint_auth_method: values['token-endpoint-auth-method'] ?? 'client_secret_basic',
    });
  }
  if (!config.port || !config.issuer || config.clients.length === 0) {
    process.stderr.write('usage: node operator.mjs --port N --issuer URL --client-id ID --client-secret S --redirect-uri URL\n');
    process.exit(2);
  }
  return config;
}

// Accepts "MSISDN:84912345678", "+84 912 345 678", "0912345678"; returns "84912345678" or null.
function normalizeMsisdn(raw) {
  if (typeof raw !== 'string') return null;
  let value = raw.trim().replace(/^msisdn:/i, '').replace(/[\s.()-]/g, '');
  if (value.startsWith('+')) value = value.slice(1);
  else if (value.startsWith('0')) value = `84${value.slice(1)}`;
  return /^[1-9]\d{7,14}$/.test(value) ? value : null;
}

function htmlEscape(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

// The provider's state (interactions, codes, sessions, grants) for one process, with expiry.
// Our own rather than the library's development adapter so that the process stays quiet.
const storage = new Map();
const grantable = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

function storageGet(key) {
  const item = storage.get(key);
  if (!item) return undefined;
  if (item.expiresAt <= Date.now()) {
    storage.delete(key);
    return undefined;
  }
  return item.value;
}

function storageSet(key, value, expiresIn) {
  if (storage.size > 10_000) {
    for (const [k, item] of storage) if (item.expiresAt <= Date.now()) storage.delete(k);
  }
  storage.set(key, { value, expiresAt: Date.now() + expiresIn * 1000 });
}

class MemoryAdapter {
  constructor(model) { this.model = model; }

  key(id) { return `${this.model}:${id}`; }

  async upsert(id, payload, expiresIn) {
    if (this.model === 'Session') storageSet(`sessionUid:${payload.uid}`, id, expiresIn);
    if (grantable.has(this.model) && payload.grantId) {
      const grantKey = `grant:${payload.grantId}`;
      storageSet(grantKey, [...(storageGet(grantKey) ?? []), this.key(id)], expiresIn);
    }
    if (payload.userCode) storageSet(`userCode:${payload.userCode}`, id, expiresIn);
    storageSet(this.key(id), payload, expiresIn);
  }

  async find(id) { return storageGet(this.key(id)); }

  async findByUid(uid) { return this.find(storageGet(`sessionUid:${uid}`)); }

  async findByUserCode(userCode) { return this.find(storageGet(`userCode:${userCode}`)); }

  async consume(id) {
    const payload = storageGet(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) { storage.delete(this.key(id)); }

  async revokeByGrantId(grantId) {
    for (const key of storageGet(`grant:${grantId}`) ?? []) storage.delete(key);
    storage.delete(`grant:${grantId}`);
  }
}

function signingKeys() {
  // Fresh keys per process: tests fetch the JWKS from discovery, as a real relying party does.
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return {
    keys: [
      { ...rsa, use: 'sig', alg: 'RS256', kid: 'operator-rs256' },
      { ...ec, use: 'sig', alg: 'ES256', kid: 'operator-es256' },
    ],
  };
}

function buildProvider(config) {
  const accountFor = (accountId) => ({
    accountId,
    async claims() {
      // `sub` is replaced by the pairwise subscriber reference below, never the MSISDN.
      return { sub: accountId, phone_number: `+${accountId}`, phone_number_verified: true };
    },
  });

  const provider = new Provider(config.issuer, {
    clients: config.clients.map((client) => ({
      grant_types: ['authorization_code'],
      response_types: ['code'],
      subject_type: 'pairwise',
      ...client,
    })),
    clientDefaults: { id_token_signed_response_alg: 'RS256' },
    jwks: signingKeys(),
    adapter: MemoryAdapter,
    cookies: {
      keys: [createHash('sha256').update(`${config.subscriberSalt}:cookies`).digest('hex')],
      long: { signed: true },
      short: { signed: true },
    },
    acrValues: ACR_SUPPORTED,
    scopes: ['openid', 'phone'],
    claims: {
      acr: null,
      amr: null,
      auth_time: null,
      iss: null,
      sid: null,
      // Every ID token tells when and how the subscriber confirmed (not only when requested).
      openid: ['sub', 'acr', 'auth_time', 'amr'],
      phone: ['phone_number', 'phone_number_verified'],
    },
    subjectTypes: ['public', 'pairwise'],
    // Mobile Connect's PCR: a per-service-provider pseudonym of the subscriber, stable over time.
    async pairwiseIdentifier(ctx, accountId, client) {
      return createHmac('sha256', config.subscriberSalt)
        .update(`${client.sectorIdentifier}|${accountId}`)
        .digest('base64url');
    },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      // RP-Initiated Logout 1.0: NIXA's sign-out sends the browser here to end the subscriber's
      // operator session too, then back to NIXA's registered post_logout_redirect_uri.
      rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
    },
    findAccount: async (ctx, id) => (normalizeMsisdn(id) === id ? accountFor(id) : undefined),
    // The operator's registered service providers are contracted: consent is implied, so the
    // grant for what was requested is created here instead of asking the subscriber again.
    async loadExistingGrant(ctx) {
      const { oidc } = ctx;
      const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
      const grant = (grantId && await oidc.provider.Grant.find(grantId))
        || new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
      grant.addOIDCScope([...oidc.requestParamScopes].join(' '));
      grant.addOIDCClaims([...oidc.requestParamClaims]);
      await grant.save();
      return grant;
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      ClientCredentials: 600,
      DeviceCode: 600,
      Grant: 3600,
      IdToken: 600,
      Interaction: 600,
      Session: 3600,
      RefreshToken: 3600,
      BackchannelAuthenticationRequest: 600,
    },
    renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = `<!doctype html><meta charset="utf-8"><title>Lỗi / Error</title><h1>${htmlEscape(out.error)}</h1><p>${htmlEscape(out.error_description)}</p>`;
    },
  });
  return provider;
}

async function logoutSource(ctx, form) {
  // `form` (id="op.logoutForm") carries the xsrf token; the buttons submit it.
  ctx.type = 'html';
  ctx.body = `<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><title>Đăng xuất nhà mạng / Operator sign-out</title></head>
<body>
<h1>Đăng xuất khỏi nhà mạng? / Sign out of the operator?</h1>
${form}
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Đăng xuất / Sign out</button>
<button type="submit" form="op.logoutForm">Ở lại / Stay signed in</button>
</body></html>`;
}

async function postLogoutSuccessSource(ctx) {
  ctx.type = 'html';
  ctx.body = '<!doctype html><html lang="vi"><meta charset="utf-8"><title>Đã đăng xuất / Signed out</title>'
    + '<h1>Bạn đã đăng xuất khỏi nhà mạng. / You are signed out of the operator.</h1></html>';
}

function confirmPage({ uid, msisdn, acr, clientId, error }) {
  return `<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><title>Xác nhận đăng nhập / Confirm sign-in</title></head>
<body>
<h1>Xác nhận trên điện thoại / Confirm on your phone</h1>
<p>Dịch vụ <strong>${htmlEscape(clientId)}</strong> yêu cầu đăng nhập bằng số điện thoại của bạn (mức ${htmlEscape(acr)}).<br>
Service <strong>${htmlEscape(clientId)}</strong> asks to sign you in with your mobile number (level ${htmlEscape(acr)}).</p>
${error ? `<p role="alert">${htmlEscape(error)}</p>` : ''}
<form method="post" action="/interaction/${htmlEscape(uid)}">
  <label>Số điện thoại / Mobile number <input type="tel" name="msisdn" value="${htmlEscape(msisdn)}"></label>
  <button type="submit" name="action" value="confirm">Xác nhận / Confirm</button>
  <button type="submit" name="action" value="deny">Từ chối / Decline</button>
</form>
</body></html>`;
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 16_384) reject(new Error('form too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

function chooseAcr(requested) {
  const wanted = (requested ?? '').split(' ').filter(Boolean);
  return wanted.find((acr) => ACR_SUPPORTED.includes(acr)) ?? DEFAULT_ACR;
}

async function handleInteraction(provider, req, res) {
  const details = await provider.interactionDetails(req, res);
  const { uid, params, prompt } = details;
  const acr = chooseAcr(params.acr_values);
  if (req.method === 'GET') {
    const msisdn = normalizeMsisdn(params.login_hint ?? '') ?? '';
    send(res, 200, 'text/html; charset=utf-8', confirmPage({ uid, msisdn, acr, clientId: params.client_id }));
    return;
  }
  const form = await readForm(req);
  if (form.get('action') === 'deny') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'the subscriber declined on the handset',
    }, { mergeWithLastSubmission: false });
    return;
  }
  const msisdn = normalizeMsisdn(form.get('msisdn') ?? '');
  if (!msisdn || prompt.name !== 'login') {
    send(res, 400, 'text/html; charset=utf-8', confirmPage({
      uid, msisdn: form.get('msisdn'), acr, clientId: params.client_id,
      error: 'Số điện thoại không hợp lệ / Invalid mobile number',
    }));
    return;
  }
  await provider.interactionFinished(req, res, {
    login: { accountId: msisdn, acr, amr: AMR_BY_ACR[acr], remember: false },
  }, { mergeWithLastSubmission: false });
}

function send(res, status, type, body) {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}

function main() {
  const config = loadConfig();
  const provider = buildProvider(config);
  const oidc = provider.callback();
  const server = http.createServer((req, res) => {
    const { pathname } = new URL(req.url, config.issuer);
    if (pathname === '/health') {
      send(res, 200, 'application/json', '{"status":"ok"}');
    } else if (/^\/interaction\/[\w-]+$/.test(pathname) && ['GET', 'POST'].includes(req.method)) {
      handleInteraction(provider, req, res).catch((err) => {
        if (!res.headersSent) send(res, 400, 'text/plain; charset=utf-8', `interaction failed: ${err.message}`);
      });
    } else {
      oidc(req, res);
    }
  });
  server.listen(config.port, config.host);
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
