//! The load test's built-in IdP (`--idp builtin`): `nymgate demo`'s IdP in its load-test mode
//! (`demo::idp::Directory::LoadTest`), served by this process on `--idp-listen`, approving every
//! login at once for the person the virtual browser names, so the figure is nymgate's own
//! capacity. Its keys and client secret are kept in `--idp-dir` across runs, because nymgate's
//! config pins them (`--print-config` prints the two tenants: OIDC and SAML).
//!
//! A room of loadtest/mod.rs (issue 30): the options and the run stay there.

use super::*;
use crate::certs;
use crate::demo::idp::{DemoIdp, Directory};
use crate::demo::saml_idp::{KeyType, SamlIdp};

/// The built-in IdP's lasting state: what nymgate's config pins.
struct IdpFiles {
    oidc_key: crate::mint::SigningKey,
    saml_key_pem: String,
    client_secret: String,
}

/// Reads or creates the built-in IdP's keys and client secret in `dir`.
fn idp_files(dir: &Path) -> Result<IdpFiles, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let oidc_pem = match read("oidc-key.pem") {
        Some(pem) => pem,
        None => {
            let (_, der) = crate::mint::SigningKey::generate(crate::mint::Algorithm::ES256);
            let pem = crate::mint::pkcs8_pem(&der);
            certs::write(&dir.join("oidc-key.pem"), pem.as_bytes(), 0o600)?;
            pem
        }
    };
    let oidc_der = {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(oidc_pem.as_bytes())
            .map_err(|e| format!("{}: {e}", dir.join("oidc-key.pem").display()))?
    };
    let oidc_key =
        crate::mint::SigningKey::from_pkcs8(crate::mint::Algorithm::ES256, oidc_der.secret_pkcs8_der())
            .map_err(|e| format!("{}: {e}", dir.join("oidc-key.pem").display()))?;
    let saml_key_pem = match (read("saml-idp-key.pem"), read("saml-idp.pem")) {
        (Some(key), Some(_)) => key,
        _ => {
            let (cert, key) = certs::generate_saml_signing_cert_for(
                "nymgate loadtest IdP",
                &rcgen::PKCS_ECDSA_P256_SHA256,
            )?;
            certs::write(&dir.join("saml-idp.pem"), cert.as_bytes(), 0o644)?;
            certs::write(&dir.join("saml-idp-key.pem"), key.as_bytes(), 0o600)?;
            key
        }
    };
    let client_secret = match read("client.secret") {
        Some(secret) => secret.trim().to_owned(),
        None => {
            let secret = crate::secret::random_hex::<32>();
            certs::write(&dir.join("client.secret"), secret.as_bytes(), 0o600)?;
            secret
        }
    };
    Ok(IdpFiles { oidc_key, saml_key_pem, client_secret })
}

fn idp_base(options: &Options) -> String {
    format!("http://{}", options.idp_listen)
}

/// The tenants nymgate needs for the built-in IdP.
pub fn config_snippet(options: &Options) -> Result<String, String> {
    idp_files(&options.idp_dir)?;
    let dir = std::fs::canonicalize(&options.idp_dir).map_err(|e| e.to_string())?;
    let base = idp_base(options);
    let (oidc, saml) = (&SCHOOLS[0], &SCHOOLS[1]);
    Ok(format!(
        r#"# Tenants for `nymgate loadtest`'s built-in IdP (served by the load test on {listen}).
# nymgate needs [login.saml] (its SP key) for the SAML one, and a keyring scope per tenant:
#   nymgate keys new --keyring KEYRING --scope loadtest-oidc   (and loadtest-saml)

[[tenants]]
id = "{oidc_id}"
name = "{oidc_name}"
idp = "oidc"
issuer = "{base}/{oidc_id}"
[tenants.oidc]
client_id = "{client_id}"
client_secret = {{ file = "{dir}/client.secret" }}
algorithms = ["ES256"]
[tenants.policy]
role_from = ["roles"]
role_map = {{ "Student" = "student", "Teacher" = "teacher" }}
{saml_tenant}"#,
        listen = options.idp_listen,
        oidc_id = oidc.id,
        oidc_name = oidc.name,
        client_id = demo_idp::client_id(oidc),
        dir = dir.display(),
        saml_tenant = crate::demo::saml_tenant_toml(
            saml,
            &demo_idp::saml_entity_id(&base, saml),
            &format!("{}/saml-idp.pem", dir.display())
        ),
    ))
}

/// Starts the built-in IdP on `options.idp_listen` (current runtime).
pub(super) async fn start_idp(options: &Options) -> Result<Arc<DemoIdp>, String> {
    let files = idp_files(&options.idp_dir)?;
    let base = idp_base(options);
    let public = options.url.trim_end_matches('/');
    let saml_school = &SCHOOLS[1];
    let saml = SamlIdp::new(
        demo_idp::saml_entity_id(&base, saml_school),
        crate::login::saml_sp::default_entity_id(public),
        crate::login::saml_sp::acs_url(public),
        &files.saml_key_pem,
        KeyType::EcdsaP256,
    )?;
    let secrets = [(SCHOOLS[0].id, files.client_secret)].into_iter().collect();
    let idp = DemoIdp::new(
        &base,
        SCHOOLS,
        Directory::LoadTest,
        &secrets,
        &format!("{public}/nymgate/callback"),
        [(saml_school.id, saml)].into_iter().collect(),
    )
    .with_signing_key(files.oidc_key);
    let idp = Arc::new(idp);
    let listener = tokio::net::TcpListener::bind(options.idp_listen)
        .await
        .map_err(|e| format!("cannot serve the built-in IdP on {}: {e}", options.idp_listen))?;
    tokio::spawn(demo_idp::serve(listener, None, idp.clone()));
    Ok(idp)
}
