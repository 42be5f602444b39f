//! `nymgate retention …`: the admin API's data-subject actions from a shell on the host, and
//! tenant offboarding (docs/RETENTION.md, "From the shell"). Each action writes an audit line
//! to the config's audit log, with the tenant and account number and never a value.

use std::path::Path;

use crate::audit::{AuditEvent, AuditSink};
use crate::config::Config;
use crate::pseudonym::keyring::Keyring;
use crate::retention::{RetentionError, RetentionStore, Values, WrapKeys};

/// One action.
#[derive(Debug, Clone)]
pub enum Action {
    /// The whole record as JSON (access, portability).
    Show {
        tenant: String,
        account: String,
    },
    Rectify {
        tenant: String,
        account: String,
        values: Values,
    },
    Restrict {
        tenant: String,
        account: String,
    },
    Lift {
        tenant: String,
        account: String,
    },
    Erase {
        tenant: String,
        account: String,
    },
    /// The culling job, as of `at` (unix seconds; never earlier than now) or now.
    Cull {
        at: Option<u64>,
    },
    /// Erase everything of a tenant: its records, its data key, and its pseudonym scope's keys
    /// when no other tenant shares the scope.
    Offboard {
        tenant: String,
    },
}

/// Runs `action` against the config's store and keyring; the text to print, or why not.
pub fn run(config_path: &Path, action: &Action, now: u64) -> Result<String, String> {
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
    let settings = config.retention.as_ref().ok_or("the config has no [retention]")?;
    let keyring_file = &config.pseudonyms.as_ref().ok_or("the config has no [pseudonyms]")?.keyring_file;
    let store = RetentionStore::from_config(settings)?;
    let audit = AuditSink::from_config(&config.audit);
    let scope_of = |tenant: &str| -> Result<String, String> {
        let found = config.tenants.iter().find(|t| t.id == tenant).ok_or(format!("no tenant {tenant:?}"))?;
        Ok(found.scope.clone().unwrap_or_else(|| found.id.clone()))
    };
    let keys = |tenant: &str| -> Result<WrapKeys, String> {
        let ring = Keyring::load(keyring_file).map_err(|e| e.to_string())?;
        let scope = scope_of(tenant)?;
        Ok(WrapKeys::derive(ring.scope(&scope).map_err(|e| e.to_string())?, tenant))
    };
    let record = |action: &'static str, tenant: &str, account: Option<&str>, outcome: &'static str| {
        audit_line(&audit, action, tenant, account, outcome, "by_shell")
            .map_err(|e| format!("done, but its audit line could not be written: {e}"))
    };
    // A failed action has its audit line too; a tampered record says so (reason `tampered`), and
    // nothing of it is printed.
    let err = |action: &'static str, tenant: &str, account: &str| {
        let audit = &audit;
        let (tenant, account) = (tenant.to_owned(), account.to_owned());
        move |e: RetentionError| {
            let reason =
                if matches!(e, RetentionError::Tampered) { "tampered" } else { "retention_unavailable" };
            match audit_line(audit, action, &tenant, Some(&account), "failed", reason) {
                Ok(()) => e.to_string(),
                Err(audit_error) => format!("{e} (and its audit line could not be written: {audit_error})"),
            }
        }
    };
    // A tenant past its offboarding date serves nothing from then on, not only after the next
    // cull erases it (the login refuses it likewise). Erasure and offboarding stay open.
    let live = |tenant: &str| -> Result<(), String> {
        let found = config.tenants.iter().find(|t| t.id == tenant).ok_or(format!("no tenant {tenant:?}"))?;
        match found.offboard_at() {
            Some(at) if at <= now => Err(format!(
                "tenant {tenant:?} is past its offboarding date: its records are not served; run `nymgate retention cull` or `offboard`"
            )),
            _ => Ok(()),
        }
    };
    let found = |yes: bool, what: &str| if yes { Ok(what.to_owned()) } else { Err("no record".to_owned()) };
    match action {
        Action::Show { tenant, account } => {
            live(tenant)?;
            let shown = store.lookup(tenant, &keys(tenant)?, account).map_err(err(
                "retention_lookup",
                tenant,
                account,
            ))?;
            record("retention_lookup", tenant, Some(account), if shown.is_some() { "ok" } else { "failed" })?;
            let record = shown.ok_or("no record")?;
            Ok(serde_json::to_string_pretty(&record).expect("a record serializes"))
        }
        Action::Rectify { tenant, account, values } => {
            live(tenant)?;
            let done = store.rectify(tenant, &keys(tenant)?, account, values).map_err(err(
                "retention_rectify",
                tenant,
                account,
            ))?;
            record("retention_rectify", tenant, Some(account), if done { "ok" } else { "failed" })?;
            found(done, "rectified")
        }
        Action::Restrict { tenant, account } | Action::Lift { tenant, account } => {
            live(tenant)?;
            let restrict = matches!(action, Action::Restrict { .. });
            let name = if restrict { "retention_restrict" } else { "retention_lift" };
            let done = store
                .restrict(tenant, &keys(tenant)?, account, restrict)
                .map_err(err(name, tenant, account))?;
            record(name, tenant, Some(account), if done { "ok" } else { "failed" })?;
            found(done, if restrict { "restricted" } else { "restriction lifted" })
        }
        Action::Erase { tenant, account } => {
            scope_of(tenant)?;
            let done = store.erase(tenant, account).map_err(err("retention_erase", tenant, account))?;
            record("retention_erase", tenant, Some(account), if done { "ok" } else { "failed" })?;
            found(done, "erased")
        }
        Action::Cull { at } => {
            // Ahead of time only: running it as of the past would keep what is due.
            let now = at.map_or(now, |at| at.max(now));
            let offboard: Vec<(String, u64)> =
                config.tenants.iter().filter_map(|t| Some((t.id.clone(), t.offboard_at()?))).collect();
            let (culled, offboarded) =
                store.cull_due(now, settings.cull_after.as_secs(), &offboard).map_err(|e| e.to_string())?;
            for (tenant, _) in &offboarded {
                let event = AuditEvent {
                    tenant: Some(tenant),
                    reason: Some("offboard_date"),
                    ..AuditEvent::admin("tenant_offboard", "ok")
                };
                audit.record(&event).map_err(|e| e.to_string())?;
            }
            audit
                .record(&AuditEvent { reason: Some("by_shell"), ..AuditEvent::admin("retention_cull", "ok") })
                .map_err(|e| e.to_string())?;
            let offboarded: Vec<String> =
                offboarded.iter().map(|(t, n)| format!("{t} ({n} record(s))")).collect();
            Ok(format!(
                "culled {culled} record(s) not seen within cull_after; offboarded by date: {}",
                if offboarded.is_empty() { "none".to_owned() } else { offboarded.join(", ") }
            ))
        }
        Action::Offboard { tenant } => offboard(&config, &store, keyring_file, tenant, &audit),
    }
}

/// Writes one admin audit line about a record (tenant and account number, never a value).
fn audit_line(
    audit: &AuditSink,
    action: &'static str,
    tenant: &str,
    account: Option<&str>,
    outcome: &'static str,
    reason: &'static str,
) -> Result<(), String> {
    let event = AuditEvent {
        tenant: Some(tenant),
        account_number: account,
        reason: Some(reason),
        ..AuditEvent::admin(action, outcome)
    };
    audit.record(&event).map_err(|e| e.to_string())
}

/// The report of an offboarding: what was removed, counted.
fn offboard(
    config: &Config,
    store: &RetentionStore,
    keyring_file: &Path,
    tenant: &str,
    audit: &AuditSink,
) -> Result<String, String> {
    let found = config.tenants.iter().find(|t| t.id == tenant).ok_or(format!("no tenant {tenant:?}"))?;
    let scope = found.scope.clone().unwrap_or_else(|| found.id.clone());
    let sharing: Vec<String> = config
        .tenants
        .iter()
        .filter(|t| t.id != tenant && t.scope.as_deref().unwrap_or(&t.id) == scope)
        .map(|t| t.id.clone())
        .collect();
    let report = offboard_tenant(store, keyring_file, tenant, &scope, &sharing)?;
    let event = AuditEvent {
        tenant: Some(tenant),
        scope: Some(&scope),
        reason: Some("by_shell"),
        ..AuditEvent::admin("tenant_offboard", "ok")
    };
    audit.record(&event).map_err(|e| format!("done, but its audit line could not be written: {e}"))?;
    Ok(serde_json::to_string_pretty(&report).expect("a report serializes"))
}

/// Offboards `tenant` (the shell command and the admin API): its records and data key first
/// (once they are gone nothing is left to read, so a crash before the keys leaves nothing
/// readable behind), then its pseudonym scope's keys unless another tenant (`sharing`) uses the
/// scope. Returns the report.
pub fn offboard_tenant(
    store: &RetentionStore,
    keyring_file: &Path,
    tenant: &str,
    scope: &str,
    sharing: &[String],
) -> Result<serde_json::Value, String> {
    let records = store.offboard(tenant).map_err(|e| e.to_string())?;
    let keys_destroyed = if sharing.is_empty() {
        let mut ring = Keyring::load(keyring_file).map_err(|e| e.to_string())?;
        match ring.erase(scope) {
            Ok(destroyed) => {
                ring.save(keyring_file).map_err(|e| e.to_string())?;
                destroyed
            }
            // Already erased (a second run after an interruption).
            Err(_) => 0,
        }
    } else {
        0
    };
    Ok(serde_json::json!({
        "tenant": tenant,
        "retained_records_removed": records,
        "data_key_removed": true,
        "pseudonym_scope": scope,
        "scope_keys_destroyed": keys_destroyed,
        "scope_kept_for": sharing,
        "next": "remove the tenant from the config and reload; destroy backups of the keyring and of the retention database",
    }))
}
