//! `nymgate certs dev`: a development CA and a certificate for localhost, for loopback only.
//!
//! The CA is made fresh each time and its key is written beside it (mode 0600) so that a test
//! or a developer can trust `dev-ca.pem`. Never use these in production: `certs/README.md` says
//! how to use real certificates.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// The files `generate_dev_certs` writes.
#[derive(Debug, Clone)]
pub struct DevCerts {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub const CA_FILE: &str = "dev-ca.pem";
pub const CERT_FILE: &str = "localhost.pem";
pub const KEY_FILE: &str = "localhost-key.pem";

/// Writes `dev-ca.pem`, `localhost.pem` (leaf then CA) and `localhost-key.pem` into `dir`.
/// The leaf is valid for `localhost`, `127.0.0.1` and `::1`, plus `extra_names`.
pub fn generate_dev_certs(dir: &Path, extra_names: &[String]) -> Result<DevCerts, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let fail = |e: rcgen::Error| format!("certificate generation failed: {e}");

    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca_params.distinguished_name.push(DnType::CommonName, "nymgate development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(fail)?;
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(fail)?;

    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    names.extend(extra_names.iter().cloned());
    let mut leaf_params = CertificateParams::new(names).map_err(fail)?;
    leaf_params.distinguished_name.push(DnType::CommonName, "localhost");
    let leaf_key = KeyPair::generate().map_err(fail)?;
    let leaf = leaf_params.signed_by(&leaf_key, &ca).map_err(fail)?;

    let files = DevCerts { ca_cert: dir.join(CA_FILE), cert: dir.join(CERT_FILE), key: dir.join(KEY_FILE) };
    write(&files.ca_cert, ca.pem().as_bytes(), 0o644)?;
    write(&files.cert, format!("{}{}", leaf.pem(), ca.pem()).as_bytes(), 0o644)?;
    write(&files.key, leaf_key.serialize_pem().as_bytes(), 0o600)?;
    Ok(files)
}

/// Writes a file atomically (temp file, then rename) with the given mode, so that a watcher never
/// sees half a certificate and a key is never briefly world-readable.
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let result = (|| {
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A SAML service provider's signing key and self-signed certificate (RSA 2048, SHA-256): what
/// school IT imports with nymgate's SP metadata. SAML trusts the key, not a CA, so a long-lived
/// self-signed certificate is the norm (SAML V2.0 Metadata Interoperability Profile §2.5.1).
/// Returns (certificate PEM, PKCS#8 key PEM).
pub fn generate_saml_signing_cert(entity_id: &str) -> Result<(String, String), String> {
    generate_saml_signing_cert_for(entity_id, &rcgen::PKCS_RSA_SHA256)
}

/// The same with another key type: `nymgate loadtest`'s built-in IdP signs with ECDSA P-256,
/// which costs a twentieth of RSA-2048 (shared/DEPENDENCIES.md), so that it is never the
/// bottleneck of a load test.
pub fn generate_saml_signing_cert_for(
    entity_id: &str,
    algorithm: &'static rcgen::SignatureAlgorithm,
) -> Result<(String, String), String> {
    let fail = |e: rcgen::Error| format!("cannot make the SAML signing certificate: {e}");
    let key = KeyPair::generate_for(algorithm).map_err(fail)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    params.distinguished_name.push(DnType::CommonName, entity_id);
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2045, 1, 1);
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_certs_load_and_the_key_is_private() {
        crate::tls::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let files = generate_dev_certs(dir.path(), &[]).unwrap();
        crate::tls::load_certified_key(&files.cert, &files.key).unwrap();
        crate::config::check_private_file(&files.key).unwrap();
    }

    /// Moved here from public_hosts.rs, which sits below certs (issue 30).
    #[test]
    fn the_development_certificate_names_localhost_and_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate_dev_certs(dir.path(), &["learn.example".to_owned()]).unwrap();
        let pem = std::fs::read(&files.cert).unwrap();
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::CertificateDer::pem_slice_iter(&pem).next().unwrap().unwrap();
        let hosts = crate::public_hosts::HostSet::from_certificate(&der);
        for ok in
            ["localhost", "localhost:8443", "127.0.0.1:8443", "[::1]:8443", "learn.example", "LEARN.example."]
        {
            assert!(hosts.allows(ok), "{ok}");
        }
        for refused in ["evil.example", "127.0.0.2", "localhost.evil.example", "example"] {
            assert!(!hosts.allows(refused), "{refused}");
        }
    }

    #[test]
    fn saml_signing_certificate_is_rsa_and_parses_back() {
        let (cert, key) = generate_saml_signing_cert("https://learn.example/nymgate/saml").unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY"));
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(key.as_bytes()).unwrap();
        aws_lc_rs::rsa::KeyPair::from_pkcs8(der.secret_pkcs8_der()).expect("an RSA PKCS#8 key");
    }
}
