//! `nymgate check --config FILE`: validates a config file as `serve` would read it and explains
//! each problem by its field, then prints notes, warnings and the worst case the caps allow
//! (docs/CONNECTIONS.md). Exit 0 only when the file is valid, 1 otherwise. Output goes to
//! standard output, problems included: it is the answer, not a failure of the command.

use std::path::Path;
use std::process::ExitCode;

use nymgate::config::{Config, ConfigError};
use nymgate::tls;

/// `nymgate check`: every problem of the file at once, the field checks and what only building
/// finds (certificate and key contents, the platform's CA, the keyring and its scopes), each by
/// its field; a stage whose field already has a problem is not tried again (one report per
/// cause). Then notes, warnings and the worst case the caps allow.
pub fn run(path: &Path) -> ExitCode {
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
