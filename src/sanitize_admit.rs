//! Whether a request head is admitted at all, before it is routed (the pipeline's admit step): the
//! checks every request gets whatever its HTTP version, framing that could smuggle a second
//! request (RFC 9112 §6, RFC 9110 §8.6), cookie crumbs joined (RFC 9113 §8.2.3), the header
//! count, and one valid Host that agrees with the target's authority (RFC 9110 §7.2, RFC 9113
//! §8.3.1). Each refusal is a [`RequestFault`]: a 400 and a metric reason, never the bytes.
//!
//! A room of sanitize.rs (issue 30): what an admitted request may carry to the platform, and a
//! response back, stays there.

use http::Version;

use super::*;

/// Why a request is refused before it is routed. Each maps to 400 and to a metric reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestFault {
    #[error("request has no Host")]
    MissingHost,
    #[error("request has more than one Host line")]
    DuplicateHost,
    #[error("Host is not a valid host[:port]")]
    BadHost,
    #[error("Host and the request target's authority differ")]
    HostMismatch,
    #[error("Transfer-Encoding repeated or not exactly \"chunked\"")]
    BadTransferEncoding,
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndChunked,
    #[error("Content-Length repeated, a list, or not one decimal number")]
    BadContentLength,
    #[error("a request head line ended by LF alone, or a CR not before LF")]
    BareLineEnd,
    #[error("a request head with obs-fold, NUL, or that does not parse")]
    MalformedHead,
    #[error("an earlier message on the connection could not be followed; its requests are refused")]
    UnfollowableFraming,
    #[error("more header fields than limits.max_headers")]
    TooManyHeaders,
    #[error("CONNECT or an asterisk-form target: no resource of the platform")]
    UnsupportedTarget,
    #[error("the path is percent-encoded too many times over to be read")]
    UnsettledPath,
    #[error("a SAML response or artifact in the query of a path that is not an intercepted ACS")]
    SamlMessage,
    #[error("Host is not one of nymgate's public hosts")]
    UnknownHost,
    #[error("an Upgrade to a protocol not in upstream.upgrade_protocols, or asked for ambiguously")]
    UpgradeRefused,
}

impl RequestFault {
    /// The metric label and log reason.
    pub fn reason(self) -> &'static str {
        match self {
            RequestFault::MissingHost => "missing_host",
            RequestFault::DuplicateHost => "duplicate_host",
            RequestFault::BadHost => "bad_host",
            RequestFault::HostMismatch => "host_mismatch",
            RequestFault::BadTransferEncoding => "bad_transfer_encoding",
            RequestFault::LengthAndChunked => "length_and_chunked",
            RequestFault::BadContentLength => "bad_content_length",
            RequestFault::BareLineEnd => "bare_line_end",
            RequestFault::MalformedHead => "malformed_head",
            RequestFault::UnfollowableFraming => "unfollowable_framing",
            RequestFault::TooManyHeaders => "too_many_headers",
            RequestFault::UnsupportedTarget => "unsupported_target",
            RequestFault::UnsettledPath => "unsettled_path",
            RequestFault::SamlMessage => "saml_message_outside_acs",
            RequestFault::UnknownHost => "unknown_host",
            RequestFault::UpgradeRefused => "upgrade_refused",
        }
    }
}

/// The checks every request gets, whatever its HTTP version, on the head the handler sees. For
/// HTTP/1.1 the framing watcher (framing.rs) has judged the bytes already; HTTP/2 requests get
/// the same limits and normalizations here (RFC 9113 §8.2.3, §8.3), so that the platform, which
/// always gets HTTP/1.1, never sees a request from an HTTP/2 client that an HTTP/1.1 client
/// could not have sent.
pub fn check_request(parts: &mut Parts, max_headers: usize) -> Result<(), RequestFault> {
    // CONNECT (authority form, RFC 9112 §3.2.3) asks for a tunnel and `*` (asterisk form,
    // §3.2.4) asks about the server itself: neither names a resource of the platform, and
    // neither has a path for the checks below to decide on. 400, not 405: a 405 must list the
    // methods the resource allows (RFC 9110 §15.5.6), which only the platform knows.
    if parts.method == http::Method::CONNECT || parts.uri.path() == "*" {
        return Err(RequestFault::UnsupportedTarget);
    }
    check_framing(parts)?;
    join_cookies(&mut parts.headers);
    // Counted after the cookie crumbs are joined: an HTTP/2 browser's crumbs are the one Cookie
    // line it sends over HTTP/1.1, where hyper counts `limits.max_headers` on the lines read.
    if parts.headers.len() > max_headers {
        return Err(RequestFault::TooManyHeaders);
    }
    Ok(())
}

/// Framing checks on the head (request smuggling). A Transfer-Encoding repeated or listing more
/// than `chunked` is refused, since nymgate supports no other transfer coding and a list is how
/// obfuscation hides. Content-Length must be one field of one decimal number: RFC 9110 §8.6 lets a
/// recipient collapse repeated equal values, but a front end that reads the first of `5` and
/// `5, 6` differently is how smuggling starts, and no client needs to repeat it. hyper keeps one
/// of several equal HTTP/1.1 lines (the watcher refuses those, framing.rs), and HTTP/2 passes them
/// all on: refused here for both.
pub fn check_framing(parts: &Parts) -> Result<(), RequestFault> {
    let mut te = parts.headers.get_all(header::TRANSFER_ENCODING).iter();
    if let Some(first) = te.next() {
        let only_chunked = first.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked");
        if !only_chunked || te.next().is_some() {
            return Err(RequestFault::BadTransferEncoding);
        }
        if parts.headers.contains_key(header::CONTENT_LENGTH) {
            return Err(RequestFault::LengthAndChunked);
        }
    }
    let mut lengths = parts.headers.get_all(header::CONTENT_LENGTH).iter();
    if let Some(first) = lengths.next() {
        let digits = first.as_bytes();
        if lengths.next().is_some() || digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(RequestFault::BadContentLength);
        }
    }
    Ok(())
}

/// Several `cookie` fields become one, joined with `; ` (RFC 9113 §8.2.3: HTTP/2 clients may
/// split cookies into crumbs, and they must be joined before an HTTP/1.1 hop; RFC 6265 §5.4: an
/// HTTP/1.1 client sends one line). The platform and nymgate's own cookie reading then see one
/// value, whatever the client sent.
fn join_cookies(headers: &mut HeaderMap) {
    let mut crumbs = headers.get_all(header::COOKIE).iter();
    if crumbs.next().is_none() || crumbs.next().is_none() {
        return;
    }
    let mut joined = BytesMut::new();
    for crumb in headers.get_all(header::COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(crumb.as_bytes());
    }
    // Valid field values joined by "; " are a valid field value.
    if let Ok(value) = HeaderValue::from_maybe_shared(joined.freeze()) {
        headers.insert(header::COOKIE, value);
    }
}

/// The request's host (`host[:port]`), checked: exactly one Host line, the same as the target's
/// authority when both are present, and only characters a host can have (RFC 3986 §3.2.2), so
/// that no path separator, `..`, `@` or control character reaches the platform's routing.
pub fn validated_host(parts: &Parts) -> Result<String, RequestFault> {
    let mut lines = parts.headers.get_all(header::HOST).iter();
    let host_line = lines.next();
    if lines.next().is_some() {
        return Err(RequestFault::DuplicateHost);
    }
    let authority = parts.uri.authority().map(|a| a.as_str());
    let host = match (host_line, authority) {
        (Some(line), Some(auth)) => {
            let line = line.to_str().map_err(|_| RequestFault::BadHost)?;
            if !line.eq_ignore_ascii_case(auth) {
                return Err(RequestFault::HostMismatch);
            }
            line
        }
        (Some(line), None) => line.to_str().map_err(|_| RequestFault::BadHost)?,
        (None, Some(auth)) if parts.version == Version::HTTP_2 || parts.version == Version::HTTP_3 => auth,
        _ => return Err(RequestFault::MissingHost),
    };
    if is_valid_host(host) {
        Ok(host.to_ascii_lowercase())
    } else {
        Err(RequestFault::BadHost)
    }
}

fn is_valid_host(host: &str) -> bool {
    if host.is_empty() || host.len() > 255 {
        return false;
    }
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((literal, after)) = rest.split_once(']') else { return false };
        if literal.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        (None, after.strip_prefix(':').map(Some).unwrap_or(if after.is_empty() { None } else { Some("x") }))
    } else {
        match host.rsplit_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    match name {
        None => true,
        Some(name) => {
            !name.is_empty()
                && !name.contains("..")
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::parts;
    use super::*;

    #[test]
    fn host_validation() {
        for good in ["learn.example", "learn.example:8443", "127.0.0.1:80", "[::1]:8443", "[2001:db8::1]"] {
            assert!(validated_host(&parts(&[("host", good)], "/")).is_ok(), "{good}");
        }
        for bad in ["a/b", "..", "a..b", "evil@host", "a b", "host:99999x", "[zz]", "h\\x", "", "host:"] {
            assert_eq!(validated_host(&parts(&[("host", bad)], "/")), Err(RequestFault::BadHost), "{bad:?}");
        }
        let two = parts(&[("host", "a.example"), ("host", "b.example")], "/");
        assert_eq!(validated_host(&two), Err(RequestFault::DuplicateHost));
        let mismatch = parts(&[("host", "a.example")], "http://b.example/");
        assert_eq!(validated_host(&mismatch), Err(RequestFault::HostMismatch));
        assert_eq!(validated_host(&parts(&[], "/")), Err(RequestFault::MissingHost));
    }

    #[test]
    fn transfer_encoding_must_be_exactly_chunked_once() {
        assert!(check_framing(&parts(&[("transfer-encoding", "chunked")], "/")).is_ok());
        for bad in [
            &[("transfer-encoding", "gzip, chunked")][..],
            &[("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")],
        ] {
            assert_eq!(check_framing(&parts(bad, "/")), Err(RequestFault::BadTransferEncoding));
        }
    }

    #[test]
    fn content_length_must_be_one_plain_number() {
        assert!(check_framing(&parts(&[("content-length", "5")], "/")).is_ok());
        for bad in [
            &[("content-length", "5"), ("content-length", "5")][..],
            &[("content-length", "5, 5")],
            &[("content-length", "+5")],
            &[("content-length", "")],
        ] {
            assert_eq!(check_framing(&parts(bad, "/")), Err(RequestFault::BadContentLength), "{bad:?}");
        }
    }

    #[test]
    fn every_version_gets_the_same_request_checks() {
        // Cookie crumbs (RFC 9113 §8.2.3) become one field, and count as one against max_headers.
        let mut p = parts(&[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3"), ("x", "1")], "/");
        p.version = http::Version::HTTP_2;
        assert_eq!(check_request(&mut p, 2), Ok(()));
        assert_eq!(p.headers.get_all("cookie").iter().collect::<Vec<_>>(), ["a=1; b=2; c=3"]);
        let mut p = parts(&[("x", "1"), ("y", "2"), ("z", "3")], "/");
        assert_eq!(check_request(&mut p, 2), Err(RequestFault::TooManyHeaders));
        let mut star = parts(&[], "*");
        star.method = http::Method::OPTIONS;
        assert_eq!(check_request(&mut star, 100), Err(RequestFault::UnsupportedTarget));
        let mut connect = parts(&[], "learn.example:443");
        connect.method = http::Method::CONNECT;
        assert_eq!(check_request(&mut connect, 100), Err(RequestFault::UnsupportedTarget));
    }
}
