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
mod build;
mod errors;
mod flow_identity;
mod observe;
pub mod saml_acs;
mod saml_flow;
pub mod saml_idp;
pub mod saml_metadata;
mod saml_out;
pub mod saml_sp;
mod saml_tenant;
mod tenant_choice;
use errors::*;
mod web;
use web::*;
pub use web::{cookie_value, form, safe_return_to};
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

/// Every nymgate endpoint starts with this.
pub const PREFIX: &str = "/nymgate";
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

impl Login {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_paths() {
        assert!(Login::owns("/nymgate"));
        assert!(Login::owns("/nymgate/callback"));
        assert!(!Login::owns("/nymgatex"));
        assert!(!Login::owns("/api/nymgate/x"));
    }
}
