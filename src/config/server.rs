//! `[server]`, `[limits]` and `[log]`: the listeners and certificate, sizes, timeouts and caps,
//! and the operational log.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::defaults;

/// The longest request head the framing watcher follows (framing.rs re-exports it):
/// `limits.max_header_bytes` may not exceed it, so hyper's own 431 always comes first.
pub const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// The public HTTPS listener.
    pub listen: SocketAddr,
    /// The admin listener (`/healthz`, `/readyz`, `/metrics`). Keep it off the public network.
    pub admin_listen: SocketAddr,
    /// Optional plain-HTTP listener that only redirects to HTTPS and answers `/healthz`.
    #[serde(default)]
    pub redirect_listen: Option<SocketAddr>,
    /// The HTTPS port put in redirects; defaults to the port of `listen`.
    #[serde(default)]
    pub redirect_https_port: Option<u16>,
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// Threads serving the public listener, each with its own event loop and its own socket on
    /// the port (SO_REUSEPORT), like nginx's worker processes. Default: one per CPU.
    #[serde(default)]
    pub workers: Option<usize>,
    /// How often the certificate files are checked for changes (SIGHUP reloads at once).
    #[serde(default = "defaults::cert_reload_interval", with = "humantime_serde")]
    pub cert_reload_interval: Duration,
    /// The host names (and IP literals; `*.example.org` for one label) nymgate answers for. A
    /// request naming any other Host gets 421 and never reaches the platform (public_hosts.rs).
    /// Empty: the names of the TLS certificate in service.
    #[serde(default)]
    pub public_hosts: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request head (start line and headers); more gets 431. At least 8192, at most
    /// 65536: the HTTP/1.1 framing watcher (framing.rs) follows heads up to that size, and a
    /// head it cannot follow is refused, so hyper's own limit must come first.
    #[serde(default = "defaults::max_header_bytes")]
    pub max_header_bytes: usize,
    /// Most request header lines; more gets 431.
    #[serde(default = "defaults::max_headers")]
    pub max_headers: usize,
    /// Largest request body on nymgate's own endpoints; more gets 413.
    #[serde(default = "defaults::max_body_bytes")]
    pub max_body_bytes: usize,
    /// Time a client has to send a whole request head (slowloris). hyper starts this timer as
    /// soon as an HTTP/1.1 connection waits for its next request, so it is also how long an
    /// idle HTTP/1.1 keep-alive connection is kept.
    #[serde(default = "defaults::header_read_timeout", with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// Longest gap between two reads of a request body (like nginx's `client_body_timeout`).
    #[serde(default = "defaults::body_read_timeout", with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// A connection with no bytes either way for this long is closed (HTTP/2, and HTTP/1.1
    /// connections whose request or response is stalled).
    #[serde(default = "defaults::idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Longest a response may wait on a client that does not read it (a full socket, HTTP/2
    /// flow control at zero), like nginx's `send_timeout`: past it the response is taken away
    /// and what it held toward the platform released; an HTTP/1.1 connection then closes
    /// (src/conn_bounds.rs).
    #[serde(default = "defaults::send_timeout", with = "humantime_serde")]
    pub send_timeout: Duration,
    /// An HTTP/1.1 keep-alive connection quiet between requests for this long gives up its HTTP
    /// state and buffers (about 16 KB) until the client sends again (src/conn_io.rs). A busy
    /// connection's next request comes well within it; longer keeps more memory in use while
    /// many connections open at once (BENCHMARKS.md §1: 1 s gave 152 MiB for 10,000 connections
    /// opened quickly, 100 ms 128 MiB).
    #[serde(default = "defaults::park_after", with = "humantime_serde")]
    pub park_after: Duration,
    /// A TLS handshake not complete by then is closed. What a client may send meanwhile is
    /// bounded too: a ClientHello of at most 16 KiB, left in the kernel until complete
    /// (client_hello.rs).
    #[serde(default = "defaults::tls_handshake_timeout", with = "humantime_serde")]
    pub tls_handshake_timeout: Duration,
    /// Open client connections at most; past it, new connections get one 503 and are closed.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// HTTP/2 streams per connection.
    #[serde(default = "defaults::max_concurrent_streams")]
    pub max_concurrent_streams: u32,
    /// How long SIGTERM waits for in-flight requests before closing what is left.
    #[serde(default = "defaults::shutdown_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_header_bytes: defaults::max_header_bytes(),
            max_headers: defaults::max_headers(),
            max_body_bytes: defaults::max_body_bytes(),
            header_read_timeout: defaults::header_read_timeout(),
            body_read_timeout: defaults::body_read_timeout(),
            idle_timeout: defaults::idle_timeout(),
            send_timeout: defaults::send_timeout(),
            park_after: defaults::park_after(),
            tls_handshake_timeout: defaults::tls_handshake_timeout(),
            max_connections: defaults::max_connections(),
            max_concurrent_streams: defaults::max_concurrent_streams(),
            shutdown_grace: defaults::shutdown_grace(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Json,
    Pretty,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter directive (`info`, `nymgate=debug`); `RUST_LOG` overrides it.
    #[serde(default = "defaults::log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::default(), level: defaults::log_level() }
    }
}
