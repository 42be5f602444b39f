//! Unit tests of src/mint/saml_idp.rs and saml_idp_request.rs. The tests in which nymgate's own
//! SAML SP stands in for a platform live with that SP, in src/login/saml_platform_tests.rs (mint
//! is below the flows and imports nothing of login); they build their parties with the fixtures
//! here (`build`, `login`, the URLs), which is why those are `pub(crate)`.

use super::*;
use crate::pseudonym::policy::Role;
use crate::verify::saml_acs::{Expected, IdpTrust, RequiredSignatures};

pub(crate) const IDP: &str = "https://learn.example/nymgate/idp";
pub(crate) const SSO: &str = "https://learn.example/nymgate/idp/sso";
pub(crate) const SP: &str = "https://platform.example/saml";
pub(crate) const ACS: &str = "https://platform.example/saml/acs";

/// A teacher's login (the role's two names differ: `faculty` and `teacher`).
pub(crate) fn login() -> PseudonymousLogin {
    PseudonymousLogin { role: Role::Teacher, school: Some("SCH-A".into()), ..PseudonymousLogin::example() }
}

/// nymgate's IdP (RSA) with `SP` as its one platform (requests signed when `sp_signs`,
/// IdP-initiated logins when `idp_initiated`): the IdP, its certificate, and the SP's signing
/// certificate and key (PEM).
pub(crate) fn build(sp_signs: bool, idp_initiated: bool) -> (SamlIdp, String, String, String) {
    let (cert, key) = crate::certs::generate_saml_signing_cert(IDP).unwrap();
    let (sp_cert, sp_key) = crate::certs::generate_saml_signing_cert(SP).unwrap();
    let certificates = if sp_signs { vec![sp_cert.clone().into_bytes()] } else { vec![] };
    let settings = SpSettings { certificates, idp_initiated, ..SpSettings::new(SP, ACS) };
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
    (idp, cert, sp_cert, sp_key)
}

/// nymgate's IdP (RSA) and the certificate an SP pins for it (requests signed when `sp_signs`).
fn idp_and_cert(sp_signs: bool) -> (SamlIdp, String) {
    let (idp, cert, _, _) = build(sp_signs, false);
    (idp, cert)
}

fn now() -> u64 {
    crate::clock::unix_now()
}

#[test]
fn a_response_changed_after_signing_is_refused() {
    let (idp, cert) = idp_and_cert(false);
    let request = SpRequest::new(SP, Some("_req1".into()), None);
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
fn metadata_names_the_sso_service_and_the_signing_certificate() {
    let (idp, cert) = idp_and_cert(true);
    let xml = idp.metadata(now()).unwrap();
    assert!(xml.contains(&format!(r#"entityID="{IDP}""#)));
    assert!(xml.contains(&format!(r#"Location="{SSO}""#)));
    assert!(xml.contains(r#"WantAuthnRequestsSigned="true""#));
    let der = cert.lines().filter(|l| !l.starts_with("-----")).collect::<String>();
    assert!(xml.contains(&der));
    assert!(saml_acs::parse(&xml).is_ok());
    // Valid for a week from now, to be refetched within six hours.
    assert!(xml.contains(&format!(r#"validUntil="{}""#, rfc3339(now() + 7 * 24 * 3600))), "{xml}");
    assert!(xml.contains(r#"cacheDuration="PT6H""#));
}

/// The metadata is signed by the IdP key: nymgate's own metadata reader, which checks a
/// federation's signed metadata against a pinned certificate, takes it with nymgate's
/// certificate pinned, and refuses it with a byte changed. (tests/saml_out.rs verifies it with
/// opensaml's samlsign too.)
#[test]
fn the_idp_metadata_is_signed_and_a_changed_copy_is_refused() {
    let (idp, cert) = idp_and_cert(true);
    let xml = idp.metadata(now()).unwrap();
    let trust =
        IdpTrust::new(IDP, &[cert.as_bytes().to_vec()], RequiredSignatures::Response, false, 60, false)
            .unwrap();
    let read = crate::verify::saml_metadata::read(&xml, IDP, Some(&trust), now());
    assert!(read.is_ok(), "{:?}", read.err());
    let changed = xml.replace(SSO, "https://attacker.example/sso");
    assert!(crate::verify::saml_metadata::read(&changed, IDP, Some(&trust), now()).is_err());
}

/// The public metadata endpoint signs once an hour, not once per request: the same copy within
/// the hour, a fresh one after it (and after a clock step back).
#[test]
fn the_metadata_is_signed_once_an_hour_not_per_request() {
    let (idp, _) = idp_and_cert(true);
    let first = idp.metadata(now()).unwrap();
    assert_eq!(idp.metadata(now() + 3599).unwrap(), first);
    let later = idp.metadata(now() + 3600).unwrap();
    assert_ne!(later, first);
    assert!(later.contains(&format!(r#"validUntil="{}""#, rfc3339(now() + 3600 + 7 * 24 * 3600))));
    assert_ne!(idp.metadata(now()).unwrap(), later, "a clock stepped back signs afresh");
}

/// `WantAuthnRequestsSigned` tells each platform the truth: true only when every platform's
/// requests must be signed.
#[test]
fn want_authn_requests_signed_is_true_only_when_every_platform_must_sign() {
    let (open, _) = idp_and_cert(false);
    assert!(open.metadata(now()).unwrap().contains(r#"WantAuthnRequestsSigned="false""#));
    let (signing, _) = idp_and_cert(true);
    assert!(signing.metadata(now()).unwrap().contains(r#"WantAuthnRequestsSigned="true""#));
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
    assert_eq!(idp.read_redirect(&query, now).unwrap().request.request_id.as_deref(), Some("_req1"));
    let field = String::from_utf8(seed("post_field")[1..].to_vec()).unwrap();
    assert_eq!(idp.read_post(&field, None, now).unwrap().request.sp, "https://open.example/saml");
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
        let request = idp.unsolicited(SP, None).unwrap().request;
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

/// An AuthnRequest of the platform `SP` as XML, well-formed and fresh, with `attributes` added
/// to its root and `children` after its Issuer.
fn request_xml(id: &str, attributes: &str, children: &str) -> String {
    format!(
        r#"<samlp:AuthnRequest xmlns:samlp="{PROTOCOL}" xmlns:saml="{ASSERTION}" ID="{id}" IssueInstant="{now}" AssertionConsumerServiceURL="{ACS}"{attributes}><saml:Issuer>{SP}</saml:Issuer>{children}</samlp:AuthnRequest>"#,
        now = rfc3339(now()),
    )
}

/// The Redirect binding's query for `xml` (Bindings §3.4.4.1), signed with `key` (the SP's
/// PKCS#8 PEM) when given, and with `relay_state`.
fn redirect(xml: &str, relay_state: Option<&str>, key: Option<&str>) -> String {
    use std::io::Write;
    let mut deflater = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflater.write_all(xml.as_bytes()).unwrap();
    let encode = |value: &str| -> String {
        openidconnect::url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
    };
    let mut query = format!("SAMLRequest={}", encode(&STANDARD.encode(deflater.finish().unwrap())));
    if let Some(relay_state) = relay_state {
        query.push_str(&format!("&RelayState={}", encode(relay_state)));
    }
    let Some(key) = key else { return query };
    use rustls_pki_types::pem::PemObject;
    query.push_str(&format!("&SigAlg={}", encode("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")));
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap();
    let mut signature = vec![0; pair.public_modulus_len()];
    let rng = aws_lc_rs::rand::SystemRandom::new();
    pair.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &rng, query.as_bytes(), &mut signature).unwrap();
    format!("{query}&Signature={}", encode(&STANDARD.encode(signature)))
}

/// nymgate's IdP with `SP` as its one platform, signing its requests with the returned key
/// when `signs`.
fn idp_for(signs: bool) -> (SamlIdp, String) {
    let (idp, _, _, sp_key) = build(signs, true);
    (idp, sp_key)
}

const DESTINATION: &str = r#" Version="2.0" Destination="https://learn.example/nymgate/idp/sso""#;

#[test]
fn a_signed_authn_request_without_destination_is_refused() {
    let (idp, key) = idp_for(true);
    let with = request_xml("_d1", DESTINATION, "");
    assert!(idp.read_redirect(&redirect(&with, None, Some(&key)), now()).is_ok());
    let without = request_xml("_d2", r#" Version="2.0""#, "");
    let refused = idp.read_redirect(&redirect(&without, None, Some(&key)), now());
    assert_eq!(refused, Err(SamlOutError::NoDestination));
    assert_eq!(SamlOutError::NoDestination.reason(), "authn_request_no_destination");
    // Another SSO URL, signed or not, is refused as before.
    let elsewhere = request_xml("_d3", r#" Version="2.0" Destination="https://other.example/sso""#, "");
    let refused = idp.read_redirect(&redirect(&elsewhere, None, Some(&key)), now());
    assert_eq!(refused, Err(SamlOutError::WrongDestination));
    // A platform that does not sign may leave Destination out (Bindings §3.4.5.2 asks it of
    // signed messages only), unless it signs all the same.
    let (open, _) = idp_for(false);
    assert!(open.read_redirect(&redirect(&without, None, None), now()).is_ok());
    let refused = open.read_redirect(&redirect(&without, None, Some(&key)), now());
    assert_eq!(refused, Err(SamlOutError::NoDestination));
    // The same over HTTP-POST: a ds:Signature on the request makes it a signed message.
    assert!(open.read_post(&STANDARD.encode(&without), None, now()).is_ok());
    let signature = r#"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/>"#;
    let carrying = without.replace("</saml:Issuer>", &format!("</saml:Issuer>{signature}"));
    let refused = open.read_post(&STANDARD.encode(carrying), None, now());
    assert_eq!(refused, Err(SamlOutError::NoDestination));
}

#[test]
fn an_authn_request_of_another_version_is_refused() {
    let (idp, key) = idp_for(true);
    let sso = r#" Destination="https://learn.example/nymgate/idp/sso""#;
    for version in ["1.1", "2.1", "2.0 ", " 2.0", "2", "2.00", "3.0", ""] {
        let xml = request_xml("_v1", &format!(r#" Version="{version}"{sso}"#), "");
        let refused = idp.read_redirect(&redirect(&xml, None, Some(&key)), now());
        assert_eq!(refused, Err(SamlOutError::VersionMismatch), "{version:?}");
    }
    let xml = request_xml("_v2", sso, "");
    let refused = idp.read_redirect(&redirect(&xml, None, Some(&key)), now());
    assert_eq!(refused, Err(SamlOutError::VersionMismatch), "no Version at all");
    assert_eq!(SamlOutError::VersionMismatch.reason(), "authn_request_version");
}

#[test]
fn a_relay_state_past_80_bytes_is_refused_in_every_binding() {
    let (idp, key) = idp_for(true);
    let xml = request_xml("_r1", DESTINATION, "");
    let at_limit = "r".repeat(80);
    let read = idp.read_redirect(&redirect(&xml, Some(&at_limit), Some(&key)), now()).unwrap();
    assert_eq!(read.request.relay_state.as_deref(), Some(at_limit.as_str()));
    let over = "r".repeat(81);
    let refused = idp.read_redirect(&redirect(&xml, Some(&over), Some(&key)), now());
    assert_eq!(refused, Err(SamlOutError::RelayState));
    // 80 bytes, not 80 characters: 41 two-byte letters are 82 bytes.
    let refused = idp.read_redirect(&redirect(&xml, Some(&"å".repeat(41)), Some(&key)), now());
    assert_eq!(refused, Err(SamlOutError::RelayState));
    let (open, _) = idp_for(false);
    let field = STANDARD.encode(request_xml("_r2", DESTINATION, ""));
    assert!(open.read_post(&field, Some(&at_limit), now()).is_ok());
    assert_eq!(open.read_post(&field, Some(&over), now()), Err(SamlOutError::RelayState));
    assert_eq!(open.unsolicited(SP, Some(&over)), Err(SamlOutError::RelayState));
    assert!(open.unsolicited(SP, Some(&at_limit)).is_ok());
    assert_eq!(SamlOutError::RelayState.reason(), "saml_relay_state");
}

#[test]
fn force_authn_and_is_passive_are_read_as_xs_boolean() {
    let (idp, _) = idp_for(false);
    let read = |attributes: &str| {
        let xml = request_xml("_f1", &format!("{DESTINATION}{attributes}"), "");
        idp.read_redirect(&redirect(&xml, None, None), now())
            .map(|r| (r.request.force_authn, r.request.is_passive))
    };
    assert_eq!(read(""), Ok((false, false)));
    assert_eq!(read(r#" ForceAuthn="true""#), Ok((true, false)));
    assert_eq!(read(r#" ForceAuthn="1" IsPassive="0""#), Ok((true, false)));
    assert_eq!(read(r#" IsPassive="true""#), Ok((false, true)));
    assert_eq!(read(r#" ForceAuthn="false" IsPassive="1""#), Ok((false, true)));
    assert_eq!(read(r#" ForceAuthn="yes""#), Err(SamlOutError::NotAnAuthnRequest));
    assert_eq!(read(r#" IsPassive="TRUE""#), Err(SamlOutError::NotAnAuthnRequest));
}

/// Each read gives the key its ID is claimed under and a claim that outlives every moment at
/// which the same request would still pass the time check; the store then refuses a second
/// claim (src/login/saml_out.rs claims it before anything else happens).
#[test]
fn an_authn_request_id_is_claimed_once_until_it_is_stale() {
    let (idp, key) = idp_for(true);
    let xml = request_xml("_once", DESTINATION, "");
    let query = redirect(&xml, None, Some(&key));
    let now = now();
    let read = idp.read_redirect(&query, now).unwrap();
    let (claim, until) = read.single_use.clone().unwrap();
    assert_eq!(claim, format!("{SP}\n_once"));
    // Past `until` the request itself is refused as stale, so the claim may end there.
    assert!(idp.read_redirect(&query, until).is_err());
    assert!(idp.read_redirect(&query, until - 2).is_ok());
    let store = crate::store::Store::memory(16);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let space = crate::store::Space::AuthnRequest;
        assert!(store.claim(space, &claim, until, now).await.unwrap());
        let again = idp.read_redirect(&query, now).unwrap().single_use.unwrap();
        assert!(!store.claim(space, &again.0, again.1, now).await.unwrap(), "the same ID twice");
        // The same ID from another platform is another request.
        assert!(store.claim(space, "https://other.example\n_once", until, now).await.unwrap());
    });
    // An IdP-initiated start has no ID to claim.
    assert_eq!(idp.unsolicited(SP, None).unwrap().single_use, None);
}

/// The NameIDPolicy formats nymgate honours: it issues persistent NameIDs only.
const HONOURED: [&str; 2] = [
    "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
    "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
];

/// Format URIs an SP may ask for: SAML Core §8.3's, the same with a changed case or an extra
/// character, and arbitrary ones.
fn format_uri() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let known = prop::sample::select(vec![
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:X509SubjectName",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:WindowsDomainQualifiedName",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:kerberos",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:entity",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:encrypted",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:unspecified",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:persistent",
    ])
    .prop_map(str::to_owned);
    let variant = (known.clone(), 0..3u8).prop_map(|(uri, how)| match how {
        0 => uri.to_uppercase(),
        1 => format!("{uri} "),
        _ => format!("{uri}x"),
    });
    prop_oneof![known, variant, "[a-z:./0-9]{0,60}"]
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 64, ..Default::default() })]

    /// Every Format but persistent and unspecified, and every SPNameQualifier but the SP's own,
    /// is answered with InvalidNameIDPolicy: never refused, never a login.
    #[test]
    fn an_unhonourable_name_id_policy_is_answered_with_invalid_name_id_policy(
        format in format_uri(),
        qualifier in proptest::option::of(proptest::prop_oneof![
            proptest::strategy::Just(SP.to_owned()),
            proptest::strategy::Just("https://affiliation.example".to_owned()),
        ]),
        allow_create in proptest::bool::ANY,
    ) {
        let (idp, _) = idp_for(false);
        let qualifier_attribute =
            qualifier.as_deref().map(|q| format!(r#" SPNameQualifier="{q}""#)).unwrap_or_default();
        let policy = format!(
            r#"<samlp:NameIDPolicy Format="{}"{qualifier_attribute} AllowCreate="{allow_create}"/>"#,
            escape(&format)
        );
        let xml = request_xml("_n1", DESTINATION, &policy);
        let read = idp.read_redirect(&redirect(&xml, None, None), now()).unwrap();
        let honoured = HONOURED.contains(&format.as_str()) && qualifier.as_deref().is_none_or(|q| q == SP);
        let expected = (!honoured).then_some(StatusAnswer::InvalidNameIdPolicy);
        proptest::prop_assert_eq!(read.answer, expected, "{}", policy);
        // The ID is claimed all the same: the status is the request's one answer.
        proptest::prop_assert!(read.single_use.is_some());
    }
}

#[test]
fn no_name_id_policy_or_one_without_format_is_honoured_and_two_are_malformed() {
    let (idp, _) = idp_for(false);
    let read = |children: &str| {
        let xml = request_xml("_n2", DESTINATION, children);
        idp.read_redirect(&redirect(&xml, None, None), now()).map(|r| r.answer)
    };
    assert_eq!(read(""), Ok(None));
    assert_eq!(read(r#"<samlp:NameIDPolicy AllowCreate="true"/>"#), Ok(None));
    let two = r#"<samlp:NameIDPolicy/><samlp:NameIDPolicy Format="urn:oasis:names:tc:SAML:2.0:nameid-format:transient"/>"#;
    assert_eq!(read(two), Err(SamlOutError::NotAnAuthnRequest));
}

/// The status Response: signed, no Assertion, the two status levels, InResponseTo and the
/// RelayState's request, to the configured ACS.
#[test]
fn a_status_answer_is_a_signed_response_without_an_assertion() {
    let (idp, cert) = idp_and_cert(false);
    let request = SpRequest::new(SP, Some("_req9".into()), None);
    for (answer, top, second) in [
        (StatusAnswer::InvalidNameIdPolicy, "Requester", "InvalidNameIDPolicy"),
        (StatusAnswer::NoPassive, "Responder", "NoPassive"),
    ] {
        let (xml, acs) = idp.status_response(&request, answer, now()).unwrap();
        assert_eq!(acs, ACS);
        assert!(!xml.contains("Assertion"), "{xml}");
        let codes = format!(
            r#"<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:{top}"><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:{second}"/></samlp:StatusCode>"#
        );
        assert!(xml.contains(&codes), "{xml}");
        assert!(xml.contains(r#"InResponseTo="_req9""#) && xml.contains(&format!(r#"Destination="{ACS}""#)));
        // Its signature verifies with nymgate's key over the Response (what node-saml checks
        // before it believes a NoPassive).
        let doc = saml_acs::parse(&xml).unwrap();
        let root = doc.document_element().unwrap();
        let trust =
            IdpTrust::new(IDP, &[cert.clone().into_bytes()], RequiredSignatures::Response, false, 60, false)
                .unwrap();
        saml_acs::verify_root_signature(&doc, &xml, root, &trust).unwrap();
        let changed = xml.replace(second, "AuthnFailed");
        let doc = saml_acs::parse(&changed).unwrap();
        let root = doc.document_element().unwrap();
        assert!(saml_acs::verify_root_signature(&doc, &changed, root, &trust).is_err());
    }
}

#[test]
fn authn_request_with_thousands_of_attributes_on_one_element_is_refused() {
    // Within the 16 KiB an AuthnRequest may inflate to, 1,400 attributes on one element: refused
    // by the XML bounds (xml_bounds.rs) before the parser, in either binding.
    let (open, _) = idp_for(false);
    let many: String = (0..1_400).map(|i| format!(" a{i}=\"x\"")).collect();
    let xml = request_xml("_m1", &format!("{DESTINATION}{many}"), "");
    assert!(xml.len() < 16 * 1024, "{}", xml.len());
    assert_eq!(open.read_redirect(&redirect(&xml, None, None), now()), Err(SamlOutError::Encoding));
    assert_eq!(open.read_post(&STANDARD.encode(&xml), None, now()), Err(SamlOutError::Encoding));
    // Under the bound (7 of the request's own and 50 more) it is read.
    let some: String = (0..50).map(|i| format!(" a{i}=\"x\"")).collect();
    let xml = request_xml("_m2", &format!("{DESTINATION}{some}"), "");
    assert!(open.read_post(&STANDARD.encode(&xml), None, now()).is_ok());
}
