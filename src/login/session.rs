//! The assertion output's session (docs/LOGIN.md): the sealed session cookie, logout, the signed
//! header nymgate puts on every request to the platform, and the keys that verify it.

use super::*;

impl Login {
    /// `/nymgate/logout`: ends nymgate's session, then RP-initiated logout at the IdP where it
    /// offers one (OIDC RP-Initiated Logout 1.0 §2), else the logged-out page.
    pub(super) async fn logout(&self, headers: &HeaderMap) -> Response<Body> {
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
    pub(super) fn session(&self, headers: &HeaderMap) -> Option<Map<String, Value>> {
        self.session_with_removed(headers).map(|s| s.claims)
    }

    pub(super) fn session_with_removed(&self, headers: &HeaderMap) -> Option<Session> {
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
