//! The `nymgate` command's commands, one module each; `src/main.rs` parses the command line and
//! hands each command to its module here. This is the top floor (issue 30): it belongs to the
//! binary, not to the library, and reaches the library only through its public API
//! (`nymgate::…`), so nothing below ever calls up into command-line code.
//!
//! - [`serve`]: run the gateway from a config file until SIGTERM.
//! - [`check`]: validate a config file and explain each problem by its field.
//! - [`demo`]: everything on loopback with no setup, or only the demo school IdP.
//! - [`loadtest`]: complete logins under load against a running nymgate.
//! - [`health`]: ask a running nymgate's admin listener whether it lives or is ready.
//! - [`certs`]: development certificates and the SAML SP signing certificate.
//! - [`keys`]: the token-signing key and the pseudonym keyring, every change audited;
//!   [`retire_check`] is what `keys retire` asks the retention store first.
//! - [`retention`]: data-subject actions on the retention store, and offboarding, audited.
//! - [`pseudonym`]: the account numbers a known person has, for a data-subject request.
//!
//! Exit codes: 0 done, 1 refused or failed; `serve` and `loadtest` add their own (each module
//! says which).

pub mod certs;
pub mod check;
pub mod demo;
pub mod health;
pub mod keys;
pub mod loadtest;
pub mod pseudonym;
pub mod retention;
pub mod retire_check;
pub mod serve;

#[cfg(test)]
mod help_tests;

/// The multi-threaded runtime the async commands (serve, demo, loadtest) run on.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime starts")
}

/// A command's text on standard output and exit 0, or its reason on standard error and exit 1:
/// how `retention` and `pseudonym` answer.
fn print_outcome(outcome: Result<String, String>) -> std::process::ExitCode {
    match outcome {
        Ok(text) => {
            println!("{text}");
            std::process::ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("nymgate: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
