//! HTTP/2 floods, as regression tests (issue 27): rapid reset (CVE-2023-44487), CONTINUATION
//! flood (2024), an HPACK bomb, and resets provoked by bad frames (CVE-2025-8671). hyper's h2
//! has the defences; each test sends raw frames on one connection and checks that nymgate ends
//! that connection (or refuses the request) and keeps serving everyone else.

mod common;

use std::time::Duration;

use common::h2raw::*;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn started() -> (Upstream, Gateway) {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&format!("[upstream]\nurl = \"{}\"\n", upstream.url())).await;
    (upstream, gw)
}

/// Writes `flood` (ignoring write errors: the server may close first), then reads until
/// nymgate closes the connection; true when it did within `wait`.
async fn closed_after<S>(tls: &mut S, flood: &[u8], wait: Duration) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let _ = tls.write_all(flood).await;
    let _ = tls.flush().await;
    tokio::time::timeout(wait, async {
        let mut buf = vec![0u8; 65536];
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// Everyone else is still served, on both versions.
async fn others_served(gw: &Gateway) {
    let mut h2 = gw.h2().await;
    assert_eq!(h2.send(get("/echo").body(empty()).unwrap()).await.status(), 200);
    let mut h1 = gw.h1().await;
    assert_eq!(h1.send(get("/echo").body(empty()).unwrap()).await.status(), 200);
}

#[tokio::test]
async fn h2_rapid_reset_closes_the_connection() {
    let (_upstream, gw) = started().await;
    let mut tls = raw_h2(&gw).await;
    let block = get_block("/echo");
    let mut flood = Vec::new();
    for i in 0..5000u32 {
        let stream = 2 * i + 1;
        flood.extend(frame(HEADERS, END_STREAM | END_HEADERS, stream, &block));
        flood.extend(frame(RST_STREAM, 0, stream, &8u32.to_be_bytes())); // CANCEL
    }
    assert!(closed_after(&mut tls, &flood, Duration::from_secs(20)).await, "rapid resets were not stopped");
    others_served(&gw).await;
}

#[tokio::test]
async fn h2_continuation_flood_closes_the_connection() {
    let (upstream, gw) = started().await;
    let mut tls = raw_h2(&gw).await;
    let mut flood = frame(HEADERS, 0, 1, &get_block("/echo"));
    // Header fields without end: each CONTINUATION carries one more literal field.
    let mut field = vec![0x00, 3];
    field.extend_from_slice(b"x-c");
    field.extend_from_slice(&[0x7f, 0x81, 0x1f]); // value length 127 + 3969 = 4096
    field.extend(std::iter::repeat_n(b'a', 4096));
    for _ in 0..1000 {
        flood.extend(frame(CONTINUATION, 0, 1, &field));
    }
    assert!(closed_after(&mut tls, &flood, Duration::from_secs(20)).await, "endless CONTINUATION kept");
    assert_eq!(upstream.completed(), 0);
    others_served(&gw).await;
}

#[tokio::test]
async fn h2_hpack_bomb_is_refused() {
    let (upstream, gw) = started().await;
    let mut tls = raw_h2(&gw).await;
    let mut block = get_block("/echo");
    // One 4000-byte field into the dynamic table (literal with incremental indexing) ...
    block.extend_from_slice(&[0x40, 3]);
    block.extend_from_slice(b"x-b");
    block.extend_from_slice(&[0x7f, 0xa1, 0x1e]); // 127 + 3873 = 4000
    block.extend(std::iter::repeat_n(b'b', 4000));
    // ... then referenced 2000 times (index 62): 2 KB of input for 8 MB of header list.
    block.extend(std::iter::repeat_n(0x80 | 62, 2000));
    let request = frame(HEADERS, END_STREAM | END_HEADERS, 1, &block);
    let _ = closed_after(&mut tls, &request, Duration::from_secs(3)).await;
    assert_eq!(upstream.completed(), 0, "the bombed request reached the platform");
    others_served(&gw).await;
    assert_eq!(upstream.completed(), 2);
}

#[tokio::test]
async fn h2_resets_provoked_by_bad_frames_close_the_connection() {
    let (_upstream, gw) = started().await;
    let mut tls = raw_h2(&gw).await;
    let block = get_block("/echo");
    let mut flood = Vec::new();
    for i in 0..5000u32 {
        let stream = 2 * i + 1;
        // An open stream, then a WINDOW_UPDATE of 0 on it: a stream error the server resets
        // (RFC 9113 §6.9), at the client's pace.
        flood.extend(frame(HEADERS, END_HEADERS, stream, &block));
        flood.extend(frame(WINDOW_UPDATE, 0, stream, &0u32.to_be_bytes()));
    }
    assert!(
        closed_after(&mut tls, &flood, Duration::from_secs(20)).await,
        "provoked resets were not stopped"
    );
    others_served(&gw).await;
}

/// The raw frames above are well formed: one request made of them is answered, and the
/// connection stays open. (Otherwise the tests above would pass on any protocol error.)
#[tokio::test]
async fn h2_raw_frames_are_understood() {
    let (upstream, gw) = started().await;
    let mut tls = raw_h2(&gw).await;
    tls.write_all(&frame(HEADERS, END_STREAM | END_HEADERS, 1, &get_block("/echo"))).await.unwrap();
    let mut seen = Vec::new();
    let answered = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = vec![0u8; 65536];
        loop {
            let n = tls.read(&mut buf).await.unwrap();
            assert_ne!(n, 0, "closed after a well-formed request");
            seen.extend_from_slice(&buf[..n]);
            // Walk the frames: a HEADERS frame on stream 1 is the answer.
            let mut at = 0;
            while seen.len() >= at + 9 {
                let len =
                    usize::from(seen[at]) << 16 | usize::from(seen[at + 1]) << 8 | usize::from(seen[at + 2]);
                let stream = u32::from_be_bytes(seen[at + 5..at + 9].try_into().unwrap()) & 0x7fff_ffff;
                if seen[at + 3] == HEADERS && stream == 1 {
                    return;
                }
                at += 9 + len;
            }
        }
    })
    .await;
    assert!(answered.is_ok(), "no answer to a well-formed raw request");
    assert_eq!(upstream.completed(), 1);
}
