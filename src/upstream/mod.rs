//! The connection to the platform: one upstream, http or https, with a pool of connections per
//! worker.
//!
//! [`client`]: the HTTP/1.1 client, which serves each request in its own task.
//! [`h1`]: its codec, without I/O (request heads, response heads, chunked bodies).

pub mod client;
pub mod h1;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use rustls_pki_types::ServerName;

use crate::config::{UpstreamConfig, UpstreamTarget};
use crate::tls::{self, TlsError};

/// The platform: where requests go, and the pool that takes them there.
pub struct Upstream {
    pub target: UpstreamTarget,
    pub client: client::Client,
    pub response_timeout: Duration,
    connect_timeout: Duration,
    /// Set by the reachability probe; read by `/readyz`.
    reachable: AtomicBool,
}

impl Upstream {
    /// The platform client of one worker (or of the admin listener). Within a tokio runtime, a
    /// task closes the pool's connections idle past `upstream.pool_idle_timeout`; it ends with
    /// the pool.
    pub fn new(config: &UpstreamConfig) -> Result<Self, TlsError> {
        let target = UpstreamTarget::parse(&config.url).expect("validated with the config");
        let (host, port) = host_and_port(&target);
        // HTTP/1.1 only toward the platform: upgrades (WebSocket) need it, and a pool of
        // keep-alive connections serves HTTP/2 clients just as well.
        let tls = if target.scheme == http::uri::Scheme::HTTPS {
            let roots = tls::upstream_roots(config.ca_file.as_deref())?;
            let connector = tokio_rustls::TlsConnector::from(Arc::new(tls::client_config(roots)));
            let name = ServerName::try_from(host.clone())
                .map_err(|_| TlsError::ServerName { host: host.clone() })?;
            Some((connector, name))
        } else {
            None
        };
        let pool = client::Pool::new(config.pool_max_idle_per_host, config.pool_idle_timeout);
        let client = client::Client::new(host, port, tls, config.connect_timeout, pool);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(evict_idle(Arc::downgrade(client.pool()), config.pool_idle_timeout));
        }
        Ok(Self {
            target,
            client,
            response_timeout: config.response_timeout,
            connect_timeout: config.connect_timeout,
            reachable: AtomicBool::new(false),
        })
    }

    pub fn is_reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Starts from what a previous client to the same platform knew (a config reload), so
    /// that `/readyz` does not flap until the next probe.
    pub fn assume_reachable(&self, reachable: bool) {
        self.reachable.store(reachable, Ordering::Relaxed);
    }

    /// Opens a TCP connection to the platform and records whether it worked. Called periodically
    /// for `/readyz`; a plain connect says the platform is listening without costing it a request.
    pub async fn probe(&self) -> bool {
        let (host, port) = host_and_port(&self.target);
        let ok = matches!(
            tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect((host.as_str(), port)))
                .await,
            Ok(Ok(_))
        );
        self.reachable.store(ok, Ordering::Relaxed);
        ok
    }
}

/// The platform's host (without an IPv6 literal's brackets) and port.
fn host_and_port(target: &UpstreamTarget) -> (String, u16) {
    let default_port = if target.scheme == http::uri::Scheme::HTTPS { 443 } else { 80 };
    let host = target.authority.host().trim_start_matches('[').trim_end_matches(']');
    (host.to_owned(), target.authority.port_u16().unwrap_or(default_port))
}

/// Closes the pool's connections idle past `timeout`, until the pool is gone (a reload).
async fn evict_idle(pool: Weak<client::Pool>, timeout: Duration) {
    let every = (timeout / 2).max(Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        match pool.upgrade() {
            Some(pool) => pool.evict_expired(),
            None => return,
        }
    }
}
