//! Unit tests of the SAML verifier (tests/saml_acs.rs runs it end to end with real IdPs).

use super::*;

#[test]
fn doctype_and_entities_are_refused_before_parsing() {
    let laughs =
        r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><r>&b;</r>"#;
    assert_eq!(parse(laughs).err(), Some(SamlError::Doctype));
    let xxe = r#"<!DOCTYPE r [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]><r>&x;</r>"#;
    assert_eq!(parse(xxe).err(), Some(SamlError::Doctype));
    assert_eq!(
        parse("<r><?xml-stylesheet href='x'?></r>").err(),
        Some(SamlError::Structure("processing instruction"))
    );
    assert_eq!(parse("<r>").err(), Some(SamlError::Malformed));
}

#[test]
fn values_are_all_their_text() {
    let doc = parse("<r>alice<!---->@school.se<![CDATA[!]]></r>").unwrap();
    let root = doc.document_element().unwrap();
    assert_eq!(full_text(&doc, root).unwrap(), "alice@school.se!");
    let doc = parse("<r>a<b/>c</r>").unwrap();
    assert!(full_text(&doc, doc.document_element().unwrap()).is_err());
}

#[test]
fn post_field_decoding() {
    assert_eq!(decode_post(&STANDARD.encode("<r/>")).unwrap(), "<r/>");
    let wrapped = STANDARD.encode("<r>x</r>");
    let wrapped = format!("{}\r\n{}", &wrapped[..4], &wrapped[4..]);
    assert_eq!(decode_post(&wrapped).unwrap(), "<r>x</r>");
    assert_eq!(decode_post("%%%"), Err(SamlError::Encoding));
    assert_eq!(decode_post(&STANDARD.encode([0xff, 0xfe])), Err(SamlError::Encoding));
    assert_eq!(decode_post(&"A".repeat(MAX_RESPONSE_BYTES * 2)), Err(SamlError::TooLarge));
}

/// The fuzz seeds (signed by samlify and by pysaml2 with fuzz/saml-idp.pem's key) pass every
/// check at their own time,
/// so the fuzzer's mutations start from an accepted response.
#[test]
fn the_fuzz_seeds_verify_and_a_tampered_one_does_not() {
    let trust = IdpTrust::new(
        "https://idp.school-s.example/saml",
        &[include_bytes!("../../../fuzz/saml-idp.pem").to_vec()],
        RequiredSignatures::Both,
        false,
        60,
        false,
    )
    .unwrap();
    let expected = Expected {
        sp_entity_id: "https://learn.example/nymgate/saml",
        acs_url: "https://learn.example/nymgate/saml/acs",
        request_id: Some("_req1"),
        now: parse_instant("2026-11-25T10:01:00Z").unwrap(),
        relay_in_response_to: false,
    };
    let later = Expected { now: parse_instant("2026-11-25T10:06:00Z").unwrap(), ..expected };
    for xml in [
        include_str!("../../../fuzz/seeds/saml_response/samlify-both.xml"),
        include_str!("../../../fuzz/seeds/saml_response/pysaml2-both.xml"),
    ] {
        let verified = verify(xml, &trust, &expected).unwrap();
        assert_eq!(verified.assertion_id, "_a1");
        assert_eq!(verified.replay_until, parse_instant("2026-11-25T10:06:00Z").unwrap());
        let pairwise = verified.identity.values(&["pairwise-id".to_owned()]);
        assert_eq!(pairwise, ["x7@school-s.example"]);
        let tampered = xml.replace(">pupil-1<", ">pupil-2<");
        assert_eq!(verify(&tampered, &trust, &expected).err(), Some(SamlError::BadSignature));
        let expired = verify(xml, &trust, &later).err();
        assert_eq!(expired, Some(SamlError::Expired("SubjectConfirmationData NotOnOrAfter")));
    }
}

#[test]
fn unsolicited_and_in_response_to() {
    let trust = |allow| IdpTrust {
        entity_id: "idp".into(),
        context: DsigContext::new(KeysManager::new()),
        required: RequiredSignatures::Either,
        allow_weak_algorithms: false,
        clock_skew: 0,
        allow_unsolicited: allow,
    };
    let expected = |id| Expected {
        sp_entity_id: "sp",
        acs_url: "acs",
        request_id: id,
        now: 0,
        relay_in_response_to: false,
    };
    assert!(check_in_response_to(Some("_r1"), &expected(Some("_r1")), &trust(false)).is_ok());
    assert_eq!(
        check_in_response_to(Some("_r2"), &expected(Some("_r1")), &trust(false)),
        Err(SamlError::InResponseTo)
    );
    assert_eq!(
        check_in_response_to(None, &expected(Some("_r1")), &trust(true)),
        Err(SamlError::InResponseTo)
    );
    assert_eq!(check_in_response_to(None, &expected(None), &trust(false)), Err(SamlError::Unsolicited));
    assert!(check_in_response_to(Some(""), &expected(None), &trust(true)).is_ok());
    assert_eq!(
        check_in_response_to(Some("_r1"), &expected(None), &trust(true)),
        Err(SamlError::InResponseTo)
    );
    // Interception: the platform's request ID is relayed unchecked, but a response with none
    // is still unsolicited, and a request of nymgate's own is still checked.
    let relayed = |id| Expected { relay_in_response_to: true, ..expected(id) };
    assert!(check_in_response_to(Some("_platform"), &relayed(None), &trust(false)).is_ok());
    assert_eq!(check_in_response_to(None, &relayed(None), &trust(false)), Err(SamlError::Unsolicited));
    assert_eq!(
        check_in_response_to(Some("_r2"), &relayed(Some("_r1")), &trust(false)),
        Err(SamlError::InResponseTo)
    );
}
