//! The platform's AuthnRequest as nymgate's IdP face reads it (SAML Core §3.4.1, Profiles
//! §4.1.4.1): over HTTP-Redirect (Bindings §3.4) or HTTP-POST (§3.5), from a registered SP,
//! signed as that SP requires, for its registered ACS, addressed to this IdP, fresh.

use std::io::Read;

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::{
    ReadRequest, SamlIdp, SamlOutError, ServiceProvider, SpRequest, StatusAnswer, ASSERTION, MAX_RELAY_STATE,
    PERSISTENT, POST_BINDING, PROTOCOL,
};
use crate::verify::saml_acs;

/// An AuthnRequest is a few hundred bytes; this bounds the inflated XML (a DEFLATE bomb stops
/// here).
const MAX_REQUEST_BYTES: u64 = 16 * 1024;
/// How old an AuthnRequest's IssueInstant may be (beyond the clock skew).
const MAX_REQUEST_AGE: u64 = 300;
/// SAML 1.1's unspecified NameID format (SAML Core §8.3.1): the IdP picks, and nymgate picks
/// persistent.
const UNSPECIFIED: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified";
/// The XML-DSig namespace, to see whether a POSTed request carries a signature at all.
const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";

/// What the checks both bindings share found: the SP, and what the request asks for.
struct Checked {
    sp: String,
    id: String,
    /// IssueInstant plus the allowed age and skew: past it, the request is stale anyway.
    valid_until: u64,
    force_authn: bool,
    is_passive: bool,
    answer: Option<StatusAnswer>,
}

impl Checked {
    fn into_read(self, relay_state: Option<String>) -> ReadRequest {
        ReadRequest {
            single_use: Some((format!("{}\n{}", self.sp, self.id), self.valid_until)),
            request: SpRequest {
                sp: self.sp,
                request_id: Some(self.id),
                relay_state,
                force_authn: self.force_authn,
                is_passive: self.is_passive,
            },
            answer: self.answer,
        }
    }
}

/// RelayState "MUST NOT exceed 80 bytes in length" (Bindings §3.4.3, §3.5.3): nymgate returns
/// it in its own form, so a longer one is refused rather than passed on.
fn check_relay_state(relay_state: Option<&str>) -> Result<(), SamlOutError> {
    match relay_state {
        Some(relay_state) if relay_state.len() > MAX_RELAY_STATE => Err(SamlOutError::RelayState),
        _ => Ok(()),
    }
}

/// An xs:boolean attribute (XML Schema Part 2 §3.2.2: `true`, `false`, `1`, `0`), false when
/// absent; anything else is not an AuthnRequest.
fn boolean(value: Option<&str>) -> Result<bool, SamlOutError> {
    match value.map(str::trim) {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(_) => Err(SamlOutError::NotAnAuthnRequest),
    }
}

impl SamlIdp {
    /// An AuthnRequest over HTTP-Redirect (Bindings §3.4): `raw_query` exactly as received, for
    /// the signature, which covers `SAMLRequest=…&RelayState=…&SigAlg=…` as URL-encoded by the
    /// SP (§3.4.4.1).
    pub fn read_redirect(&self, raw_query: &str, now: u64) -> Result<ReadRequest, SamlOutError> {
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
        check_relay_state(relay_state.as_deref())?;
        let deflated = STANDARD.decode(request.as_bytes()).map_err(|_| SamlOutError::Encoding)?;
        let xml = inflate_limited(&deflated)?;
        let checked = self.read_authn_request(&xml, now, |sp, _, _| {
            if sp.request_keys.is_empty() {
                // Not checked, but a signature all the same: Destination is required.
                return Ok(raw("Signature").is_some());
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
            verifies.then_some(true).ok_or(SamlOutError::BadSignature)
        })?;
        Ok(checked.into_read(relay_state))
    }

    /// An AuthnRequest over HTTP-POST (Bindings §3.5): base64 XML, signed (when the SP signs)
    /// by an enveloped XML signature on the AuthnRequest itself.
    pub fn read_post(
        &self,
        saml_request: &str,
        relay_state: Option<&str>,
        now: u64,
    ) -> Result<ReadRequest, SamlOutError> {
        check_relay_state(relay_state)?;
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
        let checked = self.read_authn_request(&xml, now, |sp, doc, root| {
            let Some(trust) = &sp.request_trust else {
                // Not checked, but a signature all the same: Destination is required.
                let signature = |c: &uppsala::NodeId| {
                    doc.element(*c).is_some_and(|e| e.matches_name_ns(DSIG, "Signature"))
                };
                return Ok(doc.children_iter(root).any(|c| signature(&c)));
            };
            saml_acs::verify_root_signature(doc, &xml, root, trust).map_err(|error| match error {
                saml_acs::SamlError::Unsigned(_) => SamlOutError::Unsigned,
                _ => SamlOutError::BadSignature,
            })?;
            Ok(true)
        })?;
        Ok(checked.into_read(relay_state.map(str::to_owned)))
    }

    /// The checks both bindings share (SAML Core §3.4.1, Profiles §4.1.4.1): an AuthnRequest of
    /// SAML 2.0, from a registered SP (its Issuer), signed as that SP requires
    /// (`check_signature`, which says whether the message carries a signature), for its
    /// registered ACS and the POST binding, addressed to this IdP, fresh; then what it asks for.
    fn read_authn_request(
        &self,
        xml: &str,
        now: u64,
        check_signature: impl FnOnce(
            &ServiceProvider,
            &uppsala::Document<'_>,
            uppsala::NodeId,
        ) -> Result<bool, SamlOutError>,
    ) -> Result<Checked, SamlOutError> {
        let doc = saml_acs::parse(xml).map_err(|_| SamlOutError::Encoding)?;
        let root = doc.document_element().ok_or(SamlOutError::NotAnAuthnRequest)?;
        let element = doc.element(root).ok_or(SamlOutError::NotAnAuthnRequest)?;
        if !element.matches_name_ns(PROTOCOL, "AuthnRequest") {
            return Err(SamlOutError::NotAnAuthnRequest);
        }
        // SAML Core §3.2.1, §4.1: a major version nymgate does not speak is VersionMismatch, and
        // 2.0 is the only minor version defined; the attribute is compared as it is, so
        // " 2.0" or "2.00" is not 2.0 either.
        if element.get_attribute("Version") != Some("2.0") {
            return Err(SamlOutError::VersionMismatch);
        }
        let issuers: Vec<_> = doc
            .children_iter(root)
            .filter(|&c| doc.element(c).is_some_and(|e| e.matches_name_ns(ASSERTION, "Issuer")))
            .collect();
        let [issuer] = issuers[..] else { return Err(SamlOutError::UnknownSp) };
        let issuer = doc.text_content_deep(issuer);
        let sp = self.service_provider(issuer.trim()).ok_or(SamlOutError::UnknownSp)?;
        let signed = check_signature(sp, &doc, root)?;
        let attribute = |name: &str| element.get_attribute(name);
        if attribute("AssertionConsumerServiceURL").is_some_and(|acs| acs != sp.acs_url)
            || attribute("ProtocolBinding").is_some_and(|binding| binding != POST_BINDING)
            || attribute("AssertionConsumerServiceIndex").is_some_and(|index| index != "0")
        {
            return Err(SamlOutError::WrongAcs);
        }
        // Bindings §3.4.5.2, §3.5.5.2: a signed message MUST carry the URL it was sent to, so
        // that a request signed for another IdP's endpoint can't be replayed here. Both bindings
        // share nymgate's one SSO URL.
        match attribute("Destination") {
            Some(destination) if destination != self.sso_url => return Err(SamlOutError::WrongDestination),
            None if signed => return Err(SamlOutError::NoDestination),
            _ => {}
        }
        let issued = attribute("IssueInstant")
            .and_then(crate::clock::parse_instant)
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
        Ok(Checked {
            sp: sp.entity_id.clone(),
            id: id.to_owned(),
            valid_until: issued + MAX_REQUEST_AGE + self.clock_skew + 1,
            force_authn: boolean(attribute("ForceAuthn"))?,
            is_passive: boolean(attribute("IsPassive"))?,
            answer: match has_subject(&doc, root) {
                true => Some(StatusAnswer::RequestUnsupported),
                false => name_id_policy(&doc, root, &sp.entity_id)?,
            },
        })
    }

    /// An IdP-initiated start for `sp` (Profiles §4.1.5), where the SP allows it.
    pub fn unsolicited(&self, sp: &str, relay_state: Option<&str>) -> Result<ReadRequest, SamlOutError> {
        let sp = self.service_provider(sp).ok_or(SamlOutError::UnknownSp)?;
        if !sp.idp_initiated {
            return Err(SamlOutError::NoIdpInitiated);
        }
        check_relay_state(relay_state)?;
        Ok(ReadRequest {
            request: SpRequest::new(&sp.entity_id, None, relay_state.map(str::to_owned)),
            single_use: None,
            answer: None,
        })
    }
}

/// Whether the request names the person it is for (`<saml:Subject>`, SAML Core §3.4.1).
fn has_subject(doc: &uppsala::Document<'_>, root: uppsala::NodeId) -> bool {
    doc.children_iter(root)
        .filter_map(|c| doc.element(c))
        .any(|e| e.matches_name_ns("urn:oasis:names:tc:SAML:2.0:assertion", "Subject"))
}

/// Whether nymgate can honour the request's NameIDPolicy (SAML Core §3.4.1.1): it issues one
/// kind of NameID, persistent and pairwise to the SP (`response`), so a Format other than
/// persistent or unspecified, or an SPNameQualifier other than the SP's own entity ID (an
/// affiliation nymgate does not know), is answered with InvalidNameIDPolicy. AllowCreate does
/// not matter: the account number is derived, never created, so it always exists.
fn name_id_policy(
    doc: &uppsala::Document<'_>,
    root: uppsala::NodeId,
    sp: &str,
) -> Result<Option<StatusAnswer>, SamlOutError> {
    let policies: Vec<_> = doc
        .children_iter(root)
        .filter_map(|c| doc.element(c))
        .filter(|e| e.matches_name_ns(PROTOCOL, "NameIDPolicy"))
        .collect();
    let policy = match policies[..] {
        [] => return Ok(None),
        [policy] => policy,
        // The schema allows one (§3.4.1).
        _ => return Err(SamlOutError::NotAnAuthnRequest),
    };
    let format = policy.get_attribute("Format");
    let qualifier = policy.get_attribute("SPNameQualifier");
    let honoured = matches!(format, None | Some(PERSISTENT | UNSPECIFIED))
        && qualifier.is_none_or(|qualifier| qualifier == sp);
    Ok((!honoured).then_some(StatusAnswer::InvalidNameIdPolicy))
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
