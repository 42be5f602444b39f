//! The public listener's workers: one thread and runtime each, accepting TLS connections under
//! the connection cap, and each connection's place under that cap (`Open`).

use super::*;

/// One public-listener thread: its own single-threaded tokio runtime, socket, gateway and
/// connection pool to the platform. Limits (the connection cap, the shed budget) and metrics are
/// shared by all workers.
pub(super) struct Worker {
    pub(super) generations: watch::Receiver<Arc<Generation>>,
    pub(super) listener: std::net::TcpListener,
    pub(super) tls_config: Arc<rustls::ServerConfig>,
    /// What every gateway of the process shares: metrics, the client-IP reducer, the
    /// certificate in service (gateway.rs).
    pub(super) process: ProcessParts,
    pub(super) connections: Arc<Semaphore>,
    pub(super) shed: Arc<Semaphore>,
    pub(super) phase: watch::Receiver<Phase>,
}

impl Worker {
    pub(super) fn run(self) {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!(%error, "worker runtime could not start");
                return;
            }
        };
        let Worker { generations, listener, tls_config, process, connections, shed, mut phase } = self;
        runtime.block_on(async move {
            // The worker's responses in flight, from which its platform pool reclaims at the bound.
            let stalls = StallRegistry::default();
            let reclaim_from = stalls.clone();
            // This worker's gateway, with its own connection pool to the platform, rebuilt for
            // each reloaded generation.
            let build = move |generation: &Generation| -> Result<Gateway, ConfigProblem> {
                let gateway = Gateway::build(generation, &process)?;
                if let Some(upstream) = &gateway.upstream {
                    let stalls = reclaim_from.clone();
                    upstream
                        .client
                        .pool_set()
                        .reclaim_with(Box::new(move || stalls.reclaim_one(RECLAIM_AFTER)));
                }
                Ok(gateway)
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
pub(super) struct PublicListener {
    pub(super) listener: TcpListener,
    pub(super) tls_config: Arc<rustls::ServerConfig>,
    pub(super) gateway: GatewaySlot,
    /// Where this worker's HTTP/1.1 connections wait between requests.
    pub(super) lot: ParkingLot,
    /// The worker's responses in flight (conn_bounds.rs).
    pub(super) stalls: StallRegistry,
    pub(super) connections: Arc<Semaphore>,
    pub(super) shed: Arc<Semaphore>,
    pub(super) phase: watch::Receiver<Phase>,
}

impl PublicListener {
    /// A new connection, under the limits of the config in service now.
    pub(super) fn connection(&self) -> Connection {
        Connection {
            tls_config: self.tls_config.clone(),
            limits: self.gateway.current().limits.clone(),
            gateway: self.gateway.clone(),
            lot: self.lot.clone(),
            stalls: self.stalls.clone(),
            phase: self.phase.clone(),
        }
    }

    pub(super) async fn run(mut self) {
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
pub(super) struct Connection {
    pub(super) tls_config: Arc<rustls::ServerConfig>,
    /// Read per request: a reload reaches open connections from their next request on.
    pub(super) gateway: GatewaySlot,
    pub(super) limits: Arc<LimitsConfig>,
    pub(super) lot: ParkingLot,
    pub(super) stalls: StallRegistry,
    pub(super) phase: watch::Receiver<Phase>,
}

impl Connection {
    pub(super) async fn serve(
        self,
        tcp: TcpStream,
        peer: SocketAddr,
        shed: bool,
        permit: OwnedSemaphorePermit,
    ) {
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
    pub(super) async fn serve_shed(self, tls: Box<TlsStream>, is_h2: bool) {
        let service = service_fn(|_req: Request<Incoming>| async {
            let mut response = pipeline::error_response(StatusCode::SERVICE_UNAVAILABLE, "-", true);
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

    pub(super) async fn serve_h2(self, tls: Box<TlsStream>, peer: SocketAddr) {
        let activity = Activity::new();
        let (tls, cut) = crate::conn_bounds::ResetOnCut::new(tls);
        let io = ClientIo::new(tls, activity.clone(), None);
        let gateway = self.gateway.clone();
        let info = ConnInfo { peer, framing: None, tunnel: None, platform: Default::default() };
        let watch = ResponseWatch::new(Some(self.stalls.clone()));
        let responses = watch.clone();
        let service = service_fn(move |req| {
            let response = pipeline::handle(gateway.current(), info.clone(), req);
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
    pub(super) async fn serve_h1(self, tls: Box<TlsStream>, peer: SocketAddr, open: Open) {
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
            let response = pipeline::handle(gateway.current(), info.clone(), req);
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
pub(super) struct Open {
    pub(super) metrics: Arc<Metrics>,
    pub(super) _permit: OwnedSemaphorePermit,
}

impl Open {
    pub(super) fn new(metrics: Arc<Metrics>, permit: OwnedSemaphorePermit) -> Self {
        metrics.connection_opened();
        Self { metrics, _permit: permit }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}
