//! What a login that passed every check still has to do, and in which order (docs/LOGIN.md,
//! "The audit log"): its audit line first, then its retention record, then its response.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use http::Response;

use super::{pages, Login, LoginContext};
use crate::audit::AuditEvent;
use crate::body::Body;
use crate::pseudonym::PseudonymousLogin;
use crate::retention::{RetentionError, RetentionStore, Values, WrapKeys};

/// The reason code of an attempt refused because its audit line could not be written. It is
/// counted in `nymgate_logins_total` and logged; it can't be on the audit line it is about,
/// and the `audit_sink` line that ends the outage counts such attempts.
pub(super) const AUDIT_UNAVAILABLE: &str = "audit_unavailable";

/// An audit line could not be written (counted and logged where it happened).
#[derive(Debug, Clone, Copy)]
pub(super) struct AuditUnavailable;

/// A login decided, nothing of it delivered or kept yet.
pub(super) struct Decided {
    /// The code redirect, the session cookie or the SAML form: built, not sent.
    pub response: Response<Body>,
    pub login: PseudonymousLogin,
    /// The retention record the tenant keeps for this login, if any.
    pub record: Option<PendingRecord>,
}

/// A retention record to write once the login is audited (src/retention).
pub(super) struct PendingRecord {
    pub store: Arc<RetentionStore>,
    pub tenant: String,
    pub keys: WrapKeys,
    pub account: String,
    /// The values the tenant keeps; they leave memory only encrypted, in the store.
    pub values: Values,
    pub now: u64,
}

impl std::fmt::Debug for PendingRecord {
    /// Never the values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRecord").field("tenant", &self.tenant).finish_non_exhaustive()
    }
}

impl PendingRecord {
    /// Writes the record (a blocking call, off the runtime's threads).
    pub async fn write(self) -> Result<(), RetentionError> {
        let PendingRecord { store, tenant, keys, account, values, now } = self;
        tokio::task::spawn_blocking(move || store.remember(&tenant, &keys, &account, &values, now))
            .await
            .map_err(|_| RetentionError::Database("the write did not finish".into()))?
    }
}

/// At most one try of a failing audit log per second from `/readyz`: a probe is a write and a
/// sync, and the admin listener can be asked as often as anyone likes.
#[derive(Debug, Default)]
pub(super) struct ProbeGate {
    /// Unix seconds of the last try.
    last: AtomicU64,
}

impl ProbeGate {
    /// Whether a try may start now (and if so, it is this caller's).
    pub fn try_begin(&self) -> bool {
        let now = crate::clock::unix_now();
        let last = self.last.load(Ordering::Acquire);
        last != now && self.last.compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

impl Login {
    /// Makes a login that passed every check take effect, in this order (docs/LOGIN.md, "The
    /// audit log"): its audit line on disk first, then the retention record, and only then may
    /// the caller hand over the response (the code, the session or the SAML Response), which
    /// is built but not yet sent. So a login is never delivered or retained without its line:
    /// when the line can't be written, the login is refused with 503 and nothing is left
    /// behind. When the record then can't be written, the login is refused too, and a second
    /// line with the same request id says so: a request id's last line is its outcome.
    pub(super) async fn commit(
        &self,
        login: PseudonymousLogin,
        record: Option<PendingRecord>,
        ctx: &LoginContext<'_>,
        protocol: &'static str,
    ) -> Result<(), Response<Body>> {
        let audited = self
            .record(AuditEvent {
                tenant: Some(&login.tenant),
                account_number: Some(login.sub.as_str()),
                key_version: Some(login.nym_ver),
                ..AuditEvent::login("ok", protocol, ctx.client.to_string(), ctx.request_id)
            })
            .await;
        if audited.is_err() {
            self.count(Some(&login.tenant), protocol, "failed", AUDIT_UNAVAILABLE);
            tracing::warn!(
                request_id = ctx.request_id,
                tenant = login.tenant,
                reason = AUDIT_UNAVAILABLE,
                "login refused: its audit line could not be written"
            );
            return Err(self.audit_unavailable(Some(&login.tenant), ctx));
        }
        if let Some(record) = record {
            if let Err(error) = record.write().await {
                let error = super::offboarding::flow_error(error);
                return Err(self.failed(Some(&login.tenant), error, ctx, Some(protocol)).await);
            }
        }
        self.count(Some(&login.tenant), protocol, "ok", "none");
        // Claim names only: what the IdP sent that the platform does not get.
        tracing::info!(request_id = ctx.request_id, tenant = login.tenant, protocol, removed = ?login.removed, "login");
        Ok(())
    }

    /// 503 for an attempt whose audit line could not be written (the audit log fails closed).
    pub(super) fn audit_unavailable(&self, tenant: Option<&str>, ctx: &LoginContext<'_>) -> Response<Body> {
        pages::audit_unavailable(ctx.lang, self.branding_for(tenant), ctx.request_id)
    }

    /// Writes one audit line. `Err` when it could not be written: counted, logged, and the
    /// caller refuses what it was about to do (the audit log fails closed).
    pub(super) async fn record(&self, event: AuditEvent<'_>) -> Result<(), AuditUnavailable> {
        self.audit.record_async(&event).await.map_err(|error| {
            self.metrics.audit_failure(event.kind);
            tracing::error!(%error, action = event.action, "audit line could not be written; the attempt is refused");
            AuditUnavailable
        })
    }

    /// The audit log is failing (for `/readyz`); while it is, tries it again, at most once a
    /// second, so the first write that succeeds ends the outage even with no traffic.
    pub async fn audit_failing(&self) -> bool {
        if self.audit.is_failing() && self.audit_probe.try_begin() {
            let _ = self.audit.probe().await;
        }
        self.audit.is_failing()
    }

    /// Writes the refused admin calls not yet on an audit line (at shutdown).
    pub async fn flush_admin_refusals(&self) {
        self.admin_refusals.flush().await;
    }
}
