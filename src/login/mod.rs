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
//!
//! The rooms, in the order a login passes them:
//! - `mod.rs`: the path table ([`Login::handle`]), the types a flow carries, the chooser;
//! - `build.rs`: everything `Login` holds, built from the config (start and reload);
//! - `oidc_flow.rs`: the start at the school's IdP and the OIDC callback;
//! - `saml_flow.rs`: a school's SAML Response at the ACS or at an intercepted platform ACS, one
//!   sequence for both;
//! - `provider.rs`: the platform's OIDC authorization request, once mint's provider checked it;
//! - `sso.rs`, `saml_out.rs`: the flows around nymgate's SAML IdP face toward a platform;
//! - `outcome.rs`: the steps every verified login shares (pseudonymize, deliver) and how an
//!   attempt ends (`finish`, `failed`); `commit.rs`: audit line, record, response, in that order;
//! - `session.rs`: logout, and the doors to the assertion output's sessions and header;
//! - `web.rs`, `pages.rs`: return paths, forms and pages; `errors.rs`: reason codes and blocking;
//! - `offboarding.rs`, `retention_api.rs`: when a school has ended, and the DPO's API.
//!
//! The verifiers live on the floor below, in `src/verify/`: they are the only code that can build
//! a verified identity; the flows hand it to the pseudonymizer and nothing else.
//!
//! What the platform receives is made beside the flows, in `src/mint/` (its `mod.rs` maps its
//! rooms): the token signer, the OIDC provider face ([`Provider`]), the SAML IdP face and the
//! sessions with their signed header ([`Sessions`]). `Login` holds each as a field and calls
//! into it; mint names nothing of login. Responses, cookies and escaping both use are in
//! `src/web.rs`.

pub mod admin_refusals;
pub mod blocking;
mod commit;
mod offboarding;
pub use offboarding::announce_replica;
mod build;
mod errors;
mod flow_identity;
mod observe;
mod oidc_flow;
mod outcome;
pub mod pages;
mod provider;
pub mod retention_api;
mod saml_flow;
mod saml_out;
#[cfg(test)]
mod saml_platform_tests;
pub mod saml_sp;
mod saml_tenant;
mod session;
mod sso;
mod tenant_choice;
use errors::*;
mod web;
use crate::web::{clear_cookie, cookie_value, flow_cookie, json_response, redirect, set_cookie, SameSite};
use web::*;
pub use web::{form, safe_return_to};

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
use serde_json::Value;

use crate::alert::{AlertKind, Alerts};
use crate::audit::{AuditEvent, AuditSink};
use crate::body::{self, Body};
use crate::client_ip::ReducedIp;
use crate::clock::unix_now;
use crate::config::{Config, LoginOutput};
use crate::metrics::Metrics;
use crate::metrics_login::Step;
use crate::mint::provider::{oauth_error, Provider};
use crate::mint::saml_idp::{self, MAX_RELAY_STATE};
use crate::mint::session::{AssertionSettings, Sessions};
use crate::mint::{Algorithm, Minter, SigningKey};
use crate::pseudonym::keyring::Keyring;
use crate::pseudonym::{PseudonymError, Pseudonymizer, PseudonymousLogin, Sector};
use crate::seal::Sealer;
use crate::secret::Secret;
use crate::store::{Space, Store, StoreError};
use crate::target::SAML_MESSAGES;
use crate::verify::identity::VerifiedIdentity;
use crate::verify::oidc_rp::{OidcError, OidcIdp, PendingOidc};
use crate::verify::saml_acs;
use commit::{Decided, PendingRecord, ProbeGate};
use observe::StepClock;
use tenant_choice::{ChoiceError, TenantChoice};

/// Every nymgate endpoint starts with this (the config refuses paths under it, so it lives there).
pub use crate::config::PREFIX;
const FLOW_COOKIE_PREFIX: &str = "__Host-nymgate-flow-";
/// The chooser's memory of the last school chosen: a tenant id, nothing else.
const SCHOOL_COOKIE: &str = "__Host-nymgate-school";
const SCHOOL_COOKIE_LIFETIME: u64 = 365 * 24 * 3600;
/// Live entries at most in each kind of the memory store; past it logins get 503 (src/store).
const STORE_CAPACITY: usize = 1_000_000;

/// What happens once the school's IdP has answered.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Next {
    /// Provider output: answer the platform's authorization request with a code.
    Platform(crate::mint::provider::AuthorizeRequest),
    /// Assertion output: a session cookie, then back to where the browser was going.
    Session { return_to: String },
    /// SAML output: a signed Response posted to the platform's ACS (saml_idp.rs).
    SamlSp(saml_idp::SpRequest),
}

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

/// One tenant as the login face knows it.
struct Tenant {
    id: String,
    name: String,
}

/// The login face, shared by every worker (its stores must be one per process).
pub struct Login {
    /// `{public_url}/nymgate`: the issuer of nymgate's tokens.
    issuer: String,
    /// Where a finished login goes: the provider's code, or the assertion header's session.
    output: LoginOutput,
    /// Seals flow cookies and checked platform requests; shared with the provider and sessions.
    sealer: Arc<Sealer>,
    /// The only place a verified identity becomes an account number (pseudonym/).
    pseudonymizer: Pseudonymizer,
    /// nymgate's token signer, whose keys `/jwks` publishes; the provider and sessions sign with it.
    minter: Arc<Minter>,
    /// The schools the chooser lists, by display name.
    tenants: Vec<Tenant>,
    /// Each OIDC tenant's relying party (verify/oidc_rp.rs), by tenant id.
    oidc: HashMap<String, OidcIdp>,
    /// Which tenant an email domain typed in the chooser belongs to (lowercase).
    email_domains: HashMap<String, String>,
    /// Single-use claims (states, codes, SAML assertions) and, with Redis, failure counts.
    store: Arc<Store>,
    /// What `store` was built from, to know on reload whether it can be kept.
    store_config: crate::config::StoreConfig,
    /// nymgate as the platform's OIDC provider (mint/provider.rs): its clients, codes, tokens.
    provider: Provider,
    /// `login.flow_lifetime`, in seconds: how long a started login may take.
    flow_lifetime: u64,
    /// The assertion output's sessions and signed header (mint/session.rs).
    sessions: Sessions,
    /// nymgate's SAML SP, when `[login.saml]` is configured.
    saml_sp: Option<saml_sp::SamlSp>,
    /// nymgate as the platform's SAML IdP, when `[login.saml_idp]` is configured.
    saml_idp: Option<saml_idp::SamlIdp>,
    /// The retention store and each retaining tenant's rules (docs/RETENTION.md).
    retention: Option<Arc<crate::retention::RetentionStore>>,
    /// Each retaining tenant's rules: the roles and attributes it keeps.
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
    /// Each tenant's branding merged over the deployment's, for its pages.
    tenant_branding: HashMap<String, crate::config::BrandingConfig>,
    /// Raised on signature failures, replays, guard trips and blocked clients.
    alerts: Arc<Alerts>,
    /// The login counters and step histograms (metrics_login.rs).
    metrics: Arc<Metrics>,
}

/// How long the start and a reload wait for the OIDC IdPs' discovery documents.
const ISSUER_CHECK_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Largest ACS form accepted, checked before anything is parsed: the base64 of
/// `saml_acs::MAX_RESPONSE_BYTES` plus RelayState and encoding.
const ACS_FORM_LIMIT: usize = 192 * 1024;

/// What a login request carries besides the request itself.
pub struct LoginContext<'a> {
    /// The reduced client IP: the only form of it a login's log and audit lines carry.
    pub client: &'a ReducedIp,
    /// The client for failed-attempt blocking (`None`: allowlisted or blocking off).
    pub client_key: Option<blocking::ClientKey>,
    /// The request's reference, on its audit line and error page.
    pub request_id: &'a str,
    /// `limits.max_body_bytes`: the largest form a login reads.
    pub max_body_bytes: usize,
    /// `limits.body_read_timeout`: how long a login waits for a form.
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
        crate::config::owns_path(path)
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
                let session = self.sessions.read(&parts.headers);
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
            (&Method::GET, "/.well-known/openid-configuration") if provider => self.provider.discovery(),
            (&Method::GET, "/authorize") if provider => self.authorize(query, &parts.headers, ctx).await,
            (&Method::POST, "/token") if provider => match read_form(incoming, ctx).await {
                Ok(body) => self.provider.token(&parts.headers, &body, &self.store, &self.metrics).await,
                Err(status) => oauth_error(status, "invalid_request", "unreadable request body"),
            },
            (&Method::GET, "/userinfo") if provider => self.provider.userinfo(&parts.headers),
            (&Method::POST, "/userinfo") if provider => self.provider.userinfo(&parts.headers),
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

    /// The shared store, for `/readyz` and its probe.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
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
