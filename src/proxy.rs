//! The request pipeline of the public listener, readable top to bottom in [`handle`]:
//!
//! 1. check framing and Host (request smuggling, host confusion) → 400;
//! 2. find the client IP over the trusted proxies, and reduce it at once; `/nymgate/…` goes to
//!    the login face (login/mod.rs) and stops here;
//! 3. sanitize: strip what the client may not send, write nymgate's forwarding headers, and in
//!    assertion-header mode add nymgate's signed header;
//! 4. forward to the platform (or answer from the built-in echo platform);
//! 5. sanitize the response; count and log the request without any personal value.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use ipnet::IpNet;

use crate::body::{self, Body, BodyFault, GuardedBody};
use crate::client_ip::{resolve_client_ip, IpReducer, ReducedIp};
use crate::config::{Config, LimitsConfig};
use crate::echo;
use crate::framing::{FramingWatch, HeadVerdict};
use crate::login::{Login, LoginContext};
use crate::metrics::{Metrics, RouteClass};
use crate::public_hosts::HostSet;
use crate::sanitize::{self, ForwardingFacts, RequestFault, SanitizePolicy, X_REQUEST_ID};
use crate::tls::ReloadingCertResolver;
use crate::upgrade::UpgradeAsk;
use crate::upstream::{ClientPools, Upstream};

/// Everything the pipeline needs, built once from the config and shared by all connections.
pub struct Gateway {
    pub metrics: Arc<Metrics>,
    /// Shared by every worker, so that hash mode gives one token per client across workers.
    pub reducer: Arc<IpReducer>,
    pub policy: SanitizePolicy,
    /// `None`: the built-in echo platform answers.
    pub upstream: Option<Upstream>,
    pub trusted_proxies: Vec<IpNet>,
    /// Shared: every connection holds them for its life (server.rs).
    pub limits: Arc<LimitsConfig>,
    /// nymgate's login face, when `[login]` is configured.
    pub login: Option<Arc<Login>>,
    /// The hosts a request may name (421 otherwise).
    pub public_hosts: PublicHosts,
    /// The port a Host may carry on to the platform: `login.public_url`'s, else the listener's.
    pub public_port: u16,
    /// `upstream.upgrade_protocols`; none for the echo platform (upgrade.rs).
    pub upgrade_protocols: Vec<String>,
}

/// Where the public hosts come from: `server.public_hosts`, or the certificate in service
/// (which a certificate reload changes without a config reload).
pub enum PublicHosts {
    Listed(HostSet),
    Certificate(Arc<ReloadingCertResolver>),
}

impl PublicHosts {
    pub fn new(config: &Config, certs: &Arc<ReloadingCertResolver>) -> Self {
        if config.server.public_hosts.is_empty() {
            PublicHosts::Certificate(certs.clone())
        } else {
            PublicHosts::Listed(HostSet::new(config.server.public_hosts.iter().map(String::as_str)))
        }
    }

    pub fn allows(&self, host: &str) -> bool {
        match self {
            PublicHosts::Listed(hosts) => hosts.allows(host),
            PublicHosts::Certificate(certs) => certs.hosts().allows(host),
        }
    }
}

impl Gateway {
    pub fn new(
        config: &Config,
        metrics: Arc<Metrics>,
        reducer: Arc<IpReducer>,
        upstream: Option<Upstream>,
        login: Option<Arc<Login>>,
        certs: &Arc<ReloadingCertResolver>,
    ) -> Self {
        if let Some(upstream) = &upstream {
            upstream.client.pool_set().report_to(metrics.clone());
        }
        let mut policy = SanitizePolicy::new(&config.privacy);
        if let Some(login) = &config.login {
            // The assertion header is nymgate's alone, whatever it is called.
            policy.remove_identity_header(&login.assertion.header);
        }
        Self {
            metrics,
            reducer,
            policy,
            upstream,
            trusted_proxies: config.client_ip.trusted_proxies.clone(),
            limits: Arc::new(config.limits.clone()),
            upgrade_protocols: config
                .upstream
                .as_ref()
                .map(|u| u.upgrade_protocols.clone())
                .unwrap_or_default(),
            login,
            public_hosts: PublicHosts::new(config, certs),
            public_port: config
                .login
                .as_ref()
                .and_then(|login| login.public_url.parse::<http::Uri>().ok())
                .map(|url| url.port_u16().unwrap_or(443))
                .unwrap_or(config.server.listen.port()),
        }
    }
}

/// What the connection knows about its client.
#[derive(Clone)]
pub struct ConnInfo {
    /// The socket peer. Used only to find and reduce the client IP; never logged.
    pub peer: SocketAddr,
    /// HTTP/1.1 connections: what the framing watcher saw in each request head.
    pub framing: Option<Arc<FramingWatch>>,
    /// HTTP/1.1 connections: the bounds an upgraded tunnel keeps (conn_bounds.rs).
    pub tunnel: Option<crate::conn_bounds::Tunnel>,
    /// This connection's own platform connections, with `upstream.pool_per_client_connection`
    /// (upstream/mod.rs); dropped with the connection.
    pub platform: ClientPools,
}

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
    fn closes_connection(&self) -> bool {
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

/// The public listener's handler. Never fails: every error becomes a response.
pub async fn handle(
    gateway: Arc<Gateway>,
    conn: ConnInfo,
    mut request: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let started = Instant::now();
    // hyper prepares an upgrade for any HTTP/1.1 request with an `Upgrade` field; its handle
    // stays with the connection, whatever this request becomes (conn_bounds::Tunnel::pending).
    if let (Some(tunnel), Some(on_upgrade)) =
        (&conn.tunnel, request.extensions_mut().remove::<hyper::upgrade::OnUpgrade>())
    {
        tunnel.hold(on_upgrade);
    }
    // Asked once per request, in order, whatever happens next (framing.rs). HTTP/2 has no
    // watcher: its frames carry their own lengths, and its heads are checked in `route`.
    let head = conn.framing.as_ref().map_or(HeadVerdict::Clean, |f| f.next_verdict());
    let request_id_value = next_request_id();
    let request_id = request_id_value.to_str().unwrap_or_default();
    let method = request.method().clone();
    let version = request.version();
    // The canonical path (target.rs), made once: routing decides on it, and the log's path class
    // is read from it, only when the request line below is written (level info).
    let canonical = crate::target::canonical_path(request.uri().path());
    let path_class = tracing::enabled!(tracing::Level::INFO).then(|| match &canonical {
        Ok(path) => crate::telemetry::first_segment(path),
        Err(_) => "/…",
    });

    // The client IP is reduced before anything else sees it; the raw address stops here (the
    // login blocker keeps only an HMAC of it, under a key that is never written).
    let client_ip = resolve_client_ip(
        conn.peer.ip(),
        request.headers().get_all("x-forwarded-for").iter().map(|v| v.as_bytes()),
        &gateway.trusted_proxies,
    );
    let client = gateway.reducer.reduce(client_ip);
    let client_key = gateway.login.as_ref().and_then(|login| login.client_key(client_ip));

    let caller = Caller { client: &client, client_key, platform: &conn.platform };
    let (route, result) = route(&gateway, &conn, request, canonical, head, caller, &request_id_value).await;
    let (route, mut response) = match result {
        Ok(response) => (route, response),
        Err(error) => {
            gateway.metrics.rejected(error.reason());
            let status = error.status();
            if status.is_server_error() {
                tracing::warn!(request_id, reason = error.reason(), detail = %error, "request failed");
            } else {
                tracing::info!(request_id, reason = error.reason(), detail = %error, "request refused");
            }
            let close = error.closes_connection() && version != Version::HTTP_2;
            let route = if status.is_client_error() { RouteClass::Rejected } else { route };
            let mut response = error_response(status, request_id, close);
            if matches!(error, ProxyError::UpstreamSaturated) {
                // A platform connection frees up within seconds, or the bound is too low.
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            (route, response)
        }
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        // The 101 goes out: what the client sends next is the upgraded protocol's, and hyper
        // reads no further request on this connection. Only this ends the framing watch; an
        // `Upgrade` header alone does not (framing.rs).
        if let Some(framing) = &conn.framing {
            framing.upgraded();
        }
    }
    response.headers_mut().insert(X_REQUEST_ID, request_id_value.clone());
    gateway.metrics.request(route, response.status());
    // The path's first segment only: later segments and the query can carry personal values.
    tracing::info!(
        request_id,
        route = route.as_str(),
        method = %method,
        path = path_class.unwrap_or_default(),
        version = ?version,
        status = response.status().as_u16(),
        elapsed_us = started.elapsed().as_micros() as u64,
        client = %client,
        "request"
    );
    Ok(response)
}

/// Who sent the request, as the pipeline may know it.
struct Caller<'a> {
    /// The reduced client IP (the raw one never goes further than `handle`).
    client: &'a ReducedIp,
    client_key: Option<crate::login::blocking::ClientKey>,
    /// The client connection's own platform connections (`upstream.pool_per_client_connection`).
    platform: &'a ClientPools,
}

async fn route(
    gateway: &Gateway,
    conn: &ConnInfo,
    request: Request<Incoming>,
    canonical: Result<crate::target::CanonicalPath, crate::target::Unsettled>,
    head: HeadVerdict,
    caller: Caller<'_>,
    request_id_value: &HeaderValue,
) -> (RouteClass, Result<Response<Body>, ProxyError>) {
    let Caller { client, client_key, platform: pools } = caller;
    let request_id = request_id_value.to_str().unwrap_or_default();
    let class = if gateway.upstream.is_some() { RouteClass::Proxy } else { RouteClass::Echo };
    let (mut parts, incoming) = request.into_parts();

    // 1. Framing, limits and Host: one judgement for every request, whatever came before it on
    // its connection (framing.rs, HTTP/1.1) and whatever its HTTP version (sanitize.rs).
    if let Some(fault) = head.fault() {
        return (class, Err(fault.into()));
    }
    let checked = sanitize::check_request(&mut parts, gateway.limits.max_headers);
    let host = match checked.and_then(|()| sanitize::validated_host(&parts)) {
        Ok(host) => host,
        Err(fault) => return (class, Err(fault.into())),
    };
    if !gateway.public_hosts.allows(&host) {
        return (class, Err(RequestFault::UnknownHost.into()));
    }
    let host = crate::public_hosts::forwarded_host(&host, gateway.public_port);
    // Every routing decision below is made on this one form (target.rs), never on raw bytes.
    let canonical = match canonical {
        Ok(path) => path,
        Err(_) => return (class, Err(RequestFault::UnsettledPath.into())),
    };

    // 2. nymgate's own endpoints: logins and the provider face.
    let login_ctx = || LoginContext {
        client,
        client_key,
        request_id,
        max_body_bytes: gateway.limits.max_body_bytes,
        body_read_timeout: gateway.limits.body_read_timeout,
        lang: crate::login::pages::Lang::from_accept_language(
            parts.headers.get(http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()),
        ),
    };
    if Login::owns_canonical(&canonical) {
        let Some(login) = gateway.login.as_ref() else {
            // nymgate's paths are never the platform's, with or without a login configured.
            return (RouteClass::Rejected, Ok(not_found()));
        };
        let ctx = login_ctx();
        // Boxed: the login flows' state is large, and every proxied request's future (moved
        // into its task, and polled in place) would otherwise be as large.
        return (RouteClass::Login, Ok(Box::pin(login.handle(parts, &canonical, incoming, &ctx)).await));
    }
    // 2b. Interception (docs/SAML_OUT.md): a request to the platform's intercepted ACS, by any
    // method and on any spelling of its path, has its school response verified and replaced by
    // nymgate's own before anything is forwarded, or is refused.
    let intercepted = gateway.login.as_ref().and_then(|l| Some((l, l.intercepted_sp(&canonical)?)));
    let body = match intercepted {
        Some((login, (sp, acs_path))) => {
            let ctx = login_ctx();
            match Box::pin(login.intercept(&sp, &parts, incoming, &ctx)).await {
                Ok(form) => RequestBody::Replaced(form, acs_path),
                Err(response) => return (RouteClass::Login, Ok(response)),
            }
        }
        None => {
            // Defence in depth on every other path: a SAML message in a query string is a
            // school's login response (or an artifact for one) on its way past the verifier.
            if parts.uri.query().is_some_and(|q| crate::target::query_has(q, crate::target::SAML_MESSAGES)) {
                return (class, Err(RequestFault::SamlMessage.into()));
            }
            // ... and in a body (form_scan.rs), watched as it streams; read from the headers as
            // the client sent them, before sanitize (`Connection: content-type` would remove one).
            let watch = if incoming_is_empty(&incoming) {
                None
            } else {
                let headers = &parts.headers;
                match crate::form_scan::FormScanner::for_request(
                    headers.get_all(header::CONTENT_TYPE).iter().map(HeaderValue::as_bytes),
                    headers.get_all(header::CONTENT_ENCODING).iter().map(HeaderValue::as_bytes),
                ) {
                    Ok(watch) => watch,
                    Err(refusal) => return (class, Err(ProxyError::Body(refusal))),
                }
            };
            RequestBody::Client(incoming, watch)
        }
    };

    // An HTTP/1.1 upgrade (WebSocket) keeps its Upgrade header across the proxy (RFC 9110 §7.8),
    // for a configured protocol only (upgrade.rs).
    let upgrade = match crate::upgrade::read(parts.version, &parts.headers, &gateway.upgrade_protocols) {
        UpgradeAsk::None => None,
        UpgradeAsk::Allowed(value) => Some(value),
        UpgradeAsk::Refused => return (class, Err(RequestFault::UpgradeRefused.into())),
    };
    // hyper's upgrade handle was put with the connection's bounds by `handle`.
    let client_upgrade = match (&upgrade, &conn.tunnel) {
        (Some(_), Some(tunnel)) => Some(tunnel.clone()),
        _ => None,
    };
    // Extensions are per-hop state of hyper's; none of them belongs to the upstream request.
    parts.extensions = http::Extensions::new();

    // 3. Sanitize.
    let facts =
        ForwardingFacts { client, host: &host, request_id: request_id_value, upgrade: upgrade.clone() };
    sanitize::sanitize_request(&mut parts, &gateway.policy, &gateway.reducer, facts);
    // Assertion-header output: nymgate's signed header for a browser with a session.
    if let Some(login) = &gateway.login {
        if let Err(response) = login.assert_request(&mut parts) {
            return (RouteClass::Login, Ok(*response));
        }
    }

    // 4. Forward.
    let (incoming, watch) = match body {
        RequestBody::Client(incoming, watch) => (incoming, watch),
        RequestBody::Replaced(form, acs_path) => {
            // nymgate's form, whole: framed by its length, whatever the client's was, and sent
            // to the configured ACS path, without a query: nymgate vouches for its own form at
            // that destination only, not for the spelling or the parameters the browser used.
            let mut uri = http::uri::Parts::from(std::mem::take(&mut parts.uri));
            uri.path_and_query = acs_path.parse().ok();
            parts.uri = http::Uri::from_parts(uri).unwrap_or_default();
            let headers = &mut parts.headers;
            headers.remove(header::TRANSFER_ENCODING);
            // The client's description of its own body does not describe nymgate's form.
            headers.remove(header::CONTENT_ENCODING);
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(form.len()));
            headers
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
            let result = match &gateway.upstream {
                None => Ok(echo::answer_bytes(&parts, form.len())),
                Some(upstream) => {
                    forward(gateway, upstream, pools, parts, crate::body::full(form), None, None).await
                }
            };
            return (class, result);
        }
    };
    let mut body =
        Box::pin(GuardedBody::new(incoming, gateway.limits.body_read_timeout).with_form_scan(watch));
    if let Err(fault) = body.as_mut().prime().await {
        return (class, Err(ProxyError::ClientBody(fault)));
    }
    let result = match &gateway.upstream {
        None => echo::answer(parts, body, gateway.limits.max_body_bytes).await,
        Some(upstream) => {
            use http_body_util::BodyExt;
            let fault = body.fault_cell();
            forward(gateway, upstream, pools, parts, body.boxed_unsync(), Some(fault), client_upgrade).await
        }
    };
    (class, result)
}

/// A body known to be empty (GET without one, Content-Length: 0) needs no watching.
fn incoming_is_empty(incoming: &Incoming) -> bool {
    use http_body::Body as _;
    incoming.is_end_stream()
}

/// 404 for a nymgate path when no login is configured.
fn not_found() -> Response<Body> {
    let mut response = Response::new(body::full("404 Not Found\n"));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

/// A request's body toward the platform: the client's, streamed, or nymgate's replacement.
enum RequestBody {
    /// The client's body, and the watch over it (form_scan.rs) when it has one to watch.
    Client(Incoming, Option<crate::form_scan::FormScanner>),
    /// The form nymgate made, and the intercepted ACS's configured path it goes to.
    Replaced(bytes::Bytes, String),
}

/// `fault`: where the client body's failure is recorded, when the body is the client's.
async fn forward(
    gateway: &Gateway,
    upstream: &Upstream,
    pools: &ClientPools,
    mut parts: http::request::Parts,
    body: Body,
    fault: Option<crate::body::FaultCell>,
    client_upgrade: Option<ClientUpgrade>,
) -> Result<Response<Body>, ProxyError> {
    use http_body_util::BodyExt;

    // The protocol the client may be switched to: what sanitize put in the request.
    let asked = client_upgrade.as_ref().and(parts.headers.get(header::UPGRADE).cloned());
    // The URI stays as the client sent it: the platform client writes only its path and query
    // (origin form, RFC 9112 §3.2.1), and `Host` was set by sanitize. The platform always gets
    // HTTP/1.1 (upstream/client.rs).
    parts.version = Version::HTTP_11;
    let sent = Instant::now();
    let outcome = tokio::time::timeout(upstream.response_timeout, upstream.send(pools, parts, body)).await;
    gateway.metrics.upstream_latency(sent.elapsed());
    let response = match outcome {
        Err(_) => return Err(ProxyError::UpstreamTimeout),
        Ok(Err(crate::upstream::client::SendError::Saturated)) => return Err(ProxyError::UpstreamSaturated),
        Ok(Err(error)) => {
            // A request body that broke is the client's fault, whatever the client library says.
            if let Some(fault) = fault.as_ref().and_then(|f| f.get()) {
                return Err(ProxyError::ClientBody(*fault));
            }
            return Err(ProxyError::UpstreamUnavailable(crate::telemetry::error_chain(&error)));
        }
        Ok(Ok(response)) => response,
    };

    let (mut parts, body) = response.into_parts();
    let (upgraded, body) = if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        match (body.into_upgraded(), client_upgrade, asked) {
            (Some(platform), Some(tunnel), Some(asked))
                if crate::upgrade::platform_agrees(&asked, parts.headers.get(header::UPGRADE)) =>
            {
                let Some(client) = tunnel.take() else {
                    return Err(ProxyError::UpstreamUnavailable("101 without the client's upgrade".into()));
                };
                // The framing watch ends when `handle` sends this 101 on.
                crate::upgrade::splice(tunnel, platform, client, gateway.metrics.clone());
                (Some(asked), crate::body::empty())
            }
            // A 101 nobody asked for, or to another protocol: the platform's stream is dropped
            // and the client told so.
            _ => return Err(ProxyError::UpstreamUnavailable("unrequested 101 Switching Protocols".into())),
        }
    } else {
        (None, body.boxed_unsync())
    };
    let planted = sanitize::sanitize_response(&mut parts.headers, upgraded);
    if planted > 0 {
        // The cookie's value is the platform's bytes: only the count is logged.
        tracing::warn!(cookies = planted, "the platform set nymgate's own cookie; dropped");
    }
    parts.extensions = http::Extensions::new();
    Ok(Response::from_parts(parts, body))
}

/// The client's side of an upgrade: the bounds the tunnel keeps, with hyper's handle on the
/// connection.
type ClientUpgrade = crate::conn_bounds::Tunnel;

/// A request id: a random per-process prefix and a counter, 24 hex digits. Unique across
/// replicas and restarts without a system call per request; it is a reference for support, not
/// a secret. Made once as a header value, shared by the platform's request and the response.
fn next_request_id() -> HeaderValue {
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
