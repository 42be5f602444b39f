//! The checks serde can't do, across sections: [`Config::validate`] and the small rules the
//! section files share (URLs, names, tokens, log filters).

use std::path::Path;

use super::{
    check_private_file, validate_secret_source, Config, ConfigProblem, UpstreamTarget, MAX_HEAD,
    MAX_UPSTREAM_CONNECTIONS,
};

impl Config {
    /// Semantic checks that serde can't do. Returns every problem found.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut problem =
            |field: &str, message: String| problems.push(ConfigProblem { field: field.to_owned(), message });

        if self.server.listen == self.server.admin_listen && self.server.listen.port() != 0 {
            problem(
                "server.admin_listen",
                "must differ from server.listen: the admin endpoints may not share the public \
                 listener"
                    .into(),
            );
        }
        for (field, path) in
            [("server.cert_file", &self.server.cert_file), ("server.key_file", &self.server.key_file)]
        {
            if let Err(e) = std::fs::metadata(path) {
                problem(
                    field,
                    format!(
                        "cannot read {}: {e}; run `nymgate certs dev` for a development certificate",
                        path.display()
                    ),
                );
            } else if field == "server.key_file" {
                // Only a key that exists has permissions to judge (a missing one was said once).
                if let Err(message) = check_private_file(path) {
                    problem(field, message);
                }
            }
        }
        // The audit log fails closed (docs/LOGIN.md): a folder that does not exist would refuse
        // every login from the first one, so it is refused at start instead.
        if let Some(folder) =
            self.audit.file.as_deref().and_then(Path::parent).filter(|f| !f.as_os_str().is_empty())
        {
            if !folder.is_dir() {
                problem(
                    "audit.file",
                    format!(
                        "its folder {} does not exist: create it, writable by nymgate's user only",
                        folder.display()
                    ),
                );
            }
        }
        if self.server.workers.is_some_and(|w| w == 0 || w > 256) {
            problem("server.workers", "must be 1 to 256 (default: one per CPU)".into());
        }
        if self.server.cert_reload_interval < std::time::Duration::from_secs(1) {
            problem("server.cert_reload_interval", "must be at least 1s".into());
        }
        for (i, host) in self.server.public_hosts.iter().enumerate() {
            let name = host.strip_prefix("*.").unwrap_or(host);
            let plain = name.parse::<std::net::IpAddr>().is_ok()
                || (!name.is_empty()
                    && name.len() <= 253
                    && name.split('.').all(|label| {
                        !label.is_empty()
                            && label.len() <= 63
                            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    }));
            if !plain {
                problem(
                    &format!("server.public_hosts[{i}]"),
                    format!("{host:?} is not a host name, an IP address or *.name; write it without scheme, port or path"),
                );
            }
        }

        if let Some(upstream) = &self.upstream {
            match UpstreamTarget::parse(&upstream.url) {
                Err(message) => problem("upstream.url", message),
                // Deny by default: plain http leaves loopback only when the config says so.
                Ok(target)
                    if target.scheme == http::uri::Scheme::HTTP
                        && !is_loopback_host(target.authority.host())
                        && !upstream.allow_plaintext =>
                {
                    problem(
                    "upstream.url",
                    format!(
                        "{:?} is plain http to a host off loopback: use https://, or set upstream.allow_plaintext = true if the network to the platform is private",
                        upstream.url
                    ),
                    )
                }
                Ok(_) => {}
            }
            if let Some(ca) = &upstream.ca_file {
                if let Err(e) = std::fs::metadata(ca) {
                    problem("upstream.ca_file", format!("cannot read {}: {e}", ca.display()));
                }
            }
            if upstream.connect_timeout.is_zero() {
                problem("upstream.connect_timeout", "must be more than 0s".into());
            }
            if upstream.response_timeout.is_zero() {
                problem("upstream.response_timeout", "must be more than 0s".into());
            }
            for (i, name) in upstream.upgrade_protocols.iter().enumerate() {
                let field = format!("upstream.upgrade_protocols[{i}]");
                if !is_token(name) {
                    problem(
                        &field,
                        format!("{name:?} is not a protocol name (RFC 9110 §7.8), e.g. \"websocket\""),
                    );
                } else if name.eq_ignore_ascii_case("h2c") || name.eq_ignore_ascii_case("h2") {
                    // Inside an h2c tunnel a client would speak HTTP/2 to the platform past every
                    // header rule nymgate keeps.
                    problem(&field, "HTTP/2 by upgrade (h2c) is never forwarded".into());
                } else if upstream.upgrade_protocols[..i].iter().any(|other| other.eq_ignore_ascii_case(name))
                {
                    problem(&field, format!("{name:?} is listed twice"));
                }
            }
            // Each platform connection is a file descriptor and a local port toward one address:
            // more than a port range's worth can't be open anyway.
            if !(1..=MAX_UPSTREAM_CONNECTIONS).contains(&upstream.max_connections) {
                problem(
                    "upstream.max_connections",
                    format!("must be 1 to {MAX_UPSTREAM_CONNECTIONS} (platform connections per worker)"),
                );
            }
            if upstream.queue_timeout.is_zero() {
                problem("upstream.queue_timeout", "must be more than 0s".into());
            }
        }

        let ip = &self.client_ip;
        if ip.ipv4_prefix > 32 {
            problem("client_ip.ipv4_prefix", "must be 0 to 32 (24 is the default)".into());
        }
        if ip.ipv6_prefix > 128 {
            problem("client_ip.ipv6_prefix", "must be 0 to 128 (48 is the default)".into());
        }
        if let Some(source) = &ip.hash_secret {
            validate_secret_source(source, "client_ip.hash_secret", &mut problem);
        }

        let privacy = &self.privacy;
        for (field, names) in [
            ("privacy.identity_headers", &privacy.identity_headers),
            ("privacy.drop_headers", &privacy.drop_headers),
            ("privacy.pseudonymize_headers", &privacy.pseudonymize_headers),
        ] {
            for name in names {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    problem(field, format!("{name:?} is not a valid header name"));
                }
            }
        }
        for (field, names) in [
            ("privacy.drop_query_params", &privacy.drop_query_params),
            ("privacy.pseudonymize_query_params", &privacy.pseudonymize_query_params),
        ] {
            if names.iter().any(|n| n.is_empty()) {
                problem(field, "parameter names may not be empty".into());
            }
        }

        let limits = &self.limits;
        if limits.max_header_bytes < 8192 {
            // hyper's read buffer can't go below 8 KiB.
            problem("limits.max_header_bytes", "must be at least 8192".into());
        }
        if limits.max_header_bytes > MAX_HEAD {
            // The framing watcher refuses a head longer than it follows (framing.rs).
            problem(
                "limits.max_header_bytes",
                format!("must be at most {} (the longest head the framing watcher follows)", MAX_HEAD),
            );
        }
        if limits.max_headers == 0 {
            problem("limits.max_headers", "must be at least 1".into());
        }
        if limits.max_connections == 0 {
            problem("limits.max_connections", "must be at least 1".into());
        }
        if limits.max_concurrent_streams == 0 {
            problem("limits.max_concurrent_streams", "must be at least 1".into());
        }
        for (field, value) in [
            ("limits.header_read_timeout", limits.header_read_timeout),
            ("limits.body_read_timeout", limits.body_read_timeout),
            ("limits.idle_timeout", limits.idle_timeout),
            ("limits.send_timeout", limits.send_timeout),
            ("limits.tls_handshake_timeout", limits.tls_handshake_timeout),
        ] {
            if value.is_zero() {
                problem(field, "must be more than 0s".into());
            }
        }
        self.validate_tenants(&mut problem);
        self.validate_login(&mut problem);
        self.alerts.validate(&mut problem);
        self.branding.validate("branding", &mut problem);
        for (i, tenant) in self.tenants.iter().enumerate() {
            tenant.branding.validate(&format!("tenants[{i}].branding"), &mut problem);
        }
        self.validate_store(&mut problem);
        self.validate_retention(&mut problem);
        self.validate_identity(&mut problem);
        if let Err(message) = validate_log_level(&self.log.level) {
            problem("log.level", message);
        }
        problems
    }
}

/// An HTTP token (RFC 9110 §5.6.2): header names, upgrade protocol names and versions.
pub fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The one rule for the names the config gives things that reach files, logs, metric labels
/// and tokens (tenant ids, pseudonym scopes, sectors): 1 to 64 of a-z, 0-9, '-' and '_'.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The levels a log filter may name (tracing's, and `off`).
pub(super) const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// A log filter of levels only: `LEVEL` or comma-separated `TARGET=LEVEL` directives (targets
/// are Rust module paths), levels from [`LOG_LEVELS`] in any case. tracing's own grammar reads
/// an unknown word such as `inf` as a target with no level, which silences every log line,
/// errors included, so anything else is refused here rather than passed on.
pub fn validate_log_level(filter: &str) -> Result<(), String> {
    let fix = "try \"info\", or \"warn,nymgate=debug\"";
    let level = |word: &str| LOG_LEVELS.contains(&word.to_ascii_lowercase().as_str());
    let target = |word: &str| {
        !word.is_empty()
            && word
                .split("::")
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    };
    let directives: Vec<&str> = filter.split(',').map(str::trim).collect();
    if directives.iter().all(|directive| match directive.split_once('=') {
        None => level(directive),
        Some((name, value)) => target(name) && level(value),
    }) {
        Ok(())
    } else {
        Err(format!("{filter:?} is not a log level: {fix} (levels: {})", LOG_LEVELS.join(", ")))
    }
}

/// Whether a URL's host is this machine: `localhost`, or a loopback address (an IPv6 one in
/// brackets, as a URL writes it). Plain http is taken only toward these unless a field says so.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `https://host[:port]`, or plain http on a loopback address (local tests and the demo).
pub(super) fn validate_https_url(url: &str, allow_path: bool) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    let host = uri.host().unwrap_or_default();
    let loopback = is_loopback_host(host);
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if loopback => {}
        _ => return Err(format!("{url:?} must be https (plain http only on loopback)")),
    }
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(format!("{url:?} may not have a query or fragment"));
    }
    if !allow_path && !matches!(uri.path(), "" | "/") {
        return Err(format!("{url:?} may not have a path"));
    }
    Ok(())
}
