//! The reverse proxy end to end: a real nymgate on loopback, a real upstream server, real TLS
//! clients speaking HTTP/1.1, HTTP/2, WebSocket and raw bytes.

mod common;

use std::time::Duration;

use common::*;
use http::Request;
use http_body_util::BodyExt;

fn upstream_config(url: &str, extra: &str) -> String {
    format!("[upstream]\nurl = \"{url}\"\nresponse_timeout = \"2s\"\nconnect_timeout = \"1s\"\n{extra}")
}

#[tokio::test]
async fn http1_and_http2_clients_reach_the_platform() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&upstream_config(&upstream.url(), "")).await;

    let mut h1 = gw.h1().await;
    let seen = echo(h1.send(get("/echo?x=1").body(empty()).unwrap()).await).await;
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str(), seen.query.as_deref()),
        ("GET", "/echo", Some("x=1"))
    );
    assert_eq!(header(&seen, "host"), Some("learn.example"));
    assert_eq!(header(&seen, "x-forwarded-proto"), Some("https"));
    assert_eq!(header(&seen, "x-forwarded-host"), Some("learn.example"));

    let mut h2 = gw.h2().await;
    let request = Request::get("https://learn.example/echo").body(empty()).unwrap();
    let response = h2.send(request).await;
    assert_eq!(response.version(), http::Version::HTTP_2);
    let seen = echo(response).await;
    assert_eq!(header(&seen, "host"), Some("learn.example"));
    assert_eq!(upstream.completed(), 2);
}

#[tokio::test]
async fn large_bodies_stream_both_ways() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&upstream_config(&upstream.url(), "")).await;
    const SIZE: usize = 8 * 1024 * 1024;
    let payload: Vec<u8> = (0..SIZE).map(|i| (i % 253) as u8).collect();
    let sum: u64 = payload.iter().map(|b| u64::from(*b)).sum();

    for mut_client in [false, true] {
        let response = if mut_client {
            let mut h2 = gw.h2().await;
            h2.send(Request::post("https://learn.example/upload").body(full(payload.clone())).unwrap()).await
        } else {
            let mut h1 = gw.h1().await;
            h1.send(get("/upload").method("POST").body(full(payload.clone())).unwrap()).await
        };
        assert_eq!(text(response).await, format!("{SIZE} {sum}"));
    }

    let mut h1 = gw.h1().await;
    let response = h1.send(get(&format!("/download?n={SIZE}")).body(empty()).unwrap()).await;
    assert_eq!(response.status(), 200);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(bytes.len(), SIZE);
    assert_eq!(bytes[65536], 1);
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&upstream_config(&upstream.url(), "")).await;
    let mut h1 = gw.h1().await;
    let request = get("/echo")
        .header("connection", "keep-alive, x-secret")
        .header("connection", "x-other")
        .header("x-secret", "1")
        .header("x-other", "2")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("te", "trailers")
        .header("x-kept", "3")
        .body(empty())
        .unwrap();
    let seen = echo(h1.send(request).await).await;
    for gone in ["x-secret", "x-other", "keep-alive", "proxy-authorization", "te"] {
        assert_eq!(header(&seen, gone), None, "{gone} reached the platform");
    }
    assert_eq!(header(&seen, "x-kept"), Some("3"));

    let response = h1.send(get("/hop").body(empty()).unwrap()).await;
    assert!(!response.headers().contains_key("x-up-secret"));
    assert!(!response.headers().contains_key("keep-alive"));
    assert_eq!(response.headers()["x-up-kept"], "yes");
}

#[tokio::test]
async fn spoofed_forwarded_for_is_not_trusted_and_the_ip_is_truncated() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&upstream_config(&upstream.url(), "")).await;
    let mut h1 = gw.h1().await;
    let request = get("/echo")
        .header("x-forwarded-for", "6.6.6.6")
        .header("forwarded", "for=6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .body(empty())
        .unwrap();
    let seen = echo(h1.send(request).await).await;
    // The socket peer is 127.0.0.1, not a trusted proxy: its /24 is all the platform learns.
    assert_eq!(header(&seen, "x-forwarded-for"), Some("127.0.0.0"));
    assert_eq!(header(&seen, "forwarded"), Some("for=127.0.0.0;proto=https;host=learn.example"));
    assert_eq!(header(&seen, "x-real-ip"), None);
    assert!(!format!("{:?}", seen.headers).contains("6.6.6.6"));
}

#[tokio::test]
async fn trusted_proxy_chain_is_read_right_to_left() {
    let upstream = Upstream::start().await;
    let extra = "[client_ip]\ntrusted_proxies = [\"127.0.0.0/8\", \"10.0.0.0/8\"]\n";
    let gw = Gateway::start(&format!("{}{extra}", upstream_config(&upstream.url(), ""))).await;
    let mut h1 = gw.h1().await;
    // The client wrote 6.6.6.6; the load balancer (10.0.0.5) appended the real client.
    let request =
        get("/echo").header("x-forwarded-for", "6.6.6.6, 203.0.113.77, 10.0.0.5").body(empty()).unwrap();
    let seen = echo(h1.send(request).await).await;
    assert_eq!(header(&seen, "x-forwarded-for"), Some("203.0.113.0"));
}

#[tokio::test]
async fn hash_and_drop_modes_reach_the_platform_as_configured() {
    let upstream = Upstream::start().await;
    let hash =
        Gateway::start(&format!("{}[client_ip]\nmode = \"hash\"\n", upstream_config(&upstream.url(), "")))
            .await;
    let mut h1 = hash.h1().await;
    let first = echo(h1.send(get("/echo").body(empty()).unwrap()).await).await;
    let second = echo(h1.send(get("/echo").body(empty()).unwrap()).await).await;
    let token = header(&first, "x-forwarded-for").unwrap().to_owned();
    assert!(token.starts_with('_') && token.len() == 17 && !token.contains("127"), "{token}");
    assert_eq!(header(&second, "x-forwarded-for"), Some(token.as_str()), "stable within the day");
    assert_eq!(header(&first, "forwarded").unwrap(), format!("for={token};proto=https;host=learn.example"));

    let drop =
        Gateway::start(&format!("{}[client_ip]\nmode = \"drop\"\n", upstream_config(&upstream.url(), "")))
            .await;
    let mut h1 = drop.h1().await;
    let seen =
        echo(h1.send(get("/echo").header("x-forwarded-for", "6.6.6.6").body(empty()).unwrap()).await).await;
    assert_eq!(header(&seen, "x-forwarded-for"), None);
    assert_eq!(header(&seen, "forwarded"), Some("for=unknown;proto=https;host=learn.example"));
}

#[tokio::test]
async fn client_identity_headers_never_reach_the_platform() {
    let upstream = Upstream::start().await;
    let extra = "[privacy]\nidentity_headers = [\"x-school-user\"]\nstrip_authorization = true\ndrop_headers = [\"x-device-id\"]\npseudonymize_headers = [\"x-client-hash\"]\ndrop_query_params = [\"email\"]\npseudonymize_query_params = [\"device\"]\n";
    let gw = Gateway::start(&format!("{}{extra}", upstream_config(&upstream.url(), ""))).await;
    let mut h1 = gw.h1().await;
    let request = get("/echo?email=alice%40school.example&device=abc&page=2")
        .header("x-nymgate-assertion", "eyJhbGciOiJub25lIn0.forged.")
        .header("x-forwarded-email", "alice@school.example")
        .header("x-forwarded-user", "alice")
        .header("x-school-user", "alice")
        .header("authorization", "Bearer forged")
        .header("x-device-id", "device-1")
        .header("x-client-hash", "fingerprint-1")
        .body(empty())
        .unwrap();
    let seen = echo(h1.send(request).await).await;
    for gone in [
        "x-nymgate-assertion",
        "x-forwarded-email",
        "x-forwarded-user",
        "x-school-user",
        "authorization",
        "x-device-id",
    ] {
        assert_eq!(header(&seen, gone), None, "{gone} reached the platform");
    }
    let hashed = header(&seen, "x-client-hash").unwrap();
    assert!(hashed.starts_with('_') && !hashed.contains("fingerprint"));
    let query = seen.query.unwrap();
    assert!(
        query.starts_with("device=_") && query.ends_with("&page=2") && !query.contains("alice"),
        "{query}"
    );
    let everything = serde_json::to_string(&seen.headers).unwrap();
    for personal in ["alice", "forged", "fingerprint-1", "device-1"] {
        assert!(!everything.contains(personal), "{personal} reached the platform: {everything}");
    }
}

#[tokio::test]
async fn websocket_echo_passes_through() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&upstream_config(&upstream.url(), "")).await;
    let tls = gw.raw().await;
    let request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request("wss://localhost/ws")
            .unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async(request, tls).await.unwrap();
    assert_eq!(response.status(), 101);
    for text in ["hello", "second message"] {
        ws.send(Message::text(text)).await.unwrap();
        let back = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(back.into_text().unwrap(), text);
    }
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn too_large_or_too_many_headers_get_431() {
    let gw = Gateway::start("[limits]\nmax_header_bytes = 8192\nmax_headers = 20\n").await;
    let mut raw = gw.raw().await;
    let big = format!("GET / HTTP/1.1\r\nHost: learn.example\r\nX-Big: {}\r\n\r\n", "a".repeat(9000));
    let reply = raw_exchange(&mut raw, big.as_bytes(), Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");

    let mut raw = gw.raw().await;
    let many: String = (0..30).map(|i| format!("X-H{i}: v\r\n")).collect();
    let request = format!("GET / HTTP/1.1\r\nHost: learn.example\r\n{many}\r\n");
    let reply = raw_exchange(&mut raw, request.as_bytes(), Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
}

#[tokio::test]
async fn body_over_the_limit_on_nymgates_own_endpoint_gets_413() {
    // No upstream: the built-in echo platform is nymgate's own endpoint.
    let gw = Gateway::start("[limits]\nmax_body_bytes = 1000\n").await;
    let mut h1 = gw.h1().await;
    let response = h1.send(get("/").method("POST").body(full(vec![b'x'; 1001])).unwrap()).await;
    assert_eq!(response.status(), 413);
    let mut h2 = gw.h2().await;
    let response =
        h2.send(Request::post("https://learn.example/").body(full(vec![b'x'; 5000])).unwrap()).await;
    assert_eq!(response.status(), 413);
    let mut h1 = gw.h1().await;
    let ok = h1.send(get("/").method("POST").body(full(vec![b'x'; 1000])).unwrap()).await;
    assert_eq!(echo(ok).await.body_bytes, 1000);
}

#[tokio::test]
async fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&upstream_config(&upstream.url(), "")).await;
    let mut raw = gw.raw().await;
    // The platform takes 300 ms; the client's close_notify and FIN arrive long before.
    write_all(&mut raw, b"GET /slow?ms=300 HTTP/1.1\r\nHost: learn.example\r\n\r\n").await;
    tokio::io::AsyncWriteExt::shutdown(&mut raw).await.unwrap();
    let (head, body) = read_response(&mut raw).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"slow done");
}

#[tokio::test]
async fn unreachable_platform_gets_502_and_slow_platform_504() {
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let gw = Gateway::start(&upstream_config(&format!("http://{closed}"), "")).await;
    let mut h1 = gw.h1().await;
    let response = h1.send(get("/").body(empty()).unwrap()).await;
    assert_eq!(response.status(), 502);
    let body = text(response).await;
    assert!(
        body.contains("reference:") && !body.contains("refused") && !body.contains(&closed.to_string()),
        "{body}"
    );

    let upstream = Upstream::start().await;
    let slow = format!("[upstream]\nurl = \"{}\"\nresponse_timeout = \"300ms\"\n", upstream.url());
    let gw = Gateway::start(&slow).await;
    let mut h1 = gw.h1().await;
    let response = h1.send(get("/slow?ms=3000").body(empty()).unwrap()).await;
    assert_eq!(response.status(), 504);
}

#[tokio::test]
async fn connections_over_the_cap_are_shed_with_503() {
    let gw = Gateway::start("[limits]\nmax_connections = 1\n").await;
    let mut first = gw.h1().await;
    assert_eq!(first.send(get("/").body(empty()).unwrap()).await.status(), 200);
    let mut second = gw.h1().await;
    let response = second.send(get("/").body(empty()).unwrap()).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    // The first connection is still served.
    assert_eq!(first.send(get("/").body(empty()).unwrap()).await.status(), 200);
    let (_, metrics) = gw.admin_get("/metrics").await;
    assert!(metrics.contains("nymgate_shed_connections_total 1"), "{metrics}");
}

#[tokio::test]
async fn slowloris_connection_is_closed_at_the_header_timeout() {
    let gw = Gateway::start("[limits]\nheader_read_timeout = \"500ms\"\n").await;
    let mut raw = gw.raw().await;
    // Half a request head, then nothing: the server must close, not wait forever.
    let reply =
        raw_exchange(&mut raw, b"GET / HTTP/1.1\r\nHost: learn.example\r\nX-Slow: ", Duration::from_secs(10))
            .await;
    assert!(!reply.contains("200 OK"), "{reply}");
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(1), raw.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "connection still open after the header timeout");
}

#[tokio::test]
async fn idle_connection_is_closed_at_the_idle_timeout() {
    let gw = Gateway::start("[limits]\nidle_timeout = \"300ms\"\n").await;
    let mut raw = gw.raw().await;
    let reply =
        raw_exchange(&mut raw, b"GET / HTTP/1.1\r\nHost: learn.example\r\n\r\n", Duration::from_secs(10))
            .await;
    // The response arrived, then the idle keep-alive connection was closed (the read loop ended).
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[tokio::test]
async fn certificate_reload_keeps_open_connections() {
    let gw = Gateway::start("").await;
    let mut before = gw.h1().await;
    assert_eq!(before.send(get("/").body(empty()).unwrap()).await.status(), 200);

    // A new CA and certificate replace the files; nymgate swaps them in.
    let new_dir = gw.dir.path().join("new");
    let fresh = nymgate::certs::generate_dev_certs(&new_dir, &["learn.example".to_owned()]).unwrap();
    std::fs::copy(&fresh.cert, gw.dir.path().join("certs/localhost.pem")).unwrap();
    std::fs::copy(&fresh.key, gw.dir.path().join("certs/localhost-key.pem")).unwrap();
    gw.server.reload_certs().unwrap();

    // The open connection keeps working.
    assert_eq!(before.send(get("/").body(empty()).unwrap()).await.status(), 200);
    // New handshakes present the new certificate: the old CA no longer verifies, the new one does.
    assert!(tls_connect(gw.addr(), &gw.ca, &[b"http/1.1"]).await.is_err());
    let mut after = H1::connect(gw.addr(), &fresh.ca_cert).await;
    assert_eq!(after.send(get("/").body(empty()).unwrap()).await.status(), 200);
}

#[tokio::test]
async fn a_broken_certificate_reload_keeps_the_old_certificate() {
    let gw = Gateway::start("").await;
    std::fs::write(gw.dir.path().join("certs/localhost.pem"), "not a certificate").unwrap();
    assert!(gw.server.reload_certs().is_err());
    let mut h1 = gw.h1().await;
    assert_eq!(h1.send(get("/").body(empty()).unwrap()).await.status(), 200);
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&upstream_config(&upstream.url(), "[limits]\nshutdown_grace = \"5s\"\n")).await;
    let addr = gw.addr();
    let mut h1 = gw.h1().await;
    let in_flight = tokio::spawn(async move {
        let response = h1.send(get("/slow?ms=600").body(empty()).unwrap()).await;
        (response.status(), text(response).await)
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let Gateway { server, dir: _dir, ca } = gw;
    let drained = server.shutdown().await;
    assert!(drained, "in-flight request was not drained");
    let (status, body) = in_flight.await.unwrap();
    assert_eq!((status.as_u16(), body.as_str()), (200, "slow done"));
    // After shutdown nothing accepts.
    assert!(tls_connect(addr, &ca, &[b"http/1.1"]).await.is_err());
}

#[tokio::test]
async fn admin_listener_reports_health_readiness_and_metrics() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&upstream_config(&upstream.url(), "")).await;
    let mut h1 = gw.h1().await;
    assert_eq!(h1.send(get("/echo").body(empty()).unwrap()).await.status(), 200);
    assert_eq!(gw.admin_get("/healthz").await.0, 200);
    let (status, ready) = gw.admin_get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert!(ready.contains("upstream: reachable"));
    let (_, metrics) = gw.admin_get("/metrics").await;
    for expected in [
        "nymgate_requests_total{route=\"proxy\",status=\"200\"} 1",
        "nymgate_upstream_duration_seconds_count 1",
        "nymgate_open_connections 1",
        "nymgate_tls_handshake_failures_total",
    ] {
        assert!(metrics.contains(expected), "{expected} missing:\n{metrics}");
    }
    // The admin endpoints are not on the public listener.
    let seen = h1.send(get("/metrics").body(empty()).unwrap()).await;
    assert!(!text(seen).await.contains("nymgate_requests_total"));
}

/// The metrics say what format they are in: OpenMetrics 1.0 (its `# EOF`, counters typed
/// without `_total`), not Prometheus text 0.0.4, whose parser would read every counter as
/// `unknown`.
/// `/metrics` is labelled as what it is, by the scraper's `Accept` (docs/METRICS.md): the
/// OpenMetrics a scraper asks for, else Prometheus text 0.0.4 (tests/metrics.rs parses both
/// with the real parsers).
#[tokio::test]
async fn metrics_are_labelled_as_the_format_they_are_in() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gw = Gateway::start("").await;
    let scrape = |accept: &'static str| {
        let addr = gw.server.admin_addr;
        async move {
            let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request =
                format!("GET /metrics HTTP/1.1\r\nHost: admin\r\n{accept}Connection: close\r\n\r\n");
            tcp.write_all(request.as_bytes()).await.unwrap();
            let mut reply = String::new();
            tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read_to_string(&mut reply))
                .await
                .unwrap()
                .unwrap();
            let (head, body) = reply.split_once("\r\n\r\n").unwrap();
            (head.to_ascii_lowercase(), body.to_owned())
        }
    };
    let version = format!("nymgate_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
    let (head, body) = scrape("Accept: application/openmetrics-text; version=1.0.0\r\n").await;
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{head}"
    );
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    assert!(body.contains("# TYPE nymgate_tls_handshake_failures counter"), "{body}");
    assert!(body.contains(&version), "{body}");
    let (head, body) = scrape("").await;
    assert!(head.contains("content-type: text/plain; version=0.0.4"), "{head}");
    assert!(!body.contains("# EOF"), "{body}");
    assert!(body.contains("# TYPE nymgate_tls_handshake_failures_total counter"), "{body}");
    assert!(body.contains(&version), "{body}");
}

#[tokio::test]
async fn readiness_fails_when_the_platform_is_down() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let gw = Gateway::start(&upstream_config(&format!("http://{closed}"), "")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = gw.admin_get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("upstream: unreachable"));
}

#[tokio::test]
async fn plain_http_only_redirects_to_https() {
    let gw = Gateway::start("redirect_listen = \"127.0.0.1:0\"\n").await;
    let plain = gw.server.redirect_addr.unwrap();
    let mut tcp = tokio::net::TcpStream::connect(plain).await.unwrap();
    let reply = raw_exchange(
        &mut tcp,
        b"POST /login?x=1 HTTP/1.1\r\nHost: learn.example:8080\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let location = format!("location: https://learn.example:{}/login?x=1\r\n", gw.addr().port());
    assert!(reply.starts_with("HTTP/1.1 308"), "{reply}");
    assert!(reply.to_ascii_lowercase().contains(&location), "{reply}");

    let mut tcp = tokio::net::TcpStream::connect(plain).await.unwrap();
    let reply = raw_exchange(
        &mut tcp,
        b"GET / HTTP/1.1\r\nHost: evil/..\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    // A redirect goes only to one of nymgate's public hosts, never to one the client names.
    let mut tcp = tokio::net::TcpStream::connect(plain).await.unwrap();
    let reply = raw_exchange(
        &mut tcp,
        b"GET /login HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 421") && !reply.contains("evil.example"), "{reply}");
    assert_eq!(plain_get(plain, "/healthz").await.0, 200);
}

/// curl, an independent HTTP/2 and TLS implementation (nghttp2 and OpenSSL), as the client.
#[tokio::test]
async fn curl_speaks_http2_and_http1_through_nymgate() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&upstream_config(&upstream.url(), "")).await;
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let url = format!("https://localhost:{}/echo?v={version}", gw.addr().port());
        let ca = gw.ca.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["-sS", "--fail", flag, "--cacert"])
                .arg(&ca)
                .args(["-H", "X-Forwarded-For: 6.6.6.6", "-w", "\n%{http_version}", &url])
                .output()
                .expect("curl is installed by tests/run.sh")
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8(out.stdout).unwrap();
        let (json, used) = stdout.rsplit_once('\n').unwrap();
        assert_eq!(used, version);
        let seen: nymgate::echo::Echo = serde_json::from_str(json).unwrap();
        assert_eq!(header(&seen, "x-forwarded-for"), Some("127.0.0.0"));
        assert_eq!(seen.query.as_deref(), Some(format!("v={version}").as_str()));
    }
}

// Parking of idle HTTP/1.1 keep-alive connections (src/conn_io.rs): between requests a
// connection leaves hyper and keeps only its TLS session. These tests hold that it comes back
// for the next request, and that a pause inside a request never looks like "between requests".

/// Park after 50 ms of quiet instead of the default second.
const PARK_SOON: &str = "[limits]\npark_after = \"50ms\"\n";

/// Reads one HTTP/1.1 response (Content-Length or chunked) as (head, body).
async fn read_response<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> (String, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed before a response head: {:?}", String::from_utf8_lossy(&data));
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut rest = data[head_end..].to_vec();
    let field = |name: &str| {
        head.lines().find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_owned())
        })
    };
    if let Some(length) = field("content-length") {
        let length: usize = length.parse().unwrap();
        while rest.len() < length {
            read_more(stream, &mut rest).await;
        }
        assert_eq!(rest.len(), length, "bytes after the response: a second answer nobody asked for");
        return (head, rest);
    }
    assert_eq!(field("transfer-encoding").as_deref(), Some("chunked"), "{head}");
    while !rest.ends_with(b"0\r\n\r\n") {
        read_more(stream, &mut rest).await;
    }
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + rest[at..].windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&rest[at..line_end]).unwrap(), 16).unwrap();
        if size == 0 {
            return (head, body);
        }
        body.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
        at = line_end + 2 + size + 2;
    }
}

async fn read_more<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, into: &mut Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(n > 0, "connection closed inside a response body");
    into.extend_from_slice(&buf[..n]);
}

async fn write_all<S: tokio::io::AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) {
    use tokio::io::AsyncWriteExt;
    stream.write_all(bytes).await.unwrap();
    stream.flush().await.unwrap();
}

async fn parked_connections(gw: &Gateway) -> u64 {
    let (_, metrics) = gw.admin_get("/metrics").await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("nymgate_parked_connections "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no nymgate_parked_connections in:\n{metrics}"))
}

/// Waits (bounded) until `want` connections are parked.
async fn until_parked(gw: &Gateway, want: u64) {
    for _ in 0..100 {
        if parked_connections(gw).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("parked connections never reached {want} (now {})", parked_connections(gw).await);
}

#[tokio::test]
async fn idle_keep_alive_connections_park_and_serve_their_next_request() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&upstream_config(&upstream.url(), PARK_SOON)).await;
    // A connection that has not sent anything yet parks too.
    let _quiet = gw.raw().await;
    until_parked(&gw, 1).await;

    let mut raw = gw.raw().await;
    for round in 0..3 {
        write_all(
            &mut raw,
            format!("GET /echo?round={round} HTTP/1.1\r\nHost: learn.example\r\n\r\n").as_bytes(),
        )
        .await;
        let (head, body) = read_response(&mut raw).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let seen: nymgate::echo::Echo = serde_json::from_slice(&body).unwrap();
        assert_eq!(seen.query.as_deref(), Some(format!("round={round}").as_str()));
        // Answered and quiet: this connection parks as well.
        until_parked(&gw, 2).await;
    }
    assert_eq!(upstream.completed(), 3);
}

#[tokio::test]
async fn requests_split_by_pauses_are_never_taken_for_idle_connections() {
    let upstream = Upstream::start().await;
    // Pauses (150 ms) three times longer than the quiet time before parking.
    let gw = Gateway::start(&upstream_config(&upstream.url(), PARK_SOON)).await;
    let mut raw = gw.raw().await;
    until_parked(&gw, 1).await;
    let pause = || tokio::time::sleep(Duration::from_millis(150));

    // A head cut in the middle of a field name, and a body in two pieces.
    let pieces: [&[u8]; 4] = [
        b"POST /upload HTTP/1.1\r\nHost: learn.example\r\nContent-",
        b"Length: 10\r\n\r\n",
        b"hello",
        b"world",
    ];
    let (last, cut) = pieces.split_last().unwrap();
    for piece in cut {
        write_all(&mut raw, piece).await;
        pause().await;
        assert_eq!(parked_connections(&gw).await, 0, "parked inside a request");
    }
    write_all(&mut raw, last).await;
    let (head, body) = read_response(&mut raw).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let sum: u64 = b"helloworld".iter().map(|b| u64::from(*b)).sum();
    assert_eq!(String::from_utf8(body).unwrap(), format!("10 {sum}"));

    // A chunked body whose last chunk and final CRLF come apart.
    let pieces: [&[u8]; 3] = [
        b"POST /upload HTTP/1.1\r\nHost: learn.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"0\r\n",
        b"\r\n",
    ];
    for piece in pieces {
        pause().await;
        write_all(&mut raw, piece).await;
    }
    let (_, body) = read_response(&mut raw).await;
    let sum: u64 = b"hello".iter().map(|b| u64::from(*b)).sum();
    assert_eq!(String::from_utf8(body).unwrap(), format!("5 {sum}"));

    // Two pipelined requests, the second one finished after a pause.
    write_all(&mut raw, b"GET /echo?n=a HTTP/1.1\r\nHost: learn.example\r\n\r\nGET /echo?n=b HTTP/1.1\r\nHo")
        .await;
    pause().await;
    write_all(&mut raw, b"st: learn.example\r\n\r\n").await;
    for expected in ["n=a", "n=b"] {
        let (head, body) = read_response(&mut raw).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let seen: nymgate::echo::Echo = serde_json::from_slice(&body).unwrap();
        assert_eq!(seen.query.as_deref(), Some(expected));
    }
    until_parked(&gw, 1).await;
    assert_eq!(upstream.completed(), 4);
}

#[tokio::test]
async fn a_busy_connection_keeps_its_http_state_until_it_is_quiet() {
    let upstream = Upstream::start().await;
    // A quiet time of 1 s: requests every 100 ms never let the connection park.
    let gw = Gateway::start(&upstream_config(&upstream.url(), "[limits]\npark_after = \"1s\"\n")).await;
    let mut raw = gw.raw().await;
    for round in 0..5 {
        write_all(
            &mut raw,
            format!("GET /echo?n={round} HTTP/1.1\r\nHost: learn.example\r\n\r\n").as_bytes(),
        )
        .await;
        let (head, _) = read_response(&mut raw).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(parked_connections(&gw).await, 0, "parked while busy");
    }
    // Quiet for longer than a second: it parks.
    until_parked(&gw, 1).await;
}

#[tokio::test]
async fn shutdown_closes_parked_connections_with_close_notify() {
    let gw = Gateway::start(PARK_SOON).await;
    let mut raw = gw.raw().await;
    write_all(&mut raw, b"GET / HTTP/1.1\r\nHost: learn.example\r\n\r\n").await;
    let (head, _) = read_response(&mut raw).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    until_parked(&gw, 1).await;
    let Gateway { server, dir: _dir, ca: _ca } = gw;
    assert!(server.shutdown().await, "a parked connection held up the drain");
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    // A clean TLS end (close_notify, then EOF) reads as Ok(0); a bare reset would be an error.
    let end = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf)).await;
    assert!(matches!(end, Ok(Ok(0))), "{end:?}");
}

/// With no `server.public_hosts`, the public hosts are the names of the certificate in service:
/// a reloaded certificate without a name takes that name out of service (421), one with a new
/// name adds it, without a config reload.
#[tokio::test]
async fn public_hosts_follow_the_certificate_in_service() {
    let gw = Gateway::start("").await;
    let mut h1 = gw.h1().await;
    assert_eq!(h1.send(get("/").body(empty()).unwrap()).await.status(), 200);
    let renamed =
        nymgate::certs::generate_dev_certs(&gw.dir.path().join("new"), &["school.example".to_owned()])
            .unwrap();
    std::fs::copy(&renamed.cert, gw.dir.path().join("certs/localhost.pem")).unwrap();
    std::fs::copy(&renamed.key, gw.dir.path().join("certs/localhost-key.pem")).unwrap();
    gw.server.reload_certs().unwrap();
    assert_eq!(h1.send(get("/").body(empty()).unwrap()).await.status(), 421);
    let request = Request::get("/").header("host", "school.example").body(empty()).unwrap();
    assert_eq!(h1.send(request).await.status(), 200);
}

/// `server.public_hosts`, when set, is the whole list: the certificate's names are not added.
#[tokio::test]
async fn configured_public_hosts_are_the_whole_list() {
    let gw = Gateway::start("public_hosts = [\"*.school.example\"]\n").await;
    let mut h1 = gw.h1().await;
    assert_eq!(h1.send(get("/").body(empty()).unwrap()).await.status(), 421);
    let request = Request::get("/").header("host", "a.school.example").body(empty()).unwrap();
    assert_eq!(h1.send(request).await.status(), 200);
}
