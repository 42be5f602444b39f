//! What a platform, or anyone, can send to nymgate's SAML IdP face (src/mint/saml_idp.rs): an
//! AuthnRequest over HTTP-Redirect (the raw query: SAMLRequest, RelayState, SigAlg, Signature)
//! or HTTP-POST. The first byte picks the form: 0, the bytes are the query as received; 1, the
//! POST field as received; 2 and 3, the bytes are AuthnRequest XML, wrapped in the Redirect
//! (DEFLATE, base64, URL-encoding) or POST (base64) encoding, so that mutations reach the XML
//! checks. Nothing may panic or hang. An accepted request names a registered SP and carries a
//! well-formed ID; the SP that signs its requests is never accepted (the fuzzer has no key).
//! Seeds: AuthnRequests of the unsigned SP at the seeds' time.
#![no_main]
use std::io::Write;
use std::sync::LazyLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use nymgate::mint::saml_idp::{SamlIdp, SignatureAlgorithm, SpSettings};

const OPEN_SP: &str = "https://open.example/saml";
const SIGNING_SP: &str = "https://signing.example/saml";
/// The seeds' clock: 2026-11-25T10:00:30Z.
const NOW: u64 = 1_795_600_830;

static IDP: LazyLock<SamlIdp> = LazyLock::new(|| {
    let (cert, key) = nymgate::certs::generate_saml_signing_cert("https://learn.example/nymgate/idp").unwrap();
    let (sp_cert, _) = nymgate::certs::generate_saml_signing_cert(SIGNING_SP).unwrap();
    let sp = |entity_id: &str, certificates: Vec<Vec<u8>>| SpSettings {
        certificates,
        ..SpSettings::new(entity_id, &format!("{entity_id}/acs"))
    };
    SamlIdp::new(
        "https://learn.example/nymgate/idp".into(),
        "https://learn.example/nymgate/idp/sso".into(),
        cert.as_bytes(),
        key.as_bytes(),
        SignatureAlgorithm::RsaSha256,
        300,
        vec![sp(OPEN_SP, vec![]), sp(SIGNING_SP, vec![sp_cert.into_bytes()])],
    )
    .expect("the target's IdP")
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let result = match mode % 4 {
        0 => IDP.read_redirect(text, NOW),
        1 => IDP.read_post(text, Some("relay"), NOW),
        2 => {
            let mut deflater = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            deflater.write_all(text.as_bytes()).unwrap();
            let encoded =
                STANDARD.encode(deflater.finish().unwrap()).replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
            IDP.read_redirect(&format!("SAMLRequest={encoded}&RelayState=r"), NOW)
        }
        _ => IDP.read_post(&STANDARD.encode(text), None, NOW),
    };
    if let Ok(read) = result {
        let request = read.request;
        assert_eq!(request.sp, OPEN_SP, "only the SP that does not sign can be reached without a key");
        let id = request.request_id.expect("an SP-initiated request has an ID");
        assert!(!id.is_empty() && id.len() <= 128);
    }
});
