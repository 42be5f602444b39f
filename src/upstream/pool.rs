//! The platform connections of one worker: the bound on how many are open, the pools that keep
//! idle ones, and the requests waiting at the bound.
//!
//! Every platform connection holds a permit of its worker's [`PoolSet`] for its whole life, in a
//! pool or in use or upgraded (a tunnel is a platform connection too), and gives it back when it
//! is dropped, whatever the path. So `upstream.max_connections` bounds the sockets toward the
//! platform, per worker: each worker is an event loop of its own with its own pools (server.rs),
//! so a count shared by all workers would put a contended atomic on every connection and could
//! not hand a connection from one worker's loop to another's; nginx's `max_conns` without a
//! shared zone is per worker for the same reason. The process holds at most
//! `workers × upstream.max_connections` (deploy/README.md sizes file descriptors with it).
//!
//! At the bound a request waits, up to `upstream.queue_timeout`, for whichever comes first:
//! - a connection coming back to the worker's pool, handed to the oldest waiter instead of kept
//!   idle (with one pool per worker every connection is anyone's);
//! - a permit, given back by a connection that closed; an idle connection in a pool that the
//!   waiter may not use (another client connection's, `upstream.pool_per_client_connection`) is
//!   closed at once to make room, and a connection coming back to such a pool while requests
//!   wait is closed instead of kept.
//!
//! Then it fails with [`SendError::Saturated`](super::client::SendError::Saturated): 503 with
//! Retry-After (pipeline/answers.rs).
//!
//! Outside the bound: the readiness probe's plain connect (one every few seconds, closed at
//! once, upstream/mod.rs), and, for the moments of a config reload, the old generation's
//! connections still in use (each generation's workers build a new set; the old pools close
//! their idle connections as the old gateways go).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::client::Connection;
use crate::metrics::Metrics;

/// Spare read buffers kept per worker: as many as requests commonly in flight on one worker,
/// without holding a buffer for every idle connection.
const SPARE_BUFFERS: usize = 32;

/// How often a request waiting at the bound asks for a connection held by a response nobody
/// reads (`PoolSet::reclaim_with`).
const RECLAIM_TICK: Duration = Duration::from_millis(250);

/// Every change under these locks is one push, pop, drain or swap: a panic elsewhere leaves the
/// state whole, so a poisoned lock is used as it is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One worker's platform connections: the bound, the waiters, the spare buffers and the pools.
pub struct PoolSet {
    permits: Arc<Semaphore>,
    max_connections: usize,
    queue_timeout: Duration,
    max_idle: usize,
    idle_timeout: Duration,
    /// Requests waiting at the bound, oldest first: a connection coming back to a shared pool
    /// goes to the first one still waiting.
    waiters: Mutex<VecDeque<oneshot::Sender<Connection>>>,
    /// How many requests wait (the queue above may still hold senders of waiters that left).
    waiting: AtomicUsize,
    /// Every pool of the worker, so that an idle connection anywhere can be closed to make room
    /// and the periodic eviction reaches them all. Dead entries are swept as it grows.
    pools: Mutex<Vec<Weak<Pool>>>,
    /// Read buffers of connections that went idle. A buffer is taken by the next request on any
    /// connection: once the previous response's bytes are gone, `BytesMut::reserve` takes the
    /// allocation back instead of a new 8 KiB one (an allocation that size cost 1-2% of CPU
    /// under h2load, in glibc's malloc_consolidate). At most [`SPARE_BUFFERS`] per worker,
    /// whatever the number of pools.
    spare: Mutex<Vec<BytesMut>>,
    metrics: OnceLock<Arc<Metrics>>,
    /// Frees one platform connection held by a response whose client is not reading it
    /// (server.rs gives the worker's conn_bounds::StallRegistry): at the bound, such a response
    /// yields before a reading client waits.
    reclaim: OnceLock<Box<dyn Fn() -> bool + Send + Sync>>,
}

/// A platform connection's place under `upstream.max_connections`, given back when the
/// connection is dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Option<Arc<Metrics>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(metrics) = &self.metrics {
            metrics.platform_connections_changed(-1);
        }
    }
}

/// What a request waiting at the bound got.
pub enum Granted {
    /// Room for a new connection.
    Slot(Slot),
    /// An open connection, handed over from the worker's pool.
    Connection(Connection),
}

/// No room for a platform connection within `upstream.queue_timeout`.
#[derive(Debug)]
pub struct Saturated;

/// Counts a request as waiting while it lives.
struct Waiting<'a>(&'a PoolSet);

impl<'a> Waiting<'a> {
    fn new(set: &'a PoolSet) -> Self {
        set.waiting.fetch_add(1, Ordering::AcqRel);
        if let Some(metrics) = set.metrics.get() {
            metrics.platform_waiting_changed(1);
        }
        Self(set)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        if let Some(metrics) = self.0.metrics.get() {
            metrics.platform_waiting_changed(-1);
        }
    }
}

impl PoolSet {
    pub fn new(
        max_connections: usize,
        queue_timeout: Duration,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(max_connections.min(Semaphore::MAX_PERMITS))),
            max_connections,
            queue_timeout,
            max_idle,
            idle_timeout,
            waiters: Mutex::new(VecDeque::new()),
            waiting: AtomicUsize::new(0),
            reclaim: OnceLock::new(),
            pools: Mutex::new(Vec::new()),
            spare: Mutex::new(Vec::new()),
            metrics: OnceLock::new(),
        })
    }

    /// Where the gauges of open and waited-for platform connections are kept (once; the
    /// gateway that owns this worker's upstream sets it before serving).
    /// How to free a platform connection held by a client that is not reading (set once).
    pub fn reclaim_with(&self, reclaim: Box<dyn Fn() -> bool + Send + Sync>) {
        let _ = self.reclaim.set(reclaim);
    }

    pub fn report_to(&self, metrics: Arc<Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// A new, empty pool of this set (the worker's, or one client connection's).
    pub fn new_pool(self: &Arc<Self>, shared: bool) -> Arc<Pool> {
        let pool = Arc::new(Pool { idle: Mutex::new(Vec::new()), set: self.clone(), shared });
        let mut pools = lock(&self.pools);
        if pools.len() >= 64 && pools.len().is_power_of_two() {
            // Amortized: the list is swept each time it doubles past the live pools.
            pools.retain(|pool| pool.strong_count() > 0);
        }
        pools.push(Arc::downgrade(&pool));
        pool
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Platform connections open now (in use, idle or upgraded).
    pub fn open(&self) -> usize {
        self.max_connections.saturating_sub(self.permits.available_permits())
    }

    /// Requests waiting at the bound now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    fn slot(&self, permit: OwnedSemaphorePermit) -> Slot {
        let metrics = self.metrics.get().cloned();
        if let Some(metrics) = &metrics {
            metrics.platform_connections_changed(1);
        }
        Slot { _permit: permit, metrics }
    }

    /// Room for a new connection, or (from a shared pool) a connection handed over; at the bound,
    /// waits up to `upstream.queue_timeout`.
    pub async fn grant(&self, shared: bool) -> Result<Granted, Saturated> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(Granted::Slot(self.slot(permit)));
        }
        // Counted before the idle ones are closed, so that none comes back to a pool unseen.
        let _waiting = Waiting::new(self);
        while self.close_one_idle() {
            if let Ok(permit) = self.permits.clone().try_acquire_owned() {
                return Ok(Granted::Slot(self.slot(permit)));
            }
        }
        // No idle one: the connection of a response nobody reads comes back (its permit is
        // given back when its exchange ends, which the wait below receives).
        if let Some(reclaim) = self.reclaim.get() {
            reclaim();
        }
        let deadline = Instant::now() + self.queue_timeout;
        loop {
            let (handed, mut handover) = oneshot::channel();
            if shared {
                let mut waiters = lock(&self.waiters);
                waiters.retain(|waiter| !waiter.is_closed());
                waiters.push_back(handed);
            }
            let permit = self.permits.clone().acquire_owned();
            tokio::select! {
                biased;
                Ok(conn) = &mut handover, if shared => {
                    let mut conn = conn;
                    if conn.is_reusable() {
                        conn.mark_reused();
                        return Ok(Granted::Connection(conn));
                    }
                    // Closed or spoke while handed over: dropped, which frees its permit.
                }
                permit = permit => match permit {
                    Ok(permit) => return Ok(Granted::Slot(self.slot(permit))),
                    Err(_) => return Err(Saturated),
                },
                () = tokio::time::sleep_until(deadline) => return Err(Saturated),
                // While waiting, responses keep becoming unread for long enough to give their
                // connections back: asked again, so that more stalled readers than the bound
                // can't keep a reading client waiting to its deadline.
                () = tokio::time::sleep(RECLAIM_TICK), if self.reclaim.get().is_some() => {
                    if let Some(reclaim) = self.reclaim.get() {
                        reclaim();
                    }
                }
            }
        }
    }

    /// Closes one idle connection, in any pool of the worker, to give its permit to a waiter.
    fn close_one_idle(&self) -> bool {
        let closed = {
            let pools = lock(&self.pools);
            pools.iter().filter_map(Weak::upgrade).find_map(|pool| {
                let mut idle = lock(&pool.idle);
                (!idle.is_empty()).then(|| idle.remove(0))
            })
        };
        // Dropped outside the locks: closing a TLS connection is not free.
        closed.is_some()
    }

    fn spare_buffer(&self) -> BytesMut {
        lock(&self.spare).pop().unwrap_or_default()
    }

    fn recycle(&self, mut buffer: BytesMut) {
        buffer.clear();
        let mut spare = lock(&self.spare);
        if spare.len() < SPARE_BUFFERS && buffer.capacity() > 0 {
            spare.push(buffer);
        }
    }

    /// Closes connections idle past `upstream.pool_idle_timeout` in every pool (called
    /// periodically; taking from a pool also does).
    pub fn evict_expired(&self) {
        let pools: Vec<Arc<Pool>> = {
            let mut pools = lock(&self.pools);
            pools.retain(|pool| pool.strong_count() > 0);
            pools.iter().filter_map(Weak::upgrade).collect()
        };
        for pool in pools {
            pool.evict_expired();
        }
    }
}

/// Idle connections to the platform, newest last: the worker's (shared by every request of the
/// worker) or one client connection's (`upstream.pool_per_client_connection`).
pub struct Pool {
    idle: Mutex<Vec<Idle>>,
    set: Arc<PoolSet>,
    /// Whether any request of the worker may use this pool's connections.
    shared: bool,
}

struct Idle {
    conn: Connection,
    since: Instant,
}

impl Pool {
    pub fn set(&self) -> &Arc<PoolSet> {
        &self.set
    }

    pub fn is_shared(&self) -> bool {
        self.shared
    }

    pub(super) fn spare_buffer(&self) -> BytesMut {
        self.set.spare_buffer()
    }

    pub(super) fn recycle(&self, buffer: BytesMut) {
        self.set.recycle(buffer)
    }

    /// The newest idle connection that is still open and quiet; older ones past the idle
    /// timeout go.
    pub(super) fn take(&self) -> Option<Connection> {
        let mut idle = lock(&self.idle);
        let now = Instant::now();
        while let Some(Idle { mut conn, since }) = idle.pop() {
            if now.duration_since(since) >= self.set.idle_timeout {
                // The newest is too old, so all are.
                idle.clear();
                return None;
            }
            if conn.is_reusable() {
                conn.mark_reused();
                return Some(conn);
            }
        }
        None
    }

    /// A connection whose exchange is complete: to a waiting request (shared pool), else idle
    /// here; closed when the pool is full, or when requests wait that may not use it.
    pub(super) fn put(&self, conn: Connection) {
        let mut conn = conn;
        if self.shared {
            let mut waiters = lock(&self.set.waiters);
            while let Some(waiter) = waiters.pop_front() {
                match waiter.send(conn) {
                    Ok(()) => return,
                    Err(back) => conn = back,
                }
            }
        } else if self.set.waiting.load(Ordering::Acquire) > 0 {
            // Its permit goes to a waiter, which may not use another client's connection.
            return;
        }
        let mut idle = lock(&self.idle);
        if idle.len() < self.set.max_idle {
            idle.push(Idle { conn, since: Instant::now() });
        }
    }

    /// Closes connections idle past the timeout.
    pub fn evict_expired(&self) {
        let expired: Vec<Idle> = {
            let mut idle = lock(&self.idle);
            let now = Instant::now();
            let keep = idle.iter().position(|entry| now.duration_since(entry.since) < self.set.idle_timeout);
            // Oldest first: everything before the first one still fresh has expired.
            let expired = keep.unwrap_or(idle.len());
            idle.drain(..expired).collect()
        };
        drop(expired);
    }

    pub fn idle_count(&self) -> usize {
        lock(&self.idle).len()
    }
}
