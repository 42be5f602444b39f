//! nymgate's SAML SP (login/saml_sp.rs) standing in for a platform in front of nymgate's SAML
//! IdP (mint/saml_idp.rs): its AuthnRequests, signed or not, read by the IdP face, and the
//! IdP's Response read back by nymgate's strict ACS profile. They live on login's side because
//! mint is below the flows and imports nothing of login; the IdP's own unit tests are in
//! src/mint/saml_idp_tests.rs.

use crate::mint::saml_idp::tests::{build, login, ACS, IDP, SP, SSO};
use crate::mint::saml_idp::{SamlIdp, SamlOutError, SpRequest};
use crate::verify::saml_acs::{self, Expected, IdpTrust, RequiredSignatures};

/// nymgate's IdP (RSA), the certificate an SP pins for it, and the SP's own signing pair
/// (nymgate's SAML SP code stands in for a platform that signs its requests).
fn parties(sp_signs: bool) -> (SamlIdp, String, super::saml_sp::SamlSp) {
    let (idp, cert, sp_cert, sp_key) = build(sp_signs, false);
    let sp = super::saml_sp::SamlSp::new(SP, ACS, sp_cert.as_bytes(), sp_key.as_bytes()).unwrap();
    (idp, cert, sp)
}

/// The platform's signed AuthnRequest over HTTP-Redirect, as its query string, and its ID.
fn redirect_query(sp: &super::saml_sp::SamlSp, sign: bool) -> (String, String) {
    let target = super::saml_sp::SamlIdp {
        tenant: "t".into(),
        entity_id: IDP.into(),
        sso_url: SSO.into(),
        name_id_format: None,
        sign_requests: sign,
    };
    let (url, id) = sp.login_url(&target, "platform-relay", crate::clock::unix_now());
    (url.split_once('?').unwrap().1.to_owned(), id)
}

fn now() -> u64 {
    crate::clock::unix_now()
}

#[test]
fn response_carries_two_signatures_and_only_pseudonymous_values() {
    let (idp, cert, sp) = parties(true);
    let (query, id) = redirect_query(&sp, true);
    let read = idp.read_redirect(&query, now()).unwrap();
    assert_eq!(read.answer, None);
    assert_eq!(read.single_use.as_ref().map(|(key, _)| key.as_str()), Some(&*format!("{SP}\n{id}")));
    let request = read.request;
    assert_eq!(request, SpRequest::new(SP, Some(id.clone()), Some("platform-relay".into())));
    let login = login();
    let (xml, acs) = idp.response(&login, &request, now()).unwrap();
    assert_eq!(acs, ACS);
    // nymgate's own strict ACS profile, requiring both signatures, accepts it.
    let trust = IdpTrust::new(IDP, &[cert.into_bytes()], RequiredSignatures::Both, false, 60, false).unwrap();
    let expected = Expected {
        sp_entity_id: SP,
        acs_url: ACS,
        request_id: Some(&id),
        now: now(),
        relay_in_response_to: false,
    };
    let verified = saml_acs::verify(&xml, &trust, &expected).unwrap();
    let rules = crate::verify::identity::SubjectRules::default();
    let subject = verified.identity.stable_subject(crate::config::IdpKind::Saml, &rules).unwrap();
    assert_eq!(subject.subject, login.sub.as_str());
    assert_eq!(verified.identity.values(&["eduPersonAffiliation".to_owned()]), ["faculty"]);
    assert_eq!(verified.identity.values(&["role".to_owned()]), ["teacher"]);
    assert_eq!(verified.identity.values(&["school".to_owned()]), ["SCH-A"]);
    assert!(!xml.contains("email") && !xml.contains("<?xml"), "{xml}");
}

#[test]
fn authn_requests_are_checked_against_the_registered_sp() {
    let (idp, _, sp) = parties(true);
    // Unsigned, from an SP that signs: refused.
    let (unsigned, _) = redirect_query(&sp, false);
    assert_eq!(idp.read_redirect(&unsigned, now()), Err(SamlOutError::Unsigned));
    // A changed RelayState breaks the signature.
    let (query, _) = redirect_query(&sp, true);
    let forged = query.replace("platform-relay", "other-relay");
    assert_eq!(idp.read_redirect(&forged, now()), Err(SamlOutError::BadSignature));
    // Signed by another key.
    let (_, _, stranger) = parties(true);
    let (foreign, _) = redirect_query(&stranger, true);
    assert_eq!(idp.read_redirect(&foreign, now()), Err(SamlOutError::BadSignature));
    // A duplicated signed parameter is ambiguous.
    assert_eq!(idp.read_redirect(&format!("{query}&RelayState=x"), now()), Err(SamlOutError::Encoding));
    // Too old.
    assert_eq!(idp.read_redirect(&query, now() + 3600), Err(SamlOutError::Stale));
    // Garbage of every kind is an error, not a panic.
    for junk in ["", "SAMLRequest=%%%", "SAMLRequest=aGVsbG8=", "SAMLRequest="] {
        assert!(idp.read_redirect(junk, now()).is_err(), "{junk}");
    }
}

#[test]
fn an_sp_that_does_not_sign_may_send_unsigned_requests_for_its_own_acs_only() {
    let (idp, _, sp) = parties(false);
    let (query, _) = redirect_query(&sp, false);
    assert!(idp.read_redirect(&query, now()).is_ok());
    // The same request naming another ACS (the SP code builds it for nymgate's SP ACS).
    let other = super::saml_sp::SamlSp::new(
        SP,
        "https://evil.example/acs",
        crate::certs::generate_saml_signing_cert(SP).unwrap().0.as_bytes(),
        crate::certs::generate_saml_signing_cert(SP).unwrap().1.as_bytes(),
    )
    .unwrap();
    let (query, _) = redirect_query(&other, false);
    assert_eq!(idp.read_redirect(&query, now()), Err(SamlOutError::WrongAcs));
    assert_eq!(idp.unsolicited(SP, None), Err(SamlOutError::NoIdpInitiated));
    assert_eq!(idp.unsolicited("https://unknown.example", None), Err(SamlOutError::UnknownSp));
}
