//! A pinned signing certificate (a SAML IdP's, a platform's AuthnRequest signer) judged as
//! `serve` judges it when it builds the trust (src/verify/saml_acs.rs `IdpTrust::new`): an RSA
//! key under 2048 bits is refused unless the field's `allow_weak_algorithms` says otherwise
//! (NIST SP 800-131A Rev. 2 §3: RSA under 2048 bits is disallowed for signatures). `check` had
//! passed a 1024-bit platform certificate that `serve` then refused (issue 29).

use std::path::Path;

/// The smallest RSA modulus taken without `allow_weak_algorithms`; also the smallest
/// rustls-webpki verifies a TLS signature with (its RSA algorithms are `RSA_*_2048_8192_*`).
pub const MIN_RSA_BITS: usize = 2048;

/// The RSA modulus size of a PEM certificate's key, or `None` for a non-RSA key.
pub fn rsa_bits(pem: &[u8]) -> Result<Option<usize>, String> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem)
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    rsa_bits_der(der.as_ref())
}

/// The RSA modulus size of a DER certificate's key, or `None` for a non-RSA key.
pub fn rsa_bits_der(der: &[u8]) -> Result<Option<usize>, String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| format!("not X.509: {e}"))?;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    // rsaEncryption (RFC 8017 §A.1)
    if spki.algorithm.oid.to_string() != "1.2.840.113549.1.1.1" {
        return Ok(None);
    }
    modulus_bits(spki.subject_public_key.raw_bytes()).map(Some).ok_or_else(|| "unreadable RSA key".to_owned())
}

/// The bit length of the modulus in a DER RSAPublicKey (RFC 8017 §A.1.1:
/// `SEQUENCE { modulus INTEGER, publicExponent INTEGER }`).
fn modulus_bits(der: &[u8]) -> Option<usize> {
    use x509_cert::der::{asn1::UintRef, Decode, Reader, SliceReader};
    let mut reader = SliceReader::new(der).ok()?;
    let modulus = reader
        .sequence(|inner| {
            let modulus = UintRef::decode(inner)?;
            // The exponent too: a sequence must be read to its end.
            UintRef::decode(inner)?;
            Ok(modulus)
        })
        .ok()?;
    let bytes = modulus.as_bytes();
    Some(bytes.first().map_or(0, |b| 8 - b.leading_zeros() as usize) + 8 * bytes.len().saturating_sub(1))
}

/// `Ok` when the file is a PEM certificate whose key is not RSA, or RSA of at least 2048 bits
/// (or any size with `allow_weak`); the error names the file, the size and the fix.
pub fn strong_enough(path: &Path, allow_weak: bool) -> Result<(), String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    match rsa_bits(&pem) {
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

    proptest::proptest! {
        /// The modulus size read from any DER RSAPublicKey is its bit length, leading zero
        /// byte (the sign) or not.
        #[test]
        fn the_modulus_size_is_its_bit_length(top in 1u8..=255, len in 1usize..600) {
            let mut modulus = vec![top];
            modulus.resize(len, 0xab);
            let mut int = if top & 0x80 != 0 { vec![0u8] } else { vec![] };
            int.extend_from_slice(&modulus);
            let der_len = |n: usize| match n {
                0..=127 => vec![n as u8],
                128..=255 => vec![0x81, n as u8],
                _ => vec![0x82, (n >> 8) as u8, n as u8],
            };
            let mut inner = vec![0x02];
            inner.extend(der_len(int.len()));
            inner.extend(&int);
            inner.extend([0x02, 0x03, 0x01, 0x00, 0x01]);
            let mut der = vec![0x30];
            der.extend(der_len(inner.len()));
            der.extend(inner);
            let expected = 8 * (len - 1) + (8 - top.leading_zeros() as usize);
            proptest::prop_assert_eq!(modulus_bits(&der), Some(expected));
        }
    }

    #[test]
    fn key_sizes_are_read_from_pem_certificates() {
        let weak =
            std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rsa1024-cert.pem"))
                .unwrap();
        assert_eq!(rsa_bits(&weak), Ok(Some(1024)));
        let ec = rcgen::generate_simple_self_signed(vec!["a.example".into()]).unwrap();
        assert_eq!(rsa_bits(ec.cert.pem().as_bytes()), Ok(None));
        assert!(rsa_bits(b"not a certificate").is_err());
    }

    /// That serve (`login::saml_acs::IdpTrust`) refuses the same files is tests/cert_strength.rs:
    /// config sits below the login (issue 30), so the parity test lives above both.
    #[test]
    fn a_1024_bit_rsa_certificate_is_refused_unless_weak_algorithms_are_allowed() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let weak = fixtures.join("rsa1024-cert.pem");
        let error = strong_enough(&weak, false).unwrap_err();
        assert!(error.contains("1024 bits"), "{error}");
        assert_eq!(strong_enough(&weak, true), Ok(()));
        // A 2048-bit one passes.
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap().self_signed(&key).unwrap();
        let strong = dir.path().join("rsa2048.pem");
        std::fs::write(&strong, cert.pem()).unwrap();
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
