//! Listeners and connections: accept, cap, TLS, HTTP/1.1 or HTTP/2 by ALPN, idle and drain.
//!
//! Shape (after mini-redis): [`RunningServer::start`] binds every listener (port 0 works, so tests
//! never race for ports), spawns one accept loop per listener, and returns the bound addresses.
//! A `watch` channel carries the [`Phase`]: on `Draining` the accept loops stop and every
//! connection is asked to finish its in-flight requests; on `Closing` what is left is dropped.
//! The connection cap is a semaphore, so draining is "wait until every permit is back".

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::body::{self, Body, BoxError};
use crate::client_ip::IpReducer;
use crate::config::capacity::{H2_CONNECTION_WINDOW, H2_SEND_BUFFER, H2_STREAM_WINDOW};
use crate::config::{Config, ConfigProblem, LimitsConfig};
use crate::conn_bounds::{ResponseWatch, StallRegistry, Tunnel, CLOSE_GRACE, RECLAIM_AFTER};
use crate::conn_io::{Activity, ClientIo, CountedBody, ParkGate};
use crate::framing::FramingWatch;
use crate::gateway::Generation;
use crate::gateway::{build_generation, Gateway, ProcessParts};
use crate::metrics::{Metrics, RouteClass};
use crate::parking::{Parked, ParkingLot};
use crate::pipeline::{self, ConnInfo};
use crate::reload::{GatewaySlot, ReloadError, Reloader};
use crate::secret::Secret;
use crate::tls::{self, ReloadOutcome, ReloadingCertResolver, TlsError};
use crate::tls_stream::{self, TlsStream};

/// How many over-cap connections may be in the middle of getting their 503 at once. Past this,
/// new connections are closed without an answer: shedding must stay cheaper than serving.
const SHED_BUDGET: usize = 256;
/// How often the platform's reachability is probed for `/readyz`.
const UPSTREAM_PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// How often a shared store is pinged for `/readyz`.
const STORE_PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// After an accept error (usually out of file descriptors), wait before the next accept.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

pub use crate::conn_bounds::Phase;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} ({field}): {source}")]
    Bind { field: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("cannot listen on {addr} (server.listen): {source}")]
    Listen { addr: SocketAddr, source: crate::listener::ListenError },
    /// A TLS file, named by its field as `check` names it (issue 29: one message for both).
    #[error("{field}: {source}")]
    Tls { field: &'static str, source: TlsError },
    /// What building found (gateway.rs), each problem by its field as `check` names it.
    #[error("{}", ConfigProblem::join(.0))]
    Build(Vec<ConfigProblem>),
}

impl From<Vec<ConfigProblem>> for StartError {
    fn from(problems: Vec<ConfigProblem>) -> Self {
        StartError::Build(problems)
    }
}

impl From<ConfigProblem> for StartError {
    fn from(problem: ConfigProblem) -> Self {
        StartError::Build(vec![problem])
    }
}

/// A started nymgate: its bound addresses and the handles to reload and stop it.
pub struct RunningServer {
    /// Where the public listener is bound (port 0 resolved): tests and the demo connect here.
    pub public_addr: SocketAddr,
    /// Where /healthz, /readyz, /metrics and the admin API answer.
    pub admin_addr: SocketAddr,
    /// The plain-HTTP redirect listener, when `server.redirect_listen` is set.
    pub redirect_addr: Option<SocketAddr>,
    /// The process's counters, for a caller that reads them without HTTP (tests, the demo).
    pub metrics: Arc<Metrics>,
    /// The certificate in service: `reload_certs` swaps it without a restart.
    certs: Arc<ReloadingCertResolver>,
    /// Builds and publishes config generations (SIGHUP, the file watch, `reload`).
    reloader: Arc<Reloader>,
    /// Serving, draining or closing: every listener and connection watches it.
    phase: watch::Sender<Phase>,
    /// The connection cap; draining waits until every permit is back.
    connections: Arc<Semaphore>,
    /// The cap's size, to know when every permit is back.
    max_connections: usize,
    /// `server.shutdown_grace`: how long draining waits before closing what is left.
    shutdown_grace: Duration,
    /// The admin listener, the redirect listener and the background jobs, ended at shutdown.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The public-listener workers; they end when the phase reaches `Closing`.
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Keeps the public port nymgate's alone while the server runs (listener.rs).
    _listen_guard: std::os::unix::net::UnixListener,
}

impl RunningServer {
    /// Binds the listeners and starts serving. The config must have passed validation.
    pub async fn start(config: Config) -> Result<RunningServer, StartError> {
        tls::install_crypto_provider();
        let metrics = Arc::new(Metrics::new());
        let certs = Arc::new(
            ReloadingCertResolver::new(&config.server.cert_file, &config.server.key_file)
                .map_err(|source| StartError::Tls { field: source.server_field(), source })?,
        );
        let tls_config = tls::server_config(certs.clone());
        let secret = match &config.client_ip.hash_secret {
            Some(source) => {
                Some(Secret::load(source).map_err(|e| ConfigProblem::new("client_ip.hash_secret", e))?)
            }
            None => None,
        };
        let reducer = Arc::new(IpReducer::new(&config.client_ip, secret));
        let process =
            ProcessParts { metrics: metrics.clone(), reducer: reducer.clone(), certs: certs.clone() };
        // The composition root (gateway.rs): one generation (one login face for the whole
        // process: its single-use stores must be shared), then this gateway, which serves the
        // admin listener and the upstream probe; each worker builds its own (with its own
        // connection pool to the platform) from the same generation.
        let generation = build_generation(config.clone(), &metrics, None).await?;
        let gateway = GatewaySlot::new(Gateway::build(&generation, &process)?);
        let reloader = Reloader::new(generation, metrics.clone());

        let bind = |field: &'static str, addr: SocketAddr| async move {
            TcpListener::bind(addr).await.map_err(|source| StartError::Bind { field, addr, source })
        };
        let workers = config
            .server
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let listeners = crate::listener::bind_public(config.server.listen, workers)
            .map_err(|source| StartError::Listen { addr: config.server.listen, source })?;
        let public_addr = listeners.addr;
        let public = listeners.sockets;
        let listen_guard = listeners.guard;
        let admin = bind("server.admin_listen", config.server.admin_listen).await?;
        let redirect = match config.server.redirect_listen {
            Some(addr) => Some(bind("server.redirect_listen", addr).await?),
            None => None,
        };
        let admin_addr = admin.local_addr().expect("bound socket has an address");
        let redirect_addr = redirect.as_ref().map(|l| l.local_addr().expect("bound socket has an address"));

        let (phase, _) = watch::channel(Phase::Serving);
        let limits = config.limits.clone();
        let connections = Arc::new(Semaphore::new(limits.max_connections));
        let mut tasks = Vec::new();
        let shed = Arc::new(Semaphore::new(SHED_BUDGET));
        let mut threads = Vec::new();
        for (index, listener) in public.into_iter().enumerate() {
            let worker = Worker {
                generations: reloader.subscribe(),
                listener,
                tls_config: tls_config.clone(),
                process: process.clone(),
                connections: connections.clone(),
                shed: shed.clone(),
                phase: phase.subscribe(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("nymgate-worker-{index}"))
                .spawn(move || worker.run())
                .map_err(|source| StartError::Bind { field: "server.workers", addr: public_addr, source })?;
            threads.push(thread);
        }
        tasks.push(tokio::spawn(serve_admin(admin, gateway.clone(), phase.subscribe())));
        if let Some(listener) = redirect {
            let https_port = config.server.redirect_https_port.unwrap_or(public_addr.port());
            tasks.push(tokio::spawn(serve_redirect(
                listener,
                https_port,
                gateway.clone(),
                metrics.clone(),
                phase.subscribe(),
            )));
        }
        tasks.push(tokio::spawn(watch_certificates(
            certs.clone(),
            config.server.cert_reload_interval,
            metrics.clone(),
            phase.subscribe(),
        )));
        tasks.push(tokio::spawn(probe_upstream(gateway.clone(), phase.subscribe())));
        tasks.push(tokio::spawn(probe_store(gateway.clone(), phase.subscribe())));
        tasks.push(tokio::spawn(cull_retention(gateway.clone(), phase.subscribe())));
        // The key versions this replica holds, for the others (src/retention/replicas.rs).
        let (announce_slot, mut announce_phase) = (gateway.clone(), phase.subscribe());
        tasks.push(tokio::spawn(async move {
            let stopping = async move { leaves_serving(&mut announce_phase).await };
            crate::login::announce_replica(|| announce_slot.current().login.clone(), stopping).await
        }));
        // The admin listener's gateway follows reloads too, keeping what the probe knew.
        let admin_slot = gateway.clone();
        let admin_process = process.clone();
        tasks.push(tokio::spawn(gateway.clone().follow(reloader.subscribe(), move |generation| {
            let gateway = Gateway::build(generation, &admin_process)?;
            if let (Some(new), Some(old)) = (&gateway.upstream, &admin_slot.current().upstream) {
                new.assume_reachable(old.is_reachable());
            }
            Ok(gateway)
        })));
        let watch_phase = phase.subscribe();
        tasks.push(tokio::spawn(crate::reload::watch_file(
            reloader.clone(),
            config.server.cert_reload_interval,
            move || *watch_phase.borrow() != Phase::Serving,
        )));
        tracing::info!(
            public = %public_addr,
            admin = %admin_addr,
            // "off" rather than Rust's `None` (issue 29).
            redirect = %redirect_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
            upstream = config.upstream.as_ref().map(|u| u.url.as_str()).unwrap_or("built-in echo platform"),
            "nymgate serving"
        );
        Ok(RunningServer {
            public_addr,
            admin_addr,
            redirect_addr,
            metrics,
            certs,
            reloader,
            phase,
            connections,
            max_connections: limits.max_connections,
            shutdown_grace: limits.shutdown_grace,
            tasks,
            threads,
            _listen_guard: listen_guard,
        })
    }

    /// Reloads the config file and the certificate now (SIGHUP). Each is all or nothing: on
    /// error the old one stays in service, and the problems are logged.
    pub async fn reload(&self) -> Result<(), ReloadError> {
        if let Err(error) = self.reload_certs() {
            tracing::warn!(%error, "certificate not reloaded; keeping the old one");
        }
        self.reloader.reload().await
    }

    /// Reloads the certificate now. On error the old one stays in service.
    pub fn reload_certs(&self) -> Result<ReloadOutcome, TlsError> {
        let outcome = self.certs.reload(true);
        self.metrics.cert_reload(if outcome.is_ok() { "reloaded" } else { "failed" });
        outcome
    }

    /// Graceful shutdown (SIGTERM): stop accepting, let in-flight requests finish for up to
    /// `limits.shutdown_grace`, then close what is left. Returns whether everything drained.
    pub async fn shutdown(self) -> bool {
        let _ = self.phase.send(Phase::Draining);
        tracing::info!(grace = ?self.shutdown_grace, "draining connections");
        let all = u32::try_from(self.max_connections).unwrap_or(u32::MAX);
        let drained =
            tokio::time::timeout(self.shutdown_grace, self.connections.acquire_many(all)).await.is_ok();
        let _ = self.phase.send(Phase::Closing);
        // Refused admin calls counted but not yet on an audit line (login/admin_refusals.rs).
        if let Some(login) = self.reloader.current().login.as_ref() {
            login.flush_admin_refusals().await;
        }
        for task in self.tasks {
            task.abort();
        }
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || threads.into_iter().for_each(|t| drop(t.join()))).await;
        tracing::info!(drained, "nymgate stopped");
        drained
    }
}

mod admin;
mod connection;
mod jobs;
mod worker;
use admin::*;
use connection::*;
use jobs::*;
use worker::*;

/// Runs until SIGTERM or Ctrl-C, reloading certificates on SIGHUP. For `nymgate serve`.
pub async fn run_until_signalled(server: RunningServer) -> bool {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = signal(SignalKind::hangup()).expect("SIGHUP handler can be installed");
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler can be installed");
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: reloading the config and the certificate");
                // Refusals are logged (each problem by its field) inside.
                let _ = server.reload().await;
            }
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    server.shutdown().await
}
