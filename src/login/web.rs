//! The browser-facing pieces of the login endpoints: where a login may return to, the forms
//! nymgate reads (bounded, each parameter once), and its cookies (`__Host-` names, `Secure`,
//! `HttpOnly`; none of them ever reaches the platform).

use super::*;

/// A `return_to` that stays on this site: a path starting with one `/` (not `//host`, not
/// `/\host`), else `/`. An open redirect would let a phishing link borrow nymgate's name.
pub fn safe_return_to(value: Option<&str>) -> String {
    match value {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.chars().any(|c| c.is_control()) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// A random token as nymgate makes them: 43 base64url characters.
pub(super) fn is_token(value: &str) -> bool {
    value.len() == 43 && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(super) fn flow_cookie_name(state: &str) -> String {
    let tag: String = state.chars().filter(|c| c.is_ascii_alphanumeric()).take(12).collect();
    format!("{FLOW_COOKIE_PREFIX}{tag}")
}

/// Query or form parameters; a repeated parameter is refused by keeping neither (OAuth 2.0
/// §3.1: parameters must not be included more than once).
pub fn form(text: &str) -> HashMap<String, String> {
    let mut seen = HashMap::new();
    let mut repeated = Vec::new();
    for (key, value) in openidconnect::url::form_urlencoded::parse(text.as_bytes()) {
        if seen.insert(key.to_string(), value.into_owned()).is_some() {
            repeated.push(key.into_owned());
        }
    }
    for key in repeated {
        seen.remove(&key);
    }
    seen
}

pub(super) async fn read_form(
    incoming: Incoming,
    ctx: &LoginContext<'_>,
) -> Result<HashMap<String, String>, StatusCode> {
    read_form_limited(incoming, ctx, 64 * 1024).await
}

/// A form body of at most `limit` bytes (and the server's own body limit), read within the
/// body timeout; nothing is parsed before the whole body is in and within the limit.
pub(super) async fn read_form_limited(
    incoming: Incoming,
    ctx: &LoginContext<'_>,
    limit: usize,
) -> Result<HashMap<String, String>, StatusCode> {
    let limit = ctx.max_body_bytes.min(limit);
    let collect = http_body_util::Limited::new(incoming, limit).collect();
    let bytes: Bytes = match tokio::time::timeout(ctx.body_read_timeout, collect).await {
        Err(_) => return Err(StatusCode::REQUEST_TIMEOUT),
        Ok(Err(_)) => return Err(StatusCode::PAYLOAD_TOO_LARGE),
        Ok(Ok(collected)) => collected.to_bytes(),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| StatusCode::BAD_REQUEST)?;
    Ok(form(text))
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
pub(super) fn strip_own_cookies(headers: &mut HeaderMap) {
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
pub(super) enum SameSite {
    /// Sent on top-level GET navigations from other sites: the OIDC redirect back.
    Lax,
    /// Sent on cross-site POSTs too: the SAML HTTP-POST binding's auto-submitted form.
    None,
}

/// `__Host-` cookies (RFC 6265bis §4.1.3.2): Secure, Path=/, no Domain, so no other host or
/// path can set or read them. Lax: the IdP's redirect back is a top-level GET.
pub(super) fn set_cookie(name: &str, value: &str, max_age: u64) -> HeaderValue {
    flow_cookie(name, value, max_age, SameSite::Lax)
}

/// As [`set_cookie`], with the SameSite the flow's protocol needs. The flow cookie is sealed,
/// names its own state, and is single-use, so SameSite=None gives a cross-site poster nothing.
pub(super) fn flow_cookie(name: &str, value: &str, max_age: u64, same_site: SameSite) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite={same_site:?}; Max-Age={max_age}"
    ))
    .expect("cookie names and sealed values are header-safe")
}

pub(super) fn clear_cookie(name: &str) -> HeaderValue {
    set_cookie(name, "", 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_stays_on_this_site() {
        assert_eq!(safe_return_to(Some("/courses/1?x=2")), "/courses/1?x=2");
        for bad in
            ["//evil.example/", "/\\evil.example", "https://evil.example/", "javascript:alert(1)", "/a\nb"]
        {
            assert_eq!(safe_return_to(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_return_to(None), "/");
    }

    #[test]
    fn repeated_parameters_are_dropped() {
        let params = form("a=1&b=2&a=3");
        assert_eq!(params.get("a"), None);
        assert_eq!(params.get("b").map(String::as_str), Some("2"));
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
