//! Every connection has an owner, a bound and a deadline (src/conn_bounds.rs,
//! docs/CONNECTIONS.md): clients that stop reading, HTTP/2 clients that keep a zero window,
//! upgraded tunnels, and the close after an early error. A real nymgate on loopback, a real
//! upstream server (tests/common), and clients that misbehave on purpose.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn upstream_config(url: &str, extra: &str) -> String {
    format!("[upstream]\nurl = \"{url}\"\nresponse_timeout = \"2s\"\nconnect_timeout = \"1s\"\n{extra}")
}

/// Waits until `done` holds, up to `limit`; returns whether it did.
async fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

/// Reads until the connection ends (end-of-file or an error), up to `limit`.
async fn ends_within<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, limit: Duration) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn http1_client_that_stops_reading_is_closed_and_releases_the_platform() {
    let upstream = Upstream::start().await;
    let limits = "[limits]\nidle_timeout = \"1s\"\nsend_timeout = \"1s\"\n";
    let gw = Gateway::start(&upstream_config(&upstream.url(), limits)).await;
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut raw = gw.raw().await;
        // 64 MiB: far more than the socket buffers and hyper's can hold.
        raw.write_all(b"GET /download?n=67108864 HTTP/1.1\r\nHost: learn.example\r\n\r\n").await.unwrap();
        stalled.push(raw);
    }
    assert!(
        eventually(Duration::from_secs(5), || upstream.open_connections() >= 3).await,
        "the downloads never reached the platform"
    );
    // Nobody reads: each response is taken away after send_timeout, each connection closed after
    // idle_timeout and the close grace; the platform gets every connection back.
    assert!(
        eventually(Duration::from_secs(20), || upstream.open_connections() == 0).await,
        "{} platform connections still held by clients that stopped reading",
        upstream.open_connections()
    );
    for mut raw in stalled {
        assert!(
            ends_within(&mut raw, Duration::from_secs(20)).await,
            "a stalled client's connection stayed open"
        );
    }
    let (_, metrics) = gw.admin_get("/metrics").await;
    assert!(metrics.contains("nymgate_deadline_cuts_total{reason=\"send_timeout\"}"), "{metrics}");
    // Others are still served.
    let mut h1 = gw.h1().await;
    assert_eq!(h1.send(get("/echo").body(empty()).unwrap()).await.status(), 200);
}

#[tokio::test]
async fn http2_client_with_a_zero_window_releases_the_platform_after_the_send_timeout() {
    use http_body_util::BodyExt;
    let upstream = Upstream::start().await;
    // A long idle timeout: the client below pings, so only the send timeout can act.
    let limits = "[limits]\nidle_timeout = \"60s\"\nsend_timeout = \"1s\"\n";
    let gw = Gateway::start(&upstream_config(&upstream.url(), limits)).await;
    let tls = tls_connect(gw.addr(), &gw.ca, &[b"h2"]).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        .initial_stream_window_size(0)
        .adaptive_window(false)
        .keep_alive_interval(Duration::from_millis(200))
        .keep_alive_while_idle(true)
        .handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    let connection = tokio::spawn(conn);
    let mut responses = Vec::new();
    for _ in 0..4 {
        let request = http::Request::get("https://learn.example/download?n=10485760").body(empty()).unwrap();
        let response = tokio::time::timeout(Duration::from_secs(5), sender.send_request(request))
            .await
            .expect("response head")
            .unwrap();
        assert_eq!(response.status(), 200);
        responses.push(response);
    }
    assert!(
        eventually(Duration::from_secs(15), || upstream.open_connections() == 0).await,
        "{} platform connections still held by streams with a zero window",
        upstream.open_connections()
    );
    // The client's connection is still there (it pings); the stalled streams ended in an error.
    assert!(!connection.is_finished());
    for response in responses {
        let body = tokio::time::timeout(Duration::from_secs(5), response.into_body().collect()).await;
        assert!(!matches!(body, Ok(Ok(_))), "a stream taken away must not end as a complete body");
    }
}

/// A WebSocket handshake by hand on a raw TLS stream; returns the stream after the 101.
async fn open_websocket(gw: &Gateway) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut raw = gw.raw().await;
    raw.write_all(
        b"GET /ws HTTP/1.1\r\nHost: learn.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(raw.read(&mut byte).await.unwrap(), 1, "closed during the handshake: {head:?}");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    raw
}

#[tokio::test]
async fn upgraded_tunnels_stay_under_the_connection_cap() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&upstream_config(&upstream.url(), "[limits]\nmax_connections = 1\n")).await;
    let tunnel = open_websocket(&gw).await;
    // The tunnel holds the only place: a new connection is shed.
    let mut raw = gw.raw().await;
    let reply =
        raw_exchange(&mut raw, b"GET /echo HTTP/1.1\r\nHost: learn.example\r\n\r\n", Duration::from_secs(5))
            .await;
    assert!(reply.starts_with("HTTP/1.1 503"), "a tunnel left the connection cap: {reply}");
    drop(raw);
    drop(tunnel);
    assert!(
        eventually(Duration::from_secs(5), || upstream.open_connections() == 0).await,
        "the tunnel's platform connection outlived it"
    );
    // The tunnel's end gives its place back.
    let start = Instant::now();
    loop {
        let mut raw = gw.raw().await;
        let reply = raw_exchange(
            &mut raw,
            b"GET /echo HTTP/1.1\r\nHost: learn.example\r\n\r\n",
            Duration::from_secs(5),
        )
        .await;
        if reply.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "the ended tunnel kept its place: {reply}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn idle_tunnel_is_closed_at_the_idle_timeout() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&upstream_config(&upstream.url(), "[limits]\nidle_timeout = \"500ms\"\n")).await;
    let mut tunnel = open_websocket(&gw).await;
    let started = Instant::now();
    assert!(ends_within(&mut tunnel, Duration::from_secs(10)).await, "an idle tunnel stayed open");
    assert!(started.elapsed() >= Duration::from_millis(400), "closed before the idle timeout");
    assert!(eventually(Duration::from_secs(5), || upstream.open_connections() == 0).await);
    let (_, metrics) = gw.admin_get("/metrics").await;
    assert!(metrics.contains("nymgate_deadline_cuts_total{reason=\"tunnel_idle\"} 1"), "{metrics}");
}

#[tokio::test]
async fn h2c_and_unlisted_upgrades_are_refused_and_never_reach_the_platform() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&upstream_config(&upstream.url(), "")).await;
    let asks: &[&str] = &[
        "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n",
        "Connection: upgrade\r\nUpgrade: H2C\r\n",
        "Connection: upgrade\r\nUpgrade: websocket, h2c\r\n",
        "Connection: upgrade\r\nUpgrade: websocket\r\nUpgrade: websocket\r\n",
        "Connection: upgrade\r\nUpgrade: irc/6.9\r\n",
        "Upgrade: websocket\r\n",
    ];
    for ask in asks {
        let mut raw = gw.raw().await;
        let request = format!("GET /echo HTTP/1.1\r\nHost: learn.example\r\n{ask}\r\n");
        let reply = raw_exchange(&mut raw, request.as_bytes(), Duration::from_secs(5)).await;
        assert!(reply.starts_with("HTTP/1.1 400"), "{ask:?} was not refused: {reply}");
    }
    assert_eq!(upstream.completed(), 0, "a refused upgrade reached the platform");
}

#[tokio::test]
async fn early_413_is_read_by_the_client_not_reset() {
    // The echo platform refuses a declared body over max_body_bytes before reading any of it.
    let gw = Gateway::start("[limits]\nmax_body_bytes = 1024\n").await;
    for attempt in 0..4 {
        let mut raw = gw.raw().await;
        // Like most clients: the whole body goes out before the answer is read. Closing with
        // the body unread resets the connection: the client's sending fails, and a client like
        // curl then reports the reset, never the 413 (the review saw it a quarter of the time).
        let head = b"POST / HTTP/1.1\r\nHost: learn.example\r\nContent-Length: 4194304\r\n\r\n";
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = raw.write_all(head).await;
        for _ in 0..64 {
            if sent.is_err() {
                break;
            }
            sent = raw.write_all(&chunk).await;
        }
        assert!(sent.is_ok(), "attempt {attempt}: sending the body failed: {sent:?}");
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut reply)).await;
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 413"), "attempt {attempt}: the client read {reply:?}");
    }
}

#[tokio::test]
async fn a_connection_that_asked_for_an_upgrade_and_got_none_still_parks() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&upstream_config(&upstream.url(), "[limits]\npark_after = \"50ms\"\n")).await;
    let mut raw = gw.raw().await;
    // The platform answers 200, not 101: the connection goes on as HTTP/1.1.
    let asks =
        b"GET /echo HTTP/1.1\r\nHost: learn.example\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
    let reply = raw_exchange(&mut raw, asks, Duration::from_secs(1)).await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let start = Instant::now();
    let mut is_parked = false;
    while !is_parked && start.elapsed() < Duration::from_secs(5) {
        let (_, metrics) = gw.admin_get("/metrics").await;
        is_parked = metrics.lines().any(|l| l == "nymgate_parked_connections 1");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(is_parked, "a connection that once asked for an upgrade never parked");
    // Parked, it still serves its next request.
    let reply =
        raw_exchange(&mut raw, b"GET /echo HTTP/1.1\r\nHost: learn.example\r\n\r\n", Duration::from_secs(1))
            .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
}

#[tokio::test]
async fn stalled_readers_beyond_the_platform_bound_do_not_starve_reading_clients() {
    let upstream = Upstream::start().await;
    // One worker, two platform connections: four clients that never read would hold them all.
    let config = format!(
        "workers = 1\n{}",
        upstream_config(&upstream.url(), "max_connections = 2\nqueue_timeout = \"5s\"\n")
    );
    let gw = Gateway::start(&config).await;
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut raw = gw.raw().await;
        raw.write_all(b"GET /download?n=67108864 HTTP/1.1\r\nHost: learn.example\r\n\r\n").await.unwrap();
        stalled.push(raw);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Past RECLAIM_AFTER (1 s) unread: a reading client's request takes a platform connection
    // from the stalled response unread longest instead of waiting behind them.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for _ in 0..3 {
        let mut h1 = gw.h1().await;
        let response =
            tokio::time::timeout(Duration::from_secs(4), h1.send(get("/echo").body(empty()).unwrap()))
                .await
                .expect("a reading client waited behind clients that never read");
        assert_eq!(response.status(), 200);
    }
    drop(stalled);
}

/// How a connection nobody reads ends, seen from the client's socket once it reads again:
/// `true` for a reset, `false` for an orderly close (end-of-file after the data).
async fn ends_in_reset(tcp: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    tokio::time::timeout(limit, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) => return false,
                Ok(_) => {}
                Err(error) => return error.kind() == std::io::ErrorKind::ConnectionReset,
            }
        }
    })
    .await
    .expect("the connection was never closed")
}

/// A connection cut off by a deadline is reset, in both HTTP versions: closed with a FIN, the
/// kernel would keep the socket, and the response bytes the client never read, for as long as
/// the client keeps its window shut (nginx's `reset_timedout_connection`).
#[tokio::test]
async fn a_connection_cut_by_a_deadline_is_reset_in_both_versions() {
    use common::h2raw::*;
    let upstream = Upstream::start().await;
    let limits = "[limits]\nidle_timeout = \"1s\"\nsend_timeout = \"1s\"\n";
    let gw = Gateway::start(&upstream_config(&upstream.url(), limits)).await;

    let mut h1 = gw.raw().await;
    h1.write_all(b"GET /download?n=67108864 HTTP/1.1\r\nHost: learn.example\r\n\r\n").await.unwrap();
    h1.flush().await.unwrap();
    let mut h2 = raw_h2(&gw).await;
    h2.write_all(&frame(HEADERS, END_STREAM | END_HEADERS, 1, &get_block("/download?n=67108864")))
        .await
        .unwrap();
    h2.flush().await.unwrap();
    // From here neither client reads: the bytes stay in the sockets, undecrypted.
    let (mut h1, _) = h1.into_inner();
    let (mut h2, _) = h2.into_inner();
    // send_timeout (1 s) takes the responses away, idle_timeout (1 s) asks the connections to
    // close, CLOSE_GRACE (5 s) ends them.
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert!(ends_in_reset(&mut h1, Duration::from_secs(10)).await, "HTTP/1.1 closed without a reset");
    assert!(ends_in_reset(&mut h2, Duration::from_secs(10)).await, "HTTP/2 closed without a reset");
    let (_, metrics) = gw.admin_get("/metrics").await;
    assert!(metrics.contains("nymgate_deadline_cuts_total{reason=\"close_grace\"}"), "{metrics}");
}

/// The kernel's send queue (sent and unacknowledged, plus unsent) of the nymgate socket whose
/// peer is the client at `client_port`, from /proc/net/tcp (IPv4; `tx_queue`, in hex).
fn server_send_queue(server_port: u16, client_port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let port = |field: &str| u16::from_str_radix(field.rsplit(':').next()?, 16).ok();
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (port(fields.get(1)?)? == server_port && port(fields.get(2)?)? == client_port)
            .then(|| u64::from_str_radix(fields.get(4)?.split(':').next()?, 16).ok())
            .flatten()
    })
}

/// A client that stops reading does not make the kernel queue megabytes for it: nymgate's
/// socket stops taking bytes once 128 KiB wait unsent (TCP_NOTSENT_LOWAT). Without the bound
/// the queue grows to `net.ipv4.tcp_wmem`'s maximum (4 MiB), and a few hundred such clients put
/// the whole host's TCP memory under pressure (bench/hostile.sh).
#[tokio::test]
async fn a_client_that_stops_reading_holds_a_bounded_kernel_send_queue() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&upstream_config(&upstream.url(), "")).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    // A small receive buffer: the client's window closes at once, as a stalled reader's does.
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(gw.addr()).await.unwrap();
    let client_port = tcp.local_addr().unwrap().port();
    let connector = tokio_rustls::TlsConnector::from(tls_client_config(&gw.ca, &[b"http/1.1"]));
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(b"GET /download?n=67108864 HTTP/1.1\r\nHost: learn.example\r\n\r\n").await.unwrap();
    tls.flush().await.unwrap();
    let mut most = 0;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        most = most.max(server_send_queue(gw.addr().port(), client_port).expect("nymgate's socket"));
    }
    // The bound, plus one write of ciphertext (tls_stream.rs MAX_WRITE, 64 KiB) that the kernel
    // takes whole, plus what the client's window let through.
    assert!(most > 0, "the response never reached the socket");
    assert!(most <= 256 * 1024, "{most} bytes queued in the kernel for a client that does not read");
    drop(tls);
}
