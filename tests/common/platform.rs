//! nymgate's platform client (src/upstream) on its own, against scripted platforms: a loopback
//! listener whose every connection runs a script that plays the platform, well-behaved or not.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use nymgate::body::{self, Body};
use nymgate::config::UpstreamConfig;
use nymgate::upstream::Upstream;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// A platform client for `url`, with the `[upstream]` lines `extra`.
pub fn upstream(url: &str, extra: &str) -> Upstream {
    let config: UpstreamConfig =
        toml::from_str(&format!("url = \"{url}\"\nconnect_timeout = \"2s\"\n{extra}")).unwrap();
    Upstream::new(&config).unwrap()
}

pub fn get(path: &str) -> (http::request::Parts, Body) {
    let (parts, ()) = Request::get(path).header("host", "learn.example").body(()).unwrap().into_parts();
    (parts, body::empty())
}

/// Sends and reads the whole response: status, headers, body.
pub async fn fetch(
    upstream: &Upstream,
    (parts, body): (http::request::Parts, Body),
) -> (StatusCode, http::HeaderMap, Bytes) {
    let response = upstream.client.send(parts, body).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body)
}

/// A request body of unknown length (so it goes chunked), in pieces.
pub fn streamed(pieces: Vec<Vec<u8>>) -> Body {
    let frames = pieces.into_iter().map(|p| Ok::<_, body::BoxError>(Frame::data(Bytes::from(p))));
    StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
}

/// A scripted platform: answers each connection with `script`, which gets the connection's
/// number and the stream. Counts the connections.
pub async fn scripted<F, Fut>(script: F) -> (String, Arc<AtomicUsize>)
where
    F: Fn(usize, tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let script = Arc::new(script);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let script = script.clone();
            tokio::spawn(async move { script(n, tcp).await });
        }
    });
    (url, count)
}

/// Reads one request head (and nothing after it).
pub async fn read_head(tcp: &mut tokio::net::TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tcp.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}
