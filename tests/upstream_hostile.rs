//! A hostile or broken platform against nymgate's platform client (src/upstream), one test per
//! class of issue 27: requests sent twice, answers reaching the wrong client, platform
//! connections without a bound, interim responses without end. Each platform is scripted on a
//! loopback listener.
mod common;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use nymgate::upstream::client::{may_retry, SendError};
use nymgate::upstream::ClientPools;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::platform::{fetch, get, read_head, scripted, upstream};

/// Answers the first request of its first connection, then closes that connection as the next
/// request arrives (unanswered); later connections answer every request with their number.
async fn closing_after_one() -> (String, Arc<AtomicUsize>) {
    scripted(|n, mut tcp| async move {
        while read_head(&mut tcp).await.is_some() {
            let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{n}");
            tcp.write_all(reply.as_bytes()).await.unwrap();
            if n == 0 {
                // Reads the next head, then drops the connection without a word.
                let _ = read_head(&mut tcp).await;
                return;
            }
        }
    })
    .await
}

fn bodyless(method: &Method) -> (http::request::Parts, nymgate::body::Body) {
    let (parts, ()) =
        Request::builder().method(method.clone()).uri("/").header("host", "x").body(()).unwrap().into_parts();
    (parts, nymgate::body::empty())
}

#[tokio::test]
async fn bodyless_post_on_a_closed_pooled_connection_is_not_retried() {
    // Methods as a client may spell them; only the four safe ones, spelled exactly, go again.
    for name in [
        "POST", "DELETE", "PUT", "PATCH", "LOCK", "PROPFIND", "get", "Get", "head", "GET", "HEAD", "OPTIONS",
        "TRACE",
    ] {
        let method = Method::from_bytes(name.as_bytes()).unwrap();
        let (url, connections) = closing_after_one().await;
        let upstream = upstream(&url, "");
        assert_eq!(fetch(&upstream, get("/")).await.2, "0");
        let (parts, body) = bodyless(&method);
        let outcome = upstream.client.send(parts, body).await;
        if may_retry(&method) {
            let response = outcome.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(response.status(), StatusCode::OK, "{name}");
            assert_eq!(connections.load(Ordering::SeqCst), 2, "{name} was sent again on a new connection");
        } else {
            let error = outcome.expect_err(name);
            assert!(!matches!(error, SendError::Saturated), "{name}: {error}");
            // Give a retry, had there been one, time to connect.
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert_eq!(connections.load(Ordering::SeqCst), 1, "{name} was sent twice");
        }
    }
    assert!(may_retry(&Method::GET) && !may_retry(&Method::DELETE) && !may_retry(&Method::PUT));
}

proptest! {
    /// Every method token a client can send, in any letter case: only GET, HEAD, OPTIONS and
    /// TRACE spelled exactly (methods are case-sensitive, RFC 9110 §9.1) may be sent twice.
    #[test]
    fn only_the_safe_methods_spelled_exactly_are_ever_retried(
        base in prop::sample::select(vec![
            "GET", "HEAD", "OPTIONS", "TRACE", "POST", "PUT", "DELETE", "PATCH", "CONNECT",
            "LOCK", "UNLOCK", "MKCOL", "COPY", "MOVE", "PROPFIND", "PROPPATCH", "SEARCH", "QUERY",
        ]),
        flips in prop::collection::vec(any::<bool>(), 10),
        suffix in "[!#$%&'*+.^_`|~0-9A-Za-z-]{0,3}",
    ) {
        let spelled: String = base
            .chars()
            .zip(flips.iter().cycle())
            .map(|(c, &flip)| if flip { c.to_ascii_lowercase() } else { c })
            .chain(suffix.chars())
            .collect();
        let method = Method::from_bytes(spelled.as_bytes()).unwrap();
        let safe = ["GET", "HEAD", "OPTIONS", "TRACE"].contains(&spelled.as_str());
        prop_assert_eq!(may_retry(&method), safe, "{}", spelled);
    }
}

#[tokio::test]
async fn platform_answering_twice_never_reaches_the_next_client() {
    // The second answer to the first request comes in the same write, split across the end of
    // the first, or later while the connection is idle in the pool.
    let first = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst";
    let late = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nLATE";
    let both = format!("{first}{late}");
    for (split, pause) in
        [(both.len(), 0), (first.len() + 3, 20), (first.len(), 0), (first.len(), 20), (first.len(), 80)]
    {
        let both = both.clone();
        let (url, connections) = scripted(move |n, mut tcp| {
            let both = both.clone();
            async move {
                let _ = read_head(&mut tcp).await;
                if n > 0 {
                    let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh").await;
                    let _ = read_head(&mut tcp).await;
                    return;
                }
                let _ = tcp.write_all(&both.as_bytes()[..split]).await;
                tokio::time::sleep(Duration::from_millis(pause)).await;
                let _ = tcp.write_all(&both.as_bytes()[split..]).await;
                // Whatever comes next on this connection is answered with nothing more.
                let _ = read_head(&mut tcp).await;
            }
        })
        .await;
        let upstream = upstream(&url, "");
        assert_eq!(fetch(&upstream, get("/")).await.2, "first");
        // The next client's request comes after the late answer has arrived.
        tokio::time::sleep(Duration::from_millis(pause + 100)).await;
        let (status, _, body) = fetch(&upstream, get("/")).await;
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"fresh"[..]), "split {split}, pause {pause} ms");
        assert_eq!(connections.load(Ordering::SeqCst), 2, "split {split}, pause {pause} ms");
    }
}

#[test]
fn bytes_while_idle_close_the_pooled_connection() {
    // A platform on a thread of its own, and nymgate's client on a one-thread runtime that is
    // not given a turn of its event loop between two requests: what the runtime last heard of
    // the pooled socket ("nothing to read") is stale when the next request takes it, as on a
    // busy worker. The connection must still be found to have spoken.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (go, late) = mpsc::channel::<()>();
    let (sent, late_sent) = mpsc::channel::<()>();
    let platform = std::thread::spawn(move || {
        let head = |tcp: &mut std::net::TcpStream| {
            let mut buf = Vec::new();
            let mut byte = [0u8; 1];
            while !buf.ends_with(b"\r\n\r\n") {
                if tcp.read(&mut byte).unwrap_or(0) == 0 {
                    return;
                }
                buf.push(byte[0]);
            }
        };
        let (mut first, _) = listener.accept().unwrap();
        head(&mut first);
        first.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst").unwrap();
        late.recv().unwrap();
        first.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nLATE").unwrap();
        sent.send(()).unwrap();
        let (mut second, _) = listener.accept().unwrap();
        head(&mut second);
        second.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh").unwrap();
        head(&mut second);
    });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let upstream = upstream(&url, "");
        assert_eq!(fetch(&upstream, get("/")).await.2, "first");
        assert_eq!(upstream.client.pool().idle_count(), 1);
        // Blocking waits: the runtime gets no turn until the next request takes the connection.
        go.send(()).unwrap();
        late_sent.recv().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let (_, _, body) = fetch(&upstream, get("/")).await;
        assert_eq!(&body[..], b"fresh", "the late bytes were read as the next request's answer");
    });
    drop(runtime);
    platform.join().unwrap();
}

#[tokio::test]
async fn platform_flooding_1xx_is_cut_off() {
    let (url, _) = scripted(|_, mut tcp| async move {
        let _ = read_head(&mut tcp).await;
        // 100 Continue without end, as fast as nymgate reads.
        while tcp.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_ok() {}
    })
    .await;
    let upstream = upstream(&url, "");
    let (parts, body) = get("/");
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(5), upstream.client.send(parts, body)).await;
    let error = outcome.expect("cut off, not waited on").unwrap_err();
    assert!(error.to_string().contains("interim (1xx)"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(upstream.client.pool().idle_count(), 0);

    // Large 103s: the bytes bound, before the count.
    let (url, _) = scripted(|_, mut tcp| async move {
        let _ = read_head(&mut tcp).await;
        let hint = format!("HTTP/1.1 103 Early Hints\r\nLink: <{}>\r\n\r\n", "a".repeat(30_000));
        for _ in 0..4 {
            if tcp.write_all(hint.as_bytes()).await.is_err() {
                return;
            }
        }
        let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
    })
    .await;
    let upstream = common::platform::upstream(&url, "");
    let (parts, body) = get("/");
    let error = upstream.client.send(parts, body).await.unwrap_err();
    assert!(error.to_string().contains("interim (1xx)"), "{error}");
}

/// Stalls (reads the head, never answers) on the first `stalled` connections that send a
/// request; answers the others. Keeps every connection open until nymgate closes it. Counts the
/// connections that carried a request (nymgate's readiness probe connects without one).
async fn stalling(stalled: usize) -> (String, Arc<AtomicUsize>) {
    let carried = Arc::new(AtomicUsize::new(0));
    let counter = carried.clone();
    let (url, _) = scripted(move |_, mut tcp| {
        let counter = counter.clone();
        async move {
            if read_head(&mut tcp).await.is_none() {
                return;
            }
            let stall = counter.fetch_add(1, Ordering::SeqCst) < stalled;
            loop {
                if !stall {
                    let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
                }
                if read_head(&mut tcp).await.is_none() {
                    return;
                }
            }
        }
    })
    .await;
    (url, carried)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_connections_never_exceed_the_bound() {
    let (url, accepted) = stalling(4).await;
    let upstream = Arc::new(upstream(&url, "max_connections = 4\nqueue_timeout = \"300ms\""));
    let set = upstream.client.pool_set().clone();
    let mut requests = Vec::new();
    for _ in 0..40 {
        let upstream = upstream.clone();
        requests.push(tokio::spawn(async move {
            let (parts, body) = get("/");
            tokio::time::timeout(Duration::from_secs(2), upstream.client.send(parts, body)).await
        }));
    }
    let mut saturated = 0;
    for request in requests {
        match request.await.unwrap() {
            Ok(Err(SendError::Saturated)) => saturated += 1,
            Err(_stalled) => {}
            Ok(other) => panic!("{:?}", other.map(|r| r.status())),
        }
        assert!(set.open() <= 4 && accepted.load(Ordering::SeqCst) <= 4);
    }
    assert_eq!(saturated, 36, "all but the four in flight waited and were refused");
    assert_eq!(accepted.load(Ordering::SeqCst), 4);
    // The stalled requests were dropped: their connections closed and gave their places back.
    assert_eq!(set.open(), 0);
    assert_eq!(set.waiting(), 0);
    assert_eq!(fetch(&upstream, get("/")).await.2, "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 5);

    // At the bound, a connection coming back to the pool goes to a waiting request: a full
    // worker reuses its connections instead of being refused.
    let mut requests = Vec::new();
    for _ in 0..32 {
        let upstream = upstream.clone();
        requests.push(tokio::spawn(async move { fetch(&upstream, get("/")).await.2 }));
    }
    for request in requests {
        assert_eq!(request.await.unwrap(), "ok");
    }
    assert!(accepted.load(Ordering::SeqCst) <= 5 + 4, "{}", accepted.load(Ordering::SeqCst));
    assert!(set.open() <= 4);
}

#[tokio::test]
async fn requests_over_the_platform_bound_get_503_after_the_deadline() {
    let (url, accepted) = stalling(usize::MAX).await;
    let gw = common::Gateway::start(&format!(
        "workers = 1\n[upstream]\nurl = \"{url}\"\nmax_connections = 2\nqueue_timeout = \"300ms\"\nresponse_timeout = \"20s\"\n"
    ))
    .await;
    let mut h2 = gw.h2().await;
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let request = common::get("/stall").body(common::empty()).unwrap();
        let sender = h2.sender.clone();
        stalled.push(tokio::spawn(async move {
            let mut sender = sender;
            sender.ready().await.unwrap();
            sender.send_request(request).await
        }));
    }
    while accepted.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..3 {
        let started = Instant::now();
        let response = h2.send(common::get("/more").body(common::empty()).unwrap()).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get("retry-after").unwrap(), "1");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(250) && waited < Duration::from_secs(10), "{waited:?}");
        let _ = response.into_body().collect().await;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "no platform connection past the bound");
    let (_, metrics) = gw.admin_get("/metrics").await;
    assert!(metrics.contains("nymgate_upstream_connections 2"), "{metrics}");
    assert!(
        metrics.contains("nymgate_rejected_requests_total{reason=\"upstream_saturated\"} 3"),
        "{metrics}"
    );
    for request in stalled {
        request.abort();
    }
}

#[tokio::test]
async fn pool_per_client_connection_keeps_answers_apart() {
    // Answers a request, then answers it again once the next request has gone out on the same
    // connection: HTTP/1.1 can't tell that second answer from the next request's.
    let closed = Arc::new(AtomicUsize::new(0));
    let seen = closed.clone();
    let (url, accepted) = scripted(move |n, mut tcp| {
        let closed = seen.clone();
        async move {
            let _ = read_head(&mut tcp).await;
            let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nfirst-{n}");
            let _ = tcp.write_all(reply.as_bytes()).await;
            match read_head(&mut tcp).await {
                Some(_) => {
                    let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nLATE").await;
                    let mut rest = Vec::new();
                    let _ = tcp.read_to_end(&mut rest).await;
                }
                None => {
                    closed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    })
    .await;
    let upstream = upstream(&url, "pool_per_client_connection = true");
    let (pupil_a, pupil_b) = (ClientPools::default(), ClientPools::default());
    let send = |pools: &ClientPools| {
        let (parts, body) = get("/");
        let pools = pools.clone();
        let upstream = &upstream;
        async move {
            let response = upstream.send(&pools, parts, body).await.unwrap();
            response.into_body().collect().await.unwrap().to_bytes()
        }
    };
    assert_eq!(send(&pupil_a).await, "first-0");
    assert_eq!(pupil_a.pool_for(&upstream).unwrap().idle_count(), 1, "kept for pupil A");
    assert_eq!(send(&pupil_b).await, "first-1", "pupil B never gets pupil A's connection");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    assert_eq!(upstream.client.pool().idle_count(), 0, "nothing in the worker's pool");

    // Pupil A's connection ends: its platform connection closes with it.
    drop(pupil_a);
    let deadline = Instant::now() + Duration::from_secs(5);
    while closed.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the platform connection outlived its client connection");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn pool_per_client_connection_through_the_gateway() {
    // The same platform behind a running nymgate: two client connections, two platform ones.
    let (url, accepted) = scripted(|n, mut tcp| async move {
        let _ = read_head(&mut tcp).await;
        let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nfirst-{n}");
        let _ = tcp.write_all(reply.as_bytes()).await;
        if read_head(&mut tcp).await.is_some() {
            let _ = tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nLATE").await;
            let mut rest = Vec::new();
            let _ = tcp.read_to_end(&mut rest).await;
        }
    })
    .await;
    let gw = common::Gateway::start(&format!(
        "workers = 1\n[upstream]\nurl = \"{url}\"\npool_per_client_connection = true\n"
    ))
    .await;
    let mut a = gw.h1().await;
    let first = common::text(a.send(common::get("/").body(common::empty()).unwrap()).await).await;
    let mut b = gw.h2().await;
    let second = common::text(b.send(common::get("/").body(common::empty()).unwrap()).await).await;
    // Numbered by the platform's accepts (nymgate's readiness probe takes some numbers too).
    assert!(first.starts_with("first-") && second.starts_with("first-"), "{first} {second}");
    assert_ne!(first, second, "pupil B's request went on pupil A's platform connection");
    assert!(accepted.load(Ordering::SeqCst) >= 2);
}
