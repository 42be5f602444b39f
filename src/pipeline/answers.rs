//! What the pipeline answers itself: why it refused ([`ProxyError`], with its status and reason
//! code), the generic error page (the status and a reference, never the detail), and the request
//! id every answer, the platform's request and the log line share.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::body::{self, Body, BodyFault};
use crate::sanitize::RequestFault;

/// Why nymgate answered instead of the platform. The client gets a generic body with a
/// reference; the log gets the detail.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("bad request: {0}")]
    BadRequest(#[from] RequestFault),
    #[error("client body: {0}")]
    ClientBody(BodyFault),
    #[error("request body larger than limits.max_body_bytes")]
    PayloadTooLarge,
    #[error("platform unreachable: {0}")]
    UpstreamUnavailable(String),
    #[error("platform did not answer within upstream.response_timeout")]
    UpstreamTimeout,
    #[error("no platform connection free within upstream.queue_timeout")]
    UpstreamSaturated,
    #[error("request body refused: {0}")]
    Body(crate::form_scan::BodyRefusal),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            // RFC 9110 §15.5.20: this server is not the one for that authority.
            ProxyError::BadRequest(RequestFault::UnknownHost) => StatusCode::MISDIRECTED_REQUEST,
            // RFC 6585 §5, as hyper answers an HTTP/1.1 head with too many lines.
            ProxyError::BadRequest(RequestFault::TooManyHeaders) => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::ClientBody(BodyFault::Malformed) => StatusCode::BAD_REQUEST,
            ProxyError::ClientBody(BodyFault::SamlMessage) => StatusCode::BAD_REQUEST,
            ProxyError::ClientBody(BodyFault::Timeout) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::UpstreamUnavailable(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            // RFC 9110 §15.6.4: overloaded for now; Retry-After says when to come back.
            ProxyError::UpstreamSaturated => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Body(refusal) if refusal.is_unsupported_media() => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProxyError::Body(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            ProxyError::BadRequest(fault) => fault.reason(),
            ProxyError::ClientBody(BodyFault::Malformed) => "malformed_body",
            ProxyError::ClientBody(BodyFault::SamlMessage) => "saml_message_outside_acs",
            ProxyError::ClientBody(BodyFault::Timeout) => "body_timeout",
            ProxyError::PayloadTooLarge => "body_too_large",
            ProxyError::UpstreamUnavailable(_) => "upstream_unavailable",
            ProxyError::UpstreamTimeout => "upstream_timeout",
            ProxyError::UpstreamSaturated => "upstream_saturated",
            ProxyError::Body(refusal) => refusal.reason(),
        }
    }

    /// Client faults close the connection: after a framing error nothing later on it can be
    /// trusted to be a request boundary.
    pub(super) fn closes_connection(&self) -> bool {
        // A request for a host nymgate does not serve was framed well: the next one is read.
        if matches!(self, ProxyError::BadRequest(RequestFault::UnknownHost)) {
            return false;
        }
        matches!(
            self,
            ProxyError::BadRequest(_)
                | ProxyError::ClientBody(_)
                | ProxyError::PayloadTooLarge
                | ProxyError::Body(_)
        )
    }
}

/// A generic error page: the status, and a reference the user can quote. No detail.
pub fn error_response(status: StatusCode, request_id: &str, close: bool) -> Response<Body> {
    let text = format!(
        "{} {}\nreference: {request_id}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let mut response = Response::new(body::full(text));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// 404 for a nymgate path when no login is configured.
pub(super) fn not_found() -> Response<Body> {
    let mut response = Response::new(body::full("404 Not Found\n"));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// A request id: a random per-process prefix and a counter, 24 hex digits. Unique across
/// replicas and restarts without a system call per request; it is a reference for support, not
/// a secret. Made once as a header value, shared by the platform's request and the response.
pub(super) fn next_request_id() -> HeaderValue {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| u64::from_be_bytes(crate::secret::random_bytes::<8>()));
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed) & 0xffff_ffff;
    let id = (u128::from(prefix) << 32) | u128::from(counter);
    let mut digits = [0u8; 24];
    for (i, digit) in digits.iter_mut().enumerate() {
        *digit = b"0123456789abcdef"[((id >> (4 * (23 - i))) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&digits).expect("hex digits are a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_24_hex_digits_and_distinct() {
        let first = next_request_id();
        let second = next_request_id();
        for id in [&first, &second] {
            let id = id.to_str().unwrap();
            assert_eq!(id.len(), 24, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{id}");
        }
        assert_ne!(first, second);
        // Same process, same prefix: only the counter differs.
        assert_eq!(first.as_bytes()[..16], second.as_bytes()[..16]);
    }

    #[test]
    fn error_pages_are_generic() {
        let r = error_response(StatusCode::BAD_GATEWAY, "abc123", false);
        assert_eq!(r.status(), 502);
        assert!(!r.headers().contains_key(header::CONNECTION));
    }
}
