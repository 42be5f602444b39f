//! Test harness: a real nymgate on 127.0.0.1:0 with development certificates, a real upstream
//! HTTP server (hyper), and TLS clients (HTTP/1.1, HTTP/2 and raw bytes).
#![allow(dead_code)]

pub mod account_number;
pub mod h2raw;
pub mod login;
pub mod nginx;
pub mod platform;
pub mod postgres;
pub mod redis;
pub mod retention;
pub mod saml;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use nymgate::body::{self, Body};
use nymgate::config::Config;
use nymgate::server::RunningServer;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

/// A running nymgate with its own temporary folder and development CA.
pub struct Gateway {
    pub server: RunningServer,
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
}

impl Gateway {
    /// Starts nymgate with `extra` appended to a minimal config (listeners on port 0).
    pub async fn start(extra: &str) -> Gateway {
        Self::start_in(tempfile::tempdir().unwrap(), extra).await
    }

    /// As [`Gateway::start`], in a folder the test has already put files in.
    pub async fn start_in(dir: tempfile::TempDir, extra: &str) -> Gateway {
        // learn.example, the host the raw-request tests name, is one of the certificate's names and
        // so one of nymgate's public hosts (public_hosts.rs).
        let files =
            nymgate::certs::generate_dev_certs(&dir.path().join("certs"), &["learn.example".to_owned()])
                .unwrap();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ncert_file = \"certs/localhost.pem\"\nkey_file = \"certs/localhost-key.pem\"\n{extra}\n"
        );
        let path = dir.path().join("nymgate.toml");
        std::fs::write(&path, text).unwrap();
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let server = RunningServer::start(config).await.unwrap();
        Gateway { server, dir, ca: files.ca_cert }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.public_addr
    }

    pub async fn h1(&self) -> H1 {
        H1::connect(self.addr(), &self.ca).await
    }

    pub async fn h2(&self) -> H2 {
        H2::connect(self.addr(), &self.ca).await
    }

    pub async fn raw(&self) -> TlsStream<TcpStream> {
        tls_connect(self.addr(), &self.ca, &[b"http/1.1"]).await.unwrap()
    }

    /// GET on the admin listener, as (status, body).
    pub async fn admin_get(&self, path: &str) -> (StatusCode, String) {
        plain_get(self.server.admin_addr, path).await
    }
}

pub fn tls_client_config(ca: &Path, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    nymgate::tls::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

pub async fn tls_connect(
    addr: SocketAddr,
    ca: &Path,
    alpn: &[&[u8]],
) -> std::io::Result<TlsStream<TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(tls_client_config(ca, alpn));
    let tcp = TcpStream::connect(addr).await?;
    connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await
}

/// One HTTP/1.1 connection.
pub struct H1 {
    pub sender: hyper::client::conn::http1::SendRequest<Body>,
}

impl H1 {
    pub async fn connect(addr: SocketAddr, ca: &Path) -> H1 {
        let tls = tls_connect(addr, ca, &[b"http/1.1"]).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
        tokio::spawn(conn.with_upgrades());
        H1 { sender }
    }

    pub async fn send(&mut self, request: Request<Body>) -> Response<Incoming> {
        self.sender.ready().await.unwrap();
        self.sender.send_request(request).await.unwrap()
    }
}

/// One HTTP/2 connection.
pub struct H2 {
    pub sender: hyper::client::conn::http2::SendRequest<Body>,
}

impl H2 {
    pub async fn connect(addr: SocketAddr, ca: &Path) -> H2 {
        let tls = tls_connect(addr, ca, &[b"h2"]).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.unwrap();
        tokio::spawn(conn);
        H2 { sender }
    }

    pub async fn send(&mut self, request: Request<Body>) -> Response<Incoming> {
        self.sender.ready().await.unwrap();
        self.sender.send_request(request).await.unwrap()
    }
}

pub fn get(uri: &str) -> http::request::Builder {
    Request::get(uri).header("host", "learn.example")
}

pub fn empty() -> Body {
    body::empty()
}

pub async fn text(response: Response<Incoming>) -> String {
    String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

pub async fn echo(response: Response<Incoming>) -> nymgate::echo::Echo {
    let status = response.status();
    let body = text(response).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The value of one header in an echo, if present exactly once.
pub fn header<'a>(echo: &'a nymgate::echo::Echo, name: &str) -> Option<&'a str> {
    let mut found = echo.headers.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let first = found.next();
    assert!(found.next().is_none(), "{name} appears more than once");
    first
}

/// Plain HTTP GET (admin and redirect listeners).
pub async fn plain_get(addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let request = Request::get(path).header("host", "127.0.0.1").body(empty()).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status();
    (status, text(response).await)
}

/// Writes raw bytes and reads until the server closes or `wait` passes.
pub async fn raw_exchange<S>(stream: &mut S, bytes: &[u8], wait: Duration) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(bytes).await.unwrap();
    stream.flush().await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A real upstream: a hyper HTTP/1.1 server with a few routes.
/// - `/echo`: JSON of method, path, query and headers received (same shape as nymgate's echo).
/// - `/upload`: reads the whole body and answers its length and a checksum.
/// - `/download?n=N`: streams N bytes in 64 KiB chunks.
/// - `/slow?ms=N`: answers after N ms.
/// - `/hop`: answers with hop-by-hop headers that must not reach the client.
/// - `/ws`: a WebSocket echo.
///
/// `completed` counts requests whose body was read to the end: a smuggled or refused request
/// must never show up there.
pub struct Upstream {
    pub addr: SocketAddr,
    pub completed: Arc<AtomicUsize>,
    /// Connections from nymgate open now: what nymgate holds toward the platform. An upgraded
    /// one counts until its WebSocket ends.
    pub open: Arc<AtomicUsize>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let completed = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (counter, opened) = (completed.clone(), open.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let counter = counter.clone();
                let opened = opened.clone();
                opened.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let tunnels = opened.clone();
                    let service = hyper::service::service_fn(move |req| {
                        upstream_route(req, counter.clone(), tunnels.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .with_upgrades()
                        .await;
                    opened.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Upstream { addr, completed, open }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn completed(&self) -> usize {
        self.completed.load(Ordering::SeqCst)
    }

    /// Connections from nymgate open now (an upgraded one counts until its tunnel ends).
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

fn query_number(req: &Request<Incoming>, key: &str) -> u64 {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

async fn upstream_route(
    mut req: Request<Incoming>,
    completed: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let response = match path.as_str() {
        "/ws" => {
            let key = req.headers().get("sec-websocket-key").cloned().unwrap();
            let upgrade = hyper::upgrade::on(&mut req);
            // The upgraded connection leaves hyper's count: counted here until it ends.
            open.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                struct Uncount(Arc<AtomicUsize>);
                impl Drop for Uncount {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                let _uncount = Uncount(open);
                let Ok(upgraded) = upgrade.await else { return };
                let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    tokio_tungstenite::tungstenite::protocol::Role::Server,
                    None,
                )
                .await;
                use futures_util::{SinkExt, StreamExt};
                let (mut sink, mut stream) = ws.split();
                while let Some(Ok(msg)) = stream.next().await {
                    if (msg.is_text() || msg.is_binary()) && sink.send(msg).await.is_err() {
                        break;
                    }
                }
            });
            let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-accept", accept)
                .body(body::empty())
                .unwrap()
        }
        "/download" => {
            let n = query_number(&req, "n");
            let chunks = (0..n.div_ceil(65536)).map(move |i| {
                let len = (n - i * 65536).min(65536) as usize;
                Ok::<_, nymgate::body::BoxError>(Frame::data(Bytes::from(vec![(i % 251) as u8; len])))
            });
            Response::new(StreamBody::new(futures_util::stream::iter(chunks)).boxed_unsync())
        }
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(query_number(&req, "ms"))).await;
            Response::new(body::full("slow done"))
        }
        "/hop" => Response::builder()
            .header("connection", "x-up-secret")
            .header("x-up-secret", "must not reach the client")
            .header("keep-alive", "timeout=5")
            .header("x-up-kept", "yes")
            .body(body::full("hop"))
            .unwrap(),
        _ => {
            let (parts, incoming) = req.into_parts();
            let bytes = match incoming.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => return Ok(Response::builder().status(499).body(body::empty()).unwrap()),
            };
            completed.fetch_add(1, Ordering::SeqCst);
            if path == "/upload" {
                let sum: u64 = bytes.iter().map(|b| u64::from(*b)).sum();
                Response::new(body::full(format!("{} {}", bytes.len(), sum)))
            } else {
                let echo = nymgate::echo::Echo {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    query: parts.uri.query().map(str::to_owned),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                        .collect(),
                    body_bytes: bytes.len(),
                };
                Response::new(body::full(serde_json::to_vec(&echo).unwrap()))
            }
        }
    };
    Ok(response)
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}
