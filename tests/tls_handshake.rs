//! Issue 27, "An unfinished TLS handshake costs what the client decides": the client's first
//! flight against a running nymgate, as raw bytes over loopback. A ClientHello over 16 KiB or a
//! first record that is not a handshake record is refused at once; a ClientHello fragmented into
//! tiny records and segments still completes; a half-open handshake ends at its deadline.
//! The judgement itself, over every split, is tested in src/client_hello_tests.rs; the peeking
//! accept path over random splits in src/tls_stream_tests.rs.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A handshake timeout far longer than any test waits: a close seen within a test is a refusal.
const LONG_DEADLINE: &str = "[limits]\ntls_handshake_timeout = \"120s\"\n";

/// What the server sends before it closes, within `wait` (panics if it does not close).
async fn answer_then_close(tcp: &mut TcpStream, wait: Duration) -> Vec<u8> {
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 1024];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "still open after {wait:?}; sent {answer:?}");
    answer
}

async fn handshake_failures(gw: &Gateway) -> u64 {
    let (_, metrics) = gw.admin_get("/metrics").await;
    let line = metrics.lines().find(|l| l.starts_with("nymgate_tls_handshake_failures_total")).unwrap();
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// The failed-handshake count once it reaches `target` (or after a second): the socket closes as
/// the refusal returns, and the count follows a moment later.
async fn failures_reaching(gw: &Gateway, target: u64) -> u64 {
    let mut counted = handshake_failures(gw).await;
    for _ in 0..50 {
        if counted >= target {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        counted = handshake_failures(gw).await;
    }
    counted
}

/// A record header and a ClientHello header declaring `length`.
fn client_hello_head(record_len: u16, length: u32) -> Vec<u8> {
    let mut bytes = vec![22, 3, 1];
    bytes.extend(record_len.to_be_bytes());
    bytes.push(1);
    bytes.extend(&length.to_be_bytes()[1..]);
    bytes
}

#[tokio::test]
async fn client_hello_over_16_kib_is_refused() {
    let gw = Gateway::start(LONG_DEADLINE).await;
    let before = handshake_failures(&gw).await;
    // The attacker: a 64 KB ClientHello, most of it sent, then nothing. And the first
    // length over the bound, 16 KiB + 1, in a record header declaring the most a record holds.
    for length in [64_000, 16_385] {
        let mut tcp = TcpStream::connect(gw.addr()).await.unwrap();
        let mut bytes = client_hello_head(16_384, length);
        bytes.extend(vec![0x41; 12_000]);
        let _ = tcp.write_all(&bytes).await;
        let answer = answer_then_close(&mut tcp, Duration::from_secs(10)).await;
        // The fatal illegal_parameter alert (RFC 8446 §6.2), or nothing if it was not taken.
        assert!(answer.is_empty() || answer == [21, 3, 3, 0, 2, 2, 47], "answered {answer:?}");
    }
    // The same length split so that its bytes come in records of one byte each.
    let mut tcp = TcpStream::connect(gw.addr()).await.unwrap();
    let head = client_hello_head(0, 16_385);
    for &byte in &head[5..] {
        tcp.write_all(&[22, 3, 1, 0, 1, byte]).await.unwrap();
    }
    let answer = answer_then_close(&mut tcp, Duration::from_secs(10)).await;
    assert!(answer.is_empty() || answer == [21, 3, 3, 0, 2, 2, 47], "answered {answer:?}");
    assert_eq!(failures_reaching(&gw, before + 3).await, before + 3);
}

#[tokio::test]
async fn non_handshake_first_record_is_refused() {
    let gw = Gateway::start(LONG_DEADLINE).await;
    let before = handshake_failures(&gw).await;
    let first_records: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: learn.example\r\n",
        // Application data, an alert, change_cipher_spec: each with a length that promises more.
        &[23, 3, 3, 0x3f, 0xff, 0, 0, 0],
        &[21, 3, 3, 0, 2, 2],
        &[20, 3, 3, 0, 1],
    ];
    for first in first_records {
        let mut tcp = TcpStream::connect(gw.addr()).await.unwrap();
        tcp.write_all(first).await.unwrap();
        let answer = answer_then_close(&mut tcp, Duration::from_secs(10)).await;
        // The fatal unexpected_message alert, never anything of HTTP.
        assert!(answer.is_empty() || answer == [21, 3, 3, 0, 2, 2, 10], "{first:?} answered {answer:?}");
    }
    assert_eq!(failures_reaching(&gw, before + 4).await, before + 4);
}

#[tokio::test]
async fn half_open_handshake_is_closed_at_the_deadline() {
    let gw = Gateway::start("[limits]\ntls_handshake_timeout = \"1s\"\n").await;
    let before = handshake_failures(&gw).await;
    // Most of a ClientHello within the bound, then silence.
    let mut tcp = TcpStream::connect(gw.addr()).await.unwrap();
    let mut bytes = client_hello_head(16_384, 16_000);
    bytes.extend(vec![0x41; 15_000]);
    tcp.write_all(&bytes).await.unwrap();
    let started = Instant::now();
    answer_then_close(&mut tcp, Duration::from_secs(15)).await;
    assert!(started.elapsed() >= Duration::from_millis(500), "closed before the deadline");
    assert_eq!(failures_reaching(&gw, before + 1).await, before + 1);
}

#[tokio::test]
async fn fragmented_client_hello_within_bound_completes() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&format!("[upstream]\nurl = \"{}\"\n", upstream.url())).await;
    let config = tls_client_config(&gw.ca, &[b"http/1.1"]);
    let addr = gw.addr();
    // A real rustls client whose ClientHello goes out in records of one byte, each record in a
    // TCP segment of its own; then the handshake and one request, as usual.
    let reply = tokio::task::spawn_blocking(move || {
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_nodelay(true).unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut client = rustls::ClientConnection::new(config, name).unwrap();
        let mut first = Vec::new();
        client.write_tls(&mut first).unwrap();
        assert_eq!(first.len(), 5 + usize::from(u16::from_be_bytes([first[3], first[4]])));
        for (i, &byte) in first[5..].iter().enumerate() {
            tcp.write_all(&[22, 3, 1, 0, 1, byte]).unwrap();
            if i % 64 == 63 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        while client.is_handshaking() {
            client.complete_io(&mut tcp).unwrap();
        }
        let mut tls = rustls::Stream::new(&mut client, &mut tcp);
        tls.write_all(b"GET /echo HTTP/1.1\r\nHost: learn.example\r\nConnection: close\r\n\r\n").unwrap();
        let mut reply = Vec::new();
        let _ = tls.read_to_end(&mut reply);
        String::from_utf8_lossy(&reply).into_owned()
    })
    .await
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(upstream.completed(), 1);
}
