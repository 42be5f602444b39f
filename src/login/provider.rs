//! The flows' side of nymgate's OIDC provider face (the face itself is mint/provider.rs): the
//! platform's authorization request, once the provider has checked it, starts a login at the
//! school it names, or the chooser when it names none.

use super::*;
use crate::mint::provider::AuthorizeRefusal;

impl Login {
    /// `/nymgate/authorize`. An unknown client or unregistered redirect URI gets an error page,
    /// never a redirect (RFC 6749 §4.1.2.1); other errors go back to the platform.
    pub(super) async fn authorize(
        &self,
        query: &str,
        headers: &HeaderMap,
        ctx: &LoginContext<'_>,
    ) -> Response<Body> {
        let params = form(query);
        let request = match self.provider.authorize_request(&params) {
            Ok(request) => request,
            Err(AuthorizeRefusal::Page(reason)) => {
                return self.failed(None, FlowError::BadRequest(reason), ctx, None).await
            }
            Err(AuthorizeRefusal::Redirect(back)) => return *back,
        };
        let get = |name: &str| params.get(name).map(String::as_str);
        // Which school: `tenant` (nymgate's parameter), a login_hint domain, or the chooser.
        let hint = get("login_hint");
        let tenant =
            get("tenant").map(str::to_owned).or_else(|| self.tenant_for_hint(params.get("login_hint")));
        match tenant {
            Some(tenant) => self.start_or_fail(&tenant, hint, Next::Platform(request), ctx).await,
            None => {
                // The platform's authorization request rides along: in each school's link, and
                // in the search form.
                let hidden: Vec<(String, String)> =
                    openidconnect::url::form_urlencoded::parse(query.as_bytes())
                        .filter(|(k, _)| k != "q")
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect();
                let href = |id: &str| {
                    let request: String = openidconnect::url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(hidden.iter())
                        .append_pair("tenant", id)
                        .finish();
                    format!("{PREFIX}/authorize?{request}")
                };
                self.chooser(headers, ctx, &href, &hidden, &params)
            }
        }
    }
}
