//! The connection to the platform: one upstream, http or https, over a pooled hyper client.
//!
//! [`h1`]: HTTP/1.1 toward the platform without I/O (request heads, response heads, chunked
//! bodies): the codec of a client that will serve requests in their own task, not yet in use.

pub mod h1;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::Body;
use crate::config::{UpstreamConfig, UpstreamTarget};
use crate::tls::{self, TlsError};

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The platform: where requests go, and the pool that takes them there.
pub struct Upstream {
    pub target: UpstreamTarget,
    pub client: Client<Connector, Body>,
    pub response_timeout: Duration,
    connect_timeout: Duration,
    /// Set by the reachability probe; read by `/readyz`.
    reachable: AtomicBool,
}

impl Upstream {
    pub fn new(config: &UpstreamConfig) -> Result<Self, TlsError> {
        let target = UpstreamTarget::parse(&config.url).expect("validated with the config");
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(60)));
        let roots = tls::upstream_roots(config.ca_file.as_deref())?;
        let tls_config = tls::client_config(roots);
        // HTTP/1.1 only toward the platform: upgrades (WebSocket) need it, and a pool of
        // keep-alive connections serves HTTP/2 clients just as well.
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .set_host(false)
            .build(connector);
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
        let authority = &self.target.authority;
        let default_port = if self.target.scheme == http::uri::Scheme::HTTPS { 443 } else { 80 };
        let host = authority.host().trim_start_matches('[').trim_end_matches(']');
        let port = authority.port_u16().unwrap_or(default_port);
        let ok = matches!(
            tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect((host, port))).await,
            Ok(Ok(_))
        );
        self.reachable.store(ok, Ordering::Relaxed);
        ok
    }
}
