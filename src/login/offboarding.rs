//! When a school has ended, on every replica at once (docs/RETENTION.md, "Offboarding a
//! school"), and what this replica tells the others about the key versions it holds
//! (src/retention/replicas.rs).
//!
//! A tenant is ended from its `offboard_on` date (the config every replica reads), or from the
//! moment an offboarding is recorded in the retention database every replica shares (the admin
//! API or `nymgate retention offboard` on any replica). Each login and each admin call asks the
//! database then, not a cached answer: a replica's answer can't be older than the call. If the
//! database can't answer, the call is refused (503): an ended school must not sign in because
//! the database was down. Only a yes is remembered (an offboarding is never undone).

use std::collections::HashSet;
use std::sync::Mutex;

use super::{FlowError, Login};
use crate::audit::AuditEvent;
use crate::retention::replicas::Holdings;
use crate::retention::RetentionError;

/// The tenants this process has seen offboarded in the database: an offboarding is final, so a
/// yes needs no second question.
#[derive(Debug, Default)]
pub(super) struct Ended(Mutex<HashSet<String>>);

impl Ended {
    fn knows(&self, tenant: &str) -> bool {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).contains(tenant)
    }

    fn remember(&self, tenant: &str) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).insert(tenant.to_owned());
    }
}

/// A retention error as a login refusal: an offboarding that committed while the login was in
/// flight is that refusal (`tenant_offboarded`), not an outage.
pub(super) fn flow_error(error: RetentionError) -> FlowError {
    match error {
        RetentionError::Offboarded => FlowError::BadRequest("tenant_offboarded"),
        other => FlowError::Retention(other),
    }
}

impl Login {
    /// Whether `tenant` is past its `offboard_on` date at `now` (the config's side alone).
    pub(super) fn offboarded_by_date(&self, tenant: &str, now: u64) -> bool {
        self.offboard_at.iter().any(|(t, at)| t == tenant && *at <= now)
    }

    /// Whether `tenant` has ended at `now`: past its `offboard_on` date, or offboarded in the
    /// shared retention database. From then on it signs nobody in and the admin API and the
    /// shell serve nothing of it but erasure.
    pub(super) async fn tenant_ended(&self, tenant: &str, now: u64) -> Result<bool, RetentionError> {
        if self.offboarded_by_date(tenant, now) || self.ended.knows(tenant) {
            return Ok(true);
        }
        let Some(store) = self.retention.clone() else { return Ok(false) };
        let owned = tenant.to_owned();
        let ended = tokio::task::spawn_blocking(move || store.is_offboarded(&owned))
            .await
            .map_err(|_| RetentionError::Database("the check did not finish".into()))??;
        if ended {
            self.ended.remember(tenant);
        }
        Ok(ended)
    }

    /// The key versions this replica holds, per scope of a configured tenant.
    pub fn holdings(&self) -> Holdings {
        let mut holdings = Holdings::new();
        for tenant in self.retention_rules.keys() {
            let (Ok(pseudonyms), Some(keys)) =
                (self.pseudonymizer.tenant(tenant), self.pseudonymizer.scope_keys(tenant))
            else {
                continue;
            };
            holdings.insert(pseudonyms.scope.clone(), keys.keys.iter().map(|k| k.version).collect());
        }
        holdings
    }

    /// Tells the other replicas which versions this one holds, then wraps each retaining
    /// tenant's data key under the newest version all live replicas hold, where that version
    /// changed since the last announcement (`last`, tenant -> version; empty after a reload):
    /// one read of the replicas per announcement, and a tenant's data key is touched only when
    /// the replicas' common version moved (writes and `keys retire` rewrap too). Nothing to do
    /// without a retention store.
    pub async fn announce(
        &self,
        now: u64,
        last: &mut std::collections::HashMap<String, Option<u32>>,
    ) -> Result<(), RetentionError> {
        let Some(store) = self.retention.clone() else { return Ok(()) };
        let holdings = self.holdings();
        let tenants: Vec<_> = self
            .retention_rules
            .keys()
            .filter_map(|t| Some((t.clone(), crate::retention::WrapKeys::of_tenant(&self.pseudonymizer, t)?)))
            .collect();
        let known = std::mem::take(last);
        let targets = tokio::task::spawn_blocking(move || {
            store.announce(&holdings, now)?;
            let live = store.live_replicas(now)?;
            let mut targets = std::collections::HashMap::new();
            for (tenant, keys) in &tenants {
                let target = crate::retention::replicas::wrap_version(keys, &live);
                if known.get(tenant) == Some(&target) {
                    targets.insert(tenant.clone(), target);
                    continue;
                }
                match store.rewrap(tenant, keys) {
                    Ok(_) | Err(RetentionError::Offboarded) => {
                        targets.insert(tenant.clone(), target);
                    }
                    // Not fatal, and tried again at the next announcement (not remembered):
                    // writes rewrap too, and a database that is down refuses logins of
                    // retaining tenants (fail closed), not the announcement.
                    Err(error) => {
                        tracing::warn!(tenant, %error, "retention: the data key could not be rewrapped now")
                    }
                }
            }
            Ok::<_, RetentionError>(targets)
        })
        .await
        .map_err(|_| RetentionError::Database("the announcement did not finish".into()))??;
        *last = targets;
        Ok(())
    }

    /// This replica stops: it no longer holds a rewrap or a `keys retire` back.
    pub async fn withdraw(&self) {
        let Some(store) = self.retention.clone() else { return };
        if let Ok(Err(error)) = tokio::task::spawn_blocking(move || store.withdraw()).await {
            tracing::warn!(%error, "retention: this replica could not withdraw its announcement; it expires by itself");
        }
    }
}

/// How often the announcing task looks whether a reload brought a new login face (a pointer
/// comparison): a reload's versions are announced within this.
const RELOAD_SEEN_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// The replica's announcement task (server.rs): announces at start, within
/// [`RELOAD_SEEN_WITHIN`] of each reload and every `ANNOUNCE_EVERY`; withdraws when `stopping`
/// resolves (the server leaves serving).
pub async fn announce_replica(
    current: impl Fn() -> Option<std::sync::Arc<Login>>,
    stopping: impl std::future::Future<Output = ()>,
) {
    use crate::retention::replicas::ANNOUNCE_EVERY;
    tokio::pin!(stopping);
    let mut announced: Option<(std::sync::Arc<Login>, tokio::time::Instant)> = None;
    // Each retaining tenant's wrap version at the last announcement; a reload starts afresh.
    let mut targets = std::collections::HashMap::new();
    loop {
        let login = current();
        let due = match (&announced, &login) {
            (Some((last, at)), Some(now)) => {
                !std::sync::Arc::ptr_eq(last, now) || at.elapsed() >= ANNOUNCE_EVERY
            }
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if let (true, Some(login)) = (due, login) {
            if announced.as_ref().is_some_and(|(last, _)| !std::sync::Arc::ptr_eq(last, &login)) {
                targets.clear();
            }
            if let Err(error) = login.announce(crate::clock::unix_now(), &mut targets).await {
                tracing::warn!(%error, "retention: this replica's key versions could not be announced; no data key is rewrapped meanwhile");
            }
            announced = Some((login, tokio::time::Instant::now()));
        }
        tokio::select! {
            _ = tokio::time::sleep(RELOAD_SEEN_WITHIN) => {}
            _ = &mut stopping => {
                if let Some((login, _)) = announced {
                    login.withdraw().await;
                }
                return;
            }
        }
    }
}

impl Login {
    /// How often the retention store is culled, when there is one.
    pub fn retention_interval(&self) -> Option<std::time::Duration> {
        self.retention.as_ref()?;
        self.retention_cull.map(|(_, interval)| std::time::Duration::from_secs(interval))
    }

    /// The culling job at `now` (docs/RETENTION.md): offboarded tenants' records go, then
    /// records not seen within `cull_after`. Returns how many records were culled; each
    /// offboarding is audited.
    pub async fn cull_retention(&self, now: u64) -> Result<usize, crate::retention::RetentionError> {
        let (Some(store), Some((after, _))) = (self.retention.clone(), self.retention_cull) else {
            return Ok(0);
        };
        // An offboarding by date is an erasure, audited as one: not while the log can't be
        // written. The job runs again at its next interval.
        if self.audit_failing().await {
            return Err(crate::retention::RetentionError::Database(
                "culling postponed: the audit log cannot be written".into(),
            ));
        }
        let offboard = self.offboard_at.clone();
        let (culled, offboarded) = tokio::task::spawn_blocking(move || store.cull_due(now, after, &offboard))
            .await
            .map_err(|_| crate::retention::RetentionError::Database("the cull did not finish".into()))??;
        for (tenant, removed) in offboarded.iter().filter(|(_, removed)| *removed > 0) {
            tracing::warn!(tenant, removed, "retention: the tenant's offboarding date has come; its records are erased. Erase its pseudonym keys with `nymgate retention offboard`");
            let event = AuditEvent {
                tenant: Some(tenant),
                reason: Some("offboard_date"),
                ..AuditEvent::admin("tenant_offboard", "ok")
            };
            let _ = self.record(event).await;
        }
        Ok(culled)
    }
}
