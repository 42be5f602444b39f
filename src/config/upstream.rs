//! `[upstream]`: the platform behind nymgate.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::defaults;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `http://host:port` or `https://host:port`; a path, query or user info is refused.
    pub url: String,
    /// Plain `http://` to a platform that is not on loopback, said explicitly: its traffic
    /// (sessions, cookies, the tokens nymgate signed) then crosses that network in the clear.
    /// For a private network (a Kubernetes Service, a host-only bridge); off by default.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// PEM CA bundle that signs the upstream's certificate; default: the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "defaults::connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Time from sending a request to receiving the response head.
    #[serde(default = "defaults::response_timeout", with = "humantime_serde")]
    pub response_timeout: Duration,
    /// How long a connection to the platform may sit idle in a pool before it is closed.
    #[serde(default = "defaults::pool_idle_timeout", with = "humantime_serde")]
    pub pool_idle_timeout: Duration,
    /// Idle connections to the platform each worker keeps (there is one platform, so "per host"
    /// is per worker); a connection that comes back to a full pool is closed.
    #[serde(default = "defaults::pool_max_idle_per_host")]
    pub pool_max_idle_per_host: usize,
    /// The `Upgrade` protocols (RFC 9110 §7.8) forwarded to the platform, by name, compared
    /// without case; any other asked for is refused with 400. `h2c` can't be listed: it would
    /// open a tunnel in which the client speaks HTTP/2 to the platform past every header rule.
    #[serde(default = "defaults::upgrade_protocols")]
    pub upgrade_protocols: Vec<String>,
    /// Connections to the platform each worker may hold open at once: in use, idle in a pool,
    /// or carrying an upgraded connection (WebSocket). Per worker, as each worker is its own
    /// event loop with its own pools (upstream/pool.rs); the process holds at most
    /// `workers × max_connections`, which must fit the file descriptor limit beside
    /// `limits.max_connections` clients. A request over the bound waits `queue_timeout`, then
    /// gets 503 with Retry-After.
    #[serde(default = "defaults::upstream_max_connections")]
    pub max_connections: usize,
    /// How long a request over `max_connections` waits for a platform connection before its
    /// 503. `response_timeout` covers the wait too: when it is the shorter, the request gets
    /// its 504 first.
    #[serde(default = "defaults::queue_timeout", with = "humantime_serde")]
    pub queue_timeout: Duration,
    /// A pool of platform connections per client connection, dropped with it, instead of one
    /// per worker (as Envoy's `connection_pool_per_downstream_connection`): for platforms that
    /// can't be trusted to frame every answer, so that a late or extra answer can only reach
    /// the client whose connection it came on, never another pupil. Costs a new platform
    /// connection for each client connection's first request (BENCHMARKS.md).
    #[serde(default)]
    pub pool_per_client_connection: bool,
}

/// The most `upstream.max_connections` may be: one worker's connections to one platform address
/// each take a local port, and there are at most this many.
pub const MAX_UPSTREAM_CONNECTIONS: usize = 65_535;

/// A parsed `upstream.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTarget {
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    /// `host:port` as written.
    pub authority: http::uri::Authority,
}

impl UpstreamTarget {
    pub fn parse(url: &str) -> Result<UpstreamTarget, String> {
        let uri: http::Uri =
            url.parse().map_err(|e| format!("{url:?} is not a URL ({e}); write http://host:port"))?;
        let scheme = uri.scheme().cloned().ok_or("needs a scheme: http:// or https://")?;
        if scheme != http::uri::Scheme::HTTP && scheme != http::uri::Scheme::HTTPS {
            return Err(format!("scheme {scheme} is not supported: use http or https"));
        }
        let authority = uri.authority().cloned().ok_or("needs a host: http://host:port")?;
        if authority.as_str().contains('@') {
            return Err("must not contain user info; credentials belong in a secret file".into());
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err("must not have a path or query: nymgate forwards the client's path".into());
        }
        Ok(UpstreamTarget { scheme, authority })
    }
}
