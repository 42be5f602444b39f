//! The plain listeners: the admin endpoints (`/healthz`, `/readyz`, `/metrics`, the retention
//! API) and the HTTP-to-HTTPS redirect, and the phase helpers every listener waits on.

use super::*;

/// Resolves when the server stops serving (or is gone).
pub(super) async fn leaves_serving(phase: &mut watch::Receiver<Phase>) {
    let _ = phase.wait_for(|p| *p != Phase::Serving).await;
}

/// Resolves when the server reaches `target` (or is gone).
pub(super) async fn reaches(phase: &mut watch::Receiver<Phase>, target: Phase) {
    let _ = phase.wait_for(|p| *p == target).await;
}

/// Serves plain HTTP/1.1 on a listener with `handler`, until the phase leaves `Serving`.
pub(super) async fn serve_plain<F, Fut>(listener: TcpListener, mut phase: watch::Receiver<Phase>, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            _ = reaches(&mut phase, Phase::Closing) => return,
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let response = handler(req);
                async move { Ok::<_, std::convert::Infallible>(response.await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
        });
    }
}

pub(super) fn text_response(status: StatusCode, text: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut response = Response::new(body::full(text));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The admin listener: `/healthz` (the process runs), `/readyz` (it should get traffic: config
/// loaded, not draining, the platform and the shared store reachable, the audit log writable),
/// `/metrics` (OpenMetrics 1.0 or Prometheus text 0.0.4, as the scraper asks).
pub(super) async fn serve_admin(listener: TcpListener, slot: GatewaySlot, phase: watch::Receiver<Phase>) {
    let readiness = phase.clone();
    serve_plain(listener, phase, move |req: Request<Incoming>| {
        let gateway = slot.current();
        let readiness = readiness.clone();
        async move {
            match req.uri().path() {
                "/healthz" => text_response(StatusCode::OK, "ok\n"),
                "/readyz" => {
                    let serving = *readiness.borrow() == Phase::Serving;
                    let upstream = gateway.upstream.as_ref().is_none_or(|u| u.is_reachable());
                    let store = gateway.login.as_ref().map(|login| login.store());
                    let store_up = store.is_none_or(|s| s.is_up());
                    // Every login is audited or refused (docs/LOGIN.md, "The audit log"): a
                    // replica that can't write its audit log leaves the pool until it can.
                    let audit_failing = match gateway.login.as_ref() {
                        Some(login) => login.audit_failing().await,
                        None => false,
                    };
                    let report = format!(
                        "config: loaded\nlisteners: {}\nupstream: {}\nstore: {}\naudit: {}\n",
                        if serving { "serving" } else { "draining" },
                        if upstream { "reachable" } else { "unreachable" },
                        match store {
                            Some(s) if s.is_shared() =>
                                if store_up {
                                    "reachable"
                                } else {
                                    "unreachable"
                                },
                            _ => "memory",
                        },
                        if audit_failing { "failing" } else { "writing" },
                    );
                    let status = if serving && upstream && store_up && !audit_failing {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    text_response(status, report)
                }
                path if path.starts_with(crate::login::retention_api::PREFIX) => match gateway.login.as_ref()
                {
                    Some(login) => {
                        let (parts, body) = req.into_parts();
                        login.retention_api(&parts.method, parts.uri.path(), &parts.headers, body).await
                    }
                    None => text_response(StatusCode::NOT_FOUND, "not found\n"),
                },
                "/metrics" => {
                    // OpenMetrics 1.0 to a scraper that asks for it, Prometheus text 0.0.4
                    // otherwise, each labelled as what it is (metrics_format.rs).
                    let accept = req.headers().get(header::ACCEPT).map(HeaderValue::as_bytes);
                    let format = crate::metrics_format::negotiate(accept);
                    let tampered = gateway.login.as_ref().map_or(0, |login| login.retention_tampered());
                    gateway.metrics.retention_tampered(tampered);
                    let mut response = text_response(StatusCode::OK, gateway.metrics.render_as(format));
                    let headers = response.headers_mut();
                    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
                    headers.insert(header::VARY, HeaderValue::from_static("accept"));
                    response
                }
                _ => text_response(StatusCode::NOT_FOUND, "not found\n"),
            }
        }
    })
    .await
}

/// The plain-HTTP listener: a redirect to HTTPS for everything but `/healthz`
/// (shared/PRODUCT.md: "Plain HTTP serves only redirects and health checks").
pub(super) async fn serve_redirect(
    listener: TcpListener,
    https_port: u16,
    gateway: GatewaySlot,
    metrics: Arc<Metrics>,
    phase: watch::Receiver<Phase>,
) {
    serve_plain(listener, phase, move |req: Request<Incoming>| {
        let metrics = metrics.clone();
        let gateway = gateway.current();
        async move {
            let response = redirect_response(&req, https_port, &gateway.public_hosts);
            metrics.request(RouteClass::Redirect, response.status());
            response
        }
    })
    .await
}

/// A redirect only to one of nymgate's public hosts (public_hosts.rs): a redirect to any Host
/// the client names would send a browser wherever a link's author chose.
pub(super) fn redirect_response(
    req: &Request<Incoming>,
    https_port: u16,
    hosts: &crate::gateway::PublicHosts,
) -> Response<Body> {
    if req.uri().path() == "/healthz" {
        return text_response(StatusCode::OK, "ok\n");
    }
    let (parts, ()) = {
        let mut builder = Request::builder().method(req.method()).uri(req.uri()).version(req.version());
        for (name, value) in req.headers() {
            builder = builder.header(name, value);
        }
        builder.body(()).expect("copied from a valid request").into_parts()
    };
    let Ok(host) = crate::sanitize::validated_host(&parts) else {
        return text_response(StatusCode::BAD_REQUEST, "400 Bad Request\n");
    };
    if !hosts.allows(&host) {
        return text_response(StatusCode::MISDIRECTED_REQUEST, "421 Misdirected Request\n");
    }
    let hostname = match host.rsplit_once(':') {
        Some((name, port))
            if !name.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(']') =>
        {
            name
        }
        _ => host.as_str(),
    };
    let port = if https_port == 443 { String::new() } else { format!(":{https_port}") };
    let path = req.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    let location = format!("https://{hostname}{port}{path}");
    let mut response = text_response(StatusCode::PERMANENT_REDIRECT, "");
    match HeaderValue::from_str(&location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => text_response(StatusCode::BAD_REQUEST, "400 Bad Request\n"),
    }
}
