//! The login face's composition root: everything `Login` holds, built from a validated config
//! (at start and at every reload, carrying over what a reload must keep: the single-use store,
//! failure counts, the process's drawn secrets, an open retention database). Errors name the
//! config field they are about.

use super::*;
use crate::config::ConfigProblem;

/// Loads a PKCS#8 PEM signing key.
pub(super) fn load_signing_key(alg: Algorithm, path: &std::path::Path) -> Result<SigningKey, String> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_file(path)
        .map_err(|e| format!("{}: not a PKCS#8 PEM key: {e}", path.display()))?;
    SigningKey::from_pkcs8(alg, der.secret_pkcs8_der()).map_err(|e| format!("{}: {e}", path.display()))
}

impl Login {
    /// Builds the login face from a validated config, or `None` when `[login]` is absent; called
    /// by the composition root (gateway.rs `build_generation`) at start and at every reload. At
    /// a reload, the single-use store and the failed-login counts of `carried` carry over (a
    /// fresh store would forget spent states and codes), unless `[store]` itself changed. Every
    /// problem names its config field.
    pub fn build(
        config: &Config,
        metrics: Arc<Metrics>,
        alerts: Arc<Alerts>,
        carried: Option<&Login>,
    ) -> Result<Option<Arc<Login>>, Vec<ConfigProblem>> {
        let Some(login) = &config.login else { return Ok(None) };
        let public_url = login.public_url.trim_end_matches('/').to_owned();
        let issuer = format!("{public_url}{PREFIX}");
        let callback_url = format!("{issuer}/callback");

        let seal_secret = match &login.seal_secret {
            Some(source) => Some(
                Secret::load(source)
                    .map_err(|e| crate::config::ConfigProblem::new("login.seal_secret", e))?,
            ),
            None => None,
        };
        let sealer = Arc::new(match &seal_secret {
            Some(secret) => Sealer::new(secret, &[]),
            None => {
                tracing::warn!("login.seal_secret is not set: a random one drawn at start is used, so replicas can't share logins and pending logins end at a restart");
                Sealer::new(&process_seal_secret(), &[])
            }
        });
        let keyring_file = &config
            .pseudonyms
            .as_ref()
            .ok_or(ConfigProblem::new("pseudonyms.keyring_file", "is required"))?
            .keyring_file;
        let keyring = Keyring::load(keyring_file)
            .map_err(|e| crate::config::ConfigProblem::new("pseudonyms.keyring_file", e))?;
        let pseudonymizer = Pseudonymizer::new(config, keyring)?;

        let signing = &login.signing;
        let current = match &signing.key_file {
            Some(path) => load_signing_key(signing.alg, path)
                .map_err(|e| ConfigProblem::new("login.signing.key_file", e))?,
            None => {
                tracing::warn!("login.signing.key_file is not set: tokens are signed with a key drawn at start, published only by this process");
                process_signing_key(signing.alg)
            }
        };
        let previous = signing
            .previous_key_files
            .iter()
            .map(|path| load_signing_key(signing.alg, path))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ConfigProblem::new("login.signing.previous_key_files", e))?;
        let minter = Arc::new(Minter::new(&issuer, current, previous));

        // One JWKS cache per IdP, shared by the tenants that trust it (key_cache.rs).
        let key_caches = Arc::new(crate::verify::key_cache::KeyCaches::default());
        let mut oidc = HashMap::new();
        let mut saml = HashMap::new();
        let mut email_domains = HashMap::new();
        let mut tenants = Vec::new();
        for tenant in &config.tenants {
            if let Some(settings) = &tenant.oidc {
                let idp = OidcIdp::new(tenant, settings, &callback_url, &key_caches)
                    .map_err(|(field, e)| ConfigProblem::new(config.tenant_field(&tenant.id, field), e))?;
                oidc.insert(tenant.id.clone(), idp);
            }
            if let Some(settings) = &tenant.saml {
                let trust = saml_tenant::SamlTenant::new(tenant, settings)
                    .map_err(|(field, e)| ConfigProblem::new(config.tenant_field(&tenant.id, field), e))?;
                saml.insert(tenant.id.clone(), trust);
            }
            for domain in &tenant.email_domains {
                email_domains.insert(domain.to_ascii_lowercase(), tenant.id.clone());
            }
            tenants.push(Tenant {
                id: tenant.id.clone(),
                name: tenant.name.clone().unwrap_or_else(|| tenant.id.clone()),
            });
        }
        tenants.sort_by(|a, b| a.name.cmp(&b.name));

        let mut clients = HashMap::new();
        for (index, client) in login.clients.iter().enumerate() {
            let secret = Secret::load(&client.client_secret)
                .map_err(|e| ConfigProblem::new(format!("login.clients[{index}].client_secret"), e))?;
            clients.insert(
                client.client_id.clone(),
                crate::mint::provider::PlatformClient {
                    id: client.client_id.clone(),
                    secret,
                    redirect_uris: client.redirect_uris.clone(),
                    sector: client.sector.clone(),
                },
            );
        }

        let saml_sp = match &login.saml {
            Some(saml) => {
                let read = |field: &'static str, path: &std::path::Path| {
                    std::fs::read(path).map_err(|e| {
                        ConfigProblem::new(field, format!("cannot read {}: {e}", path.display()))
                    })
                };
                let entity_id =
                    saml.entity_id.clone().unwrap_or_else(|| saml_sp::default_entity_id(&public_url));
                let acs = saml_sp::acs_url(&public_url);
                let cert = read("login.saml.cert_file", &saml.cert_file)?;
                let key = read("login.saml.key_file", &saml.key_file)?;
                // The pair is judged together: a key that is not the certificate's is the key's.
                Some(
                    saml_sp::SamlSp::new(&entity_id, &acs, &cert, &key)
                        .map_err(|e| ConfigProblem::new("login.saml.key_file", e))?,
                )
            }
            None => None,
        };
        let retention = match (&config.retention, carried.and_then(|old| old.retention.clone())) {
            (None, _) => None,
            // A reload keeps the open database when it names the same one.
            (Some(settings), Some(open)) if open.serves(settings) => Some(open),
            (Some(settings), _) => Some(Arc::new(crate::retention::RetentionStore::from_config(settings)?)),
        };
        let retention_rules: HashMap<_, _> =
            config.tenants.iter().filter_map(|t| Some((t.id.clone(), t.retention.clone()?))).collect();
        // Data keys follow the replicas' key versions once this replica has announced its own
        // (offboarding.rs `announce`, at start and after each reload).
        let saml_idp = match &login.saml_idp {
            Some(settings) => Some(build_saml_idp(settings, &public_url)?),
            None => None,
        };
        let store = match carried {
            Some(old) if format!("{:?}", old.store_config) == format!("{:?}", config.store) => {
                old.store.clone()
            }
            Some(_) => {
                tracing::warn!("[store] changed: a new store is used from now on; claims in the old one are not carried over");
                Arc::new(crate::store::Store::from_config(&config.store, STORE_CAPACITY)?)
            }
            None => Arc::new(crate::store::Store::from_config(&config.store, STORE_CAPACITY)?),
        };
        // Replicas sharing a store know a client by one key, derived from the shared secret.
        let shared_key = seal_secret.as_ref().filter(|_| store.is_shared()).map(|s| s.expose().to_vec());
        let blocker = login.blocking.enabled.then(|| {
            let settings = blocking::Settings {
                max_failures: login.blocking.max_failures,
                window_secs: login.blocking.window.as_secs().max(1),
                block_secs: login.blocking.block_for.as_secs().max(1),
                allowlist: login.blocking.allowlist.clone(),
                per_tenant: config
                    .tenants
                    .iter()
                    .filter_map(|t| Some((t.id.clone(), t.max_failed_logins?)))
                    .collect(),
            };
            match carried.and_then(|old| old.blocker.as_ref()) {
                Some(old) => blocking::Blocker::after(settings, old),
                None => blocking::Blocker::new(settings, shared_key.as_deref()),
            }
        });
        let audit = Arc::new(AuditSink::from_config(&config.audit));
        let admin_refusals = admin_refusals::AdminRefusals::new(audit.clone(), metrics.clone());
        let assertion = AssertionSettings {
            header: http::HeaderName::from_bytes(login.assertion.header.as_bytes())
                .map_err(|_| ConfigProblem::new("login.assertion.header", "is not a header name"))?,
            audience: login.assertion.audience.clone(),
            lifetime_secs: login.assertion.lifetime.as_secs(),
            require_login: login.assertion.require_login,
        };
        let sessions = Sessions::new(
            sealer.clone(),
            minter.clone(),
            login.session_lifetime.as_secs(),
            login.output == LoginOutput::AssertionHeader,
            assertion,
        );
        let provider = Provider::new(
            &issuer,
            clients,
            minter.clone(),
            sealer.clone(),
            login.code_lifetime.as_secs(),
            login.token_lifetime.as_secs(),
        );
        let built = Arc::new(Login {
            blocker,
            saml_sp,
            saml_idp,
            retention,
            retention_rules,
            retention_tokens: match &config.retention {
                Some(settings) => {
                    let load = |source: &Option<crate::config::SecretSource>, field: &str| {
                        source
                            .as_ref()
                            .map(|s| {
                                Secret::load_bearer_token(s)
                                    .map_err(|e| ConfigProblem::new(format!("retention.api.{field}"), e))
                            })
                            .transpose()
                    };
                    Some(retention_api::RetentionTokens {
                        platform: load(&settings.api.platform_token, "platform_token")?,
                        dpo: load(&settings.api.dpo_token, "dpo_token")?,
                    })
                }
                None => None,
            },
            keyring_file: keyring_file.clone(),
            ended: offboarding::Ended::default(),
            offboard_at: config
                .tenants
                .iter()
                .filter_map(|t| Some((t.id.clone(), t.offboard_at()?)))
                .collect(),
            retention_cull: config
                .retention
                .as_ref()
                .map(|r| (r.cull_after.as_secs(), r.cull_interval.as_secs().max(1))),
            saml,
            choice: TenantChoice::new(config),
            issuer,
            output: login.output,
            sealer,
            pseudonymizer,
            minter,
            tenants,
            oidc,
            email_domains,
            store,
            store_config: config.store.clone(),
            provider,
            flow_lifetime: login.flow_lifetime.as_secs(),
            sessions,
            audit,
            admin_refusals,
            audit_probe: ProbeGate::default(),
            branding: config.branding.clone(),
            tenant_branding: config
                .tenants
                .iter()
                .map(|t| (t.id.clone(), t.branding.over(&config.branding)))
                .collect(),
            alerts,
            metrics,
        });
        built.declare_tenant_metrics();
        Ok(Some(built))
    }
}

/// `[login.saml_idp]` as nymgate's IdP face, its files read.
pub(super) fn build_saml_idp(
    settings: &crate::config::login::SamlIdpConfig,
    public_url: &str,
) -> Result<saml_idp::SamlIdp, ConfigProblem> {
    let read = |field: &str, path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| ConfigProblem::new(field, format!("cannot read {}: {e}", path.display())))
    };
    let algorithm =
        saml_idp::SignatureAlgorithm::from_name(&settings.signature_algorithm).ok_or(ConfigProblem::new(
            "login.saml_idp.signature_algorithm",
            "use rsa-sha256, rsa-sha512 or ecdsa-sha256",
        ))?;
    let sps = settings
        .service_providers
        .iter()
        .enumerate()
        .map(|(index, sp)| {
            let field = format!("login.saml_idp.service_providers[{index}].certificate_files");
            Ok(saml_idp::SpSettings {
                entity_id: sp.entity_id.clone(),
                acs_url: sp.acs_url.clone(),
                certificates: sp
                    .certificate_files
                    .iter()
                    .map(|p| read(&field, p))
                    .collect::<Result<_, _>>()?,
                idp_initiated: sp.idp_initiated,
                tenant: sp.tenant.clone(),
                sector: sp.sector.clone(),
                intercept_path: sp
                    .intercept
                    .then(|| sp.acs_url.strip_prefix(public_url).map(str::to_owned))
                    .flatten(),
            })
        })
        .collect::<Result<Vec<_>, ConfigProblem>>()?;
    saml_idp::SamlIdp::new(
        settings.entity_id.clone().unwrap_or_else(|| format!("{public_url}{PREFIX}/idp")),
        format!("{public_url}{PREFIX}/idp/sso"),
        &read("login.saml_idp.cert_file", &settings.cert_file)?,
        &read("login.saml_idp.key_file", &settings.key_file)?,
        algorithm,
        settings.assertion_lifetime.as_secs(),
        sps,
    )
    // The pair is judged together: a key that is not the certificate's is the key's problem.
    .map_err(|e| ConfigProblem::new("login.saml_idp.key_file", e))
}

/// The seal secret when `login.seal_secret` is not set: drawn once per process, so that a
/// reload (onboarding a school) keeps every pending login, session and authorization code
/// sealed under it (issue 29); a restart still ends them, as the start-up warning says.
pub(super) fn process_seal_secret() -> Secret {
    static DRAWN: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    Secret::new(DRAWN.get_or_init(crate::secret::random_bytes::<32>).to_vec())
}

/// The token-signing key when `login.signing.key_file` is not set: one per algorithm, drawn
/// once per process, so that tokens issued before a reload still verify against the JWKS after
/// it.
pub(super) fn process_signing_key(alg: crate::mint::Algorithm) -> SigningKey {
    static DRAWN: std::sync::Mutex<Vec<(crate::mint::Algorithm, Vec<u8>)>> =
        std::sync::Mutex::new(Vec::new());
    let mut drawn = DRAWN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, der)) = drawn.iter().find(|(drawn_alg, _)| *drawn_alg == alg) {
        return SigningKey::from_pkcs8(alg, der).expect("a key drawn by this process parses");
    }
    let (key, der) = SigningKey::generate(alg);
    drawn.push((alg, der));
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a reload rebuilds without a configured seal secret or signing key is what the
    /// process drew first: one secret, one key per algorithm, however often it is asked.
    #[test]
    fn secrets_drawn_at_start_outlive_a_reload() {
        assert_eq!(process_seal_secret().expose(), process_seal_secret().expose());
        for alg in [crate::mint::Algorithm::EdDSA, crate::mint::Algorithm::ES256] {
            assert_eq!(process_signing_key(alg).kid(), process_signing_key(alg).kid());
        }
        assert_ne!(
            process_signing_key(crate::mint::Algorithm::EdDSA).kid(),
            process_signing_key(crate::mint::Algorithm::ES256).kid()
        );
    }
}
