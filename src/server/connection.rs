//! One client connection's life: HTTP/1.1 served in a task and parked between requests, or
//! HTTP/2; every state under a deadline (`drive`, docs/CONNECTIONS.md).

use super::*;

/// What serves a client's HTTP/1.1 requests (the proxy's service), with the bounds hyper and
/// the tasks it moves between need, said once.
pub(super) trait ClientService:
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
pub(super) struct Http1<S> {
    pub(super) io: ClientIo<Box<TlsStream>>,
    pub(super) service: S,
    pub(super) activity: Activity,
    /// The connection's response bodies, for `limits.send_timeout`.
    pub(super) watch: ResponseWatch,
    pub(super) metrics: Arc<Metrics>,
    /// hyper's handle for an upgrade it prepared and nobody took (conn_bounds::Tunnel::pending).
    pub(super) pending: Arc<std::sync::Mutex<Option<hyper::upgrade::OnUpgrade>>>,
    pub(super) limits: Arc<LimitsConfig>,
    pub(super) lot: ParkingLot,
    pub(super) phase: watch::Receiver<Phase>,
    /// Shared with an upgraded tunnel, which outlives this.
    pub(super) _open: Arc<Open>,
}

impl<S: ClientService> Http1<S> {
    /// Serves requests until the connection ends, or parks: then it goes to the parking lot.
    pub(super) async fn serve(self) {
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
pub(super) async fn serve_until_parked<S: ClientService>(
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
pub(super) trait Drainable: std::future::Future<Output = Result<(), hyper::Error>> {
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
pub(super) enum Ended {
    /// hyper finished the connection (closed, upgraded, or parked).
    Finished,
    /// The server is closing, or a deadline ran out: drop everything now.
    Closing,
}

/// The deadlines [`drive`] keeps for one connection (conn_bounds.rs).
#[derive(Clone, Copy)]
pub(super) struct Bounds<'a> {
    pub(super) activity: &'a Activity,
    pub(super) limits: &'a LimitsConfig,
    pub(super) watch: &'a ResponseWatch,
    pub(super) metrics: &'a Metrics,
    /// HTTP/1.1: a response taken away leaves the connection unusable, so it closes too.
    pub(super) one_at_a_time: bool,
}

/// Runs a connection until hyper finishes it, with a deadline in every state: a response the
/// client does not read is taken away after `limits.send_timeout`; a connection with no byte
/// either way for `limits.idle_timeout` (or whose HTTP/1.1 response was taken away) is asked to
/// close, then dropped after [`CLOSE_GRACE`]; on shutdown it drains until the phase says close.
pub(super) async fn drive<C: Drainable>(
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
