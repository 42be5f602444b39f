//! Logins: nymgate's own endpoints under `/nymgate/`, read top to bottom in [`Login::handle`].
//!
//! ```text
//! browser ─▶ /nymgate/login[/{tenant}]   or the platform's /nymgate/authorize   (choose the school)
//!         ─▶ school IdP (state, nonce, PKCE; the flow sealed in a cookie)
//!         ─▶ /nymgate/callback            verify → pseudonymize → guard → audit
//!         ─▶ platform: an authorization code for /nymgate/token  (provider output)
//!            or a session cookie, then a signed header on every request (assertion output)
//! ```
//!
//! Every path lives under one prefix so nymgate never shadows a route of the platform's. The
//! pending login is only in the browser (sealed, see `seal.rs`), so any replica can finish it;
//! the only server state is single-use: consumed states and issued codes (`store.rs`).

pub mod admin_refusals;
pub mod blocking;
mod commit;
mod offboarding;
pub use offboarding::announce_replica;
pub mod idp_http;
pub mod jwks;
pub mod key_cache;
pub mod oidc_rp;
pub mod pages;
mod provider;
pub mod retention_api;
pub use provider::pkce_s256;
mod flow_identity;
mod observe;
pub mod saml_acs;
pub mod saml_idp;
pub mod saml_metadata;
mod saml_out;
pub mod saml_sp;
mod saml_tenant;
mod tenant_choice;
pub mod xml_bounds;
pub use provider::basic_credentials;

use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::alert::{AlertKind, Alerts};
use crate::audit::{AuditEvent, AuditSink};
use crate::body::{self, Body};
use crate::client_ip::ReducedIp;
use crate::clock::unix_now;
use crate::config::{Config, LoginOutput};
use crate::metrics::Metrics;
use crate::metrics_login::Step;
use crate::mint::{Algorithm, Minter, SigningKey, TokenRequest};
use crate::pseudonym::identity::VerifiedIdentity;
use crate::pseudonym::keyring::Keyring;
use crate::pseudonym::{PseudonymError, Pseudonymizer, PseudonymousLogin, Sector};
use crate::seal::Sealer;
use crate::secret::Secret;
use crate::store::{Space, Store, StoreError};
use crate::target::SAML_MESSAGES;
use commit::{Decided, PendingRecord, ProbeGate};
use observe::StepClock;
use oidc_rp::{OidcError, OidcIdp, PendingOidc};
pub use provider::IssuedCode;
use tenant_choice::{ChoiceError, TenantChoice};

/// Every nymgate endpoint starts with this (the config refuses paths under it, so it lives there).
pub use crate::config::PREFIX;
const FLOW_COOKIE_PREFIX: &str = "__Host-nymgate-flow-";
const SESSION_COOKIE: &str = "__Host-nymgate-session";
/// The chooser's memory of the last school chosen: a tenant id, nothing else.
const SCHOOL_COOKIE: &str = "__Host-nymgate-school";
const SCHOOL_COOKIE_LIFETIME: u64 = 365 * 24 * 3600;
/// Live entries at most in each kind of the memory store; past it logins get 503 (src/store).
const STORE_CAPACITY: usize = 1_000_000;

/// What happens once the school's IdP has answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Next {
    /// Provider output: answer the platform's authorization request with a code.
    Platform(provider::AuthorizeRequest),
    /// Assertion output: a session cookie, then back to where the browser was going.
    Session { return_to: String },
    /// SAML output: a signed Response posted to the platform's ACS (saml_idp.rs).
    SamlSp(saml_idp::SpRequest),
}

/// SAML Bindings §3.5.3: RelayState "MUST NOT exceed 80 bytes".
const MAX_RELAY_STATE: usize = 80;

/// An xsd:ID (an NCName, XML Schema Part 2 §3.3.8), bounded: what an ID or InResponseTo may
/// be. ASCII only, which every SAML library's generated IDs are.
fn is_xsd_id(id: &str) -> bool {
    let mut bytes = id.bytes();
    id.len() <= 256
        && bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// What an intercepted ACS forwards: nymgate's replacement for a school's response (and the
/// login, for the audit), or nymgate's own Response as the browser posted it.
enum Passed {
    School(Bytes, PseudonymousLogin, Option<Box<PendingRecord>>),
    Own(Bytes),
}

/// A form's fields, encoded again (SAMLResponse and RelayState only: nothing else of the
/// browser's goes to the platform's ACS).
fn form_body(fields: &HashMap<String, String>) -> String {
    let mut form = openidconnect::url::form_urlencoded::Serializer::new(String::new());
    for name in ["SAMLResponse", "RelayState"] {
        if let Some(value) = fields.get(name) {
            form.append_pair(name, value);
        }
    }
    form.finish()
}

/// How a platform's SAML login arrives at nymgate's IdP face.
enum SsoInput<'a> {
    /// HTTP-Redirect: the raw query string (its signature covers the encoded parameters).
    Redirect(&'a str),
    /// HTTP-POST: the form's fields.
    Post(&'a HashMap<String, String>),
    /// IdP-initiated: `sp`, `tenant` and `RelayState` in the query.
    Unsolicited(&'a str),
}

/// What the IdP's answer must match, per protocol.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Pending {
    Oidc(PendingOidc),
    /// The AuthnRequest's ID, for InResponseTo: kept in the browser so any replica can check it.
    Saml {
        request_id: String,
        /// When the login asked the school for ForceAuthn: its AuthnInstant must be this late.
        #[serde(default)]
        fresh_since: Option<u64>,
    },
}

/// The pending login, sealed in the flow cookie.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Flow {
    tenant: String,
    state: String,
    pending: Pending,
    next: Next,
}

/// What a session cookie holds: the pseudonymous claims and nothing else.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    claims: Map<String, Value>,
    /// Names (never values) of what the IdP sent and the platform does not get.
    #[serde(default)]
    removed: Vec<String>,
}

/// Why a browser login failed. The page shows a reference only; the reason code goes to the
/// audit log and the metrics; the detail (without personal values) to the log.
#[derive(Debug, thiserror::Error)]
enum FlowError {
    #[error("no such tenant")]
    UnknownTenant,
    #[error("{0}")]
    BadRequest(&'static str),
    #[error(transparent)]
    Oidc(#[from] OidcError),
    #[error(transparent)]
    Saml(#[from] saml_acs::SamlError),
    #[error("SAML IdP metadata unavailable: {0}")]
    SamlMetadata(String),
    #[error(transparent)]
    Pseudonym(#[from] PseudonymError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the IdP answered with an error")]
    IdpError,
    #[error(transparent)]
    SamlOut(#[from] saml_idp::SamlOutError),
    /// Answered to the platform with a SAML status instead of a login (saml_out.rs).
    #[error("answered the platform with a SAML status")]
    SamlStatus(saml_idp::StatusAnswer, Box<saml_idp::SpRequest>),
    #[error(transparent)]
    Retention(#[from] crate::retention::RetentionError),
    #[error(transparent)]
    Choice(#[from] ChoiceError),
    /// A platform bound to one tenant (`service_providers.tenant`) asked for, or was sent,
    /// another tenant's login.
    #[error("the platform is bound to another tenant")]
    TenantNotAllowed,
}

impl FlowError {
    fn reason(&self) -> &'static str {
        match self {
            FlowError::UnknownTenant => "unknown_tenant",
            FlowError::BadRequest(reason) => reason,
            FlowError::Oidc(e) => e.reason(),
            FlowError::Saml(e) => e.reason(),
            FlowError::SamlMetadata(_) => "saml_metadata_unavailable",
            FlowError::Pseudonym(e) => e.reason(),
            FlowError::Store(StoreError::Full) => "store_full",
            FlowError::Store(StoreError::Unavailable) => "store_unavailable",
            FlowError::IdpError => "idp_error",
            FlowError::SamlOut(e) => e.reason(),
            FlowError::SamlStatus(answer, _) => answer.reason(),
            FlowError::Retention(_) => "retention_unavailable",
            FlowError::Choice(e) => e.reason(),
            FlowError::TenantNotAllowed => "tenant_not_allowed",
        }
    }

    /// Whether the client is answerable for this refusal, and it counts toward blocking it
    /// (a 4xx still has to be one, `count_failure`). Decided on the reason code, the one name
    /// each refusal has whichever protocol raised it (`auth_not_fresh` comes from the OIDC
    /// and the SAML checks alike): see [`NOT_COUNTED`].
    fn counts_toward_blocking(&self) -> bool {
        !NOT_COUNTED.contains(&self.reason())
    }

    fn status(&self) -> StatusCode {
        match self {
            FlowError::UnknownTenant => StatusCode::NOT_FOUND,
            FlowError::Oidc(OidcError::Metadata(_)) => StatusCode::BAD_GATEWAY,
            FlowError::Oidc(OidcError::TokenRequest(_) | OidcError::Userinfo(_)) => StatusCode::BAD_GATEWAY,
            FlowError::Saml(saml_acs::SamlError::TooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
            FlowError::SamlMetadata(_) => StatusCode::BAD_GATEWAY,
            FlowError::Pseudonym(_) | FlowError::Choice(_) | FlowError::TenantNotAllowed => {
                StatusCode::FORBIDDEN
            }
            FlowError::Store(_) | FlowError::Retention(_) => StatusCode::SERVICE_UNAVAILABLE,
            FlowError::SamlOut(saml_idp::SamlOutError::Signing) => StatusCode::INTERNAL_SERVER_ERROR,
            FlowError::SamlOut(saml_idp::SamlOutError::UnknownSp) => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// One tenant as the login face knows it.
struct Tenant {
    id: String,
    name: String,
}

/// `[login.assertion]`, compiled.
struct AssertionSettings {
    header: http::HeaderName,
    audience: String,
    lifetime_secs: u64,
    require_login: bool,
}

/// The login face, shared by every worker (its stores must be one per process).
pub struct Login {
    /// `{public_url}/nymgate`: the issuer of nymgate's tokens.
    issuer: String,
    output: LoginOutput,
    sealer: Sealer,
    pseudonymizer: Pseudonymizer,
    minter: Minter,
    tenants: Vec<Tenant>,
    oidc: HashMap<String, OidcIdp>,
    email_domains: HashMap<String, String>,
    /// Single-use claims (states, codes, SAML assertions) and, with Redis, failure counts.
    store: Arc<Store>,
    /// What `store` was built from, to know on reload whether it can be kept.
    store_config: crate::config::StoreConfig,
    clients: HashMap<String, provider::PlatformClient>,
    flow_lifetime: u64,
    session_lifetime: u64,
    token_lifetime: u64,
    code_lifetime: u64,
    assertion: AssertionSettings,
    /// nymgate's SAML SP, when `[login.saml]` is configured.
    saml_sp: Option<saml_sp::SamlSp>,
    /// nymgate as the platform's SAML IdP, when `[login.saml_idp]` is configured.
    saml_idp: Option<saml_idp::SamlIdp>,
    /// The retention store and each retaining tenant's rules (docs/RETENTION.md).
    retention: Option<Arc<crate::retention::RetentionStore>>,
    retention_rules: HashMap<String, crate::config::TenantRetentionConfig>,
    /// `retention.cull_after` and `cull_interval`, in seconds.
    retention_cull: Option<(u64, u64)>,
    /// Each tenant's `offboard_on`, as unix seconds.
    offboard_at: Vec<(String, u64)>,
    /// Tenants seen offboarded in the retention database (offboarding.rs): final, so asked once.
    ended: offboarding::Ended,
    /// The keyring file, for an offboarding through the admin API.
    keyring_file: std::path::PathBuf,
    /// The admin API's bearer tokens (`[retention.api]`).
    retention_tokens: Option<retention_api::RetentionTokens>,
    /// SAML tenants: where to send the browser, and what to trust in the answer.
    saml: HashMap<String, saml_tenant::SamlTenant>,
    /// Which tenant a verified login belongs to (tenant_choice.rs).
    choice: TenantChoice,
    /// Failed-attempt blocking, unless `login.blocking.enabled = false`.
    blocker: Option<blocking::Blocker>,
    /// The audit log, which fails closed (docs/LOGIN.md, "The audit log"); shared with the
    /// refused-call ledger's flush task.
    audit: Arc<AuditSink>,
    /// Admin API calls refused for want of a token: counted, aggregated, rate-limited.
    admin_refusals: Arc<admin_refusals::AdminRefusals>,
    /// How often `/readyz` may try a failing audit log again.
    audit_probe: ProbeGate,
    /// The deployment's `[branding]`, and each tenant's merged over it.
    branding: crate::config::BrandingConfig,
    tenant_branding: HashMap<String, crate::config::BrandingConfig>,
    alerts: Arc<Alerts>,
    metrics: Arc<Metrics>,
}

/// How long the start and a reload wait for the OIDC IdPs' discovery documents.
const ISSUER_CHECK_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Refusals that say what the school's IdP or nymgate's config did, from bytes the IdP signed
/// and sent over its back channel or in a verified response, not what the client did:
/// counting them would block a whole school behind one NAT for an IdP's or a config's fault
/// (issue 26). Each is still audited and alerted on (docs/LOGIN.md, "Blocking").
/// - `unknown_kid`: the IdP signs with a key it does not (yet) publish, a rotation nymgate
///   could not follow (the ID token came from the token endpoint, not the browser);
/// - `auth_not_fresh`: the IdP answered a ForceAuthn from an earlier session;
/// - `issuer_mismatch`, `no_pseudonym_keys`: the IdP's or the config's issuer or keys;
/// - `tenant_not_selected`, `tenant_ambiguous`: the IdP released no, or two, select values.
const NOT_COUNTED: [&str; 6] = [
    "unknown_kid",
    "auth_not_fresh",
    "issuer_mismatch",
    "no_pseudonym_keys",
    "tenant_not_selected",
    "tenant_ambiguous",
];

/// Largest ACS form accepted, checked before anything is parsed: the base64 of
/// `saml_acs::MAX_RESPONSE_BYTES` plus RelayState and encoding.
const ACS_FORM_LIMIT: usize = 192 * 1024;

/// What a login request carries besides the request itself.
pub struct LoginContext<'a> {
    pub client: &'a ReducedIp,
    /// The client for failed-attempt blocking (`None`: allowlisted or blocking off).
    pub client_key: Option<blocking::ClientKey>,
    pub request_id: &'a str,
    pub max_body_bytes: usize,
    pub body_read_timeout: std::time::Duration,
    /// The pages' language, from `Accept-Language`.
    pub lang: pages::Lang,
}

fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(crate::secret::random_bytes::<32>())
}

/// Loads a PKCS#8 PEM signing key.
fn load_signing_key(alg: Algorithm, path: &std::path::Path) -> Result<SigningKey, String> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_file(path)
        .map_err(|e| format!("{}: not a PKCS#8 PEM key: {e}", path.display()))?;
    SigningKey::from_pkcs8(alg, der.secret_pkcs8_der()).map_err(|e| format!("{}: {e}", path.display()))
}

impl Login {
    /// Builds the login face from a validated config, or `None` when `[login]` is absent.
    pub fn new(
        config: &Config,
        metrics: Arc<Metrics>,
        alerts: Arc<Alerts>,
    ) -> Result<Option<Arc<Login>>, String> {
        Self::new_after(config, metrics, alerts, None)
    }

    /// As [`Login::new`], for a config reload: the single-use store and the failed-login counts
    /// of `carried` carry over (a fresh store would forget spent states and codes), unless
    /// `[store]` itself changed.
    pub fn new_after(
        config: &Config,
        metrics: Arc<Metrics>,
        alerts: Arc<Alerts>,
        carried: Option<&Login>,
    ) -> Result<Option<Arc<Login>>, String> {
        let Some(login) = &config.login else { return Ok(None) };
        let public_url = login.public_url.trim_end_matches('/').to_owned();
        let issuer = format!("{public_url}{PREFIX}");
        let callback_url = format!("{issuer}/callback");

        let seal_secret = match &login.seal_secret {
            Some(source) => Some(Secret::load(source).map_err(|e| format!("login.seal_secret: {e}"))?),
            None => None,
        };
        let sealer = match &seal_secret {
            Some(secret) => Sealer::new(secret, &[]),
            None => {
                tracing::warn!("login.seal_secret is not set: a random one drawn at start is used, so replicas can't share logins and pending logins end at a restart");
                Sealer::new(&process_seal_secret(), &[])
            }
        };
        let keyring_file =
            &config.pseudonyms.as_ref().ok_or("pseudonyms.keyring_file is required")?.keyring_file;
        let keyring = Keyring::load(keyring_file).map_err(|e| format!("pseudonyms.keyring_file: {e}"))?;
        let pseudonymizer = Pseudonymizer::new(config, keyring)
            .map_err(|problems| problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))?;

        let signing = &login.signing;
        let current = match &signing.key_file {
            Some(path) => load_signing_key(signing.alg, path)?,
            None => {
                tracing::warn!("login.signing.key_file is not set: tokens are signed with a key drawn at start, published only by this process");
                process_signing_key(signing.alg)
            }
        };
        let previous = signing
            .previous_key_files
            .iter()
            .map(|path| load_signing_key(signing.alg, path))
            .collect::<Result<Vec<_>, _>>()?;
        let minter = Minter::new(&issuer, current, previous);

        // One JWKS cache per IdP, shared by the tenants that trust it (key_cache.rs).
        let key_caches = Arc::new(key_cache::KeyCaches::default());
        let mut oidc = HashMap::new();
        let mut saml = HashMap::new();
        let mut email_domains = HashMap::new();
        let mut tenants = Vec::new();
        for tenant in &config.tenants {
            if let Some(settings) = &tenant.oidc {
                oidc.insert(tenant.id.clone(), OidcIdp::new(tenant, settings, &callback_url, &key_caches)?);
            }
            if let Some(settings) = &tenant.saml {
                saml.insert(tenant.id.clone(), saml_tenant::SamlTenant::new(tenant, settings)?);
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
        for client in &login.clients {
            let secret = Secret::load(&client.client_secret)
                .map_err(|e| format!("login.clients {}: client_secret: {e}", client.client_id))?;
            clients.insert(
                client.client_id.clone(),
                provider::PlatformClient {
                    id: client.client_id.clone(),
                    secret,
                    redirect_uris: client.redirect_uris.clone(),
                    sector: client.sector.clone(),
                },
            );
        }

        let saml_sp = match &login.saml {
            Some(saml) => {
                let read = |path: &std::path::Path| {
                    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
                };
                let entity_id =
                    saml.entity_id.clone().unwrap_or_else(|| saml_sp::default_entity_id(&public_url));
                let acs = saml_sp::acs_url(&public_url);
                Some(saml_sp::SamlSp::new(&entity_id, &acs, &read(&saml.cert_file)?, &read(&saml.key_file)?)?)
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
                                    .map_err(|e| format!("retention.api.{field}: {e}"))
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
            clients,
            flow_lifetime: login.flow_lifetime.as_secs(),
            session_lifetime: login.session_lifetime.as_secs(),
            token_lifetime: login.token_lifetime.as_secs(),
            code_lifetime: login.code_lifetime.as_secs(),
            assertion: AssertionSettings {
                header: http::HeaderName::from_bytes(login.assertion.header.as_bytes())
                    .map_err(|_| "login.assertion.header is not a header name")?,
                audience: login.assertion.audience.clone(),
                lifetime_secs: login.assertion.lifetime.as_secs(),
                require_login: login.assertion.require_login,
            },
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

    /// Whether a path is one of nymgate's own.
    ///
    /// Decided on the canonical path (target.rs), so that no spelling of a nymgate path
    /// (`/NYMGATE/callback`, `//nymgate/x`, `/a/../nymgate`, `/%6eymgate`) reaches the platform.
    /// A path too deeply encoded to canonicalize is claimed too (and refused by the pipeline).
    pub fn owns(path: &str) -> bool {
        crate::target::canonical_path(path).map_or(true, |path| Self::owns_canonical(&path))
    }

    /// [`Login::owns`] for a path already in canonical form.
    pub fn owns_canonical(path: &crate::target::CanonicalPath) -> bool {
        path.is_under(PREFIX)
    }

    /// The key failed-attempt blocking knows a client IP by (an HMAC, never the address), or
    /// `None` when blocking is off or the IP is allowlisted. Called where the raw IP still is.
    pub fn client_key(&self, ip: std::net::IpAddr) -> Option<blocking::ClientKey> {
        self.blocker.as_ref()?.key_for(ip)
    }

    /// Every `/nymgate/…` request, top to bottom.
    pub async fn handle(
        &self,
        parts: http::request::Parts,
        canonical: &crate::target::CanonicalPath,
        incoming: Incoming,
        ctx: &LoginContext<'_>,
    ) -> Response<Body> {
        // Routed on the canonical path, the form `owns` decided on (tenant ids are lowercase).
        let path = canonical.as_str().strip_prefix(PREFIX).unwrap_or("");
        let query = parts.uri.query().unwrap_or("");
        let provider = self.output == LoginOutput::Provider;
        // A blocked client gets no login endpoint at all (its metadata and keys stay public).
        let login_flow = matches!(
            path,
            "/login" | "/callback" | "/saml/acs" | "/authorize" | "/idp/sso" | "/idp/init" | "/idp/continue"
        ) || path.starts_with("/login/");
        if login_flow {
            match self.blocked_for(ctx).await {
                Ok(None) => {}
                Ok(Some(retry_after)) => return self.refuse_blocked(retry_after, ctx).await,
                Err(error) => return self.finish(Err(error.into()), None, ctx, "none").await,
            }
        }
        match (&parts.method, path) {
            (&Method::GET, "/login") => self.choose(query, &parts.headers, ctx).await,
            (&Method::GET, p) if p.starts_with("/login/") => {
                let params = form(query);
                let return_to = safe_return_to(params.get("return_to").map(String::as_str));
                let tenant = &p["/login/".len()..];
                self.start_chosen(tenant, Next::Session { return_to }, ctx).await
            }
            (&Method::GET, "/callback") => self.callback(query, &parts.headers, ctx).await,
            (&Method::GET, "/logout") => self.logout(&parts.headers).await,
            (&Method::GET, "/logged-out") => pages::logged_out(ctx.lang, &self.branding),
            (&Method::GET, "/me") => {
                let session = self.session_with_removed(&parts.headers);
                let tenant = session.as_ref().and_then(|s| s.claims.get("tenant")?.as_str());
                let shown = session.as_ref().map(|s| (&s.claims, s.removed.as_slice()));
                pages::transparency(ctx.lang, self.branding_for(tenant), shown)
            }
            (&Method::POST, "/saml/acs") if self.saml_sp.is_some() => {
                self.acs(incoming, &parts.headers, ctx).await
            }
            (&Method::GET, "/saml/metadata") if self.saml_sp.is_some() => {
                metadata_response(self.saml_sp.as_ref().map(|sp| sp.metadata()).unwrap_or_default())
            }
            (&Method::GET, "/idp/metadata") if self.saml_idp.is_some() => {
                match self.saml_idp.as_ref().map(|idp| idp.metadata(unix_now())) {
                    Some(Ok(xml)) => metadata_response(xml),
                    _ => pages::login_failed(
                        ctx.lang,
                        &self.branding,
                        StatusCode::INTERNAL_SERVER_ERROR,
                        ctx.request_id,
                    ),
                }
            }
            (&Method::GET, "/idp/sso") if self.saml_idp.is_some() => {
                self.saml_sso(SsoInput::Redirect(query), ctx).await
            }
            (&Method::POST, "/idp/sso") if self.saml_idp.is_some() => match read_form(incoming, ctx).await {
                Ok(fields) => self.saml_sso(SsoInput::Post(&fields), ctx).await,
                // A platform's login request that can't be read is a refused attempt, audited
                // like the ACS's.
                Err(status) => {
                    let error = match status {
                        StatusCode::PAYLOAD_TOO_LARGE => FlowError::Saml(saml_acs::SamlError::TooLarge),
                        StatusCode::REQUEST_TIMEOUT => FlowError::BadRequest("body_timeout"),
                        _ => FlowError::BadRequest("unreadable_form"),
                    };
                    self.failed(None, error, ctx, Some("saml")).await
                }
            },
            (&Method::GET, "/idp/init") if self.saml_idp.is_some() => {
                self.saml_sso(SsoInput::Unsolicited(query), ctx).await
            }
            (&Method::GET, "/idp/continue") if self.saml_idp.is_some() => {
                self.saml_continue(query, &parts.headers, ctx).await
            }
            (&Method::GET, "/jwks") => {
                json_response(StatusCode::OK, &self.minter.jwks(), "public, max-age=300")
            }
            (&Method::GET, "/.well-known/openid-configuration") if provider => self.discovery(),
            (&Method::GET, "/authorize") if provider => self.authorize(query, &parts.headers, ctx).await,
            (&Method::POST, "/token") if provider => match read_form(incoming, ctx).await {
                Ok(body) => self.token(&parts.headers, &body).await,
                Err(status) => provider::oauth_error(status, "invalid_request", "unreadable request body"),
            },
            (&Method::GET, "/userinfo") if provider => self.userinfo(&parts.headers),
            (&Method::POST, "/userinfo") if provider => self.userinfo(&parts.headers),
            _ => {
                let mut response = Response::new(body::full("404 Not Found\n"));
                *response.status_mut() = StatusCode::NOT_FOUND;
                response
            }
        }
    }

    /// `/nymgate/login`: a `login_hint` whose domain names a tenant goes straight there;
    /// otherwise the school chooser.
    async fn choose(&self, query: &str, headers: &HeaderMap, ctx: &LoginContext<'_>) -> Response<Body> {
        let params = form(query);
        let return_to = safe_return_to(params.get("return_to").map(String::as_str));
        if let Some(tenant) = self.tenant_for_hint(params.get("login_hint")) {
            let hint = params.get("login_hint").map(String::as_str);
            return self.start_or_fail(&tenant, hint, Next::Session { return_to }, ctx).await;
        }
        let encoded: String =
            openidconnect::url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
        let href = |id: &str| format!("{PREFIX}/login/{id}?return_to={encoded}");
        self.chooser(headers, ctx, &href, &[("return_to".to_owned(), return_to.clone())], &params)
    }

    /// The chooser page for this request: every tenant, the remembered one first, filtered by
    /// the search words in `q`; `hidden` are the parameters a search must carry along.
    pub(super) fn chooser(
        &self,
        headers: &HeaderMap,
        ctx: &LoginContext<'_>,
        href: &dyn Fn(&str) -> String,
        hidden: &[(String, String)],
        params: &HashMap<String, String>,
    ) -> Response<Body> {
        let choice = |t: &Tenant| pages::SchoolChoice { name: t.name.clone(), href: href(&t.id) };
        let schools: Vec<pages::SchoolChoice> = self.tenants.iter().map(choice).collect();
        let remembered = cookie_value(headers, SCHOOL_COOKIE)
            .and_then(|id| self.tenants.iter().find(|t| t.id == id))
            .map(choice);
        let query = params.get("q").map(String::as_str).unwrap_or("");
        pages::chooser(ctx.lang, &self.branding, &schools, remembered.as_ref(), query, hidden)
    }

    /// The tenant's branding over the deployment's, or the deployment's alone.
    fn branding_for(&self, tenant: Option<&str>) -> &crate::config::BrandingConfig {
        tenant.and_then(|t| self.tenant_branding.get(t)).unwrap_or(&self.branding)
    }

    /// After a school was chosen, a cookie remembers it for the next visit's chooser. It holds
    /// the tenant id only (nothing about the person), and only a configured one.
    fn remember_school(&self, tenant: &str, response: &mut Response<Body>) {
        if response.status().is_redirection() && self.tenants.iter().any(|t| t.id == tenant) {
            response
                .headers_mut()
                .append(header::SET_COOKIE, set_cookie(SCHOOL_COOKIE, tenant, SCHOOL_COOKIE_LIFETIME));
        }
    }

    /// The tenant whose `email_domains` hold the hint's domain. The hint is used for this and
    /// passed to the IdP; it is never logged or stored.
    fn tenant_for_hint(&self, hint: Option<&String>) -> Option<String> {
        let domain = hint?.rsplit_once('@')?.1.to_ascii_lowercase();
        self.email_domains.get(&domain).cloned()
    }

    /// A login at the school the browser chose, remembered for its next visit's chooser.
    async fn start_chosen(&self, tenant: &str, next: Next, ctx: &LoginContext<'_>) -> Response<Body> {
        let mut response = self.start_or_fail(tenant, None, next, ctx).await;
        self.remember_school(tenant, &mut response);
        response
    }

    async fn start_or_fail(
        &self,
        tenant: &str,
        login_hint: Option<&str>,
        next: Next,
        ctx: &LoginContext<'_>,
    ) -> Response<Body> {
        match self.start(tenant, login_hint, next).await {
            Ok(response) => response,
            Err(error) => {
                let protocol = if self.saml.contains_key(tenant) { "saml" } else { "oidc" };
                // Only a configured tenant's id is recorded: the path is the client's, and could
                // hold anything (an email), or vary to dodge a per-tenant count.
                let known = self.tenants.iter().any(|t| t.id == tenant).then_some(tenant);
                self.failed(known, error, ctx, Some(protocol)).await
            }
        }
    }

    /// Sends the browser to the tenant's IdP with a fresh state, nonce and PKCE verifier, and
    /// seals what the callback will need into a cookie named after the state (so logins in two
    /// tabs don't overwrite each other).
    async fn start(
        &self,
        tenant: &str,
        login_hint: Option<&str>,
        next: Next,
    ) -> Result<Response<Body>, FlowError> {
        let known = self.tenants.iter().find(|t| t.id == tenant).ok_or(FlowError::UnknownTenant)?;
        let state = random_token();
        let now = unix_now();
        let (url, pending, same_site) = if let Some(idp) = self.oidc.get(&known.id) {
            let (url, pending) = idp.start(&state, login_hint, saml_out::oidc_prompt(&next)?).await?;
            (url, Pending::Oidc(pending), SameSite::Lax)
        } else if let (Some(sp), Some(saml)) = (&self.saml_sp, self.saml.get(&known.id)) {
            // RelayState carries the state (Bindings §3.4.3: at most 80 bytes; ours is 43).
            let trusted = saml.trusted().await.map_err(FlowError::SamlMetadata)?;
            let options = saml_out::saml_options(&next);
            let fresh_since = options.force_authn.then_some(now);
            let (url, request_id) = sp.login_url_with(&trusted.idp, &state, now, options);
            // The answer comes back as a cross-site POST, which a Lax cookie would miss.
            (url, Pending::Saml { request_id, fresh_since }, SameSite::None)
        } else {
            return Err(FlowError::BadRequest("protocol_not_available"));
        };
        let flow = Flow { tenant: known.id.clone(), state: state.clone(), pending, next };
        let expires = now + self.flow_lifetime;
        let sealed = self.sealer.seal("flow", &serde_json::to_vec(&flow).expect("JSON"), expires);
        let mut response = redirect(&url);
        let cookie = flow_cookie(&flow_cookie_name(&state), &sealed, self.flow_lifetime, same_site);
        response.headers_mut().append(header::SET_COOKIE, cookie);
        Ok(response)
    }

    /// `/nymgate/callback`: the OIDC IdP's answer. Whatever happens, the flow cookie is cleared
    /// and the attempt audited.
    async fn callback(&self, query: &str, headers: &HeaderMap, ctx: &LoginContext<'_>) -> Response<Body> {
        let params = form(query);
        let state = params.get("state").map(String::as_str).unwrap_or("");
        let mut tenant = None;
        let clock = StepClock::start(&self.metrics);
        let outcome = async {
            let now = unix_now();
            let flow = self.take_flow(state, headers, now, &mut tenant).await?;
            if let Some(error) = params.get("error") {
                return Err(saml_out::oidc_error(&flow.next, error));
            }
            let Pending::Oidc(pending) = &flow.pending else {
                return Err(FlowError::BadRequest("protocol_mismatch"));
            };
            let code =
                params.get("code").filter(|c| !c.is_empty()).ok_or(FlowError::BadRequest("missing_code"))?;
            let idp = self.oidc.get(&flow.tenant).ok_or(FlowError::UnknownTenant)?;
            let claims = idp.finish(pending, code, params.get("iss").map(String::as_str)).await?;
            let identity = VerifiedIdentity::from_oidc(&pending.issuer, &claims);
            clock.next(Step::Pseudonymize);
            let (login, record) =
                self.pseudonymize(&flow.tenant, &identity, self.sector(&flow.next), now).await?;
            clock.next(Step::Mint);
            self.deliver(login, record, flow.next, now, ctx.lang)
        }
        .await;
        clock.decided(&outcome);
        let mut response = self.finish(outcome, tenant.as_deref(), ctx, "oidc").await;
        clock.stop();
        if is_token(state) {
            response.headers_mut().append(header::SET_COOKIE, clear_cookie(&flow_cookie_name(state)));
        }
        response
    }

    /// `/nymgate/saml/acs`: a SAML Response over HTTP-POST (Bindings §3.5). The form is size
    /// limited before anything is parsed; RelayState names this browser's flow (solicited), or
    /// there is none and the tenant must accept IdP-initiated logins. Whatever happens, the
    /// flow cookie is cleared and the attempt audited.
    async fn acs(&self, incoming: Incoming, headers: &HeaderMap, ctx: &LoginContext<'_>) -> Response<Body> {
        use saml_acs::SamlError;
        let mut tenant = None;
        let mut flow_cookie_to_clear = None;
        let clock = StepClock::start(&self.metrics);
        let outcome = async {
            let fields =
                read_form_limited(incoming, ctx, ACS_FORM_LIMIT).await.map_err(|status| match status {
                    StatusCode::PAYLOAD_TOO_LARGE => FlowError::Saml(SamlError::TooLarge),
                    StatusCode::REQUEST_TIMEOUT => FlowError::BadRequest("body_timeout"),
                    _ => FlowError::BadRequest("unreadable_form"),
                })?;
            let field = fields.get("SAMLResponse").ok_or(FlowError::BadRequest("missing_saml_response"))?;
            let xml = saml_acs::decode_post(field)?;
            let relay_state = fields.get("RelayState").map(String::as_str).unwrap_or("");
            let now = unix_now();
            let solicited =
                is_token(relay_state) && cookie_value(headers, &flow_cookie_name(relay_state)).is_some();
            let (tenant_id, request_id, next, fresh_since) = if solicited {
                flow_cookie_to_clear = Some(flow_cookie_name(relay_state));
                let flow = self.take_flow(relay_state, headers, now, &mut tenant).await?;
                let Pending::Saml { request_id, fresh_since } = flow.pending else {
                    return Err(FlowError::BadRequest("protocol_mismatch"));
                };
                (flow.tenant, Some(request_id), flow.next, fresh_since)
            } else {
                // IdP-initiated: there is no platform request to answer, so only the assertion
                // output can take it; RelayState is then at most a path on this site. The
                // tenant is picked after verification (`verify_unsolicited`).
                if self.output != LoginOutput::AssertionHeader {
                    return Err(SamlError::Unsolicited.into());
                }
                (String::new(), None, Next::Session { return_to: safe_return_to(Some(relay_state)) }, None)
            };
            let sp = self.saml_sp.as_ref().ok_or(FlowError::BadRequest("protocol_not_available"))?;
            let expected = saml_acs::Expected {
                sp_entity_id: &sp.entity_id,
                acs_url: &sp.acs_url,
                request_id: request_id.as_deref(),
                now,
                relay_in_response_to: false,
            };
            let (tenant_id, verified) = if solicited {
                let saml = self.saml.get(&tenant_id).ok_or(FlowError::UnknownTenant)?;
                let trusted = saml.trusted().await.map_err(FlowError::SamlMetadata)?;
                let verified = saml_acs::verify(&xml, &trusted.trust, &expected)
                    .map_err(|error| saml_out::saml_error(&next, &xml, error))?;
                if fresh_since.is_some_and(|since| !verified.authenticated_since(since, &trusted.trust)) {
                    return Err(FlowError::BadRequest("auth_not_fresh"));
                }
                (tenant_id, verified)
            } else {
                let candidates = self.saml_tenants_of(&xml)?;
                self.verify_unsolicited(&xml, &candidates, &expected, &mut tenant).await?
            };
            if verified.weak_algorithm {
                tracing::warn!(
                    request_id = ctx.request_id,
                    tenant = tenant_id,
                    "accepted a SHA-1 based signature (allow_weak_algorithms)"
                );
            }
            // Each assertion once, on every replica, until it could no longer be presented.
            let key = format!("{tenant_id}\n{}", verified.assertion_id);
            if !self.store.claim(Space::SamlAssertion, &key, verified.replay_until, now).await? {
                return Err(FlowError::BadRequest("saml_replayed"));
            }
            clock.next(Step::Pseudonymize);
            let (login, record) =
                self.pseudonymize(&tenant_id, &verified.identity, self.sector(&next), now).await?;
            clock.next(Step::Mint);
            self.deliver(login, record, next, now, ctx.lang)
        }
        .await;
        clock.decided(&outcome);
        let mut response = self.finish(outcome, tenant.as_deref(), ctx, "saml").await;
        clock.stop();
        if let Some(name) = flow_cookie_to_clear {
            response.headers_mut().append(header::SET_COOKIE, clear_cookie(&name));
        }
        response
    }

    /// The pseudonym step of every login, and the retention store's record where the tenant
    /// keeps values for this role, to be written once the login's audit line is on disk
    /// (`commit`). A record that can't be written fails the login (503): the customer requires
    /// it, so a login without it would lose data silently.
    async fn pseudonymize(
        &self,
        tenant: &str,
        identity: &VerifiedIdentity,
        sector: Sector<'_>,
        now: u64,
    ) -> Result<(PseudonymousLogin, Option<PendingRecord>), FlowError> {
        if self.tenant_ended(tenant, now).await.map_err(offboarding::flow_error)? {
            return Err(FlowError::BadRequest("tenant_offboarded"));
        }
        // A tenant that shares its IdP files only the logins its verified attribute names.
        self.choice.confirm(tenant, identity)?;
        let login = self.pseudonymizer.pseudonymize(tenant, identity, sector, now)?;
        let (Some(store), Some(rules)) = (&self.retention, self.retention_rules.get(tenant)) else {
            return Ok((login, None));
        };
        if !rules.roles.iter().any(|r| r == login.role.as_str()) {
            return Ok((login, None));
        }
        let values: crate::retention::Values = rules
            .attributes
            .iter()
            .map(|(name, sources)| {
                (name.clone(), identity.values(sources).into_iter().map(str::to_owned).collect::<Vec<_>>())
            })
            .filter(|(_, values)| !values.is_empty())
            .collect();
        let keys = crate::retention::WrapKeys::of_tenant(&self.pseudonymizer, tenant)
            .ok_or(PseudonymError::UnknownTenant(tenant.to_owned()))?;
        let account = login.sub.as_str().to_owned();
        let record =
            PendingRecord { store: store.clone(), tenant: tenant.to_owned(), keys, account, values, now };
        Ok((login, Some(record)))
    }

    /// Interception mode (docs/SAML_OUT.md): the entity ID of the platform whose ACS sits at
    /// this path behind nymgate, for a request there by any method and any spelling of the path.
    /// Returns its entity ID and the path of its `acs_url`, which the replaced request is sent
    /// to whatever spelling the browser used: nymgate vouches for that destination only.
    pub fn intercepted_sp(&self, path: &crate::target::CanonicalPath) -> Option<(String, String)> {
        let sp = self.saml_idp.as_ref()?.intercepting(path)?;
        let acs_path = sp.acs_url.parse::<http::Uri>().ok().map(|uri| uri.path().to_owned())?;
        Some((sp.entity_id.clone(), acs_path))
    }

    /// A school's SAML response posted to the platform's intercepted ACS: verified as nymgate's
    /// own ACS would (the platform as the audience and recipient; its InResponseTo relayed for
    /// the platform to check), pseudonymized, and replaced. `Ok`: the form to forward to the
    /// platform instead (`SAMLResponse` nymgate signed, the same `RelayState`). `Err`: the
    /// failure page; the school's response is never forwarded.
    ///
    /// Only the HTTP-POST binding of a Response is taken (SAML Bindings §3.5): a request to the
    /// intercepted ACS by any other method, with a SAML message in its query (HTTP-Redirect,
    /// §3.4, or an artifact, §3.6), or with an artifact in its form is refused and never
    /// forwarded, since nymgate can neither verify nor replace it and the platform's SP library
    /// may well accept it. The forwarded request carries no query at all: nymgate vouches for
    /// its own form only.
    pub async fn intercept(
        &self,
        sp_entity_id: &str,
        parts: &http::request::Parts,
        incoming: Incoming,
        ctx: &LoginContext<'_>,
    ) -> Result<Bytes, Response<Body>> {
        use saml_acs::SamlError;
        match self.blocked_for(ctx).await {
            Ok(None) => {}
            Ok(Some(retry_after)) => return Err(self.refuse_blocked(retry_after, ctx).await),
            Err(error) => return Err(self.finish(Err(error.into()), None, ctx, "saml").await),
        }
        let mut tenant = None;
        let clock = StepClock::start(&self.metrics);
        let outcome = async {
            let (idp, sp) = self
                .saml_idp
                .as_ref()
                .and_then(|idp| Some((idp, idp.service_provider(sp_entity_id)?)))
                .ok_or(FlowError::BadRequest("protocol_not_available"))?;
            if parts.uri.query().is_some_and(|q| crate::target::query_has(q, SAML_MESSAGES)) {
                return Err(FlowError::BadRequest("saml_message_in_query"));
            }
            if parts.method != Method::POST {
                return Err(FlowError::BadRequest("saml_binding_not_supported"));
            }
            let fields =
                read_form_limited(incoming, ctx, ACS_FORM_LIMIT).await.map_err(|status| match status {
                    StatusCode::PAYLOAD_TOO_LARGE => FlowError::Saml(SamlError::TooLarge),
                    StatusCode::REQUEST_TIMEOUT => FlowError::BadRequest("body_timeout"),
                    _ => FlowError::BadRequest("unreadable_form"),
                })?;
            // Every field name is read in canonical form: `samlart`, `SAMLart[]` or an encoded
            // spelling is an artifact all the same, and a response under another spelling than
            // `SAMLResponse` is not one nymgate forwards (form_body takes that name only).
            let names = fields.keys().map(|name| crate::target::canonical_param(name)).collect::<Vec<_>>();
            if names.iter().any(|name| name.matches("samlart")) {
                return Err(FlowError::BadRequest("saml_artifact_not_supported"));
            }
            let field = fields.get("SAMLResponse").ok_or(FlowError::BadRequest("missing_saml_response"))?;
            let xml = saml_acs::decode_post(field)?;
            // The (unverified) Issuer picks the school whose pinned keys then decide.
            let issuer = saml_acs::claimed_issuer(&xml)?;
            if issuer == idp.entity_id {
                // nymgate's own Response (a login through its IdP face, posted by the browser):
                // forwarded as it is, once it verifies. It was audited when it was made.
                let own = idp.verify_own(&xml, sp, unix_now())?;
                // And once only, on every replica: a second post of the same Response is a
                // replay (SAML Profiles §4.1.4.5), whoever holds it.
                let key = format!("{}\n{}", sp.entity_id, own.assertion_id);
                if !self.store.claim(Space::IssuedResponse, &key, own.replay_until, unix_now()).await? {
                    return Err(FlowError::BadRequest("saml_replayed"));
                }
                return Ok(Passed::Own(Bytes::from(form_body(&fields))));
            }
            // A platform bound to one school takes that school's responses only.
            let mut candidates = self.saml_tenants_of(&xml)?;
            if let Some(bound) = &sp.tenant {
                candidates.retain(|id| id == bound);
                if candidates.is_empty() {
                    return Err(FlowError::TenantNotAllowed);
                }
            }
            let now = unix_now();
            let (tenant_id, verified) =
                self.verify_unsolicited(&xml, &candidates, &sp.intercepted(now), &mut tenant).await?;
            let tenant_id = tenant_id.as_str();
            let key = format!("{tenant_id}\n{}", verified.assertion_id);
            if !self.store.claim(Space::SamlAssertion, &key, verified.replay_until, now).await? {
                return Err(FlowError::BadRequest("saml_replayed"));
            }
            clock.next(Step::Pseudonymize);
            let (login, record) =
                self.pseudonymize(tenant_id, &verified.identity, self.sp_sector(&sp.entity_id), now).await?;
            // Bytes that nymgate relays into its own signed Response are checked as any value
            // that leaves: RelayState (the browser's or, unsolicited, the IdP's choice) within
            // SAML Bindings §3.5.3's 80 bytes and through the guard; InResponseTo an xsd:ID.
            let relay_state = fields.get("RelayState").cloned();
            if let Some(relay_state) = &relay_state {
                if relay_state.len() > MAX_RELAY_STATE {
                    return Err(FlowError::BadRequest("saml_relay_state"));
                }
                crate::pseudonym::guard::Guard::new(verified.identity.identifying_values())
                    .check("relay_state", relay_state)
                    .map_err(|trip| FlowError::Pseudonym(trip.into()))?;
            }
            if verified.in_response_to.as_deref().is_some_and(|id| !is_xsd_id(id)) {
                return Err(FlowError::Saml(SamlError::InResponseTo));
            }
            clock.next(Step::Mint);
            let request =
                saml_idp::SpRequest::new(&sp.entity_id, verified.in_response_to.clone(), relay_state);
            let (response, _) = idp.response(&login, &request, now)?;
            let mut form = openidconnect::url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("SAMLResponse", &base64::engine::general_purpose::STANDARD.encode(response));
            if let Some(relay_state) = &request.relay_state {
                form.append_pair("RelayState", relay_state);
            }
            Ok(Passed::School(Bytes::from(form.finish()), login, record.map(Box::new)))
        }
        .await;
        // nymgate's own Response passing through is no login: nothing of it is committed.
        match &outcome {
            Ok(Passed::School(..)) => clock.next(Step::Commit),
            Ok(Passed::Own(_)) => clock.discard(),
            Err(_) => clock.stop(),
        }
        match outcome {
            Ok(Passed::Own(form)) => Ok(form),
            // Counted and audited as any login, before the form is forwarded.
            Ok(Passed::School(form, login, record)) => {
                self.commit(login, record.map(|r| *r), ctx, "saml").await.map(|()| form)
            }
            Err(error) => Err(self.failed(tenant.as_deref(), error, ctx, Some("saml")).await),
        }
    }

    /// `/nymgate/idp/sso` (the platform's AuthnRequest, HTTP-Redirect or HTTP-POST) and
    /// `/nymgate/idp/init` (IdP-initiated, where the SP allows it): the request is checked,
    /// then the school's login starts, or the chooser when the school is not known yet.
    async fn saml_sso(&self, input: SsoInput<'_>, ctx: &LoginContext<'_>) -> Response<Body> {
        let Some(idp) = &self.saml_idp else {
            return self
                .failed(None, FlowError::BadRequest("protocol_not_available"), ctx, Some("saml"))
                .await;
        };
        let now = unix_now();
        // The request, and nymgate's own `tenant` parameter beside it.
        let (request, tenant) = match input {
            SsoInput::Redirect(query) => (idp.read_redirect(query, now), form(query).remove("tenant")),
            SsoInput::Post(fields) => {
                let request = match fields.get("SAMLRequest") {
                    Some(request) => {
                        idp.read_post(request, fields.get("RelayState").map(String::as_str), now)
                    }
                    None => Err(saml_idp::SamlOutError::Encoding),
                };
                (request, fields.get("tenant").cloned())
            }
            SsoInput::Unsolicited(query) => {
                let mut params = form(query);
                let sp = params.get("sp").map(String::as_str).unwrap_or("");
                let request = idp.unsolicited(sp, params.get("RelayState").map(String::as_str));
                (request, params.remove("tenant"))
            }
        };
        let request = match self.admit_sp_request(request, now).await {
            Ok(request) => request,
            Err(error) => return self.failed(None, error, ctx, Some("saml")).await,
        };
        // A platform bound to one school gets that school's logins whatever its request says:
        // the `tenant` parameter is unsigned, and an SP's signature covers no nymgate parameter.
        let sp_tenant = idp.service_provider(&request.sp).and_then(|sp| sp.tenant.clone());
        let tenant = match (sp_tenant, tenant) {
            (Some(bound), Some(asked)) if asked != bound => {
                return self.failed(None, FlowError::TenantNotAllowed, ctx, Some("saml")).await
            }
            (Some(bound), _) => Some(bound),
            (None, asked) => asked,
        };
        match tenant {
            Some(tenant) => self.start_chosen(&tenant, Next::SamlSp(request), ctx).await,
            None if request.is_passive => {
                self.failed(None, saml_out::passive_without_school(request), ctx, Some("saml")).await
            }
            None => {
                // The chooser is a GET page of its own (its search form reloads it), with the
                // checked request sealed into its links.
                let sealed = self.sealer.seal(
                    "sp-request",
                    &serde_json::to_vec(&request).expect("JSON"),
                    now + self.flow_lifetime,
                );
                let query: String = openidconnect::url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("request", &sealed)
                    .finish();
                redirect(&format!("{PREFIX}/idp/continue?{query}"))
            }
        }
    }

    /// `/nymgate/idp/continue`: the chooser for a checked platform request, and the start of the
    /// chosen school's login.
    async fn saml_continue(
        &self,
        query: &str,
        headers: &HeaderMap,
        ctx: &LoginContext<'_>,
    ) -> Response<Body> {
        let params = form(query);
        let sealed = params.get("request").map(String::as_str).unwrap_or("");
        let request: Option<saml_idp::SpRequest> = self
            .sealer
            .open("sp-request", sealed, unix_now())
            .ok()
            .and_then(|plain| serde_json::from_slice(&plain).ok());
        let Some(request) = request else {
            return self.failed(None, FlowError::BadRequest("bad_sp_request"), ctx, Some("saml")).await;
        };
        if let Some(tenant) = params.get("tenant") {
            if self.bound_tenant(&request.sp).is_some_and(|bound| bound != tenant) {
                return self.failed(None, FlowError::TenantNotAllowed, ctx, Some("saml")).await;
            }
            return self.start_chosen(tenant, Next::SamlSp(request), ctx).await;
        }
        let hidden = vec![("request".to_owned(), sealed.to_owned())];
        let href = |id: &str| {
            let query: String = openidconnect::url::form_urlencoded::Serializer::new(String::new())
                .append_pair("request", sealed)
                .append_pair("tenant", id)
                .finish();
            format!("{PREFIX}/idp/continue?{query}")
        };
        self.chooser(headers, ctx, &href, &hidden, &params)
    }

    /// Opens this browser's flow cookie for `state` and spends the state: the state in the
    /// answer must be the one sealed in this browser's cookie (RFC 9700 §4.7: CSRF), and each
    /// state is good for one answer. `tenant` is set as soon as it is known, for the audit.
    async fn take_flow(
        &self,
        state: &str,
        headers: &HeaderMap,
        now: u64,
        tenant: &mut Option<String>,
    ) -> Result<Flow, FlowError> {
        if !is_token(state) {
            return Err(FlowError::BadRequest("missing_state"));
        }
        let sealed =
            cookie_value(headers, &flow_cookie_name(state)).ok_or(FlowError::BadRequest("no_flow_cookie"))?;
        let flow: Flow = self
            .sealer
            .open("flow", sealed, now)
            .ok()
            .and_then(|plain| serde_json::from_slice(&plain).ok())
            .ok_or(FlowError::BadRequest("bad_flow_cookie"))?;
        *tenant = Some(flow.tenant.clone());
        if !crate::secret::ct_eq_str(&flow.state, state) {
            return Err(FlowError::BadRequest("state_mismatch"));
        }
        if !self.store.claim(Space::State, state, now + self.flow_lifetime, now).await? {
            return Err(FlowError::BadRequest("state_replayed"));
        }
        Ok(flow)
    }

    /// The end of every IdP answer: counted, audited, logged without values.
    async fn finish(
        &self,
        outcome: Result<Decided, FlowError>,
        tenant: Option<&str>,
        ctx: &LoginContext<'_>,
        protocol: &'static str,
    ) -> Response<Body> {
        match outcome {
            Ok(Decided { response, login, record }) => {
                match self.commit(login, record, ctx, protocol).await {
                    Ok(()) => response,
                    Err(refused) => refused,
                }
            }
            Err(error) => self.failed(tenant, error, ctx, Some(protocol)).await,
        }
    }

    /// Hands a finished login to the platform, the way the config says: the response is built
    /// here and sent only once `commit` has recorded the login.
    fn deliver(
        &self,
        login: PseudonymousLogin,
        record: Option<PendingRecord>,
        next: Next,
        now: u64,
        lang: pages::Lang,
    ) -> Result<Decided, FlowError> {
        let (response, login) = self.respond(login, next, now, lang)?;
        Ok(Decided { response, login, record })
    }

    fn respond(
        &self,
        login: PseudonymousLogin,
        next: Next,
        now: u64,
        lang: pages::Lang,
    ) -> Result<(Response<Body>, PseudonymousLogin), FlowError> {
        match next {
            Next::Platform(request) => {
                let response = self.issue_code(&request, &login, now)?;
                Ok((response, login))
            }
            Next::SamlSp(request) => {
                // The last word before a bound platform receives a login: its own school's only.
                if self.bound_tenant(&request.sp).is_some_and(|bound| bound != login.tenant) {
                    return Err(FlowError::TenantNotAllowed);
                }
                let idp = self.saml_idp.as_ref().ok_or(FlowError::BadRequest("protocol_not_available"))?;
                let (xml, acs_url) = idp.response(&login, &request, now)?;
                let encoded = base64::engine::general_purpose::STANDARD.encode(xml);
                let brand = self.branding_for(Some(&login.tenant));
                let response =
                    pages::saml_post(lang, brand, acs_url, &encoded, request.relay_state.as_deref());
                Ok((response, login))
            }
            Next::Session { return_to } => {
                let session = Session { claims: login.claims(), removed: login.removed.clone() };
                let sealed = self.sealer.seal(
                    "session",
                    &serde_json::to_vec(&session).expect("JSON"),
                    now + self.session_lifetime,
                );
                let mut response = redirect(&return_to);
                let cookie = set_cookie(SESSION_COOKIE, &sealed, self.session_lifetime);
                response.headers_mut().append(header::SET_COOKIE, cookie);
                Ok((response, login))
            }
        }
    }

    /// A failed login: counted, audited, logged by reason, and a generic page.
    async fn failed(
        &self,
        tenant: Option<&str>,
        error: FlowError,
        ctx: &LoginContext<'_>,
        protocol: Option<&'static str>,
    ) -> Response<Body> {
        let protocol = protocol.unwrap_or("oidc");
        let reason = error.reason();
        self.count(tenant, protocol, "failed", reason);
        let claim = match &error {
            FlowError::Pseudonym(PseudonymError::Guard(trip)) => {
                self.metrics.guard_trip(*trip);
                Some(trip.claim)
            }
            _ => None,
        };
        let audited = self
            .record(AuditEvent {
                tenant,
                reason: Some(reason),
                claim,
                ..AuditEvent::login("failed", protocol, ctx.client.to_string(), ctx.request_id)
            })
            .await;
        if let Some(kind) = AlertKind::of_reason(reason) {
            self.alerts.observe(kind, tenant, reason);
        }
        if audited.is_err() {
            // Refused all the same, and counted toward blocking; but the answer is the outage's.
            if error.counts_toward_blocking() {
                self.count_failure(tenant, error.status(), ctx).await;
            }
            tracing::warn!(
                request_id = ctx.request_id,
                tenant,
                reason,
                "login refused, and its audit line could not be written"
            );
            return self.audit_unavailable(tenant, ctx);
        }
        if let Some(page) = self.status_page(&error, tenant, ctx) {
            tracing::info!(request_id = ctx.request_id, tenant, reason, "login answered with a SAML status");
            return page;
        }
        let status = error.status();
        if error.counts_toward_blocking() {
            self.count_failure(tenant, status, ctx).await;
        }
        if status.is_server_error() {
            tracing::warn!(request_id = ctx.request_id, tenant, reason, detail = %error, "login failed");
        } else {
            tracing::info!(request_id = ctx.request_id, tenant, reason, detail = %error, "login refused");
        }
        pages::login_failed(ctx.lang, self.branding_for(tenant), status, ctx.request_id)
    }

    /// Seconds the client must wait, if blocked. With the shared store unavailable this is
    /// `Err`, and the login is refused as the store's other callers would refuse it.
    async fn blocked_for(&self, ctx: &LoginContext<'_>) -> Result<Option<u64>, StoreError> {
        let (Some(blocker), Some(client)) = (&self.blocker, ctx.client_key) else { return Ok(None) };
        if self.store.is_shared() {
            self.store.blocked_for(&client.to_hex()).await
        } else {
            Ok(blocker.blocked_for(client, unix_now()))
        }
    }

    /// How often the retention store is culled, when there is one.
    pub fn retention_interval(&self) -> Option<std::time::Duration> {
        self.retention.as_ref()?;
        self.retention_cull.map(|(_, interval)| std::time::Duration::from_secs(interval))
    }

    /// The culling job at `now` (docs/RETENTION.md): offboarded tenants' records go, then
    /// records not seen within `cull_after`. Returns how many records were culled; each
    /// offboarding is audited.
    pub async fn cull_retention(&self, now: u64) -> Result<usize, crate::retention::RetentionError> {
        let (Some(store), Some((after, _))) = (self.retention.clone(), self.retention_cull) else {
            return Ok(0);
        };
        // An offboarding by date is an erasure, audited as one: not while the log can't be
        // written. The job runs again at its next interval.
        if self.audit_failing().await {
            return Err(crate::retention::RetentionError::Database(
                "culling postponed: the audit log cannot be written".into(),
            ));
        }
        let offboard = self.offboard_at.clone();
        let (culled, offboarded) = tokio::task::spawn_blocking(move || store.cull_due(now, after, &offboard))
            .await
            .map_err(|_| crate::retention::RetentionError::Database("the cull did not finish".into()))??;
        for (tenant, removed) in offboarded.iter().filter(|(_, removed)| *removed > 0) {
            tracing::warn!(tenant, removed, "retention: the tenant's offboarding date has come; its records are erased. Erase its pseudonym keys with `nymgate retention offboard`");
            let event = AuditEvent {
                tenant: Some(tenant),
                reason: Some("offboard_date"),
                ..AuditEvent::admin("tenant_offboard", "ok")
            };
            let _ = self.record(event).await;
        }
        Ok(culled)
    }

    /// The shared store, for `/readyz` and its probe.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// 429 with `Retry-After` (RFC 6585 §4), audited and counted like any refused attempt; it
    /// does not count as another failure, so the block ends when it says it does.
    async fn refuse_blocked(&self, retry_after: u64, ctx: &LoginContext<'_>) -> Response<Body> {
        self.count(None, "none", "failed", "blocked");
        let audited = self
            .record(AuditEvent {
                reason: Some("blocked"),
                ..AuditEvent::login("failed", "none", ctx.client.to_string(), ctx.request_id)
            })
            .await;
        if audited.is_err() {
            return self.audit_unavailable(None, ctx);
        }
        tracing::info!(request_id = ctx.request_id, retry_after, "login refused: client blocked");
        let mut response =
            pages::login_failed(ctx.lang, &self.branding, StatusCode::TOO_MANY_REQUESTS, ctx.request_id);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        response
    }

    /// Counts a failed attempt the client is answerable for (a 4xx), and blocks it at the
    /// threshold.
    async fn count_failure(&self, tenant: Option<&str>, status: StatusCode, ctx: &LoginContext<'_>) {
        let (Some(blocker), Some(client)) = (&self.blocker, ctx.client_key) else { return };
        if !status.is_client_error() {
            return;
        }
        let now = unix_now();
        let started = if self.store.is_shared() {
            let settings = blocker.settings();
            let counted = self
                .store
                .count_failure(
                    &client.to_hex(),
                    tenant.unwrap_or(""),
                    blocker.threshold(tenant),
                    settings.window_secs,
                    settings.block_secs,
                )
                .await;
            // Unavailable: the failure goes uncounted (logged by the store); the login itself
            // was refused anyway, and logins stay refused until the store answers.
            let started = counted.unwrap_or(false);
            if started {
                blocker.note_block(client, now);
            }
            started
        } else {
            blocker.record_failure(client, tenant, now)
        };
        if started {
            self.metrics.login_block(blocker.blocked_clients(now));
            self.alerts.observe(AlertKind::ClientBlocked, tenant, "blocked");
            tracing::warn!(request_id = ctx.request_id, tenant, client = %ctx.client, "client blocked after too many failed logins");
        }
    }

    /// `/nymgate/logout`: ends nymgate's session, then RP-initiated logout at the IdP where it
    /// offers one (OIDC RP-Initiated Logout 1.0 §2), else the logged-out page.
    async fn logout(&self, headers: &HeaderMap) -> Response<Body> {
        let tenant =
            self.session(headers).and_then(|claims| claims.get("tenant")?.as_str().map(str::to_owned));
        let logged_out = format!("{}/logged-out", self.issuer);
        let mut target = logged_out.clone();
        if let Some(idp) = tenant.as_deref().and_then(|t| self.oidc.get(t)) {
            if let Some(end_session) = idp.end_session_endpoint().await {
                let query: String = openidconnect::url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("client_id", idp.client_id())
                    .append_pair("post_logout_redirect_uri", &logged_out)
                    .finish();
                let sep = if end_session.contains('?') { '&' } else { '?' };
                target = format!("{end_session}{sep}{query}");
            }
        }
        let mut response = redirect(&target);
        response.headers_mut().append(header::SET_COOKIE, clear_cookie(SESSION_COOKIE));
        response
    }

    /// The pseudonymous claims of this browser's session, if it has a valid one.
    fn session(&self, headers: &HeaderMap) -> Option<Map<String, Value>> {
        self.session_with_removed(headers).map(|s| s.claims)
    }

    fn session_with_removed(&self, headers: &HeaderMap) -> Option<Session> {
        let sealed = cookie_value(headers, SESSION_COOKIE)?;
        let plain = self.sealer.open("session", sealed, unix_now()).ok()?;
        serde_json::from_slice::<Session>(&plain).ok()
    }

    /// For a request on its way to the platform: removes nymgate's own cookies; with the
    /// assertion-header output (the client's copy of the header is already gone, sanitize.rs)
    /// it adds nymgate's, signed, when the browser has a session. `Err` is the response to send instead
    /// (a redirect to the login when `require_login` is set).
    pub fn assert_request(&self, parts: &mut http::request::Parts) -> Result<(), Box<Response<Body>>> {
        let assertion_output = self.output == LoginOutput::AssertionHeader;
        let session = if assertion_output { self.session(&parts.headers) } else { None };
        // The platform has no use for nymgate's cookies in either output (a browser that
        // started a login keeps its chosen school and flow cookies).
        strip_own_cookies(&mut parts.headers);
        if !assertion_output {
            return Ok(());
        }
        match session {
            Some(claims) => {
                let now = unix_now();
                let token = self.minter.mint_claims(
                    claims,
                    &TokenRequest {
                        audience: &self.assertion.audience,
                        nonce: None,
                        now,
                        lifetime_secs: self.assertion.lifetime_secs,
                    },
                );
                let value = HeaderValue::from_str(&token).expect("a compact JWS is a valid header value");
                parts.headers.insert(self.assertion.header.clone(), value);
                Ok(())
            }
            None if self.assertion.require_login => {
                if parts.method == Method::GET || parts.method == Method::HEAD {
                    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                    let encoded: String =
                        openidconnect::url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
                    Err(Box::new(redirect(&format!("{PREFIX}/login?return_to={encoded}"))))
                } else {
                    let mut response = Response::new(body::full("401 Unauthorized: sign in first\n"));
                    *response.status_mut() = StatusCode::UNAUTHORIZED;
                    Err(Box::new(response))
                }
            }
            None => Ok(()),
        }
    }

    /// The JWKS, for tests and the demo.
    pub fn jwks(&self) -> Value {
        self.minter.jwks()
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}

/// A `return_to` that stays on this site: a path starting with one `/` (not `//host`, not
/// `/\host`), else `/`. An open redirect would let a phishing link borrow nymgate's name.
pub fn safe_return_to(value: Option<&str>) -> String {
    match value {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.chars().any(|c| c.is_control()) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// A random token as nymgate makes them: 43 base64url characters.
fn is_token(value: &str) -> bool {
    value.len() == 43 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn flow_cookie_name(state: &str) -> String {
    let tag: String = state.chars().filter(|c| c.is_ascii_alphanumeric()).take(12).collect();
    format!("{FLOW_COOKIE_PREFIX}{tag}")
}

/// Query or form parameters; a repeated parameter is refused by keeping neither (OAuth 2.0
/// §3.1: parameters must not be included more than once).
pub fn form(text: &str) -> HashMap<String, String> {
    let mut seen = HashMap::new();
    let mut repeated = Vec::new();
    for (key, value) in openidconnect::url::form_urlencoded::parse(text.as_bytes()) {
        if seen.insert(key.to_string(), value.into_owned()).is_some() {
            repeated.push(key.into_owned());
        }
    }
    for key in repeated {
        seen.remove(&key);
    }
    seen
}

async fn read_form(
    incoming: Incoming,
    ctx: &LoginContext<'_>,
) -> Result<HashMap<String, String>, StatusCode> {
    read_form_limited(incoming, ctx, 64 * 1024).await
}

/// A form body of at most `limit` bytes (and the server's own body limit), read within the
/// body timeout; nothing is parsed before the whole body is in and within the limit.
async fn read_form_limited(
    incoming: Incoming,
    ctx: &LoginContext<'_>,
    limit: usize,
) -> Result<HashMap<String, String>, StatusCode> {
    let limit = ctx.max_body_bytes.min(limit);
    let collect = http_body_util::Limited::new(incoming, limit).collect();
    let bytes: Bytes = match tokio::time::timeout(ctx.body_read_timeout, collect).await {
        Err(_) => return Err(StatusCode::REQUEST_TIMEOUT),
        Ok(Err(_)) => return Err(StatusCode::PAYLOAD_TOO_LARGE),
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| StatusCode::BAD_REQUEST)?;
    Ok(form(text))
}

pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Removes nymgate's cookies from a request going to the platform: they are nymgate's
/// business (sealed, but the platform has no use for them).
fn strip_own_cookies(headers: &mut HeaderMap) {
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            !pair.is_empty() && !crate::target::is_own_cookie_name(name.as_bytes())
        })
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty() {
        if let Ok(value) = HeaderValue::from_str(&kept.join("; ")) {
            headers.insert(header::COOKIE, value);
        }
    }
}

/// A cookie's SameSite attribute (RFC 6265bis §5.4.7).
#[derive(Debug, Clone, Copy)]
enum SameSite {
    /// Sent on top-level GET navigations from other sites: the OIDC redirect back.
    Lax,
    /// Sent on cross-site POSTs too: the SAML HTTP-POST binding's auto-submitted form.
    None,
}

/// `__Host-` cookies (RFC 6265bis §4.1.3.2): Secure, Path=/, no Domain, so no other host or
/// path can set or read them. Lax: the IdP's redirect back is a top-level GET.
fn set_cookie(name: &str, value: &str, max_age: u64) -> HeaderValue {
    flow_cookie(name, value, max_age, SameSite::Lax)
}

/// As [`set_cookie`], with the SameSite the flow's protocol needs. The flow cookie is sealed,
/// names its own state, and is single-use, so SameSite=None gives a cross-site poster nothing.
fn flow_cookie(name: &str, value: &str, max_age: u64, same_site: SameSite) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite={same_site:?}; Max-Age={max_age}"
    ))
    .expect("cookie names and sealed values are header-safe")
}

fn clear_cookie(name: &str) -> HeaderValue {
    set_cookie(name, "", 0)
}

/// `[login.saml_idp]` as nymgate's IdP face, its files read.
fn build_saml_idp(
    settings: &crate::config::login::SamlIdpConfig,
    public_url: &str,
) -> Result<saml_idp::SamlIdp, String> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let algorithm = saml_idp::SignatureAlgorithm::from_name(&settings.signature_algorithm)
        .ok_or("login.saml_idp.signature_algorithm: use rsa-sha256, rsa-sha512 or ecdsa-sha256")?;
    let sps = settings
        .service_providers
        .iter()
        .map(|sp| {
            Ok(saml_idp::SpSettings {
                entity_id: sp.entity_id.clone(),
                acs_url: sp.acs_url.clone(),
                certificates: sp.certificate_files.iter().map(|p| read(p)).collect::<Result<_, String>>()?,
                idp_initiated: sp.idp_initiated,
                tenant: sp.tenant.clone(),
                sector: sp.sector.clone(),
                intercept_path: sp
                    .intercept
                    .then(|| sp.acs_url.strip_prefix(public_url).map(str::to_owned))
                    .flatten(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    saml_idp::SamlIdp::new(
        settings.entity_id.clone().unwrap_or_else(|| format!("{public_url}{PREFIX}/idp")),
        format!("{public_url}{PREFIX}/idp/sso"),
        &read(&settings.cert_file)?,
        &read(&settings.key_file)?,
        algorithm,
        settings.assertion_lifetime.as_secs(),
        sps,
    )
}

/// SAML metadata (SAML Metadata §4.1.1's media type).
fn metadata_response(xml: String) -> Response<Body> {
    let mut response = Response::new(body::full(xml));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/samlmetadata+xml"));
    response
}

fn redirect(location: &str) -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json_response(status: StatusCode, value: &Value, cache: &'static str) -> Response<Body> {
    let mut response = Response::new(body::full(serde_json::to_vec(value).expect("JSON")));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// The seal secret when `login.seal_secret` is not set: drawn once per process, so that a
/// reload (onboarding a school) keeps every pending login, session and authorization code
/// sealed under it (issue 29); a restart still ends them, as the start-up warning says.
fn process_seal_secret() -> Secret {
    static DRAWN: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    Secret::new(DRAWN.get_or_init(crate::secret::random_bytes::<32>).to_vec())
}

/// The token-signing key when `login.signing.key_file` is not set: one per algorithm, drawn
/// once per process, so that tokens issued before a reload still verify against the JWKS after
/// it.
fn process_signing_key(alg: crate::mint::Algorithm) -> SigningKey {
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

    /// Blocking decides on the reason code: each uncounted code is one these errors raise (a
    /// renamed code would otherwise be counted again unnoticed), and an attack signal counts.
    #[test]
    fn refusals_of_the_idp_or_the_config_do_not_count_toward_blocking() {
        let not_counted = [
            FlowError::Oidc(OidcError::UnknownKid),
            FlowError::Oidc(OidcError::NotFresh),
            FlowError::BadRequest("auth_not_fresh"),
            FlowError::Pseudonym(PseudonymError::IssuerMismatch),
            FlowError::Pseudonym(PseudonymError::NoKeys("s".into())),
            FlowError::Choice(ChoiceError::NotSelected),
            FlowError::Choice(ChoiceError::Ambiguous),
        ];
        let mut reasons: Vec<&str> = not_counted.iter().map(FlowError::reason).collect();
        reasons.dedup();
        assert_eq!(reasons, NOT_COUNTED);
        assert!(not_counted.iter().all(|e| !e.counts_toward_blocking()));
        for counted in [
            FlowError::Oidc(OidcError::BadSignature),
            FlowError::Oidc(OidcError::CodeRefused),
            FlowError::Choice(ChoiceError::Mismatch),
            FlowError::TenantNotAllowed,
            FlowError::BadRequest("state_replayed"),
        ] {
            assert!(counted.counts_toward_blocking(), "{}", counted.reason());
        }
    }

    #[test]
    fn return_to_stays_on_this_site() {
        assert_eq!(safe_return_to(Some("/courses/1?x=2")), "/courses/1?x=2");
        for bad in
            ["//evil.example/", "/\\evil.example", "https://evil.example/", "javascript:alert(1)", "/a\nb"]
        {
            assert_eq!(safe_return_to(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_return_to(None), "/");
    }

    #[test]
    fn repeated_parameters_are_dropped() {
        let params = form("a=1&b=2&a=3");
        assert_eq!(params.get("a"), None);
        assert_eq!(params.get("b").map(String::as_str), Some("2"));
    }

    #[test]
    fn own_cookies_never_reach_the_platform() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; __Host-nymgate-session=xyz"));
        headers.append(header::COOKIE, HeaderValue::from_static("__Host-nymgate-flow-abc=1; b=2"));
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("__HOST-Nymgate-session=1; __Secure-nymgate-x=2"),
        );
        strip_own_cookies(&mut headers);
        assert_eq!(headers.get(header::COOKIE).unwrap(), "a=1; b=2");
        let mut only_ours = HeaderMap::new();
        only_ours.insert(header::COOKIE, HeaderValue::from_static("__Host-nymgate-session=xyz"));
        strip_own_cookies(&mut only_ours);
        assert!(only_ours.get(header::COOKIE).is_none());
    }

    #[test]
    fn own_paths() {
        assert!(Login::owns("/nymgate"));
        assert!(Login::owns("/nymgate/callback"));
        assert!(!Login::owns("/nymgatex"));
        assert!(!Login::owns("/api/nymgate/x"));
    }
}
