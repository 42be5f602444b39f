//! Deadlines for the states of a client connection that hyper's own timers don't cover: a
//! response the client does not read, a connection asked to close that does not, an upgraded
//! tunnel, and the close itself.
//!
//! Every state a client connection can be in has a deadline (docs/CONNECTIONS.md):
//! - TLS handshake: `limits.tls_handshake_timeout` (server.rs);
//! - reading a request head: `limits.header_read_timeout` (hyper), a body: `limits.body_read_timeout`
//!   (body.rs), parked between requests: `limits.idle_timeout` (parking.rs);
//! - writing a response the client does not read, or waiting on HTTP/2 flow control: a response
//!   body the client has not taken a frame of for `limits.send_timeout` is taken away from it
//!   ([`ResponseWatch`]): whatever it held toward the platform (a pooled connection, a stream) is
//!   released at once, like nginx's `send_timeout`;
//! - no byte either way for `limits.idle_timeout`: a graceful close, then a hard one after
//!   [`CLOSE_GRACE`] (server.rs `drive`);
//! - tunnelled after an upgrade: [`Tunnel`] keeps the connection's place under the connection cap
//!   and closes it after `limits.idle_timeout` without a byte, or when the server closes;
//! - closing after an error answer: [`linger`] reads and discards what the client still sends
//!   for at most [`LINGER_TIME`], so that it reads the 400 or 413 instead of a reset.

use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::watch;

use crate::body::{Body, BoxError};
use crate::conn_io::Activity;

/// A connection asked to close gracefully (idle, or a response abandoned) is closed hard after
/// this, with everything it held. Long enough for a client that is still there to read a
/// GOAWAY or the end of a response; short enough that a stalled one costs little.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How long a closing HTTP/1.1 connection discards what its client still sends (nginx's
/// `lingering_time` is 30 s): a client usually sends its whole body before it reads the answer,
/// so this is the time to receive the rest of an upload refused early.
pub const LINGER_TIME: Duration = Duration::from_secs(5);
/// The most bytes discarded while lingering (they are read from the socket and dropped, never
/// decrypted): past it, the connection is closed anyway.
pub const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Serving,
    /// No new connections; in-flight requests finish; `/readyz` says not ready.
    Draining,
    /// The grace period is over: remaining connections are dropped.
    Closing,
}

/// Marks a watched body whose last poll found nothing (it waits on the platform, not the
/// client), or whose body was taken away: never a candidate for taking.
const WAITING_ON_PLATFORM: u64 = u64::MAX;

/// One response body in flight.
struct Slot {
    /// [`now_ms`] when the body last gave hyper a frame (or was made),
    /// or [`WAITING_ON_PLATFORM`].
    ready_since: std::sync::atomic::AtomicU64,
    /// The body itself, so that the watch can drop it (and what it holds) from outside.
    body: Mutex<Option<Body>>,
}

/// Milliseconds since the process's first use of this clock: one scale for every connection, so
/// that the worker's [`StallRegistry`] can compare responses of different connections.
fn now_ms() -> u64 {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
}

/// Under pressure a response whose client has left a frame untaken this long gives its platform
/// connection back (see [`StallRegistry`]). A client reading at any pace takes a frame within a
/// round trip of its window opening.
pub const RECLAIM_AFTER: Duration = Duration::from_secs(1);

/// One worker's response bodies in flight, for the platform pool at its bound: a request that
/// finds every platform connection in use takes one from the response whose client has not read
/// longest (at least [`RECLAIM_AFTER`]), instead of waiting behind clients that never read.
/// Without it, more stalled readers than `upstream.max_connections` would starve every reading
/// client for `limits.send_timeout` (bench/hostile.sh found it).
#[derive(Clone, Default)]
pub struct StallRegistry {
    slots: Slots,
}

impl StallRegistry {
    /// Takes away the response that has had a frame waiting for its client longest, if that is
    /// at least `after`. Returns whether one was taken.
    pub fn reclaim_one(&self, after: Duration) -> bool {
        let oldest = self.slots.unread_for(after).into_iter().min_by_key(|(since, _)| *since);
        // Dropped outside the lock: the body's drop releases its platform connection.
        oldest.is_some_and(|(_, slot)| slot.take_body())
    }
}

/// Response bodies in flight, weakly: a finished body leaves by being dropped.
#[derive(Clone, Default)]
struct Slots(Arc<Mutex<Vec<Weak<Slot>>>>);

impl Slots {
    fn add(&self, slot: &Arc<Slot>) {
        let mut slots = lock(&self.0);
        // Dead entries are swept when the list doubles: amortized constant work per response.
        if slots.len() >= 8 && slots.len().is_power_of_two() {
            slots.retain(|s| s.strong_count() > 0);
        }
        slots.push(Arc::downgrade(slot));
    }

    /// The bodies whose client has left a frame untaken for at least `limit`, with since when.
    fn unread_for(&self, limit: Duration) -> Vec<(u64, Arc<Slot>)> {
        use std::sync::atomic::Ordering;
        let now = now_ms();
        let limit = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
        let mut slots = lock(&self.0);
        slots.retain(|s| s.strong_count() > 0);
        slots
            .iter()
            .filter_map(Weak::upgrade)
            .filter_map(|slot| {
                let since = slot.ready_since.load(Ordering::Acquire);
                (since != WAITING_ON_PLATFORM && now.saturating_sub(since) >= limit).then_some((since, slot))
            })
            .collect()
    }

    fn live(&self) -> usize {
        lock(&self.0).iter().filter(|s| s.strong_count() > 0).count()
    }
}

impl Slot {
    /// Takes the body away (dropping it and what it holds); the slot is then never a candidate
    /// again. Returns whether there was a body to take.
    fn take_body(&self) -> bool {
        let body = lock(&self.body).take();
        self.ready_since.store(WAITING_ON_PLATFORM, std::sync::atomic::Ordering::Release);
        body.is_some()
    }
}

/// A connection's response bodies, for `limits.send_timeout`.
#[derive(Clone)]
pub struct ResponseWatch {
    /// The worker's registry, when the platform pool may reclaim from this connection.
    registry: Option<StallRegistry>,
    slots: Slots,
    /// Requests whose response head has not come yet: bounded by `upstream.response_timeout`,
    /// so an idle connection is not closed hard under them.
    awaiting_head: Arc<std::sync::atomic::AtomicUsize>,
}

impl Default for ResponseWatch {
    fn default() -> Self {
        Self::new(None)
    }
}

/// A request waiting for its response head; counted until dropped.
pub struct AwaitingHead(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for AwaitingHead {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl ResponseWatch {
    pub fn new(registry: Option<StallRegistry>) -> Self {
        Self { registry, slots: Slots::default(), awaiting_head: Arc::default() }
    }

    /// Wraps a response body so that the watch sees when hyper takes its frames.
    pub fn watch(&self, body: Body) -> WatchedBody {
        let slot = Arc::new(Slot { ready_since: now_ms().into(), body: Mutex::new(Some(body)) });
        self.slots.add(&slot);
        if let Some(registry) = &self.registry {
            registry.slots.add(&slot);
        }
        let wakeup = Arc::new(Wakeup { slot: Arc::downgrade(&slot), waker: Mutex::new(None) });
        WatchedBody { slot, wakeup }
    }

    /// Takes away every body that has had a frame ready for hyper (or had not been asked for
    /// one) for `send_timeout`: the client is not reading. Returns how many were taken.
    pub fn abandon_stalled(&self, send_timeout: Duration) -> usize {
        // Dropped outside the list's lock: a body's drop may release a platform connection.
        self.slots.unread_for(send_timeout).iter().filter(|(_, slot)| slot.take_body()).count()
    }

    /// Counts a request until its response head is made (drop the guard then).
    pub fn request_started(&self) -> AwaitingHead {
        self.awaiting_head.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        AwaitingHead(self.awaiting_head.clone())
    }

    /// Whether some request still waits for its response head.
    pub fn awaiting_head(&self) -> bool {
        self.awaiting_head.load(std::sync::atomic::Ordering::Acquire) > 0
    }

    /// Response bodies still in flight.
    pub fn in_flight(&self) -> usize {
        self.slots.live()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: keep using it.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A response body under a [`ResponseWatch`].
pub struct WatchedBody {
    slot: Arc<Slot>,
    /// The waker the platform's side is given: it marks the body ready when the platform's bytes
    /// arrive, then wakes hyper. Without it a body whose last poll found nothing would look as
    /// if it waited on the platform for good once hyper, blocked on a client that does not read,
    /// stops asking.
    wakeup: Arc<Wakeup>,
}

struct Wakeup {
    slot: Weak<Slot>,
    /// hyper's waker from the latest poll.
    waker: Mutex<Option<std::task::Waker>>,
}

impl std::task::Wake for Wakeup {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        use std::sync::atomic::Ordering;
        if let Some(slot) = self.slot.upgrade() {
            // Ready from now on, until hyper takes it.
            let _ = slot.ready_since.compare_exchange(
                WAITING_ON_PLATFORM,
                now_ms(),
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        if let Some(waker) = lock(&self.waker).as_ref() {
            waker.wake_by_ref();
        }
    }
}

/// The error hyper sees when the watch took a body away: it ends the stream (HTTP/2 RST_STREAM)
/// or the connection (HTTP/1.1).
#[derive(Debug, thiserror::Error)]
#[error("the client did not read the response within limits.send_timeout")]
pub struct Abandoned;

impl HttpBody for WatchedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        use std::sync::atomic::Ordering;
        let this = self.get_mut();
        let mut guard = lock(&this.slot.body);
        let Some(body) = guard.as_mut() else {
            return Poll::Ready(Some(Err(Box::new(Abandoned))));
        };
        {
            let mut waker = lock(&this.wakeup.waker);
            if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *waker = Some(cx.waker().clone());
            }
        }
        let waker = std::task::Waker::from(this.wakeup.clone());
        let polled = Pin::new(body).poll_frame(&mut Context::from_waker(&waker));
        let since = match &polled {
            Poll::Pending => WAITING_ON_PLATFORM,
            Poll::Ready(_) => now_ms(),
        };
        this.slot.ready_since.store(since, Ordering::Release);
        polled
    }

    fn is_end_stream(&self) -> bool {
        lock(&self.slot.body).as_ref().is_some_and(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        lock(&self.slot.body).as_ref().map(HttpBody::size_hint).unwrap_or_default()
    }
}

/// What an upgraded connection (WebSocket) keeps of its HTTP connection's bounds: its place
/// under the connection cap, its activity for the idle timeout, and the server's phase.
#[derive(Clone)]
pub struct Tunnel {
    /// Holds the connection's permit under `limits.max_connections` for as long as any holder
    /// lives: the HTTP connection while it serves, the tunnel after it.
    pub open: Arc<dyn Send + Sync>,
    /// Touched by every byte read from or written to the client (conn_io.rs), so by both
    /// directions of the tunnel.
    pub activity: Activity,
    pub idle_timeout: Duration,
    pub phase: watch::Receiver<Phase>,
    /// hyper's handle on the connection for the latest request that carried an `Upgrade`
    /// field. hyper prepares an upgrade for every such request and, when the answer was not a
    /// 101, still hands the connection over through it once the connection ends (parks or
    /// closes); kept here, that handle gives the connection back to server.rs, which parks it
    /// or closes it properly instead of losing it.
    pub pending: Arc<Mutex<Option<hyper::upgrade::OnUpgrade>>>,
}

impl Tunnel {
    /// Keeps hyper's upgrade handle of the request being served (see `pending`).
    pub fn hold(&self, on_upgrade: hyper::upgrade::OnUpgrade) {
        *lock(&self.pending) = Some(on_upgrade);
    }

    /// Takes the handle for a real upgrade (the platform answered 101).
    pub fn take(&self) -> Option<hyper::upgrade::OnUpgrade> {
        lock(&self.pending).take()
    }

    /// Copies bytes both ways until either side closes, no byte moves for the idle timeout, or
    /// the server closes. Holds the connection's permit until then.
    pub async fn splice<A, B>(mut self, client: &mut A, platform: &mut B) -> TunnelEnd
    where
        A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
        B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let _open = self.open.clone();
        let copy = tokio::io::copy_bidirectional(client, platform);
        tokio::pin!(copy);
        let tick = (self.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                result = &mut copy => return match result {
                    Ok(_) => TunnelEnd::Closed,
                    Err(_) => TunnelEnd::Failed,
                },
                _ = ticker.tick() => if self.activity.idle_for() >= self.idle_timeout {
                    return TunnelEnd::Idle;
                },
                _ = self.phase.wait_for(|p| *p == Phase::Closing) => return TunnelEnd::ServerClosing,
            }
        }
    }
}

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelEnd {
    Closed,
    Failed,
    Idle,
    ServerClosing,
}

/// An HTTP/2 client connection's stream, closed with a reset when a deadline cut it off. hyper's
/// HTTP/2 connection never gives its stream back (HTTP/1.1's does, and server.rs resets it
/// there), so the cut is flagged through [`Cut`] and acted on when hyper drops the stream.
pub struct ResetOnCut {
    inner: Box<crate::tls_stream::TlsStream>,
    cut: Arc<std::sync::atomic::AtomicBool>,
}

/// Says that the connection of a [`ResetOnCut`] was cut off by a deadline or the server's close.
pub struct Cut(Arc<std::sync::atomic::AtomicBool>);

impl Cut {
    pub fn cut(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }
}

impl ResetOnCut {
    pub fn new(inner: Box<crate::tls_stream::TlsStream>) -> (Self, Cut) {
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        (Self { inner, cut: cut.clone() }, Cut(cut))
    }
}

impl Drop for ResetOnCut {
    fn drop(&mut self) {
        if self.cut.load(std::sync::atomic::Ordering::Acquire) {
            reset(self.inner.tcp());
        }
    }
}

impl tokio::io::AsyncRead for ResetOnCut {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for ResetOnCut {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Bounds what the kernel queues unsent on `tcp` ([`UNSENT_BOUND`](crate::config::capacity::UNSENT_BOUND),
/// TCP_NOTSENT_LOWAT): nymgate's writes wait beyond it, so a peer that does not read costs the
/// host that much of its TCP memory, not `net.ipv4.tcp_wmem`'s maximum.
pub fn bound_send_queue(tcp: &tokio::net::TcpStream) {
    let _ = socket2::SockRef::from(tcp).set_tcp_notsent_lowat(crate::config::capacity::UNSENT_BOUND);
}

/// Makes the coming close of `tcp` a reset (SO_LINGER 0): for a connection cut off by a
/// deadline, whose unread response must not keep kernel memory and the peer's socket open.
pub fn reset(tcp: &tokio::net::TcpStream) {
    let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
}

/// A closing HTTP/1.1 connection's last act (RFC 9112 §9.6, nginx's `lingering_close`): stop
/// sending, then read and discard what the client still sends until it closes, for at most
/// [`LINGER_TIME`] and [`LINGER_BYTES`]. Closing with unread bytes in the socket makes the
/// kernel send a reset, which can reach the client before it read our error answer.
pub async fn linger(tcp: &tokio::net::TcpStream) {
    // Our side is done: the FIN tells the client so, after everything already written.
    let _ = socket2::SockRef::from(tcp).shutdown(std::net::Shutdown::Write);
    let discard = async {
        // On the heap, and only while lingering: an array here would be part of every
        // connection task's state, a handshake's included (16 KiB each; bench/hostile.sh).
        let mut buf = vec![0u8; 16 * 1024];
        let mut total = 0usize;
        while total < LINGER_BYTES {
            if tcp.readable().await.is_err() {
                return;
            }
            match tcp.try_read(&mut buf) {
                // The client closed: it has read everything it wanted.
                Ok(0) => return,
                Ok(n) => total += n,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, discard).await;
}

#[cfg(test)]
#[path = "conn_bounds_tests.rs"]
mod tests;
