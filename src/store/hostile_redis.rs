//! A scripted Redis for the store's tests: a loopback listener that reads nymgate's pipelined
//! calls (a command, then `PING <fence>`) and answers each as the test's script says, however
//! broken. Records how many connections it accepted and how many the client closed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::redis::{RedisClient, RedisTarget};
use super::resp::{Reader, Reply};

/// One call as the server read it.
#[derive(Debug, Clone)]
pub struct Call {
    /// Which connection (from 0, in accept order) and which call on it (from 0).
    pub conn: usize,
    pub index: usize,
    /// The command's words, e.g. `["SET", key, "1", "NX", ...]`.
    pub command: Vec<Vec<u8>>,
    /// The fence's value, as a reply echoing it: `$len\r\nfence\r\n`.
    pub fence: Vec<u8>,
}

/// What the server does with a call.
pub enum Answer {
    /// These bytes at once.
    Bytes(Vec<u8>),
    /// These bytes, then, after a pause, these too (a reply sent late).
    Late(Vec<u8>, Duration, Vec<u8>),
    /// These bytes one at a time, this far apart.
    Drip(Vec<u8>, Duration),
    /// These bytes, then the server closes its side.
    ThenClose(Vec<u8>),
    /// These bytes over and over until the client goes away.
    Forever(Vec<u8>),
}

pub type Script = Arc<dyn Fn(&Call) -> Answer + Send + Sync>;

pub struct HostileRedis {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl HostileRedis {
    pub async fn start(script: impl Fn(&Call) -> Answer + Send + Sync + 'static) -> HostileRedis {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let script: Script = Arc::new(script);
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(Mutex::new(Vec::new()));
        let (a, c, log) = (accepted.clone(), closed.clone(), calls.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let conn = a.fetch_add(1, Ordering::SeqCst);
                let (script, closed, log) = (script.clone(), c.clone(), log.clone());
                tokio::spawn(async move {
                    serve(stream, conn, script, log).await;
                    closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        HostileRedis { port, accepted, closed, calls }
    }

    pub fn client(&self, pool_size: usize, timeout: Duration) -> RedisClient {
        let target = RedisTarget {
            host: "127.0.0.1".into(),
            port: self.port,
            db: 0,
            tls: None,
            username: None,
            password: None,
        };
        RedisClient::new(target, pool_size, timeout)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections whose client side has closed (or whose writes failed).
    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

/// The bytes Redis sends for `reply`.
pub fn encode(reply: &Reply) -> Vec<u8> {
    match reply {
        Reply::Simple(s) => format!("+{s}\r\n").into_bytes(),
        Reply::Error(s) => format!("-{s}\r\n").into_bytes(),
        Reply::Integer(n) => format!(":{n}\r\n").into_bytes(),
        Reply::Bulk(b) => [format!("${}\r\n", b.len()).as_bytes(), b, b"\r\n"].concat(),
        Reply::Nil => b"$-1\r\n".to_vec(),
        Reply::Array(items) => {
            let mut out = format!("*{}\r\n", items.len()).into_bytes();
            items.iter().for_each(|item| out.extend(encode(item)));
            out
        }
    }
}

/// A well-framed answer: `reply`, then the fence.
pub fn fenced(reply: &[u8], call: &Call) -> Vec<u8> {
    [reply, &call.fence].concat()
}

async fn serve(mut stream: TcpStream, conn: usize, script: Script, log: Arc<Mutex<Vec<Call>>>) {
    let mut reader = Reader::new();
    let mut read: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut index = 0;
    loop {
        let Ok(n) = stream.read(&mut chunk).await else { return };
        if n == 0 {
            return;
        }
        let mut rest = &chunk[..n];
        while let Ok(Some((reply, used))) = reader.feed(rest) {
            rest = &rest[used..];
            let Reply::Array(words) = reply else { panic!("nymgate sent a command that is not an array") };
            read.push(
                words
                    .into_iter()
                    .map(|w| if let Reply::Bulk(w) = w { w } else { panic!("a word") })
                    .collect(),
            );
            if rest.is_empty() {
                break;
            }
        }
        while read.len() >= 2 {
            let command = read.remove(0);
            let ping = read.remove(0);
            assert_eq!(ping.first().map(Vec::as_slice), Some(&b"PING"[..]), "every command is fenced");
            let call = Call { conn, index, command, fence: encode(&Reply::Bulk(ping[1].clone())) };
            index += 1;
            log.lock().unwrap().push(call.clone());
            let done = match script(&call) {
                Answer::Bytes(bytes) => stream.write_all(&bytes).await.is_ok(),
                Answer::Late(first, pause, late) => {
                    let ok = stream.write_all(&first).await.is_ok();
                    tokio::time::sleep(pause).await;
                    ok && stream.write_all(&late).await.is_ok()
                }
                Answer::Drip(bytes, every) => {
                    let mut ok = true;
                    for byte in bytes {
                        tokio::time::sleep(every).await;
                        if stream.write_all(&[byte]).await.is_err() {
                            ok = false;
                            break;
                        }
                    }
                    ok
                }
                Answer::ThenClose(bytes) => {
                    let _ = stream.write_all(&bytes).await;
                    let _ = stream.shutdown().await;
                    false
                }
                Answer::Forever(bytes) => {
                    while stream.write_all(&bytes).await.is_ok() {}
                    false
                }
            };
            if !done {
                // Hold the connection until the client closes it, so `closed` counts the client.
                let mut sink = [0u8; 4096];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
        }
    }
}
