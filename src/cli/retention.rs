//! `nymgate retention --config FILE …`: the admin API's data-subject actions from a shell on the
//! host (show, rectify, restrict, lift, erase), the culling job on demand, and tenant offboarding
//! (docs/RETENTION.md, "From the shell"). Each action writes its audit lines to the config's
//! audit log, with the tenant and account number and never a value; each refusal and failure
//! too; and a change that can't be audited is not made. The erasure of an offboarding is the
//! retention layer's [`nymgate::retention::offboard_tenant`], which the admin API calls too.
//! Exit 0 with the answer on standard output, 1 with the reason on standard error.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use nymgate::audit::{AuditEvent, AuditSink};
use nymgate::config::Config;
use nymgate::pseudonym::keyring::Keyring;
use nymgate::pseudonym::AccountNumber;
use nymgate::retention::{offboard_tenant, RetentionError, RetentionStore, Values, WrapKeys};

/// `nymgate retention`: data-subject actions on the retention store, and offboarding
/// (docs/RETENTION.md). Every action is audited to the config's audit log.
#[derive(Subcommand)]
pub enum RetentionCommand {
    /// Print one person's whole record as JSON (access, portability).
    Show(RecordArgs),
    /// Replace a record's values: `--values '{"name": ["…"]}'`, or `-` to read them from
    /// standard input (out of the shell history).
    Rectify {
        #[command(flatten)]
        record: RecordArgs,
        /// The new values as JSON, or `-` to read them from standard input.
        #[arg(long)]
        values: String,
    },
    /// Restrict a record, or record an objection: kept, no longer served to the platform.
    Restrict(RecordArgs),
    /// Lift a restriction.
    Lift(RecordArgs),
    /// Erase one record now.
    Erase(RecordArgs),
    /// Run the culling job now: tenants past their `offboard_on` lose their records, then
    /// records not seen within `retention.cull_after` go.
    Cull {
        /// As of this time (unix seconds) instead of now: to run a date's culling ahead, in a
        /// rehearsal or a test. Never earlier than now.
        #[arg(long)]
        at: Option<u64>,
    },
    /// Erase a tenant: its records, its data key, and its pseudonym scope's keys (when no other
    /// tenant shares the scope). Prints what was removed.
    Offboard {
        /// The tenant id (`[[tenants]] id`) to erase.
        #[arg(long)]
        tenant: String,
        /// The tenant id again, to confirm.
        #[arg(long)]
        confirm: String,
    },
}

#[derive(clap::Args)]
pub struct RecordArgs {
    /// The tenant id (`[[tenants]] id`) the record belongs to.
    #[arg(long)]
    tenant: String,
    /// The account number (the pseudonym the platform knows; `nymgate pseudonym` finds it).
    #[arg(long)]
    account: String,
}

/// Runs one `nymgate retention` command against `config`'s store and prints its answer.
pub fn run(config: &Path, command: RetentionCommand) -> ExitCode {
    let record = |r: RecordArgs| (r.tenant, r.account);
    let action = match command {
        RetentionCommand::Show(r) => {
            let (tenant, account) = record(r);
            Ok(Action::Show { tenant, account })
        }
        RetentionCommand::Rectify { record: r, values } => {
            let (tenant, account) = record(r);
            let text = if values == "-" {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                    .map(|_| text)
                    .map_err(|e| e.to_string())
            } else {
                Ok(values)
            };
            text.map(|values| Action::Rectify { tenant, account, values })
        }
        RetentionCommand::Restrict(r) => {
            let (tenant, account) = record(r);
            Ok(Action::Restrict { tenant, account })
        }
        RetentionCommand::Lift(r) => {
            let (tenant, account) = record(r);
            Ok(Action::Lift { tenant, account })
        }
        RetentionCommand::Erase(r) => {
            let (tenant, account) = record(r);
            Ok(Action::Erase { tenant, account })
        }
        RetentionCommand::Cull { at } => Ok(Action::Cull { at }),
        RetentionCommand::Offboard { tenant, confirm } => Ok(Action::Offboard { tenant, confirm }),
    };
    let now = nymgate::clock::unix_now();
    super::print_outcome(action.and_then(|action| act(config, &action, now)))
}

/// One action, as the operator typed it: nothing here is trusted until `act` checks it.
#[derive(Debug, Clone)]
enum Action {
    /// The whole record as JSON (access, portability).
    Show {
        tenant: String,
        account: String,
    },
    Rectify {
        tenant: String,
        account: String,
        /// The new values as JSON text (`{"name": ["…"]}`), parsed by `act`.
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
fn act(config_path: &Path, action: &Action, now: u64) -> Result<String, String> {
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
        Err(problem) => return shell.fail("retention_unavailable", problem.to_string()),
    };
    let keys = |tenant: &nymgate::config::TenantConfig| -> Result<WrapKeys, String> {
        let ring = Keyring::load(keyring_file).map_err(|e| e.to_string())?;
        let scope = tenant.scope_name().to_owned();
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
        Action::Offboard { .. } => offboard(&config, &store, keyring_file, tenant_id, &shell, now),
    }
}

/// Offboards `tenant` between its own `tenant_offboard` lines; the report of what was removed,
/// counted. A keyring that could not be written here fails the command (`keyring_unwritable`),
/// though the records are gone: the operator must still erase the scope where it is kept.
fn offboard(
    config: &Config,
    store: &RetentionStore,
    keyring_file: &Path,
    tenant: &str,
    shell: &Shell<'_>,
    now: u64,
) -> Result<String, String> {
    let found = config.tenants.iter().find(|t| t.id == tenant).ok_or(format!("no tenant {tenant:?}"))?;
    let scope = found.scope_name().to_owned();
    let sharing: Vec<String> = config
        .tenants
        .iter()
        .filter(|t| t.id != tenant && t.scope_name() == scope)
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
    let report = match offboard_tenant(store, keyring_file, tenant, &scope, &sharing, now) {
        Ok(report) => report,
        Err(error) => return shell.fail("retention_unavailable", error.to_string()),
    };
    if let Some(message) = &report.scope_keys_not_erased {
        return shell.fail(
            "keyring_unwritable",
            format!("the tenant is offboarded and its records are erased, but {message}"),
        );
    }
    line("ok", "by_shell").map_err(|e| {
        format!("done, but its outcome line could not be written (its started line is on record): {e}")
    })?;
    Ok(serde_json::to_string_pretty(&report.to_json()).expect("a report serializes"))
}
