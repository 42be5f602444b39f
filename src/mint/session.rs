//! The assertion output's sessions (docs/LOGIN.md): the sealed session cookie a login ends
//! with, and the signed header nymgate puts on every request to the platform while the browser
//! has one. The cookie holds the pseudonymous claims and nothing else, sealed (seal.rs), so any
//! replica reads it and no server keeps a session.
//!
//! [`Sessions`] knows nothing of a login flow: the flows hand it a finished pseudonymous login,
//! and logout (which may send the browser on to the school's IdP) is theirs (login/session.rs).

use std::sync::Arc;

use http::header::{HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Minter, TokenRequest};
use crate::body::{self, Body};
use crate::clock::unix_now;
use crate::config::PREFIX;
use crate::pseudonym::PseudonymousLogin;
use crate::seal::Sealer;
use crate::web::{clear_cookie, cookie_value, redirect, set_cookie, strip_own_cookies};

const SESSION_COOKIE: &str = "__Host-nymgate-session";

/// What a session cookie holds: the pseudonymous claims and nothing else.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// The pseudonymous claims the signed header carries; nothing personal.
    pub claims: Map<String, Value>,
    /// Names (never values) of what the IdP sent and the platform does not get.
    #[serde(default)]
    pub removed: Vec<String>,
}

/// `[login.assertion]`, compiled.
pub struct AssertionSettings {
    /// The request header the platform reads the signed assertion from.
    pub header: http::HeaderName,
    /// The assertion's `aud`: the platform.
    pub audience: String,
    /// How long one assertion is valid, in seconds (each request gets a fresh one).
    pub lifetime_secs: u64,
    /// Whether a browser without a session is sent to the login instead of the platform.
    pub require_login: bool,
}

/// The browser sessions of the assertion output, and the header minted from them.
pub struct Sessions {
    /// Seals and opens the session cookie (its own purpose, so no other sealed value passes).
    sealer: Arc<Sealer>,
    /// Signs the assertion header; shared with the provider, and published at `/jwks`.
    minter: Arc<Minter>,
    /// How long a session lasts, in seconds (`login.session_lifetime`): cookie and seal alike.
    lifetime_secs: u64,
    /// Whether the platform takes the assertion header (`login.output = "assertion_header"`);
    /// in the other outputs only nymgate's cookies are removed from its requests.
    header_output: bool,
    /// What the header is called and what it says.
    assertion: AssertionSettings,
}

impl Sessions {
    pub fn new(
        sealer: Arc<Sealer>,
        minter: Arc<Minter>,
        lifetime_secs: u64,
        header_output: bool,
        assertion: AssertionSettings,
    ) -> Self {
        Self { sealer, minter, lifetime_secs, header_output, assertion }
    }

    /// The `Set-Cookie` that starts a session for a login that passed every check.
    pub fn start(&self, login: &PseudonymousLogin, now: u64) -> HeaderValue {
        let session = Session { claims: login.claims(), removed: login.removed.clone() };
        let sealed = self.sealer.seal(
            "session",
            &serde_json::to_vec(&session).expect("JSON"),
            now + self.lifetime_secs,
        );
        set_cookie(SESSION_COOKIE, &sealed, self.lifetime_secs)
    }

    /// The `Set-Cookie` that ends this browser's session.
    pub fn end(&self) -> HeaderValue {
        clear_cookie(SESSION_COOKIE)
    }

    /// The pseudonymous claims of this browser's session, if it has a valid one.
    pub fn claims(&self, headers: &HeaderMap) -> Option<Map<String, Value>> {
        self.read(headers).map(|s| s.claims)
    }

    /// This browser's session, if it has a valid one.
    pub fn read(&self, headers: &HeaderMap) -> Option<Session> {
        let sealed = cookie_value(headers, SESSION_COOKIE)?;
        let plain = self.sealer.open("session", sealed, unix_now()).ok()?;
        serde_json::from_slice::<Session>(&plain).ok()
    }

    /// For a request on its way to the platform: removes nymgate's own cookies; with the
    /// assertion-header output (the client's copy of the header is already gone, sanitize.rs)
    /// it adds nymgate's, signed, when the browser has a session. `Err` is the response to send instead
    /// (a redirect to the login when `require_login` is set).
    pub fn assert_request(&self, parts: &mut http::request::Parts) -> Result<(), Box<Response<Body>>> {
        let session = if self.header_output { self.claims(&parts.headers) } else { None };
        // The platform has no use for nymgate's cookies in either output (a browser that
        // started a login keeps its chosen school and flow cookies).
        strip_own_cookies(&mut parts.headers);
        if !self.header_output {
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
}
