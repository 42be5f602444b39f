//! The SAML ACS: a posted `<samlp:Response>` (HTTP-POST binding, SAML Bindings §3.5) checked
//! against the strict profile of shared/SECURITY.md, read top to bottom in [`verify`]:
//!
//! ```text
//! base64 ─▶ one parser, DOCTYPE refused ─▶ shape (one Response, one Assertion, fixed
//! Signature positions, unique IDs) ─▶ signature shape (exc-C14N, one Reference to its parent,
//! allowlisted algorithms) ─▶ bergshamra with pinned keys ─▶ the Reference resolved to that
//! parent ─▶ protocol checks (Issuer, Status, Destination, InResponseTo, Recipient, Audience,
//! times) ─▶ identity read from the verified Assertion only
//! ```
//!
//! Every structural rule below exists because a published attack needed its absence (XSW1–8,
//! the ruby-saml parser differentials, xml-crypto's several-Reference bypasses). The document is
//! parsed once, by uppsala, and bergshamra verifies that same tree: there is no second parser to
//! disagree with. Nothing here ever reads the whole document for identity (`//NameID`): values
//! come from children of the one Assertion whose signature (or whose Response's signature) was
//! verified, and a value is all of its text nodes together (comment-injection class).

use crate::clock::parse_instant;
use crate::config::issuer::same_issuer;
use std::collections::HashSet;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bergshamra::dsig::verify::verify_all_document_with_source;
use bergshamra::{DsigContext, KeysManager, VerifyResult};
use uppsala::{Document, NodeId, NodeKind};

use super::xml_bounds;
use crate::verify::identity::{Attribute, NameId, VerifiedIdentity};

pub const SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub const SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";
const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// Signature algorithms accepted (XML-DSig 1.1 §6.4; RFC 6931 §2.3).
const SIGNATURE_METHODS: &[&str] = &[
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512",
];
const DIGEST_METHODS: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512",
];
/// SHA-1 based: refused unless the tenant sets `allow_weak_algorithms` (and logged then).
const WEAK_SIGNATURE_METHOD: &str = "http://www.w3.org/2000/09/xmldsig#rsa-sha1";
const WEAK_DIGEST_METHOD: &str = "http://www.w3.org/2000/09/xmldsig#sha1";

/// Largest decoded response accepted; the form itself is limited before this (see the ACS).
pub const MAX_RESPONSE_BYTES: usize = 128 * 1024;

/// Which signatures a tenant requires: the config names them, so the type lives there.
pub use crate::config::RequiredSignatures;

/// Why a response was refused. Display texts are fixed strings: no value from the response
/// ever reaches a log line through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SamlError {
    #[error("response larger than the limit")]
    TooLarge,
    #[error("SAMLResponse is not base64 of UTF-8 XML")]
    Encoding,
    #[error("DOCTYPE or entity declaration in the response")]
    Doctype,
    #[error("response is not well-formed XML")]
    Malformed,
    /// Past one of the XML bounds (xml_bounds.rs), checked before any parser reads it.
    #[error("XML past a bound: {0}")]
    XmlLimits(&'static str),
    #[error("response structure refused: {0}")]
    Structure(&'static str),
    #[error("encrypted assertions are not accepted")]
    Encrypted,
    #[error("algorithm not allowed: {0}")]
    Algorithm(&'static str),
    #[error("required signature missing: {0}")]
    Unsigned(&'static str),
    #[error("signature invalid")]
    BadSignature,
    #[error("issuer is not the tenant's IdP")]
    Issuer,
    #[error("the IdP reported a failure status")]
    Status,
    #[error("Destination is not this ACS")]
    Destination,
    #[error("Recipient is not this ACS")]
    Recipient,
    #[error("Audience does not name this SP")]
    Audience,
    #[error("InResponseTo does not match this browser's request")]
    InResponseTo,
    #[error("unsolicited response, and the tenant does not accept them")]
    Unsolicited,
    #[error("not yet valid: {0}")]
    NotYetValid(&'static str),
    #[error("expired: {0}")]
    Expired(&'static str),
    #[error("malformed time: {0}")]
    Time(&'static str),
    #[error("subject confirmation refused: {0}")]
    SubjectConfirmation(&'static str),
}

impl SamlError {
    /// The reason code for audit lines and metrics (docs/LOGIN.md).
    pub fn reason(&self) -> &'static str {
        match self {
            SamlError::TooLarge => "saml_too_large",
            SamlError::Encoding => "saml_bad_encoding",
            SamlError::Doctype => "saml_doctype",
            SamlError::Malformed => "saml_malformed_xml",
            SamlError::XmlLimits(_) => "saml_xml_limits",
            SamlError::Structure(_) => "saml_structure",
            SamlError::Encrypted => "saml_encrypted_assertion",
            SamlError::Algorithm(_) => "saml_algorithm",
            SamlError::Unsigned(_) => "saml_signature_missing",
            SamlError::BadSignature => "saml_signature_invalid",
            SamlError::Issuer => "saml_wrong_issuer",
            SamlError::Status => "saml_status_not_success",
            SamlError::Destination => "saml_wrong_destination",
            SamlError::Recipient => "saml_wrong_recipient",
            SamlError::Audience => "saml_wrong_audience",
            SamlError::InResponseTo => "saml_in_response_to_mismatch",
            SamlError::Unsolicited => "saml_unsolicited",
            SamlError::NotYetValid(_) => "saml_not_yet_valid",
            SamlError::Expired(_) => "saml_expired",
            SamlError::Time(_) => "saml_malformed_time",
            SamlError::SubjectConfirmation(_) => "saml_subject_confirmation",
        }
    }
}

/// What nymgate trusts about one tenant's IdP: its entity id and its pinned keys (from config
/// or metadata, never from a message).
pub struct IdpTrust {
    pub entity_id: String,
    context: DsigContext,
    pub required: RequiredSignatures,
    pub allow_weak_algorithms: bool,
    pub clock_skew: u64,
    pub allow_unsolicited: bool,
}

impl std::fmt::Debug for IdpTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpTrust").field("entity_id", &self.entity_id).finish_non_exhaustive()
    }
}

impl IdpTrust {
    /// From the IdP's signing certificates (PEM). RSA keys under 2048 bits are refused unless
    /// weak algorithms are allowed. The certificates' validity dates are not checked: SAML
    /// metadata pins keys, and IdPs routinely sign with long-expired self-signed certificates.
    pub fn new(
        entity_id: &str,
        certificates: &[Vec<u8>],
        required: RequiredSignatures,
        allow_weak_algorithms: bool,
        clock_skew: u64,
        allow_unsolicited: bool,
    ) -> Result<Self, String> {
        let mut keys = KeysManager::new();
        for (i, pem) in certificates.iter().enumerate() {
            let bits = crate::config::cert_strength::rsa_bits(pem)
                .map_err(|e| format!("certificate {}: {e}", i + 1))?;
            if bits.is_some_and(|b| b < crate::config::cert_strength::MIN_RSA_BITS) && !allow_weak_algorithms
            {
                return Err(format!(
                    "certificate {}: an RSA key of {} bits is too weak (allow_weak_algorithms to accept it)",
                    i + 1,
                    bits.unwrap_or(0)
                ));
            }
            let key = bergshamra::keys::loader::load_x509_cert_pem(pem)
                .map_err(|e| format!("certificate {}: {e}", i + 1))?;
            keys.add_key(key);
        }
        if keys.is_empty() {
            return Err("no signing certificate".into());
        }
        // Trusted keys only, strict reference positions (bergshamra's defaults for `new`).
        let context = DsigContext::new(keys);
        Ok(IdpTrust {
            entity_id: entity_id.to_owned(),
            context,
            required,
            allow_weak_algorithms,
            clock_skew,
            allow_unsolicited,
        })
    }
}

/// A PEM certificate's RSA public key as PKCS#1 `RSAPublicKey` DER (what aws-lc verifies with),
/// or `None` for a key of another type.
pub fn rsa_public_key(pem: &[u8]) -> Result<Option<Vec<u8>>, String> {
    use rustls_pki_types::pem::PemObject;
    use x509_cert::der::Decode;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem)
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = x509_cert::Certificate::from_der(der.as_ref()).map_err(|e| format!("not X.509: {e}"))?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    // rsaEncryption (RFC 8017 §A.1)
    Ok((spki.algorithm.oid.to_string() == "1.2.840.113549.1.1.1")
        .then(|| spki.subject_public_key.raw_bytes().to_vec()))
}

/// What this SP expects of the response in hand.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub sp_entity_id: &'a str,
    pub acs_url: &'a str,
    /// The AuthnRequest ID sealed in this browser's flow cookie; `None` for an unsolicited
    /// response (only where the tenant allows them).
    pub request_id: Option<&'a str>,
    pub now: u64,
    /// Interception mode (docs/SAML_OUT.md): the AuthnRequest was the platform's, which nymgate
    /// never saw, so with `request_id` `None` an InResponseTo is accepted and returned, for the
    /// platform to check against its own request. The Response's and the Assertion's must then
    /// be the same. A response with none is still unsolicited.
    pub relay_in_response_to: bool,
}

/// A response that passed every check.
pub struct VerifiedResponse {
    pub identity: VerifiedIdentity,
    /// The Assertion's ID, for the replay cache.
    pub assertion_id: String,
    /// Until when the assertion could be presented (plus skew): the replay entry's lifetime.
    pub replay_until: u64,
    /// Whether a SHA-1 algorithm was accepted (the tenant allows it; the caller logs it).
    pub weak_algorithm: bool,
    /// The Response's InResponseTo (what a relayed one answers).
    pub in_response_to: Option<String>,
    /// The earliest AuthnInstant of the Assertion's AuthnStatements (SAML Core §2.7.2): when
    /// the person last authenticated, for a login that asked for a fresh one (ForceAuthn).
    pub authn_instant: u64,
}

impl VerifiedResponse {
    /// Whether the person authenticated at `since` or later (within the tenant's skew): the
    /// school honoured a ForceAuthn sent at `since` (SAML Core §3.4.1) rather than reusing a
    /// session, which on a shared classroom device may be the previous pupil's.
    pub fn authenticated_since(&self, since: u64, trust: &IdpTrust) -> bool {
        self.authn_instant + trust.clock_skew >= since
    }
}

/// The posted `SAMLResponse` field as XML text.
pub fn decode_post(field: &str) -> Result<String, SamlError> {
    // Base64 of the limit, plus line breaks some IdPs insert.
    if field.len() > MAX_RESPONSE_BYTES / 3 * 4 + MAX_RESPONSE_BYTES / 32 {
        return Err(SamlError::TooLarge);
    }
    let compact: Vec<u8> = field.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let bytes = STANDARD.decode(compact).map_err(|_| SamlError::Encoding)?;
    if bytes.len() > MAX_RESPONSE_BYTES {
        return Err(SamlError::TooLarge);
    }
    String::from_utf8(bytes).map_err(|_| SamlError::Encoding)
}

/// Parses a SAML message (a Response, an AuthnRequest) with the one parser nymgate uses for
/// SAML: no DTD at all (so no entity, external or internal, is ever expanded), within the
/// message bounds of xml_bounds.rs (checked by one linear pass before the parser runs), no
/// processing instructions.
pub fn parse(xml: &str) -> Result<Document<'_>, SamlError> {
    parse_within(xml, &xml_bounds::MESSAGE)
}

/// [`parse`] within other bounds (metadata's, xml_bounds::METADATA).
pub fn parse_within<'a>(xml: &'a str, limits: &xml_bounds::Limits) -> Result<Document<'a>, SamlError> {
    if xml.contains("<!DOCTYPE") || xml.contains("<!ENTITY") {
        return Err(SamlError::Doctype);
    }
    // Before the parser: its duplicate-attribute and prefix checks are quadratic past them.
    xml_bounds::scan(xml, limits).map_err(|refusal| match refusal {
        xml_bounds::Refusal::TooLarge => SamlError::TooLarge,
        xml_bounds::Refusal::Doctype => SamlError::Doctype,
        xml_bounds::Refusal::Malformed => SamlError::Malformed,
        xml_bounds::Refusal::Limit(what) => SamlError::XmlLimits(what),
    })?;
    let doc = uppsala::Parser::new()
        .with_forbid_dtd(true)
        .with_forbid_entities(true)
        .with_max_depth(limits.depth as u32)
        .parse(xml)
        .map_err(|_| SamlError::Malformed)?;
    if doc
        .descendants(doc.root())
        .iter()
        .any(|&n| matches!(doc.node_kind(n), Some(NodeKind::ProcessingInstruction(_))))
    {
        return Err(SamlError::Structure("processing instruction"));
    }
    Ok(doc)
}

/// The response's Issuer (or its Assertion's), unverified: only to pick the tenant of an
/// unsolicited response, whose trust then verifies it. A document the parser refuses is refused
/// for that reason (a DOCTYPE is `saml_doctype` here too); one without an Issuer is `Issuer`.
pub fn claimed_issuer(xml: &str) -> Result<String, SamlError> {
    let doc = parse(xml)?;
    let issuer = doc.document_element().and_then(|root| {
        child(&doc, root, SAML, "Issuer").or_else(|| {
            let assertion = child(&doc, root, SAML, "Assertion")?;
            child(&doc, assertion, SAML, "Issuer")
        })
    });
    let text = issuer.and_then(|issuer| full_text(&doc, issuer).ok());
    text.map(|s| s.trim().to_owned()).ok_or(SamlError::Issuer)
}

/// The whole ACS check. See the module doc for the order.
pub fn verify(xml: &str, trust: &IdpTrust, expected: &Expected<'_>) -> Result<VerifiedResponse, SamlError> {
    let doc = parse(xml)?;
    let response = doc.document_element().ok_or(SamlError::Malformed)?;
    if !is(&doc, response, SAMLP, "Response") {
        return Err(SamlError::Structure("the root is not a samlp:Response"));
    }
    // A failure status carries no assertion; say so rather than "no assertion".
    check_status(&doc, response)?;
    let shape = Shape::of(&doc, response)?;
    let mut weak = false;
    for &(signature, parent) in [shape.response_signature, shape.assertion_signature].iter().flatten() {
        weak |= check_signature_shape(&doc, signature, parent, trust)?;
    }
    verify_signatures(&doc, xml, &shape, trust)?;

    let skew = trust.clock_skew;
    let now = expected.now;
    check_response(&doc, &shape, trust, expected)?;
    let in_response_to = attr(&doc, response, "InResponseTo").filter(|v| !v.is_empty()).map(str::to_owned);
    // A relayed InResponseTo binds the Assertion to the same request as the Response.
    let relayed;
    let expected = if expected.relay_in_response_to && expected.request_id.is_none() {
        relayed = Expected { request_id: in_response_to.as_deref(), ..*expected };
        &relayed
    } else {
        expected
    };
    let assertion = shape.assertion;
    if attr(&doc, assertion, "Version") != Some("2.0") {
        return Err(SamlError::Structure("Assertion Version is not 2.0"));
    }
    let issuer = child(&doc, assertion, SAML, "Issuer").ok_or(SamlError::Issuer)?;
    // One issuer in any spelling (config/issuer.rs): the keys, not the spelling, vouch for it.
    if !same_issuer(full_text(&doc, issuer)?.trim(), &trust.entity_id) {
        return Err(SamlError::Issuer);
    }
    let issued = instant(&doc, assertion, "IssueInstant")?.ok_or(SamlError::Time("IssueInstant missing"))?;
    if issued > now + skew {
        return Err(SamlError::NotYetValid("IssueInstant"));
    }
    let subject =
        only_child(&doc, assertion, SAML, "Subject")?.ok_or(SamlError::SubjectConfirmation("no Subject"))?;
    let confirmed_until = check_subject_confirmation(&doc, subject, expected, skew)?;
    let conditions_until = check_conditions(&doc, assertion, expected, skew)?;
    let authn_instant = check_authn_statement(&doc, assertion, now, skew)?;

    let name_id = read_name_id(&doc, subject)?;
    let attributes = read_attributes(&doc, assertion)?;
    let assertion_id = attr(&doc, assertion, "ID").unwrap_or_default().to_owned();
    Ok(VerifiedResponse {
        identity: VerifiedIdentity::from_saml(&trust.entity_id, name_id, attributes),
        assertion_id,
        replay_until: confirmed_until.min(conditions_until) + skew,
        weak_algorithm: weak,
        in_response_to,
        authn_instant,
    })
}

/// Where the parts of an accepted response sit.
struct Shape {
    assertion: NodeId,
    /// (Signature, the element it must cover)
    response_signature: Option<(NodeId, NodeId)>,
    assertion_signature: Option<(NodeId, NodeId)>,
}

impl Shape {
    /// Rule 3 of shared/SECURITY.md: exactly one Response and one Assertion, the Assertion a
    /// direct child of the Response; a Signature only as a direct child of one of the two, at
    /// most one each; IDs unique across the document. Everything else a wrapping attack needs
    /// (a second assertion in Advice, Extensions, SubjectConfirmationData or ds:Object; a
    /// detached copy of the signed element) fails one of these.
    fn of(doc: &Document<'_>, response: NodeId) -> Result<Shape, SamlError> {
        let mut ids = HashSet::new();
        let mut assertions = Vec::new();
        let mut signatures = Vec::new();
        for node in doc.descendants(doc.root()) {
            let Some(element) = doc.element(node) else { continue };
            let local = &*element.name.local_name;
            match local {
                "EncryptedAssertion" | "EncryptedID" | "EncryptedAttribute" => {
                    return Err(SamlError::Encrypted)
                }
                "Assertion" => assertions.push(node),
                "Response" if node != response => return Err(SamlError::Structure("a second Response")),
                "Signature" => signatures.push(node),
                _ => {}
            }
            for attribute in &element.attributes {
                if matches!(&*attribute.name.local_name, "ID" | "Id" | "id" | "AssertionID")
                    && !ids.insert(attribute.value.as_ref())
                {
                    return Err(SamlError::Structure("duplicate ID"));
                }
            }
        }
        let [assertion] = assertions[..] else {
            return Err(SamlError::Structure(if assertions.is_empty() {
                "no Assertion"
            } else {
                "more than one Assertion"
            }));
        };
        if !is(doc, assertion, SAML, "Assertion") || doc.parent(assertion) != Some(response) {
            return Err(SamlError::Structure("the Assertion is not a child of the Response"));
        }
        let mut shape = Shape { assertion, response_signature: None, assertion_signature: None };
        for signature in signatures {
            let parent = doc.parent(signature);
            let slot = if !is(doc, signature, DSIG, "Signature") {
                return Err(SamlError::Structure("Signature in a foreign namespace"));
            } else if parent == Some(response) {
                &mut shape.response_signature
            } else if parent == Some(assertion) {
                &mut shape.assertion_signature
            } else {
                return Err(SamlError::Structure("a Signature outside the Response and Assertion"));
            };
            if slot.replace((signature, parent.unwrap_or(response))).is_some() {
                return Err(SamlError::Structure("two Signatures on one element"));
            }
        }
        expect_children(doc, response, &["Issuer", "Signature", "Status", "Assertion"])?;
        expect_children(
            doc,
            assertion,
            &["Issuer", "Signature", "Subject", "Conditions", "AuthnStatement", "AttributeStatement"],
        )?;
        Ok(shape)
    }
}

/// Only these children, in this order (SAML Core §2.3.3, §3.2.2), each at most once except the
/// statements; anything else (Extensions, Advice, custom statements) is refused.
fn expect_children(doc: &Document<'_>, parent: NodeId, allowed: &[&str]) -> Result<(), SamlError> {
    let mut position = 0;
    let mut previous: Option<&str> = None;
    for node in element_children(doc, parent) {
        let element = doc.element(node).ok_or(SamlError::Malformed)?;
        let local = &*element.name.local_name;
        let ns = element.name.namespace_uri.as_deref().unwrap_or("");
        let expected_ns = if local == "Signature" {
            DSIG
        } else if local == "Status" {
            SAMLP
        } else {
            SAML
        };
        let Some(found) = allowed.iter().position(|a| *a == local).filter(|_| ns == expected_ns) else {
            return Err(SamlError::Structure("an element the profile does not allow"));
        };
        let repeatable = local.ends_with("Statement");
        if found < position || (found == position && previous == Some(local) && !repeatable) {
            return Err(SamlError::Structure("elements out of order or repeated"));
        }
        position = found;
        previous = Some(allowed[found]);
    }
    Ok(())
}

fn check_status(doc: &Document<'_>, response: NodeId) -> Result<(), SamlError> {
    let status = only_child(doc, response, SAMLP, "Status")?.ok_or(SamlError::Structure("no Status"))?;
    let code = only_child(doc, status, SAMLP, "StatusCode")?.ok_or(SamlError::Structure("no StatusCode"))?;
    if attr(doc, code, "Value") != Some(STATUS_SUCCESS) {
        return Err(SamlError::Status);
    }
    Ok(())
}

mod checks;
mod dom;
mod signature;
#[cfg(test)]
mod tests;

use checks::*;
pub(crate) use dom::attr;
use dom::*;
pub use signature::verify_root_signature;
use signature::*;
