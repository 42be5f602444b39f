//! The request pipeline of the public listener, one request top to bottom. [`handle`] makes the
//! request's context ([`RequestCtx`]) and runs the phases in order; each phase is a function
//! named after what it decides, and any of them may end the request with an answer:
//!
//! 1. [`admit`]: framing, header limits and Host, one judgement whatever came before on the
//!    connection (request smuggling, host confusion) → 400/421/431;
//! 2. [`own_endpoint`]: `/nymgate/…` in any spelling goes to the login face (login/mod.rs,
//!    whose flows share one completion: take the pending flow → verify → claim against replay →
//!    pseudonymize → retain → deliver → audit, login/outcome.rs) and stops here;
//! 3. [`platform_body`]: an intercepted ACS has its school response verified and replaced by
//!    nymgate's own (docs/SAML_OUT.md); any other body is watched for SAML messages as it
//!    streams;
//! 4. [`sanitize_for_platform`]: upgrades allowed by name, what the client may not send
//!    stripped, nymgate's forwarding headers written, the signed assertion header added;
//! 5. [`forward`]: to the platform (or the built-in echo platform), within the response
//!    timeout, and the response sanitized;
//! 6. [`answer`]: the error page if a phase refused, the request id, the metrics and the one
//!    request log line, without any personal value.
//!
//! The client IP is reduced when the context is made, before any phase runs: no phase, log
//! line or metric sees the raw address (the login blocker keeps only an HMAC of it). What the
//! pipeline shares across requests is the [`Gateway`] (gateway.rs, the composition root).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use crate::body::{Body, GuardedBody};
use crate::client_ip::{resolve_client_ip, ReducedIp};
use crate::echo;
use crate::framing::{FramingWatch, HeadVerdict};
use crate::gateway::Gateway;

mod answers;
use crate::login::{Login, LoginContext};
use crate::metrics::RouteClass;
use crate::sanitize::{self, ForwardingFacts, RequestFault, X_REQUEST_ID};
use crate::upgrade::UpgradeAsk;
use crate::upstream::{ClientPools, Upstream};
pub use answers::{error_response, ProxyError};
use answers::{next_request_id, not_found};

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

/// What the pipeline knows about one request: made once by [`handle`], read by every phase.
struct RequestCtx<'a> {
    /// The reference the client, the platform (`X-Request-Id`) and every log line share.
    id: HeaderValue,
    /// The reduced client IP: the raw one is never kept past [`RequestCtx`]'s making.
    client: ReducedIp,
    /// The login blocker's key for the client (an HMAC of the raw IP), with a login face.
    client_key: Option<crate::login::blocking::ClientKey>,
    /// The client connection's own platform connections (`upstream.pool_per_client_connection`).
    platform: &'a ClientPools,
    /// How the request is counted and logged: set by the phase that answers.
    route: RouteClass,
}

impl RequestCtx<'_> {
    fn id(&self) -> &str {
        self.id.to_str().unwrap_or_default()
    }

    /// What the login face gets: the client as reduced, the limits, the pages' language.
    fn for_login<'c>(&'c self, gateway: &Gateway, headers: &http::HeaderMap) -> LoginContext<'c> {
        LoginContext {
            client: &self.client,
            client_key: self.client_key,
            request_id: self.id(),
            max_body_bytes: gateway.limits.max_body_bytes,
            body_read_timeout: gateway.limits.body_read_timeout,
            lang: crate::login::pages::Lang::from_accept_language(
                headers.get(http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()),
            ),
        }
    }
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
    // watcher: its frames carry their own lengths, and its heads are checked in `admit`.
    let head = conn.framing.as_ref().map_or(HeadVerdict::Clean, |f| f.next_verdict());
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
    let mut ctx = RequestCtx {
        id: next_request_id(),
        client: gateway.reducer.reduce(client_ip),
        client_key: gateway.login.as_ref().and_then(|login| login.client_key(client_ip)),
        platform: &conn.platform,
        route: if gateway.upstream.is_some() { RouteClass::Proxy } else { RouteClass::Echo },
    };
    let result = match phases(&gateway, &conn, request, canonical, head, &mut ctx).await {
        Ok(response) => Ok(response),
        Err(Stop::Answered(response)) => Ok(*response),
        Err(Stop::Refused(error)) => Err(error),
    };
    let response = answer(&gateway, &conn, &mut ctx, version, result);
    // The path's first segment only: later segments and the query can carry personal values.
    tracing::info!(
        request_id = ctx.id(),
        route = ctx.route.as_str(),
        method = %method,
        path = path_class.unwrap_or_default(),
        version = ?version,
        status = response.status().as_u16(),
        elapsed_us = started.elapsed().as_micros() as u64,
        client = %ctx.client,
        "request"
    );
    Ok(response)
}

/// How a phase ends a request before the platform answers it.
enum Stop {
    /// Refused by nymgate: [`answer`] makes the generic error page.
    Refused(ProxyError),
    /// Answered by the login face (its page, redirect or refusal). Boxed: a request that goes
    /// on carries the `Result` through every phase, and a response is large.
    Answered(Box<Response<Body>>),
}

impl From<ProxyError> for Stop {
    fn from(error: ProxyError) -> Self {
        Stop::Refused(error)
    }
}

impl From<RequestFault> for Stop {
    fn from(fault: RequestFault) -> Self {
        Stop::Refused(fault.into())
    }
}

/// Phases 1 to 5 in order; the first that stops ends the request.
async fn phases(
    gateway: &Gateway,
    conn: &ConnInfo,
    request: Request<Incoming>,
    canonical: Result<crate::target::CanonicalPath, crate::target::Unsettled>,
    head: HeadVerdict,
    ctx: &mut RequestCtx<'_>,
) -> Result<Response<Body>, Stop> {
    let (mut parts, incoming) = request.into_parts();
    let (host, canonical) = admit(gateway, &mut parts, canonical, head)?;
    if Login::owns_canonical(&canonical) {
        return Ok(own_endpoint(gateway, parts, &canonical, incoming, ctx).await);
    }
    let body = platform_body(gateway, &parts, &canonical, incoming, ctx).await?;
    let client_upgrade = sanitize_for_platform(gateway, conn, &mut parts, &host, ctx)?;
    Ok(send(gateway, parts, body, client_upgrade, ctx).await?)
}

/// Phase 1: framing, limits and Host, one judgement for every request, whatever came before it
/// on its connection (framing.rs, HTTP/1.1) and whatever its HTTP version (sanitize.rs). The
/// Host as the platform gets it, and the one canonical path every later rule decides on.
fn admit(
    gateway: &Gateway,
    parts: &mut http::request::Parts,
    canonical: Result<crate::target::CanonicalPath, crate::target::Unsettled>,
    head: HeadVerdict,
) -> Result<(String, crate::target::CanonicalPath), ProxyError> {
    if let Some(fault) = head.fault() {
        return Err(fault.into());
    }
    sanitize::check_request(parts, gateway.limits.max_headers)?;
    let host = sanitize::validated_host(parts)?;
    if !gateway.public_hosts.allows(&host) {
        return Err(RequestFault::UnknownHost.into());
    }
    let host = crate::public_hosts::forwarded_host(&host, gateway.public_port);
    // Every routing decision below is made on this one form (target.rs), never on raw bytes.
    let canonical = canonical.map_err(|_| RequestFault::UnsettledPath)?;
    Ok((host, canonical))
}

/// Phase 2: a path nymgate owns, in any spelling (`Login::owns_canonical`), is answered by its
/// login face (logins, the provider face, the IdP face), never by the platform.
async fn own_endpoint(
    gateway: &Gateway,
    parts: http::request::Parts,
    canonical: &crate::target::CanonicalPath,
    incoming: Incoming,
    ctx: &mut RequestCtx<'_>,
) -> Response<Body> {
    let Some(login) = gateway.login.as_ref() else {
        // nymgate's paths are never the platform's, with or without a login configured.
        ctx.route = RouteClass::Rejected;
        return not_found();
    };
    ctx.route = RouteClass::Login;
    let login_ctx = ctx.for_login(gateway, &parts.headers);
    // Boxed: the login flows' state is large, and every proxied request's future (moved into
    // its task, and polled in place) would otherwise be as large.
    Box::pin(login.handle(parts, canonical, incoming, &login_ctx)).await
}

/// Phase 3: the body toward the platform. Interception (docs/SAML_OUT.md): a request to the
/// platform's intercepted ACS, by any method and on any spelling of its path, has its school
/// response verified and replaced by nymgate's own before anything is forwarded, or is refused
/// by the login face. Any other request is watched for SAML messages.
async fn platform_body(
    gateway: &Gateway,
    parts: &http::request::Parts,
    canonical: &crate::target::CanonicalPath,
    incoming: Incoming,
    ctx: &mut RequestCtx<'_>,
) -> Result<RequestBody, Stop> {
    if let Some((login, (sp, acs_path))) =
        gateway.login.as_ref().and_then(|l| Some((l, l.intercepted_sp(canonical)?)))
    {
        let login_ctx = ctx.for_login(gateway, &parts.headers);
        return match Box::pin(login.intercept(&sp, parts, incoming, &login_ctx)).await {
            Ok(form) => Ok(RequestBody::Replaced(form, acs_path)),
            Err(response) => {
                ctx.route = RouteClass::Login;
                Err(Stop::Answered(Box::new(response)))
            }
        };
    }
    // Defence in depth on every other path: a SAML message in a query string is a school's
    // login response (or an artifact for one) on its way past the verifier.
    if parts.uri.query().is_some_and(|q| crate::target::query_has(q, crate::target::SAML_MESSAGES)) {
        return Err(RequestFault::SamlMessage.into());
    }
    // ... and in a body (form_scan.rs), watched as it streams; read from the headers as the
    // client sent them, before sanitize (`Connection: content-type` would remove one).
    let watch = if incoming_is_empty(&incoming) {
        None
    } else {
        let headers = &parts.headers;
        crate::form_scan::FormScanner::for_request(
            headers.get_all(header::CONTENT_TYPE).iter().map(HeaderValue::as_bytes),
            headers.get_all(header::CONTENT_ENCODING).iter().map(HeaderValue::as_bytes),
        )
        .map_err(ProxyError::Body)?
    };
    Ok(RequestBody::Client(incoming, watch))
}

/// Phase 4: what the platform may see. An HTTP/1.1 upgrade (WebSocket) keeps its Upgrade
/// header across the proxy (RFC 9110 §7.8) for a configured protocol only (upgrade.rs); the
/// rest is sanitize.rs's, and in assertion-header mode nymgate's signed header is added for a
/// browser with a session (or the login face answers: a login is required). The client's side
/// of an allowed upgrade is returned for [`forward`].
fn sanitize_for_platform(
    gateway: &Gateway,
    conn: &ConnInfo,
    parts: &mut http::request::Parts,
    host: &str,
    ctx: &mut RequestCtx<'_>,
) -> Result<Option<ClientUpgrade>, Stop> {
    let upgrade = match crate::upgrade::read(parts.version, &parts.headers, &gateway.upgrade_protocols) {
        UpgradeAsk::None => None,
        UpgradeAsk::Allowed(value) => Some(value),
        UpgradeAsk::Refused => return Err(RequestFault::UpgradeRefused.into()),
    };
    // hyper's upgrade handle was put with the connection's bounds by `handle`.
    let client_upgrade = match (&upgrade, &conn.tunnel) {
        (Some(_), Some(tunnel)) => Some(tunnel.clone()),
        _ => None,
    };
    // Extensions are per-hop state of hyper's; none of them belongs to the upstream request.
    parts.extensions = http::Extensions::new();
    let facts = ForwardingFacts { client: &ctx.client, host, request_id: &ctx.id, upgrade };
    sanitize::sanitize_request(parts, &gateway.policy, &gateway.reducer, facts);
    if let Some(login) = &gateway.login {
        if let Err(response) = login.assert_request(parts) {
            ctx.route = RouteClass::Login;
            return Err(Stop::Answered(response));
        }
    }
    Ok(client_upgrade)
}

/// Phase 5, the body's part: nymgate's replacement form whole, or the client's body streamed
/// under its read deadline and watch; then [`forward`] (or the echo platform).
async fn send(
    gateway: &Gateway,
    mut parts: http::request::Parts,
    body: RequestBody,
    client_upgrade: Option<ClientUpgrade>,
    ctx: &RequestCtx<'_>,
) -> Result<Response<Body>, ProxyError> {
    let pools = ctx.platform;
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
            return match &gateway.upstream {
                None => Ok(echo::answer_bytes(&parts, form.len())),
                Some(upstream) => {
                    forward(gateway, upstream, pools, parts, crate::body::full(form), None, None).await
                }
            };
        }
    };
    let mut body =
        Box::pin(GuardedBody::new(incoming, gateway.limits.body_read_timeout).with_form_scan(watch));
    body.as_mut().prime().await.map_err(ProxyError::ClientBody)?;
    match &gateway.upstream {
        None => echo::answer(parts, body, gateway.limits.max_body_bytes).await,
        Some(upstream) => {
            use http_body_util::BodyExt;
            let fault = body.fault_cell();
            forward(gateway, upstream, pools, parts, body.boxed_unsync(), Some(fault), client_upgrade).await
        }
    }
}

/// Phase 6: the answer the client gets. A refusal becomes a generic page with the request id
/// (the detail goes to the log, never to the client); a 101 ends the connection's framing
/// watch; every answer carries the request id and is counted.
fn answer(
    gateway: &Gateway,
    conn: &ConnInfo,
    ctx: &mut RequestCtx<'_>,
    version: Version,
    result: Result<Response<Body>, ProxyError>,
) -> Response<Body> {
    let mut response = match result {
        Ok(response) => response,
        Err(error) => {
            gateway.metrics.rejected(error.reason());
            let status = error.status();
            let request_id = ctx.id();
            if status.is_server_error() {
                tracing::warn!(request_id, reason = error.reason(), detail = %error, "request failed");
            } else {
                tracing::info!(request_id, reason = error.reason(), detail = %error, "request refused");
            }
            let close = error.closes_connection() && version != Version::HTTP_2;
            let mut response = error_response(status, request_id, close);
            // Counted and logged as refused, whichever phase refused it.
            if status.is_client_error() {
                ctx.route = RouteClass::Rejected;
            }
            if matches!(error, ProxyError::UpstreamSaturated) {
                // A platform connection frees up within seconds, or the bound is too low.
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            response
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
    response.headers_mut().insert(X_REQUEST_ID, ctx.id.clone());
    gateway.metrics.request(ctx.route, response.status());
    response
}

/// A body known to be empty (GET without one, Content-Length: 0) needs no watching.
fn incoming_is_empty(incoming: &Incoming) -> bool {
    use http_body::Body as _;
    incoming.is_end_stream()
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
