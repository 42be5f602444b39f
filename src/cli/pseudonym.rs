//! `nymgate pseudonym`: the account numbers a known person has in a tenant, for a data-subject
//! request (docs/PSEUDONYMS.md, "Data-subject requests"). The subject is read and used here
//! and never written anywhere; the audit lines carry the numbers answered.
//!
//! Every number the person has under a key version still in the keyring is answered, not just
//! those logins use now: after a rotation's window has closed, records made under the older
//! number (nymgate's retention store, the platform's own) stay until culled or erased, and an
//! erasure by the printed numbers has to reach them all. For a tenant that retains values, each
//! older number says whether nymgate holds a record under it. A retired version gives no number
//! any more (docs/PSEUDONYMS.md says when to retire).
//!
//! The lookup itself is the pseudonymizer's second entry, `Pseudonymizer::subject_access`, which
//! writes the audit line of every number it answers before it answers (so no caller can forget
//! them). The server has no lookup by subject (a DPO's request is answered from a shell on the
//! host, where the subject never crosses the network); this module adds the config and keyring
//! read (their failures audited here), the retained-record marks and the printed text. Exit 0
//! with the numbers (the first line is the current primary number alone, for scripts), 1 with
//! the reason.

use std::path::Path;
use std::process::ExitCode;

use nymgate::audit::AuditSink;
use nymgate::config::{Config, ConfigProblem};
use nymgate::pseudonym::keyring::Keyring;
use nymgate::pseudonym::{
    record_refusal, KeyState, KnownNumber, Pseudonymizer, Sector, SubjectAccessError, SubjectRequest,
};
use nymgate::retention::{RetentionError, RetentionStore, WrapKeys};

/// Reads the subject (`-`: one line of standard input), looks it up and prints the numbers.
pub fn run(config: &Path, tenant: &str, subject: &str, issuer: Option<&str>) -> ExitCode {
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
    super::print_outcome(lookup(config, tenant, &subject, issuer, now))
}

/// One answered number, and in which sector.
struct Answer {
    /// `None`: the primary sector.
    sector: Option<String>,
    known: KnownNumber,
    /// For an older number of a retaining tenant: whether nymgate holds a record under it.
    retained: Option<Retained>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retained {
    Yes,
    No,
    /// The store could not be asked (the line says so; the number is answered anyway).
    Unknown,
}

/// Runs the lookup; the text to print, or why not. Every answer and every failure after the
/// config is read is audited, and the numbers are printed only once their lines are on disk.
fn lookup(
    config_path: &Path,
    tenant: &str,
    subject: &str,
    issuer: Option<&str>,
    now: u64,
) -> Result<String, String> {
    let config = Config::load(config_path).map_err(|e| e.to_string())?;
    let sink = AuditSink::from_config(&config.audit);
    // A failure names no tenant (it may be what was typed) and never the subject: the same
    // line the pseudonymizer writes for a refused lookup.
    let failed = |reason: &'static str, message: String| -> Result<String, String> {
        match record_refusal(&sink, reason) {
            Ok(()) => Err(message),
            Err(e) => Err(format!("{message} (and its audit line could not be written: {e})")),
        }
    };
    let Some(keyring_file) = config.pseudonyms.as_ref().map(|p| p.keyring_file.clone()) else {
        return failed("no_pseudonym_keys", "the config has no [pseudonyms] keyring_file".into());
    };
    let keyring = match Keyring::load(&keyring_file) {
        Ok(ring) => ring,
        Err(error) => return failed("keyring_unreadable", error.to_string()),
    };
    let pseudonymizer = match Pseudonymizer::new(&config, keyring) {
        Ok(p) => p,
        Err(problems) => {
            return failed("config_invalid", ConfigProblem::join(&problems));
        }
    };
    // The pseudonymizer's DPO entry writes the lines of its answer or refusal itself.
    let answers =
        answers(&config, &pseudonymizer, &sink, tenant, subject, issuer, now).map_err(|e| e.to_string())?;
    Ok(answers.iter().map(describe).collect::<Vec<_>>().join("\n"))
}

/// The numbers in every sector the config names, each under every key version, audited.
fn answers(
    config: &Config,
    pseudonymizer: &Pseudonymizer,
    sink: &AuditSink,
    tenant: &str,
    subject: &str,
    issuer: Option<&str>,
    now: u64,
) -> Result<Vec<Answer>, SubjectAccessError> {
    // Each named sector's platforms know the person by another number (docs/PSEUDONYMS.md,
    // "Sectors"): a DPO's answer lists them all.
    let mut names: Vec<String> = config
        .login
        .iter()
        .flat_map(|login| {
            let sps = login.saml_idp.iter().flat_map(|idp| idp.service_providers.iter().map(|sp| &sp.sector));
            sps.chain(login.clients.iter().map(|client| &client.sector))
        })
        .filter_map(|sector| sector.clone())
        .filter(|sector| Sector::of(Some(sector)) != Sector::Primary)
        .collect();
    names.sort();
    names.dedup();
    let sectors: Vec<Sector<'_>> =
        std::iter::once(Sector::Primary).chain(names.iter().map(|name| Sector::Named(name))).collect();
    let request = SubjectRequest { tenant, issuer, subject, sectors: &sectors, now };
    let mut answers: Vec<Answer> = pseudonymizer
        .subject_access(sink, &request)?
        .into_iter()
        .map(|(sector, known)| Answer {
            sector: match sector {
                Sector::Primary => None,
                Sector::Named(name) => Some(name.to_owned()),
            },
            known,
            retained: None,
        })
        .collect();
    mark_retained(config, pseudonymizer, tenant, &mut answers);
    Ok(answers)
}

/// For a tenant that retains values: whether a record exists under each older number. Only
/// the record's presence is asked; its values are opened by the store's lookup (the one read
/// it offers, src/retention) and dropped here unread. A store that can't be opened or asked
/// leaves `Unknown`, never hides a number.
fn mark_retained(config: &Config, pseudonymizer: &Pseudonymizer, tenant: &str, answers: &mut [Answer]) {
    let retains = config.tenants.iter().any(|t| t.id == tenant && t.retention.is_some());
    let (true, Some(settings)) = (retains, config.retention.as_ref()) else { return };
    let older = |a: &Answer| a.known.key == KeyState::Older;
    if !answers.iter().any(older) {
        return;
    }
    let store = RetentionStore::from_config(settings).ok();
    let keys = WrapKeys::of_tenant(pseudonymizer, tenant);
    for answer in answers.iter_mut().filter(|a| older(a)) {
        let found = match (&store, &keys) {
            (Some(store), Some(keys)) => store.lookup(tenant, keys, answer.known.number.as_str()),
            _ => Err(RetentionError::Database("the store could not be opened".into())),
        };
        answer.retained = Some(match found {
            Ok(Some(_)) => Retained::Yes,
            Ok(None) => Retained::No,
            // A row is there, whatever its state: it is a record under this number.
            Err(RetentionError::Corrupt | RetentionError::KeyGone(_) | RetentionError::Tampered) => {
                Retained::Yes
            }
            Err(_) => Retained::Unknown,
        });
    }
}

/// One output line. The first is the current primary number alone (scripts read it).
fn describe(answer: &Answer) -> String {
    let number = answer.known.number.as_str();
    let version = answer.known.version;
    let sector = answer.sector.as_deref().map(|s| format!("sector {s}"));
    let note = match answer.known.key {
        KeyState::Current => sector,
        KeyState::Previous => Some(match &sector {
            None => "previous key, during the migration window".to_owned(),
            Some(sector) => format!("{sector}, previous key, during the migration window"),
        }),
        KeyState::Older => {
            let held = match answer.retained {
                Some(Retained::Yes) => "; nymgate holds a retained record under it",
                Some(Retained::No) => "; nymgate holds no retained record under it",
                Some(Retained::Unknown) => "; the retention store could not be asked",
                None => "",
            };
            let place = sector.map(|s| format!("{s}, ")).unwrap_or_default();
            Some(format!(
                "{place}older key version {version}: records made under it remain until culled or erased{held}"
            ))
        }
    };
    match note {
        None => number.to_owned(),
        Some(note) => format!("{number} ({note})"),
    }
}
