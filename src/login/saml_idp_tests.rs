//! Unit tests of src/login/saml_idp.rs and saml_idp_request.rs.

use super::*;
use crate::login::saml_acs::{Expected, IdpTrust, RequiredSignatures};
use crate::pseudonym::policy::Role;

const IDP: &str = "https://learn.example/nymgate/idp";
const SSO: &str = "https://learn.example/nymgate/idp/sso";
const SP: &str = "https://platform.example/saml";
const ACS: &str = "https://platform.example/saml/acs";

/// A teacher's login (the role's two names differ: `faculty` and `teacher`).
fn login() -> PseudonymousLogin {
    PseudonymousLogin { role: Role::Teacher, school: Some("SCH-A".into()), ..PseudonymousLogin::example() }
}

/// nymgate's IdP (RSA), the certificate an SP pins for it, and the SP's own signing pair
/// (nymgate's SAML SP code stands in for a platform that signs its requests).
fn parties(sp_signs: bool) -> (SamlIdp, String, crate::login::saml_sp::SamlSp) {
    let (cert, key) = crate::certs::generate_saml_signing_cert(IDP).unwrap();
    let (sp_cert, sp_key) = crate::certs::generate_saml_signing_cert(SP).unwrap();
    let certificates = if sp_signs { vec![sp_cert.clone().into_bytes()] } else { vec![] };
    let settings = SpSettings { certificates, ..SpSettings::new(SP, ACS) };
    let idp = SamlIdp::new(
        IDP.into(),
        SSO.into(),
        cert.as_bytes(),
        key.as_bytes(),
        SignatureAlgorithm::RsaSha256,
        300,
        vec![settings],
    )
    .unwrap();
    let sp = crate::login::saml_sp::SamlSp::new(SP, ACS, sp_cert.as_bytes(), sp_key.as_bytes()).unwrap();
    (idp, cert, sp)
}

/// The platform's signed AuthnRequest over HTTP-Redirect, as its query string, and its ID.
fn redirect_query(sp: &crate::login::saml_sp::SamlSp, sign: bool) -> (String, String) {
    let target = crate::login::saml_sp::SamlIdp {
        tenant: "t".into(),
        entity_id: IDP.into(),
        sso_url: SSO.into(),
        name_id_format: None,
        sign_requests: sign,
    };
    let (url, id) = sp.login_url(&target, "platform-relay", crate::pseudonym::keyring::unix_now());
    (url.split_once('?').unwrap().1.to_owned(), id)
}

fn now() -> u64 {
    crate::pseudonym::keyring::unix_now()
}

#[test]
fn response_carries_two_signatures_and_only_pseudonymous_values() {
    let (idp, cert, sp) = parties(true);
    let (query, id) = redirect_query(&sp, true);
    let request = idp.read_redirect(&query, now()).unwrap();
    assert_eq!(
        request,
        SpRequest { sp: SP.into(), request_id: Some(id.clone()), relay_state: Some("platform-relay".into()) }
    );
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
    let rules = crate::pseudonym::identity::SubjectRules::default();
    let subject = verified.identity.stable_subject(crate::config::IdpKind::Saml, &rules).unwrap();
    assert_eq!(subject.subject, login.sub.as_str());
    assert_eq!(verified.identity.values(&["eduPersonAffiliation".to_owned()]), ["faculty"]);
    assert_eq!(verified.identity.values(&["role".to_owned()]), ["teacher"]);
    assert_eq!(verified.identity.values(&["school".to_owned()]), ["SCH-A"]);
    assert!(!xml.contains("email") && !xml.contains("<?xml"), "{xml}");
}

#[test]
fn a_response_changed_after_signing_is_refused() {
    let (idp, cert, _) = parties(false);
    let request = SpRequest { sp: SP.into(), request_id: Some("_req1".into()), relay_state: None };
    let (xml, _) = idp.response(&login(), &request, now()).unwrap();
    let trust = IdpTrust::new(IDP, &[cert.into_bytes()], RequiredSignatures::Both, false, 60, false).unwrap();
    let expected = Expected {
        sp_entity_id: SP,
        acs_url: ACS,
        request_id: Some("_req1"),
        now: now(),
        relay_in_response_to: false,
    };
    let changed = xml.replace(">teacher<", ">staff<");
    assert_ne!(changed, xml);
    assert!(saml_acs::verify(&changed, &trust, &expected).is_err());
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
    let other = crate::login::saml_sp::SamlSp::new(
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

#[test]
fn metadata_names_the_sso_service_and_the_signing_certificate() {
    let (idp, cert, _) = parties(true);
    let xml = idp.metadata();
    assert!(xml.contains(&format!(r#"entityID="{IDP}""#)));
    assert!(xml.contains(&format!(r#"Location="{SSO}""#)));
    assert!(xml.contains(r#"WantAuthnRequestsSigned="true""#));
    let der = cert.lines().filter(|l| !l.starts_with("-----")).collect::<String>();
    assert!(xml.contains(&der));
    assert!(saml_acs::parse(&xml).is_ok());
}

/// The authn_request fuzz target's seeds at the seeds' time: the open SP's request passes in
/// every encoding, so mutations start from accepted requests.
#[test]
fn the_fuzz_seeds_pass_at_their_time() {
    let (cert, key) = crate::certs::generate_saml_signing_cert("https://learn.example/nymgate/idp").unwrap();
    let open = SpSettings::new("https://open.example/saml", "https://open.example/saml/acs");
    let idp = SamlIdp::new(
        "https://learn.example/nymgate/idp".into(),
        "https://learn.example/nymgate/idp/sso".into(),
        cert.as_bytes(),
        key.as_bytes(),
        SignatureAlgorithm::RsaSha256,
        300,
        vec![open],
    )
    .unwrap();
    let seed = |name: &str| {
        std::fs::read(format!("{}/fuzz/seeds/authn_request/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    let now = 1_795_600_830;
    let query = String::from_utf8(seed("redirect_query")[1..].to_vec()).unwrap();
    assert_eq!(idp.read_redirect(&query, now).unwrap().request_id.as_deref(), Some("_req1"));
    let field = String::from_utf8(seed("post_field")[1..].to_vec()).unwrap();
    assert_eq!(idp.read_post(&field, None, now).unwrap().sp, "https://open.example/saml");
    let signing = String::from_utf8(seed("xml_signing_sp_unsigned")[1..].to_vec()).unwrap();
    assert!(signing.contains("https://signing.example/saml"));
}

/// `rsa-sha512` and `ecdsa-sha256` sign as configured, and the strict verifier accepts both.
#[test]
fn every_signature_algorithm_signs_what_a_strict_verifier_accepts() {
    for (algorithm, rcgen_algorithm, uri) in [
        (SignatureAlgorithm::RsaSha512, &rcgen::PKCS_RSA_SHA256, "xmldsig-more#rsa-sha512"),
        (SignatureAlgorithm::EcdsaSha256, &rcgen::PKCS_ECDSA_P256_SHA256, "xmldsig-more#ecdsa-sha256"),
    ] {
        let (cert, key) = crate::certs::generate_saml_signing_cert_for(IDP, rcgen_algorithm).unwrap();
        let sp = SpSettings { idp_initiated: true, ..SpSettings::new(SP, ACS) };
        let idp =
            SamlIdp::new(IDP.into(), SSO.into(), cert.as_bytes(), key.as_bytes(), algorithm, 300, vec![sp])
                .unwrap();
        let request = idp.unsolicited(SP, None).unwrap();
        let (xml, _) = idp.response(&login(), &request, now()).unwrap();
        assert_eq!(xml.matches(uri).count(), 2, "{xml}");
        let trust =
            IdpTrust::new(IDP, &[cert.into_bytes()], RequiredSignatures::Both, false, 60, true).unwrap();
        let expected = Expected {
            sp_entity_id: SP,
            acs_url: ACS,
            request_id: None,
            now: now(),
            relay_in_response_to: false,
        };
        saml_acs::verify(&xml, &trust, &expected).unwrap();
    }
    // A key of the wrong type for the algorithm is a config error, not a failed login later.
    let (cert, key) = crate::certs::generate_saml_signing_cert(IDP).unwrap();
    let wrong = SamlIdp::new(
        IDP.into(),
        SSO.into(),
        cert.as_bytes(),
        key.as_bytes(),
        SignatureAlgorithm::EcdsaSha256,
        300,
        vec![],
    );
    assert!(wrong.is_err());
}
