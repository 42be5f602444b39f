//! A school's SAML Response, wherever it arrives: nymgate's own ACS (`/nymgate/saml/acs`) or
//! a platform's ACS that nymgate intercepts (docs/SAML_OUT.md). Both take the same steps, in
//! this order, so that they can't drift apart (they had: only the ACS logged a weak
//! algorithm):
//!
//! ```text
//! read the form (bounded)  ->  decode  ->  pick the school and verify against its pinned keys
//!   ->  accept_school_response: log a weak algorithm, claim the assertion once on every replica
//!   ->  pseudonymize  ->  deliver (ACS: code, session or SAML form; interception: nymgate's
//!       own signed Response to the platform)  ->  audit (commit)
//! ```

use super::*;

/// The POSTed form of a SAML Response (Bindings §3.5.4), bounded before anything is parsed.
async fn read_saml_form(
    incoming: Incoming,
    ctx: &LoginContext<'_>,
) -> Result<HashMap<String, String>, FlowError> {
    read_form_limited(incoming, ctx, ACS_FORM_LIMIT).await.map_err(|status| match status {
        StatusCode::PAYLOAD_TOO_LARGE => FlowError::Saml(saml_acs::SamlError::TooLarge),
        StatusCode::REQUEST_TIMEOUT => FlowError::BadRequest("body_timeout"),
        _ => FlowError::BadRequest("unreadable_form"),
    })
}

impl Login {
    /// What every verified school Response goes through before its person is pseudonymized: a
    /// weak algorithm the tenant allows is logged (never silently taken), and the assertion is
    /// claimed once, on every replica, until it could no longer be presented (SAML Profiles
    /// §4.1.4.5): a second post of it is a replay wherever it lands.
    async fn accept_school_response(
        &self,
        tenant_id: &str,
        verified: &saml_acs::VerifiedResponse,
        now: u64,
        ctx: &LoginContext<'_>,
    ) -> Result<(), FlowError> {
        if verified.weak_algorithm {
            tracing::warn!(
                request_id = ctx.request_id,
                tenant = tenant_id,
                "accepted a SHA-1 based signature (allow_weak_algorithms)"
            );
        }
        let key = format!("{tenant_id}\n{}", verified.assertion_id);
        if !self.store.claim(Space::SamlAssertion, &key, verified.replay_until, now).await? {
            return Err(FlowError::BadRequest("saml_replayed"));
        }
        Ok(())
    }

    /// `/nymgate/saml/acs`: a SAML Response over HTTP-POST (Bindings §3.5). The form is size
    /// limited before anything is parsed; RelayState names this browser's flow (solicited), or
    /// there is none and the tenant must accept IdP-initiated logins. Whatever happens, the
    /// flow cookie is cleared and the attempt audited.
    pub(super) async fn acs(
        &self,
        incoming: Incoming,
        headers: &HeaderMap,
        ctx: &LoginContext<'_>,
    ) -> Response<Body> {
        use saml_acs::SamlError;
        let mut tenant = None;
        let mut flow_cookie_to_clear = None;
        let clock = StepClock::start(&self.metrics);
        let outcome = async {
            let fields = read_saml_form(incoming, ctx).await?;
            let field = fields.get("SAMLResponse").ok_or(FlowError::BadRequest("missing_saml_response"))?;
            let xml = saml_acs::decode_post(field)?;
            let relay_state = fields.get("RelayState").map(String::as_str).unwrap_or("");
            let now = unix_now();
            let solicited =
                is_token(relay_state) && cookie_value(headers, &flow_cookie_name(relay_state)).is_some();
            let (tenant_id, request_id, next, fresh_since) = if solicited {
                flow_cookie_to_clear = Some(flow_cookie_name(relay_state));
                let flow = self.take_flow(relay_state, headers, now, &mut tenant).await?;
                let Pending::Saml { request_id, fresh_since } = flow.pending else {
                    return Err(FlowError::BadRequest("protocol_mismatch"));
                };
                (flow.tenant, Some(request_id), flow.next, fresh_since)
            } else {
                // IdP-initiated: there is no platform request to answer, so only the assertion
                // output can take it; RelayState is then at most a path on this site. The
                // tenant is picked after verification (`verify_unsolicited`).
                if self.output != LoginOutput::AssertionHeader {
                    return Err(SamlError::Unsolicited.into());
                }
                (String::new(), None, Next::Session { return_to: safe_return_to(Some(relay_state)) }, None)
            };
            let sp = self.saml_sp.as_ref().ok_or(FlowError::BadRequest("protocol_not_available"))?;
            let expected = saml_acs::Expected {
                sp_entity_id: &sp.entity_id,
                acs_url: &sp.acs_url,
                request_id: request_id.as_deref(),
                now,
                relay_in_response_to: false,
            };
            let (tenant_id, verified) = if solicited {
                let saml = self.saml.get(&tenant_id).ok_or(FlowError::UnknownTenant)?;
                let trusted = saml.trusted().await.map_err(FlowError::SamlMetadata)?;
                let verified = saml_acs::verify(&xml, &trusted.trust, &expected)
                    .map_err(|error| saml_out::saml_error(&next, &xml, error))?;
                if fresh_since.is_some_and(|since| !verified.authenticated_since(since, &trusted.trust)) {
                    return Err(FlowError::BadRequest("auth_not_fresh"));
                }
                (tenant_id, verified)
            } else {
                let candidates = self.saml_tenants_of(&xml)?;
                self.verify_unsolicited(&xml, &candidates, &expected, &mut tenant).await?
            };
            self.accept_school_response(&tenant_id, &verified, now, ctx).await?;
            clock.next(Step::Pseudonymize);
            let (login, record) =
                self.pseudonymize(&tenant_id, &verified.identity, self.sector(&next), now).await?;
            clock.next(Step::Mint);
            self.deliver(login, record, next, now, ctx.lang)
        }
        .await;
        clock.decided(&outcome);
        let mut response = self.finish(outcome, tenant.as_deref(), ctx, "saml").await;
        clock.stop();
        if let Some(name) = flow_cookie_to_clear {
            response.headers_mut().append(header::SET_COOKIE, clear_cookie(&name));
        }
        response
    }

    /// Interception mode (docs/SAML_OUT.md): the entity ID of the platform whose ACS sits at
    /// this path behind nymgate, for a request there by any method and any spelling of the path.
    /// Returns its entity ID and the path of its `acs_url`, which the replaced request is sent
    /// to whatever spelling the browser used: nymgate vouches for that destination only.
    pub fn intercepted_sp(&self, path: &crate::target::CanonicalPath) -> Option<(String, String)> {
        let sp = self.saml_idp.as_ref()?.intercepting(path)?;
        let acs_path = sp.acs_url.parse::<http::Uri>().ok().map(|uri| uri.path().to_owned())?;
        Some((sp.entity_id.clone(), acs_path))
    }

    /// A school's SAML response posted to the platform's intercepted ACS: verified as nymgate's
    /// own ACS would (the platform as the audience and recipient; its InResponseTo relayed for
    /// the platform to check), pseudonymized, and replaced. `Ok`: the form to forward to the
    /// platform instead (`SAMLResponse` nymgate signed, the same `RelayState`). `Err`: the
    /// failure page; the school's response is never forwarded.
    ///
    /// Only the HTTP-POST binding of a Response is taken (SAML Bindings §3.5): a request to the
    /// intercepted ACS by any other method, with a SAML message in its query (HTTP-Redirect,
    /// §3.4, or an artifact, §3.6), or with an artifact in its form is refused and never
    /// forwarded, since nymgate can neither verify nor replace it and the platform's SP library
    /// may well accept it. The forwarded request carries no query at all: nymgate vouches for
    /// its own form only.
    pub async fn intercept(
        &self,
        sp_entity_id: &str,
        parts: &http::request::Parts,
        incoming: Incoming,
        ctx: &LoginContext<'_>,
    ) -> Result<Bytes, Response<Body>> {
        use saml_acs::SamlError;
        match self.blocked_for(ctx).await {
            Ok(None) => {}
            Ok(Some(retry_after)) => return Err(self.refuse_blocked(retry_after, ctx).await),
            Err(error) => return Err(self.finish(Err(error.into()), None, ctx, "saml").await),
        }
        let mut tenant = None;
        let clock = StepClock::start(&self.metrics);
        let outcome = async {
            let (idp, sp) = self
                .saml_idp
                .as_ref()
                .and_then(|idp| Some((idp, idp.service_provider(sp_entity_id)?)))
                .ok_or(FlowError::BadRequest("protocol_not_available"))?;
            if parts.uri.query().is_some_and(|q| crate::target::query_has(q, SAML_MESSAGES)) {
                return Err(FlowError::BadRequest("saml_message_in_query"));
            }
            if parts.method != Method::POST {
                return Err(FlowError::BadRequest("saml_binding_not_supported"));
            }
            let fields = read_saml_form(incoming, ctx).await?;
            // Every field name is read in canonical form: `samlart`, `SAMLart[]` or an encoded
            // spelling is an artifact all the same, and a response under another spelling than
            // `SAMLResponse` is not one nymgate forwards (form_body takes that name only).
            let names = fields.keys().map(|name| crate::target::canonical_param(name)).collect::<Vec<_>>();
            if names.iter().any(|name| name.matches("samlart")) {
                return Err(FlowError::BadRequest("saml_artifact_not_supported"));
            }
            let field = fields.get("SAMLResponse").ok_or(FlowError::BadRequest("missing_saml_response"))?;
            let xml = saml_acs::decode_post(field)?;
            // The (unverified) Issuer picks the school whose pinned keys then decide.
            let issuer = saml_acs::claimed_issuer(&xml)?;
            if issuer == idp.entity_id {
                // nymgate's own Response (a login through its IdP face, posted by the browser):
                // forwarded as it is, once it verifies. It was audited when it was made.
                let own = idp.verify_own(&xml, sp, unix_now())?;
                // And once only, on every replica: a second post of the same Response is a
                // replay (SAML Profiles §4.1.4.5), whoever holds it.
                let key = format!("{}\n{}", sp.entity_id, own.assertion_id);
                if !self.store.claim(Space::IssuedResponse, &key, own.replay_until, unix_now()).await? {
                    return Err(FlowError::BadRequest("saml_replayed"));
                }
                return Ok(Passed::Own(Bytes::from(form_body(&fields))));
            }
            // A platform bound to one school takes that school's responses only.
            let mut candidates = self.saml_tenants_of(&xml)?;
            if let Some(bound) = &sp.tenant {
                candidates.retain(|id| id == bound);
                if candidates.is_empty() {
                    return Err(FlowError::TenantNotAllowed);
                }
            }
            let now = unix_now();
            let (tenant_id, verified) =
                self.verify_unsolicited(&xml, &candidates, &sp.intercepted(now), &mut tenant).await?;
            let tenant_id = tenant_id.as_str();
            self.accept_school_response(tenant_id, &verified, now, ctx).await?;
            clock.next(Step::Pseudonymize);
            let (login, record) =
                self.pseudonymize(tenant_id, &verified.identity, self.sp_sector(&sp.entity_id), now).await?;
            // Bytes that nymgate relays into its own signed Response are checked as any value
            // that leaves: RelayState (the browser's or, unsolicited, the IdP's choice) within
            // SAML Bindings §3.5.3's 80 bytes and through the guard; InResponseTo an xsd:ID.
            let relay_state = fields.get("RelayState").cloned();
            if let Some(relay_state) = &relay_state {
                if relay_state.len() > MAX_RELAY_STATE {
                    return Err(FlowError::BadRequest("saml_relay_state"));
                }
                crate::pseudonym::guard::Guard::new(verified.identity.identifying_values())
                    .check("relay_state", relay_state)
                    .map_err(|trip| FlowError::Pseudonym(trip.into()))?;
            }
            if verified.in_response_to.as_deref().is_some_and(|id| !is_xsd_id(id)) {
                return Err(FlowError::Saml(SamlError::InResponseTo));
            }
            clock.next(Step::Mint);
            let request =
                saml_idp::SpRequest::new(&sp.entity_id, verified.in_response_to.clone(), relay_state);
            let (response, _) = idp.response(&login, &request, now)?;
            let mut form = openidconnect::url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("SAMLResponse", &base64::engine::general_purpose::STANDARD.encode(response));
            if let Some(relay_state) = &request.relay_state {
                form.append_pair("RelayState", relay_state);
            }
            Ok(Passed::School(Bytes::from(form.finish()), login, record.map(Box::new)))
        }
        .await;
        // nymgate's own Response passing through is no login: nothing of it is committed.
        match &outcome {
            Ok(Passed::School(..)) => clock.next(Step::Commit),
            Ok(Passed::Own(_)) => clock.discard(),
            Err(_) => clock.stop(),
        }
        match outcome {
            Ok(Passed::Own(form)) => Ok(form),
            // Counted and audited as any login, before the form is forwarded.
            Ok(Passed::School(form, login, record)) => {
                self.commit(login, record.map(|r| *r), ctx, "saml").await.map(|()| form)
            }
            Err(error) => Err(self.failed(tenant.as_deref(), error, ctx, Some("saml")).await),
        }
    }
}
