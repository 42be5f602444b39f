//! nymgate as a platform's SAML IdP (docs/SAML_OUT.md): `/nymgate/idp/sso` and `/idp/init` read
//! the platform's AuthnRequest, then start the school's login (or the chooser); after it,
//! `saml_continue` answers the platform with nymgate's own signed Response.

use super::*;

impl Login {
    /// `/nymgate/idp/sso` (the platform's AuthnRequest, HTTP-Redirect or HTTP-POST) and
    /// `/nymgate/idp/init` (IdP-initiated, where the SP allows it): the request is checked,
    /// then the school's login starts, or the chooser when the school is not known yet.
    pub(super) async fn saml_sso(&self, input: SsoInput<'_>, ctx: &LoginContext<'_>) -> Response<Body> {
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
    pub(super) async fn saml_continue(
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
}
