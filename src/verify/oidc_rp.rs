//! nymgate as an OIDC relying party of one school's IdP: the authorization code flow with
//! PKCE S256, state and nonce (OIDC Core §3.1, RFC 9700), with openidconnect doing the token
//! request and the ID-token checks it knows (signature, `iss`, `aud`, `exp`, nonce) and this
//! module adding what it leaves out (shared/DEPENDENCIES.md): caching of discovery, the IdP's
//! keys from the JWKS cache its tenants share (key_cache.rs: a refresh schedule and a bounded
//! refetch on an unknown `kid`), RFC 9207 `iss`, `nbf`, `azp`, `iat`, the userinfo `sub`
//! match, required claims, and Entra ID's multi-tenant issuer form.
//!
//! Rooms (issue 30): oidc_discovery.rs reads what the IdP publishes (discovery, its keys) and
//! caches it; id_token.rs checks an ID token alone, for the fuzz target and the benchmark.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreJwsSigningAlgorithm};
use openidconnect::{
    AccessToken, AuthorizationCode, CsrfToken, EndpointNotSet, EndpointSet, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::key_cache::{JwksCache, KeyCaches};
use crate::config::issuer::same_issuer;
use crate::config::{IdpKind, OidcTenantConfig, TenantConfig};
use crate::idp_http::IdpHttp;
use crate::secret::Secret;
use crate::verify::identity::VerifiedIdentity;

#[path = "oidc_discovery.rs"]
mod discovery;
#[path = "id_token.rs"]
mod id_token;
use discovery::Discovered;
use id_token::decode_part;
pub(crate) use id_token::json_fault;
pub use id_token::{check_id_token, verify_id_token, IdTokenRules};

type RpClient = CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Why an OIDC login failed. `reason()` is the code for the audit log and metrics; nothing here
/// carries a claim value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("IdP unreachable or its metadata unusable: {0}")]
    Metadata(String),
    #[error("the IdP's discovery document names another issuer")]
    DiscoveryIssuerMismatch,
    #[error("the authorization response's iss parameter is not this flow's IdP (mix-up)")]
    IssParameterMismatch,
    #[error("the IdP supports RFC 9207 but its response has no iss parameter")]
    IssParameterMissing,
    #[error("token request failed: {0}")]
    TokenRequest(String),
    #[error("the IdP refused the code (invalid_grant): replayed, expired, or redeemed with another browser's PKCE verifier")]
    CodeRefused,
    #[error("the token response has no ID token")]
    NoIdToken,
    #[error("the ID token's kid is not in the IdP's JWKS, even after a refetch")]
    UnknownKid,
    #[error("ID token signature or algorithm refused")]
    BadSignature,
    #[error("ID token issuer is not the IdP's")]
    BadIssuer,
    #[error("ID token audience is not nymgate's client id (or names an untrusted party)")]
    BadAudience,
    #[error("ID token nonce does not match the flow's")]
    BadNonce,
    #[error("ID token expired, not yet valid, or issued at an impossible time")]
    BadTime,
    #[error("ID token is malformed or unsupported")]
    Malformed,
    #[error("claim {0} does not have the value the tenant requires")]
    RequiredClaim(String),
    #[error("userinfo request failed: {0}")]
    Userinfo(String),
    #[error("userinfo sub differs from the ID token's sub")]
    UserinfoSubMismatch,
    #[error("a fresh login was asked for and the ID token's auth_time is older, or absent")]
    NotFresh,
}

impl OidcError {
    pub fn reason(&self) -> &'static str {
        match self {
            OidcError::Metadata(_) => "idp_metadata",
            OidcError::DiscoveryIssuerMismatch => "discovery_issuer_mismatch",
            OidcError::IssParameterMismatch => "iss_parameter_mismatch",
            OidcError::IssParameterMissing => "iss_parameter_missing",
            OidcError::TokenRequest(_) => "token_request_failed",
            OidcError::CodeRefused => "code_refused",
            OidcError::NoIdToken => "no_id_token",
            OidcError::UnknownKid => "unknown_kid",
            OidcError::BadSignature => "bad_signature",
            OidcError::BadIssuer => "bad_issuer",
            OidcError::BadAudience => "bad_audience",
            OidcError::BadNonce => "bad_nonce",
            OidcError::BadTime => "bad_time",
            OidcError::Malformed => "malformed_id_token",
            OidcError::RequiredClaim(_) => "required_claim",
            OidcError::Userinfo(_) => "userinfo_failed",
            OidcError::UserinfoSubMismatch => "userinfo_sub_mismatch",
            OidcError::NotFresh => "auth_not_fresh",
        }
    }

    /// Whether this is an attack signal (a forged or misdirected response), for alerts.
    pub fn is_signature_failure(&self) -> bool {
        matches!(self, OidcError::BadSignature | OidcError::UnknownKid)
    }
}

/// What a pending OIDC login remembers, sealed in the browser's flow cookie.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingOidc {
    /// The issuer this flow went to: the mix-up defence compares every answer with it.
    pub issuer: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// When the login asked the school for a fresh authentication (`prompt=login`, a
    /// platform's ForceAuthn): the ID token's `auth_time` must be this late (unix seconds).
    #[serde(default)]
    pub fresh_since: Option<i64>,
}

/// One tenant's OIDC IdP.
pub struct OidcIdp {
    pub tenant: String,
    kind: IdpKind,
    /// Where discovery starts (`{discovery_url}/.well-known/openid-configuration`).
    discovery_url: String,
    /// Explicit endpoints instead of discovery; the issuer is then `explicit_issuer`.
    endpoints: Option<crate::config::login::OidcEndpoints>,
    explicit_issuer: String,
    /// For Entra ID: the directory id, put into a `{tenantid}` issuer template.
    entra_tid: Option<String>,
    client_id: String,
    client_secret: Secret,
    scopes: Vec<String>,
    algorithms: Vec<CoreJwsSigningAlgorithm>,
    clock_skew: Duration,
    userinfo: bool,
    required_claims: Vec<(String, String)>,
    /// Keys older than this are refetched before a verification.
    jwks_refresh: Duration,
    /// An unknown kid refetches the JWKS unless a fetch of it was tried this recently.
    jwks_refetch_interval: Duration,
    metadata_ttl: Duration,
    redirect_uri: RedirectUrl,
    http: IdpHttp,
    /// The trust the IdP's TLS is checked with: tenants share a key cache only with the same.
    ca_file: Option<PathBuf>,
    key_caches: Arc<KeyCaches>,
    cached: ArcSwapOption<Discovered>,
    /// One discovery at a time; the others wait and reuse its result.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for OidcIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcIdp").field("tenant", &self.tenant).finish_non_exhaustive()
    }
}

fn unix_now() -> i64 {
    crate::clock::unix_now() as i64
}

impl OidcIdp {
    /// `redirect_uri` is nymgate's callback, `{public_url}/nymgate/callback`; `key_caches` is
    /// shared by every tenant of the login face, so tenants of one IdP share its keys.
    pub fn new(
        tenant: &TenantConfig,
        oidc: &OidcTenantConfig,
        redirect_uri: &str,
        key_caches: &Arc<KeyCaches>,
    ) -> Result<Self, (&'static str, String)> {
        let discovery_url = match (&oidc.discovery_url, tenant.idp) {
            (Some(url), _) => url.clone(),
            (None, IdpKind::Entra) => format!("https://login.microsoftonline.com/{}/v2.0", tenant.issuer),
            (None, IdpKind::Google) => "https://accounts.google.com".to_owned(),
            (None, _) => tenant.issuer.clone(),
        };
        let algorithms = oidc
            .algorithms
            .iter()
            .map(|name| {
                serde_json::from_value(Value::from(name.as_str()))
                    .map_err(|_| ("oidc.algorithms", format!("{name:?} is not a JWS algorithm")))
            })
            .collect::<Result<Vec<CoreJwsSigningAlgorithm>, _>>()?;
        let client_secret =
            Secret::load(&oidc.client_secret).map_err(|e| ("oidc.client_secret", e.to_string()))?;
        let http = IdpHttp::new(oidc.ca_file.as_deref()).map_err(|e| ("oidc.ca_file", e.to_string()))?;
        key_caches.register(oidc.ca_file.as_deref(), &algorithms);
        Ok(Self {
            tenant: tenant.id.clone(),
            kind: tenant.idp,
            discovery_url,
            endpoints: oidc.endpoints.clone(),
            explicit_issuer: tenant.issuer.clone(),
            entra_tid: (tenant.idp == IdpKind::Entra).then(|| tenant.issuer.clone()),
            client_id: oidc.client_id.clone(),
            client_secret,
            scopes: oidc.scopes.clone(),
            algorithms,
            clock_skew: oidc.clock_skew,
            userinfo: oidc.userinfo,
            required_claims: oidc.required_claims.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            jwks_refresh: oidc.jwks_refresh,
            jwks_refetch_interval: oidc.jwks_refetch_interval,
            metadata_ttl: oidc.metadata_ttl,
            redirect_uri: RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| ("oidc", e.to_string()))?,
            http,
            ca_file: oidc.ca_file.clone(),
            key_caches: key_caches.clone(),
            cached: ArcSwapOption::empty(),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// Starts a login: the IdP's authorization URL and what the flow cookie must remember.
    /// `state` is chosen by the caller (it also names the flow cookie).
    pub async fn start(
        &self,
        state: &str,
        login_hint: Option<&str>,
        prompt: Option<&str>,
    ) -> Result<(String, PendingOidc), OidcError> {
        let discovered = self.discovered().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = state.to_owned();
        let mut request = discovered
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in self.scopes.iter().filter(|s| s.as_str() != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        if let Some(hint) = login_hint {
            // Passed on to the IdP, which knows the person anyway; nymgate keeps nothing of it.
            request = request.add_extra_param("login_hint", hint.to_owned());
        }
        // Google's authorization endpoint documents `prompt` as none, consent and
        // select_account only: for a Google school ForceAuthn is asked with `max_age=0` alone.
        if let Some(prompt) = prompt.filter(|p| !(self.kind == IdpKind::Google && *p == "login")) {
            // OIDC Core §3.1.2.1: `login` (a platform's ForceAuthn) or `none` (IsPassive).
            request = request.add_extra_param("prompt", prompt.to_owned());
        }
        // A fresh login is checked, not only asked for: `max_age=0` makes `auth_time` a required
        // claim of the ID token (OIDC Core §3.1.2.1, §2), which `finish` compares with now.
        let fresh_since = (prompt == Some("login")).then(unix_now);
        if fresh_since.is_some() {
            request = request.add_extra_param("max_age", "0");
        }
        let (url, _state, nonce) = request.url();
        let pending = PendingOidc {
            issuer: discovered.issuer.clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            fresh_since,
        };
        Ok((url.to_string(), pending))
    }

    /// The IdP's RP-initiated logout endpoint, if it publishes one.
    pub async fn end_session_endpoint(&self) -> Option<String> {
        self.discovered().await.ok().and_then(|d| d.end_session_endpoint.clone())
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Finishes a login: checks the RFC 9207 `iss`, redeems the code with the PKCE verifier,
    /// verifies the ID token, and returns the verified identity of its claims (merged with
    /// userinfo when configured), under the issuer the flow went to: the verifier builds it,
    /// not the flow (issue 30, "a verifier is the only door").
    pub async fn finish(
        &self,
        pending: &PendingOidc,
        code: &str,
        iss_parameter: Option<&str>,
    ) -> Result<VerifiedIdentity, OidcError> {
        let claims = self.finish_claims(pending, code, iss_parameter).await?;
        Ok(VerifiedIdentity::from_oidc(&pending.issuer, &claims))
    }

    /// [`OidcIdp::finish`] up to the verified claims.
    async fn finish_claims(
        &self,
        pending: &PendingOidc,
        code: &str,
        iss_parameter: Option<&str>,
    ) -> Result<Map<String, Value>, OidcError> {
        let discovered = self.discovered().await?;
        // Mix-up defence (RFC 9207 §2.4): the answer must come from the IdP this flow went to.
        // The flow remembers the issuer as advertised when it started; the IdP may have
        // re-spelled it since (a trailing slash), so the flow's IdP is compared by canonical
        // form (config/issuer.rs). The `iss` parameter itself is compared byte for byte with
        // the issuer the IdP advertises now (RFC 9207 §2.4: simple string comparison).
        if !same_issuer(&pending.issuer, &discovered.issuer) {
            return Err(OidcError::IssParameterMismatch);
        }
        match iss_parameter {
            Some(iss) if iss != discovered.issuer => return Err(OidcError::IssParameterMismatch),
            None if discovered.iss_parameter_supported => return Err(OidcError::IssParameterMissing),
            _ => {}
        }

        let response = discovered
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| match &e {
                // A well-formed token response whose ID token did not parse (an unknown alg, a
                // missing sub): a bad token, not a failed request. The body is never logged.
                openidconnect::RequestTokenError::Parse(_, body)
                    if serde_json::from_slice::<Value>(body).is_ok_and(|v| v["id_token"].is_string()) =>
                {
                    OidcError::Malformed
                }
                // RFC 6749 §5.2: the code (or its PKCE verifier, RFC 7636 §4.6) is not valid
                // for this client: replayed, expired, or swapped in from another browser's
                // flow. The person's browser brought it, so it is a refusal (4xx, counted
                // toward blocking), not an outage. Every other error code (invalid_client,
                // unauthorized_client, ...) is nymgate's own registration: 502.
                openidconnect::RequestTokenError::ServerResponse(response)
                    if oauth_error_code(response).as_deref() == Some("invalid_grant") =>
                {
                    OidcError::CodeRefused
                }
                _ => OidcError::TokenRequest(token_error(&e)),
            })?;
        let id_token = response.id_token().ok_or(OidcError::NoIdToken)?;
        let claims = self.verify_id_token(discovered, id_token, &pending.nonce).await?;
        // From the ID token only: userinfo's claims are not signed (OIDC Core §3.1.3.7 step 13).
        if let Some(since) = pending.fresh_since {
            let auth_time = claims.get("auth_time").and_then(Value::as_i64);
            if auth_time.is_none_or(|at| at + (self.clock_skew.as_secs() as i64) < since) {
                return Err(OidcError::NotFresh);
            }
        }
        let claims = match (self.userinfo, &claims) {
            (true, _) => self.merge_userinfo(claims, response.access_token()).await?,
            (false, _) => claims,
        };
        for (name, value) in &self.required_claims {
            if claims.get(name).and_then(Value::as_str) != Some(value.as_str()) {
                return Err(OidcError::RequiredClaim(name.clone()));
            }
        }
        if self.kind == IdpKind::Entra {
            // The issuer check already pins the directory; this says so explicitly.
            if claims.get("tid").and_then(Value::as_str) != self.entra_tid.as_deref() {
                return Err(OidcError::RequiredClaim("tid".into()));
            }
        }
        Ok(claims)
    }

    async fn verify_id_token(
        &self,
        discovered: Arc<Discovered>,
        id_token: &CoreIdToken,
        nonce: &str,
    ) -> Result<Map<String, Value>, OidcError> {
        let compact = id_token.to_string();
        let header = decode_part(&compact, 0)?;
        // Keys no older than jwks_refresh: a key the IdP removed stops verifying on schedule.
        let mut keys = self.keys(&discovered.jwks).await?;
        // jku, x5u and an embedded jwk are never fetched or used: keys come only from the
        // IdP's JWKS (shared/SECURITY.md). The kid only selects among those; an unknown one
        // may be the IdP's new key (OIDC Core §10.1.1), fetched at once within the bound.
        if let Some(kid) = header.get("kid").and_then(Value::as_str) {
            if !keys.keys.has_kid(kid, &self.algorithms) {
                keys = match discovered.jwks.with_kid(kid, &self.algorithms, self.jwks_refetch_interval).await
                {
                    Some(fresh) if fresh.keys.has_kid(kid, &self.algorithms) => fresh,
                    _ => return Err(OidcError::UnknownKid),
                };
            }
        }

        let rules = IdTokenRules {
            client_id: &self.client_id,
            issuer: &discovered.issuer,
            algorithms: &self.algorithms,
            clock_skew: self.clock_skew,
        };
        check_id_token(&rules, &keys.keys, id_token, nonce, unix_now())
    }

    /// Userinfo claims join the ID token's; the ID token's win, and `sub` must match (OIDC
    /// Core §5.3.2: otherwise the response may belong to someone else).
    async fn merge_userinfo(
        &self,
        mut claims: Map<String, Value>,
        access_token: &AccessToken,
    ) -> Result<Map<String, Value>, OidcError> {
        let discovered = self.discovered().await?;
        let Some(url) = &discovered.userinfo_endpoint else {
            return Err(OidcError::Userinfo("the IdP publishes no userinfo_endpoint".into()));
        };
        let request = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::AUTHORIZATION, format!("Bearer {}", access_token.secret()))
            .body(Vec::new())
            .map_err(|e| OidcError::Userinfo(e.to_string()))?;
        let response = self.http.execute(request).await.map_err(|e| OidcError::Userinfo(e.to_string()))?;
        if !response.status().is_success() {
            return Err(OidcError::Userinfo(format!("answered {}", response.status())));
        }
        let userinfo: Map<String, Value> = serde_json::from_slice(response.body()).map_err(|_| {
            OidcError::Userinfo("not a JSON object (signed userinfo is not supported)".into())
        })?;
        if userinfo.get("sub") != claims.get("sub") {
            return Err(OidcError::UserinfoSubMismatch);
        }
        for (name, value) in userinfo {
            claims.entry(name).or_insert(value);
        }
        Ok(claims)
    }
}

/// The standard error code (RFC 6749 §5.2) of a token-endpoint error response, as the IdP sent it:
/// for comparison only, never for a log.
fn oauth_error_code<T: openidconnect::ErrorResponse + 'static>(response: &T) -> Option<String> {
    let value = serde_json::to_value(response).ok()?;
    value.get("error").and_then(Value::as_str).map(str::to_owned)
}

/// A token-endpoint failure, described without the response body (it may hold an ID token).
fn token_error<RE: std::error::Error + 'static, T: openidconnect::ErrorResponse + 'static>(
    error: &openidconnect::RequestTokenError<RE, T>,
) -> String {
    match error {
        openidconnect::RequestTokenError::ServerResponse(response) => {
            // The standard error code only (RFC 6749 §5.2), e.g. invalid_grant for a replayed
            // code, and only as nymgate's own spelling of it: the IdP chose these bytes, and
            // an IdP that puts the user's email in `error` must not write it into the log.
            let code = serde_json::to_value(response)
                .ok()
                .and_then(|v| {
                    v.get("error").and_then(Value::as_str).map(crate::verify::vocabulary::oauth_error)
                })
                .unwrap_or(crate::verify::vocabulary::OTHER);
            format!("error response: {code}")
        }
        openidconnect::RequestTokenError::Request(e) => e.to_string(),
        // Not the JSON path of the failure: its keys are the IdP's.
        openidconnect::RequestTokenError::Parse(..) => "unparsable token response".into(),
        openidconnect::RequestTokenError::Other(_) => "unexpected token response".into(),
    }
}

#[cfg(test)]
#[path = "oidc_rp_tests.rs"]
mod tests;
