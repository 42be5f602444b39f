//! TLS termination: rustls with aws-lc-rs, TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`, and a
//! certificate that can be swapped while connections are open.
//!
//! The certificate lives behind an [`ArcSwap`] in [`ReloadingCertResolver`]; a handshake picks
//! whatever is current, and established connections keep the key they negotiated with. Reloading
//! checks that the new key matches the new certificate before it swaps, so a half-written pair
//! (a deploy tool that writes the certificate before the key) leaves the old pair in service.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::cert_strength::{rsa_bits_der, MIN_RSA_BITS};

use crate::public_hosts::HostSet;

/// ALPN protocols offered, most preferred first (RFC 7301).
pub const ALPN_H2: &[u8] = b"h2";
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate file {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("cannot read private key file {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the private key in {key} does not belong to the certificate in {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("the platform's host {host} is neither a DNS name nor an IP address")]
    ServerName { host: String },
}

impl TlsError {
    /// The `[server]` field a failure to load the listener's certificate and key is about.
    pub fn server_field(&self) -> &'static str {
        match self {
            TlsError::Cert { .. } => "server.cert_file",
            TlsError::Key { .. } | TlsError::Mismatch { .. } => "server.key_file",
            TlsError::ServerName { .. } => "server",
        }
    }

    /// The `[upstream]` field a failure to set up TLS toward the platform is about.
    pub fn upstream_field(&self) -> &'static str {
        match self {
            TlsError::ServerName { .. } => "upstream.url",
            _ => "upstream.ca_file",
        }
    }
}

/// The process-wide crypto provider: aws-lc-rs, installed once so that no other provider can be
/// picked by accident (shared/DEPENDENCIES.md, "A trap that was reproduced").
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads a PEM chain and key and checks that they belong together.
pub fn load_certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert { path: cert_file.to_owned(), reason: e.to_string() })?;
    if chain.is_empty() {
        return Err(TlsError::Cert { path: cert_file.to_owned(), reason: "no CERTIFICATE block".into() });
    }
    // The error from pki-types names the PEM problem, never key bytes.
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| TlsError::Key { path: key_file.to_owned(), reason: e.to_string() })?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key { path: key_file.to_owned(), reason: e.to_string() })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        // `Unknown` means the key type can't report its public key; accept, the handshake checks.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(_) => Err(TlsError::Mismatch { cert: cert_file.to_owned(), key: key_file.to_owned() }),
    }
}

/// Serves the current certificate, and reloads it from its files when they change.
#[derive(Debug)]
pub struct ReloadingCertResolver {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: ArcSwap<CertifiedKey>,
    /// The names of the certificate in service, for the Host check when `server.public_hosts`
    /// is empty (public_hosts.rs): swapped with the certificate.
    hosts: ArcSwap<HostSet>,
    /// Modification times and sizes seen at the last load, to notice a change cheaply.
    seen: std::sync::Mutex<FileStamp>,
}

type FileStamp = [(Option<SystemTime>, u64); 2];

fn stamp(cert_file: &Path, key_file: &Path) -> FileStamp {
    let one = |p: &Path| std::fs::metadata(p).map(|m| (m.modified().ok(), m.len())).unwrap_or((None, 0));
    [one(cert_file), one(key_file)]
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    Unchanged,
    Reloaded,
}

impl ReloadingCertResolver {
    pub fn new(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let seen = stamp(cert_file, key_file);
        let key = load_certified_key(cert_file, key_file)?;
        Ok(Self {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            hosts: ArcSwap::from_pointee(leaf_hosts(&key)),
            current: ArcSwap::from_pointee(key),
            seen: std::sync::Mutex::new(seen),
        })
    }

    /// Reloads if the files changed since the last load (or always, when `force`).
    /// On error the old certificate stays in service.
    pub fn reload(&self, force: bool) -> Result<ReloadOutcome, TlsError> {
        let now = stamp(&self.cert_file, &self.key_file);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if !force && *seen == now {
            return Ok(ReloadOutcome::Unchanged);
        }
        let key = load_certified_key(&self.cert_file, &self.key_file)?;
        self.hosts.store(Arc::new(leaf_hosts(&key)));
        self.current.store(Arc::new(key));
        *seen = now;
        Ok(ReloadOutcome::Reloaded)
    }
}

impl ReloadingCertResolver {
    /// The names of the certificate in service.
    pub fn hosts(&self) -> Arc<HostSet> {
        self.hosts.load_full()
    }
}

fn leaf_hosts(key: &CertifiedKey) -> HostSet {
    key.cert.first().map(|leaf| HostSet::from_certificate(leaf)).unwrap_or_default()
}

impl ResolvesServerCert for ReloadingCertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The server-side rustls config: TLS 1.2 and 1.3 (rustls offers nothing older), no client
/// certificates, ALPN h2 then http/1.1.
pub fn server_config(resolver: Arc<ReloadingCertResolver>) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("aws-lc-rs supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
    Arc::new(config)
}

/// A TLS client config with aws-lc-rs and `roots`, for nymgate's own outgoing connections (the
/// platform, the shared store).
pub fn client_config(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The roots that verify the platform (or an IdP, or Redis): `ca_file`'s certificates, else the
/// system's. A certificate whose RSA key is under [`MIN_RSA_BITS`] is refused.
pub fn upstream_roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|e| TlsError::Cert { path: path.to_owned(), reason: e.to_string() })?;
            // A key webpki will not verify with is refused now, not at the first connection
            // (each would fail with 502): check and serve say so at start.
            for (index, cert) in certs.iter().enumerate() {
                if let Ok(Some(bits)) = rsa_bits_der(cert).map(|b| b.filter(|bits| *bits < MIN_RSA_BITS)) {
                    return Err(TlsError::Cert {
                        path: path.to_owned(),
                        reason: format!("certificate {} has a {bits}-bit RSA key; TLS verification refuses RSA keys under {MIN_RSA_BITS} bits: reissue it with {MIN_RSA_BITS} bits or more", index + 1),
                    });
                }
            }
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(TlsError::Cert {
                    path: path.to_owned(),
                    reason: "no usable CA certificate".into(),
                });
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    Ok(roots)
}

#[cfg(test)]
mod rsa_size_tests {
    use super::*;

    #[test]
    fn a_platform_ca_with_a_1024_bit_rsa_key_is_refused() {
        let pem = include_bytes!("../tests/fixtures/rsa1024-cert.pem");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, pem).unwrap();
        let refused = upstream_roots(Some(&path)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.contains("1024-bit RSA key"), "{refused}");
    }
}
