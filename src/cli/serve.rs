//! `nymgate serve --config FILE`: runs the gateway (docs/DEPLOY.md). SIGHUP reloads the config
//! file and the certificate; SIGTERM or Ctrl-C drains the connections and stops. Exit codes: 2
//! when the config can't be loaded, 1 when the server can't start, 3 when the drain did not
//! finish cleanly, 0 after a clean stop.

use std::path::Path;
use std::process::ExitCode;

use nymgate::config::Config;
use nymgate::server::{self, RunningServer};
use nymgate::telemetry;

/// Loads and validates the config, starts the log as it says, then serves until signalled.
pub fn run(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            telemetry::init(&config.log);
            serve(config)
        }
        Err(error) => {
            eprintln!("nymgate: {error}");
            ExitCode::from(2)
        }
    }
}

fn serve(config: Config) -> ExitCode {
    super::runtime().block_on(async move {
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
