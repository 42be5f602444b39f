//! The few pages a person sees from nymgate itself: the school chooser, the login error page
//! and the logged-out page. Plain HTML and CSS, no script; every text value is escaped.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::body::{self, Body};

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;\
color:#1a1a1a;line-height:1.5}a{color:#0b57d0}li{margin:.4rem 0}code{background:#eee;padding:.1rem .3rem}";

fn page(status: StatusCode, title: &str, content: &str) -> Response<Body> {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main><h1>{}</h1>{content}</main></body></html>\n",
        escape(title),
        escape(title)
    );
    let mut response = Response::new(body::full(html));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    response
}

/// A failed login: what happened in general words and a reference for the school's IT. The
/// detail is in the log under the same reference, never on the page.
pub fn login_failed(status: StatusCode, request_id: &str) -> Response<Body> {
    let content = format!(
        "<p>The sign-in could not be completed. Please try again from the start.</p>\
         <p>If it keeps failing, give your school's IT support this reference: <code>{}</code></p>",
        escape(request_id)
    );
    page(status, "Sign-in failed", &content)
}

/// The school chooser: one link per tenant (`href` already built by the caller).
pub fn chooser(schools: &[(String, String)]) -> Response<Body> {
    let mut content = String::from("<p>Choose your school to sign in.</p><ul>");
    for (name, href) in schools {
        content.push_str(&format!("<li><a href=\"{}\">{}</a></li>", escape(href), escape(name)));
    }
    content.push_str("</ul>");
    page(StatusCode::OK, "Sign in", &content)
}

pub fn logged_out() -> Response<Body> {
    page(StatusCode::OK, "Signed out", "<p>You are signed out. You can close this window.</p>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}
