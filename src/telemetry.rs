//! The operational log, through tracing: JSON lines (the default, for collectors) or pretty
//! text. What may appear in it is decided where each event is written: request ids, route
//! classes, statuses, reduced client IPs; never a raw IP, a query string, a cookie, an
//! authorization value or any login attribute (shared/PRODUCT.md, "Security promises").

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber, writing to standard error. `RUST_LOG`, when set, overrides
/// `log.level`. Returns false if a subscriber was already installed (tests that start several
/// servers).
pub fn init(config: &LogConfig) -> bool {
    use tracing_subscriber::util::SubscriberInitExt;
    subscriber(config, std::io::stderr).try_init().is_ok()
}

/// nymgate's subscriber, writing to `writer` (the privacy scan's own test formats through it).
pub fn subscriber<W>(config: &LogConfig, writer: W) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match config.format {
        LogFormat::Json => Box::new(builder.json().flatten_event(true).with_current_span(false).finish()),
        LogFormat::Pretty => Box::new(builder.finish()),
    }
}
