//! A virtual browser for `nymgate loadtest`: its own connections (one per origin, kept alive
//! across requests, HTTP/1.1 or HTTP/2 by ALPN) and its own cookie jar. Redirects are not
//! followed: the login flow takes each step itself, so each step is timed on its own.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The most a load test reads of one answer.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Which HTTP version the browser asks nymgate for (ALPN); plain-http origins use HTTP/1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum HttpVersion {
    #[value(name = "1.1")]
    #[serde(rename = "1.1")]
    Http1,
    #[value(name = "2")]
    #[serde(rename = "2")]
    Http2,
}

/// Why a request failed, as counted in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Connect,
    Tls,
    Send,
    Timeout,
    TooLarge,
}

impl Failure {
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Connect => "connect failed",
            Failure::Tls => "TLS handshake failed",
            Failure::Send => "connection error",
            Failure::Timeout => "timed out",
            Failure::TooLarge => "answer over 4 MiB",
        }
    }
}

/// An answer, read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// One browser. Not shared between tasks.
pub struct Browser {
    /// With the run's ALPN (see [`tls_config`]).
    tls: tokio_rustls::TlsConnector,
    timeout: Duration,
    /// scheme://authority → the open connection.
    connections: HashMap<String, Sender>,
    /// Cookies by host (RFC 6265 §8.5: cookies do not isolate by port), name → value.
    cookies: HashMap<String, HashMap<String, String>>,
}

impl Browser {
    pub fn new(tls: Arc<rustls::ClientConfig>, timeout: Duration) -> Browser {
        Browser { tls: tls.into(), timeout, connections: HashMap::new(), cookies: HashMap::new() }
    }

    /// A new person at the same browser: the cookie jar is emptied, connections stay open.
    pub fn clear_cookies(&mut self) {
        self.cookies.clear();
    }

    pub async fn get(&mut self, url: &str, extra: &[(HeaderName, HeaderValue)]) -> Result<Reply, Failure> {
        self.send(Method::GET, url, extra, None).await
    }

    /// POST of an `application/x-www-form-urlencoded` body.
    pub async fn post_form<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        url: &str,
        extra: &[(HeaderName, HeaderValue)],
        fields: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Reply, Failure> {
        let body: String =
            openidconnect::url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        self.send(Method::POST, url, extra, Some(Bytes::from(body))).await
    }

    async fn send(
        &mut self,
        method: Method,
        url: &str,
        extra: &[(HeaderName, HeaderValue)],
        body: Option<Bytes>,
    ) -> Result<Reply, Failure> {
        let uri: Uri = url.parse().map_err(|_| Failure::Send)?;
        let (scheme, authority) = match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), Some(authority)) => (scheme.to_owned(), authority.clone()),
            _ => return Err(Failure::Send),
        };
        let host = authority.host().to_owned();
        let origin = format!("{scheme}://{authority}");
        let mut builder = Request::builder().method(method).uri(uri.clone());
        let cookies = self.cookie_header(&host);
        let headers = builder.headers_mut().expect("a fresh builder");
        for (name, value) in extra {
            headers.insert(name.clone(), value.clone());
        }
        if let Some(cookies) = cookies {
            headers.insert(header::COOKIE, cookies);
        }
        let has_body = body.is_some();
        if has_body {
            headers
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        }
        let timeout = self.timeout;
        let work = async {
            let sender = self.connection(&scheme, &authority, &origin).await?;
            let response = match sender {
                Sender::H1(sender) => {
                    // HTTP/1.1 wants the origin form and a Host header.
                    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
                    let request = builder
                        .uri(path)
                        .header(header::HOST, authority.as_str())
                        .body(Full::new(body.unwrap_or_default()))
                        .map_err(|_| Failure::Send)?;
                    sender.send_request(request).await
                }
                Sender::H2(sender) => {
                    let request =
                        builder.body(Full::new(body.unwrap_or_default())).map_err(|_| Failure::Send)?;
                    sender.send_request(request).await
                }
            };
            let response = match response {
                Ok(response) => response,
                Err(_) => {
                    self.connections.remove(&origin);
                    return Err(Failure::Send);
                }
            };
            let (parts, incoming) = response.into_parts();
            let body = match Limited::new(incoming, MAX_BODY_BYTES).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(error) => {
                    self.connections.remove(&origin);
                    let too_large = error.downcast_ref::<http_body_util::LengthLimitError>().is_some();
                    return Err(if too_large { Failure::TooLarge } else { Failure::Send });
                }
            };
            Ok(Reply { status: parts.status, headers: parts.headers, body })
        };
        let reply = match tokio::time::timeout(timeout, work).await {
            Ok(result) => result?,
            Err(_) => {
                self.connections.remove(&origin);
                return Err(Failure::Timeout);
            }
        };
        self.store_cookies(&host, &reply.headers);
        Ok(reply)
    }

    /// The open connection to `origin`, or a new one.
    async fn connection(
        &mut self,
        scheme: &str,
        authority: &http::uri::Authority,
        origin: &str,
    ) -> Result<&mut Sender, Failure> {
        let usable = match self.connections.get_mut(origin) {
            Some(Sender::H1(sender)) => sender.ready().await.is_ok(),
            Some(Sender::H2(sender)) => sender.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            let sender = self.connect(scheme, authority).await?;
            self.connections.insert(origin.to_owned(), sender);
        }
        Ok(self.connections.get_mut(origin).expect("inserted above"))
    }

    async fn connect(&self, scheme: &str, authority: &http::uri::Authority) -> Result<Sender, Failure> {
        let https = scheme == "https";
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
        let tcp =
            tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|_| Failure::Connect)?;
        let _ = tcp.set_nodelay(true);
        if !https {
            let (sender, connection) =
                http1::handshake(TokioIo::new(tcp)).await.map_err(|_| Failure::Connect)?;
            tokio::spawn(connection);
            return Ok(Sender::H1(sender));
        }
        let name = rustls_pki_types::ServerName::try_from(host).map_err(|_| Failure::Tls)?;
        let stream = self.tls.connect(name, tcp).await.map_err(|_| Failure::Tls)?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(stream);
        if h2 {
            let (sender, connection) =
                http2::handshake(TokioExecutor::new(), io).await.map_err(|_| Failure::Connect)?;
            tokio::spawn(connection);
            Ok(Sender::H2(sender))
        } else {
            let (sender, connection) = http1::handshake(io).await.map_err(|_| Failure::Connect)?;
            tokio::spawn(connection);
            Ok(Sender::H1(sender))
        }
    }

    fn cookie_header(&self, host: &str) -> Option<HeaderValue> {
        let jar = self.cookies.get(host).filter(|jar| !jar.is_empty())?;
        let line = jar.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ");
        HeaderValue::from_str(&line).ok()
    }

    /// `Set-Cookie` (RFC 6265 §5.2): name=value, removed by `Max-Age=0` or an empty value with
    /// an expiry. Path and Domain attributes are not needed here: nymgate's cookies are host
    /// cookies on `/`.
    fn store_cookies(&mut self, host: &str, headers: &http::HeaderMap) {
        for line in headers.get_all(header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            let mut attributes = line.split(';');
            let Some((name, value)) = attributes.next().and_then(|pair| pair.trim().split_once('=')) else {
                continue;
            };
            let expired = attributes.any(|a| {
                let a = a.trim().to_ascii_lowercase();
                a == "max-age=0" || a.starts_with("max-age=-")
            });
            let jar = self.cookies.entry(host.to_owned()).or_default();
            if expired {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }
}

/// The TLS client configuration of every virtual browser: nymgate's CA from `ca_file` (else
/// the system roots, as for the upstream), or no verification at all with `insecure` (a
/// staging host with a self-signed certificate). ALPN asks for `version`.
pub fn tls_config(
    ca_file: Option<&std::path::Path>,
    insecure: bool,
    version: HttpVersion,
) -> Result<Arc<rustls::ClientConfig>, String> {
    crate::tls::install_crypto_provider();
    let builder = rustls::ClientConfig::builder();
    let mut config = if insecure {
        let provider = rustls::crypto::CryptoProvider::get_default().expect("installed above").clone();
        builder.dangerous().with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        let roots = crate::tls::upstream_roots(ca_file).map_err(|e| e.to_string())?;
        builder.with_root_certificates(roots)
    }
    .with_no_client_auth();
    config.alpn_protocols = match version {
        HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
        HttpVersion::Http2 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };
    Ok(Arc::new(config))
}

/// `--insecure`: accepts any certificate (signatures are still checked, so the handshake is
/// the real cost). For load tests of a staging host only.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[&str]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for line in lines {
            map.append(header::SET_COOKIE, HeaderValue::from_str(line).unwrap());
        }
        map
    }

    #[test]
    fn the_jar_keeps_sets_and_removes_cookies_per_host() {
        let mut browser =
            Browser::new(tls_config(None, true, HttpVersion::Http1).unwrap(), Duration::from_secs(1));
        browser.store_cookies(
            "localhost",
            &headers(&["__Host-a=1; Path=/; Secure; HttpOnly", "b=two=2; SameSite=Lax", "broken"]),
        );
        let line = browser.cookie_header("localhost").unwrap();
        let mut pairs: Vec<&str> = line.to_str().unwrap().split("; ").collect();
        pairs.sort();
        assert_eq!(pairs, ["__Host-a=1", "b=two=2"]);
        assert!(browser.cookie_header("elsewhere").is_none());
        browser.store_cookies("localhost", &headers(&["__Host-a=; Max-Age=0; Path=/"]));
        assert_eq!(browser.cookie_header("localhost").unwrap(), "b=two=2");
        browser.clear_cookies();
        assert!(browser.cookie_header("localhost").is_none());
    }
}
