//! The platform's AuthnRequest as nymgate's IdP face reads it (SAML Core §3.4.1, Profiles
//! §4.1.4.1): over HTTP-Redirect (Bindings §3.4) or HTTP-POST (§3.5), from a registered SP,
//! signed as that SP requires, for its registered ACS, addressed to this IdP, fresh.

use std::io::Read;

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::{saml_acs, SamlIdp, SamlOutError, ServiceProvider, SpRequest, ASSERTION, POST_BINDING, PROTOCOL};

/// An AuthnRequest is a few hundred bytes; this bounds the inflated XML (a DEFLATE bomb stops
/// here).
const MAX_REQUEST_BYTES: u64 = 16 * 1024;
/// How old an AuthnRequest's IssueInstant may be (beyond the clock skew).
const MAX_REQUEST_AGE: u64 = 300;

impl SamlIdp {
    /// An AuthnRequest over HTTP-Redirect (Bindings §3.4): `raw_query` exactly as received, for
    /// the signature, which covers `SAMLRequest=…&RelayState=…&SigAlg=…` as URL-encoded by the
    /// SP (§3.4.4.1).
    pub fn read_redirect(&self, raw_query: &str, now: u64) -> Result<SpRequest, SamlOutError> {
        let mut parts: Vec<(&str, &str)> = Vec::new();
        for pair in raw_query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if matches!(name, "SAMLRequest" | "RelayState" | "SigAlg" | "Signature") {
                if parts.iter().any(|(n, _)| *n == name) {
                    // Two of a signed parameter: which one was signed would be ambiguous.
                    return Err(SamlOutError::Encoding);
                }
                parts.push((name, value));
            }
        }
        let raw = |name: &str| parts.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let decoded = |name: &str| raw(name).map(url_decode).transpose();
        let request = decoded("SAMLRequest")?.ok_or(SamlOutError::Encoding)?;
        let relay_state = decoded("RelayState")?;
        let deflated = STANDARD.decode(request.as_bytes()).map_err(|_| SamlOutError::Encoding)?;
        let xml = inflate_limited(&deflated)?;
        let (sp, request_id) = self.read_authn_request(&xml, now, |sp, _, _| {
            if sp.request_keys.is_empty() {
                return Ok(());
            }
            let (Some(sig_alg), Some(signature)) = (decoded("SigAlg")?, decoded("Signature")?) else {
                return Err(SamlOutError::Unsigned);
            };
            let algorithm: &'static signature::RsaParameters = match sig_alg.as_str() {
                "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                _ => return Err(SamlOutError::BadSignature),
            };
            let signature = STANDARD.decode(signature.as_bytes()).map_err(|_| SamlOutError::BadSignature)?;
            // The signed octets, in the binding's order, as the SP encoded them.
            let mut signed = format!("SAMLRequest={}", raw("SAMLRequest").unwrap_or(""));
            if let Some(relay) = raw("RelayState") {
                signed.push_str(&format!("&RelayState={relay}"));
            }
            signed.push_str(&format!("&SigAlg={}", raw("SigAlg").unwrap_or("")));
            let verifies = sp.request_keys.iter().any(|key| {
                UnparsedPublicKey::new(algorithm, &key.0).verify(signed.as_bytes(), &signature).is_ok()
            });
            verifies.then_some(()).ok_or(SamlOutError::BadSignature)
        })?;
        Ok(SpRequest { sp, request_id: Some(request_id), relay_state })
    }

    /// An AuthnRequest over HTTP-POST (Bindings §3.5): base64 XML, signed (when the SP signs)
    /// by an enveloped XML signature on the AuthnRequest itself.
    pub fn read_post(
        &self,
        saml_request: &str,
        relay_state: Option<&str>,
        now: u64,
    ) -> Result<SpRequest, SamlOutError> {
        let compact: Vec<u8> = saml_request.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        if compact.len() as u64 > MAX_REQUEST_BYTES / 3 * 4 + 4 {
            return Err(SamlOutError::Encoding);
        }
        let bytes = STANDARD.decode(compact).map_err(|_| SamlOutError::Encoding)?;
        // Bindings §3.5.4 sends the XML as it is, but node-saml (passport-saml) DEFLATEs POST
        // requests too unless told not to: XML is taken as it is, anything else inflated.
        let xml = if bytes.trim_ascii_start().starts_with(b"<") {
            String::from_utf8(bytes).map_err(|_| SamlOutError::Encoding)?
        } else {
            inflate_limited(&bytes)?
        };
        let (sp, request_id) = self.read_authn_request(&xml, now, |sp, doc, root| {
            let Some(trust) = &sp.request_trust else { return Ok(()) };
            saml_acs::verify_root_signature(doc, &xml, root, trust).map_err(|error| match error {
                saml_acs::SamlError::Unsigned(_) => SamlOutError::Unsigned,
                _ => SamlOutError::BadSignature,
            })
        })?;
        Ok(SpRequest { sp, request_id: Some(request_id), relay_state: relay_state.map(str::to_owned) })
    }

    /// The checks both bindings share (SAML Core §3.4.1, Profiles §4.1.4.1): an AuthnRequest,
    /// from a registered SP (its Issuer), signed as that SP requires (`check_signature`), for
    /// its registered ACS and the POST binding, addressed to this IdP, fresh. Returns the SP's
    /// entity ID and the request's ID.
    fn read_authn_request(
        &self,
        xml: &str,
        now: u64,
        check_signature: impl FnOnce(
            &ServiceProvider,
            &uppsala::Document<'_>,
            uppsala::NodeId,
        ) -> Result<(), SamlOutError>,
    ) -> Result<(String, String), SamlOutError> {
        let doc = saml_acs::parse(xml).map_err(|_| SamlOutError::Encoding)?;
        let root = doc.document_element().ok_or(SamlOutError::NotAnAuthnRequest)?;
        let element = doc.element(root).ok_or(SamlOutError::NotAnAuthnRequest)?;
        if !element.matches_name_ns(PROTOCOL, "AuthnRequest") {
            return Err(SamlOutError::NotAnAuthnRequest);
        }
        let issuers: Vec<_> = doc
            .children_iter(root)
            .filter(|&c| doc.element(c).is_some_and(|e| e.matches_name_ns(ASSERTION, "Issuer")))
            .collect();
        let [issuer] = issuers[..] else { return Err(SamlOutError::UnknownSp) };
        let issuer = doc.text_content_deep(issuer);
        let sp = self.service_provider(issuer.trim()).ok_or(SamlOutError::UnknownSp)?;
        check_signature(sp, &doc, root)?;
        let attribute = |name: &str| element.get_attribute(name);
        if attribute("AssertionConsumerServiceURL").is_some_and(|acs| acs != sp.acs_url)
            || attribute("ProtocolBinding").is_some_and(|binding| binding != POST_BINDING)
            || attribute("AssertionConsumerServiceIndex").is_some_and(|index| index != "0")
        {
            return Err(SamlOutError::WrongAcs);
        }
        if attribute("Destination").is_some_and(|destination| destination != self.sso_url) {
            return Err(SamlOutError::WrongDestination);
        }
        let issued = attribute("IssueInstant")
            .and_then(saml_acs::parse_instant)
            .ok_or(SamlOutError::NotAnAuthnRequest)?;
        if issued > now + self.clock_skew || issued + MAX_REQUEST_AGE + self.clock_skew < now {
            return Err(SamlOutError::Stale);
        }
        // xs:ID (an NCName), and short: it comes back in InResponseTo.
        let id = attribute("ID")
            .filter(|id| {
                (1..=128).contains(&id.len())
                    && id.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && id.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            })
            .ok_or(SamlOutError::NoId)?;
        Ok((sp.entity_id.clone(), id.to_owned()))
    }

    /// An IdP-initiated start for `sp` (Profiles §4.1.5), where the SP allows it.
    pub fn unsolicited(&self, sp: &str, relay_state: Option<&str>) -> Result<SpRequest, SamlOutError> {
        let sp = self.service_provider(sp).ok_or(SamlOutError::UnknownSp)?;
        if !sp.idp_initiated {
            return Err(SamlOutError::NoIdpInitiated);
        }
        Ok(SpRequest {
            sp: sp.entity_id.clone(),
            request_id: None,
            relay_state: relay_state.map(str::to_owned),
        })
    }
}

/// Raw DEFLATE (RFC 1951) of UTF-8, at most `MAX_REQUEST_BYTES` inflated: a DEFLATE bomb stops
/// at the limit.
fn inflate_limited(deflated: &[u8]) -> Result<String, SamlOutError> {
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(deflated)
        .take(MAX_REQUEST_BYTES + 1)
        .read_to_string(&mut xml)
        .map_err(|_| SamlOutError::Encoding)?;
    if xml.len() as u64 > MAX_REQUEST_BYTES {
        return Err(SamlOutError::Encoding);
    }
    Ok(xml)
}

/// Percent-decoding of one query value (`+` is a space, as in forms).
fn url_decode(value: &str) -> Result<String, SamlOutError> {
    let bytes: Vec<u8> = openidconnect::url::form_urlencoded::parse(format!("v={value}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned().into_bytes())
        .unwrap_or_default();
    String::from_utf8(bytes).map_err(|_| SamlOutError::Encoding)
}
