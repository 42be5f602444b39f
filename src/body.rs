//! Bodies: the boxed type nymgate answers with, and the guard around every client request body.
//!
//! Client bodies are streamed to the platform, never buffered whole. [`GuardedBody`] enforces the
//! gap between two reads (`limits.body_read_timeout`) and records why a body failed, so that a
//! body that breaks mid-forward is answered as the client's fault (400/408), not the platform's.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::form_scan::FormScanner;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response nymgate sends.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Why a client's body failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyFault {
    #[error("the client sent no body bytes within the body read timeout")]
    Timeout,
    #[error("the client's body framing was malformed")]
    Malformed,
    /// A form field carrying a SAML message outside an intercepted ACS (form_scan.rs).
    #[error("the client's form carried a SAML response or artifact outside an intercepted ACS")]
    SamlMessage,
}

/// Shared record of a body's failure, read by the handler after the upstream call fails.
pub type FaultCell = Arc<OnceLock<BodyFault>>;

pin_project! {
    /// A client request body with a read-gap timeout and a record of its failure.
    pub struct GuardedBody<B> {
        #[pin]
        inner: B,
        // A frame read ahead by `prime`, to be yielded first.
        primed: Option<Frame<Bytes>>,
        gap: Duration,
        #[pin]
        deadline: Sleep,
        armed: bool,
        fault: FaultCell,
        // A watch over a form body for SAML messages; `None` for bodies no framework reads as
        // a form.
        scan: Option<FormScanner>,
    }
}

impl<B> GuardedBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    pub fn new(inner: B, gap: Duration) -> Self {
        Self {
            inner,
            primed: None,
            gap,
            deadline: tokio::time::sleep(gap),
            armed: false,
            fault: FaultCell::default(),
            scan: None,
        }
    }

    /// Watches the body as it streams with `scan` (form_scan.rs): a SAML message in it fails
    /// the body before the chunk that holds it is passed on.
    pub fn with_form_scan(mut self, scan: Option<FormScanner>) -> Self {
        self.scan = scan;
        self
    }

    pub fn fault_cell(&self) -> FaultCell {
        self.fault.clone()
    }

    /// Reads the first frame before anything is forwarded, so that a body whose very first
    /// chunk is malformed (chunk-size overflow, oversized extensions: request smuggling probes)
    /// is refused before the platform sees even the request head. A known-empty body is not
    /// touched.
    pub async fn prime(mut self: Pin<&mut Self>) -> Result<(), BodyFault> {
        if self.inner_is_end_stream() {
            return Ok(());
        }
        match std::future::poll_fn(|cx| self.as_mut().poll_frame(cx)).await {
            Some(Ok(frame)) => {
                *self.as_mut().project().primed = Some(frame);
                Ok(())
            }
            Some(Err(_)) => Err(self.fault.get().copied().unwrap_or(BodyFault::Malformed)),
            None => Ok(()),
        }
    }

    fn inner_is_end_stream(&self) -> bool {
        self.primed.is_none() && self.inner.is_end_stream()
    }
}

impl<B> HttpBody for GuardedBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Some(frame) = this.primed.take() {
            return Poll::Ready(Some(Ok(frame)));
        }
        if !*this.armed {
            // The gap is measured from the first read, not from when the request arrived.
            this.deadline.as_mut().reset(Instant::now() + *this.gap);
            *this.armed = true;
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.deadline.as_mut().reset(Instant::now() + *this.gap);
                if let (Some(scan), Some(data)) = (this.scan.as_mut(), frame.data_ref()) {
                    if scan.feed(data).is_err() {
                        let _ = this.fault.set(BodyFault::SamlMessage);
                        return Poll::Ready(Some(Err(Box::new(BodyFault::SamlMessage))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let _ = this.fault.set(BodyFault::Malformed);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                if this.scan.as_mut().is_some_and(|scan| scan.finish().is_err()) {
                    let _ = this.fault.set(BodyFault::SamlMessage);
                    return Poll::Ready(Some(Err(Box::new(BodyFault::SamlMessage))));
                }
                Poll::Ready(None)
            }
            Poll::Pending => {
                ready!(this.deadline.poll(cx));
                let _ = this.fault.set(BodyFault::Timeout);
                Poll::Ready(Some(Err(Box::new(BodyFault::Timeout))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.primed.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let Some(len) = self.primed.as_ref().and_then(|f| f.data_ref()).map(|d| d.len() as u64) else {
            return inner;
        };
        // Upper first: `set_lower` asserts lower <= upper.
        let mut hint = SizeHint::new();
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + len);
        }
        hint.set_lower(inner.lower() + len);
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out_and_records_why() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let stream =
            futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
        let body = GuardedBody::new(StreamBody::new(stream), Duration::from_secs(5));
        let fault = body.fault_cell();
        tx.send(Ok(Frame::data(Bytes::from_static(b"a")))).await.unwrap();
        let mut body = std::pin::pin!(body);
        body.as_mut().prime().await.unwrap();
        let first = body.as_mut().frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "a");
        // Nothing more arrives: the gap timer fires.
        let err = body.as_mut().frame().await.unwrap().unwrap_err();
        assert_eq!(err.to_string(), BodyFault::Timeout.to_string());
        assert_eq!(fault.get(), Some(&BodyFault::Timeout));
        drop(tx);
    }
}
