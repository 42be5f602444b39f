//! The steps every verified login shares, whatever its protocol, and how an attempt ends:
//! take the pending flow, pseudonymize (and the record the tenant retains), deliver the code,
//! session or SAML form, then `finish` (commit: audit, retain, respond) or `failed` (audit,
//! count toward blocking, alert, the failure page). Blocking's answer for a client is here too.

use super::*;

impl Login {
    /// The pseudonym step of every login, and the retention store's record where the tenant
    /// keeps values for this role, to be written once the login's audit line is on disk
    /// (`commit`). A record that can't be written fails the login (503): the customer requires
    /// it, so a login without it would lose data silently.
    pub(super) async fn pseudonymize(
        &self,
        tenant: &str,
        identity: &VerifiedIdentity,
        sector: Sector<'_>,
        now: u64,
    ) -> Result<(PseudonymousLogin, Option<PendingRecord>), FlowError> {
        if self.tenant_ended(tenant, now).await.map_err(offboarding::flow_error)? {
            return Err(FlowError::BadRequest("tenant_offboarded"));
        }
        // A tenant that shares its IdP files only the logins its verified attribute names.
        self.choice.confirm(tenant, identity)?;
        let login = self.pseudonymizer.pseudonymize(tenant, identity, sector, now)?;
        let (Some(store), Some(rules)) = (&self.retention, self.retention_rules.get(tenant)) else {
            return Ok((login, None));
        };
        if !rules.roles.iter().any(|r| r == login.role.as_str()) {
            return Ok((login, None));
        }
        let values: crate::retention::Values = rules
            .attributes
            .iter()
            .map(|(name, sources)| {
                (name.clone(), identity.values(sources).into_iter().map(str::to_owned).collect::<Vec<_>>())
            })
            .filter(|(_, values)| !values.is_empty())
            .collect();
        let keys = crate::retention::WrapKeys::of_tenant(&self.pseudonymizer, tenant)
            .ok_or(PseudonymError::UnknownTenant(tenant.to_owned()))?;
        let account = login.sub.as_str().to_owned();
        let record =
            PendingRecord { store: store.clone(), tenant: tenant.to_owned(), keys, account, values, now };
        Ok((login, Some(record)))
    }

    /// Opens this browser's flow cookie for `state` and spends the state: the state in the
    /// answer must be the one sealed in this browser's cookie (RFC 9700 §4.7: CSRF), and each
    /// state is good for one answer. `tenant` is set as soon as it is known, for the audit.
    pub(super) async fn take_flow(
        &self,
        state: &str,
        headers: &HeaderMap,
        now: u64,
        tenant: &mut Option<String>,
    ) -> Result<Flow, FlowError> {
        if !is_token(state) {
            return Err(FlowError::BadRequest("missing_state"));
        }
        let sealed =
            cookie_value(headers, &flow_cookie_name(state)).ok_or(FlowError::BadRequest("no_flow_cookie"))?;
        let flow: Flow = self
            .sealer
            .open("flow", sealed, now)
            .ok()
            .and_then(|plain| serde_json::from_slice(&plain).ok())
            .ok_or(FlowError::BadRequest("bad_flow_cookie"))?;
        *tenant = Some(flow.tenant.clone());
        if !crate::secret::ct_eq_str(&flow.state, state) {
            return Err(FlowError::BadRequest("state_mismatch"));
        }
        if !self.store.claim(Space::State, state, now + self.flow_lifetime, now).await? {
            return Err(FlowError::BadRequest("state_replayed"));
        }
        Ok(flow)
    }

    /// The end of every IdP answer: counted, audited, logged without values.
    pub(super) async fn finish(
        &self,
        outcome: Result<Decided, FlowError>,
        tenant: Option<&str>,
        ctx: &LoginContext<'_>,
        protocol: &'static str,
    ) -> Response<Body> {
        match outcome {
            Ok(Decided { response, login, record }) => {
                match self.commit(login, record, ctx, protocol).await {
                    Ok(()) => response,
                    Err(refused) => refused,
                }
            }
            Err(error) => self.failed(tenant, error, ctx, Some(protocol)).await,
        }
    }

    /// Hands a finished login to the platform, the way the config says: the response is built
    /// here and sent only once `commit` has recorded the login.
    pub(super) fn deliver(
        &self,
        login: PseudonymousLogin,
        record: Option<PendingRecord>,
        next: Next,
        now: u64,
        lang: pages::Lang,
    ) -> Result<Decided, FlowError> {
        let (response, login) = self.respond(login, next, now, lang)?;
        Ok(Decided { response, login, record })
    }

    pub(super) fn respond(
        &self,
        login: PseudonymousLogin,
        next: Next,
        now: u64,
        lang: pages::Lang,
    ) -> Result<(Response<Body>, PseudonymousLogin), FlowError> {
        match next {
            Next::Platform(request) => {
                let response = self.provider.issue_code(&request, &login, now);
                Ok((response, login))
            }
            Next::SamlSp(request) => {
                // The last word before a bound platform receives a login: its own school's only.
                if self.bound_tenant(&request.sp).is_some_and(|bound| bound != login.tenant) {
                    return Err(FlowError::TenantNotAllowed);
                }
                let idp = self.saml_idp.as_ref().ok_or(FlowError::BadRequest("protocol_not_available"))?;
                let (xml, acs_url) = idp.response(&login, &request, now)?;
                let encoded = base64::engine::general_purpose::STANDARD.encode(xml);
                let brand = self.branding_for(Some(&login.tenant));
                let response =
                    pages::saml_post(lang, brand, acs_url, &encoded, request.relay_state.as_deref());
                Ok((response, login))
            }
            Next::Session { return_to } => {
                let mut response = redirect(&return_to);
                response.headers_mut().append(header::SET_COOKIE, self.sessions.start(&login, now));
                Ok((response, login))
            }
        }
    }

    /// A failed login: counted, audited, logged by reason, and a generic page.
    pub(super) async fn failed(
        &self,
        tenant: Option<&str>,
        error: FlowError,
        ctx: &LoginContext<'_>,
        protocol: Option<&'static str>,
    ) -> Response<Body> {
        let protocol = protocol.unwrap_or("oidc");
        let reason = error.reason();
        self.count(tenant, protocol, "failed", reason);
        let claim = match &error {
            FlowError::Pseudonym(PseudonymError::Guard(trip)) => {
                self.metrics.guard_trip(trip.claim, trip.detector);
                Some(trip.claim)
            }
            _ => None,
        };
        let audited = self
            .record(AuditEvent {
                tenant,
                reason: Some(reason),
                claim,
                ..AuditEvent::login("failed", protocol, ctx.client.to_string(), ctx.request_id)
            })
            .await;
        if let Some(kind) = AlertKind::of_reason(reason) {
            self.alerts.observe(kind, tenant, reason);
        }
        if audited.is_err() {
            // Refused all the same, and counted toward blocking; but the answer is the outage's.
            if error.counts_toward_blocking() {
                self.count_failure(tenant, error.status(), ctx).await;
            }
            tracing::warn!(
                request_id = ctx.request_id,
                tenant,
                reason,
                "login refused, and its audit line could not be written"
            );
            return self.audit_unavailable(tenant, ctx);
        }
        if let Some(page) = self.status_page(&error, tenant, ctx) {
            tracing::info!(request_id = ctx.request_id, tenant, reason, "login answered with a SAML status");
            return page;
        }
        let status = error.status();
        if error.counts_toward_blocking() {
            self.count_failure(tenant, status, ctx).await;
        }
        if status.is_server_error() {
            tracing::warn!(request_id = ctx.request_id, tenant, reason, detail = %error, "login failed");
        } else {
            tracing::info!(request_id = ctx.request_id, tenant, reason, detail = %error, "login refused");
        }
        pages::login_failed(ctx.lang, self.branding_for(tenant), status, ctx.request_id)
    }

    /// Seconds the client must wait, if blocked. With the shared store unavailable this is
    /// `Err`, and the login is refused as the store's other callers would refuse it.
    pub(super) async fn blocked_for(&self, ctx: &LoginContext<'_>) -> Result<Option<u64>, StoreError> {
        let (Some(blocker), Some(client)) = (&self.blocker, ctx.client_key) else { return Ok(None) };
        if self.store.is_shared() {
            self.store.blocked_for(&client.to_hex()).await
        } else {
            Ok(blocker.blocked_for(client, unix_now()))
        }
    }

    /// 429 with `Retry-After` (RFC 6585 §4), audited and counted like any refused attempt; it
    /// does not count as another failure, so the block ends when it says it does.
    pub(super) async fn refuse_blocked(&self, retry_after: u64, ctx: &LoginContext<'_>) -> Response<Body> {
        self.count(None, "none", "failed", "blocked");
        let audited = self
            .record(AuditEvent {
                reason: Some("blocked"),
                ..AuditEvent::login("failed", "none", ctx.client.to_string(), ctx.request_id)
            })
            .await;
        if audited.is_err() {
            return self.audit_unavailable(None, ctx);
        }
        tracing::info!(request_id = ctx.request_id, retry_after, "login refused: client blocked");
        let mut response =
            pages::login_failed(ctx.lang, &self.branding, StatusCode::TOO_MANY_REQUESTS, ctx.request_id);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        response
    }

    /// Counts a failed attempt the client is answerable for (a 4xx), and blocks it at the
    /// threshold.
    pub(super) async fn count_failure(
        &self,
        tenant: Option<&str>,
        status: StatusCode,
        ctx: &LoginContext<'_>,
    ) {
        let (Some(blocker), Some(client)) = (&self.blocker, ctx.client_key) else { return };
        if !status.is_client_error() {
            return;
        }
        let now = unix_now();
        let started = if self.store.is_shared() {
            let settings = blocker.settings();
            let counted = self
                .store
                .count_failure(
                    &client.to_hex(),
                    tenant.unwrap_or(""),
                    blocker.threshold(tenant),
                    settings.window_secs,
                    settings.block_secs,
                )
                .await;
            // Unavailable: the failure goes uncounted (logged by the store); the login itself
            // was refused anyway, and logins stay refused until the store answers.
            let started = counted.unwrap_or(false);
            if started {
                blocker.note_block(client, now);
            }
            started
        } else {
            blocker.record_failure(client, tenant, now)
        };
        if started {
            self.metrics.login_block(blocker.blocked_clients(now));
            self.alerts.observe(AlertKind::ClientBlocked, tenant, "blocked");
            tracing::warn!(request_id = ctx.request_id, tenant, client = %ctx.client, "client blocked after too many failed logins");
        }
    }
}
