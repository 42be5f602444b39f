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
use crate::config::{Config, LimitsConfig};
use crate::conn_bounds::{ResponseWatch, StallRegistry, Tunnel, CLOSE_GRACE, RECLAIM_AFTER};
use crate::conn_io::{Activity, ClientIo, CountedBody, ParkGate};
use crate::framing::FramingWatch;
use crate::login::Login;
use crate::metrics::{Metrics, RouteClass};
use crate::parking::{Parked, ParkingLot};
use crate::proxy::{self, ConnInfo, Gateway};
use crate::reload::{GatewaySlot, Generation, ReloadError, Reloader};
use crate::secret::Secret;
use crate::tls::{self, ReloadOutcome, ReloadingCertResolver, TlsError};
use crate::tls_stream::{self, TlsStream};
use crate::upstream::Upstream;

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
    #[error("client_ip.hash_secret: {0}")]
    Secret(String),
    #[error("login: {0}")]
    Login(String),
}

/// A started nymgate: its bound addresses and the handles to reload and stop it.
pub struct RunningServer {
    pub public_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub redirect_addr: Option<SocketAddr>,
    pub metrics: Arc<Metrics>,
    certs: Arc<ReloadingCertResolver>,
    reloader: Arc<Reloader>,
    phase: watch::Sender<Phase>,
    connections: Arc<Semaphore>,
    max_connections: usize,
    shutdown_grace: Duration,
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
            Some(source) => Some(Secret::load(source).map_err(StartError::Secret)?),
            None => None,
        };
        let reducer = Arc::new(IpReducer::new(&config.client_ip, secret));
        // This gateway serves the admin listener and the upstream probe; each worker builds its
        // own (with its own connection pool to the platform) from the same parts.
        let upstream = config
            .upstream
            .as_ref()
            .map(Upstream::new)
            .transpose()
            .map_err(|source| StartError::Tls { field: source.upstream_field(), source })?;
        // One login face for the whole process: its single-use stores must be shared.
        let alerts = crate::alert::Alerts::new(&config.alerts, metrics.clone()).map_err(StartError::Login)?;
        let login = Login::new(&config, metrics.clone(), alerts).map_err(StartError::Login)?;
        if let Some(login) = &login {
            login.check_issuers().await.map_err(StartError::Login)?;
        }
        let gateway = GatewaySlot::new(Gateway::new(
            &config,
            metrics.clone(),
            reducer.clone(),
            upstream,
            login.clone(),
            &certs,
        ));
        let reloader = Reloader::new(Generation::new(config.clone(), login), metrics.clone());

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
                certs: certs.clone(),
                metrics: metrics.clone(),
                reducer: reducer.clone(),
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
        let (admin_metrics, admin_reducer, admin_certs) = (metrics.clone(), reducer.clone(), certs.clone());
        tasks.push(tokio::spawn(gateway.clone().follow(reloader.subscribe(), move |generation| {
            let upstream = generation
                .config
                .upstream
                .as_ref()
                .map(Upstream::new)
                .transpose()
                .map_err(|e| e.to_string())?;
            if let (Some(new), Some(old)) = (&upstream, &admin_slot.current().upstream) {
                new.assume_reachable(old.is_reachable());
            }
            Ok(Gateway::new(
                &generation.config,
                admin_metrics.clone(),
                admin_reducer.clone(),
                upstream,
                generation.login.clone(),
                &admin_certs,
            ))
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

/// One public-listener thread: its own single-threaded tokio runtime, socket, gateway and
/// connection pool to the platform. Limits (the connection cap, the shed budget) and metrics are
/// shared by all workers.
struct Worker {
    generations: watch::Receiver<Arc<Generation>>,
    listener: std::net::TcpListener,
    tls_config: Arc<rustls::ServerConfig>,
    /// The certificate in service, whose names are the public hosts when none are configured.
    certs: Arc<ReloadingCertResolver>,
    metrics: Arc<Metrics>,
    reducer: Arc<IpReducer>,
    connections: Arc<Semaphore>,
    shed: Arc<Semaphore>,
    phase: watch::Receiver<Phase>,
}

impl Worker {
    fn run(self) {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!(%error, "worker runtime could not start");
                return;
            }
        };
        let Worker {
            generations,
            listener,
            tls_config,
            certs,
            metrics,
            reducer,
            connections,
            shed,
            mut phase,
        } = self;
        runtime.block_on(async move {
            // The worker's responses in flight, from which its platform pool reclaims at the bound.
            let stalls = StallRegistry::default();
            let reclaim_from = stalls.clone();
            // This worker's gateway, with its own connection pool to the platform, rebuilt for
            // each reloaded generation.
            let build = move |generation: &Generation| -> Result<Gateway, String> {
                let config = &generation.config;
                let upstream =
                    config.upstream.as_ref().map(Upstream::new).transpose().map_err(|e| e.to_string())?;
                if let Some(upstream) = &upstream {
                    let stalls = reclaim_from.clone();
                    upstream
                        .client
                        .pool_set()
                        .reclaim_with(Box::new(move || stalls.reclaim_one(RECLAIM_AFTER)));
                }
                Ok(Gateway::new(
                    config,
                    metrics.clone(),
                    reducer.clone(),
                    upstream,
                    generation.login.clone(),
                    &certs,
                ))
            };
            let first = generations.borrow().clone();
            let gateway = match build(&first) {
                Ok(gateway) => GatewaySlot::new(gateway),
                Err(error) => {
                    tracing::error!(%error, "worker could not build its upstream client");
                    return;
                }
            };
            let listener = match TcpListener::from_std(listener) {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::error!(%error, "worker could not register its listener");
                    return;
                }
            };
            tokio::spawn(gateway.clone().follow(generations, build));
            let lot = ParkingLot::new(gateway.current().metrics.clone());
            let mut lot_phase = phase.clone();
            tokio::spawn(lot.clone().run(async move { leaves_serving(&mut lot_phase).await }));
            let public_loop = PublicListener {
                listener,
                tls_config,
                gateway,
                lot,
                stalls,
                connections,
                shed,
                phase: phase.clone(),
            };
            tokio::spawn(public_loop.run());
            // Connection tasks live on this runtime: keep it running until the grace is over.
            reaches(&mut phase, Phase::Closing).await;
        });
    }
}

/// The public HTTPS listener's accept loop.
struct PublicListener {
    listener: TcpListener,
    tls_config: Arc<rustls::ServerConfig>,
    gateway: GatewaySlot,
    /// Where this worker's HTTP/1.1 connections wait between requests.
    lot: ParkingLot,
    /// The worker's responses in flight (conn_bounds.rs).
    stalls: StallRegistry,
    connections: Arc<Semaphore>,
    shed: Arc<Semaphore>,
    phase: watch::Receiver<Phase>,
}

impl PublicListener {
    /// A new connection, under the limits of the config in service now.
    fn connection(&self) -> Connection {
        Connection {
            tls_config: self.tls_config.clone(),
            limits: self.gateway.current().limits.clone(),
            gateway: self.gateway.clone(),
            lot: self.lot.clone(),
            stalls: self.stalls.clone(),
            phase: self.phase.clone(),
        }
    }

    async fn run(mut self) {
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                        continue;
                    }
                },
                _ = leaves_serving(&mut self.phase) => return,
            };
            let _ = tcp.set_nodelay(true);
            crate::conn_bounds::bound_send_queue(&tcp);
            match self.connections.clone().try_acquire_owned() {
                Ok(permit) => {
                    let conn = self.connection();
                    tokio::spawn(conn.serve(tcp, peer, false, permit));
                }
                Err(_) => {
                    self.gateway.current().metrics.connection_shed();
                    // Over the cap: a short answer if we can afford it, else just close.
                    if let Ok(permit) = self.shed.clone().try_acquire_owned() {
                        let conn = self.connection();
                        tokio::spawn(conn.serve(tcp, peer, true, permit));
                    }
                }
            }
        }
    }
}

/// One client connection.
struct Connection {
    tls_config: Arc<rustls::ServerConfig>,
    /// Read per request: a reload reaches open connections from their next request on.
    gateway: GatewaySlot,
    limits: Arc<LimitsConfig>,
    lot: ParkingLot,
    stalls: StallRegistry,
    phase: watch::Receiver<Phase>,
}

impl Connection {
    async fn serve(self, tcp: TcpStream, peer: SocketAddr, shed: bool, permit: OwnedSemaphorePermit) {
        let metrics = self.gateway.current().metrics.clone();
        let open = Open::new(metrics.clone(), permit);

        // The task's size is that of its largest state, so the handshake, HTTP/2 and shedding are
        // boxed; a parked HTTP/1.1 connection leaves its task for the worker's parking lot
        // (parking.rs). The stream (1.2 KB of rustls state) moves as a pointer.
        let (tls_config, limit) = (&self.tls_config, self.limits.tls_handshake_timeout);
        let handshake = Box::pin(async move {
            let tls = tokio::time::timeout(limit, tls_stream::accept(tcp, tls_config.clone())).await;
            tls.map(|accepted| accepted.map(Box::new))
        });
        let tls = match handshake.await {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                metrics.tls_handshake_failed();
                tracing::debug!(%error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                metrics.tls_handshake_failed();
                tracing::debug!("TLS handshake timed out");
                return;
            }
        };
        let is_h2 = tls.alpn_protocol() == Some(tls::ALPN_H2);
        match (shed, is_h2) {
            (true, _) => Box::pin(self.serve_shed(tls, is_h2)).await,
            (false, true) => Box::pin(self.serve_h2(tls, peer)).await,
            (false, false) => self.serve_h1(tls, peer, open).await,
        }
    }

    /// Over the connection cap: every request gets 503 with Retry-After, then the connection ends.
    async fn serve_shed(self, tls: Box<TlsStream>, is_h2: bool) {
        let service = service_fn(|_req: Request<Incoming>| async {
            let mut response = proxy::error_response(StatusCode::SERVICE_UNAVAILABLE, "-", true);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok::<_, std::convert::Infallible>(response)
        });
        let limit = self.limits.header_read_timeout;
        let io = TokioIo::new(ClientIo::new(tls, Activity::new(), None));
        if is_h2 {
            let conn = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .serve_connection(io, service);
            let _ = tokio::time::timeout(limit, conn).await;
        } else {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .keep_alive(false)
                .header_read_timeout(limit)
                .serve_connection(io, service);
            let _ = tokio::time::timeout(limit, conn).await;
        }
    }

    async fn serve_h2(self, tls: Box<TlsStream>, peer: SocketAddr) {
        let activity = Activity::new();
        let (tls, cut) = crate::conn_bounds::ResetOnCut::new(tls);
        let io = ClientIo::new(tls, activity.clone(), None);
        let gateway = self.gateway.clone();
        let info = ConnInfo { peer, framing: None, tunnel: None, platform: Default::default() };
        let watch = ResponseWatch::new(Some(self.stalls.clone()));
        let responses = watch.clone();
        let service = service_fn(move |req| {
            let response = proxy::handle(gateway.current(), info.clone(), req);
            let watch = responses.clone();
            async move {
                let _awaiting = watch.request_started();
                let response = response.await?;
                Ok::<_, std::convert::Infallible>(response.map(|b| watch.watch(b)))
            }
        });
        let limits = &self.limits;
        let conn = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_concurrent_streams)
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            // Bounded buffers per connection and per stream (config/capacity.rs): what a client
            // may send before nymgate reads it, and what waits for a client that doesn't read.
            .initial_connection_window_size(H2_CONNECTION_WINDOW)
            .initial_stream_window_size(H2_STREAM_WINDOW)
            .adaptive_window(false)
            .max_send_buf_size(H2_SEND_BUFFER)
            .serve_connection(TokioIo::new(io), service);
        let mut phase = self.phase.clone();
        let metrics = self.gateway.current().metrics.clone();
        let bounds =
            Bounds { activity: &activity, limits, watch: &watch, metrics: &metrics, one_at_a_time: false };
        let mut conn = std::pin::pin!(conn);
        if drive(conn.as_mut(), bounds, &mut phase).await == Ended::Closing {
            // Cut off: reset when hyper's connection drops the stream below, as HTTP/1.1 does
            // (serve_until_parked), so the kernel lets go of what the client never read.
            cut.cut();
        }
    }

    /// HTTP/1.1, parked between requests (conn_io.rs).
    async fn serve_h1(self, tls: Box<TlsStream>, peer: SocketAddr, open: Open) {
        let Connection { gateway, limits, lot, stalls, phase, .. } = self;
        let activity = Activity::new();
        let framing = Arc::new(FramingWatch::new());
        let gate = ParkGate::new(framing.clone(), limits.park_after);
        let responses = gate.responses.clone();
        let io = ClientIo::new(tls, activity.clone(), None).parkable(gate);
        let open = Arc::new(open);
        // An upgraded connection (WebSocket) leaves hyper: it takes the connection's place under
        // the cap, its activity and the phase along (conn_bounds.rs).
        let tunnel = Tunnel {
            open: open.clone(),
            activity: activity.clone(),
            idle_timeout: limits.idle_timeout,
            phase: phase.clone(),
            pending: Arc::default(),
        };
        let pending = tunnel.pending.clone();
        let info =
            ConnInfo { peer, framing: Some(framing), tunnel: Some(tunnel), platform: Default::default() };
        let watch = ResponseWatch::new(Some(stalls));
        let bodies = watch.clone();
        let metrics = gateway.current().metrics.clone();
        let service = service_fn(move |req| {
            let response = proxy::handle(gateway.current(), info.clone(), req);
            let responses = responses.clone();
            let watch = bodies.clone();
            async move {
                let awaiting = watch.request_started();
                let response = response.await?;
                drop(awaiting);
                Ok::<_, std::convert::Infallible>(
                    response.map(|b| CountedBody::new(watch.watch(b), responses)),
                )
            }
        });
        Http1 { io, service, activity, watch, metrics, pending, limits, lot, phase, _open: open }
            .serve()
            .await;
    }
}

/// A client connection's place under the connection cap and its count in the metrics, given
/// back when the connection ends, wherever that is (an HTTP/1.1 connection moves between tasks
/// and the parking lot).
struct Open {
    metrics: Arc<Metrics>,
    _permit: OwnedSemaphorePermit,
}

impl Open {
    fn new(metrics: Arc<Metrics>, permit: OwnedSemaphorePermit) -> Self {
        metrics.connection_opened();
        Self { metrics, _permit: permit }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}

/// What serves a client's HTTP/1.1 requests (the proxy's service), with the bounds hyper and
/// the tasks it moves between need, said once.
trait ClientService:
    hyper::service::HttpService<
        Incoming,
        Future: Send + 'static,
        ResBody: hyper::body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static,
        Error: Into<BoxError>,
    > + Clone
    + Send
    + Sync
    + Unpin
    + 'static
{
}

impl<S> ClientService for S where
    S: hyper::service::HttpService<
            Incoming,
            Future: Send + 'static,
            ResBody: hyper::body::Body<Data: Send, Error: Into<BoxError>> + Send + 'static,
            Error: Into<BoxError>,
        > + Clone
        + Send
        + Sync
        + Unpin
        + 'static
{
}

/// An HTTP/1.1 connection between its tasks. Parked connections are most connections, so a
/// connection is served in a task and, once parked, waits without one in its worker's
/// [`ParkingLot`]: then it holds only this (BENCHMARKS.md §1).
struct Http1<S> {
    io: ClientIo<Box<TlsStream>>,
    service: S,
    activity: Activity,
    /// The connection's response bodies, for `limits.send_timeout`.
    watch: ResponseWatch,
    metrics: Arc<Metrics>,
    /// hyper's handle for an upgrade it prepared and nobody took (conn_bounds::Tunnel::pending).
    pending: Arc<std::sync::Mutex<Option<hyper::upgrade::OnUpgrade>>>,
    limits: Arc<LimitsConfig>,
    lot: ParkingLot,
    phase: watch::Receiver<Phase>,
    /// Shared with an upgraded tunnel, which outlives this.
    _open: Arc<Open>,
}

impl<S: ClientService> Http1<S> {
    /// Serves requests until the connection ends, or parks: then it goes to the parking lot.
    async fn serve(self) {
        let Http1 { io, service, activity, watch, metrics, pending, limits, lot, phase, _open } = self;
        let bounds = Bounds {
            activity: &activity,
            limits: &limits,
            watch: &watch,
            metrics: &metrics,
            one_at_a_time: true,
        };
        let serving = serve_until_parked(io, service.clone(), bounds, &pending, phase.clone());
        let Some(io) = serving.await else { return };
        let idle_for = limits.idle_timeout.saturating_sub(activity.idle_for());
        let parked =
            Http1 { io, service, activity, watch, metrics, pending, limits, lot: lot.clone(), phase, _open };
        lot.park(Box::new(parked), idle_for);
    }
}

impl<S: ClientService> Parked for Http1<S> {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // The waker waits in the socket's registration: nothing else to hold per connection.
        self.io.get_ref().tcp().poll_read_ready(cx)
    }

    fn resume(self: Box<Self>) {
        tokio::spawn(self.serve());
    }

    fn close(mut self: Box<Self>) {
        // Idle too long or shutting down: say goodbye properly (TLS close_notify).
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(1), self.io.shutdown()).await;
        });
    }
}

/// Serves HTTP/1.1 requests until the connection ends (`None`) or parks: then the stream comes
/// back with its unread bytes kept and its idle buffers freed.
async fn serve_until_parked<S: ClientService>(
    io: ClientIo<Box<TlsStream>>,
    service: S,
    bounds: Bounds<'_>,
    pending: &std::sync::Mutex<Option<hyper::upgrade::OnUpgrade>>,
    mut phase: watch::Receiver<Phase>,
) -> Option<ClientIo<Box<TlsStream>>> {
    let limits = bounds.limits;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes.max(8192))
        // A client may shut its sending side once its request is out and still read the answer
        // (RFC 9112 §9.6 lets it half-close); without this hyper reads on while the platform is
        // answering, to take such an end for an abort. That read also cost a fresh 8 KiB buffer
        // per request, hyper's being still shared with the request's head (`perf`: 3.7% of the
        // proxy's CPU, BENCHMARKS.md §1). A client that really went away is noticed when its
        // answer is written; the platform's work is bounded by upstream.response_timeout.
        .half_close(true);
    let mut conn = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
    if drive(Pin::new(&mut conn), bounds, &mut phase).await == Ended::Closing {
        // Cut off: reset rather than close, so that the kernel does not keep the connection
        // (and the response bytes the client never read) alive after nymgate let go of it
        // (nginx's `reset_timedout_connection`).
        if let Some(parts) = conn.into_parts() {
            crate::conn_bounds::reset(parts.io.inner().get_ref().tcp());
        }
        return None;
    }
    let (mut io, read_buf) = match conn.into_parts() {
        Some(parts) => (parts.io.into_inner(), parts.read_buf),
        // hyper handed the connection to an upgrade. A real one (101) took its handle already;
        // one prepared for a request the platform answered otherwise gives the connection back.
        None => {
            let unclaimed = pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()?;
            let upgraded = unclaimed.await.ok()?;
            let parts = upgraded.downcast::<TokioIo<ClientIo<Box<TlsStream>>>>().ok()?;
            (parts.io.into_inner(), parts.read_buf)
        }
    };
    if !io.is_parked() {
        // Closing: hyper said goodbye (TLS close_notify); the client's remaining bytes are read
        // and dropped so that it gets our last answer, not a reset (conn_bounds::linger).
        crate::conn_bounds::linger(io.get_ref().tcp()).await;
        return None;
    }
    // hyper's read buffer comes back as a view of its whole 8 KiB allocation: keep only the
    // bytes (normally none).
    io.unpark(Bytes::copy_from_slice(&read_buf));
    // Parked, the connection keeps only its TLS session and socket (tls_stream.rs).
    io.get_mut().release_idle_buffers();
    Some(io)
}

/// A connection that can be asked to finish gracefully.
trait Drainable: std::future::Future<Output = Result<(), hyper::Error>> {
    fn drain(self: Pin<&mut Self>);
}

impl<I, S, B> Drainable for http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, E, B> Drainable for http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn drain(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// How [`drive`] stopped.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// hyper finished the connection (closed, upgraded, or parked).
    Finished,
    /// The server is closing, or a deadline ran out: drop everything now.
    Closing,
}

/// The deadlines [`drive`] keeps for one connection (conn_bounds.rs).
#[derive(Clone, Copy)]
struct Bounds<'a> {
    activity: &'a Activity,
    limits: &'a LimitsConfig,
    watch: &'a ResponseWatch,
    metrics: &'a Metrics,
    /// HTTP/1.1: a response taken away leaves the connection unusable, so it closes too.
    one_at_a_time: bool,
}

/// Runs a connection until hyper finishes it, with a deadline in every state: a response the
/// client does not read is taken away after `limits.send_timeout`; a connection with no byte
/// either way for `limits.idle_timeout` (or whose HTTP/1.1 response was taken away) is asked to
/// close, then dropped after [`CLOSE_GRACE`]; on shutdown it drains until the phase says close.
async fn drive<C: Drainable>(
    mut conn: Pin<&mut C>,
    bounds: Bounds<'_>,
    phase: &mut watch::Receiver<Phase>,
) -> Ended {
    let Bounds { activity, limits, watch, metrics, one_at_a_time } = bounds;
    let mut draining = *phase.borrow() != Phase::Serving;
    if draining {
        conn.as_mut().drain();
    }
    // Set when nymgate, not the server's phase, asked the connection to close.
    let mut close_at: Option<tokio::time::Instant> = None;
    let shortest = limits.idle_timeout.min(limits.send_timeout);
    let mut tick =
        tokio::time::interval((shortest / 4).clamp(Duration::from_millis(50), Duration::from_secs(5)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    // Client-side protocol errors and resets: routine, not worth more than debug.
                    tracing::debug!(%error, "connection ended with an error");
                }
                return Ended::Finished;
            }
            _ = tick.tick() => {
                let abandoned = watch.abandon_stalled(limits.send_timeout);
                for _ in 0..abandoned {
                    metrics.deadline_cut("send_timeout");
                }
                let idle = activity.idle_for() >= limits.idle_timeout;
                if close_at.is_none() && (idle || (abandoned > 0 && one_at_a_time)) {
                    if !draining {
                        conn.as_mut().drain();
                        draining = true;
                    }
                    close_at = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                }
                // A request still waiting for its response head is bounded by
                // upstream.response_timeout, and gets its answer or its 504 first.
                if close_at.is_some_and(|at| tokio::time::Instant::now() >= at) && !watch.awaiting_head() {
                    metrics.deadline_cut("close_grace");
                    return Ended::Closing;
                }
            }
            changed = phase.changed() => {
                let now = if changed.is_ok() { *phase.borrow_and_update() } else { Phase::Closing };
                match now {
                    Phase::Serving => {}
                    Phase::Draining => if !draining {
                        conn.as_mut().drain();
                        draining = true;
                    },
                    Phase::Closing => return Ended::Closing,
                }
            }
        }
    }
}

/// Resolves when the server stops serving (or is gone).
async fn leaves_serving(phase: &mut watch::Receiver<Phase>) {
    let _ = phase.wait_for(|p| *p != Phase::Serving).await;
}

/// Resolves when the server reaches `target` (or is gone).
async fn reaches(phase: &mut watch::Receiver<Phase>, target: Phase) {
    let _ = phase.wait_for(|p| *p == target).await;
}

/// Serves plain HTTP/1.1 on a listener with `handler`, until the phase leaves `Serving`.
async fn serve_plain<F, Fut>(listener: TcpListener, mut phase: watch::Receiver<Phase>, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            _ = reaches(&mut phase, Phase::Closing) => return,
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let response = handler(req);
                async move { Ok::<_, std::convert::Infallible>(response.await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
        });
    }
}

fn text_response(status: StatusCode, text: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut response = Response::new(body::full(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The admin listener: `/healthz` (the process runs), `/readyz` (it should get traffic: config
/// loaded, not draining, the platform and the shared store reachable, the audit log writable),
/// `/metrics` (OpenMetrics 1.0 or Prometheus text 0.0.4, as the scraper asks).
async fn serve_admin(listener: TcpListener, slot: GatewaySlot, phase: watch::Receiver<Phase>) {
    let readiness = phase.clone();
    serve_plain(listener, phase, move |req: Request<Incoming>| {
        let gateway = slot.current();
        let readiness = readiness.clone();
        async move {
            match req.uri().path() {
                "/healthz" => text_response(StatusCode::OK, "ok\n"),
                "/readyz" => {
                    let serving = *readiness.borrow() == Phase::Serving;
                    let upstream = gateway.upstream.as_ref().is_none_or(|u| u.is_reachable());
                    let store = gateway.login.as_ref().map(|login| login.store());
                    let store_up = store.is_none_or(|s| s.is_up());
                    // Every login is audited or refused (docs/LOGIN.md, "The audit log"): a
                    // replica that can't write its audit log leaves the pool until it can.
                    let audit_failing = match gateway.login.as_ref() {
                        Some(login) => login.audit_failing().await,
                        None => false,
                    };
                    let report = format!(
                        "config: loaded\nlisteners: {}\nupstream: {}\nstore: {}\naudit: {}\n",
                        if serving { "serving" } else { "draining" },
                        if upstream { "reachable" } else { "unreachable" },
                        match store {
                            Some(s) if s.is_shared() =>
                                if store_up {
                                    "reachable"
                                } else {
                                    "unreachable"
                                },
                            _ => "memory",
                        },
                        if audit_failing { "failing" } else { "writing" },
                    );
                    let status = if serving && upstream && store_up && !audit_failing {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    text_response(status, report)
                }
                path if path.starts_with(crate::login::retention_api::PREFIX) => match gateway.login.as_ref()
                {
                    Some(login) => {
                        let (parts, body) = req.into_parts();
                        login.retention_api(&parts.method, parts.uri.path(), &parts.headers, body).await
                    }
                    None => text_response(StatusCode::NOT_FOUND, "not found\n"),
                },
                "/metrics" => {
                    // OpenMetrics 1.0 to a scraper that asks for it, Prometheus text 0.0.4
                    // otherwise, each labelled as what it is (metrics_format.rs).
                    let accept = req.headers().get(header::ACCEPT).map(HeaderValue::as_bytes);
                    let format = crate::metrics_format::negotiate(accept);
                    let tampered = gateway.login.as_ref().map_or(0, |login| login.retention_tampered());
                    gateway.metrics.retention_tampered(tampered);
                    let mut response = text_response(StatusCode::OK, gateway.metrics.render_as(format));
                    let headers = response.headers_mut();
                    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
                    headers.insert(header::VARY, HeaderValue::from_static("accept"));
                    response
                }
                _ => text_response(StatusCode::NOT_FOUND, "not found\n"),
            }
        }
    })
    .await
}

/// The plain-HTTP listener: a redirect to HTTPS for everything but `/healthz`
/// (shared/PRODUCT.md: "Plain HTTP serves only redirects and health checks").
async fn serve_redirect(
    listener: TcpListener,
    https_port: u16,
    gateway: GatewaySlot,
    metrics: Arc<Metrics>,
    phase: watch::Receiver<Phase>,
) {
    serve_plain(listener, phase, move |req: Request<Incoming>| {
        let metrics = metrics.clone();
        let gateway = gateway.current();
        async move {
            let response = redirect_response(&req, https_port, &gateway.public_hosts);
            metrics.request(RouteClass::Redirect, response.status());
            response
        }
    })
    .await
}

/// A redirect only to one of nymgate's public hosts (public_hosts.rs): a redirect to any Host
/// the client names would send a browser wherever a link's author chose.
fn redirect_response(
    req: &Request<Incoming>,
    https_port: u16,
    hosts: &crate::proxy::PublicHosts,
) -> Response<Body> {
    if req.uri().path() == "/healthz" {
        return text_response(StatusCode::OK, "ok\n");
    }
    let (parts, ()) = {
        let mut builder = Request::builder().method(req.method()).uri(req.uri()).version(req.version());
        for (name, value) in req.headers() {
            builder = builder.header(name, value);
        }
        builder.body(()).expect("copied from a valid request").into_parts()
    };
    let Ok(host) = crate::sanitize::validated_host(&parts) else {
        return text_response(StatusCode::BAD_REQUEST, "400 Bad Request\n");
    };
    if !hosts.allows(&host) {
        return text_response(StatusCode::MISDIRECTED_REQUEST, "421 Misdirected Request\n");
    }
    let hostname = match host.rsplit_once(':') {
        Some((name, port))
            if !name.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(']') =>
        {
            name
        }
        _ => host.as_str(),
    };
    let port = if https_port == 443 { String::new() } else { format!(":{https_port}") };
    let path = req.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    let location = format!("https://{hostname}{port}{path}");
    let mut response = text_response(StatusCode::PERMANENT_REDIRECT, "");
    match HeaderValue::from_str(&location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => text_response(StatusCode::BAD_REQUEST, "400 Bad Request\n"),
    }
}

/// Checks the certificate files every `interval` and swaps in a changed pair.
async fn watch_certificates(
    certs: Arc<ReloadingCertResolver>,
    interval: Duration,
    metrics: Arc<Metrics>,
    mut phase: watch::Receiver<Phase>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = leaves_serving(&mut phase) => return,
        }
        match certs.reload(false) {
            Ok(ReloadOutcome::Unchanged) => {}
            Ok(ReloadOutcome::Reloaded) => {
                metrics.cert_reload("reloaded");
                tracing::info!("certificate files changed: reloaded");
            }
            Err(error) => {
                metrics.cert_reload("failed");
                tracing::warn!(%error, "certificate files changed but could not be loaded; keeping the old certificate");
            }
        }
    }
}

async fn probe_upstream(slot: GatewaySlot, mut phase: watch::Receiver<Phase>) {
    let mut was = None;
    loop {
        // The gateway in service now: after a reload, the new platform address is probed.
        let gateway = slot.current();
        if let Some(upstream) = gateway.upstream.as_ref() {
            let now = upstream.probe().await;
            if was != Some(now) {
                if now {
                    tracing::info!("platform reachable");
                } else {
                    tracing::warn!("platform unreachable");
                }
                was = Some(now);
            }
        }
        drop(gateway);
        tokio::select! {
            _ = tokio::time::sleep(UPSTREAM_PROBE_INTERVAL) => {}
            _ = leaves_serving(&mut phase) => return,
        }
    }
}

/// Pings a shared store (Redis) so that `/readyz` and `nymgate_store_up` follow it even while
/// no login comes: a replica whose store is down should leave the load balancer's login pool.
async fn probe_store(slot: GatewaySlot, mut phase: watch::Receiver<Phase>) {
    loop {
        let gateway = slot.current();
        if let Some(store) =
            gateway.login.as_ref().map(|login| login.store().clone()).filter(|s| s.is_shared())
        {
            let up = store.probe().await;
            gateway.metrics.store_up(up);
        }
        drop(gateway);
        tokio::select! {
            _ = tokio::time::sleep(STORE_PROBE_INTERVAL) => {}
            _ = leaves_serving(&mut phase) => return,
        }
    }
}

/// The retention store's culling job (docs/RETENTION.md): every `retention.cull_interval`,
/// records no login has refreshed within `cull_after` are deleted. The first run is at start.
async fn cull_retention(slot: GatewaySlot, mut phase: watch::Receiver<Phase>) {
    loop {
        let gateway = slot.current();
        let interval = match gateway.login.as_ref().and_then(|login| login.retention_interval()) {
            Some(interval) => {
                let login = gateway.login.clone().expect("checked above");
                match login.cull_retention(crate::clock::unix_now()).await {
                    Ok(removed) => {
                        tracing::info!(removed, "retention: culled records not seen within cull_after")
                    }
                    Err(error) => {
                        tracing::warn!(%error, "retention: culling failed; it runs again at the next interval")
                    }
                }
                interval
            }
            None => Duration::from_secs(60),
        };
        drop(gateway);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = leaves_serving(&mut phase) => return,
        }
    }
}

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
