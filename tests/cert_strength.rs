//! `check` means `serve` (issue 29) for RSA key sizes: the certificate a school's IdP or a
//! platform signs with is judged by `config::cert_strength` when `check` reads the file, and by
//! `login::saml_acs::IdpTrust` when `serve` builds its verifier. They must agree. (This test was
//! a unit test of config until config moved below the login, issue 30.)

use std::path::Path;

use nymgate::config::cert_strength::strong_enough;
use nymgate::verify::saml_acs::{IdpTrust, RequiredSignatures};

fn serve_accepts(path: &Path, allow_weak: bool) -> bool {
    let pem = std::fs::read(path).unwrap();
    IdpTrust::new(
        "https://platform.example",
        std::slice::from_ref(&pem),
        RequiredSignatures::Response,
        allow_weak,
        60,
        false,
    )
    .is_ok()
}

#[test]
fn an_rsa_key_size_check_refuses_is_refused_by_serve() {
    let weak = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rsa1024-cert.pem");
    let dir = tempfile::tempdir().unwrap();
    let (cert, _) = nymgate::certs::generate_saml_signing_cert("https://platform.example/saml").unwrap();
    let strong = dir.path().join("rsa2048.pem");
    std::fs::write(&strong, cert).unwrap();
    for (path, bits) in [(&weak, 1024), (&strong, 2048)] {
        for allow_weak in [false, true] {
            let checked = strong_enough(path, allow_weak).is_ok();
            assert_eq!(checked, serve_accepts(path, allow_weak), "{bits} bits, allow_weak = {allow_weak}");
            assert_eq!(checked, bits >= 2048 || allow_weak, "{bits} bits, allow_weak = {allow_weak}");
        }
    }
}
