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

/// First path segments the request log writes as they are: common framework and platform
/// route prefixes. Anything else is logged as `/…`. An allowlist, since a pupil's name in a
/// path (`/anna/`) cannot be told from a route word by its shape; a platform route not listed
/// here is still counted, only under `/…`.
const LOGGED_PATHS: &[&str] = &[
    "/api",
    "/app",
    "/assets",
    "/static",
    "/public",
    "/css",
    "/js",
    "/img",
    "/images",
    "/fonts",
    "/media",
    "/favicon.ico",
    "/robots.txt",
    "/login",
    "/logout",
    "/auth",
    "/oauth",
    "/oauth2",
    "/saml",
    "/lti",
    "/sso",
    "/course",
    "/courses",
    "/mod",
    "/lib",
    "/theme",
    "/blocks",
    "/admin",
    "/my",
    "/dashboard",
    "/calendar",
    "/message",
    "/grade",
    "/grades",
    "/user",
    "/users",
    "/graphql",
    "/ws",
    "/socket.io",
    "/health",
    "/healthz",
    "/v1",
    "/v2",
    "/v3",
    "/uploads",
    "/files",
    "/search",
    "/webservice",
    "/pluginfile.php",
    "/index.php",
    "/.well-known",
    "/echo",
    "/nymgate",
];

/// The path for the request log: the first segment of the canonical path (target.rs) when it
/// is one of [`LOGGED_PATHS`], otherwise `/…`. Later segments and the query are never logged:
/// they can carry personal values.
pub fn first_segment(canonical: &crate::target::CanonicalPath) -> &'static str {
    let first = canonical.as_str()[1..].split('/').next().unwrap_or("");
    if first.is_empty() {
        return "/";
    }
    LOGGED_PATHS.iter().find(|p| p[1..] == *first).copied().unwrap_or("/…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_path(path: &str) -> &'static str {
        crate::target::canonical_path(path).map_or("/…", |path| first_segment(&path))
    }

    #[test]
    fn log_path_keeps_only_a_route_word() {
        assert_eq!(log_path("/api/users/alice@school.se"), "/api");
        assert_eq!(log_path("/"), "/");
        assert_eq!(log_path(""), "/");
        assert_eq!(log_path("/API//x"), "/api");
        assert_eq!(log_path("/v2/courses"), "/v2");
        assert_eq!(log_path("/nymgate/callback?code=x"), "/nymgate");
        // A name, an email, a national id, a phone number, a number: none is logged.
        for personal in [
            "/anna.svensson/x",
            "/alice@school.se",
            "/a%40b/x",
            "/19990101-2389/grades",
            "/+46701234567",
            "/4815162342",
            "/Anna",
        ] {
            assert_eq!(log_path(personal), "/…", "{personal}");
        }
    }
}
