//! The operational log, through tracing: JSON lines (the default, for collectors) or pretty
//! text. What may appear in it is decided where each event is written: request ids, route
//! classes, statuses, reduced client IPs; never a raw IP, a query string, a cookie, an
//! authorization value or any login attribute (shared/PRODUCT.md, "Security promises").

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. `RUST_LOG`, when set, overrides `log.level`.
/// Returns false if a subscriber was already installed (tests that start several servers).
pub fn init(config: &LogConfig) -> bool {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init().is_ok(),
        LogFormat::Pretty => builder.try_init().is_ok(),
    }
}
