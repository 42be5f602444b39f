//! The platform's response as nymgate's client hands it up: its body, read from the connection
//! only as the client's side asks for it (the connection goes back to the pool when both the
//! response and the request are complete), and an upgraded connection (WebSocket).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::client::*;
use super::h1::{ChunkedDecoder, Decoded, H1Error};
use super::pool::{Pool, Slot};
use crate::body::BoxError;
use std::sync::Arc;

/// The platform's response body, read from the connection as it is asked for. When it is
/// complete (and the request too) the connection goes back to the pool.
pub struct ResponseBody {
    pub(super) conn: Option<Connection>,
    /// The rest of the request body, when the platform answered before it was all sent.
    pub(super) upload: Option<Upload>,
    pub(super) state: BodyState,
    pub(super) keep_alive: bool,
    /// A 101 response: the connection now carries the upgraded protocol.
    pub(super) upgraded: bool,
    pub(super) pool: Arc<Pool>,
}

/// Shows where the body is, never its bytes.
impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("state", &self.state)
            .field("keep_alive", &self.keep_alive)
            .field("uploading", &self.upload.is_some())
            .finish()
    }
}

#[derive(Debug)]
pub(super) enum BodyState {
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
    Done,
}

/// The response body broke off: the platform closed early or sent a malformed body.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("platform closed the connection inside the response body")]
    Incomplete,
    #[error("{0}")]
    Framing(H1Error),
    #[error("connection: {0}")]
    Io(io::Error),
}

impl ResponseBody {
    /// After a 101 response: the connection, for the upgraded protocol, with any bytes the
    /// platform already sent in it.
    pub fn into_upgraded(mut self) -> Option<Upgraded> {
        if !self.upgraded {
            return None;
        }
        let conn = self.conn.take()?;
        // The tunnel is still a platform connection: it keeps its place under the bound.
        Some(Upgraded { stream: conn.stream, early: conn.read_buf, _slot: conn._slot })
    }

    pub(super) fn fail(&mut self, error: BodyError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.conn = None;
        self.state = BodyState::Done;
        Poll::Ready(Some(Err(error.into())))
    }

    /// Returns the connection to the pool if the exchange is over and it may carry another.
    /// Bytes read past the response's framed end (a platform that answered twice, or framed
    /// its answer shorter than it is) close it: they belong to no request.
    pub(super) fn release(&mut self) {
        let Some(mut conn) = self.conn.take() else { return };
        let complete = matches!(self.state, BodyState::Done) && self.upload.is_none();
        if complete && self.keep_alive && !self.upgraded && conn.read_buf.is_empty() {
            // Idle, the connection holds no buffer; its buffer serves the worker's next request.
            self.pool.recycle(std::mem::take(&mut conn.read_buf));
            self.pool.put(conn);
        }
    }
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let Some(conn) = this.conn.as_mut() else { return Poll::Ready(None) };
        if let Some(upload) = this.upload.as_mut() {
            match upload.poll(cx, &mut conn.stream) {
                Poll::Pending => {}
                Poll::Ready(Ok(())) => this.upload = None,
                Poll::Ready(Err(error)) => {
                    // The response goes on; the connection will not be reused.
                    if let UploadError::Io(error) = &error {
                        tracing::debug!(%error, "platform stopped reading the request body");
                    }
                    this.upload = None;
                    this.keep_alive = false;
                }
            }
        }
        loop {
            match &mut this.state {
                BodyState::Done => {
                    if this.upload.is_some() {
                        // The response is complete but the request is not: the connection
                        // cannot be reused, and waiting on the client's body would stall the
                        // response's end.
                        this.keep_alive = false;
                        this.upload = None;
                    }
                    this.release();
                    return Poll::Ready(None);
                }
                BodyState::Length(remaining) => {
                    if !conn.read_buf.is_empty() {
                        let take = usize::try_from(*remaining).unwrap_or(usize::MAX).min(conn.read_buf.len());
                        *remaining -= take as u64;
                        let data = conn.read_buf.split_to(take).freeze();
                        if *remaining == 0 {
                            this.state = BodyState::Done;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                BodyState::Chunked(decoder) => match decoder.decode(&mut conn.read_buf) {
                    Ok(Decoded::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Decoded::Done) => {
                        this.state = BodyState::Done;
                        continue;
                    }
                    Ok(Decoded::NeedMore) => {}
                    Err(error) => return this.fail(BodyError::Framing(error)),
                },
                BodyState::UntilClose => {
                    if !conn.read_buf.is_empty() {
                        let data = conn.read_buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
            }
            match ready!(conn.poll_fill(cx)) {
                Ok(0) if matches!(this.state, BodyState::UntilClose) => {
                    this.keep_alive = false;
                    this.state = BodyState::Done;
                }
                Ok(0) => return this.fail(BodyError::Incomplete),
                Ok(_) => {}
                Err(error) => return this.fail(BodyError::Io(error)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, BodyState::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            BodyState::Done => SizeHint::with_exact(0),
            BodyState::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // A body with nothing to read (HEAD, 204, 304, an empty one) is often never polled;
        // `release` pools the connection only if the exchange is complete.
        self.release();
    }
}

/// A platform connection after a 101 response, as the upgraded protocol's byte stream.
pub struct Upgraded {
    pub(super) stream: Stream,
    /// Bytes the platform sent right after its 101, read with the head.
    pub(super) early: BytesMut,
    pub(super) _slot: Slot,
}

impl AsyncRead for Upgraded {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.early.is_empty() {
            let n = this.early.len().min(buf.remaining());
            buf.put_slice(&this.early.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
