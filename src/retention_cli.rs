//! `nymgate retention …`: the admin API's data-subject actions from a shell on the host, and
//! tenant offboarding (docs/RETENTION.md, "From the shell"). Each action writes its audit lines
//! to the config's audit log, with the tenant and account number and never a value; each
//! refusal and failure too; and a change that can't be audited is not made.

use std::path::Path;

use crate::audit::{AuditEvent, AuditSink};
use crate::config::Config;
use crate::pseudonym::keyring::Keyring;
use crate::pseudonym::AccountNumber;
use crate::retention::{RetentionError, RetentionStore, Values, WrapKeys};

/// One action, as the operator typed it: nothing here is trusted until `run` checks it.
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
        /// The new values as JSON text (`{"name": ["…"]}`), parsed by `run`.
        values: String,
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
    /// when no other tenant shares the scope. `confirm` must repeat the tenant id.
    Offboard {
        tenant: String,
        confirm: String,
    },
}

impl Action {
    /// The audit action's name.
    fn name(&self) -> &'static str {
        match self {
            Action::Show { .. } => "retention_lookup",
            Action::Rectify { .. } => "retention_rectify",
            Action::Restrict { .. } => "retention_restrict",
            Action::Lift { .. } => "retention_lift",
            Action::Erase { .. } => "retention_erase",
            Action::Cull { .. } => "retention_cull",
            Action::Offboard { .. } => "tenant_offboard",
        }
    }

    /// The tenant and account number as typed, where the action names them.
    fn subject(&self) -> (Option<&str>, Option<&str>) {
        match self {
            Action::Show { tenant, account }
            | Action::Rectify { tenant, account, .. }
            | Action::Restrict { tenant, account }
            | Action::Lift { tenant, account }
            | Action::Erase { tenant, account } => (Some(tenant), Some(account)),
            Action::Offboard { tenant, .. } => (Some(tenant), None),
            Action::Cull { .. } => (None, None),
        }
    }
}

/// The audit lines of one shell action (reason `by_shell` when it runs). The tenant is
/// recorded only once it is a configured one, the account number only as an [`AccountNumber`].
struct Shell<'a> {
    audit: &'a AuditSink,
    action: &'static str,
    tenant: Option<&'a str>,
    account: Option<&'a str>,
}

impl Shell<'_> {
    fn line(&self, outcome: &'static str, reason: &'static str) -> std::io::Result<()> {
        self.audit.record(&AuditEvent {
            tenant: self.tenant,
            account_number: self.account,
            reason: Some(reason),
            ..AuditEvent::admin(self.action, outcome)
        })
    }

    /// A refusal before anything ran: its line, then the message.
    fn refuse(&self, reason: &'static str, message: String) -> Result<String, String> {
        match self.line("refused", reason) {
            Ok(()) => Err(message),
            Err(e) => Err(format!("{message} (and its audit line could not be written: {e})")),
        }
    }

    /// A failure after the action began: its line, then the message.
    fn fail(&self, reason: &'static str, message: String) -> Result<String, String> {
        match self.line("failed", reason) {
            Ok(()) => Err(message),
            Err(e) => Err(format!("{message} (and its audit line could not be written: {e})")),
        }
    }

    /// Before a change: the `started` line, or nothing is done (the audit log fails closed).
    fn start(&self) -> Result<(), String> {
        self.line("started", "by_shell")
            .map_err(|e| format!("the audit line could not be written, so nothing was done: {e}"))
    }

    /// After it: the outcome line. The `started` line is on record either way.
    fn done(&self, outcome: &'static str, reason: &'static str) -> Result<(), String> {
        self.line(outcome, reason).map_err(|e| {
            format!("done, but its outcome line could not be written (its started line is on record): {e}")
        })
    }
}

/// Runs `action` against the config's store and keyring; the text to print, or why not.
/// Every refusal and failure after the config is read has its audit line (docs/RETENTION.md,
/// "From the shell"); a change writes a `started` line first and does nothing when it can't.
pub fn run(config_path: &Path, action: &Action, now: u64) -> Result<String, String> {
    // Until the config is read there is no audit log to write to: only this error is unaudited.
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
    let audit = AuditSink::from_config(&config.audit);
    let (typed_tenant, typed_account) = action.subject();
    let tenant = typed_tenant.and_then(|t| config.tenants.iter().find(|c| c.id == t));
    let account = typed_account.and_then(AccountNumber::parse);
    let shell = Shell {
        audit: &audit,
        action: action.name(),
        tenant: tenant.map(|t| t.id.as_str()),
        account: account.as_ref().map(AccountNumber::as_str),
    };
    if typed_tenant.is_some() && tenant.is_none() {
        return shell.refuse("unknown_tenant", "no such tenant in the config: nothing was done".into());
    }
    if typed_account.is_some() && account.is_none() {
        return shell.refuse(
            "bad_account_number",
            "--account is not an account number (v1-XXXX-XXXX-XXXX-XXXX, as `nymgate pseudonym` prints it): nothing was done".into(),
        );
    }
    if let Action::Offboard { tenant, confirm } = action {
        if confirm != tenant {
            return shell
                .refuse("not_confirmed", "--confirm must repeat the tenant id: nothing was done".into());
        }
    }
    let Some(settings) = config.retention.as_ref() else {
        return shell.refuse("no_retention", "the config has no [retention]".into());
    };
    let Some(keyring_file) = config.pseudonyms.as_ref().map(|p| &p.keyring_file) else {
        return shell.refuse("no_pseudonym_keys", "the config has no [pseudonyms]".into());
    };
    let store = match RetentionStore::from_config(settings) {
        Ok(store) => store,
        Err(message) => return shell.fail("retention_unavailable", message),
    };
    let keys = |tenant: &crate::config::TenantConfig| -> Result<WrapKeys, String> {
        let ring = Keyring::load(keyring_file).map_err(|e| e.to_string())?;
        let scope = tenant.scope.clone().unwrap_or_else(|| tenant.id.clone());
        Ok(WrapKeys::derive(&scope, ring.scope(&scope).map_err(|e| e.to_string())?, &tenant.id))
    };
    let (tenant_id, account) = (shell.tenant.unwrap_or(""), shell.account.unwrap_or(""));
    // A tampered record says so (reason `tampered`), and nothing of it is printed.
    let unavailable = |e: RetentionError| {
        let reason = if matches!(e, RetentionError::Tampered) { "tampered" } else { "retention_unavailable" };
        shell.fail(reason, e.to_string())
    };
    // A tenant past its offboarding date serves nothing from then on, not only after the next
    // cull erases it (the login refuses it likewise). Erasure and offboarding stay open.
    let serves = matches!(
        action,
        Action::Show { .. } | Action::Rectify { .. } | Action::Restrict { .. } | Action::Lift { .. }
    );
    if serves && tenant.and_then(|t| t.offboard_at()).is_some_and(|at| at <= now) {
        return shell.refuse(
            "tenant_offboarded",
            format!("tenant {tenant_id:?} is past its offboarding date: its records are not served; run `nymgate retention cull` or `offboard`"),
        );
    }
    // Offboarded on any replica: recorded in the database they share.
    if serves {
        match store.is_offboarded(tenant_id) {
            Ok(false) => {}
            Ok(true) => {
                return shell.refuse(
                    "tenant_offboarded",
                    format!("tenant {tenant_id:?} is offboarded: its records are not served"),
                )
            }
            Err(e) => return unavailable(e),
        }
    }
    match action {
        Action::Show { .. } => {
            let keys = match keys(tenant.expect("checked above")) {
                Ok(keys) => keys,
                Err(message) => return shell.fail("no_pseudonym_keys", message),
            };
            let shown = match store.lookup(tenant_id, &keys, account) {
                Ok(shown) => shown,
                Err(e) => return unavailable(e),
            };
            // The line comes before the answer: a lookup that can't be audited shows nothing.
            let Some(record) = shown else { return shell.fail("no_record", "no record".into()) };
            shell
                .line("ok", "by_shell")
                .map_err(|e| format!("the audit line could not be written, so no answer is given: {e}"))?;
            Ok(serde_json::to_string_pretty(&record).expect("a record serializes"))
        }
        Action::Rectify { values, .. } => {
            let Ok(values) = serde_json::from_str::<Values>(values) else {
                let message =
                    "--values must be a JSON object of lists: {\"name\": [\"…\"]}: nothing was done";
                return shell.refuse("bad_values", message.into());
            };
            let keys = match keys(tenant.expect("checked above")) {
                Ok(keys) => keys,
                Err(message) => return shell.fail("no_pseudonym_keys", message),
            };
            shell.start()?;
            match store.rectify(tenant_id, &keys, account, &values) {
                Ok(true) => shell.done("ok", "by_shell").map(|()| "rectified".to_owned()),
                Ok(false) => shell.fail("no_record", "no record".into()),
                Err(e) => unavailable(e),
            }
        }
        Action::Restrict { .. } | Action::Lift { .. } => {
            let restrict = matches!(action, Action::Restrict { .. });
            // The restriction is bound into the record's encryption: changing it re-encrypts.
            let keys = match keys(tenant.expect("checked above")) {
                Ok(keys) => keys,
                Err(message) => return shell.fail("no_pseudonym_keys", message),
            };
            shell.start()?;
            match store.restrict(tenant_id, &keys, account, restrict) {
                Ok(true) => shell
                    .done("ok", "by_shell")
                    .map(|()| if restrict { "restricted" } else { "restriction lifted" }.to_owned()),
                Ok(false) => shell.fail("no_record", "no record".into()),
                Err(e) => unavailable(e),
            }
        }
        Action::Erase { .. } => {
            shell.start()?;
            match store.erase(tenant_id, account) {
                Ok(true) => shell.done("ok", "by_shell").map(|()| "erased".to_owned()),
                Ok(false) => shell.fail("no_record", "no record".into()),
                Err(e) => unavailable(e),
            }
        }
        Action::Cull { at } => {
            // Ahead of time only: running it as of the past would keep what is due.
            let now = at.map_or(now, |at| at.max(now));
            let offboard: Vec<(String, u64)> =
                config.tenants.iter().filter_map(|t| Some((t.id.clone(), t.offboard_at()?))).collect();
            shell.start()?;
            let (culled, offboarded) = match store.cull_due(now, settings.cull_after.as_secs(), &offboard) {
                Ok(done) => done,
                Err(e) => return unavailable(e),
            };
            for (tenant, _) in &offboarded {
                let event = AuditEvent {
                    tenant: Some(tenant),
                    reason: Some("offboard_date"),
                    ..AuditEvent::admin("tenant_offboard", "ok")
                };
                audit
                    .record(&event)
                    .map_err(|e| format!("done, but an audit line could not be written: {e}"))?;
            }
            shell.done("ok", "by_shell")?;
            let offboarded: Vec<String> =
                offboarded.iter().map(|(t, n)| format!("{t} ({n} record(s))")).collect();
            Ok(format!(
                "culled {culled} record(s) not seen within cull_after; offboarded by date: {}",
                if offboarded.is_empty() { "none".to_owned() } else { offboarded.join(", ") }
            ))
        }
        Action::Offboard { .. } => offboard(&config, &store, keyring_file, tenant_id, &shell),
    }
}

/// The report of an offboarding: what was removed, counted.
fn offboard(
    config: &Config,
    store: &RetentionStore,
    keyring_file: &Path,
    tenant: &str,
    shell: &Shell<'_>,
) -> Result<String, String> {
    let found = config.tenants.iter().find(|t| t.id == tenant).ok_or(format!("no tenant {tenant:?}"))?;
    let scope = found.scope.clone().unwrap_or_else(|| found.id.clone());
    let sharing: Vec<String> = config
        .tenants
        .iter()
        .filter(|t| t.id != tenant && t.scope.as_deref().unwrap_or(&t.id) == scope)
        .map(|t| t.id.clone())
        .collect();
    let line = |outcome: &'static str, reason: &'static str| {
        shell.audit.record(&AuditEvent {
            tenant: Some(tenant),
            scope: Some(&scope),
            reason: Some(reason),
            ..AuditEvent::admin("tenant_offboard", outcome)
        })
    };
    line("started", "by_shell")
        .map_err(|e| format!("the audit line could not be written, so nothing was done: {e}"))?;
    let report = match offboard_tenant(store, keyring_file, tenant, &scope, &sharing) {
        Ok(report) => report,
        Err(message) => return shell.fail("retention_unavailable", message),
    };
    if let Some(message) = report["scope_keys_not_erased"].as_str() {
        return shell.fail(
            "keyring_unwritable",
            format!("the tenant is offboarded and its records are erased, but {message}"),
        );
    }
    line("ok", "by_shell").map_err(|e| {
        format!("done, but its outcome line could not be written (its started line is on record): {e}")
    })?;
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
    let records = store.offboard(tenant, crate::clock::unix_now()).map_err(|e| e.to_string())?;
    // From here the school is ended on every replica (the offboarding is recorded in the
    // shared database): a keyring that can't be written (a read-only Kubernetes Secret) leaves
    // its keys to be erased where the keyring is kept, and the report says so.
    let mut keys_not_erased = None;
    let keys_destroyed = if sharing.is_empty() {
        // Under the keyring's writer lock, as every `nymgate keys` writer: a concurrent rotate
        // can't write the erased keys back (keyring_write.rs).
        let erased = crate::pseudonym::keyring_write::update(keyring_file, false, |ring| {
            match ring.erase(scope, crate::clock::unix_now()) {
                Ok(destroyed) => Ok(Some(destroyed)),
                // Already erased (a second run after an interruption): nothing to write.
                Err(_) => Ok(None),
            }
        });
        match erased {
            Ok(destroyed) => destroyed.unwrap_or(0),
            Err(error) => {
                tracing::error!(%error, "offboarding: the scope's keys could not be erased here");
                keys_not_erased = Some(format!(
                    "the keyring could not be written here: erase the scope with `nymgate keys erase --scope {scope}` where the keyring is kept, then give every replica the new keyring (docs/DEPLOY.md)"
                ));
                0
            }
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
        "scope_keys_not_erased": keys_not_erased,
        "scope_kept_for": sharing,
        "next": "remove the tenant from the config and reload; destroy backups of the keyring and of the retention database",
    }))
}
