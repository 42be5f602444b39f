//! `nymgate loadtest`: completes logins under load against a running nymgate, with a built-in
//! IdP that is never the bottleneck (docs/LOADTEST.md); or, with `--print-config`, prints the
//! config snippet that nymgate needs for it. Exit codes: 0 done, 1 when the run could not be made,
//! 2 when any login failed.

use std::process::ExitCode;

/// Runs the load test `options` describe and prints its report (a table, or JSON with `--json`,
/// the table then on standard error).
pub fn run(options: &nymgate::loadtest::Options) -> ExitCode {
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
    match super::runtime().block_on(nymgate::loadtest::run(options)) {
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
