//! A small Redis client for the shared store: a bounded pool of connections (plain TCP or TLS
//! with rustls), AUTH with a username and password from a secret source, each command bounded
//! by a timeout. A connection that fails in any way is dropped, never reused; the next command
//! opens a fresh one, which is how the store recovers after Redis comes back.
//!
//! Redis's framing is not trusted (issue 27): a broken server, or anything between it and
//! nymgate, may answer a command twice, late, or with a reply of the wrong shape, and RESP2
//! replies carry no request id to tell them apart. So:
//! - Every command is followed, in the same write, by `PING <fence>` with a value unique to the
//!   command, and its answer counts only if exactly two replies follow: the command's, then the
//!   fence echoed back. A stale reply ahead of ours shifts ours into the fence's place, so it is
//!   refused instead of read as our answer (a false "blocked", or an accepted replay against
//!   `SET NX`). No extra round trip: the two are pipelined.
//! - A connection is never reused with unread bytes: a byte after the fence's reply fails the
//!   command, and a pooled connection is checked for bytes (or its end) before it is used and
//!   dropped if it has any. For TLS the check reads the decrypted stream, so a TLS record that
//!   carries no data (a session ticket) is not mistaken for a reply.
//! - Replies are read incrementally with bounds on size and depth (resp.rs), and any reply that
//!   is not what the command expects is an error for the caller (store/mod.rs: fail closed).
//! - One deadline, the store timeout, covers the whole command: waiting for a pooled
//!   connection, connecting (TCP, TLS, AUTH, SELECT), writing, and reading every byte. A reply
//!   dripped a byte at a time ends at the deadline like silence does, and the connection, owned
//!   by the command, is dropped with it.
//!
//! Hand-written rather than the `redis` crate: nymgate needs five commands, and the crate's TLS
//! support has pulled in `ring` (shared/DEPENDENCIES.md: aws-lc-rs only).

use std::future::poll_fn;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
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
    /// The replies do not line up with the commands: one too many, or the fence not in its
    /// place (never the bytes themselves: they are the server's).
    #[error("the store's replies do not line up with the commands: {0}")]
    Unframed(&'static str),
    /// A reply of a type the command never answers with.
    #[error("the store answered {0} with a reply of the wrong type")]
    Unexpected(&'static str),
    /// An error reply, by its code only (`NOPERM`, `WRONGPASS`, ...): the rest of the text is
    /// the server's bytes and could carry anything, so it never reaches a log.
    #[error("the store refused a command: {0}")]
    Refused(String),
    #[error("the store closed the connection")]
    Closed,
}

/// An error reply's code: its first word when that is 1 to 32 upper-case letters (RESP's
/// convention, e.g. `ERR`, `NOPERM`), else `UNKNOWN`.
fn refused(message: &str) -> RedisError {
    let code = message.split(' ').next().unwrap_or_default();
    let valid = (1..=32).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_uppercase());
    RedisError::Refused(if valid { code.to_owned() } else { "UNKNOWN".to_owned() })
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

struct Conn {
    stream: Box<dyn Stream>,
    /// False once the server has ended the stream (after a complete reply): not pooled again.
    reusable: bool,
}

/// What a stream holds right now, without waiting.
#[derive(Debug, PartialEq, Eq)]
enum Pending {
    Nothing,
    /// Bytes nobody asked for (or a read error).
    Bytes,
    /// The server closed its side.
    End,
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
    /// Numbers the fences, so that no two commands of this process expect the same one.
    fences: AtomicU64,
}

impl RedisClient {
    pub fn new(target: RedisTarget, pool_size: usize, timeout: Duration) -> Self {
        Self {
            target,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(pool_size.max(1)),
            timeout,
            fences: AtomicU64::new(0),
        }
    }

    /// Runs one command on a pooled connection. The timeout bounds all of it, whatever Redis
    /// sends: waiting for a free connection, connecting, writing, reading every byte.
    pub async fn run(&self, parts: &[&[u8]]) -> Result<Reply, RedisError> {
        let request = resp::command(parts);
        tokio::time::timeout(self.timeout, self.run_inner(&request)).await.map_err(|_| RedisError::Timeout)?
    }

    async fn run_inner(&self, request: &[u8]) -> Result<Reply, RedisError> {
        let _slot = self.slots.acquire().await.map_err(|_| RedisError::Closed)?;
        // At most pool_size connections are idle, so this ends.
        let mut conn = loop {
            let pooled = self.idle.lock().await.pop();
            match pooled {
                Some(mut conn) => match conn.pending().await {
                    Pending::Nothing => break conn,
                    // The command has not been sent yet, so another connection is safe.
                    Pending::Bytes => {
                        tracing::warn!("the store sent bytes on an idle connection (a reply to no command): it is dropped");
                    }
                    Pending::End => tracing::debug!("the store closed an idle connection"),
                },
                None => break self.connect().await?,
            }
        };
        // On any error the connection is dropped here, not returned to the pool.
        let reply = conn.call(request, &self.fence()).await?;
        if conn.reusable {
            self.idle.lock().await.push(conn);
        }
        match reply {
            Reply::Error(message) => Err(refused(&message)),
            reply => Ok(reply),
        }
    }

    fn fence(&self) -> Vec<u8> {
        format!("nymgate-fence-{}", self.fences.fetch_add(1, Ordering::Relaxed)).into_bytes()
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
        let mut conn = Conn { stream, reusable: true };
        if let Some(password) = &target.password {
            let auth = match &target.username {
                Some(user) => resp::command(&[b"AUTH", user.as_bytes(), password.expose()]),
                None => resp::command(&[b"AUTH", password.expose()]),
            };
            expect_ok("AUTH", conn.call(&auth, &self.fence()).await?)?;
        }
        if target.db != 0 {
            let db = target.db.to_string();
            expect_ok(
                "SELECT",
                conn.call(&resp::command(&[b"SELECT", db.as_bytes()]), &self.fence()).await?,
            )?;
        }
        Ok(conn)
    }
}

/// AUTH and SELECT answer `+OK` or an error; anything else is not Redis answering them.
fn expect_ok(command: &'static str, reply: Reply) -> Result<(), RedisError> {
    match reply {
        Reply::Simple(ok) if ok == "OK" => Ok(()),
        Reply::Error(message) => Err(refused(&message)),
        _ => Err(RedisError::Unexpected(command)),
    }
}

impl Conn {
    /// Sends `request` and `PING fence` together and reads exactly their two replies; the
    /// command's reply counts only with the fence echoed right after it and nothing after that.
    async fn call(&mut self, request: &[u8], fence: &[u8]) -> Result<Reply, RedisError> {
        let mut out = request.to_vec();
        out.extend_from_slice(&resp::command(&[b"PING", fence]));
        self.stream.write_all(&out).await.map_err(RedisError::Io)?;
        self.stream.flush().await.map_err(RedisError::Io)?;
        let mut reader = resp::Reader::new();
        let mut replies = Vec::with_capacity(2);
        let mut chunk = [0u8; 4096];
        while replies.len() < 2 {
            let n = self.stream.read(&mut chunk).await.map_err(RedisError::Io)?;
            if n == 0 {
                return Err(RedisError::Closed);
            }
            let mut rest = &chunk[..n];
            while !rest.is_empty() {
                if replies.len() == 2 {
                    return Err(RedisError::Unframed("bytes after the reply"));
                }
                match reader.feed(rest)? {
                    Some((reply, used)) => {
                        replies.push(reply);
                        rest = &rest[used..];
                    }
                    None => break,
                }
            }
        }
        let (Some(fenced), Some(reply)) = (replies.pop(), replies.pop()) else {
            return Err(RedisError::Unframed("a reply is missing"));
        };
        if fenced != Reply::Bulk(fence.to_vec()) {
            // An error reply in the command's place is most likely the command's own (AUTH
            // refused, then the fence refused for want of it): say so, the result is the same.
            return Err(match reply {
                Reply::Error(message) => refused(&message),
                _ => RedisError::Unframed("the fence is not where the reply should end"),
            });
        }
        match self.pending().await {
            Pending::Nothing => {}
            Pending::Bytes => return Err(RedisError::Unframed("bytes after the reply")),
            // The reply is whole and in frame; the connection just goes no further.
            Pending::End => self.reusable = false,
        }
        Ok(reply)
    }

    /// What the stream has to read right now, without waiting: a connection with anything
    /// must not carry another command. Polled once; for TLS this is the decrypted stream, so a
    /// record without data (a session ticket) is not counted. A byte that the runtime has not
    /// yet seen arrive can slip past this check; the fence catches it at the next command.
    async fn pending(&mut self) -> Pending {
        let mut byte = [0u8; 1];
        let stream = &mut self.stream;
        poll_fn(|cx| {
            let mut buf = ReadBuf::new(&mut byte);
            Poll::Ready(match Pin::new(&mut **stream).poll_read(cx, &mut buf) {
                Poll::Pending => Pending::Nothing,
                Poll::Ready(Ok(())) if buf.filled().is_empty() => Pending::End,
                Poll::Ready(_) => Pending::Bytes,
            })
        })
        .await
    }
}

#[cfg(test)]
#[path = "redis_tests.rs"]
mod tests;
