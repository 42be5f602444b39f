//! The HTTP client nymgate uses toward a school's IdP (discovery, JWKS, token, userinfo), and
//! toward the alert webhook.
//!
//! It is hyper with rustls (aws-lc-rs), the same stack as the platform connection, handed to
//! openidconnect as its `AsyncHttpClient` (shared/DEPENDENCIES.md: openidconnect's default
//! reqwest pulls in ring). It never follows redirects (an IdP endpoint that redirects is
//! misconfigured, and following would let metadata steer nymgate elsewhere), bounds the whole
//! exchange by a timeout and the response body by a size limit.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};

use crate::tls::{self, TlsError};

/// IdP documents (metadata, JWKS, token responses) are small; 1 MiB is generous.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(10);

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

#[derive(Debug, thiserror::Error)]
pub enum IdpHttpError {
    #[error("IdP did not answer within {0:?}")]
    Timeout(Duration),
    #[error("IdP request failed: {0}")]
    Transport(String),
    #[error("IdP response larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
}

/// A pooled client for one tenant's IdP (its own CA bundle).
#[derive(Clone)]
pub struct IdpHttp {
    client: Client<Connector, Full<Bytes>>,
    timeout: Duration,
}

impl IdpHttp {
    pub fn new(ca_file: Option<&Path>) -> Result<Self, TlsError> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        http.set_nodelay(true);
        let roots = tls::upstream_roots(ca_file)?;
        let tls_config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        // Plain http is allowed only where the config allowed it (loopback, see config).
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Self { client, timeout: TIMEOUT })
    }

    /// Bounds each exchange by `timeout` instead of the default 10 s.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    pub async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, IdpHttpError> {
        let (parts, body) = request.into_parts();
        let request = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| IdpHttpError::Transport(crate::telemetry::error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES).collect().await.map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                    IdpHttpError::TooLarge
                } else {
                    IdpHttpError::Transport(e.to_string())
                }
            })?;
            Ok(http::Response::from_parts(parts, body.to_bytes().to_vec()))
        };
        let timeout = self.timeout;
        tokio::time::timeout(timeout, exchange).await.unwrap_or(Err(IdpHttpError::Timeout(timeout)))
    }

    /// GET a URL, for metadata and JWKS.
    pub async fn get(&self, url: &str, accept: &'static str) -> Result<HttpResponse, IdpHttpError> {
        let request = http::Request::get(url)
            .header(http::header::ACCEPT, accept)
            .body(Vec::new())
            .map_err(|e| IdpHttpError::Transport(e.to_string()))?;
        self.execute(request).await
    }
}

impl<'c> AsyncHttpClient<'c> for IdpHttp {
    type Error = IdpHttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, IdpHttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}
