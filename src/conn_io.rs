//! The client connection's byte stream as hyper sees it: activity for the idle timeout, the
//! framing watch (framing.rs), and parking of idle HTTP/1.1 keep-alive connections.
//!
//! Why parking: hyper 1.x keeps an 8 KiB read buffer and an 8 KiB write buffer for every HTTP/1
//! connection for its whole life, and neither can be made smaller. Most keep-alive connections
//! sit idle between requests most of the time, so 10,000 of them cost 270 MiB, two thirds of it
//! in those buffers. A parked connection keeps only its TLS session and socket: hyper's
//! connection is dropped while the client is quiet and a fresh one is made when bytes arrive.
//!
//! How: when hyper asks for the next request head and the socket has nothing, the stream answers
//! end-of-file instead of "pending", which hyper treats as a client that closed gracefully
//! between requests (it writes nothing). That is only sound when the connection sits exactly
//! between requests, so [`ClientIo`] parks only when all of these hold:
//! - the framing watch says every byte read belongs to a complete request (no partial head,
//!   no unread body, not upgraded);
//! - every one of those requests has had its response body finished or dropped
//!   ([`CountedBody`]), so hyper is not writing;
//! - everything hyper wrote has been flushed (hyper flushes the stream only once its own buffer
//!   is empty);
//! - the TLS stream has no decrypted bytes and the socket none to read;
//! - and all of that has held for `limits.park_after` (100 ms by default): rebuilding hyper's state
//!   for every request of a busy connection cost 9% of HTTP/1.1 throughput (BENCHMARKS.md §1).
//!
//! Anything else (HTTP/2, a stopped watcher, an upgrade) is never parked and behaves as before.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::framing::FramingWatch;

/// When a connection last moved a byte, for the idle timeout.
#[derive(Clone)]
pub struct Activity {
    base: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    pub fn new() -> Self {
        Self { base: Instant::now(), last_ms: Arc::new(AtomicU64::new(0)) }
    }
    pub fn touch(&self) {
        self.last_ms.store(self.base.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    pub fn idle_for(&self) -> Duration {
        let now = self.base.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-connection count of finished responses, shared by the stream and the response bodies.
#[derive(Default)]
pub struct ResponsesDone(AtomicU64);

impl ResponsesDone {
    fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// What a parkable connection needs: the framing watch, the finished-response count, and how
/// long it must be quiet between requests before it parks.
#[derive(Clone)]
pub struct ParkGate {
    pub framing: Arc<FramingWatch>,
    pub responses: Arc<ResponsesDone>,
    pub after: Duration,
}

impl ParkGate {
    pub fn new(framing: Arc<FramingWatch>, after: Duration) -> Self {
        Self { framing, responses: Arc::default(), after }
    }

    /// True when every request read has been answered and nothing partial is pending.
    fn between_requests(&self) -> bool {
        self.framing.between_requests() == Some(self.responses.get())
    }
}

pin_project! {
    /// The client's stream as hyper reads and writes it.
    pub struct ClientIo<S> {
        #[pin]
        inner: S,
        activity: Activity,
        // HTTP/1.1 only: sees every byte read, to flag smuggling-shaped heads (framing.rs).
        framing: Option<Arc<FramingWatch>>,
        // HTTP/1.1 only, and only where parking is wanted.
        park: Option<ParkGate>,
        // Bytes hyper had read but not used when the connection parked; read again first.
        replay: Bytes,
        // Set by any write, cleared by a completed flush.
        unflushed: bool,
        parked: bool,
        // Running while the connection sits quiet between requests: parking waits for it, so a
        // busy connection keeps its hyper state (rebuilding it per request costs throughput).
        quiet: Option<Pin<Box<tokio::time::Sleep>>>,
        quiet_armed: bool,
    }
}

impl<S> ClientIo<S> {
    pub fn new(inner: S, activity: Activity, framing: Option<Arc<FramingWatch>>) -> Self {
        Self {
            inner,
            activity,
            framing,
            park: None,
            replay: Bytes::new(),
            unflushed: false,
            parked: false,
            quiet: None,
            quiet_armed: false,
        }
    }

    /// Lets this connection park between requests (see the module docs).
    pub fn parkable(mut self, gate: ParkGate) -> Self {
        self.framing = Some(gate.framing.clone());
        self.park = Some(gate);
        self
    }

    /// Whether the stream told hyper end-of-file to park the connection.
    pub fn is_parked(&self) -> bool {
        self.parked
    }

    /// Back from parking: `unread` is what hyper had buffered and not used.
    pub fn unpark(&mut self, unread: Bytes) {
        self.parked = false;
        self.replay = unread;
        // Parked connections keep nothing they can do without: the timer goes too.
        self.quiet = None;
        self.quiet_armed = false;
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: AsyncRead> AsyncRead for ClientIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        if *this.parked {
            return Poll::Ready(Ok(()));
        }
        if this.replay.has_remaining() {
            // Already fed to the framing watch when first read.
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.replay[..n]);
            this.replay.advance(n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let result = this.inner.poll_read(cx, buf);
        match result {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                *this.quiet_armed = false;
                this.activity.touch();
                if let Some(framing) = this.framing {
                    framing.feed(&buf.filled()[before..]);
                }
            }
            Poll::Pending => {
                if let Some(gate) = this.park {
                    if !*this.unflushed && gate.between_requests() {
                        // Quiet between requests: park once it has been so for `gate.after`.
                        let deadline = tokio::time::Instant::now() + gate.after;
                        let quiet =
                            this.quiet.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                        if !*this.quiet_armed {
                            quiet.as_mut().reset(deadline);
                            *this.quiet_armed = true;
                        }
                        if quiet.as_mut().poll(cx).is_ready() {
                            // End-of-file between requests: hyper closes its side quietly.
                            *this.parked = true;
                            *this.quiet_armed = false;
                            return Poll::Ready(Ok(()));
                        }
                    } else {
                        *this.quiet_armed = false;
                    }
                }
            }
            _ => {}
        }
        result
    }
}

impl<S: AsyncWrite> AsyncWrite for ClientIo<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        *this.unflushed = true;
        let result = this.inner.poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        result
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        *this.unflushed = true;
        let result = this.inner.poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        result
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let result = this.inner.poll_flush(cx);
        if matches!(result, Poll::Ready(Ok(()))) {
            *this.unflushed = false;
        }
        result
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.project();
        if *this.parked {
            // hyper's goodbye to a parked connection: the connection itself stays open.
            return Poll::Ready(Ok(()));
        }
        this.inner.poll_shutdown(cx)
    }
}

pin_project! {
    /// A response body that counts itself finished when hyper drops it (after its last frame,
    /// or when the response has no body to send).
    pub struct CountedBody<B> {
        #[pin]
        inner: B,
        responses: Arc<ResponsesDone>,
    }

    impl<B> PinnedDrop for CountedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            this.responses.0.fetch_add(1, Ordering::Release);
        }
    }
}

impl<B> CountedBody<B> {
    pub fn new(inner: B, responses: Arc<ResponsesDone>) -> Self {
        Self { inner, responses }
    }
}

impl<B: HttpBody> HttpBody for CountedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn gate() -> ParkGate {
        ParkGate::new(Arc::new(FramingWatch::new()), Duration::from_millis(20))
    }

    #[tokio::test]
    async fn parks_only_between_answered_requests() {
        let (client, server) = tokio::io::duplex(1024);
        let gate = gate();
        let mut io = ClientIo::new(server, Activity::new(), None).parkable(gate.clone());
        let mut client = client;
        let mut buf = [0u8; 256];

        client.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n").await.unwrap();
        let n = io.read(&mut buf).await.unwrap();
        assert!(n > 0);
        // A partial head: the next read must wait for the rest, never report end-of-file.
        let pending = tokio::time::timeout(Duration::from_millis(50), io.read(&mut buf)).await;
        assert!(pending.is_err(), "read returned {pending:?} in the middle of a head");
        assert!(!io.is_parked());

        client.write_all(b"\r\n").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 2);
        // A complete head whose response is not finished: still no parking.
        let pending = tokio::time::timeout(Duration::from_millis(50), io.read(&mut buf)).await;
        assert!(pending.is_err(), "parked before the response was done");

        drop(CountedBody::new(crate::body::empty(), gate.responses.clone()));
        // Written but not flushed: no parking.
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let pending = tokio::time::timeout(Duration::from_millis(50), io.read(&mut buf)).await;
        assert!(pending.is_err(), "parked with unflushed bytes");
        io.flush().await.unwrap();

        assert_eq!(io.read(&mut buf).await.unwrap(), 0, "parks as end-of-file");
        assert!(io.is_parked());
        // hyper's shutdown of a parked stream leaves the connection open.
        io.shutdown().await.unwrap();
        io.unpark(Bytes::from_static(b"\r\n"));
        client.write_all(b"GET /next HTTP/1.1\r\n\r\n").await.unwrap();
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"\r\n", "unread bytes come back first");
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"GET /next HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn never_parks_without_a_gate() {
        let (_client, server) = tokio::io::duplex(64);
        let mut io = ClientIo::new(server, Activity::new(), Some(Arc::new(FramingWatch::new())));
        let mut buf = [0u8; 8];
        let pending = tokio::time::timeout(Duration::from_millis(50), io.read(&mut buf)).await;
        assert!(pending.is_err());
        assert!(!io.is_parked());
    }
}
