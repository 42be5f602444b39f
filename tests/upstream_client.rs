//! nymgate's HTTP/1.1 client to the platform (src/upstream/client.rs), against a real nginx (the
//! common platform server), the tests' hyper upstream, and scripted platforms for what real
//! servers do only by accident (closing a pooled connection as a request arrives, answering
//! before the body, broken framing).
mod common;

use std::io::Read;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::nginx::Nginx;
use common::platform::{fetch, get, read_head, scripted, streamed, upstream};

#[tokio::test]
async fn nginx_serves_sequential_requests_on_one_pooled_connection() {
    let dir = tempfile::tempdir().unwrap();
    // $connection is nginx's serial number of the connection a request came on.
    let nginx = Nginx::start(dir.path(), "", "location / { return 200 \"$connection\"; }").await;
    let upstream = upstream(&format!("http://127.0.0.1:{}", nginx.port), "");
    let (status, _, first) = fetch(&upstream, get("/")).await;
    assert_eq!(status, 200);
    for _ in 0..5 {
        assert_eq!(fetch(&upstream, get("/")).await.2, first, "a new connection for a sequential request");
    }
    assert_eq!(upstream.client.pool().idle_count(), 1);
}

#[tokio::test]
async fn a_connection_nginx_closed_while_idle_is_not_used_again() {
    let dir = tempfile::tempdir().unwrap();
    let nginx =
        Nginx::start(dir.path(), "", "keepalive_timeout 200ms;\nlocation / { return 200 \"$connection\"; }")
            .await;
    let upstream = upstream(&format!("http://127.0.0.1:{}", nginx.port), "");
    let first = fetch(&upstream, get("/")).await.2;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (status, _, second) = fetch(&upstream, get("/")).await;
    assert_eq!(status, 200);
    assert_ne!(second, first, "nginx closed the first connection");
}

#[tokio::test]
async fn chunked_responses_and_head_requests_from_nginx() {
    let dir = tempfile::tempdir().unwrap();
    let text = "the platform's page ".repeat(5000);
    std::fs::write(dir.path().join("page.txt"), &text).unwrap();
    // gzip on the fly has no length to announce: nginx sends it chunked.
    let server = format!(
        "root {};\ngzip on;\ngzip_min_length 0;\ngzip_types text/plain;\nlocation /c {{ return 200 \"$connection\"; }}",
        dir.path().display()
    );
    let nginx = Nginx::start(dir.path(), "", &server).await;
    let upstream = upstream(&format!("http://127.0.0.1:{}", nginx.port), "");

    let (mut parts, body) = get("/page.txt");
    parts.headers.insert("accept-encoding", "gzip".parse().unwrap());
    let (status, headers, gzipped) = fetch(&upstream, (parts, body)).await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("transfer-encoding").unwrap(), "chunked", "{headers:?}");
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&gzipped[..]).read_to_string(&mut unzipped).unwrap();
    assert_eq!(unzipped, text);

    // HEAD: a Content-Length and no body; the connection stays usable.
    let before = fetch(&upstream, get("/c")).await.2;
    let (mut parts, body) = get("/page.txt");
    parts.method = Method::HEAD;
    let (status, headers, body) = fetch(&upstream, (parts, body)).await;
    assert_eq!((status, body.len()), (StatusCode::OK, 0));
    assert_eq!(headers.get("content-length").unwrap().to_str().unwrap(), text.len().to_string());
    assert_eq!(fetch(&upstream, get("/c")).await.2, before, "the HEAD response left its connection reusable");
}

#[tokio::test]
async fn https_to_nginx_with_the_configured_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = nymgate::certs::generate_dev_certs(&dir.path().join("certs"), &[]).unwrap();
    let server = format!(
        "ssl_certificate {};\nssl_certificate_key {};\nlocation / {{ return 200 \"over tls\"; }}",
        certs.cert.display(),
        certs.key.display()
    );
    let nginx = Nginx::start(dir.path(), "ssl", &server).await;
    let url = format!("https://localhost:{}", nginx.port);
    let trusting = upstream(&url, &format!("ca_file = \"{}\"", certs.ca_cert.display()));
    for _ in 0..2 {
        assert_eq!(fetch(&trusting, get("/")).await.2, "over tls");
    }
    assert_eq!(trusting.client.pool().idle_count(), 1);

    // Without the CA the platform's certificate is refused.
    let untrusting = upstream(&url, "");
    let (parts, body) = get("/");
    let error = untrusting.client.send(parts, body).await.unwrap_err();
    assert!(error.to_string().contains("TLS"), "{error}");
}

#[tokio::test]
async fn chunked_uploads_reach_a_real_server_whole() {
    let platform = common::Upstream::start().await;
    let upstream = upstream(&platform.url(), "");
    let pieces: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 1000 + usize::from(i) * 997]).collect();
    let (len, sum) = pieces.iter().flatten().fold((0usize, 0u64), |(n, s), b| (n + 1, s + u64::from(*b)));
    let (parts, ()) = Request::post("/upload").header("host", "learn.example").body(()).unwrap().into_parts();
    let (status, _, answer) = fetch(&upstream, (parts, streamed(pieces))).await;
    assert_eq!(status, 200);
    assert_eq!(answer, format!("{len} {sum}"));
}

#[tokio::test]
async fn a_pooled_connection_closed_as_the_request_arrives_is_retried_once_on_a_new_one() {
    // The first connection answers one request, then closes on reading the second: a keep-alive
    // race a real platform loses now and then.
    let (url, connections) = scripted(|n, mut tcp| async move {
        let _ = read_head(&mut tcp).await;
        let reply = format!("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{n}");
        tcp.write_all(reply.as_bytes()).await.unwrap();
        if n == 0 {
            let _ = read_head(&mut tcp).await;
        }
    })
    .await;
    let upstream = upstream(&url, "");
    assert_eq!(fetch(&upstream, get("/")).await.2, "0");
    assert_eq!(fetch(&upstream, get("/")).await.2, "1", "answered on a second connection");
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_request_whose_body_was_sent_is_not_sent_twice() {
    let (url, connections) = scripted(|n, mut tcp| async move {
        let _ = read_head(&mut tcp).await;
        if n == 0 {
            tcp.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await.unwrap();
            // The next request's head and body arrive; the connection closes unanswered.
            let _ = read_head(&mut tcp).await;
            let mut body = [0u8; 5];
            let _ = tcp.read_exact(&mut body).await;
        }
    })
    .await;
    let upstream = upstream(&url, "");
    fetch(&upstream, get("/")).await;
    let (parts, ()) =
        Request::post("/").header("host", "x").header("content-length", "5").body(()).unwrap().into_parts();
    let error = upstream.client.send(parts, streamed(vec![b"hello".to_vec()])).await.unwrap_err();
    assert!(error.to_string().contains("closed"), "{error}");
    assert_eq!(connections.load(Ordering::SeqCst), 1, "the request was not sent again");
}

#[tokio::test]
async fn a_platform_that_answers_before_reading_the_body_is_heard() {
    let (url, _) = scripted(|_, mut tcp| async move {
        let _ = read_head(&mut tcp).await;
        tcp.write_all(
            b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbig!",
        )
        .await
        .unwrap();
        let _ = tcp.shutdown().await;
        // Drain what the client still sends, as a server closing gracefully does.
        let mut sink = vec![0u8; 65536];
        while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    let upstream = upstream(&url, "");
    let (parts, ()) = Request::post("/").header("host", "x").body(()).unwrap().into_parts();
    let big: Vec<Vec<u8>> = (0..64).map(|_| vec![b'x'; 65536]).collect();
    let (status, _, body) = fetch(&upstream, (parts, streamed(big))).await;
    assert_eq!((status, &body[..]), (StatusCode::PAYLOAD_TOO_LARGE, &b"big!"[..]));
    assert_eq!(upstream.client.pool().idle_count(), 0, "a connection told to close is not pooled");
}

#[tokio::test]
async fn informational_responses_are_skipped() {
    let (url, _) = scripted(|_, mut tcp| async move {
        let _ = read_head(&mut tcp).await;
        tcp.write_all(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        )
        .await
        .unwrap();
        let _ = read_head(&mut tcp).await;
    })
    .await;
    let upstream = upstream(&url, "");
    let (status, headers, body) = fetch(&upstream, get("/")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"ok"[..]));
    assert!(headers.get("link").is_none());
}

#[tokio::test]
async fn responses_framed_to_split_are_refused_and_broken_bodies_end_in_an_error() {
    let (url, _) = scripted(|n, mut tcp| async move {
        let _ = read_head(&mut tcp).await;
        let reply: &[u8] = match n {
            0 => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n",
            1 => b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf",
            _ => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n",
        };
        tcp.write_all(reply).await.unwrap();
    })
    .await;
    let upstream = upstream(&url, "");
    let (parts, body) = get("/");
    let error = upstream.client.send(parts, body).await.unwrap_err();
    assert!(error.to_string().contains("both Transfer-Encoding and Content-Length"), "{error}");

    for want in ["closed the connection inside the response body", "chunk data not followed by CRLF"] {
        let (parts, body) = get("/");
        let response = upstream.client.send(parts, body).await.unwrap();
        let error = response.into_body().collect().await.unwrap_err();
        assert!(error.to_string().contains(want), "{error}");
    }
    assert_eq!(upstream.client.pool().idle_count(), 0);
}
