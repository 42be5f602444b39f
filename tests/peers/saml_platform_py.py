"""A SAML-only platform for nymgate's SAML output tests (issue 10): PyPI python3-saml
(OneLogin) in strict mode, with both the Response and the Assertion required to be signed.

It validates a Response that nymgate posted to the platform's ACS (taken by
saml_platform.mjs's browser), as the platform's ACS would, then a copy changed after signing.
Run: python saml_platform_py.py CONFIG.json -> one JSON line {valid, error, name_id,
name_id_format, attributes, tampered_valid, tampered_error}.
"""
import base64
import json
import sys
from urllib.parse import urlparse

from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings

config = json.load(open(sys.argv[1]))
acs = urlparse(config["acs_url"])
settings = OneLogin_Saml2_Settings(
    {
        "strict": True,
        "sp": {
            "entityId": config["entity_id"],
            "assertionConsumerService": {
                "url": config["acs_url"],
                "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
            },
            "NameIDFormat": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        },
        "idp": {
            "entityId": config["idp_entity_id"],
            "singleSignOnService": {
                "url": config["sso_url"],
                "binding": "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
            },
            "x509cert": config["idp_cert"],
        },
        "security": {
            "wantMessagesSigned": True,
            "wantAssertionsSigned": True,
            "wantNameId": True,
            "rejectDeprecatedAlgorithm": True,
        },
    },
    sp_validation_only=True,
)
# strict mode compares the Destination with the URL the POST arrived at.
request_data = {
    "https": "on" if acs.scheme == "https" else "off",
    "http_host": acs.hostname,
    "server_port": acs.port or (443 if acs.scheme == "https" else 80),
    "script_name": acs.path,
    "get_data": {},
    "post_data": {},
}


def check(xml):
    response = OneLogin_Saml2_Response(settings, base64.b64encode(xml.encode()).decode())
    try:
        valid = response.is_valid(request_data, request_id=config["request_id"], raise_exceptions=True)
        return response, valid, None
    except Exception as error:  # python3-saml raises its own error types with a message
        return response, False, str(error)


response, valid, error = check(config["xml"])
result = {"valid": valid, "error": error}
if valid:
    result["name_id"] = response.get_nameid()
    result["name_id_format"] = response.get_nameid_format()
    result["attributes"] = response.get_attributes()
if config.get("tamper_from"):
    changed = config["xml"].replace(config["tamper_from"], config["tamper_to"])
    assert changed != config["xml"], "nothing to tamper"
    _, result["tampered_valid"], result["tampered_error"] = check(changed)
print(json.dumps(result))
