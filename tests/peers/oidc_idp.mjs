// A school's OIDC IdP for nymgate's tests: node `oidc-provider` (OpenID certified), over HTTPS,
// with the built-in login and consent forms. Run: node oidc_idp.mjs CONFIG.json
// Prints `ready https://localhost:<port>` once listening.
//
// Test hooks (this is a test peer, so it may lie on request):
//   POST /__test/rotate {drop_old?} new signing key; JWKS publishes new and old, or with
//                                  drop_old only the new one (the old keys are retired)
//   POST /__test/jwks_fetches      how many times the JWKS was served: {count}
//   POST /__test/tamper {mode}     the next token response carries a tampered ID token
//   POST /__test/userinfo_sub {sub} the next userinfo response claims another subject
//   POST /__test/fail {path, status, error?, error_description?} the next request to `path`
//                                  gets `status` and an OAuth error (these, when given)
//   POST /__test/claim {user, name, value} the user's claim `name` is `value` from now on
//   POST /__test/issuer {issuer}   the provider names another issuer in its metadata and tokens
//   POST /__test/last_authorization {} what the last authorization request asked: {prompt,
//                                  max_age} as sent (null when absent), then forgets it; {}
//                                  when there was none since the last call
//   tamper mode "drop_id_token"    the next token response has no ID token
//   tamper mode "stale_auth_time"  the next ID token says the user authenticated an hour ago
//   tamper mode "retired_key"      the next ID token is signed by the last key dropped by
//                                  rotate {drop_old}, under its kid (the IdP's removed key)
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';
import * as jose from 'jose';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const alg = config.alg ?? 'RS256';
const b64 = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const decode = (part) => JSON.parse(Buffer.from(part, 'base64url').toString());

async function newKey(kid = `k-${randomBytes(6).toString('hex')}`) {
  const { privateKey, publicKey } = await jose.generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await jose.exportJWK(privateKey)), kid, alg, use: 'sig' };
  return { jwk, privateKey, publicKey, kid };
}

let keys = [await newKey()];
// Keys removed from the JWKS by rotate {drop_old}, newest first.
let retired = [];
let jwksFetches = 0;
let tamper = null;
let userinfoSub = null;
let failNext = null;
let lastAuthorization = {};

// Each forgery starts from the genuine token the provider just issued.
async function forge(mode, idToken) {
  const [h, p] = idToken.split('.');
  const header = decode(h);
  const payload = decode(p);
  const now = Math.floor(Date.now() / 1000);
  const sign = (hdr, body, key) => new jose.CompactSign(Buffer.from(JSON.stringify(body))).setProtectedHeader(hdr).sign(key);
  const current = keys[0];
  switch (mode) {
    case 'alg_none': return `${b64({ alg: 'none', kid: header.kid })}.${p}.`;
    case 'alg_none_caps': return `${b64({ alg: 'None', kid: header.kid })}.${p}.`;
    case 'hs256_with_public_key': {
      // CVE-2015-9235: HMAC keyed with the RSA public key that verifiers know.
      const pem = await jose.exportSPKI(current.publicKey);
      return sign({ alg: 'HS256', kid: header.kid }, payload, new TextEncoder().encode(pem));
    }
    case 'bad_signature': {
      const parts = idToken.split('.');
      const sig = Buffer.from(parts[2], 'base64url');
      sig[10] ^= 0x01;
      return `${parts[0]}.${parts[1]}.${sig.toString('base64url')}`;
    }
    case 'foreign_key': return sign(header, payload, (await newKey()).privateKey);
    case 'retired_key': return sign({ ...header, kid: retired[0].kid }, payload, retired[0].privateKey);
    case 'unknown_kid': {
      const other = await newKey();
      return sign({ ...header, kid: other.kid }, payload, other.privateKey);
    }
    case 'jku_header': {
      // The attacker's key travels in the header (jwk) and by URL (jku); the kid is genuine.
      const attacker = await newKey();
      const publicJwk = await jose.exportJWK(attacker.publicKey);
      return sign({ ...header, jku: 'http://127.0.0.1:9/jwks', jwk: publicJwk }, payload, attacker.privateKey);
    }
    case 'ecdsa_zero_sig': return `${b64({ alg: 'ES256', kid: header.kid })}.${p}.${Buffer.alloc(64).toString('base64url')}`;
    case 'wrong_iss': return sign(header, { ...payload, iss: 'https://evil.example' }, current.privateKey);
    case 'wrong_aud': return sign(header, { ...payload, aud: 'someone-else' }, current.privateKey);
    case 'extra_untrusted_aud': {
      const aud = [].concat(payload.aud, 'someone-else');
      return sign(header, { ...payload, aud, azp: [].concat(payload.aud)[0] }, current.privateKey);
    }
    // An IdP that answers prompt=login / max_age=0 with a session an hour old.
    case 'stale_auth_time': return sign(header, { ...payload, auth_time: now - 3600 }, current.privateKey);
    case 'wrong_nonce': return sign(header, { ...payload, nonce: 'not-the-nonce' }, current.privateKey);
    case 'expired': return sign(header, { ...payload, exp: now - 600, iat: now - 1200 }, current.privateKey);
    case 'no_sub': {
      const { sub, ...rest } = payload;
      return sign(header, rest, current.privateKey);
    }
    case 'future_iat': return sign(header, { ...payload, iat: now + 3600, exp: now + 7200 }, current.privateKey);
    case 'nbf_future': return sign(header, { ...payload, nbf: now + 3600 }, current.privateKey);
    case 'wrong_azp': return sign(header, { ...payload, azp: 'another-client' }, current.privateKey);
    case 'no_kid': {
      const { kid, ...rest } = header;
      return sign(rest, payload, current.privateKey);
    }
    case 'rs384': {
      // The IdP's own RSA key, under an algorithm the tenant does not allow (WebCrypto keys are
      // bound to one hash, so import the same key material for RS384).
      const key = await jose.importJWK({ ...current.jwk, alg: 'RS384' }, 'RS384');
      return sign({ ...header, alg: 'RS384' }, payload, key);
    }
    case 'no_exp': {
      const { exp, ...rest } = payload;
      return sign(header, rest, current.privateKey);
    }
    case 'exp_string': return sign(header, { ...payload, exp: String(payload.exp) }, current.privateKey);
    case 'no_aud': {
      const { aud, ...rest } = payload;
      return sign(header, rest, current.privateKey);
    }
    default: throw new Error(`unknown tamper mode ${mode}`);
  }
}

function buildProvider(issuer) {
  const provider = new Provider(issuer, {
    clients: config.clients.map((c) => ({
      ...c,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: alg,
    })),
    jwks: { keys: keys.map((k) => k.jwk) },
    claims: config.claims,
    conformIdTokenClaims: config.conform_id_token_claims,
    cookies: { keys: [randomBytes(16).toString('hex')] },
    // PKCE is required, except for the clients listed in `pkce_optional_clients` (SATOSA's
    // OIDC backend, pyoidc, sends no code_challenge; bench/idp_compare.sh).
    pkce: { required: (ctx, client) => !(config.pkce_optional_clients ?? []).includes(client.clientId) },
    features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
    async findAccount(ctx, id) {
      const user = config.users[id];
      if (!user) return undefined;
      return { accountId: id, claims: async () => ({ ...user }) };
    },
  });
  // Post-process the JSON bodies of the token and userinfo endpoints when a hook asked for it.
  provider.use(async (ctx, next) => {
    if (ctx.path === '/auth') {
      // What the relying party asked of the login (OIDC Core §3.1.2.1), for /__test/last_authorization.
      lastAuthorization = { prompt: ctx.query.prompt ?? null, max_age: ctx.query.max_age ?? null };
    }
    await next();
    if (ctx.path === '/token' && ctx.body?.id_token && tamper) {
      const mode = tamper;
      tamper = null;
      if (mode === 'drop_id_token') {
        const { id_token, ...rest } = ctx.body;
        ctx.body = rest;
      } else {
        ctx.body = { ...ctx.body, id_token: await forge(mode, ctx.body.id_token) };
      }
    }
    if (ctx.path === '/me' && ctx.body?.sub && userinfoSub) {
      ctx.body = { ...ctx.body, sub: userinfoSub };
      userinfoSub = null;
    }
  });
  return provider;
}

async function readJson(req) {
  let text = '';
  for await (const chunk of req) text += chunk;
  return text ? JSON.parse(text) : {};
}

let provider;
let issuer;
const server = https.createServer(
  { cert: readFileSync(config.cert), key: readFileSync(config.key) },
  async (req, res) => {
    if (req.url.startsWith('/__test/') && req.method === 'POST') {
      const body = await readJson(req);
      let answer = {};
      if (req.url === '/__test/rotate') {
        const fresh = await newKey();
        if (body.drop_old) {
          retired = [...keys, ...retired];
          keys = [fresh];
        } else {
          keys = [fresh, ...keys];
        }
        provider = buildProvider(issuer);
        answer = { kid: keys[0].kid };
      } else if (req.url === '/__test/jwks_fetches') {
        answer = { count: jwksFetches };
      } else if (req.url === '/__test/tamper') {
        tamper = body.mode;
        answer = { armed: tamper };
      } else if (req.url === '/__test/userinfo_sub') {
        userinfoSub = body.sub;
        answer = { armed: userinfoSub };
      } else if (req.url === '/__test/fail') {
        failNext = body;
        answer = { armed: body.path };
      } else if (req.url === '/__test/claim') {
        // The user's claim `name` is `value` from now on (what a school's directory holds).
        config.users[body.user][body.name] = body.value;
        answer = { armed: body.name };
      } else if (req.url === '/__test/last_authorization') {
        answer = lastAuthorization;
        lastAuthorization = {};
      } else if (req.url === '/__test/issuer') {
        provider = buildProvider(body.issuer);
        answer = { armed: body.issuer };
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
      return;
    }
    const pathname = new URL(req.url, 'https://localhost').pathname;
    if (pathname === '/jwks') jwksFetches += 1;
    if (failNext && pathname === failNext.path) {
      const { status, error, error_description } = failNext;
      failNext = null;
      res.writeHead(status, { 'content-type': 'application/json' });
      const answer = { error: error ?? (status >= 500 ? 'server_error' : 'invalid_grant') };
      if (error_description) answer.error_description = error_description;
      res.end(JSON.stringify(answer));
      return;
    }
    provider.callback()(req, res);
  },
);
server.listen(config.port ?? 0, config.host ?? '127.0.0.1', () => {
  const { port } = server.address();
  issuer = config.issuer ?? `https://localhost:${port}`;
  provider = buildProvider(issuer);
  console.log(`ready ${issuer}`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
