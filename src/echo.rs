//! The built-in echo platform: when no upstream is configured (the first-run default), every
//! proxied request is answered with what the platform would have received, after nymgate's
//! rewriting. A newcomer sees at once which headers survive and what the client IP became.
//!
//! It is one of nymgate's own endpoints, so its body limit is `limits.max_body_bytes` (413).
//!
//! A browser (`Accept: text/html` without `application/json`) gets the same as a page, with the claims of nymgate's
//! assertion header spelled out: this is what `nymgate demo` shows as "the platform".

use std::pin::Pin;

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Serialize;

use crate::body::{self, Body, GuardedBody};
use crate::pipeline::ProxyError;

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
    Ok(answer_bytes(&parts, bytes.len()))
}

/// What the echo platform answers: the head as forwarded and the body's length, as JSON or as a
/// page. Directly for a body nymgate wrote itself (an intercepted SAML response).
pub fn answer_bytes(parts: &Parts, body_bytes: usize) -> Response<Body> {
    let echo = Echo {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        body_bytes,
    };
    let accept = parts.headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let wants_html = wants_html(accept);
    let (bytes, content_type) = if wants_html {
        (html(&echo).into_bytes(), "text/html; charset=utf-8")
    } else {
        (serde_json::to_vec_pretty(&echo).expect("plain strings serialize"), "application/json")
    };
    let mut response = Response::new(body::full(bytes));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    response
}

/// The claims of a compact JWS, read without verifying it: the page only shows them (a real
/// platform verifies the header with nymgate's JWKS, docs/LOGIN.md).
fn claims_of(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem;\
color:#1a1a1a;line-height:1.5}header{background:#203a43;color:#fff;padding:.6rem 1rem}a{color:#0a4aa8}\
table{border-collapse:collapse;width:100%;font-size:.9rem}td,th{border:1px solid #bbb;padding:.25rem .4rem;\
text-align:left;vertical-align:top;word-break:break-all}dt{font-weight:600}dd{margin:0 0 .5rem}";

/// A browser gets the page; a client that names JSON at all (a script, a test, a load
/// generator) gets JSON, even when it also takes HTML. Browsers' default `Accept` never names
/// `application/json`.
fn wants_html(accept: &str) -> bool {
    accept.contains("text/html") && !accept.contains("application/json")
}

fn html(echo: &Echo) -> String {
    use crate::web::escape;
    let assertion =
        echo.headers.iter().find(|(name, _)| name == "x-nymgate-assertion").map(|(_, v)| v.as_str());
    let mut signed_in = String::new();
    match assertion.and_then(claims_of) {
        Some(claims) => {
            signed_in.push_str("<h2>Signed-in user</h2><p>From nymgate's signed assertion header:</p><dl>");
            for (id, label) in
                [("sub", "Account number"), ("role", "Role"), ("school", "School"), ("tenant", "Tenant")]
            {
                if let Some(value) = claims.get(id).and_then(|v| v.as_str()) {
                    signed_in
                        .push_str(&format!("<dt>{label}</dt><dd id=\"claim-{id}\">{}</dd>", escape(value)));
                }
            }
            signed_in.push_str(
                "</dl><p><a href=\"/nymgate/me\">What the platform receives about you</a> · \
                 <a href=\"/nymgate/logout\">Sign out</a></p>",
            );
        }
        None => signed_in.push_str("<p>No signed-in user (no assertion header).</p>"),
    }
    let rows: String = echo
        .headers
        .iter()
        .map(|(name, value)| {
            let shown = if name == "x-nymgate-assertion" {
                format!("{}…", &value[..value.len().min(24)])
            } else {
                value.clone()
            };
            format!("<tr><th>{}</th><td>{}</td></tr>", escape(name), escape(&shown))
        })
        .collect();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>Learning platform (demo)</title><style>{STYLE}</style></head><body>\
         <header>Learning platform · nymgate's built-in echo platform</header><main>\
         <h1>What the platform received</h1>{signed_in}<h2>The request</h2>\
         <p><code>{method} {path}</code></p><table><tr><th>Header</th><th>Value</th></tr>{rows}</table>\
         </main></body></html>\n",
        method = escape(&echo.method),
        path = escape(&echo.path),
    )
}

#[cfg(test)]
mod tests {
    use super::wants_html;

    #[test]
    fn browsers_get_the_page_and_json_clients_get_json() {
        let chromium =
            "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
        assert!(wants_html(chromium));
        assert!(!wants_html("text/html,application/json"));
        assert!(!wants_html("application/json"));
        assert!(!wants_html("*/*"));
        assert!(!wants_html(""));
    }
}
