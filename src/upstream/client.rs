//! nymgate's HTTP/1.1 client to the platform: a pool of connections per worker, and each request
//! driven in the task that serves it, with the codec of h1.rs.
//!
//! Why not hyper's client: it runs every platform connection in a task of its own and hands each
//! request, response and body chunk across channels between that task and the request's, and
//! an idle connection keeps 24 KiB of buffers and channel blocks (BENCHMARKS.md §1). Here a
//! request writes to and reads from its connection itself, and an idle connection keeps its
//! socket only.
//!
//! A request's life:
//! 1. A connection: the newest idle one in the pool that is still open, or a new one.
//! 2. The head is written, then the body, streamed. The response head is read at the same time:
//!    a platform may answer before it has read the whole body (a 413, say), and a streaming
//!    platform may answer while it reads.
//! 3. The response body is read as the client's side asks for it ([`ResponseBody`]); the rest
//!    of the request body, if any, goes up meanwhile.
//! 4. When both are complete and the platform keeps the connection alive, the connection goes
//!    back to the pool, its read buffer freed.
//!
//! A pooled connection that the platform closed as the request arrived fails before any of the
//! response is read. Such a request is sent again, once, on a new connection, only when its
//! method is safe (GET, HEAD, OPTIONS, TRACE: [`may_retry`]) and none of its body had been read.
//! The platform may have acted on it before closing; RFC 9110 §9.2.2 allows automatic retries
//! of idempotent requests only, and nymgate goes further (see [`may_retry`]). Any other request
//! fails (502): the client decides whether to send it again.
//!
//! A connection goes back to a pool only when its response ended exactly where its framing said
//! (no byte read past it), and is taken from a pool only when the platform has sent nothing on
//! it while idle ([`Connection::is_reusable`]): a platform that answers a request twice must not
//! have its second answer read as the next request's (nginx's upstream keepalive does the
//! same). A late answer that arrives after the next request went out can't be told apart in
//! HTTP/1.1; `upstream.pool_per_client_connection` keeps it on the same client's connection.
//!
//! Every connection holds a place under `upstream.max_connections` for its whole life (pool.rs).

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderValue, Method, Response};
use http_body::Body as HttpBody;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::h1::{self, ChunkedDecoder, Framing, H1Error};
use super::pool::{Granted, Pool, PoolSet, Slot};
use crate::body::{Body, BoxError};

/// A read makes room for at least this much.
pub(super) const READ_SIZE: usize = 8 * 1024;
/// Body chunks up to this size are copied next to their framing and written in one go; larger
/// ones are written from their own buffer.
pub(super) const COALESCE: usize = 16 * 1024;

/// Why a request to the platform failed. Nothing here holds request or response bytes.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connect: {0}")]
    Connect(io::Error),
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("TLS handshake: {0}")]
    Tls(io::Error),
    #[error("connection: {0}")]
    Io(io::Error),
    #[error("connection closed before the response head")]
    ClosedBeforeHead,
    #[error("{0}")]
    Response(H1Error),
    #[error("request body: {0}")]
    RequestBody(BoxError),
    #[error("no platform connection free within upstream.queue_timeout (upstream.max_connections)")]
    Saturated,
}

/// The platform's address and how to reach it.
pub struct Client {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    pub(super) connect_timeout: Duration,
    /// The worker's pool, shared by all its requests.
    pub(super) pool: Arc<Pool>,
}

/// Whether a request may be sent again on a new connection after its pooled connection failed
/// with nothing of the response read: only for the safe methods of RFC 9110 §9.2.1 (GET, HEAD,
/// OPTIONS, TRACE), spelled exactly so (methods are case-sensitive, §9.1: `get` is an
/// extension method, and extension methods are neither safe nor idempotent to nymgate).
/// RFC 9110 §9.2.2 would allow PUT and DELETE too, as idempotent; but the platform may have
/// acted on the first copy before its connection closed, and a DELETE sent again then gets
/// another answer (404 for a deletion that succeeded) from a platform whose semantics nymgate
/// can't know. nginx's proxy_next_upstream likewise never retries POST, LOCK or PATCH.
pub fn may_retry(method: &Method) -> bool {
    *method == Method::GET
        || *method == Method::HEAD
        || *method == Method::OPTIONS
        || *method == Method::TRACE
}

impl Client {
    pub fn new(
        host: String,
        port: u16,
        tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
        connect_timeout: Duration,
        set: &Arc<PoolSet>,
    ) -> Self {
        Self { host, port, tls, connect_timeout, pool: set.new_pool(true) }
    }

    /// The worker's pool.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// The worker's platform connections: the bound, and every pool.
    pub fn pool_set(&self) -> &Arc<PoolSet> {
        self.pool.set()
    }

    /// Sends a request on a connection of the worker's pool (or a new one) and returns the
    /// response once its head has arrived. `parts` must be sanitized already; the framing of the
    /// body (`Content-Length` or chunked) is set here.
    pub async fn send(
        &self,
        parts: http::request::Parts,
        body: Body,
    ) -> Result<Response<ResponseBody>, SendError> {
        self.send_in(&self.pool, parts, body).await
    }

    /// As [`send`](Self::send), on a connection of `pool` (one client connection's, when
    /// `upstream.pool_per_client_connection` is set) or a new one that goes back to `pool`.
    pub async fn send_in(
        &self,
        pool: &Arc<Pool>,
        mut parts: http::request::Parts,
        body: Body,
    ) -> Result<Response<ResponseBody>, SendError> {
        let chunked = set_framing(&mut parts, &body);
        let mut head = Vec::with_capacity(512);
        h1::encode_request_head(&parts, &mut head);
        let mut upload = Upload::new(Bytes::from(head), body, chunked);
        let method = parts.method;
        if let Some(conn) = pool.take() {
            match exchange(conn, &mut upload, &method, pool).await {
                Ok(response) => return Ok(response),
                // Closed as the request arrived: sent again only if that is safe (`may_retry`).
                Err(Failed { error, retry: true }) if may_retry(&method) => {
                    tracing::debug!(%error, "pooled platform connection was closed; retrying on a new one");
                    upload.rewind();
                }
                Err(Failed { error, .. }) => return Err(error),
            }
        }
        let conn = match pool.set().grant(pool.is_shared()).await.map_err(|_| SendError::Saturated)? {
            Granted::Slot(slot) => self.connect(slot).await?,
            Granted::Connection(conn) => conn,
        };
        exchange(conn, &mut upload, &method, pool).await.map_err(|failed| failed.error)
    }

    /// Opens a connection in `slot`, which it holds until it is dropped.
    pub(super) async fn connect(&self, slot: Slot) -> Result<Connection, SendError> {
        let connecting = TcpStream::connect((self.host.as_str(), self.port));
        let tcp = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Err(_) => return Err(SendError::ConnectTimeout),
            Ok(result) => result.map_err(SendError::Connect)?,
        };
        let _ = tcp.set_nodelay(true);
        // An upload to a platform that stops reading waits in nymgate, bounded, not in the kernel.
        crate::conn_bounds::bound_send_queue(&tcp);
        let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(60));
        let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
        let stream = match &self.tls {
            None => Stream::Plain(tcp),
            Some((connector, name)) => {
                let handshake = connector.connect(name.clone(), tcp);
                match tokio::time::timeout(self.connect_timeout, handshake).await {
                    Err(_) => return Err(SendError::ConnectTimeout),
                    Ok(result) => Stream::Tls(Box::new(result.map_err(SendError::Tls)?)),
                }
            }
        };
        Ok(Connection { stream, read_buf: BytesMut::new(), reused: false, _slot: slot })
    }
}

/// Sets the body's framing on the request head; true when it is chunked.
pub(super) fn set_framing(parts: &mut http::request::Parts, body: &Body) -> bool {
    // The client's Transfer-Encoding was removed with the hop-by-hop fields (sanitize.rs); a
    // Content-Length it sent was checked against the body by hyper, and stays.
    if parts.headers.contains_key(header::CONTENT_LENGTH) {
        return false;
    }
    if body.is_end_stream() {
        // RFC 9110 §8.6: a request with a body-carrying method says when it has none.
        if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) {
            parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        return false;
    }
    if let Some(length) = body.size_hint().exact() {
        parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        return false;
    }
    parts.headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
    true
}

/// An exchange that failed, and whether the request may go again on a new connection.
pub(super) struct Failed {
    pub(super) error: SendError,
    pub(super) retry: bool,
}

/// Sends the request on `conn` and reads the response head.
pub(super) async fn exchange(
    mut conn: Connection,
    upload: &mut Upload,
    method: &Method,
    pool: &Arc<Pool>,
) -> Result<Response<ResponseBody>, Failed> {
    let reused = conn.reused;
    if conn.read_buf.capacity() == 0 {
        conn.read_buf = pool.spare_buffer();
    }
    let mut write_error = None;
    let mut interim = h1::Interim::default();
    let head = poll_fn(|cx| {
        if write_error.is_none() && !upload.is_done() {
            match upload.poll(cx, &mut conn.stream) {
                Poll::Ready(Ok(())) | Poll::Pending => {}
                Poll::Ready(Err(UploadError::Body(error))) => {
                    return Poll::Ready(Err(SendError::RequestBody(error)))
                }
                // The platform may have stopped reading to answer (a 413): read on.
                Poll::Ready(Err(UploadError::Io(error))) => write_error = Some(error),
            }
        }
        conn.poll_response_head(cx, method, &mut interim)
    })
    .await;
    let head = match head {
        Ok(head) => head,
        Err(error) => {
            // Nothing of the response came, and nothing of the body left the client's side.
            let untouched = conn.read_buf.is_empty() && !upload.body_started;
            let error = match (error, write_error) {
                (SendError::ClosedBeforeHead, Some(io)) => SendError::Io(io),
                (error, _) => error,
            };
            let retry =
                reused && untouched && !matches!(error, SendError::RequestBody(_) | SendError::Response(_));
            return Err(Failed { error, retry });
        }
    };
    let state = match head.framing {
        Framing::Empty => BodyState::Done,
        Framing::Length(0) => BodyState::Done,
        Framing::Length(n) => BodyState::Length(n),
        Framing::Chunked => BodyState::Chunked(ChunkedDecoder::new()),
        Framing::UntilClose => BodyState::UntilClose,
    };
    let upload = (write_error.is_none() && !upload.is_done()).then(|| upload.take());
    // A request not wholly sent leaves the connection in an unknown state: never reused. An
    // upgraded one belongs to the upgrade (`ResponseBody::into_upgraded`).
    let upgraded = head.status == http::StatusCode::SWITCHING_PROTOCOLS;
    let keep_alive = head.keep_alive && write_error.is_none() && !upgraded;
    let body = ResponseBody { conn: Some(conn), upload, state, keep_alive, upgraded, pool: pool.clone() };
    let mut response = Response::new(body);
    *response.status_mut() = head.status;
    *response.headers_mut() = head.headers;
    Ok(response)
}

/// One connection to the platform.
pub struct Connection {
    pub(super) stream: Stream,
    pub(super) read_buf: BytesMut,
    pub(super) reused: bool,
    /// Its place under `upstream.max_connections`, given back when it is dropped.
    pub(super) _slot: Slot,
}

impl Connection {
    /// Reads into the buffer; `Ok(0)` is the end of the stream.
    pub(super) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read_buf.capacity() - self.read_buf.len() < READ_SIZE / 4 {
            self.read_buf.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.read_buf)
    }

    /// Reads until a final response head (1xx other than 101 are skipped, and bounded:
    /// `h1::parse_final_response_head`).
    pub(super) fn poll_response_head(
        &mut self,
        cx: &mut Context<'_>,
        method: &Method,
        interim: &mut h1::Interim,
    ) -> Poll<Result<h1::ResponseHead, SendError>> {
        loop {
            match h1::parse_final_response_head(&mut self.read_buf, method, interim) {
                Ok(Some(head)) => return Poll::Ready(Ok(head)),
                Ok(None) => {}
                Err(error) => return Poll::Ready(Err(SendError::Response(error))),
            }
            match ready!(self.poll_fill(cx)) {
                Ok(0) => return Poll::Ready(Err(SendError::ClosedBeforeHead)),
                Ok(_) => {}
                Err(error) => return Poll::Ready(Err(SendError::Io(error))),
            }
        }
    }

    pub(super) fn mark_reused(&mut self) {
        self.reused = true;
    }

    /// Whether an idle connection is still open and quiet: the platform may have closed it, and
    /// it must not have sent anything unasked (a second answer to the last request would
    /// otherwise be read as the next one's).
    ///
    /// The kernel is asked first (a peek, which takes nothing): the runtime's readiness of the
    /// socket is only as fresh as its last turn of the event loop, and bytes that arrived since
    /// would not show in a read attempt. Then a read attempt, for what TLS may hold decrypted.
    pub(super) fn is_reusable(&mut self) -> bool {
        let tcp = match &self.stream {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref().0,
        };
        let mut peeked = [MaybeUninit::<u8>::uninit(); 1];
        match socket2::SockRef::from(tcp).peek(&mut peeked) {
            // The socket is non-blocking: nothing to read is the one good answer.
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            // Bytes (n > 0), the platform's close (0), or an error.
            _ => return false,
        }
        let mut probe = [0u8; 1];
        let mut buf = ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        matches!(Pin::new(&mut self.stream).poll_read(&mut cx, &mut buf), Poll::Pending)
    }
}

/// A platform connection's byte stream: plain TCP or TLS.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Stream::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The request on its way up: the head, then the body's frames with their framing.
pub(super) struct Upload {
    pub(super) head: Bytes,
    pub(super) body: Option<Body>,
    pub(super) chunked: bool,
    /// Framing and small chunks, coalesced; then `large`, a chunk written from its own buffer.
    pub(super) out: BytesMut,
    pub(super) large: Bytes,
    /// Whether any body data has been taken from the client's side.
    pub(super) body_started: bool,
    /// Everything is written and flushed.
    pub(super) done: bool,
}

pub(super) enum UploadError {
    Body(BoxError),
    Io(io::Error),
}

impl Upload {
    pub(super) fn new(head: Bytes, body: Body, chunked: bool) -> Self {
        let body = (!body.is_end_stream()).then_some(body);
        let mut upload = Self {
            head,
            body,
            chunked,
            out: BytesMut::new(),
            large: Bytes::new(),
            body_started: false,
            done: false,
        };
        upload.rewind();
        upload
    }

    /// Starts over (a retry on a new connection): only before any body data was taken.
    pub(super) fn rewind(&mut self) {
        debug_assert!(!self.body_started);
        self.out.clear();
        self.out.extend_from_slice(&self.head);
        self.large = Bytes::new();
        self.done = false;
        if self.body.is_none() && self.chunked {
            self.out.extend_from_slice(h1::LAST_CHUNK);
        }
    }

    pub(super) fn is_done(&self) -> bool {
        self.done
    }

    /// What is left of the upload, for the response body to carry on with.
    pub(super) fn take(&mut self) -> Upload {
        std::mem::replace(
            self,
            Upload {
                head: Bytes::new(),
                body: None,
                chunked: false,
                out: BytesMut::new(),
                large: Bytes::new(),
                body_started: self.body_started,
                done: true,
            },
        )
    }

    /// Writes what is queued and takes more from the body; ready when all is written and flushed.
    pub(super) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        stream: &mut Stream,
    ) -> Poll<Result<(), UploadError>> {
        loop {
            while !self.out.is_empty() {
                let n = ready!(Pin::new(&mut *stream).poll_write(cx, &self.out)).map_err(UploadError::Io)?;
                if n == 0 {
                    return Poll::Ready(Err(UploadError::Io(io::ErrorKind::WriteZero.into())));
                }
                self.out.advance(n);
            }
            if !self.large.is_empty() {
                while !self.large.is_empty() {
                    let n = ready!(Pin::new(&mut *stream).poll_write(cx, &self.large))
                        .map_err(UploadError::Io)?;
                    if n == 0 {
                        return Poll::Ready(Err(UploadError::Io(io::ErrorKind::WriteZero.into())));
                    }
                    self.large.advance(n);
                }
                if self.chunked {
                    self.out.extend_from_slice(h1::CHUNK_END);
                }
                continue;
            }
            // Everything queued has gone to the stream; make sure it left (TLS buffers records).
            ready!(Pin::new(&mut *stream).poll_flush(cx)).map_err(UploadError::Io)?;
            let Some(body) = self.body.as_mut() else {
                self.done = true;
                return Poll::Ready(Ok(()));
            };
            match ready!(Pin::new(body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    // Trailers are not forwarded (the `Trailer` field was dropped as hop-by-hop).
                    let Ok(data) = frame.into_data() else { continue };
                    if data.is_empty() {
                        continue;
                    }
                    self.body_started = true;
                    if self.chunked {
                        h1::chunk_header(data.len(), &mut self.out);
                    }
                    if data.len() <= COALESCE {
                        self.out.extend_from_slice(&data);
                        if self.chunked {
                            self.out.extend_from_slice(h1::CHUNK_END);
                        }
                    } else {
                        self.large = data;
                    }
                }
                None => {
                    self.body = None;
                    if self.chunked {
                        self.out.extend_from_slice(h1::LAST_CHUNK);
                    }
                }
                Some(Err(error)) => return Poll::Ready(Err(UploadError::Body(error))),
            }
        }
    }
}

use super::response::BodyState;
pub use super::response::{BodyError, ResponseBody, Upgraded};
