//! The flows' side of the assertion output's sessions (the sessions themselves, the cookie and
//! the signed header, are mint/session.rs): logout, which may continue at the school's IdP, and
//! the login face's doors to the header and to the keys that verify it.

use super::*;

impl Login {
    /// `/nymgate/logout`: ends nymgate's session, then RP-initiated logout at the IdP where it
    /// offers one (OIDC RP-Initiated Logout 1.0 §2), else the logged-out page.
    pub(super) async fn logout(&self, headers: &HeaderMap) -> Response<Body> {
        let tenant = self
            .sessions
            .claims(headers)
            .and_then(|claims| claims.get("tenant")?.as_str().map(str::to_owned));
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
        response.headers_mut().append(header::SET_COOKIE, self.sessions.end());
        response
    }

    /// For a request on its way to the platform: nymgate's cookies removed and, with the
    /// assertion-header output, its signed header added ([`Sessions::assert_request`]). `Err`
    /// is the response to send instead.
    pub fn assert_request(&self, parts: &mut http::request::Parts) -> Result<(), Box<Response<Body>>> {
        self.sessions.assert_request(parts)
    }

    /// The JWKS, for tests and the demo.
    pub fn jwks(&self) -> Value {
        self.minter.jwks()
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}
