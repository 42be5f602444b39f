//! Starting a login at the school's IdP, and the OIDC callback (RFC 6749 §4.1, OpenID Connect
//! Core §3.1): the flow sealed in a cookie on the way out; on the way back the state, the code
//! and the ID token checked, then the steps every login shares (outcome.rs).

use super::*;

impl Login {
    /// A login at the school the browser chose, remembered for its next visit's chooser.
    pub(super) async fn start_chosen(
        &self,
        tenant: &str,
        next: Next,
        ctx: &LoginContext<'_>,
    ) -> Response<Body> {
        let mut response = self.start_or_fail(tenant, None, next, ctx).await;
        self.remember_school(tenant, &mut response);
        response
    }

    pub(super) async fn start_or_fail(
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
    pub(super) async fn start(
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
    pub(super) async fn callback(
        &self,
        query: &str,
        headers: &HeaderMap,
        ctx: &LoginContext<'_>,
    ) -> Response<Body> {
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
            let identity = idp.finish(pending, code, params.get("iss").map(String::as_str)).await?;
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
}
