//! nymgate as the platform's OIDC provider (OIDC Core §3.1, RFC 6749 §4.1, RFC 7636, RFC 9207):
//! discovery, the authorization request's checks, token, userinfo. Codes are single-use,
//! short-lived, bound to client, redirect URI and PKCE challenge; access tokens are sealed values
//! that only carry the pseudonymous claims, so `/userinfo` needs no store and any replica
//! answers it.
//!
//! [`Provider`] holds what this face needs and nothing of a login flow: which school, the
//! chooser and the login at the school are the flows' (login/provider.rs), which hand it the
//! platform's request to check and, after the login, the pseudonymous login to issue a code for.

use std::collections::HashMap;
use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::{Minter, TokenRequest};
use crate::body::Body;
use crate::clock::unix_now;
use crate::metrics::Metrics;
use crate::pseudonym::PseudonymousLogin;
use crate::seal::Sealer;
use crate::secret::Secret;
use crate::store::{Space, Store};
use crate::web::{json_response, redirect};

/// A registered platform client.
pub struct PlatformClient {
    /// Its `client_id` (`login.clients.client_id`).
    pub id: String,
    /// Its client secret, compared in constant time (RFC 6749 §2.3.1).
    pub secret: Secret,
    /// The only redirect URIs it may use, compared exactly (RFC 9700 §4.1.3).
    pub redirect_uris: Vec<String>,
    /// Its pseudonym sector (`login.clients.sector`): `None` is the primary one.
    pub sector: Option<String>,
}

impl AuthorizeRequest {
    /// The platform client that asked, whose sector the login's number is made for.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
}

/// The platform's authorization request, carried through the school login in the flow cookie.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizeRequest {
    /// The platform client that asked.
    client_id: String,
    /// Where the code goes: one of the client's registered URIs, checked.
    redirect_uri: String,
    /// The platform's state, returned as it came (RFC 6749 §4.1.2).
    state: Option<String>,
    /// The platform's nonce, put in its ID token (OIDC Core §3.1.2.1).
    nonce: Option<String>,
    /// The PKCE S256 challenge the code's verifier must meet (RFC 7636).
    code_challenge: String,
}

/// What an authorization code stands for. The code is this, sealed (encrypted and
/// authenticated under the seal secret, with its expiry): any replica can redeem it, and its
/// single use is a claim in the store (store.rs), shared when the store is Redis. Nothing of it
/// is written anywhere but in the code the platform holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuedCode {
    /// Only this client may redeem it.
    client_id: String,
    /// And only with the redirect URI it was issued for (RFC 6749 §4.1.3).
    redirect_uri: String,
    /// The PKCE challenge the token request's verifier must meet.
    code_challenge: String,
    /// The platform's nonce, for the ID token.
    nonce: Option<String>,
    /// What the platform learns: the pseudonymous login, nothing else.
    login: PseudonymousLogin,
}

/// The access token's sealed content.
#[derive(Serialize, Deserialize)]
struct AccessToken {
    aud: String,
    claims: Map<String, Value>,
}

/// `Authorization: Basic …` as OAuth clients send it: base64 of `id:secret`, each part
/// form-urlencoded first (RFC 6749 §2.3.1).
pub fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| -> String {
        openidconnect::url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

/// The S256 code challenge of a PKCE verifier (RFC 7636 §4.2): BASE64URL(SHA256(verifier)).
pub fn pkce_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()))
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
fn is_pkce_verifier(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An OAuth error response (RFC 6749 §5.2).
pub fn oauth_error(status: StatusCode, error: &'static str, description: &'static str) -> Response<Body> {
    let mut response =
        json_response(status, &json!({"error": error, "error_description": description}), "no-store");
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"nymgate\""));
    }
    response
}

fn with_params(uri: &str, params: &[(&str, &str)]) -> String {
    let mut query = openidconnect::url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        query.append_pair(name, value);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", query.finish())
}

/// Why an authorization request is not taken on (RFC 6749 §4.1.2.1).
pub enum AuthorizeRefusal {
    /// The client or its redirect URI is not registered: an error page, never a redirect; the
    /// reason code for the page, the audit and the metrics.
    Page(&'static str),
    /// Any other error: the answer that takes it back to the platform's redirect URI.
    Redirect(Box<Response<Body>>),
}

/// nymgate's OIDC provider face toward the platform (`login.output = "provider"`).
pub struct Provider {
    /// `{public_url}/nymgate`: named in discovery and as `iss` in every answer (RFC 9207).
    issuer: String,
    /// The registered platform clients (`[[login.clients]]`), by client id.
    clients: HashMap<String, PlatformClient>,
    /// Signs the ID tokens; shared with the sessions, and published at `/jwks`.
    minter: Arc<Minter>,
    /// Seals codes and access tokens, so that any replica redeems and answers them.
    sealer: Arc<Sealer>,
    /// How long a code waits for `/token`, in seconds (`login.code_lifetime`).
    code_lifetime: u64,
    /// How long ID and access tokens are valid, in seconds (`login.token_lifetime`).
    token_lifetime: u64,
}

impl Provider {
    pub fn new(
        issuer: &str,
        clients: HashMap<String, PlatformClient>,
        minter: Arc<Minter>,
        sealer: Arc<Sealer>,
        code_lifetime: u64,
        token_lifetime: u64,
    ) -> Self {
        Self { issuer: issuer.to_owned(), clients, minter, sealer, code_lifetime, token_lifetime }
    }

    /// A registered platform client.
    pub fn client(&self, id: &str) -> Option<&PlatformClient> {
        self.clients.get(id)
    }

    /// `/nymgate/.well-known/openid-configuration` (OIDC Discovery §3).
    pub fn discovery(&self) -> Response<Body> {
        let issuer = &self.issuer;
        let document = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "userinfo_endpoint": format!("{issuer}/userinfo"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            // One account number per person per pseudonym scope.
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": [self.minter.algorithm()],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid"],
            "claims_supported": ["sub", "tenant", "role", "school", "municipality", "nym_ver", "sub_prev", "nym_src"],
            "authorization_response_iss_parameter_supported": true,
        });
        json_response(StatusCode::OK, &document, "public, max-age=300")
    }

    /// `/nymgate/authorize`'s parameters checked: the platform's request to carry through the
    /// school login. An unknown client or unregistered redirect URI gets an error page, never a
    /// redirect (RFC 6749 §4.1.2.1); other errors go back to the platform.
    pub fn authorize_request(
        &self,
        params: &HashMap<String, String>,
    ) -> Result<AuthorizeRequest, AuthorizeRefusal> {
        let get = |name: &str| params.get(name).map(String::as_str);
        let Some(client) = get("client_id").and_then(|id| self.clients.get(id)) else {
            return Err(AuthorizeRefusal::Page("unknown_client"));
        };
        let Some(redirect_uri) =
            get("redirect_uri").filter(|uri| client.redirect_uris.iter().any(|r| r == uri))
        else {
            return Err(AuthorizeRefusal::Page("unregistered_redirect_uri"));
        };
        let state = get("state");
        let back = |error: &str, description: &str| {
            let mut list = vec![("error", error), ("error_description", description)];
            if let Some(state) = state {
                list.push(("state", state));
            }
            list.push(("iss", &self.issuer));
            Err(AuthorizeRefusal::Redirect(Box::new(redirect(&with_params(redirect_uri, &list)))))
        };
        if get("response_type") != Some("code") {
            return back("unsupported_response_type", "only response_type=code");
        }
        if !get("scope").is_some_and(|s| s.split(' ').any(|s| s == "openid")) {
            return back("invalid_scope", "scope must include openid");
        }
        // PKCE S256 always (RFC 9700 §2.1.1); plain is refused.
        let challenge = match (get("code_challenge"), get("code_challenge_method")) {
            (Some(c), Some("S256")) if c.len() == 43 && URL_SAFE_NO_PAD.decode(c).is_ok() => c,
            _ => return back("invalid_request", "PKCE with code_challenge_method=S256 is required"),
        };
        Ok(AuthorizeRequest {
            client_id: client.id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            state: state.map(str::to_owned),
            nonce: get("nonce").map(str::to_owned),
            code_challenge: challenge.to_owned(),
        })
    }

    /// After the school login: a fresh code, stored until `/token`, and back to the platform.
    pub fn issue_code(
        &self,
        request: &AuthorizeRequest,
        login: &PseudonymousLogin,
        now: u64,
    ) -> Response<Body> {
        let issued = IssuedCode {
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            nonce: request.nonce.clone(),
            login: login.clone(),
        };
        let code =
            self.sealer.seal("code", &serde_json::to_vec(&issued).expect("JSON"), now + self.code_lifetime);
        let mut params = vec![("code", code.as_str())];
        if let Some(state) = &request.state {
            params.push(("state", state));
        }
        params.push(("iss", &self.issuer));
        redirect(&with_params(&request.redirect_uri, &params))
    }

    /// The client's credentials: HTTP Basic (with form-urlencoded parts, RFC 6749 §2.3.1) or
    /// the body, never both (§2.3).
    fn authenticate_client(
        &self,
        headers: &HeaderMap,
        body: &HashMap<String, String>,
    ) -> Result<&PlatformClient, Box<Response<Body>>> {
        let basic =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(basic_credentials);
        let posted = body
            .get("client_secret")
            .map(|s| (body.get("client_id").cloned().unwrap_or_default(), s.clone()));
        let (id, secret) = match (basic, posted) {
            (Some(_), Some(_)) => {
                return Err(Box::new(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "use one client authentication method",
                )))
            }
            (Some(pair), None) | (None, Some(pair)) => pair,
            (None, None) => {
                return Err(Box::new(oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "client authentication required",
                )))
            }
        };
        match self.clients.get(&id) {
            Some(client) if client.secret.ct_eq(secret.as_bytes()) => Ok(client),
            _ => Err(Box::new(oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            ))),
        }
    }

    /// `/nymgate/token`: redeems a code once (RFC 6749 §4.1.3, RFC 7636 §4.6). Its single use
    /// is a claim in the login face's shared `store`; refusals are counted in `metrics`.
    pub async fn token(
        &self,
        headers: &HeaderMap,
        body: &HashMap<String, String>,
        store: &Store,
        metrics: &Metrics,
    ) -> Response<Body> {
        let client = match self.authenticate_client(headers, body) {
            Ok(client) => client,
            Err(response) => return *response,
        };
        if body.get("grant_type").map(String::as_str) != Some("authorization_code") {
            return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only authorization_code");
        }
        let now = unix_now();
        let invalid_grant = |why: &'static str| {
            tracing::info!(reason = why, "authorization code refused");
            metrics.rejected("token_invalid_grant");
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "the code is invalid, expired, used, or not yours",
            )
        };
        let code = body.get("code").map(String::as_str).unwrap_or("");
        let Some(issued) = self
            .sealer
            .open("code", code, now)
            .ok()
            .and_then(|plain| serde_json::from_slice::<IssuedCode>(&plain).ok())
        else {
            return invalid_grant("unknown_or_used_code");
        };
        // Spent before any other check: a code that fails a check is spent all the same.
        // Claimed until its sealed expiry, after which opening it fails anyway.
        match store.claim(Space::Code, code, now + self.code_lifetime, now).await {
            Ok(true) => {}
            Ok(false) => return invalid_grant("unknown_or_used_code"),
            Err(error) => {
                tracing::warn!(%error, "authorization code not redeemed: the store did not answer");
                metrics.rejected("token_store_unavailable");
                return oauth_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "try again shortly",
                );
            }
        }
        if issued.client_id != client.id {
            return invalid_grant("other_client");
        }
        if body.get("redirect_uri") != Some(&issued.redirect_uri) {
            return invalid_grant("redirect_uri_mismatch");
        }
        let verifier = body.get("code_verifier").map(String::as_str).unwrap_or("");
        let computed = pkce_s256(verifier);
        if !is_pkce_verifier(verifier)
            || !Secret::new(computed.into_bytes()).ct_eq(issued.code_challenge.as_bytes())
        {
            return invalid_grant("pkce_mismatch");
        }

        let request = TokenRequest {
            audience: &client.id,
            nonce: issued.nonce.as_deref(),
            now,
            lifetime_secs: self.token_lifetime,
        };
        let id_token = self.minter.mint(&issued.login, &request);
        let access = AccessToken { aud: client.id.clone(), claims: issued.login.claims() };
        let access_token = self.sealer.seal(
            "access",
            &serde_json::to_vec(&access).expect("JSON"),
            now + self.token_lifetime,
        );
        let mut response = json_response(
            StatusCode::OK,
            &json!({
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "id_token": id_token,
                "scope": "openid",
            }),
            "no-store",
        );
        response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        response
    }

    /// `/nymgate/userinfo` (OIDC Core §5.3): the same pseudonymous claims as the ID token.
    pub fn userinfo(&self, headers: &HeaderMap) -> Response<Body> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let access = token
            .and_then(|t| self.sealer.open("access", t, unix_now()).ok())
            .and_then(|plain| serde_json::from_slice::<AccessToken>(&plain).ok());
        match access {
            Some(access) => json_response(StatusCode::OK, &Value::Object(access.claims), "no-store"),
            None => {
                let mut response =
                    json_response(StatusCode::UNAUTHORIZED, &json!({"error": "invalid_token"}), "no-store");
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"nymgate\", error=\"invalid_token\""),
                );
                response
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        // RFC 6749 §2.3.1: "a:b" as the id must arrive as a%3Ab.
        let value = format!("Basic {}", STANDARD.encode("a%3Ab:s%2Bcret"));
        assert_eq!(basic_credentials(&value), Some(("a:b".into(), "s+cret".into())));
        assert_eq!(basic_credentials("Bearer x"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
    }

    #[test]
    fn pkce_verifier_shape() {
        assert!(is_pkce_verifier(&"a".repeat(43)));
        assert!(!is_pkce_verifier(&"a".repeat(42)));
        assert!(!is_pkce_verifier(&"a".repeat(129)));
        assert!(!is_pkce_verifier(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn redirect_parameters_are_encoded_and_appended() {
        assert_eq!(
            with_params("https://p.example/cb", &[("code", "a b"), ("state", "&x")]),
            "https://p.example/cb?code=a+b&state=%26x"
        );
        assert_eq!(
            with_params("https://p.example/cb?k=1", &[("code", "c")]),
            "https://p.example/cb?k=1&code=c"
        );
    }
}
