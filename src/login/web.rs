//! The browser-facing pieces of the login endpoints: where a login may return to, the forms
//! nymgate reads (bounded, each parameter once) and the flow cookie's name. The cookies,
//! responses and escaping mint's faces share with the flows are one floor down, in `src/web.rs`.

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
}
