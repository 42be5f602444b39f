//! The `nymgate` command: a thin layer over the library.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use nymgate::config::{Config, ConfigError, LogConfig, LogFormat};
use nymgate::server::{self, RunningServer};
use nymgate::{certs, telemetry, tls};

#[cfg(test)]
#[path = "cli_help_tests.rs"]
mod cli_help_tests;

#[derive(Parser)]
#[command(
    name = "nymgate",
    version,
    about = "A pseudonymizing SSO gateway: a TLS reverse proxy that hands the platform only pseudonymous logins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve with a config file. SIGHUP reloads the certificate; SIGTERM drains and stops.
    Serve {
        /// The config file (deploy/nymgate.example.toml lists every field).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file and explain each problem by its field; exit 0 only when valid.
    Check {
        /// The config file to check, as `serve` would read it.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Everything on loopback with no setup: development certificates, a demo school IdP with
    /// made-up people, nymgate, and the built-in echo platform that shows what it receives.
    Demo {
        /// Folder for the demo's certificates and config (default: a new temporary folder).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// HTTPS port on 127.0.0.1.
        #[arg(long, default_value_t = 8443)]
        port: u16,
        /// Admin port on 127.0.0.1 (/healthz, /readyz, /metrics).
        #[arg(long, default_value_t = 9090)]
        admin_port: u16,
        /// Serve only the demo school IdP, for a nymgate deployed elsewhere (deploy/compose):
        /// write the demo's keys and secrets into --dir, then serve on --idp-listen.
        #[arg(long, requires = "dir")]
        idp_only: bool,
        /// --idp-only: where the IdP listens.
        #[arg(long, default_value = "0.0.0.0:9443")]
        idp_listen: std::net::SocketAddr,
        /// --idp-only: the IdP's address as browsers and nymgate both reach it.
        #[arg(long, default_value = "https://idp.localhost:9443")]
        idp_url: String,
        /// --idp-only: nymgate's public URL (where the IdP sends browsers back).
        #[arg(long, default_value = "https://localhost:8443")]
        public_url: String,
    },
    /// Complete logins under load against a running nymgate, with a built-in IdP that is never
    /// the bottleneck (docs/LOADTEST.md). Exit status 2 when any login failed.
    Loadtest(Box<nymgate::loadtest::Options>),
    /// Ask a running nymgate's admin listener whether it lives (`/healthz`) or is ready
    /// (`/readyz`): exit 0 on 200, 1 otherwise. For container health checks, where the image
    /// has no shell or curl.
    Health {
        /// The admin listener's address: HOST:PORT or http://HOST:PORT, as `loadtest --admin`.
        #[arg(long, default_value = "127.0.0.1:9090", value_parser = nymgate::admin_address::parse)]
        admin: std::net::SocketAddr,
        /// Ask `/readyz` instead of `/healthz`.
        #[arg(long)]
        ready: bool,
    },
    /// Development certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Manage the pseudonym keyring: one random 256-bit key per scope and version.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The retention store: data-subject actions and offboarding.
    Retention {
        /// nymgate's config file: its `[retention]` store, tenants and audit log.
        #[arg(long, short)]
        config: PathBuf,
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Print the account number a known person has in a tenant, for a data-subject request
    /// (access, erasure). Writes an audit line without the subject.
    Pseudonym {
        /// nymgate's config file: its tenants, keyring and audit log.
        #[arg(long, short)]
        config: PathBuf,
        /// The tenant id (`[[tenants]] id`) the person signs in at.
        #[arg(long)]
        tenant: String,
        /// The IdP's stable subject (`sub`, Entra `oid`, SAML NameID or attribute). `-` reads it
        /// from standard input, keeping it out of the shell history and the process list.
        #[arg(long)]
        subject: String,
        /// The issuer part of the input (OIDC `iss`, SAML entity id, Entra directory id);
        /// default: the tenant's configured `issuer`.
        #[arg(long)]
        issuer: Option<String>,
    },
}

/// `nymgate retention`: data-subject actions on the retention store, and offboarding
/// (docs/RETENTION.md). Every action is audited to the config's audit log.
#[derive(Subcommand)]
enum RetentionCommand {
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
struct RecordArgs {
    /// The tenant id (`[[tenants]] id`) the record belongs to.
    #[arg(long)]
    tenant: String,
    /// The account number (the pseudonym the platform knows; `nymgate pseudonym` finds it).
    #[arg(long)]
    account: String,
}

#[derive(clap::Args)]
struct KeyringArgs {
    /// The keyring file (created with mode 0600 by `keys new`).
    #[arg(long)]
    keyring: PathBuf,
    /// Append the audit line to this file instead of standard error.
    #[arg(long)]
    audit: Option<PathBuf>,
}

#[derive(Subcommand)]
enum KeysCommand {
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

#[derive(Subcommand)]
enum CertsCommand {
    /// Write a development CA and a localhost certificate (never for production).
    Dev {
        /// Output folder.
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// Extra DNS names or IPs for the certificate.
        #[arg(long = "name")]
        names: Vec<String>,
    },
    /// Write the SAML SP signing certificate and RSA key that nymgate's SP metadata publishes
    /// (`login.saml.cert_file` and `key_file`). Self-signed and long-lived, as SAML expects.
    Saml {
        /// Output folder: saml-sp.pem and saml-sp-key.pem (mode 0600).
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// The SP entity id, for the certificate's name.
        #[arg(long)]
        entity_id: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve { config } => match Config::load(&config) {
            Ok(config) => {
                telemetry::init(&config.log);
                serve(config)
            }
            Err(error) => {
                eprintln!("nymgate: {error}");
                ExitCode::from(2)
            }
        },
        Command::Demo { dir, idp_only: true, idp_listen, idp_url, public_url, .. } => {
            demo_idp_only(&dir.unwrap_or_default(), idp_listen, &idp_url, &public_url)
        }
        Command::Demo { dir, port, admin_port, .. } => demo(dir, port, admin_port),
        Command::Health { admin, ready } => health(admin, ready),
        Command::Loadtest(options) => loadtest(&options),
        Command::Keys { command } => keys(command),
        Command::Retention { config, command } => retention(&config, command),
        Command::Pseudonym { config, tenant, subject, issuer } => {
            pseudonym(&config, &tenant, &subject, issuer.as_deref())
        }
        Command::Certs { command: CertsCommand::Dev { out, names } } => {
            match certs::generate_dev_certs(&out, &names) {
                Ok(files) => {
                    println!(
                        "wrote {}, {} and {}",
                        files.ca_cert.display(),
                        files.cert.display(),
                        files.key.display()
                    );
                    println!(
                        "trust {} in your client to reach nymgate on localhost",
                        files.ca_cert.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("nymgate: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Certs { command: CertsCommand::Saml { out, entity_id } } => {
            let (cert_path, key_path) = (out.join("saml-sp.pem"), out.join("saml-sp-key.pem"));
            if key_path.exists() {
                eprintln!(
                    "nymgate: {} exists; the IdPs trust that key, so it is not replaced",
                    key_path.display()
                );
                return ExitCode::FAILURE;
            }
            let written = certs::generate_saml_signing_cert(&entity_id).and_then(|(cert, key)| {
                std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
                certs::write(&cert_path, cert.as_bytes(), 0o644)?;
                certs::write(&key_path, key.as_bytes(), 0o600)
            });
            match written {
                Ok(()) => {
                    println!("wrote {} and {}", cert_path.display(), key_path.display());
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("nymgate: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
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

fn keys(command: KeysCommand) -> ExitCode {
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
                        nymgate::retire_check::prepare(config.as_ref(), ring, scope, *version, now)?;
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

fn retention(config: &std::path::Path, command: RetentionCommand) -> ExitCode {
    use nymgate::retention_cli::Action;
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
    match action.and_then(|action| nymgate::retention_cli::run(config, &action, now)) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("nymgate: {message}");
            ExitCode::FAILURE
        }
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

fn pseudonym(config: &Path, tenant: &str, subject: &str, issuer: Option<&str>) -> ExitCode {
    let subject = if subject == "-" {
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line).is_err() {
            eprintln!("nymgate: cannot read the subject from standard input");
            return ExitCode::FAILURE;
        }
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        subject.to_owned()
    };
    let now = nymgate::clock::unix_now();
    match nymgate::dpo_lookup::run(config, tenant, &subject, issuer, now) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("nymgate: {message}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime starts")
}

fn serve(config: Config) -> ExitCode {
    runtime().block_on(async move {
        match RunningServer::start(config).await {
            Ok(server) => {
                if server::run_until_signalled(server).await {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(3)
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot start");
                eprintln!("nymgate: {error}");
                ExitCode::FAILURE
            }
        }
    })
}

/// `nymgate check`: every problem of the file at once, the field checks and what only building
/// finds (certificate and key contents, the platform's CA, the keyring and its scopes), each by
/// its field; a stage whose field already has a problem is not tried again (one report per
/// cause). Then notes, warnings and the worst case the caps allow.
fn check(path: &Path) -> ExitCode {
    use nymgate::config::ConfigProblem;
    let config = match Config::load_unvalidated(path) {
        Ok(config) => config,
        Err(ConfigError::Invalid { path, problems }) => return report(&path, &problems),
        Err(error) => {
            println!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let mut problems = config.validate();
    let reported =
        |problems: &[ConfigProblem], field: &str| problems.iter().any(|p| p.field.starts_with(field));
    tls::install_crypto_provider();
    if !reported(&problems, "server.cert_file") && !reported(&problems, "server.key_file") {
        if let Err(error) = tls::load_certified_key(&config.server.cert_file, &config.server.key_file) {
            problems.push(ConfigProblem { field: error.server_field().into(), message: error.to_string() });
        }
    }
    if let Some(upstream) = config.upstream.as_ref().filter(|_| !reported(&problems, "upstream.ca_file")) {
        if let Err(error) = tls::upstream_roots(upstream.ca_file.as_deref()) {
            problems.push(ConfigProblem { field: "upstream.ca_file".into(), message: error.to_string() });
        }
    }
    if let Some(pseudonyms) = config.pseudonyms.as_ref().filter(|_| !reported(&problems, "pseudonyms")) {
        match nymgate::pseudonym::keyring::Keyring::load(&pseudonyms.keyring_file) {
            Ok(ring) => problems
                .extend(nymgate::pseudonym::Pseudonymizer::new(&config, ring).err().unwrap_or_default()),
            Err(error) => problems
                .push(ConfigProblem { field: "pseudonyms.keyring_file".into(), message: error.to_string() }),
        }
    }
    if !problems.is_empty() {
        return report(path, &problems);
    }
    println!("{}: valid", path.display());
    // Tenants on one IdP: how each login is filed (docs/PSEUDONYMS.md).
    for note in config.explain_shared_issuers() {
        println!("  note: {note}");
    }
    // Combinations that make logins fail (config/warnings.rs).
    for warning in config.warnings() {
        println!("  warning: {warning}");
    }
    // What the caps allow at worst (docs/CONNECTIONS.md).
    for line in config.explain_worst_case(nymgate::config::capacity::open_files_limit()) {
        println!("  {line}");
    }
    ExitCode::SUCCESS
}

fn report(path: &Path, problems: &[nymgate::config::ConfigProblem]) -> ExitCode {
    println!("{}: {} problem(s):", path.display(), problems.len());
    for problem in problems {
        println!("  - {problem}");
    }
    ExitCode::FAILURE
}

fn loadtest(options: &nymgate::loadtest::Options) -> ExitCode {
    if options.print_config {
        return match nymgate::loadtest::config_snippet(options) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("nymgate loadtest: {error}");
                ExitCode::FAILURE
            }
        };
    }
    match runtime().block_on(nymgate::loadtest::run(options)) {
        Ok(report) => {
            if options.json {
                eprint!("{}", report.table());
                println!("{}", serde_json::to_string_pretty(&report).expect("a report serializes"));
            } else {
                print!("{}", report.table());
            }
            if report.failed_logins > 0 {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(error) => {
            eprintln!("nymgate loadtest: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `nymgate demo --idp-only`: the demo school IdP until SIGTERM or Ctrl-C.
fn demo_idp_only(
    dir: &std::path::Path,
    listen: std::net::SocketAddr,
    idp_url: &str,
    public_url: &str,
) -> ExitCode {
    telemetry::init(&LogConfig { format: LogFormat::Pretty, level: "info".into() });
    runtime().block_on(async {
        if let Err(error) = nymgate::demo::start_idp_only(dir, listen, idp_url, public_url).await {
            eprintln!("nymgate demo --idp-only: {error}");
            return ExitCode::FAILURE;
        }
        println!(
            "demo school IdP at {idp_url} (listening on {listen}); nymgate's files and tenants.toml are in {}",
            dir.display()
        );
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler can be installed");
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        ExitCode::SUCCESS
    })
}

fn demo(dir: Option<PathBuf>, port: u16, admin_port: u16) -> ExitCode {
    telemetry::init(&LogConfig { format: LogFormat::Pretty, level: "info".into() });
    let (dir, temporary) = match dir {
        Some(dir) => (dir, false),
        None => (std::env::temp_dir().join(format!("nymgate-demo-{}", std::process::id())), true),
    };
    let code = runtime().block_on(async {
        let demo = match nymgate::demo::start(&dir, nymgate::demo::Ports { public: port, admin: admin_port }).await {
            Ok(demo) => demo,
            Err(error) => {
                eprintln!("nymgate demo: {error}");
                return ExitCode::FAILURE;
            }
        };
        let people: Vec<String> = nymgate::demo::USERS
            .iter()
            .map(|u| {
                let school = nymgate::demo::SCHOOLS.iter().find(|s| s.id == u.school);
                let name = school.map_or("", |s| s.name);
                let protocol = if school.is_some_and(|s| s.saml) { ", SAML" } else { "" };
                format!("{} ({}, {name}{protocol})", u.login, u.role.to_lowercase())
            })
            .collect();
        println!(
            "\nnymgate demo is running (Ctrl-C stops it).\n\n  Open   {url}\n         (your browser will warn: the certificate is from a fresh development CA,\n          {ca})\n\n  1. Choose a school (search works), and sign in at the demo school IdP as\n     {people}; the password is \"{password}\".\n  2. You land on the platform (nymgate's built-in echo platform): it shows what it\n     received, an account number and a role, and none of the name, email or\n     personal identity number the school's IdP sent.\n  3. \"What the platform receives about you\" lists what was kept and what was removed.\n\n  Metrics: http://127.0.0.1:{admin}/metrics   Audit log and config: {folder}\n",
            url = demo.url,
            ca = demo.ca_file.display(),
            people = people.join(", "),
            password = nymgate::demo::PASSWORD,
            admin = demo.admin_port,
            folder = dir.display(),
        );
        server::run_until_signalled(demo.server).await;
        ExitCode::SUCCESS
    });
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    code
}

/// One GET on the admin listener with a short timeout; 0 on 200.
fn health(admin: std::net::SocketAddr, ready: bool) -> ExitCode {
    use std::io::{Read, Write};
    let path = if ready { "/readyz" } else { "/healthz" };
    let timeout = std::time::Duration::from_secs(2);
    let answer = (|| -> std::io::Result<String> {
        let mut stream = std::net::TcpStream::connect_timeout(&admin, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        write!(stream, "GET {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n")?;
        let mut text = String::new();
        stream.take(4096).read_to_string(&mut text)?;
        Ok(text)
    })();
    match answer {
        Ok(text) if text.starts_with("HTTP/1.1 200") => ExitCode::SUCCESS,
        Ok(text) => {
            eprintln!("nymgate: {path}: {}", text.lines().next().unwrap_or("no answer"));
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("nymgate: {path} at {admin}: {error}");
            ExitCode::FAILURE
        }
    }
}
