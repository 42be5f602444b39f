//! `nymgate demo`: the whole idea on one machine with no setup. Development certificates, a
//! demo school IdP with made-up pupils and teachers (idp.rs; OIDC, and SAML 2.0 for one school
//! in saml_idp.rs), nymgate with one tenant per demo school, and the built-in echo platform that
//! shows what the platform receives. Everything listens on 127.0.0.1 and is written into one
//! folder (a temporary one unless `--dir`).

pub mod idp;
pub mod saml_idp;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::certs;
use crate::clock::unix_now;
use crate::config::Config;
use crate::pseudonym::keyring::Keyring;
use crate::server::RunningServer;

/// The demo password of every demo person.
pub const PASSWORD: &str = "demo";

/// A demo school: a tenant in nymgate, an issuer at the demo IdP.
pub struct School {
    pub id: &'static str,
    pub name: &'static str,
    /// What the IdP sends as `school_code`; the tenant's policy maps it.
    pub code: &'static str,
    /// Signs in with SAML 2.0 (the demo IdP's SAML face, saml_idp.rs) instead of OIDC.
    pub saml: bool,
}

pub const SCHOOLS: &[School] = &[
    School { id: "nordskolan", name: "Nordskolan", code: "NORD-01", saml: false },
    School { id: "sodra-gymnasiet", name: "Södra gymnasiet", code: "SODRA-01", saml: false },
    School { id: "vastra-hamnen", name: "Västra Hamnens skola", code: "VH-01", saml: false },
    School { id: "ostra-skolan", name: "Östra skolan", code: "OST-01", saml: true },
];

/// A made-up person. Every value but `login`, `role` and the school is personal data that the
/// platform must never see (the browser test checks the platform's page for each).
pub struct User {
    pub login: &'static str,
    pub school: &'static str,
    pub school_code: &'static str,
    /// The IdP's subject identifier.
    pub subject: &'static str,
    pub given_name: &'static str,
    pub family_name: &'static str,
    pub email: &'static str,
    /// A Swedish personal identity number (made up; its check digit is valid, so the guard's
    /// detector would recognise it).
    pub personnummer: &'static str,
    /// As the IdP names it: `Student` or `Teacher`.
    pub role: &'static str,
}

pub const USERS: &[User] = &[
    User {
        login: "elev1",
        school: "nordskolan",
        school_code: "NORD-01",
        subject: "5b0e7c1a-3f52-4d8e-9a61-2c7f0d4e8b13",
        given_name: "Elsa",
        family_name: "Lindqvist",
        email: "elsa.lindqvist@nordskolan.example",
        personnummer: "20090312-2380",
        role: "Student",
    },
    User {
        login: "larare1",
        school: "nordskolan",
        school_code: "NORD-01",
        subject: "e81d44b0-7a2c-4c19-b6f3-90a5d2c17e64",
        given_name: "Lars",
        family_name: "Berg",
        email: "lars.berg@nordskolan.example",
        personnummer: "19780614-3538",
        role: "Teacher",
    },
    User {
        login: "elev2",
        school: "sodra-gymnasiet",
        school_code: "SODRA-01",
        subject: "0f9a6d3e-1b47-4e2a-8c5d-7e3b9a1f6c20",
        given_name: "Omar",
        family_name: "Haddad",
        email: "omar.haddad@sodra.example",
        personnummer: "20081105-4147",
        role: "Student",
    },
    User {
        login: "elev3",
        school: "vastra-hamnen",
        school_code: "VH-01",
        subject: "9c2e5f81-6d0b-4a73-a1e8-3b4c5d6e7f90",
        given_name: "Aino",
        family_name: "Virtanen",
        email: "aino.virtanen@vastrahamnen.example",
        personnummer: "20090721-5529",
        role: "Student",
    },
    User {
        login: "elev4",
        school: "ostra-skolan",
        school_code: "OST-01",
        subject: "3d7f1c9a-8e24-4b6d-b05f-6a1e2c9d4f87",
        given_name: "Saga",
        family_name: "Nilsson",
        email: "saga.nilsson@ostraskolan.example",
        personnummer: "20100215-2385",
        role: "Student",
    },
];

/// Where the demo listens.
pub struct Ports {
    pub public: u16,
    pub admin: u16,
}

/// A running demo: nymgate and the IdP (on the current runtime).
pub struct Demo {
    pub server: RunningServer,
    pub url: String,
    pub ca_file: PathBuf,
    pub config_file: PathBuf,
    pub admin_port: u16,
}

/// The demo's files, written, and its IdP, built: what both `demo` and `demo --idp-only` start.
struct Prepared {
    files: certs::DevCerts,
    idp: Arc<idp::DemoIdp>,
}

/// Writes the demo's files into `dir` (keys, secrets, certificates, the pseudonym keyring) and
/// builds the demo IdP at `idp_base`, sending browsers back to nymgate at `public_url`.
/// `extra_names`: more names in the TLS certificate (the IdP's host when it is not localhost).
fn prepare(dir: &Path, public_url: &str, idp_base: &str, extra_names: &[String]) -> Result<Prepared, String> {
    let files = certs::generate_dev_certs(&dir.join("certs"), extra_names)?;
    let mut keyring = Keyring::load_or_empty(&dir.join("keyring.toml")).map_err(|e| e.to_string())?;
    for school in SCHOOLS {
        if keyring.scope(school.id).is_err() {
            keyring.new_scope(school.id, unix_now()).map_err(|e| e.to_string())?;
        }
    }
    keyring.save(&dir.join("keyring.toml")).map_err(|e| e.to_string())?;
    let secret = || crate::secret::random_hex::<32>();
    certs::write(&dir.join("seal.secret"), secret().as_bytes(), 0o600)?;
    let (_, signing_der) = crate::mint::SigningKey::generate(crate::mint::Algorithm::EdDSA);
    certs::write(&dir.join("signing.pem"), crate::mint::pkcs8_pem(&signing_der).as_bytes(), 0o600)?;
    let mut client_secrets = HashMap::new();
    for school in SCHOOLS.iter().filter(|s| !s.saml) {
        let value = secret();
        certs::write(&dir.join(format!("{}-client.secret", school.id)), value.as_bytes(), 0o600)?;
        client_secrets.insert(school.id, value);
    }

    // SAML: nymgate's SP key and certificate, and per SAML school the IdP's signing key, whose
    // certificate nymgate's tenant pins (docs/SAML.md).
    let sp_entity_id = crate::login::saml_sp::default_entity_id(public_url);
    let (sp_cert, sp_key) = certs::generate_saml_signing_cert(&sp_entity_id)?;
    certs::write(&dir.join("saml-sp.pem"), sp_cert.as_bytes(), 0o644)?;
    certs::write(&dir.join("saml-sp-key.pem"), sp_key.as_bytes(), 0o600)?;
    let mut saml = HashMap::new();
    for school in SCHOOLS.iter().filter(|s| s.saml) {
        let entity_id = idp::saml_entity_id(idp_base, school);
        let (cert, key) = certs::generate_saml_signing_cert(&entity_id)?;
        certs::write(&dir.join(format!("{}-idp.pem", school.id)), cert.as_bytes(), 0o644)?;
        let face = saml_idp::SamlIdp::new(
            entity_id,
            sp_entity_id.clone(),
            crate::login::saml_sp::acs_url(public_url),
            &key,
            saml_idp::KeyType::Rsa,
        )?;
        saml.insert(school.id, face);
    }
    let idp = Arc::new(idp::DemoIdp::new(
        idp_base,
        SCHOOLS,
        idp::Directory::Demo,
        &client_secrets,
        &format!("{public_url}/nymgate/callback"),
        saml,
    ));
    Ok(Prepared { files, idp })
}

/// Serves the demo IdP over TLS (HTTP/1.1 only) with the demo's certificate.
fn spawn_idp(listener: tokio::net::TcpListener, prepared: &Prepared) -> Result<(), String> {
    crate::tls::install_crypto_provider();
    let resolver = crate::tls::ReloadingCertResolver::new(&prepared.files.cert, &prepared.files.key)
        .map_err(|e| e.to_string())?;
    let mut tls = (*crate::tls::server_config(Arc::new(resolver))).clone();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio::spawn(idp::serve(listener, Some(Arc::new(tls)), prepared.idp.clone()));
    Ok(())
}

/// Writes the demo's files into `dir` and starts the IdP and nymgate.
pub async fn start(dir: &Path, ports: Ports) -> Result<Demo, String> {
    // The IdP first: its port goes into nymgate's config.
    let idp_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot bind the demo IdP on 127.0.0.1: {e}"))?;
    let idp_port = idp_listener.local_addr().map_err(|e| e.to_string())?.port();
    let public_url = format!("https://localhost:{}", ports.public);
    let prepared = prepare(dir, &public_url, &format!("https://localhost:{idp_port}"), &[])?;

    let config_file = dir.join("nymgate.toml");
    certs::write(&config_file, config_text(&ports, &prepared.idp).as_bytes(), 0o644)?;
    let config = Config::load(&config_file).map_err(|e| e.to_string())?;
    spawn_idp(idp_listener, &prepared)?;
    let server = RunningServer::start(config)
        .await
        .map_err(|e| format!("{e}\n(another program may use the port: try --port and --admin-port)"))?;
    Ok(Demo {
        server,
        url: format!("{public_url}/"),
        ca_file: prepared.files.ca_cert,
        config_file,
        admin_port: ports.admin,
    })
}

/// `nymgate demo --idp-only`: the demo school IdP alone, for a deployment of nymgate elsewhere
/// (deploy/compose): it writes the demo's files into `dir` for nymgate to read (the same names
/// as `demo` uses, and `tenants.toml` with the demo schools' tenant tables), then serves the IdP
/// on `listen` as `idp_url`, sending browsers back to nymgate at `public_url`.
pub async fn start_idp_only(
    dir: &Path,
    listen: std::net::SocketAddr,
    idp_url: &str,
    public_url: &str,
) -> Result<(), String> {
    let idp_url = idp_url.trim_end_matches('/');
    let public_url = public_url.trim_end_matches('/');
    let host = openidconnect::url::Url::parse(idp_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .ok_or_else(|| format!("--idp-url {idp_url:?} is not a URL with a host"))?;
    // Files first: once the IdP listens, everything nymgate reads is in place.
    let prepared = prepare(dir, public_url, idp_url, &[host])?;
    certs::write(&dir.join("tenants.toml"), tenants_text(&prepared.idp, "").as_bytes(), 0o644)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot bind the demo IdP on {listen}: {e}"))?;
    spawn_idp(listener, &prepared)
}

/// nymgate's config for the demo: assertion-header output with sign-in required, one tenant
/// per demo school (OIDC, or SAML for a SAML school), audit to a file in the folder.
fn config_text(ports: &Ports, idp: &idp::DemoIdp) -> String {
    let mut text = format!(
        r#"# Written by `nymgate demo`.
[server]
listen = "127.0.0.1:{public}"
admin_listen = "127.0.0.1:{admin}"
cert_file = "certs/{cert}"
key_file = "certs/{key}"

[log]
format = "pretty"
level = "info"

[audit]
file = "audit.log"

[pseudonyms]
keyring_file = "keyring.toml"

[login]
public_url = "https://localhost:{public}"
seal_secret = {{ file = "seal.secret" }}
output = "assertion_header"

[login.signing]
key_file = "signing.pem"

[login.assertion]
require_login = true

[login.saml]
cert_file = "saml-sp.pem"
key_file = "saml-sp-key.pem"

[branding]
name = "nymgate demo"
"#,
        public = ports.public,
        admin = ports.admin,
        cert = certs::CERT_FILE,
        key = certs::KEY_FILE,
    );
    text.push_str(&tenants_text(idp, ""));
    text
}

/// The demo schools' `[[tenants]]` tables; file names are prefixed with `files` (a folder, or
/// "" for files beside the config).
pub fn tenants_text(idp: &idp::DemoIdp, files: &str) -> String {
    let mut text = String::new();
    for school in SCHOOLS.iter().filter(|s| !s.saml) {
        text.push_str(&format!(
            r#"
[[tenants]]
id = "{id}"
name = "{name}"
idp = "oidc"
issuer = "{issuer}"
[tenants.oidc]
client_id = "{client_id}"
client_secret = {{ file = "{files}{id}-client.secret" }}
scopes = ["openid", "email", "profile"]
algorithms = ["ES256"]
ca_file = "{files}certs/dev-ca.pem"
[tenants.policy]
role_from = ["roles"]
role_map = {{ "Student" = "student", "Teacher" = "teacher" }}
school_from = ["school_code"]
school_map = {{ "{code}" = "{id}" }}
"#,
            id = school.id,
            name = school.name,
            issuer = idp.issuer(school),
            client_id = idp::client_id(school),
            code = school.code,
        ));
    }
    for school in SCHOOLS.iter().filter(|s| s.saml) {
        text.push_str(&saml_tenant_toml(
            school,
            &idp.issuer(school),
            &format!("{files}{}-idp.pem", school.id),
        ));
    }
    text
}

/// The `[[tenants]]` table of a SAML school of the demo IdP (`demo` and `loadtest` write it):
/// its SSO endpoint under its entity ID (idp.rs), its pinned signing certificate, a persistent
/// NameID, and the role from eduPersonAffiliation, as a Swedish school federation's IdP sends.
pub fn saml_tenant_toml(school: &School, entity_id: &str, certificate_file: &str) -> String {
    format!(
        r#"
[[tenants]]
id = "{id}"
name = "{name}"
idp = "saml"
issuer = "{entity_id}"
[tenants.saml]
sso_url = "{entity_id}/sso"
certificate_files = ["{certificate_file}"]
name_id_format = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
[tenants.policy]
role_from = ["urn:oid:1.3.6.1.4.1.5923.1.1.1.1"]
role_map = {{ "student" = "student", "faculty" = "teacher" }}
"#,
        id = school.id,
        name = school.name,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// deploy/compose/nymgate.toml carries the demo tenants as `demo --idp-only` serves them at
    /// https://idp.localhost:9443, with the files in the shared volume.
    #[test]
    fn the_compose_trial_has_the_demo_tenants() {
        // Client secrets play no part in the tenant tables (they are named by file).
        let secrets = SCHOOLS.iter().filter(|s| !s.saml).map(|s| (s.id, String::new())).collect();
        let idp = idp::DemoIdp::new(
            "https://idp.localhost:9443",
            SCHOOLS,
            idp::Directory::Demo,
            &secrets,
            "https://localhost:8443/nymgate/callback",
            HashMap::new(),
        );
        let expected = tenants_text(&idp, "/srv/nymgate-demo/");
        let compose = include_str!("../../deploy/compose/nymgate.toml");
        assert!(compose.ends_with(&expected), "the compose config's tenants should end with:\n{expected}");
    }
}
