//! Header hygiene: what a request may carry to the platform, and what a response may carry back.
//!
//! Order matters and is fixed in [`sanitize_request`]: first everything the client may not
//! decide is removed (hop-by-hop headers, forwarding headers, identity headers), then the
//! configured drops and pseudonyms are applied, and only then does nymgate write its own
//! forwarding headers. Nothing the client sent can survive under a name nymgate sets.
//!
//! Before any of this, whether a request head is admitted at all (its framing, its header count,
//! its Host) is decided in a room of its own, sanitize_admit.rs (issue 30).

use std::collections::HashSet;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;

use crate::client_ip::{IpReducer, ReducedIp};
use crate::config::{PrivacyConfig, ALWAYS_REMOVED_IDENTITY_HEADERS};
use crate::target::{canonical_param, canonical_rule_name, query_pairs};

#[path = "sanitize_admit.rs"]
mod admit;
pub use admit::{check_framing, check_request, validated_host, RequestFault};

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

/// Identity header families, by prefix of the canonical name: whatever follows the prefix, a
/// header of the family asserts who the user is (or carries their token or certificate) to the
/// platform, and only nymgate may do that. oauth2-proxy and Keycloak Gatekeeper (`x-auth-*`,
/// `x-forwarded-*`), Authelia (`remote-*`), Grafana and Gitea (`x-webauth-*`), authentik,
/// Pomerium, Vouch, Kong (`x-consumer-*`, `x-userinfo`), WSO2 (`x-jwt-*`), lua-resty-openidc
/// (`x-id-token`, `x-access-token`), Azure App Service (`x-ms-client-principal*`,
/// `x-ms-token-*`), AWS ALB (`x-amzn-oidc-*`), Google IAP (`x-goog-*`), Cloudflare Access
/// (`cf-access-*`), mod_auth_openidc (`oidc-*`), mod_auth_mellon and Shibboleth (`mellon-*`,
/// `shib-*`), TLS client certificates passed on by a proxy (`x-ssl-client-*`, `ssl-client-*`,
/// `x-client-cert*`, `x-arr-clientcert`), the `x-user*` and `x-email*` shorthands, and
/// nymgate's own namespace.
static IDENTITY_PREFIXES: [&str; 32] = [
    "x-nymgate-",
    "x-forwarded-",
    "x-auth-",
    "x-authenticated-",
    "x-authentik-",
    "x-webauth-",
    "x-remote-",
    "remote-",
    "x-user",
    "x-email",
    "x-token-",
    "x-id-token",
    "x-access-token",
    "x-userinfo",
    "x-jwt-",
    "x-consumer-",
    "x-pomerium-",
    "x-vouch-",
    "x-ms-client-principal",
    "x-ms-token-",
    "x-amzn-oidc-",
    "x-goog-authenticated-user-",
    "x-goog-iap-",
    "cf-access-",
    "oidc-",
    "mellon-",
    "shib-",
    "x-shib-",
    "x-ssl-client-",
    "ssl-client-",
    "x-client-cert",
    "x-arr-clientcert",
];

/// Headers that tell a framework to route, or to take the method, from somewhere other than
/// the request line and Host nymgate checked (IIS and Symfony `X-Original-URL`/`X-Rewrite-URL`,
/// Envoy's original path, gunicorn's `SCRIPT_NAME` header, method and host overrides). The platform must see what nymgate decided on: always
/// removed.
static ROUTING_OVERRIDES: [&str; 14] = [
    "script-name",
    "path-info",
    "x-envoy-original-path",
    "x-original-method",
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-override-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-host",
    "x-host",
    "x-http-host-override",
];

/// The canonical form header rules decide on: lowercase (the `http` crate already gives that)
/// with `_` read as `-`, since CGI, WSGI, Rack and PHP map `X_Forwarded_User` and
/// `X-Forwarded-User` to one variable (`HTTP_X_FORWARDED_USER`).
pub fn canonical_header_name(name: &str) -> std::borrow::Cow<'_, str> {
    let lower_dashed = |b: u8| !(b == b'_' || b.is_ascii_uppercase());
    if name.bytes().all(lower_dashed) {
        return std::borrow::Cow::Borrowed(name);
    }
    std::borrow::Cow::Owned(
        name.bytes().map(|b| if b == b'_' { '-' } else { b.to_ascii_lowercase() as char }).collect(),
    )
}

/// The compiled header and query policy.
pub struct SanitizePolicy {
    /// Canonical names removed from every client request: hop-by-hop, forwarding, identity,
    /// routing overrides and the configured drops. Their prefixes are in [`IDENTITY_PREFIXES`].
    removed: HashSet<String>,
    /// Canonical names whose values are replaced by a keyed hash.
    pseudonymize_headers: HashSet<String>,
    /// Canonical query parameter names (target.rs) removed, and pseudonymized.
    drop_query_params: Vec<String>,
    pseudonymize_query_params: Vec<String>,
}

impl SanitizePolicy {
    /// Builds the policy. Header names were validated with the config.
    pub fn new(config: &PrivacyConfig) -> Self {
        let canonical = |name: &str| canonical_header_name(name).into_owned();
        let mut removed: HashSet<String> = HOP_BY_HOP
            .iter()
            .chain(FORWARDING.iter())
            .map(|n| n.as_str())
            .chain(ROUTING_OVERRIDES)
            .chain(ALWAYS_REMOVED_IDENTITY_HEADERS.iter().copied())
            .map(canonical)
            .collect();
        removed.extend(config.identity_headers.iter().map(|n| canonical(n)));
        removed.extend(config.drop_headers.iter().map(|n| canonical(n)));
        if config.strip_authorization {
            removed.insert("authorization".into());
        }
        Self {
            removed,
            pseudonymize_headers: config.pseudonymize_headers.iter().map(|n| canonical(n)).collect(),
            // Compared in canonical form (target.rs): the rule `email` takes `EMAIL`, `email[]`,
            // `user[email]`, `e%6Dail` and every other spelling a framework reads as it.
            drop_query_params: config.drop_query_params.iter().map(|n| canonical_rule_name(n)).collect(),
            pseudonymize_query_params: config
                .pseudonymize_query_params
                .iter()
                .map(|n| canonical_rule_name(n))
                .collect(),
        }
    }

    /// Adds a header to the identity headers removed from every client request.
    pub fn remove_identity_header(&mut self, name: &str) {
        self.removed.insert(canonical_header_name(name).into_owned());
    }

    /// Whether a client's header of this name is removed before forwarding.
    pub fn removes(&self, name: &str) -> bool {
        let name = canonical_header_name(name);
        self.removed.contains(name.as_ref()) || IDENTITY_PREFIXES.iter().any(|p| name.starts_with(p))
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
    // One pass over the names present (a handful) against the policy, in canonical form.
    let mut removed = Vec::new();
    let mut pseudonymized = Vec::new();
    for name in headers.keys() {
        if policy.removes(name.as_str()) {
            removed.push(name.clone());
        } else if !policy.pseudonymize_headers.is_empty()
            && policy.pseudonymize_headers.contains(canonical_header_name(name.as_str()).as_ref())
        {
            pseudonymized.push(name.clone());
        }
    }
    for name in removed {
        headers.remove(name);
    }
    for name in pseudonymized {
        let values: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
        headers.remove(&name);
        // Keyed by the canonical name: `X_Client_Hash` and `x-client-hash` give one pseudonym.
        let key = canonical_header_name(name.as_str()).into_owned();
        for value in values {
            let pseudonym = reducer.pseudonymize_value(&key, value.as_bytes());
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

/// Whether a `Set-Cookie` value sets one of nymgate's own cookies
/// ([`crate::target::is_own_cookie_name`]).
/// A pair without a name (`=__Host-nymgate-session=v`) is read by browsers without RFC 6265bis's
/// check as that cookie, so every `name=` before the value is checked.
pub fn sets_own_cookie(set_cookie: &[u8]) -> bool {
    let pair = set_cookie.split(|b| *b == b';').next().unwrap_or_default();
    // Leading `=`s and white space are no name: the first name after them is the cookie's.
    let start = pair.iter().position(|b| !(*b == b'=' || b.is_ascii_whitespace())).unwrap_or(pair.len());
    crate::target::is_own_cookie_name(pair[start..].split(|b| *b == b'=').next().unwrap_or_default())
}

/// Response headers for the client: hop-by-hop removed; for a completed upgrade (101) the
/// `Connection: upgrade` and `Upgrade` pair is put back, since it is the answer to the client's.
/// A `Set-Cookie` for one of nymgate's cookies is dropped (the platform could otherwise plant a
/// session or a flow in the browser); the count of those is returned for the log.
pub fn sanitize_response(headers: &mut HeaderMap, upgraded: Option<HeaderValue>) -> usize {
    let mut planted = 0;
    if headers.contains_key(header::SET_COOKIE) {
        let cookies: Vec<HeaderValue> = headers.get_all(header::SET_COOKIE).iter().cloned().collect();
        if cookies.iter().any(|c| sets_own_cookie(c.as_bytes())) {
            headers.remove(header::SET_COOKIE);
            for cookie in cookies {
                if sets_own_cookie(cookie.as_bytes()) {
                    planted += 1;
                } else {
                    headers.append(header::SET_COOKIE, cookie);
                }
            }
        }
    }
    strip_hop_by_hop(headers);
    if let Some(upgrade) = upgraded {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
    planted
}

/// Applies the query policy. Pairs are split on `&` and `;` and their names compared in
/// canonical form (target.rs); a pseudonymized pair keeps its raw name, and every pair no rule
/// matches is kept byte for byte, in order, with its separator.
pub fn sanitize_query(query: &str, policy: &SanitizePolicy, reducer: &IpReducer) -> String {
    let mut out = String::with_capacity(query.len());
    for pair in query_pairs(query) {
        let name = canonical_param(pair.name);
        if crate::target::pair_matches(&pair, &policy.drop_query_params) {
            continue;
        }
        if !out.is_empty() {
            out.push(pair.separator.unwrap_or('&'));
        }
        match policy.pseudonymize_query_params.iter().find(|rule| name.matches(rule)) {
            Some(rule) => {
                // Keyed by the rule's name, so that every spelling of one parameter gives the
                // same pseudonym for the same value.
                let value = percent_decode(pair.value);
                out.push_str(pair.name);
                out.push('=');
                out.push_str(&reducer.pseudonymize_value(rule, &value));
            }
            None => out.push_str(pair.raw),
        }
    }
    out
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
#[path = "sanitize_tests.rs"]
mod tests;
