//! SimpleSAMLphp (Debian `simplesamlphp`, installed by tests/run.sh) as a school's SAML IdP, on
//! PHP's built-in server on loopback, with the config in tests/peers/simplesamlphp and a work
//! folder per test (users, nymgate's SP description, the IdP's key, logs, sessions).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::login::Peer;

pub struct SimpleSamlPhp {
    pub addr: SocketAddr,
    pub base_url: String,
    /// The IdP's signing certificate (PEM), for nymgate's `certificate_files`.
    pub cert_pem: String,
    _process: Peer,
}

const WWW: &str = "/usr/share/simplesamlphp/www";

impl SimpleSamlPhp {
    /// `sp` describes nymgate's SP: `{"entity_id", "acs_url", "cert_b64"}`; `users` maps
    /// `login:password` to attributes.
    pub fn start(dir: &Path, sp: &Value, users: &Value) -> SimpleSamlPhp {
        assert!(
            Path::new(WWW).exists(),
            "SimpleSAMLphp is not installed: run tests/run.sh as root (Debian package simplesamlphp)"
        );
        for sub in ["cert", "log", "data", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let (cert, key) = nymgate::certs::generate_saml_signing_cert("school-idp").unwrap();
        std::fs::write(dir.join("cert/idp.crt"), &cert).unwrap();
        std::fs::write(dir.join("cert/idp.key"), &key).unwrap();
        std::fs::write(dir.join("sp.json"), sp.to_string()).unwrap();
        std::fs::write(dir.join("users.json"), users.to_string()).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base_url = format!("http://127.0.0.1:{port}");
        let config_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/simplesamlphp");
        let child = Command::new("php")
            .args(["-S", &format!("127.0.0.1:{port}"), "-t", WWW])
            .env("SIMPLESAMLPHP_CONFIG_DIR", &config_dir)
            .env("NYMGATE_SSP_DIR", dir)
            .env("NYMGATE_SSP_BASEURL", &base_url)
            .env("NYMGATE_SSP_SALT", nymgate::secret::random_hex::<16>())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log/php-server.log")).unwrap())
            .spawn()
            .expect("php runs (Debian php-cli)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(addr).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        SimpleSamlPhp { addr, base_url, cert_pem: cert, _process: Peer(child) }
    }

    pub fn sso_url(&self) -> String {
        format!("{}/saml2/idp/SSOService.php", self.base_url)
    }

    /// The IdP's log, for failure messages.
    pub fn log(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("log/simplesamlphp.log")).unwrap_or_default()
            + &std::fs::read_to_string(dir.join("log/php-server.log")).unwrap_or_default()
    }
}

/// A PEM certificate's DER as one base64 line (for SAML metadata).
pub fn pem_to_b64(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}
