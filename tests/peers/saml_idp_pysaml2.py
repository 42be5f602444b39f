"""A school's SAML IdP for nymgate's tests, signing with pysaml2 7.5.5 through the xmlsec1 binary
(Debian `xmlsec1`): a second signer, independent of samlify's xml-crypto and of nymgate's own XML
library. Same contract as saml_idp.mjs:

  CLI: python saml_idp_pysaml2.py CONFIG.json  → listens on 127.0.0.1, prints {"url": …} when ready.
  CONFIG: {"entity_id", "sp_entity_id", "acs_url", "keys": {NAME: {"cert": PEM file, "key": PEM file}}}
  POST /sign {"xml", "sign": "assertion"|"response"|"both", "key": NAME, "algorithm"?: URI}
    → the signed XML (text/xml).
  POST /authn-request {"url"} → the HTTP-Redirect AuthnRequest in `url` (an SP sending the browser
    to this IdP) as pysaml2 reads it: {"id", "destination", "issuer", "force_authn",
    "is_passive"} (application/json), the attributes as sent or null.

The signature templates are pysaml2's own (pre_signature_part: enveloped signature, exclusive
C14N), placed where SAML's schema puts them, right after the signed element's Issuer, and
xmlsec1 fills them in, as pysaml2 does for its own responses. The Assertion is signed before the
Response, so a Response signature covers the signed Assertion.
"""

import json
import re
import shutil
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from saml2 import samlp, xmldsig
from saml2.s_utils import decode_base64_and_inflate
from saml2.sigver import CryptoBackendXmlSec1, pre_signature_part

ASSERTION = "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"
RESPONSE = "urn:oasis:names:tc:SAML:2.0:protocol:Response"
DIGEST_FOR = {
    xmldsig.SIG_RSA_SHA256: xmldsig.DIGEST_SHA256,
    xmldsig.SIG_RSA_SHA1: xmldsig.DIGEST_SHA1,
}

config = json.load(open(sys.argv[1]))
crypto = CryptoBackendXmlSec1(shutil.which("xmlsec1") or "/usr/bin/xmlsec1")


def place_template(xml, element, algorithm, cert_pem):
    """Puts pysaml2's signature template right after the Issuer of `element` (the Response or its
    Assertion) and returns the XML with the element's ID."""
    start = xml.index(f"<{element}") if element != "samlp:Response" else 0
    ident = re.search(r' ID="([^"]+)"', xml[start:]).group(1)
    cert = "".join(line for line in cert_pem.splitlines() if not line.startswith("-----"))
    template = pre_signature_part(ident, public_key=cert, sign_alg=algorithm, digest_alg=DIGEST_FOR[algorithm])
    issuer_end = xml.index("</saml:Issuer>", start) + len("</saml:Issuer>")
    return xml[:issuer_end] + str(template) + xml[issuer_end:], ident


def sign(request):
    pair = config["keys"][request.get("key", "idp")]
    cert_pem = open(pair["cert"]).read()
    algorithm = request.get("algorithm") or xmldsig.SIG_RSA_SHA256
    xml = request["xml"]
    what = request["sign"]
    if what in ("assertion", "both"):
        xml, ident = place_template(xml, "saml:Assertion", algorithm, cert_pem)
        xml = crypto.sign_statement(xml, ASSERTION, pair["key"], ident)
    if what in ("response", "both"):
        xml, ident = place_template(xml, "samlp:Response", algorithm, cert_pem)
        xml = crypto.sign_statement(xml, RESPONSE, pair["key"], ident)
    return xml


def authn_request(request):
    """The AuthnRequest of an HTTP-Redirect URL (SAML Bindings §3.4.4.1), parsed by pysaml2."""
    query = parse_qs(urlsplit(request["url"]).query)
    xml = decode_base64_and_inflate(query["SAMLRequest"][0])
    parsed = samlp.authn_request_from_string(xml)
    return {
        "id": parsed.id,
        "destination": parsed.destination,
        "issuer": parsed.issuer.text if parsed.issuer is not None else None,
        "force_authn": parsed.force_authn,
        "is_passive": parsed.is_passive,
    }


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        try:
            body = self.rfile.read(int(self.headers["content-length"]))
            if self.path == "/sign":
                answer, status, kind = sign(json.loads(body)).encode(), 200, "text/xml"
            elif self.path == "/authn-request":
                answer, status, kind = json.dumps(authn_request(json.loads(body))).encode(), 200, "application/json"
            else:
                raise ValueError(f"no route POST {self.path}")
        except Exception as error:  # the test prints whatever went wrong
            answer, status, kind = repr(error).encode(), 500, "text/plain"
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(json.dumps({"url": f"http://127.0.0.1:{server.server_address[1]}"}), flush=True)
server.serve_forever()
