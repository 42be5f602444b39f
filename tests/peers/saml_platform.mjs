// A SAML-only platform for nymgate's SAML output tests (issue 10): npm @node-saml/node-saml, in
// its strict defaults (both the Response and the Assertion must be signed; audience,
// InResponseTo, Destination and times checked), as the service provider of nymgate's IdP face.
//
// It makes its signed AuthnRequest (HTTP-Redirect), lets the scripted browser (browser.mjs) sign
// in at the school through nymgate, takes the SAMLResponse form that would be posted to its ACS,
// and validates it: first a copy changed after signing (which must be refused), then the real
// one. Prints one JSON line: the profile, the raw XML received, and the tampered copy's error.
//
// Options in CONFIG besides the platform's own settings: `force_authn` and `passive` (node-saml's
// forceAuthn and passive: ForceAuthn / IsPassive in its AuthnRequest); `identifier_format` (the
// NameIDPolicy Format, persistent by default) and `sp_name_qualifier`; `stop_at` (a URL prefix:
// the browser stops there and `stopped_at` is where it was going, e.g. the school's SSO with
// nymgate's AuthnRequest); `replay_request` (after the login, the same signed Redirect request is
// sent again and `replay_status` is nymgate's answer). A status Response without an Assertion
// (NoPassive) is validated too: node-saml answers a profile of null once its signature holds.
//
// Run: node saml_platform.mjs CONFIG.json. TLS trust: NODE_EXTRA_CA_CERTS.
import { readFileSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { SAML } from '@node-saml/node-saml';
import { InMemoryCacheProvider } from '@node-saml/node-saml/lib/in-memory-cache-provider.js';
import { browse } from './browser.mjs';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

function platform(validateInResponseTo = 'always') {
  return new SAML({
    entryPoint: config.sso_url,
    issuer: config.entity_id,
    callbackUrl: config.acs_url,
    audience: config.entity_id,
    idpCert: config.idp_cert,
    privateKey: config.sp_key ?? undefined,
    signatureAlgorithm: 'sha256',
    // node-saml's default digest for signed requests is SHA-1, which nymgate refuses.
    digestAlgorithm: config.digest ?? 'sha256',
    identifierFormat: config.identifier_format === undefined
      ? 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent'
      : config.identifier_format,
    spNameQualifier: config.sp_name_qualifier ?? undefined,
    forceAuthn: config.force_authn ?? false,
    passive: config.passive ?? false,
    validateInResponseTo,
    cacheProvider: cache,
    additionalAuthorizeParams: config.tenant && config.binding !== 'post' ? { tenant: config.tenant } : {},
    authnRequestBinding: config.binding === 'post' ? 'HTTP-POST' : 'HTTP-Redirect',
    // node-saml's strict defaults, named so that a change of default can't weaken the test.
    wantAssertionsSigned: true,
    wantAuthnResponseSigned: true,
  });
}

const cache = new InMemoryCacheProvider({});
const saml = platform();
const result = {};
try {
  let start = await saml.getAuthorizeUrlAsync(config.relay_state ?? '', undefined, {});
  const jar = {};
  if (config.choose) {
    // No school in the request: nymgate's chooser, and the link of the school to choose.
    const chooser = await browse(start, { user: config.user, jar, maxSteps: 5 });
    const link = String(chooser.body).match(new RegExp(`href="([^"]*tenant=${config.choose}[^"]*)"`));
    if (!link) throw new Error(`no chooser link for ${config.choose}: ${chooser.status} ${String(chooser.body).slice(0, 400)}`);
    result.chooser_status = chooser.status;
    start = new URL(link[1].replaceAll('&amp;', '&'), chooser.url).href;
  }
  let first = {};
  if (config.binding === 'post') {
    // HTTP-POST binding: the AuthnRequest signed in its XML (enveloped), posted to the SSO URL.
    const message = await saml.getAuthorizeMessageAsync(config.relay_state ?? '', undefined, {});
    // node-saml DEFLATEs POST requests too by default (Bindings §3.5.4 says plain base64);
    // nymgate takes both, and this is node-saml's default.
    result.request_xml = inflateRawSync(Buffer.from(message.SAMLRequest, 'base64')).toString('utf8');
    const form = new URLSearchParams({ ...message, ...(config.tenant ? { tenant: config.tenant } : {}) });
    first = { method: 'POST', body: form.toString() };
    start = config.sso_url;
  }
  const landed = await browse(start, { user: config.user, jar, stopAt: config.stop_at ?? config.acs_url, ...first });
  if (config.stop_at) {
    result.stopped_at = landed.url;
    console.log(JSON.stringify(result));
    process.exit(0);
  }
  if (!landed.form?.SAMLResponse) {
    throw new Error(`no SAMLResponse form: ended at ${landed.url} (${landed.status}): ${String(landed.body).slice(0, 400)}`);
  }
  const xml = Buffer.from(landed.form.SAMLResponse, 'base64').toString('utf8');
  result.xml = xml;
  result.relay_state = landed.form.RelayState ?? null;
  if (config.tamper_from && config.tamper_to) {
    const changed = xml.replace(config.tamper_from, config.tamper_to);
    if (changed === xml) throw new Error(`nothing to tamper: ${config.tamper_from}`);
    // A second platform, strict in every way but InResponseTo: node-saml spends the request ID
    // on any attempt, so this one must not touch it; the signature is what refuses the copy.
    try {
      await platform('never').validatePostResponseAsync({ SAMLResponse: Buffer.from(changed).toString('base64') });
      result.tampered_error = null;
    } catch (error) {
      result.tampered_error = String(error.message ?? error);
    }
  }
  const { profile, loggedOut } = await saml.validatePostResponseAsync({
    SAMLResponse: landed.form.SAMLResponse,
    RelayState: landed.form.RelayState,
  });
  result.logged_out = loggedOut;
  result.profile = profile;
  if (config.replay_request) {
    // The same signed AuthnRequest (its URL as the platform sent it) a second time.
    const again = await fetch(start, { redirect: 'manual' });
    result.replay_status = again.status;
  }
  // A second presentation of the same response: its InResponseTo was used up.
  try {
    await saml.validatePostResponseAsync({ SAMLResponse: landed.form.SAMLResponse });
    result.replay_error = null;
  } catch (error) {
    result.replay_error = String(error.message ?? error);
  }
} catch (error) {
  result.error = String(error.stack ?? error);
}
console.log(JSON.stringify(result));
