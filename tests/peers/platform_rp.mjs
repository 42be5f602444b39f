// The learning platform as an ordinary OIDC relying party: node `openid-client` (certified RP)
// against nymgate's provider face. It records every byte it receives from nymgate, so the test
// can scan them for personal values. Run: node platform_rp.mjs CONFIG.json → one JSON line.
import { readFileSync } from 'node:fs';
import * as client from 'openid-client';
import { browse } from './browser.mjs';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const received = [];

// Every response from the provider side, recorded before openid-client reads it.
async function recordingFetch(url, options) {
  const response = await fetch(url, options);
  received.push({
    url: String(url),
    status: response.status,
    headers: Object.fromEntries(response.headers),
    body: await response.clone().text(),
  });
  return response;
}

const result = { ok: false, received };
try {
  const rp = await client.discovery(
    new URL(config.issuer),
    config.client_id,
    { client_secret: config.client_secret, id_token_signed_response_alg: config.alg ?? 'EdDSA' },
    client.ClientSecretBasic(config.client_secret),
    { [client.customFetch]: recordingFetch },
  );
  rp[client.customFetch] = recordingFetch;
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(rp, {
    redirect_uri: config.redirect_uri,
    scope: 'openid',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...(config.extra_auth_params ?? {}),
  });
  const landed = await browse(url.href, { user: config.user, stopAt: config.redirect_uri });
  result.browser_steps = landed.steps;
  if (!landed.url.startsWith(config.redirect_uri)) throw new Error(`login ended at ${landed.url} (${landed.status})`);
  const callback = new URL(landed.url);
  const checks = { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce };
  const tokens = await client.authorizationCodeGrant(rp, callback, checks);
  result.id_token_claims = tokens.claims();
  result.userinfo = await client.fetchUserInfo(rp, tokens.access_token, result.id_token_claims.sub);
  result.ok = true;
  // The same code again, posted by hand to another token endpoint (another replica).
  if (config.replay_token_url) {
    const response = await fetch(config.replay_token_url, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${config.client_id}:${config.client_secret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: callback.searchParams.get('code'),
        redirect_uri: config.redirect_uri,
        code_verifier: verifier,
      }),
    });
    result.replay_status = response.status;
    result.replay_error = (await response.json()).error;
  }
  if (config.replay_code) {
    try {
      await client.authorizationCodeGrant(rp, callback, checks);
      result.replay_rejected = false;
    } catch (error) {
      result.replay_rejected = true;
      result.replay_error = error.error ?? error.message;
    }
  }
} catch (error) {
  result.error = `${error.name}: ${error.message}${error.cause ? ` (${JSON.stringify(error.cause)})` : ''}`;
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
