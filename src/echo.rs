//! The built-in echo platform: when no upstream is configured (the first-run default), every
//! proxied request is answered with what the platform would have received, after nymgate's
//! rewriting. A newcomer sees at once which headers survive and what the client IP became.
//!
//! It is one of nymgate's own endpoints, so its body limit is `limits.max_body_bytes` (413).

use std::pin::Pin;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Serialize;

use crate::body::{self, Body, GuardedBody};
use crate::proxy::ProxyError;

/// What the echo platform saw.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Echo {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Header lines in the order received, names lowercase.
    pub headers: Vec<(String, String)>,
    pub body_bytes: usize,
}

pub async fn answer(
    parts: Parts,
    body: Pin<Box<GuardedBody<Incoming>>>,
    max_body_bytes: usize,
) -> Result<Response<Body>, ProxyError> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_body_bytes as u64) {
        return Err(ProxyError::PayloadTooLarge);
    }
    let fault = body.fault_cell();
    let bytes = match Limited::new(body, max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            return Err(ProxyError::PayloadTooLarge)
        }
        Err(_) => {
            return Err(ProxyError::ClientBody(
                fault.get().copied().unwrap_or(crate::body::BodyFault::Malformed),
            ))
        }
    };
    let echo = Echo {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body_bytes: bytes.len(),
    };
    let json = serde_json::to_vec_pretty(&echo).expect("plain strings serialize");
    let mut response = Response::new(body::full(json));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
