//! `nymgate keys`: the token-signing key (`keys signing`) and the pseudonym keyring, one random
//! 256-bit key per scope and version: create a scope, list, rotate, retire a version, erase a
//! scope (crypto-shredding), back up and restore (docs/PSEUDONYMS.md, "Scopes and keys";
//! deploy/README.md, "Backing up the keyring"). Every keyring change is audited and fails closed
//! (docs/PSEUDONYMS.md, "Scopes and keys"): its `started` line is written before it runs, or it
//! does not run; refusals and failures have their line with a reason code. Exit 0 done, 1
//! refused or failed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use nymgate::certs;
use nymgate::config::Config;

#[derive(clap::Args)]
pub struct KeyringArgs {
    /// The keyring file (created with mode 0600 by `keys new`).
    #[arg(long)]
    keyring: PathBuf,
    /// Append the audit line to this file instead of standard error.
    #[arg(long)]
    audit: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Write a new token-signing key (PKCS#8 PEM, mode 0600) for `login.signing.key_file`,
    /// and print its key id. Rotation: point `key_file` at the new one and list the old one in
    /// `previous_key_files` until the tokens it signed have expired.
    Signing {
        /// The key file to write (refused if it exists); `login.signing.key_file` names it.
        #[arg(long)]
        out: PathBuf,
        /// EdDSA (default) or ES256.
        #[arg(long, default_value = "EdDSA", value_parser = parse_algorithm)]
        alg: nymgate::mint::Algorithm,
    },
    /// Create the first key of a new scope (a tenant id, or a shared scope such as a municipality).
    New {
        #[command(flatten)]
        keyring: KeyringArgs,
        /// The pseudonym scope: a tenant id, or a scope tenants share (`[[tenants]] scope`).
        #[arg(long)]
        scope: String,
    },
    /// List scopes and key versions (never the keys).
    List {
        #[command(flatten)]
        keyring: KeyringArgs,
    },
    /// Add a new key version; for the migration window tokens carry `sub` (new) and `sub_prev`.
    Rotate {
        #[command(flatten)]
        keyring: KeyringArgs,
        /// The pseudonym scope: a tenant id, or a scope tenants share (`[[tenants]] scope`).
        #[arg(long)]
        scope: String,
        /// How long tokens also carry the previous number (e.g. 30d); 0s for none.
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        window: std::time::Duration,
    },
    /// Delete an old key version (its account numbers can no longer be computed). With the
    /// retention store of `--config`, refused while a live replica has not loaded the current
    /// version; data keys still under the old one are wrapped again under the current one first.
    Retire {
        #[command(flatten)]
        keyring: KeyringArgs,
        /// The pseudonym scope whose old version goes: a tenant id, or a shared scope.
        #[arg(long)]
        scope: String,
        /// The version to delete (not the current one).
        #[arg(long)]
        version: u32,
        /// The nymgate config whose retention database depends on this keyring (its data keys
        /// and live replicas are asked first).
        #[arg(long)]
        config: Option<PathBuf>,
        /// No retention store uses this keyring: retire without asking one.
        #[arg(long, conflicts_with = "config")]
        no_retention_check: bool,
    },
    /// Delete every key of a scope: its account numbers become unlinkable to anyone, for good
    /// (crypto-shredding). Backups of the keyring must be destroyed too.
    Erase {
        #[command(flatten)]
        keyring: KeyringArgs,
        /// The pseudonym scope: a tenant id, or a scope tenants share (`[[tenants]] scope`).
        #[arg(long)]
        scope: String,
        /// The scope name again, to confirm. Without it, nymgate asks on the terminal.
        #[arg(long)]
        confirm: Option<String>,
    },
    /// Write a backup of the keyring (mode 0600) with a SHA-256 of its content and the erasure
    /// records (deploy/README.md, "Backing up the keyring").
    Backup {
        #[command(flatten)]
        keyring: KeyringArgs,
        /// The backup file to write (mode 0600); keep it off this machine.
        #[arg(long)]
        out: PathBuf,
    },
    /// Restore keys from a backup: verified first, then merged into the keyring under the
    /// writer lock; keys the keyring lacks are added, keys deleted since (its erasure records)
    /// stay deleted. Creates the keyring if it is missing.
    Restore {
        #[command(flatten)]
        keyring: KeyringArgs,
        /// The backup file (`keys backup --out`) to restore from.
        #[arg(long)]
        from: PathBuf,
        /// Only verify the backup and say what a restore would do.
        #[arg(long)]
        check: bool,
    },
}

fn parse_algorithm(text: &str) -> Result<nymgate::mint::Algorithm, String> {
    match text {
        "EdDSA" => Ok(nymgate::mint::Algorithm::EdDSA),
        "ES256" => Ok(nymgate::mint::Algorithm::ES256),
        _ => Err("EdDSA or ES256".into()),
    }
}

fn signing_key(out: &Path, alg: nymgate::mint::Algorithm) -> ExitCode {
    if out.exists() {
        eprintln!(
            "nymgate keys signing: {} exists; choose a new file (the old key is still needed for rotation)",
            out.display()
        );
        return ExitCode::FAILURE;
    }
    let (key, der) = nymgate::mint::SigningKey::generate(alg);
    match certs::write(out, nymgate::mint::pkcs8_pem(&der).as_bytes(), 0o600) {
        Ok(()) => {
            println!("wrote {} ({alg:?}, kid {})", out.display(), key.kid());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("nymgate keys signing: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one `nymgate keys` command: `signing` writes a file; `list` reads; every other one
/// changes the keyring under its writer lock, audited (`audited_key_change`).
pub fn run(command: KeysCommand) -> ExitCode {
    use nymgate::audit::AuditSink;
    use nymgate::clock::unix_now;
    use nymgate::pseudonym::keyring::Keyring;
    use nymgate::pseudonym::keyring_write::update;

    if let KeysCommand::Signing { out, alg } = &command {
        return signing_key(out, *alg);
    }

    let now = unix_now();
    // Each change runs only once its `started` line is on disk (`audited_key_change`), and
    // under the keyring's writer lock (keyring_write.rs `update`).
    let (args, action, scope, refusal, change): (
        &KeyringArgs,
        &'static str,
        Option<&str>,
        Refusal,
        KeyChange<'_>,
    ) = match &command {
        KeysCommand::List { keyring } => {
            return match Keyring::load(&keyring.keyring) {
                Ok(ring) => {
                    list_keys(&ring, now);
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("nymgate: {error}");
                    ExitCode::FAILURE
                }
            };
        }
        KeysCommand::New { keyring, scope } => (
            keyring,
            "keys_new",
            Some(scope),
            None,
            Box::new(move || {
                update(&keyring.keyring, true, |ring| ring.new_scope(scope, now))?;
                // Said, as every other keys change says what it did (it printed nothing).
                println!("created scope {scope}: key version 1, current");
                Ok(Some(1))
            }),
        ),
        KeysCommand::Rotate { keyring, scope, window } => (
            keyring,
            "keys_rotate",
            Some(scope),
            None,
            Box::new(move || {
                update(&keyring.keyring, false, |ring| ring.rotate(scope, now, window.as_secs())).map(Some)
            }),
        ),
        KeysCommand::Retire { keyring, scope, version, config, no_retention_check } => (
            keyring,
            "keys_retire",
            Some(scope),
            // Deny by default: without the config, the data keys and replicas that may depend on
            // the version can't be asked.
            (config.is_none() && !no_retention_check).then_some((
                "config_needed",
                "keys retire needs --config FILE (its retention database's data keys and live replicas are asked first), or --no-retention-check when no retention store depends on this keyring",
            )),
            Box::new(move || {
                let config = match config {
                    Some(path) => Some(Config::load(path).map_err(|e| {
                        nymgate::pseudonym::keyring::KeyringError::RetentionUnavailable(e.to_string())
                    })?),
                    None => None,
                };
                // Under the writer lock: no rotation slips in between the check and the retire.
                let rewrapped = update(&keyring.keyring, false, |ring| {
                    let rewrapped =
                        super::retire_check::prepare(config.as_ref(), ring, scope, *version, now)?;
                    ring.retire(scope, *version, now)?;
                    Ok(rewrapped)
                })?;
                println!("retired version {version} of scope {scope} ({rewrapped} data key(s) wrapped again under the current version first)");
                Ok(Some(*version))
            }),
        ),
        KeysCommand::Erase { keyring, scope, confirm } => {
            let confirmed = match confirm {
                    Some(given) => given == scope,
                    None => ask(&format!(
                        "This destroys every key of scope {scope:?}: its account numbers become unlinkable for good.\nType the scope name to confirm: "
                    ))
                    .is_some_and(|answer| answer == *scope),
                };
            let refusal = (!confirmed).then_some((
                "not_confirmed",
                "not confirmed: pass --confirm with the scope name, or type it when asked",
            ));
            let change: KeyChange<'_> = Box::new(move || {
                // Under the writer lock, and read back before "destroyed" is said: no
                // concurrent `new` or `rotate` can write the keys back (keyring_write.rs).
                let destroyed = update(&keyring.keyring, false, |ring| ring.erase(scope, now))?;
                println!("erased scope {scope}: {destroyed} key(s) destroyed; destroy keyring backups too");
                Ok(None)
            });
            (keyring, "keys_erase", Some(scope), refusal, change)
        }
        KeysCommand::Backup { keyring, out } => (
            keyring,
            "keys_backup",
            None,
            None,
            Box::new(move || {
                let ring = nymgate::pseudonym::keyring_backup::backup(&keyring.keyring, out, now)?;
                let keys: usize = ring.scopes().map(|(_, s)| s.keys.len()).sum();
                println!(
                        "wrote {} ({keys} key(s), {} erasure record(s)); check it with `nymgate keys restore --check`",
                        out.display(),
                        ring.erased().len()
                    );
                Ok(None)
            }),
        ),
        KeysCommand::Restore { keyring, from, check } => (
            keyring,
            if *check { "keys_backup_check" } else { "keys_restore" },
            None,
            None,
            Box::new(move || {
                let report = nymgate::pseudonym::keyring_backup::restore(&keyring.keyring, from, *check)?;
                let list = |v: &[(String, u32)]| {
                    v.iter().map(|(s, n)| format!("{s} v{n}")).collect::<Vec<_>>().join(", ")
                };
                println!(
                    "backup {} made {}: sound{}",
                    from.display(),
                    nymgate::audit::rfc3339(report.made),
                    if *check { "; nothing changed (--check)" } else { "" }
                );
                let verb = if *check { "would add" } else { "added" };
                println!("{verb}: {}", list(&report.added));
                println!("already present: {}", list(&report.present));
                println!("left out, deleted since (erasure records): {}", list(&report.dropped_erased));
                Ok(None)
            }),
        ),
        KeysCommand::Signing { .. } => unreachable!("answered above"),
    };
    let sink = AuditSink::from_path(args.audit.as_deref());
    audited_key_change(&sink, action, scope, refusal, change)
}

/// `nymgate keys list`: every key of every scope, with its state.
fn list_keys(ring: &nymgate::pseudonym::keyring::Keyring, now: u64) {
    println!("{:<24} {:>7}  {:<20}  state", "scope", "version", "created");
    for (name, scope) in ring.scopes() {
        let current = scope.current().version;
        let previous = scope.previous(now).map(|k| k.version);
        for key in &scope.keys {
            let state = if key.version == current {
                "current".to_owned()
            } else if Some(key.version) == previous {
                format!(
                    "previous (sub_prev until {})",
                    nymgate::audit::rfc3339(scope.migration_until.unwrap_or(0))
                )
            } else {
                "old (retire it when no longer needed)".to_owned()
            };
            println!("{name:<24} {:>7}  {:<20}  {state}", key.version, nymgate::audit::rfc3339(key.created));
        }
    }
}

/// A keyring change, run once its `started` line is written: the key version it made or
/// touched, if any.
type KeyChange<'a> = Box<dyn FnOnce() -> Result<Option<u32>, nymgate::pseudonym::keyring::KeyringError> + 'a>;
/// Why a keys command is refused before it runs: (reason code, message).
type Refusal = Option<(&'static str, &'static str)>;

/// Runs one keyring change with its audit lines (docs/PSEUDONYMS.md, "Audit"): a refusal or a
/// failure has its line with a reason code; a change writes `started` first and is not made
/// when that line can't be written, then its outcome. Only a valid scope name is recorded;
/// `scope` is `None` for the commands that name none (backup, restore).
fn audited_key_change(
    sink: &nymgate::audit::AuditSink,
    action: &'static str,
    scope: Option<&str>,
    refusal: Refusal,
    change: KeyChange<'_>,
) -> ExitCode {
    use nymgate::audit::AuditEvent;
    let named = scope.filter(|scope| nymgate::config::is_valid_name(scope));
    let line = |outcome: &'static str, reason: Option<&'static str>, version: Option<u32>| {
        let event =
            AuditEvent { scope: named, key_version: version, reason, ..AuditEvent::admin(action, outcome) };
        sink.record(&event)
            .map_err(|e| eprintln!("nymgate: the audit line could not be written: {e}"))
            .is_ok()
    };
    let refusal = refusal.or_else(|| {
        (scope.is_some() && named.is_none()).then_some((
            "bad_scope_name",
            "the scope name is not valid: use 1 to 64 of a-z, 0-9, '-' and '_'",
        ))
    });
    if let Some((reason, message)) = refusal {
        line("refused", Some(reason), None);
        eprintln!("nymgate: {message}");
        return ExitCode::FAILURE;
    }
    if !line("started", None, None) {
        eprintln!("nymgate: nothing was changed: every keyring change is audited");
        return ExitCode::FAILURE;
    }
    match change() {
        Ok(version) if line("ok", None, version) => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!("nymgate: the change is made, but its outcome line is missing (its started line is on record)");
            ExitCode::FAILURE
        }
        Err(error) => {
            line("failed", Some(keyring_reason(&error)), None);
            eprintln!("nymgate: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The audit reason code of a keyring error (a fixed word; the message stays on the terminal).
fn keyring_reason(error: &nymgate::pseudonym::keyring::KeyringError) -> &'static str {
    use nymgate::pseudonym::keyring::KeyringError;
    #[allow(unreachable_patterns)] // Variants another change may add get the general code.
    match error {
        KeyringError::File(_) => "keyring_unreadable",
        KeyringError::Format { .. } => "keyring_invalid",
        KeyringError::NoScope(_) => "no_scope",
        KeyringError::ScopeExists(_) => "scope_exists",
        KeyringError::BadScopeName(_) => "bad_scope_name",
        KeyringError::NoVersion { .. } => "no_version",
        KeyringError::RetireCurrent { .. } => "retire_current",
        KeyringError::InUse { .. } => "version_in_use",
        KeyringError::RetentionUnavailable(_) => "retention_unavailable",
        _ => "keyring_failed",
    }
}

/// Asks on the terminal; None when standard input is not a terminal or is closed.
fn ask(prompt: &str) -> Option<String> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return None;
    }
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok()?;
    Some(line.trim().to_owned())
}
