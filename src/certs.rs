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
}
