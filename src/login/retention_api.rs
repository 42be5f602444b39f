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

use super::{json_response, Login};
use crate::audit::AuditEvent;
use crate::body::Body;
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

impl Login {
    /// One admin API call. Without `[retention]` and its tokens the API does not exist (404).
    pub async fn retention_api(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: Incoming,
    ) -> Response<Body> {
        let Some(store) = self.retention.clone() else { return error(StatusCode::NOT_FOUND, "not found") };
        let Some(caller) = self.retention_caller(headers) else {
            self.retention_audit("retention_api", "refused", None, None, Some("bad_credentials")).await;
            return error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        };
        let rest = path.strip_prefix(PREFIX).unwrap_or("");
        let parts: Vec<&str> = rest.split('/').collect();
        if let ([tenant], &Method::POST) = (&parts[..], method) {
            return self.retention_offboard(caller, tenant, body, store).await;
        }
        let (tenant, account, verb) = match parts[..] {
            [tenant, account] => (tenant, account, None),
            [tenant, account, verb] => (tenant, account, Some(verb)),
            _ => return error(StatusCode::NOT_FOUND, "not found"),
        };
        let Some(rules) = self.retention_rules.get(tenant) else {
            return error(StatusCode::NOT_FOUND, "no such tenant keeps values");
        };
        let Some(keys) = self.pseudonymizer.scope_keys(tenant).map(|k| WrapKeys::derive(k, tenant)) else {
            return error(StatusCode::NOT_FOUND, "no such tenant keeps values");
        };
        let action = match (method, verb) {
            (&Method::GET, None) => "retention_lookup",
            (&Method::PUT, None) => "retention_rectify",
            (&Method::DELETE, None) => "retention_erase",
            (&Method::POST, Some("restrict")) => "retention_restrict",
            (&Method::POST, Some("lift")) => "retention_lift",
            _ => return error(StatusCode::METHOD_NOT_ALLOWED, "no such call"),
        };
        // The platform may only look up; everything else is the DPO's.
        if caller == Caller::Platform && action != "retention_lookup" {
            self.retention_audit(
                action,
                "refused",
                Some(tenant),
                Some(account),
                Some("platform_not_allowed"),
            )
            .await;
            return error(StatusCode::FORBIDDEN, "this call needs the dpo token");
        }
        let values = if action == "retention_rectify" {
            match read_values(body).await {
                Ok(values) => Some(values),
                Err(message) => return error(StatusCode::BAD_REQUEST, message),
            }
        } else {
            None
        };
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
        let result = match outcome {
            Ok(Ok(Some(mut value))) => {
                if caller == Caller::Platform {
                    // The platform sees only the `serve` values, and nothing of a restricted record.
                    if value["restricted"] == true {
                        self.retention_audit(
                            action,
                            "refused",
                            Some(tenant),
                            Some(account),
                            Some("restricted"),
                        )
                        .await;
                        return error(StatusCode::NOT_FOUND, "no record");
                    }
                    let served: serde_json::Map<String, Value> = rules
                        .serve
                        .iter()
                        .filter_map(|name| Some((name.clone(), value["values"].get(name)?.clone())))
                        .collect();
                    value = json!({"tenant": tenant, "account_number": account, "values": served});
                }
                json_response(StatusCode::OK, &value, "no-store")
            }
            Ok(Ok(None)) => {
                self.retention_audit(action, "failed", Some(tenant), Some(account), Some("no_record")).await;
                return error(StatusCode::NOT_FOUND, "no record");
            }
            Ok(Err(failure)) => {
                tracing::error!(error = %failure, action, "retention API call failed");
                self.retention_audit(
                    action,
                    "failed",
                    Some(tenant),
                    Some(account),
                    Some("retention_unavailable"),
                )
                .await;
                return error(StatusCode::SERVICE_UNAVAILABLE, "the retention store failed; see the log");
            }
            Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "the call did not finish"),
        };
        let caller_reason = if caller == Caller::Platform { "by_platform" } else { "by_dpo" };
        self.retention_audit(action, "ok", Some(tenant), Some(account), Some(caller_reason)).await;
        tracing::info!(action, caller = caller.name(), "retention API call");
        result
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
        if caller != Caller::Dpo {
            self.retention_audit(
                "tenant_offboard",
                "refused",
                Some(tenant),
                None,
                Some("platform_not_allowed"),
            )
            .await;
            return error(StatusCode::FORBIDDEN, "this call needs the dpo token");
        }
        let Some(scope) = self.pseudonymizer.tenant(tenant).ok().map(|t| t.scope.clone()) else {
            return error(StatusCode::NOT_FOUND, "no such tenant");
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
            return error(StatusCode::BAD_REQUEST, "send {\"confirm\": \"<tenant id>\"} to offboard");
        }
        let sharing = self.pseudonymizer.sharing_scope_with(tenant);
        let (keyring_file, owned_tenant, owned_scope) =
            (self.keyring_file.clone(), tenant.to_owned(), scope.clone());
        let outcome = tokio::task::spawn_blocking(move || {
            crate::retention_cli::offboard_tenant(
                &store,
                &keyring_file,
                &owned_tenant,
                &owned_scope,
                &sharing,
            )
        })
        .await;
        match outcome {
            Ok(Ok(report)) => {
                let event = AuditEvent {
                    tenant: Some(tenant),
                    scope: Some(&scope),
                    reason: Some("by_dpo"),
                    ..AuditEvent::admin("tenant_offboard", "ok")
                };
                if let Err(failure) = self.audit.record_async(&event).await {
                    tracing::error!(error = %failure, "audit line could not be written");
                }
                tracing::warn!(
                    tenant,
                    "tenant offboarded through the admin API; remove it from the config and reload"
                );
                json_response(StatusCode::OK, &report, "no-store")
            }
            Ok(Err(message)) => {
                tracing::error!(error = message, "offboarding failed");
                self.retention_audit(
                    "tenant_offboard",
                    "failed",
                    Some(tenant),
                    None,
                    Some("retention_unavailable"),
                )
                .await;
                error(StatusCode::SERVICE_UNAVAILABLE, "the offboarding failed; see the log")
            }
            Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the call did not finish"),
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

    /// One audit line per call: the action, its outcome, the tenant and the account number (a
    /// pseudonym), never a value.
    async fn retention_audit(
        &self,
        action: &'static str,
        outcome: &'static str,
        tenant: Option<&str>,
        account: Option<&str>,
        reason: Option<&'static str>,
    ) {
        // Only a configured tenant's id, and only an account number's shape, are recorded: the
        // path is the caller's and could hold anything.
        let tenant = tenant.filter(|t| self.retention_rules.contains_key(*t));
        let account =
            account.filter(|a| a.len() <= 64 && a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        let event =
            AuditEvent { tenant, account_number: account, reason, ..AuditEvent::admin(action, outcome) };
        if let Err(error) = self.audit.record_async(&event).await {
            tracing::error!(%error, "audit line could not be written");
        }
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
