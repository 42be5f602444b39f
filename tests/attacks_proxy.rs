//! shared/SECURITY.md, "The reverse proxy": each request-smuggling and Host-confusion case sent
//! as raw bytes over TLS, answered 400, and never forwarded to the platform.
//!
//! Each test then sends one valid request on a new connection and checks that the platform saw
//! exactly that one: the refusal is not an accident of a broken upstream.

mod common;

use std::time::Duration;

use common::*;

async fn assert_refused_and_not_forwarded(raw_request: &[u8]) {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&format!("[upstream]\nurl = \"{}\"\n", upstream.url())).await;
    let mut tls = gw.raw().await;
    let reply = raw_exchange(&mut tls, raw_request, Duration::from_secs(5)).await;
    assert!(reply.starts_with("HTTP/1.1 400"), "expected 400, got: {reply:?}");
    // The connection is closed after the refusal: nothing after it is read as a request.
    assert_eq!(reply.matches("HTTP/1.1").count(), 1, "more than one response: {reply:?}");

    let mut h1 = gw.h1().await;
    let response = h1.send(get("/echo").body(empty()).unwrap()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.completed(), 1, "the refused request reached the platform");
}

const SMUGGLED: &str = "GET /admin HTTP/1.1\r\nHost: learn.example\r\n\r\n";

#[tokio::test]
async fn smuggling_content_length_then_transfer_encoding() {
    let request = format!(
        "POST /echo HTTP/1.1\r\nHost: learn.example\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"
    );
    assert_refused_and_not_forwarded(request.as_bytes()).await;
}

#[tokio::test]
async fn smuggling_transfer_encoding_then_content_length() {
    let request = format!(
        "POST /echo HTTP/1.1\r\nHost: learn.example\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n{SMUGGLED}"
    );
    assert_refused_and_not_forwarded(request.as_bytes()).await;
}

#[tokio::test]
async fn smuggling_transfer_encoding_not_ending_in_chunked() {
    let request =
        "POST /echo HTTP/1.1\r\nHost: learn.example\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n";
    assert_refused_and_not_forwarded(request.as_bytes()).await;
}

#[tokio::test]
async fn smuggling_transfer_encoding_list_with_chunked_last() {
    let request =
        "POST /echo HTTP/1.1\r\nHost: learn.example\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n";
    assert_refused_and_not_forwarded(request.as_bytes()).await;
}

#[tokio::test]
async fn smuggling_transfer_encoding_space_before_colon() {
    let request = "POST /echo HTTP/1.1\r\nHost: learn.example\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n";
    assert_refused_and_not_forwarded(request.as_bytes()).await;
}

#[tokio::test]
async fn smuggling_transfer_encoding_repeated() {
    let request = "POST /echo HTTP/1.1\r\nHost: learn.example\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_refused_and_not_forwarded(request.as_bytes()).await;
}

#[tokio::test]
async fn smuggling_transfer_encoding_obs_fold() {
    let request =
        "POST /echo HTTP/1.1\r\nHost: learn.example\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n";
    assert_refused_and_not_forwarded(request.as_bytes()).await;
}

#[tokio::test]
async fn smuggling_transfer_encoding_on_http10() {
    let request = "POST /echo HTTP/1.0\r\nHost: learn.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_refused_and_not_forwarded(request.as_bytes()).await;
}

#[tokio::test]
async fn smuggling_content_length_comma_list() {
    let request = "POST /echo HTTP/1.1\r\nHost: learn.example\r\nContent-Length: 3,2\r\n\r\nabc";
    assert_refused_and_not_forwarded(request.as_bytes()).await;
}

#[tokio::test]
async fn smuggling_content_length_plus_sign() {
    let request = "POST /echo HTTP/1.1\r\nHost: learn.example\r\nContent-Length: +10\r\n\r\n0123456789";
    assert_refused_and_not_forwarded(request.as_bytes()).await;
}

#[tokio::test]
async fn smuggling_content_length_negative() {
    let request = "POST /echo HTTP/1.1\r\nHost: learn.example\r\nContent-Length: -1\r\n\r\n";
    assert_refused_and_not_forwarded(request.as_bytes()).await;
}

#[tokio::test]
async fn smuggling_content_length_two_different_values() {
    let request =
        "POST /echo HTTP/1.1\r\nHost: learn.example\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde";
    assert_refused_and_not_forwarded(request.as_bytes()).await;
}

#[tokio::test]
async fn smuggling_chunk_size_overflow() {
    let request = "POST /echo HTTP/1.1\r\nHost: learn.example\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nabc\r\n0\r\n\r\n";
    assert_refused_and_not_forwarded(request.as_bytes()).await;
}

#[tokio::test]
async fn smuggling_oversized_chunk_extensions() {
    let extension = "a".repeat(20_000);
    let request = format!(
        "POST /echo HTTP/1.1\r\nHost: learn.example\r\nTransfer-Encoding: chunked\r\n\r\n1;{extension}\r\nx\r\n0\r\n\r\n"
    );
    assert_refused_and_not_forwarded(request.as_bytes()).await;
}

#[tokio::test]
async fn host_with_path_separator() {
    assert_refused_and_not_forwarded(b"GET /echo HTTP/1.1\r\nHost: learn.example/evil\r\n\r\n").await;
}

#[tokio::test]
async fn host_with_dot_dot() {
    assert_refused_and_not_forwarded(b"GET /echo HTTP/1.1\r\nHost: ..\r\n\r\n").await;
}

#[tokio::test]
async fn host_with_control_character() {
    assert_refused_and_not_forwarded(b"GET /echo HTTP/1.1\r\nHost: learn\x01example\r\n\r\n").await;
}

#[tokio::test]
async fn host_with_user_info() {
    assert_refused_and_not_forwarded(b"GET /echo HTTP/1.1\r\nHost: evil@learn.example\r\n\r\n").await;
}

#[tokio::test]
async fn host_line_repeated() {
    assert_refused_and_not_forwarded(
        b"GET /echo HTTP/1.1\r\nHost: learn.example\r\nHost: evil.example\r\n\r\n",
    )
    .await;
}

#[tokio::test]
async fn host_missing_on_http11() {
    assert_refused_and_not_forwarded(b"GET /echo HTTP/1.1\r\nX-No-Host: 1\r\n\r\n").await;
}

#[tokio::test]
async fn absolute_form_target_disagreeing_with_host() {
    assert_refused_and_not_forwarded(b"GET http://evil.example/echo HTTP/1.1\r\nHost: learn.example\r\n\r\n")
        .await;
}

/// Sends `raw_request` and returns nymgate's answer, checking that nothing reached the platform.
async fn answered_by_nymgate(raw_request: &[u8]) -> String {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&format!("[upstream]\nurl = \"{}\"\n", upstream.url())).await;
    let mut tls = gw.raw().await;
    let reply = raw_exchange(&mut tls, raw_request, Duration::from_secs(5)).await;
    let mut h1 = gw.h1().await;
    let response = h1.send(get("/echo").body(empty()).unwrap()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.completed(), 1, "the refused request reached the platform: {reply:?}");
    reply
}

/// issue 25, "Rules by class": a Host that is not one of nymgate's public hosts (here: the
/// certificate's names) is answered 421 and never reaches the platform, however it is spelled.
#[tokio::test]
async fn host_confusion_a_host_nymgate_does_not_serve_gets_421() {
    for host in ["evil.example", "learn.example.evil.example", "127.0.0.2", "[::2]:443"] {
        let request = format!("GET /echo HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let reply = answered_by_nymgate(request.as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 421"), "{host}: {reply:?}");
    }
    // Its own names in another spelling are served.
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&format!("[upstream]\nurl = \"{}\"\n", upstream.url())).await;
    let mut tls = gw.raw().await;
    let reply = raw_exchange(
        &mut tls,
        b"GET /echo HTTP/1.1\r\nHost: LEARN.example.:8443\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply:?}");
}

/// issue 25, "Canonicalize once, then decide": no spelling of a path under /nymgate reaches the
/// platform (without a login configured, nymgate answers 404 for all of them).
#[tokio::test]
async fn path_confusion_no_spelling_of_a_nymgate_path_reaches_the_platform() {
    for path in [
        "/NYMGATE/jwks",
        "//nymgate/jwks",
        "/x/../nymgate/jwks",
        "/%6eymgate/jwks",
        "/%256eymgate/jwks",
        "/nymgate;v=1/jwks",
        "/x/..;/nymgate/jwks",
        "/x%2f..%2fnymgate/jwks",
        "/x\\..\\nymgate",
        "/ｎｙｍｇａｔｅ/jwks",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: learn.example\r\n\r\n");
        let reply = answered_by_nymgate(request.as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 404") || reply.starts_with("HTTP/1.1 400"), "{path}: {reply:?}");
    }
}

/// issue 25: a school's SAML response (or an artifact for one) in the query of any path is
/// refused, in any spelling of the parameter name.
#[tokio::test]
async fn saml_response_in_a_query_never_reaches_the_platform() {
    for query in
        ["SAMLResponse=PHNhbWw", "samlresponse=x", "SAMLart=AAQ", "a=1;SAML%52esponse=x", "SAMLResponse[]=x"]
    {
        let request = format!("GET /app/acs?{query} HTTP/1.1\r\nHost: learn.example\r\n\r\n");
        let reply = answered_by_nymgate(request.as_bytes()).await;
        assert!(reply.starts_with("HTTP/1.1 400"), "{query}: {reply:?}");
    }
}
