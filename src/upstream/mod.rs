//! The connection to the platform: one upstream, http or https, with a pool of connections per
//! worker.
//!
//! [`client`]: the HTTP/1.1 client, which serves each request in its own task.
//! [`h1`]: its codec, without I/O (request heads, response heads, chunked bodies).
//! [`pool`]: the worker's platform connections: their bound, idle pools and waiting requests.

pub mod client;
pub mod h1;
pub mod pool;
mod response;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use rustls_pki_types::ServerName;

use crate::config::{UpstreamConfig, UpstreamTarget};
use crate::tls::{self, TlsError};

/// The platform: where requests go, and the pool that takes them there.
pub struct Upstream {
    /// The platform's address and TLS settings (`upstream.url`).
    pub target: UpstreamTarget,
    /// nymgate's HTTP/1.1 client and its pool of platform connections.
    pub client: client::Client,
    /// `upstream.response_timeout`: a platform slower than this gets 504.
    pub response_timeout: Duration,
    /// `upstream.connect_timeout`, for the reachability probe's own connection.
    connect_timeout: Duration,
    /// `upstream.pool_per_client_connection`.
    pool_per_client: bool,
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
        let set = pool::PoolSet::new(
            config.max_connections,
            config.queue_timeout,
            config.pool_max_idle_per_host,
            config.pool_idle_timeout,
        );
        let client = client::Client::new(host, port, tls, config.connect_timeout, &set);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(evict_idle(Arc::downgrade(&set), config.pool_idle_timeout));
        }
        Ok(Self {
            target,
            client,
            response_timeout: config.response_timeout,
            connect_timeout: config.connect_timeout,
            pool_per_client: config.pool_per_client_connection,
            reachable: AtomicBool::new(false),
        })
    }

    /// Sends a request to the platform on a connection of `client_pools`' pool when
    /// `upstream.pool_per_client_connection` is set, else of the worker's pool.
    pub async fn send(
        &self,
        client_pools: &ClientPools,
        parts: http::request::Parts,
        body: crate::body::Body,
    ) -> Result<http::Response<client::ResponseBody>, client::SendError> {
        match client_pools.pool_for(self) {
            Some(pool) => self.client.send_in(&pool, parts, body).await,
            None => self.client.send(parts, body).await,
        }
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

/// The platform connections of one client connection, with `upstream.pool_per_client_connection`:
/// kept by the client connection's state (`pipeline::ConnInfo`) and dropped with it, so that no
/// other client's request is ever sent on them and a platform's late or extra answer can only
/// reach the client whose connection it came on. The pool is made at the first request that
/// goes to the platform, and made again if a config reload brought a new platform client.
#[derive(Clone, Default)]
pub struct ClientPools(Arc<Mutex<Option<Arc<pool::Pool>>>>);

impl ClientPools {
    /// This client connection's pool toward `upstream`, or `None` for the worker's pool.
    pub fn pool_for(&self, upstream: &Upstream) -> Option<Arc<pool::Pool>> {
        if !upstream.pool_per_client {
            return None;
        }
        let set = upstream.client.pool_set();
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match &*slot {
            Some(pool) if Arc::ptr_eq(pool.set(), set) => Some(pool.clone()),
            _ => {
                let pool = set.new_pool(false);
                *slot = Some(pool.clone());
                Some(pool)
            }
        }
    }
}

/// Closes the pools' connections idle past `timeout`, until the pools are gone (a reload).
async fn evict_idle(pool: Weak<pool::PoolSet>, timeout: Duration) {
    let every = (timeout / 2).max(Duration::from_secs(1));
    loop {
        tokio::time::sleep(every).await;
        match pool.upgrade() {
            Some(pool) => pool.evict_expired(),
            None => return,
        }
    }
}
