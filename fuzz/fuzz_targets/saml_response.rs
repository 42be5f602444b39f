//! What an IdP, or anyone, can post to nymgate's ACS: the SAMLResponse field and the XML inside
//! it, through the whole strict profile and signature check (src/verify/saml_acs.rs), and the
//! same bytes as IdP metadata (saml_metadata.rs). Nothing may panic or hang; anything accepted
//! must be what the pinned key signed. Seeds: responses samlify signed with fuzz/saml-idp.pem.
#![no_main]
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use nymgate::verify::saml_acs::{self, Expected, IdpTrust, RequiredSignatures};
use nymgate::verify::saml_metadata;

const IDP: &str = "https://idp.school-s.example/saml";

static TRUST: LazyLock<IdpTrust> = LazyLock::new(|| {
    let cert = include_bytes!("../saml-idp.pem").to_vec();
    IdpTrust::new(IDP, &[cert], RequiredSignatures::Either, false, 60, false).expect("the seeds' key")
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = saml_acs::decode_post(text);
    let _ = saml_acs::claimed_issuer(text);
    // The seeds' own time and request, so a seed passes every check and mutations start there.
    let now = nymgate::clock::parse_instant("2026-11-25T10:01:00Z").expect("a valid instant");
    let expected = Expected {
        sp_entity_id: "https://learn.example/nymgate/saml",
        acs_url: "https://learn.example/nymgate/saml/acs",
        request_id: Some("_req1"),
        now,
        relay_in_response_to: false,
    };
    if let Ok(verified) = saml_acs::verify(text, &TRUST, &expected) {
        assert_eq!(verified.identity.issuer(), IDP);
        assert!(verified.replay_until > now);
    }
    // Interception mode: the InResponseTo is relayed, not matched; the signature still rules.
    let relayed = Expected { request_id: None, relay_in_response_to: true, ..expected };
    if let Ok(verified) = saml_acs::verify(text, &TRUST, &relayed) {
        assert_eq!(verified.identity.issuer(), IDP);
    }
    let _ = saml_metadata::read(text, IDP, Some(&TRUST), now);
});
