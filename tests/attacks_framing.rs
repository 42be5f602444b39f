//! issue 27: one framing judgement for every request on a connection, and the same request
//! checks for HTTP/2 as for HTTP/1.1. Raw bytes over TLS to a started nymgate with a real
//! platform behind it; each test checks what the platform received.

mod common;

use std::time::Duration;

use common::*;
use http::{Method, Request};

const SMUGGLING: &str = "POST /echo HTTP/1.1\r\nHost: learn.example\r\nContent-Length: 41\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: learn.example\r\n\r\n";

async fn started() -> (Upstream, Gateway) {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&format!("[upstream]\nurl = \"{}\"\n", upstream.url())).await;
    (upstream, gw)
}

/// The status line of each response in `reply`, in order.
fn statuses(reply: &str) -> Vec<&str> {
    reply.match_indices("HTTP/1.1 ").map(|(at, _)| &reply[at + 9..at + 12]).collect()
}

/// Sends `bytes` on one connection and reads until nymgate closes it.
async fn exchange(gw: &Gateway, bytes: &[u8]) -> String {
    let mut tls = gw.raw().await;
    raw_exchange(&mut tls, bytes, Duration::from_secs(10)).await
}

/// A request on a fresh connection is served: the refusals were not a broken platform.
async fn still_served(gw: &Gateway) {
    let mut h1 = gw.h1().await;
    assert_eq!(h1.send(get("/echo").body(empty()).unwrap()).await.status(), 200);
}

#[tokio::test]
async fn framing_check_survives_an_upgrade_request() {
    let (upstream, gw) = started().await;
    // The platform answers the upgrade request with 200, not 101: the connection stays HTTP/1.1
    // and the next request must be judged as every other.
    let upgrade = "GET /echo HTTP/1.1\r\nHost: learn.example\r\nUpgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let reply = exchange(&gw, format!("{upgrade}{SMUGGLING}").as_bytes()).await;
    assert_eq!(statuses(&reply), ["200", "400"], "{reply:?}");
    assert_eq!(upstream.completed(), 1, "the smuggling request reached the platform");
    still_served(&gw).await;
    assert_eq!(upstream.completed(), 2);
}

#[tokio::test]
async fn framing_check_survives_a_bare_lf_head() {
    let (upstream, gw) = started().await;
    for bare in
        ["GET /echo HTTP/1.1\nHost: learn.example\n\n", "GET /echo HTTP/1.1\r\nHost: learn.example\r\n\n"]
    {
        let reply = exchange(&gw, format!("{bare}{SMUGGLING}").as_bytes()).await;
        assert_eq!(statuses(&reply), ["400"], "{bare:?}: {reply:?}");
    }
    assert_eq!(upstream.completed(), 0, "a request after a bare-LF head reached the platform");
    still_served(&gw).await;
}

#[tokio::test]
async fn bare_lf_request_head_is_refused() {
    let (upstream, gw) = started().await;
    for head in [
        "GET /echo HTTP/1.1\nHost: learn.example\n\n",
        "GET /echo HTTP/1.1\nHost: learn.example\r\n\r\n",
        "GET /echo HTTP/1.1\r\nHost: learn.example\nX-A: 1\r\n\r\n",
        "GET /echo HTTP/1.1\r\nHost: learn.example\r\n\n",
        "\nGET /echo HTTP/1.1\r\nHost: learn.example\r\n\r\n",
        "GET /echo HTTP/1.1\r\nHost: learn.example\rX-A: 1\r\n\r\n",
        "POST /echo HTTP/1.1\nHost: learn.example\nContent-Length: 5\n\nhello",
    ] {
        let reply = exchange(&gw, head.as_bytes()).await;
        assert_eq!(statuses(&reply), ["400"], "{head:?}: {reply:?}");
    }
    assert_eq!(upstream.completed(), 0);
    still_served(&gw).await;
}

#[tokio::test]
async fn unfollowable_bytes_poison_the_connection() {
    let (upstream, gw) = started().await;
    // Bodies hyper reads but the watcher does not follow: a NUL in a chunk extension, a bare LF
    // in the trailers. The request itself was framed cleanly and is served; nothing after it
    // on the connection is, since no one can say where the next request starts.
    for body in ["1;a\0b\r\nx\r\n0\r\n\r\n", "0\r\nX-A: 1\nX-B: 2\r\n\r\n"] {
        let first =
            format!("POST /echo HTTP/1.1\r\nHost: learn.example\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
        let next = "GET /echo HTTP/1.1\r\nHost: learn.example\r\n\r\n";
        let reply = exchange(&gw, format!("{first}{next}").as_bytes()).await;
        let statuses = statuses(&reply);
        assert_eq!(statuses.last(), Some(&"400"), "{body:?}: {reply:?}");
        assert!(statuses.len() <= 2 && !statuses[1..].contains(&"200"), "{body:?}: {reply:?}");
    }
    let served_before = upstream.completed();
    assert!(served_before <= 2, "{served_before}");
    // A head longer than the watcher follows is hyper's 431, and the connection ends with it.
    let long = format!("GET /echo HTTP/1.1\r\nHost: learn.example\r\nX-A: {}\r\n\r\n", "a".repeat(70_000));
    let reply =
        exchange(&gw, format!("{long}GET /echo HTTP/1.1\r\nHost: learn.example\r\n\r\n").as_bytes()).await;
    assert!(!statuses(&reply).contains(&"200"), "{reply:?}");
    assert_eq!(upstream.completed(), served_before);
    still_served(&gw).await;
}

#[tokio::test]
async fn h2_max_headers_applies() {
    let upstream = Upstream::start().await;
    let gw =
        Gateway::start(&format!("[upstream]\nurl = \"{}\"\n[limits]\nmax_headers = 20\n", upstream.url()))
            .await;
    let mut h2 = gw.h2().await;
    let mut many = get("/echo");
    for i in 0..30 {
        many = many.header(format!("x-field-{i}"), "1");
    }
    assert_eq!(h2.send(many.body(empty()).unwrap()).await.status(), 431);
    // Cookie crumbs count as the one Cookie line the same browser sends over HTTP/1.1.
    let mut crumbs = get("/echo");
    for i in 0..30 {
        crumbs = crumbs.header("cookie", format!("c{i}=1"));
    }
    assert_eq!(h2.send(crumbs.body(empty()).unwrap()).await.status(), 200);
    assert_eq!(upstream.completed(), 1, "the request over the limit reached the platform");
}

#[tokio::test]
async fn h2_cookie_crumbs_are_joined() {
    let (_upstream, gw) = started().await;
    let mut h2 = gw.h2().await;
    let request = get("/echo").header("cookie", "a=1").header("cookie", "b=2").header("cookie", "c=3");
    let echo = echo(h2.send(request.body(empty()).unwrap()).await).await;
    // `header` asserts the field appears exactly once.
    assert_eq!(header(&echo, "cookie"), Some("a=1; b=2; c=3"));
}

#[tokio::test]
async fn h2_repeated_content_length_is_refused() {
    let (upstream, gw) = started().await;
    let mut h2 = gw.h2().await;
    let request = Request::post("/echo")
        .header("host", "learn.example")
        .header("content-length", "5")
        .header("content-length", "5")
        .body(full("hello"))
        .unwrap();
    assert_eq!(h2.send(request).await.status(), 400);
    let request = Request::post("/echo").header("host", "learn.example").body(full("hello")).unwrap();
    assert_eq!(h2.send(request).await.status(), 200);
    assert_eq!(upstream.completed(), 1, "the request with two Content-Lengths reached the platform");
}

#[tokio::test]
async fn asterisk_and_connect_targets_are_refused_on_both_versions() {
    let (upstream, gw) = started().await;
    for raw in [
        "OPTIONS * HTTP/1.1\r\nHost: learn.example\r\n\r\n",
        "GET * HTTP/1.1\r\nHost: learn.example\r\n\r\n",
        // nymgate's own endpoints too: the check comes before any routing.
        "CONNECT /nymgate/jwks HTTP/1.1\r\nHost: learn.example\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: learn.example\r\n\r\nGET /nymgate/jwks HTTP/1.1\r\nHost: learn.example\r\n\r\n",
        "CONNECT learn.example:443 HTTP/1.1\r\nHost: learn.example:443\r\n\r\n",
        "CONNECT learn.example:443 HTTP/1.1\r\nHost: learn.example:443\r\n\r\nGET /echo HTTP/1.1\r\nHost: learn.example\r\n\r\n",
    ] {
        let reply = exchange(&gw, raw.as_bytes()).await;
        assert_eq!(statuses(&reply), ["400"], "{raw:?}: {reply:?}");
    }
    let mut h2 = gw.h2().await;
    let star = Request::builder().method(Method::OPTIONS).uri("*").header("host", "learn.example");
    assert_eq!(h2.send(star.body(empty()).unwrap()).await.status(), 400);
    let connect = Request::builder().method(Method::CONNECT).uri("learn.example:443");
    assert_eq!(h2.send(connect.body(empty()).unwrap()).await.status(), 400);
    assert_eq!(upstream.completed(), 0);
    still_served(&gw).await;
}
