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
    use std::io::IsTerminal;
    use tracing_subscriber::util::SubscriberInitExt;
    // Pretty text is coloured only for a person at a terminal: in a file, a pipe or journald the
    // escape codes are bytes in every line (issue 29). NO_COLOR (no-color.org) turns it off too.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    build(config, std::io::stderr, colour).try_init().is_ok()
}

/// nymgate's subscriber, writing to `writer` without colour (the privacy scan's own test formats
/// through it).
pub fn subscriber<W>(config: &LogConfig, writer: W) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    build(config, writer, false)
}

/// The subscriber; `colour` asks for ANSI colour in the pretty format (JSON never has any).
fn build<W>(config: &LogConfig, writer: W, colour: bool) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match config.format {
        LogFormat::Json => {
            Box::new(builder.json().flatten_event(true).with_current_span(false).with_ansi(false).finish())
        }
        LogFormat::Pretty => Box::new(builder.with_ansi(colour).finish()),
    }
}

/// An error and its causes, for the log (hyper's top-level messages say little).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
