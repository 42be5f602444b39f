//! Header hygiene: what a request may carry to the platform, and what a response may carry back.
//!
//! Order matters and is fixed in [`sanitize_request`]: first everything the client may not
//! decide is removed (hop-by-hop headers, forwarding headers, identity headers), then the
//! configured drops and pseudonyms are applied, and only then does nymgate write its own
//! forwarding headers. Nothing the client sent can survive under a name nymgate sets.

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::Version;

use crate::client_ip::{IpReducer, ReducedIp};
use crate::config::{PrivacyConfig, ALWAYS_REMOVED_IDENTITY_HEADERS};

/// Hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy `keep-alive` and `proxy-connection`).
/// They describe one connection and never cross the proxy in either direction.
static HOP_BY_HOP: [HeaderName; 9] = [
    HeaderName::from_static("connection"),
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("proxy-authenticate"),
    HeaderName::from_static("proxy-authorization"),
    HeaderName::from_static("te"),
    HeaderName::from_static("trailer"),
    HeaderName::from_static("transfer-encoding"),
    HeaderName::from_static("upgrade"),
];

/// Headers that claim to describe the client or the path it took. Only nymgate writes them.
static FORWARDING: [HeaderName; 14] = [
    HeaderName::from_static("forwarded"),
    HeaderName::from_static("x-forwarded-for"),
    HeaderName::from_static("x-forwarded-host"),
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("x-real-ip"),
    HeaderName::from_static("x-client-ip"),
    HeaderName::from_static("client-ip"),
    HeaderName::from_static("true-client-ip"),
    HeaderName::from_static("cf-connecting-ip"),
    HeaderName::from_static("x-cluster-client-ip"),
    HeaderName::from_static("x-original-forwarded-for"),
    HeaderName::from_static("x-request-id"),
];

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

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
        }
    }
}

/// Framing checks that hyper's parser leaves to us (request smuggling, shared/SECURITY.md).
/// hyper already refuses malformed or conflicting Content-Length, TE on HTTP/1.0, obs-fold and
/// TE not ending in chunked; a TE repeated or listing more than `chunked` is refused here, since
/// nymgate supports no other transfer coding and a list is how obfuscation hides.
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
    Ok(())
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

/// The compiled header and query policy.
pub struct SanitizePolicy {
    identity_headers: Vec<HeaderName>,
    drop_headers: Vec<HeaderName>,
    pseudonymize_headers: Vec<HeaderName>,
    drop_query_params: Vec<String>,
    pseudonymize_query_params: Vec<String>,
}

impl SanitizePolicy {
    /// Builds the policy. Header names were validated with the config.
    pub fn new(config: &PrivacyConfig) -> Self {
        let names = |list: &[String]| -> Vec<HeaderName> {
            list.iter().filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok()).collect()
        };
        let mut identity_headers: Vec<HeaderName> =
            ALWAYS_REMOVED_IDENTITY_HEADERS.iter().map(|n| HeaderName::from_static(n)).collect();
        identity_headers.extend(names(&config.identity_headers));
        if config.strip_authorization {
            identity_headers.push(header::AUTHORIZATION);
        }
        Self {
            identity_headers,
            drop_headers: names(&config.drop_headers),
            pseudonymize_headers: names(&config.pseudonymize_headers),
            drop_query_params: config.drop_query_params.clone(),
            pseudonymize_query_params: config.pseudonymize_query_params.clone(),
        }
    }

    /// Adds a header to the identity headers removed from every client request.
    pub fn remove_identity_header(&mut self, name: &str) {
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            if !self.identity_headers.contains(&name) {
                self.identity_headers.push(name);
            }
        }
    }

    fn touches_query(&self) -> bool {
        !(self.drop_query_params.is_empty() && self.pseudonymize_query_params.is_empty())
    }
}

/// What nymgate knows about the request when it writes the forwarding headers.
pub struct ForwardingFacts<'a> {
    pub client: &'a ReducedIp,
    pub host: &'a str,
    pub request_id: &'a HeaderValue,
    /// The `Upgrade` value to keep (WebSocket), if this is an upgrade request.
    pub upgrade: Option<HeaderValue>,
}

/// Rewrites a request's headers (and query) for the platform. See the module doc for the order.
pub fn sanitize_request(
    parts: &mut Parts,
    policy: &SanitizePolicy,
    reducer: &IpReducer,
    facts: ForwardingFacts<'_>,
) {
    let headers = &mut parts.headers;
    remove_connection_named(headers);
    remove_listed(headers, &[&HOP_BY_HOP, &FORWARDING, &policy.identity_headers, &policy.drop_headers]);
    for name in &policy.pseudonymize_headers {
        let values: Vec<HeaderValue> = headers.get_all(name).iter().cloned().collect();
        if values.is_empty() {
            continue;
        }
        headers.remove(name);
        for value in values {
            let pseudonym = reducer.pseudonymize_value(name.as_str(), value.as_bytes());
            headers.append(name.clone(), HeaderValue::from_str(&pseudonym).expect("hex is a valid value"));
        }
    }
    if policy.touches_query() {
        if let Some(query) = parts.uri.query() {
            let rewritten = sanitize_query(query, policy, reducer);
            if rewritten != query {
                let path = parts.uri.path();
                let pq = if rewritten.is_empty() { path.to_owned() } else { format!("{path}?{rewritten}") };
                let mut uri = http::uri::Parts::from(std::mem::take(&mut parts.uri));
                uri.path_and_query = pq.parse().ok();
                parts.uri = http::Uri::from_parts(uri).unwrap_or_default();
            }
        }
    }

    // nymgate's own forwarding headers (RFC 7239 for `Forwarded`), written into one buffer that
    // the header values then share: formatting each into a string of its own and copying that
    // into a header value was about 5% of the proxy's CPU (`perf`, BENCHMARKS.md §1).
    let host = facts.host.as_bytes();
    let mut buf = BytesMut::with_capacity(2 * host.len() + 112);
    let x_forwarded_for = facts.client.write_x_forwarded_for(&mut buf).then(|| buf.split().freeze());
    let _ = facts.client.write_forwarded_for(&mut buf);
    buf.extend_from_slice(b";proto=https;host=");
    if host.iter().all(|b| b.is_ascii_alphanumeric() || b"-._~:".contains(b)) {
        buf.extend_from_slice(host);
    } else {
        // A quoted-string (RFC 7239 §4): the host was validated, it has no quote or backslash.
        buf.extend_from_slice(b"\"");
        buf.extend_from_slice(host);
        buf.extend_from_slice(b"\"");
    }
    let forwarded = buf.split().freeze();
    buf.extend_from_slice(host);
    let host = buf.freeze();

    let headers = &mut parts.headers;
    headers.reserve(8);
    if let Some(value) = x_forwarded_for.and_then(|v| HeaderValue::from_maybe_shared(v).ok()) {
        headers.insert(X_FORWARDED_FOR, value);
    }
    if let Ok(value) = HeaderValue::from_maybe_shared(forwarded) {
        headers.insert(header::FORWARDED, value);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    if let Ok(value) = HeaderValue::from_maybe_shared(host) {
        headers.insert(X_FORWARDED_HOST, value.clone());
        headers.insert(header::HOST, value);
    }
    headers.insert(X_REQUEST_ID, facts.request_id.clone());
    if let Some(upgrade) = facts.upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
}

/// Removes hop-by-hop headers, including every header named in any `Connection` line.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    remove_connection_named(headers);
    remove_listed(headers, &[&HOP_BY_HOP]);
}

/// Removes the headers a `Connection` line names (RFC 9110 §7.6.1).
fn remove_connection_named(headers: &mut HeaderMap) {
    if !headers.contains_key(header::CONNECTION) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
}

/// Removes every header whose name is in one of `lists`, in one pass over the names present:
/// a request carries a handful of headers against some thirty listed names, and removing each
/// listed name by lookup was a measurable share of the proxy's time (BENCHMARKS.md §1).
fn remove_listed(headers: &mut HeaderMap, lists: &[&[HeaderName]]) {
    let present: Vec<HeaderName> =
        headers.keys().filter(|name| lists.iter().any(|list| list.contains(name))).cloned().collect();
    for name in present {
        headers.remove(name);
    }
}

/// Response headers for the client: hop-by-hop removed; for a completed upgrade (101) the
/// `Connection: upgrade` and `Upgrade` pair is put back, since it is the answer to the client's.
pub fn sanitize_response(headers: &mut HeaderMap, upgraded: Option<HeaderValue>) {
    strip_hop_by_hop(headers);
    if let Some(upgrade) = upgraded {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
}

/// Applies the query policy. Parameters are compared by their decoded name; everything else is
/// kept byte for byte, in order.
pub fn sanitize_query(query: &str, policy: &SanitizePolicy, reducer: &IpReducer) -> String {
    let mut out: Vec<String> = Vec::new();
    for pair in query.split('&') {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(raw_name);
        if policy.drop_query_params.iter().any(|n| n.as_bytes() == name.as_slice()) {
            continue;
        }
        if policy.pseudonymize_query_params.iter().any(|n| n.as_bytes() == name.as_slice()) {
            let value = percent_decode(raw_value);
            let pseudonym = reducer.pseudonymize_value(&String::from_utf8_lossy(&name), &value);
            out.push(format!("{raw_name}={pseudonym}"));
            continue;
        }
        out.push(pair.to_owned());
    }
    out.join("&")
}

/// `application/x-www-form-urlencoded` decoding (WHATWG URL §5.1): `+` is a space, `%XX` a byte,
/// and a `%` not followed by two hex digits is kept as it is.
pub fn percent_decode(input: &str) -> Vec<u8> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b))) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientIpConfig;

    fn parts(raw: &[(&str, &str)], uri: &str) -> Parts {
        let mut b = http::Request::builder().uri(uri);
        for (k, v) in raw {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut p = parts(
            &[
                ("connection", "x-secret, keep-alive"),
                ("connection", "x-other"),
                ("x-secret", "1"),
                ("x-other", "2"),
                ("keep-alive", "timeout=5"),
                ("te", "trailers"),
                ("x-kept", "3"),
            ],
            "/",
        );
        strip_hop_by_hop(&mut p.headers);
        assert_eq!(p.headers.len(), 1, "{:?}", p.headers);
        assert!(p.headers.contains_key("x-kept"));
    }

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

    fn reducer() -> IpReducer {
        IpReducer::new(&ClientIpConfig::default(), None)
    }

    #[test]
    fn request_rewrite_removes_client_claims_and_sets_nymgate_headers() {
        let policy = SanitizePolicy::new(&PrivacyConfig {
            drop_headers: vec!["x-device".into()],
            pseudonymize_headers: vec!["x-client-hash".into()],
            drop_query_params: vec!["email".into()],
            pseudonymize_query_params: vec!["device".into()],
            ..Default::default()
        });
        let mut p = parts(
            &[
                ("host", "learn.example"),
                ("x-forwarded-for", "6.6.6.6"),
                ("forwarded", "for=6.6.6.6"),
                ("x-real-ip", "6.6.6.6"),
                ("x-nymgate-assertion", "forged"),
                ("x-forwarded-email", "alice@school.se"),
                ("x-device", "d"),
                ("x-client-hash", "abc"),
                ("x-request-id", "client-chosen"),
            ],
            "/p?a=1&email=alice%40school.se&device=xyz&b=2",
        );
        let client = ReducedIp::Network("203.0.113.0".parse().unwrap());
        let request_id = HeaderValue::from_static("r1");
        let facts = ForwardingFacts {
            client: &client,
            host: "learn.example",
            request_id: &request_id,
            upgrade: None,
        };
        let r = reducer();
        sanitize_request(&mut p, &policy, &r, facts);
        let h = &p.headers;
        assert_eq!(h["x-forwarded-for"], "203.0.113.0");
        assert_eq!(h["forwarded"], "for=203.0.113.0;proto=https;host=learn.example");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-request-id"], "r1");
        for gone in ["x-real-ip", "x-nymgate-assertion", "x-forwarded-email", "x-device"] {
            assert!(!h.contains_key(gone), "{gone}");
        }
        assert_ne!(h["x-client-hash"], "abc");
        let q = p.uri.query().unwrap();
        assert!(q.starts_with("a=1&device=_") && q.ends_with("&b=2") && !q.contains("alice"), "{q}");
        assert!(!format!("{h:?}").contains("6.6.6.6"));
    }

    #[test]
    fn query_names_compare_decoded() {
        let policy = SanitizePolicy::new(&PrivacyConfig {
            drop_query_params: vec!["e mail".into()],
            ..Default::default()
        });
        assert_eq!(sanitize_query("e+mail=x&e%20mail=y&z=1", &policy, &reducer()), "z=1");
    }

    #[test]
    fn percent_decoding_edges() {
        assert_eq!(percent_decode("a%41%4"), b"aA%4");
        assert_eq!(percent_decode("%"), b"%");
        assert_eq!(percent_decode("%zz+"), b"%zz ");
    }
}
