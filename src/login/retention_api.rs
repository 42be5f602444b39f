//! The retention store's admin API on the admin listener (docs/RETENTION.md, "Admin API"):
//! data-subject requests by account number, each call authorized by its role's bearer token
//! and written to the audit log.
//!
//! ```text
//! GET    /admin/v1/retention/{tenant}/{account}          platform: the `serve` values, unless restricted
//!                                                         dpo: the whole record (access, portability)
//! PUT    /admin/v1/retention/{tenant}/{account}          dpo: {"values": {...}} replaces the values (rectify)
//! POST   /admin/v1/retention/{tenant}/{account}/restrict dpo: restrict or object (kept, not served)
//! POST   /admin/v1/retention/{tenant}/{account}/lift     dpo: lift the restriction
//! DELETE /admin/v1/retention/{tenant}/{account}          dpo: erase now
//! POST   /admin/v1/retention/{tenant}                    dpo: {"confirm": "{tenant}"} offboards the tenant
//! ```

use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::admin_refusals::Answer;
use super::commit::AuditUnavailable;
use super::{json_response, Login};
use crate::audit::AuditEvent;
use crate::body::Body;
use crate::pseudonym::AccountNumber;
use crate::retention::{Values, WrapKeys};

pub const PREFIX: &str = "/admin/v1/retention/";
/// A rectification body: a few values, never more.
const MAX_BODY: usize = 64 * 1024;

/// Who is calling, by the bearer token they showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Platform,
    Dpo,
}

impl Caller {
    fn name(self) -> &'static str {
        match self {
            Caller::Platform => "platform",
            Caller::Dpo => "dpo",
        }
    }
}

/// An admin change's or lookup's audit line could not be written: refused, nothing done.
fn audit_unavailable() -> Response<Body> {
    let mut response =
        error(StatusCode::SERVICE_UNAVAILABLE, "the audit log cannot be written; nothing was done");
    response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("60"));
    response
}

/// The calls that change a record: each writes a `started` line before it runs.
fn is_change(action: &str) -> bool {
    action != "retention_lookup"
}

impl Login {
    /// One admin API call. Without `[retention]` and its tokens the API does not exist (404).
    ///
    /// The audit log fails closed (docs/RETENTION.md, "Admin API"): a change (rectify,
    /// restrict, lift, erase, offboard) writes a `started` line before it runs and is refused
    /// with 503 when that line can't be written, then its outcome line; a lookup's line is
    /// written before the record is answered, which is withheld (503) when it can't be. Every
    /// refusal has its line, calls without a valid token in aggregate (admin_refusals.rs).
    pub async fn retention_api(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: Incoming,
    ) -> Response<Body> {
        let Some(store) = self.retention.clone() else { return error(StatusCode::NOT_FOUND, "not found") };
        let Some(caller) = self.retention_caller(headers) else {
            return match self.admin_refusals.refuse().await {
                Answer::Unauthorized => error(StatusCode::UNAUTHORIZED, "a valid bearer token is required"),
                Answer::RateLimited(seconds) => {
                    let mut response =
                        error(StatusCode::TOO_MANY_REQUESTS, "too many calls without a valid token");
                    response
                        .headers_mut()
                        .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
                    response
                }
                Answer::AuditUnavailable => audit_unavailable(),
            };
        };
        let rest = path.strip_prefix(PREFIX).unwrap_or("");
        let parts: Vec<&str> = rest.split('/').collect();
        if let ([tenant], &Method::POST) = (&parts[..], method) {
            return self.retention_offboard(caller, tenant, body, store).await;
        }
        let (tenant, account, verb) = match parts[..] {
            [tenant, account] => (tenant, account, None),
            [tenant, account, verb] => (tenant, account, Some(verb)),
            _ => {
                return self
                    .admin_refused("retention_api", None, None, "no_such_call", StatusCode::NOT_FOUND)
                    .await
            }
        };
        let action = match (method, verb) {
            (&Method::GET, None) => "retention_lookup",
            (&Method::PUT, None) => "retention_rectify",
            (&Method::DELETE, None) => "retention_erase",
            (&Method::POST, Some("restrict")) => "retention_restrict",
            (&Method::POST, Some("lift")) => "retention_lift",
            _ => {
                return self
                    .admin_refused(
                        "retention_api",
                        Some(tenant),
                        None,
                        "no_such_call",
                        StatusCode::METHOD_NOT_ALLOWED,
                    )
                    .await
            }
        };
        let (Some(rules), Some(keys)) =
            (self.retention_rules.get(tenant), WrapKeys::of_tenant(&self.pseudonymizer, tenant))
        else {
            return self
                .admin_refused(action, Some(tenant), None, "unknown_tenant", StatusCode::NOT_FOUND)
                .await;
        };
        // The path's account is the caller's text: only an account number's exact shape goes
        // on, to the store and to the audit line.
        let Some(account) = AccountNumber::parse(account) else {
            return self
                .admin_refused(action, Some(tenant), None, "bad_account_number", StatusCode::BAD_REQUEST)
                .await;
        };
        let account = account.as_str();
        // The platform may only look up; everything else is the DPO's.
        if caller == Caller::Platform && action != "retention_lookup" {
            return self
                .admin_refused(
                    action,
                    Some(tenant),
                    Some(account),
                    "platform_not_allowed",
                    StatusCode::FORBIDDEN,
                )
                .await;
        }
        // An ended tenant (past its offboarding date, or offboarded on any replica) serves
        // nothing from then on, not only after the next cull erases it (its logins are refused
        // likewise, and the shell refuses too); erasure stays open. Unknown is refused too.
        if action != "retention_erase" {
            let refusal = match self.tenant_ended(tenant, crate::clock::unix_now()).await {
                Ok(false) => None,
                Ok(true) => Some(("tenant_offboarded", StatusCode::GONE)),
                Err(_) => Some(("retention_unavailable", StatusCode::SERVICE_UNAVAILABLE)),
            };
            if let Some((reason, status)) = refusal {
                return self.admin_refused(action, Some(tenant), Some(account), reason, status).await;
            }
        }
        let values = if action == "retention_rectify" {
            match read_values(body).await {
                Ok(values) => Some(values),
                Err(_) => {
                    return self
                        .admin_refused(
                            action,
                            Some(tenant),
                            Some(account),
                            "bad_body",
                            StatusCode::BAD_REQUEST,
                        )
                        .await
                }
            }
        } else {
            None
        };
        let by = if caller == Caller::Platform { "by_platform" } else { "by_dpo" };
        if is_change(action)
            && self.admin_line(action, "started", Some(tenant), Some(account), Some(by)).await.is_err()
        {
            return audit_unavailable();
        }
        let (owned_tenant, owned_account) = (tenant.to_owned(), account.to_owned());
        let outcome = tokio::task::spawn_blocking(
            move || -> Result<Option<Value>, crate::retention::RetentionError> {
                let (tenant, account) = (owned_tenant.as_str(), owned_account.as_str());
                Ok(match action {
                    "retention_lookup" => store.lookup(tenant, &keys, account)?.map(|r| json!(r)),
                    "retention_rectify" => store
                        .rectify(tenant, &keys, account, values.as_ref().expect("read above"))?
                        .then(|| json!({"rectified": true})),
                    "retention_erase" => store.erase(tenant, account)?.then(|| json!({"erased": true})),
                    "retention_restrict" => {
                        store.restrict(tenant, &keys, account, true)?.then(|| json!({"restricted": true}))
                    }
                    _ => store.restrict(tenant, &keys, account, false)?.then(|| json!({"restricted": false})),
                })
            },
        )
        .await;
        // The outcome's line. For a lookup it comes before the answer, which it gates; for a
        // change the `started` line is already on record, so the answer says what was done
        // even when this line can't be written (counted, logged, and /readyz not ready).
        let (outcome, reason, response) = match outcome {
            Ok(Ok(Some(mut value))) => {
                // The platform sees only the `serve` values, and nothing of a restricted record.
                if caller == Caller::Platform && value["restricted"] == true {
                    ("refused", "restricted", error(StatusCode::NOT_FOUND, "no record"))
                } else {
                    if caller == Caller::Platform {
                        let served: serde_json::Map<String, Value> = rules
                            .serve
                            .iter()
                            .filter_map(|name| Some((name.clone(), value["values"].get(name)?.clone())))
                            .collect();
                        value = json!({"tenant": tenant, "account_number": account, "values": served});
                    }
                    ("ok", by, json_response(StatusCode::OK, &value, "no-store"))
                }
            }
            Ok(Ok(None)) => ("failed", "no_record", error(StatusCode::NOT_FOUND, "no record")),
            Ok(Err(failure)) => {
                tracing::error!(error = %failure, action, "retention API call failed");
                let response =
                    error(StatusCode::SERVICE_UNAVAILABLE, "the retention store failed; see the log");
                ("failed", "retention_unavailable", response)
            }
            Err(_) => {
                let response = error(StatusCode::INTERNAL_SERVER_ERROR, "the call did not finish");
                ("failed", "did_not_finish", response)
            }
        };
        let written = self.admin_line(action, outcome, Some(tenant), Some(account), Some(reason)).await;
        if written.is_err() && !is_change(action) {
            return audit_unavailable();
        }
        if outcome == "ok" {
            tracing::info!(action, caller = caller.name(), "retention API call");
        }
        response
    }

    /// `POST /admin/v1/retention/{tenant}` with `{"confirm": "{tenant}"}` (dpo): offboards the
    /// tenant, as `nymgate retention offboard` does, and answers its report.
    async fn retention_offboard(
        &self,
        caller: Caller,
        tenant: &str,
        body: Incoming,
        store: std::sync::Arc<crate::retention::RetentionStore>,
    ) -> Response<Body> {
        const ACTION: &str = "tenant_offboard";
        if caller != Caller::Dpo {
            return self
                .admin_refused(ACTION, Some(tenant), None, "platform_not_allowed", StatusCode::FORBIDDEN)
                .await;
        }
        let Some(scope) = self.pseudonymizer.tenant(tenant).ok().map(|t| t.scope.clone()) else {
            return self
                .admin_refused(ACTION, Some(tenant), None, "unknown_tenant", StatusCode::NOT_FOUND)
                .await;
        };
        #[derive(serde::Deserialize)]
        struct Confirm {
            confirm: String,
        }
        let confirmed = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
            Ok(bytes) => {
                serde_json::from_slice::<Confirm>(&bytes.to_bytes()).is_ok_and(|c| c.confirm == tenant)
            }
            Err(_) => false,
        };
        if !confirmed {
            self.admin_line(ACTION, "refused", Some(tenant), None, Some("not_confirmed")).await.ok();
            return error(StatusCode::BAD_REQUEST, "send {\"confirm\": \"<tenant id>\"} to offboard");
        }
        let started = AuditEvent {
            tenant: Some(tenant),
            scope: Some(&scope),
            reason: Some("by_dpo"),
            ..AuditEvent::admin(ACTION, "started")
        };
        if self.record(started).await.is_err() {
            return audit_unavailable();
        }
        let sharing = self.pseudonymizer.sharing_scope_with(tenant);
        let (keyring_file, owned_tenant, owned_scope) =
            (self.keyring_file.clone(), tenant.to_owned(), scope.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            let now = crate::clock::unix_now();
            crate::retention::offboard_tenant(
                &store,
                &keyring_file,
                &owned_tenant,
                &owned_scope,
                &sharing,
                now,
            )
        })
        .await;
        match outcome {
            Ok(Ok(report)) => {
                let event = AuditEvent {
                    tenant: Some(tenant),
                    scope: Some(&scope),
                    reason: Some("by_dpo"),
                    ..AuditEvent::admin(ACTION, "ok")
                };
                // The `started` line is on record: the report is answered either way.
                let _ = self.record(event).await;
                tracing::warn!(
                    tenant,
                    "tenant offboarded through the admin API; remove it from the config and reload"
                );
                json_response(StatusCode::OK, &report.to_json(), "no-store")
            }
            Ok(Err(message)) => {
                tracing::error!(error = %message, "offboarding failed");
                let _ = self
                    .admin_line(ACTION, "failed", Some(tenant), None, Some("retention_unavailable"))
                    .await;
                error(StatusCode::SERVICE_UNAVAILABLE, "the offboarding failed; see the log")
            }
            Err(_) => {
                let _ = self.admin_line(ACTION, "failed", Some(tenant), None, Some("did_not_finish")).await;
                error(StatusCode::INTERNAL_SERVER_ERROR, "the call did not finish")
            }
        }
    }

    /// The caller whose token the request carries, compared in constant time.
    fn retention_caller(&self, headers: &HeaderMap) -> Option<Caller> {
        let token = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")?;
        let tokens = self.retention_tokens.as_ref()?;
        // Both compared, whatever the first gave: the time does not tell which role matched.
        let dpo = tokens.dpo.as_ref().is_some_and(|t| t.ct_eq(token.as_bytes()));
        let platform = tokens.platform.as_ref().is_some_and(|t| t.ct_eq(token.as_bytes()));
        match (dpo, platform) {
            (true, _) => Some(Caller::Dpo),
            (_, true) => Some(Caller::Platform),
            _ => None,
        }
    }

    /// An authenticated call refused: its line (503 when that can't be written), then `status`.
    async fn admin_refused(
        &self,
        action: &'static str,
        tenant: Option<&str>,
        account: Option<&str>,
        reason: &'static str,
        status: StatusCode,
    ) -> Response<Body> {
        if self.admin_line(action, "refused", tenant, account, Some(reason)).await.is_err() {
            return audit_unavailable();
        }
        let message = match reason {
            "bad_account_number" => "not an account number",
            "platform_not_allowed" => "this call needs the dpo token",
            "unknown_tenant" => "no such tenant keeps values",
            "tenant_offboarded" => "the tenant is offboarded: its records are not served",
            "retention_unavailable" => "the retention database did not answer; try again",
            "bad_body" => "expected {\"values\": {\"name\": [\"…\"]}} of at most 64 KiB",
            _ => "no such call",
        };
        error(status, message)
    }

    /// One audit line of an admin call: the action, its outcome, the tenant and the account
    /// number (a pseudonym), never a value. Only a configured tenant's id is recorded (the path
    /// is the caller's and could hold anything); `account` is an [`AccountNumber`]'s text.
    async fn admin_line(
        &self,
        action: &'static str,
        outcome: &'static str,
        tenant: Option<&str>,
        account: Option<&str>,
        reason: Option<&'static str>,
    ) -> Result<(), AuditUnavailable> {
        let tenant = tenant.filter(|t| self.pseudonymizer.tenant(t).is_ok());
        let account = account.filter(|a| AccountNumber::parse(a).is_some());
        self.record(AuditEvent {
            tenant,
            account_number: account,
            reason,
            ..AuditEvent::admin(action, outcome)
        })
        .await
    }
}

/// The tokens of `[retention.api]`, loaded.
pub struct RetentionTokens {
    pub platform: Option<crate::secret::Secret>,
    pub dpo: Option<crate::secret::Secret>,
}

/// `{"values": {"name": ["…"], …}}`, at most `MAX_BODY` bytes.
async fn read_values(body: Incoming) -> Result<Values, &'static str> {
    let bytes = http_body_util::Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|_| "the body is unreadable or over 64 KiB")?
        .to_bytes();
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Rectify {
        values: Values,
    }
    serde_json::from_slice::<Rectify>(&bytes)
        .map(|r| r.values)
        .map_err(|_| "expected {\"values\": {\"name\": [\"…\"]}}")
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json_response(status, &json!({"error": message}), "no-store")
}
