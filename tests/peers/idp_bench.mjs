// The login driver of bench/idp_compare.sh (issue 8, "logins through a real IdP"): the same
// virtual browsers against a school IdP directly, through SATOSA and through nymgate.
//
// Each login is one virtual browser with a fresh cookie jar (browser.mjs): it starts at the
// relying party, follows every redirect, fills in the IdP's login form (oidc-provider's login and
// consent forms, SimpleSAMLphp's username/password form), submits the SAML HTTP-POST form, and
// ends when the relying party holds a verified login:
//   mode "oidc": the relying party is node openid-client (discovery, PKCE, state, nonce, code
//     grant, and the ID token's signature checked against the issuer's JWKS by
//     enableNonRepudiationChecks), against oidc-provider, SATOSA's OIDC frontend, or nymgate's
//     provider output (where the IdP behind nymgate may be OIDC or SAML);
//   mode "saml": the relying party is a samlify SP (signed AuthnRequest over HTTP-Redirect, the
//     Response's and Assertion's signatures checked with xml-crypto against the pinned IdP
//     certificate, issuer and time conditions by samlify; audience, InResponseTo and the NameID
//     checked here), against SimpleSAMLphp or SATOSA's SAML frontend.
//
// Run: node idp_bench.mjs CONFIG.json → one JSON line (logins/s, p50, p99, errors). With
// "once": true, a single login whose details are printed. TLS trust: NODE_EXTRA_CA_CERTS.
import { readFileSync } from 'node:fs';
import * as client from 'openid-client';
import * as samlify from 'samlify';
import { browse } from './browser.mjs';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const users = config.users; // logins the IdP knows; each login takes the next one
const password = config.password ?? 'x';

// ---- OIDC relying party --------------------------------------------------------------------

async function oidcRelyingParty(o) {
  const rp = await client.discovery(
    new URL(o.issuer),
    o.client_id,
    { client_secret: o.client_secret, id_token_signed_response_alg: o.alg ?? 'RS256' },
    client.ClientSecretBasic(o.client_secret),
  );
  // Verify the ID token's JWS against the issuer's JWKS (openid-client skips it by default for
  // tokens from the token endpoint over TLS; a platform that checks it is the stricter case).
  client.enableNonRepudiationChecks(rp);
  return async function login(user) {
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(rp, {
      redirect_uri: o.redirect_uri,
      scope: o.scope ?? 'openid',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      ...(o.extra_auth_params ?? {}),
    });
    const landed = await browse(url.href, { user, password, jar: {}, stopAt: o.redirect_uri });
    if (!landed.url.startsWith(o.redirect_uri)) {
      throw new Error(`ended at ${landed.url} (${landed.status}): ${String(landed.body).slice(0, 300)}`);
    }
    const tokens = await client.authorizationCodeGrant(rp, new URL(landed.url), {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: nonce,
    });
    const claims = tokens.claims();
    if (!claims?.sub) throw new Error('no sub in the ID token');
    return { steps: landed.steps.length + 1, claims };
  };
}

// ---- SAML service provider -----------------------------------------------------------------

const POST = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST';
const REDIRECT = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';

function samlServiceProvider(s) {
  // XSD validation is not what is measured; the signatures are verified by xml-crypto in
  // parseLoginResponse regardless of the validator.
  samlify.setSchemaValidator({ validate: async () => 'skipped' });
  const sp = samlify.ServiceProvider({
    entityID: s.sp_entity_id,
    authnRequestsSigned: true,
    wantAssertionsSigned: true,
    wantMessageSigned: true,
    privateKey: readFileSync(s.sp_key),
    signingCert: readFileSync(s.sp_cert),
    requestSignatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
    nameIDFormat: ['urn:oasis:names:tc:SAML:2.0:nameid-format:persistent'],
    assertionConsumerService: [{ Binding: POST, Location: s.acs_url }],
  });
  const idp = samlify.IdentityProvider({
    entityID: s.idp_entity_id,
    signingCert: readFileSync(s.idp_cert),
    wantAuthnRequestsSigned: true,
    singleSignOnService: [{ Binding: REDIRECT, Location: s.idp_sso_url }],
  });
  return async function login(user) {
    const { id, context } = sp.createLoginRequest(idp, 'redirect');
    const landed = await browse(context, { user, password, jar: {}, stopAt: s.acs_url });
    if (!landed.form?.SAMLResponse) {
      throw new Error(`no SAMLResponse form: ended at ${landed.url} (${landed.status}): ${String(landed.body).slice(0, 300)}`);
    }
    const { extract } = await sp.parseLoginResponse(idp, 'post', { body: landed.form });
    if (extract.response?.inResponseTo !== id) throw new Error(`InResponseTo ${extract.response?.inResponseTo} is not ${id}`);
    const audience = [].concat(extract.audience ?? []);
    if (!audience.includes(s.sp_entity_id)) throw new Error(`audience ${audience} is not ${s.sp_entity_id}`);
    if (!extract.nameID) throw new Error('no NameID');
    return { steps: landed.steps.length + 1, claims: { nameID: extract.nameID, attributes: extract.attributes } };
  };
}

// ---- the run -------------------------------------------------------------------------------

const login = config.mode === 'oidc' ? await oidcRelyingParty(config.oidc) : samlServiceProvider(config.saml);

if (config.once) {
  const started = performance.now();
  try {
    const result = await login(users[0]);
    console.log(JSON.stringify({ ok: true, ms: performance.now() - started, ...result }));
    process.exit(0);
  } catch (error) {
    console.log(JSON.stringify({ ok: false, error: `${error.name}: ${error.message}${error.cause ? ` (${JSON.stringify(error.cause)})` : ''}` }));
    process.exit(1);
  }
}

const concurrency = config.concurrency ?? 4;
const warmupMs = (config.warmup_s ?? 2) * 1000;
const durationMs = (config.duration_s ?? 10) * 1000;
const timeoutMs = (config.timeout_s ?? 30) * 1000;
const start = performance.now();
const measureFrom = start + warmupMs;
const measureUntil = measureFrom + durationMs;
const latencies = [];
const errors = {};
let next = 0;
let firstError = null;

async function virtualBrowser() {
  while (performance.now() < measureUntil) {
    const user = users[next++ % users.length];
    const began = performance.now();
    let timer;
    try {
      await Promise.race([
        login(user),
        new Promise((_, reject) => { timer = setTimeout(() => reject(new Error('timeout')), timeoutMs); }),
      ]);
      const ended = performance.now();
      // A login counts when it started in the measured window and ended before its end.
      if (began >= measureFrom && ended <= measureUntil) latencies.push(ended - began);
    } catch (error) {
      if (began >= measureFrom) {
        const kind = String(error.message).split(':')[0].slice(0, 80);
        errors[kind] = (errors[kind] ?? 0) + 1;
        firstError ??= `${error.name}: ${error.message}`.slice(0, 500);
      }
    } finally {
      clearTimeout(timer);
    }
  }
}

await Promise.all(Array.from({ length: concurrency }, virtualBrowser));
latencies.sort((a, b) => a - b);
const pct = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)] : null);
const errorCount = Object.values(errors).reduce((a, b) => a + b, 0);
console.log(JSON.stringify({
  mode: config.mode,
  label: config.label,
  concurrency,
  duration_s: durationMs / 1000,
  logins: latencies.length,
  logins_per_s: latencies.length / (durationMs / 1000),
  p50_ms: pct(50),
  p99_ms: pct(99),
  max_ms: latencies.at(-1) ?? null,
  errors: errorCount,
  errors_by_kind: errors,
  first_error: firstError,
}));
process.exit(0);
