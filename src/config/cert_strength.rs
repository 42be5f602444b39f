//! A pinned signing certificate (a SAML IdP's, a platform's AuthnRequest signer) judged as
//! `serve` judges it when it builds the trust (src/login/saml_acs.rs `IdpTrust::new`): an RSA
//! key under 2048 bits is refused unless the field's `allow_weak_algorithms` says otherwise
//! (NIST SP 800-131A Rev. 2 §3: RSA under 2048 bits is disallowed for signatures). `check` had
//! passed a 1024-bit platform certificate that `serve` then refused (issue 29).

use std::path::Path;

/// The smallest RSA modulus taken without `allow_weak_algorithms`.
const MIN_RSA_BITS: usize = 2048;

/// `Ok` when the file is a PEM certificate whose key is not RSA, or RSA of at least 2048 bits
/// (or any size with `allow_weak`); the error names the file, the size and the fix.
pub fn strong_enough(path: &Path, allow_weak: bool) -> Result<(), String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match crate::login::saml_acs::rsa_bits(&pem) {
        Err(e) => Err(format!("{}: {e}", path.display())),
        Ok(Some(bits)) if bits < MIN_RSA_BITS && !allow_weak => Err(format!(
            "{} holds an RSA key of {bits} bits, under the {MIN_RSA_BITS} nymgate takes: ask for a \
             certificate with a key of 2048 bits or more (or, for a school's IdP that can't, set \
             allow_weak_algorithms = true on its tenant)",
            path.display()
        )),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_1024_bit_rsa_certificate_is_refused_as_serve_refuses_it() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let weak = fixtures.join("rsa1024-cert.pem");
        let error = strong_enough(&weak, false).unwrap_err();
        assert!(error.contains("1024 bits"), "{error}");
        // What serve builds from the same file refuses it too.
        let pem = std::fs::read(&weak).unwrap();
        let serve = crate::login::saml_acs::IdpTrust::new(
            "https://platform.example",
            std::slice::from_ref(&pem),
            crate::login::saml_acs::RequiredSignatures::Response,
            false,
            60,
            false,
        );
        assert!(serve.is_err());
        assert_eq!(strong_enough(&weak, true), Ok(()));
        // A 2048-bit one passes both.
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = crate::certs::generate_saml_signing_cert("https://platform.example/saml").unwrap();
        let strong = dir.path().join("rsa2048.pem");
        std::fs::write(&strong, cert).unwrap();
        assert_eq!(strong_enough(&strong, false), Ok(()));
        assert!(strong_enough(&dir.path().join("missing.pem"), false).unwrap_err().contains("cannot read"));
    }

    /// `check` (Config::validate) refuses a platform's 1024-bit AuthnRequest certificate, and a
    /// school IdP's pinned one unless its tenant allows weak algorithms.
    #[test]
    fn check_refuses_a_weak_platform_or_idp_certificate() {
        let weak = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rsa1024-cert.pem");
        let weak = weak.display();
        let config = |allow: bool| {
            format!(
                "[server]\nlisten = \"127.0.0.1:8443\"\nadmin_listen = \"127.0.0.1:9090\"\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n\
                 [login]\npublic_url = \"https://learn.example\"\n[login.saml]\nentity_id = \"https://learn.example/nymgate/saml\"\n\
                 cert_file = \"sp.pem\"\nkey_file = \"sp-key.pem\"\n\
                 [login.saml_idp]\ncert_file = \"idp.pem\"\nkey_file = \"idp-key.pem\"\n\
                 [[login.saml_idp.service_providers]]\nentity_id = \"https://platform.example/saml\"\n\
                 acs_url = \"https://platform.example/saml/acs\"\ncertificate_files = [\"{weak}\"]\n\
                 [[tenants]]\nid = \"skola\"\nidp = \"saml\"\nissuer = \"https://idp.skola.example\"\n\
                 [tenants.saml]\nsso_url = \"https://idp.skola.example/sso\"\ncertificate_files = [\"{weak}\"]\n\
                 allow_weak_algorithms = {allow}\n"
            )
        };
        let weak_fields = |allow| -> Vec<String> {
            crate::config::Config::parse(&config(allow))
                .unwrap()
                .validate()
                .into_iter()
                .filter(|p| p.message.contains("1024 bits"))
                .map(|p| p.field)
                .collect()
        };
        assert_eq!(
            weak_fields(false),
            ["tenants[0].saml.certificate_files", "login.saml_idp.service_providers[0].certificate_files"]
        );
        assert_eq!(weak_fields(true), ["login.saml_idp.service_providers[0].certificate_files"]);
    }
}
