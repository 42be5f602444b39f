//! A small Redis client for the shared store: a bounded pool of connections (plain TCP or TLS
//! with rustls), AUTH with a username and password from a secret source, each command bounded
//! by a timeout. A connection that fails in any way is dropped, never reused; the next command
//! opens a fresh one, which is how the store recovers after Redis comes back.
//!
//! Hand-written rather than the `redis` crate: nymgate needs five commands, and the crate's TLS
//! support has pulled in `ring` (shared/DEPENDENCIES.md: aws-lc-rs only).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};

use super::resp::{self, Reply};
use crate::secret::Secret;

/// Why a command did not get an answer the store can use.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("cannot reach the store: {0}")]
    Connect(std::io::Error),
    #[error("the store did not answer in time")]
    Timeout,
    #[error("the store's connection failed: {0}")]
    Io(std::io::Error),
    #[error(transparent)]
    Protocol(#[from] resp::RespError),
    /// An error reply (the message is Redis's, never a key or value of ours).
    #[error("the store refused a command: {0}")]
    Refused(String),
    #[error("the store closed the connection")]
    Closed,
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

struct Conn {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
}

/// Where and how to connect.
pub struct RedisTarget {
    pub host: String,
    pub port: u16,
    pub db: u32,
    /// TLS (`rediss://`), with these roots.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("db", &self.db)
            .field("tls", &self.tls.is_some())
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

pub struct RedisClient {
    target: RedisTarget,
    idle: Mutex<Vec<Conn>>,
    slots: Semaphore,
    timeout: Duration,
}

impl RedisClient {
    pub fn new(target: RedisTarget, pool_size: usize, timeout: Duration) -> Self {
        Self { target, idle: Mutex::new(Vec::new()), slots: Semaphore::new(pool_size.max(1)), timeout }
    }

    /// Runs one command on a pooled connection, within the timeout (waiting for a free
    /// connection counts).
    pub async fn run(&self, parts: &[&[u8]]) -> Result<Reply, RedisError> {
        let request = resp::command(parts);
        tokio::time::timeout(self.timeout, self.run_inner(&request)).await.map_err(|_| RedisError::Timeout)?
    }

    async fn run_inner(&self, request: &[u8]) -> Result<Reply, RedisError> {
        let _slot = self.slots.acquire().await.map_err(|_| RedisError::Closed)?;
        let pooled = self.idle.lock().await.pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        // On any error the connection is dropped here, not returned to the pool.
        let reply = conn.call(request).await?;
        self.idle.lock().await.push(conn);
        match reply {
            Reply::Error(message) => Err(RedisError::Refused(message)),
            reply => Ok(reply),
        }
    }

    async fn connect(&self) -> Result<Conn, RedisError> {
        let target = &self.target;
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
            .await
            .map_err(RedisError::Connect)?
            .collect();
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address for the store's host");
        let mut tcp = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(error) => last = error,
            }
        }
        let tcp = tcp.ok_or(RedisError::Connect(last))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = match &target.tls {
            None => Box::new(tcp),
            Some(config) => {
                let name = ServerName::try_from(target.host.clone()).map_err(|e| {
                    RedisError::Connect(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
                })?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(RedisError::Connect)?;
                Box::new(tls)
            }
        };
        let mut conn = Conn { stream, buf: Vec::new() };
        if let Some(password) = &target.password {
            let reply = match &target.username {
                Some(user) => {
                    conn.call(&resp::command(&[b"AUTH", user.as_bytes(), password.expose()])).await?
                }
                None => conn.call(&resp::command(&[b"AUTH", password.expose()])).await?,
            };
            if let Reply::Error(message) = reply {
                return Err(RedisError::Refused(message));
            }
        }
        if target.db != 0 {
            let db = target.db.to_string();
            if let Reply::Error(message) = conn.call(&resp::command(&[b"SELECT", db.as_bytes()])).await? {
                return Err(RedisError::Refused(message));
            }
        }
        Ok(conn)
    }
}

impl Conn {
    async fn call(&mut self, request: &[u8]) -> Result<Reply, RedisError> {
        self.stream.write_all(request).await.map_err(RedisError::Io)?;
        self.stream.flush().await.map_err(RedisError::Io)?;
        loop {
            if let Some((reply, used)) = resp::parse(&self.buf)? {
                self.buf.drain(..used);
                return Ok(reply);
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.map_err(RedisError::Io)?;
            if n == 0 {
                return Err(RedisError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
