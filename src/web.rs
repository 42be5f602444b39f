//! The HTTP pieces nymgate's own endpoints share, whichever floor answers: the login flows
//! (`login/`) and the faces that mint for the platform (`mint/`). Responses (a redirect, a JSON
//! document), nymgate's cookies (`__Host-` names, `Secure`, `HttpOnly`; none of them ever
//! reaches the platform) and the one escape every page and XML document nymgate writes uses.
//! They know nothing of a login: what a flow does with them stays in `login/web.rs`.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use serde_json::Value;

use crate::body::{self, Body};

/// Text for HTML or XML, as element content or a quoted attribute value: the five characters
/// with a meaning there (XML 1.0 §2.4, HTML's character references) become references.
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

/// A 303 to `location`, never cached (a login's redirects are single-use).
pub fn redirect(location: &str) -> Response<Body> {
    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A JSON document with its status and `Cache-Control`.
pub fn json_response(status: StatusCode, value: &Value, cache: &'static str) -> Response<Body> {
    let mut response = Response::new(body::full(serde_json::to_vec(value).expect("JSON")));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Removes nymgate's cookies from a request going to the platform: they are nymgate's
/// business (sealed, but the platform has no use for them).
pub fn strip_own_cookies(headers: &mut HeaderMap) {
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            !pair.is_empty() && !crate::target::is_own_cookie_name(name.as_bytes())
        })
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty() {
        if let Ok(value) = HeaderValue::from_str(&kept.join("; ")) {
            headers.insert(header::COOKIE, value);
        }
    }
}

/// A cookie's SameSite attribute (RFC 6265bis §5.4.7).
#[derive(Debug, Clone, Copy)]
pub enum SameSite {
    /// Sent on top-level GET navigations from other sites: the OIDC redirect back.
    Lax,
    /// Sent on cross-site POSTs too: the SAML HTTP-POST binding's auto-submitted form.
    None,
}

/// `__Host-` cookies (RFC 6265bis §4.1.3.2): Secure, Path=/, no Domain, so no other host or
/// path can set or read them. Lax: the IdP's redirect back is a top-level GET.
pub fn set_cookie(name: &str, value: &str, max_age: u64) -> HeaderValue {
    flow_cookie(name, value, max_age, SameSite::Lax)
}

/// As [`set_cookie`], with the SameSite the flow's protocol needs. The flow cookie is sealed,
/// names its own state, and is single-use, so SameSite=None gives a cross-site poster nothing.
pub fn flow_cookie(name: &str, value: &str, max_age: u64, same_site: SameSite) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite={same_site:?}; Max-Age={max_age}"
    ))
    .expect("cookie names and sealed values are header-safe")
}

pub fn clear_cookie(name: &str) -> HeaderValue {
    set_cookie(name, "", 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }

    #[test]
    fn own_cookies_never_reach_the_platform() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; __Host-nymgate-session=xyz"));
        headers.append(header::COOKIE, HeaderValue::from_static("__Host-nymgate-flow-abc=1; b=2"));
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("__HOST-Nymgate-session=1; __Secure-nymgate-x=2"),
        );
        strip_own_cookies(&mut headers);
        assert_eq!(headers.get(header::COOKIE).unwrap(), "a=1; b=2");
        let mut only_ours = HeaderMap::new();
        only_ours.insert(header::COOKIE, HeaderValue::from_static("__Host-nymgate-session=xyz"));
        strip_own_cookies(&mut only_ours);
        assert!(only_ours.get(header::COOKIE).is_none());
    }
}
