//! The parking lot: one worker's parked HTTP/1.1 connections, waiting for their clients'
//! next bytes without a task each.
//!
//! Why: most keep-alive connections sit idle between requests most of the time, and conn_io.rs
//! parks them outside hyper. A tokio task per waiting connection cost 1,024 B (tokio sizes a
//! task to its future's largest state and aligns it to 128 B), 270 B of which were the idle timer
//! and the shutdown watch every one of them held. In the lot, a parked connection is a slab entry:
//! the connection, boxed, the instant it times out and the waker its socket holds
//! (BENCHMARKS.md §1).
//!
//! How:
//! - Each parked socket's read readiness is registered with a waker that names its slot.
//! - One task per worker ([`ParkingLot::run`]) takes the woken slots, polls their sockets again
//!   and hands the readable ones back to be served. A wake is a hint, not a promise: a slot may
//!   have changed hands since (slots are reused), or the readiness may be gone; polling again
//!   with the slot's own waker is right in every case.
//! - The same task closes connections idle past their timeout. It sweeps the whole lot, at most
//!   once per [`SWEEP_GRANULARITY`]: a timer per connection, or a heap of deadlines that
//!   connections leave early (most do), would cost more than a scan of entries.
//! - At shutdown it closes every parked connection, and any parked later is closed at once.

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use slab::Slab;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::metrics::Metrics;

/// How late an idle timeout may fire: the sweep runs at most this often.
pub const SWEEP_GRANULARITY: Duration = Duration::from_millis(100);

/// A connection waiting in the lot.
pub trait Parked: Send + 'static {
    /// Polls the socket's read readiness, registering `cx`'s waker with the socket.
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// The client wrote (or its socket reports an error): serve it, in a task of its own.
    fn resume(self: Box<Self>);
    /// Idle past its timeout, or the server is shutting down: say goodbye, in a task of its own.
    fn close(self: Box<Self>);
}

/// One worker's parked connections. Cheap to share: the accept loop's connections park here
/// and the worker's lot task ([`ParkingLot::run`]) watches them.
#[derive(Clone)]
pub struct ParkingLot {
    shared: Arc<Shared>,
}

struct Shared {
    lot: Mutex<Lot>,
    /// Slots whose sockets woke, for the lot task. Apart from `lot`: a socket may wake while
    /// `lot` is held (a wake never takes `lot`).
    woken: Mutex<Vec<usize>>,
    /// Wakes the lot task: a slot woke, an earlier deadline arrived, or shutdown.
    notify: Notify,
    metrics: Arc<Metrics>,
}

struct Lot {
    entries: Slab<Entry>,
    /// When the lot task should sweep next: the earliest deadline, if any connection is parked.
    next_sweep: Option<Instant>,
    closed: bool,
}

struct Entry {
    conn: Box<dyn Parked>,
    deadline: Instant,
    /// The waker the socket holds; kept to poll the socket again without replacing it.
    waker: Waker,
}

/// Wakes the lot for one slot. Holds the lot weakly: entries hold their wakers.
struct SlotWaker {
    shared: Weak<Shared>,
    slot: usize,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(shared) = self.shared.upgrade() {
            lock(&shared.woken).push(self.slot);
            shared.notify.notify_one();
        }
    }
}

/// A poisoned lock means a panic elsewhere; the lot's state is still consistent (every change
/// under the lock is a single slab operation), so carry on rather than panic again.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ParkingLot {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let lot = Lot { entries: Slab::new(), next_sweep: None, closed: false };
        let shared = Shared { lot: Mutex::new(lot), woken: Mutex::default(), notify: Notify::new(), metrics };
        Self { shared: Arc::new(shared) }
    }

    /// Parks `conn` until its client writes or `idle_for` passes. A connection whose client has
    /// already written is resumed at once; after shutdown, every connection is closed at once.
    pub fn park(&self, conn: Box<dyn Parked>, idle_for: Duration) {
        let deadline = Instant::now() + idle_for;
        let mut lot = lock(&self.shared.lot);
        if lot.closed {
            drop(lot);
            conn.close();
            return;
        }
        let Lot { entries, next_sweep, .. } = &mut *lot;
        let vacant = entries.vacant_entry();
        let slot = vacant.key();
        let waker = Waker::from(Arc::new(SlotWaker { shared: Arc::downgrade(&self.shared), slot }));
        match conn.poll_readable(&mut Context::from_waker(&waker)) {
            Poll::Pending => {
                vacant.insert(Entry { conn, deadline, waker });
                self.shared.metrics.parked_connections_changed(1);
                if next_sweep.is_none_or(|at| deadline < at) {
                    *next_sweep = Some(deadline);
                    drop(lot);
                    self.shared.notify.notify_one();
                }
            }
            Poll::Ready(result) => {
                drop(lot);
                resume_or_drop(conn, result);
            }
        }
    }

    /// How many connections are parked.
    pub fn len(&self) -> usize {
        lock(&self.shared.lot).entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The lot's task: resumes connections whose clients write, closes those idle past their
    /// deadline, and when `shutdown` resolves closes them all and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut woken = Vec::new();
        let mut last_sweep = Instant::now();
        loop {
            // The sweep waits for the earliest deadline, and never comes sooner than the
            // granularity after the previous one.
            let sweep_at = lock(&self.shared.lot).next_sweep.map(|at| at.max(last_sweep + SWEEP_GRANULARITY));
            tokio::select! {
                _ = self.shared.notify.notified() => {
                    std::mem::swap(&mut woken, &mut *lock(&self.shared.woken));
                    self.take_woken(&mut woken);
                }
                _ = tokio::time::sleep_until(sweep_at.unwrap_or_else(Instant::now)), if sweep_at.is_some() => {
                    last_sweep = Instant::now();
                    self.sweep(last_sweep);
                }
                _ = &mut shutdown => {
                    self.close_all();
                    return;
                }
            }
        }
    }

    /// Polls the woken slots' sockets again; resumes the readable ones. Empties `woken`.
    fn take_woken(&self, woken: &mut Vec<usize>) {
        let mut ready = Vec::new();
        {
            let mut lot = lock(&self.shared.lot);
            for slot in woken.drain(..) {
                let Some(entry) = lot.entries.get(slot) else { continue };
                if let Poll::Ready(result) = entry.conn.poll_readable(&mut Context::from_waker(&entry.waker))
                {
                    ready.push((lot.entries.remove(slot).conn, result));
                }
            }
        }
        self.shared.metrics.parked_connections_changed(-(ready.len() as i64));
        for (conn, result) in ready {
            resume_or_drop(conn, result);
        }
    }

    /// Closes every connection whose deadline has passed; notes when the next one is due.
    fn sweep(&self, now: Instant) {
        let expired: Vec<Entry> = {
            let mut lot = lock(&self.shared.lot);
            let keys: Vec<usize> =
                lot.entries.iter().filter(|(_, entry)| entry.deadline <= now).map(|(key, _)| key).collect();
            let expired = keys.into_iter().map(|key| lot.entries.remove(key)).collect();
            lot.next_sweep = lot.entries.iter().map(|(_, entry)| entry.deadline).min();
            expired
        };
        self.shared.metrics.parked_connections_changed(-(expired.len() as i64));
        for entry in expired {
            entry.conn.close();
        }
    }

    /// Closes every parked connection, and from now on every connection parked.
    fn close_all(&self) {
        let closing: Vec<Entry> = {
            let mut lot = lock(&self.shared.lot);
            lot.closed = true;
            lot.next_sweep = None;
            lot.entries.drain().collect()
        };
        self.shared.metrics.parked_connections_changed(-(closing.len() as i64));
        for entry in closing {
            entry.conn.close();
        }
    }
}

/// A socket that became readable resumes; one that reports an error has nothing to resume or
/// to say goodbye on, and is dropped (closing it).
fn resume_or_drop(conn: Box<dyn Parked>, readiness: io::Result<()>) {
    match readiness {
        Ok(()) => conn.resume(),
        Err(error) => tracing::debug!(%error, "parked connection failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;

    #[derive(Debug, PartialEq, Eq)]
    enum Left {
        Resumed(u32),
        Closed(u32),
    }

    /// A connection that reports how it left the lot. Its socket is real (loopback TCP).
    struct Conn {
        id: u32,
        tcp: TcpStream,
        left: mpsc::UnboundedSender<Left>,
    }

    impl Parked for Conn {
        fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.tcp.poll_read_ready(cx)
        }
        fn resume(self: Box<Self>) {
            let _ = self.left.send(Left::Resumed(self.id));
        }
        fn close(self: Box<Self>) {
            let _ = self.left.send(Left::Closed(self.id));
        }
    }

    struct Setup {
        lot: ParkingLot,
        metrics: Arc<Metrics>,
        left: mpsc::UnboundedReceiver<Left>,
        send: mpsc::UnboundedSender<Left>,
        listener: TcpListener,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
    }

    impl Setup {
        async fn new() -> Self {
            let metrics = Arc::new(Metrics::new());
            let lot = ParkingLot::new(metrics.clone());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            tokio::spawn(lot.clone().run(async move {
                let _ = stopped.await;
            }));
            let (send, left) = mpsc::unbounded_channel();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            Self { lot, metrics, left, send, listener, stop: Some(stop) }
        }

        /// Parks a connection with `id`; returns the client's end of its socket.
        async fn park(&self, id: u32, idle_for: Duration) -> TcpStream {
            let client = TcpStream::connect(self.listener.local_addr().unwrap()).await.unwrap();
            let (tcp, _) = self.listener.accept().await.unwrap();
            // As a served connection parks: its last read found nothing (and so cleared the
            // socket's readiness; a fresh socket may report a false positive).
            let mut buf = [0u8; 8];
            assert_eq!(tcp.try_read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
            self.lot.park(Box::new(Conn { id, tcp, left: self.send.clone() }), idle_for);
            client
        }

        async fn next_left(&mut self) -> Left {
            tokio::time::timeout(Duration::from_secs(5), self.left.recv()).await.unwrap().unwrap()
        }

        fn parked_gauge(&self) -> i64 {
            let text = self.metrics.render();
            let line = text.lines().find(|l| l.starts_with("nymgate_parked_connections ")).unwrap();
            line.rsplit(' ').next().unwrap().parse().unwrap()
        }
    }

    const LONG: Duration = Duration::from_secs(600);

    #[tokio::test]
    async fn a_connection_resumes_when_its_client_writes_and_the_others_stay() {
        let mut setup = Setup::new().await;
        let mut first = setup.park(1, LONG).await;
        let _second = setup.park(2, LONG).await;
        assert_eq!((setup.lot.len(), setup.parked_gauge()), (2, 2));

        first.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert_eq!(setup.next_left().await, Left::Resumed(1));
        assert_eq!((setup.lot.len(), setup.parked_gauge()), (1, 1));

        // The freed slot is taken by the next connection, which also resumes on its own bytes.
        let mut third = setup.park(3, LONG).await;
        third.write_all(b"x").await.unwrap();
        assert_eq!(setup.next_left().await, Left::Resumed(3));
        assert_eq!(setup.lot.len(), 1);
    }

    #[tokio::test]
    async fn a_connection_whose_client_already_wrote_resumes_at_once() {
        let mut setup = Setup::new().await;
        let client = TcpStream::connect(setup.listener.local_addr().unwrap()).await.unwrap();
        let (tcp, _) = setup.listener.accept().await.unwrap();
        client.try_write(b"early").unwrap();
        tcp.readable().await.unwrap();
        setup.lot.park(Box::new(Conn { id: 7, tcp, left: setup.send.clone() }), LONG);
        assert_eq!(setup.left.try_recv().unwrap(), Left::Resumed(7), "resumed within park()");
        assert_eq!((setup.lot.len(), setup.parked_gauge()), (0, 0));
    }

    #[tokio::test]
    async fn a_client_that_hangs_up_resumes_its_connection_to_end_it() {
        let mut setup = Setup::new().await;
        let client = setup.park(1, LONG).await;
        drop(client);
        // Readable at end-of-file: serving reads the end and finishes the connection.
        assert_eq!(setup.next_left().await, Left::Resumed(1));
        assert!(setup.lot.is_empty());
    }

    #[tokio::test]
    async fn connections_idle_past_their_deadline_are_closed_and_only_those() {
        let mut setup = Setup::new().await;
        let _long = setup.park(1, LONG).await;
        let _short = setup.park(2, Duration::from_millis(150)).await;
        let _shorter = setup.park(3, Duration::from_millis(50)).await;
        let mut closed = vec![setup.next_left().await, setup.next_left().await];
        closed.sort_by_key(|left| format!("{left:?}"));
        assert_eq!(closed, [Left::Closed(2), Left::Closed(3)]);
        assert_eq!((setup.lot.len(), setup.parked_gauge()), (1, 1));
        assert!(setup.left.try_recv().is_err(), "the long-lived connection stays parked");
    }

    #[tokio::test]
    async fn shutdown_closes_every_parked_connection_and_any_parked_later() {
        let mut setup = Setup::new().await;
        let _a = setup.park(1, LONG).await;
        let _b = setup.park(2, LONG).await;
        let _ = setup.stop.take().unwrap().send(());
        let mut closed = vec![setup.next_left().await, setup.next_left().await];
        closed.sort_by_key(|left| format!("{left:?}"));
        assert_eq!(closed, [Left::Closed(1), Left::Closed(2)]);
        assert_eq!((setup.lot.len(), setup.parked_gauge()), (0, 0));

        let _late = setup.park(3, LONG).await;
        assert_eq!(setup.left.try_recv().unwrap(), Left::Closed(3), "closed within park()");
        assert!(setup.lot.is_empty());
    }
}
