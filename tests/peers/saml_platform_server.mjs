// A SAML-only platform behind nymgate, for the interception tests (issue 10): an HTTP server on
// loopback whose ACS validates with npm @node-saml/node-saml in its strict defaults (both
// signatures required; audience, Destination, InResponseTo against its own requests, times).
//
//   POST /configure  {idp_cert, entity_id, acs_url, sso_url, validate_in_response_to}: the SP's
//                    settings (nymgate's IdP
//                    certificate is made after this server starts)
//   GET  /start      makes one of its AuthnRequests (to the school, in interception mode) and
//                    answers its ID, which the school's response must answer
//   POST /saml/acs   the form as it arrived: answers {ok, profile, relay_state, xml} or {ok:
//                    false, error}, and counts it
//   GET  /received   every ACS body received so far, raw (for the privacy scan)
//   GET  /requests   every other request received so far, any method and path: {method, url,
//                    body}, raw (what a school's response sent past nymgate would show up in)
//
// Run: node saml_platform_server.mjs [ANY] → prints `ready URL` once listening.
import { createServer } from 'node:http';
import { inflateRawSync } from 'node:zlib';
import { SAML } from '@node-saml/node-saml';
import { InMemoryCacheProvider } from '@node-saml/node-saml/lib/in-memory-cache-provider.js';

let saml = null;
const received = [];
const requests = [];

async function body(request) {
  const chunks = [];
  for await (const chunk of request) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function answer(response, status, value) {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(value));
}

const server = createServer(async (request, response) => {
  try {
    const url = new URL(request.url, 'http://platform');
    if (request.method === 'POST' && url.pathname === '/configure') {
      const c = JSON.parse(await body(request));
      saml = new SAML({
        entryPoint: c.sso_url,
        issuer: c.entity_id,
        callbackUrl: c.acs_url,
        audience: c.entity_id,
        idpCert: c.idp_cert,
        identifierFormat: 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent',
        validateInResponseTo: c.validate_in_response_to ?? 'always',
        cacheProvider: new InMemoryCacheProvider({}),
        wantAssertionsSigned: true,
        wantAuthnResponseSigned: true,
      });
      return answer(response, 200, { ok: true });
    }
    if (request.method === 'GET' && url.pathname === '/start') {
      const redirect = new URL(await saml.getAuthorizeUrlAsync('', undefined, {}));
      const xml = inflateRawSync(Buffer.from(redirect.searchParams.get('SAMLRequest'), 'base64')).toString('utf8');
      return answer(response, 200, { id: xml.match(/ ID="([^"]+)"/)[1] });
    }
    if (request.method === 'GET' && url.pathname === '/received') {
      return answer(response, 200, received);
    }
    if (request.method === 'GET' && url.pathname === '/requests') {
      return answer(response, 200, requests);
    }
    const raw = await body(request);
    requests.push({ method: request.method, url: request.url, body: raw });
    if (request.method === 'POST' && url.pathname === '/saml/acs') {
      received.push(raw);
      const form = new URLSearchParams(raw);
      const xml = Buffer.from(form.get('SAMLResponse') ?? '', 'base64').toString('utf8');
      try {
        const { profile } = await saml.validatePostResponseAsync({
          SAMLResponse: form.get('SAMLResponse'),
          RelayState: form.get('RelayState'),
        });
        return answer(response, 200, { ok: true, profile, relay_state: form.get('RelayState'), xml });
      } catch (error) {
        return answer(response, 200, { ok: false, error: String(error.message ?? error), xml });
      }
    }
    answer(response, 404, { ok: false, error: 'not found' });
  } catch (error) {
    answer(response, 500, { ok: false, error: String(error.stack ?? error) });
  }
});
server.listen(0, '127.0.0.1', () => console.log(`ready http://127.0.0.1:${server.address().port}`));
