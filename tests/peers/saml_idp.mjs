// A school's SAML IdP for nymgate's tests, signing with samlify 2.13.1 (xml-crypto), a signer
// independent of nymgate's XML library. The tests write the Response XML (so every field and
// time can be set to its boundary) and samlify signs it the way it signs its own login
// responses: the Assertion, the Response, or both, enveloped, exclusive C14N.
//
// CLI: node saml_idp.mjs CONFIG.json  → listens on 127.0.0.1, prints {"url": …} when ready.
// CONFIG: {"entity_id", "sp_entity_id", "acs_url", "keys": {NAME: {"cert": PEM file, "key": PEM file}}}
// POST /sign {"xml", "sign": "assertion"|"response"|"both", "key": NAME, "algorithm"?: URI}
//   → the signed XML (text/xml).
// POST /sign-root {"xml", "key": NAME} → the document with an enveloped signature over its root
//   as the root's first child (a federation signing its metadata).
// GET /metadata → the file CONFIG.metadata_file, as an IdP or federation publishes metadata.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import * as samlify from 'samlify';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const POST = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST';
const REDIRECT = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';
const RSA_SHA256 = 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256';

// createLoginResponse never parses XML, so samlify's schema validator is never consulted;
// it must still be set, and refuses everything here so a parse would show up as a failure.
samlify.setSchemaValidator({ validate: async () => { throw new Error('not used by the signer'); } });

function idp(name, algorithm) {
  const pair = config.keys[name];
  if (!pair) throw new Error(`no key named ${name}`);
  return samlify.IdentityProvider({
    entityID: config.entity_id,
    signingCert: readFileSync(pair.cert, 'utf8'),
    privateKey: readFileSync(pair.key, 'utf8'),
    requestSignatureAlgorithm: algorithm ?? RSA_SHA256,
    singleSignOnService: [{ Binding: REDIRECT, Location: `${config.entity_id}/sso` }],
  });
}

// samlify signs what the SP's settings ask for: the Assertion when it wants assertions signed,
// the Response when it wants messages signed (or when assertions are not wanted signed).
function sp(sign) {
  return samlify.ServiceProvider({
    entityID: config.sp_entity_id,
    assertionConsumerService: [{ Binding: POST, Location: config.acs_url }],
    wantAssertionsSigned: sign === 'assertion' || sign === 'both',
    wantMessageSigned: sign === 'response' || sign === 'both',
  });
}

async function sign({ xml, sign: what, key = 'idp', algorithm }) {
  const response = await idp(key, algorithm).createLoginResponse(
    sp(what),
    { extract: { request: { id: 'set-by-the-template' } } },
    'post',
    {},
    () => ({ id: 'from-the-template', context: xml }),
  );
  return Buffer.from(response.context, 'base64').toString('utf8');
}

function signRoot({ xml, key }) {
  const pair = config.keys[key];
  // SamlLib is a getter on the CommonJS exports, which node's ESM named exports don't see.
  return samlify.default.SamlLib.constructSAMLSignature({
    rawSamlMessage: xml,
    isMessageSigned: true,
    privateKey: readFileSync(pair.key, 'utf8'),
    // As samlify's metadata hands it over: the certificate's base64, without PEM armour.
    signingCert: readFileSync(pair.cert, 'utf8').replace(/-----[^-]+-----|\s/g, ''),
    isBase64Output: false,
    signatureConfig: { prefix: 'ds', location: { reference: '/*/*[1]', action: 'before' } },
  });
}

const server = createServer(async (req, res) => {
  try {
    let body = '';
    for await (const chunk of req) body += chunk;
    let answer;
    if (req.method === 'POST' && req.url === '/sign') answer = await sign(JSON.parse(body));
    else if (req.method === 'POST' && req.url === '/sign-root') answer = signRoot(JSON.parse(body));
    else if (req.method === 'GET' && req.url === '/metadata') answer = readFileSync(config.metadata_file, 'utf8');
    else throw new Error(`no route ${req.method} ${req.url}`);
    res.writeHead(200, { 'content-type': 'text/xml' }).end(answer);
  } catch (error) {
    res.writeHead(500, { 'content-type': 'text/plain' }).end(String(error?.stack ?? error));
  }
});
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ url: `http://127.0.0.1:${server.address().port}` }));
});
