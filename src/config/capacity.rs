//! What the configured caps allow at worst: memory and file descriptors, printed by
//! `nymgate check` (docs/CONNECTIONS.md "Worst case").
//!
//! Each figure is the most one thing can hold in the state where it holds most, from the bounds
//! in the code (cited at each constant) and the config; the sum is what a process could reach if
//! every connection were in its worst state at once, which an attacker can try. The measured
//! typical costs are in BENCHMARKS.md §1 and §10.

use super::Config;

/// HTTP/2 windows nymgate advertises to clients (server.rs): how much request body one
/// connection and one stream can send before nymgate reads it (RFC 9113 §6.9.2). hyper's
/// defaults (1 MiB each) let one connection park a megabyte on a slow platform; 128 KiB still
/// carries an upload at 4 MB/s over a 30 ms round trip.
pub const H2_CONNECTION_WINDOW: u32 = 128 * 1024;
pub const H2_STREAM_WINDOW: u32 = 128 * 1024;
/// Response bytes hyper's HTTP/2 layer buffers per stream ahead of the client's reading
/// (hyper's default is about 400 KiB per stream): one frame.
pub const H2_SEND_BUFFER: usize = 16 * 1024;

/// Bytes the kernel keeps queued and not yet sent on each of nymgate's sockets (TCP_NOTSENT_LOWAT,
/// set on every client and platform connection, conn_bounds.rs): past it, nymgate's writes wait.
/// Without it the kernel grows a socket's send queue to `net.ipv4.tcp_wmem`'s maximum (4 MiB
/// here) for a client that does not read: 200 such clients put the host's TCP memory at its
/// pressure threshold (bench/hostile.sh), slowing every connection on it. Bytes in flight are
/// bounded by the client's window, not this; 128 KiB unsent keeps a fast link busy for a
/// wake-up's time (the kernel wakes the writer when half of it has gone).
pub const UNSENT_BOUND: u32 = 128 * 1024;

/// A TLS handshake in progress: the ClientHello (at most 16 KiB, tls_stream.rs) and rustls's
/// handshake state.
const HANDSHAKE_BYTES: u64 = 24 * 1024;
/// TLS buffers of a connection in the middle of a request: one incoming record (16 KiB plus
/// header and tag), plaintext not yet read by hyper (one record), and one write's ciphertext
/// (tls_stream.rs MAX_WRITE, 64 KiB, plus per-record overhead).
const TLS_ACTIVE_BYTES: u64 = 17 * 1024 + 16 * 1024 + 66 * 1024;
/// A connection task, its socket and the bookkeeping around it (BENCHMARKS.md §1 measured
/// 5.4 to 6.7 KB per parked connection, all included).
const CONNECTION_BASE_BYTES: u64 = 8 * 1024;
/// A connection to the platform: its read buffer and the coalesced writes (upstream/client.rs).
const PLATFORM_CONNECTION_BYTES: u64 = 32 * 1024;
/// What nymgate holds before any connection (BENCHMARKS.md §1: 9 to 12 MiB), rounded up for the
/// login stores and caches.
const PROCESS_BASE_BYTES: u64 = 64 * 1024 * 1024;
/// Descriptors besides connections: listeners, the log, the audit file, the keyring, the
/// runtime's own.
const OTHER_FDS: u64 = 64;
/// Over-cap connections answered with a 503 at once (server.rs SHED_BUDGET).
const SHED_FDS: u64 = 256;

/// The worst case the caps allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorstCase {
    pub per_http1_connection: u64,
    pub per_http2_connection: u64,
    pub memory_bytes: u64,
    /// The kernel's unsent send queues of every client connection (not part of the process's
    /// memory, but the host's): [`UNSENT_BOUND`] each.
    pub kernel_unsent_bytes: u64,
    pub file_descriptors: u64,
    pub platform_connections: u64,
}

impl Config {
    /// The memory and descriptors the configured caps allow at worst.
    pub fn worst_case(&self) -> WorstCase {
        let limits = &self.limits;
        let header = limits.max_header_bytes.max(8192) as u64;
        // hyper's HTTP/1.1 read and write buffers are each bounded by max_buf_size (server.rs).
        let per_http1_connection = CONNECTION_BASE_BYTES + TLS_ACTIVE_BYTES + 2 * header;
        // HTTP/2: the connection's receive window, each stream's send buffer and header block.
        let streams = u64::from(limits.max_concurrent_streams);
        let per_http2_connection = CONNECTION_BASE_BYTES
            + TLS_ACTIVE_BYTES
            + u64::from(H2_CONNECTION_WINDOW)
            + streams * (H2_SEND_BUFFER as u64 + header);
        let clients = limits.max_connections as u64;
        let per_client = per_http1_connection.max(per_http2_connection).max(HANDSHAKE_BYTES);
        let platform_connections = self.platform_connection_bound();
        let store =
            if self.store.backend == super::StoreBackend::Redis { self.store.pool_size as u64 } else { 0 };
        WorstCase {
            per_http1_connection,
            per_http2_connection,
            memory_bytes: PROCESS_BASE_BYTES
                + clients * per_client
                + SHED_FDS * HANDSHAKE_BYTES
                + platform_connections * PLATFORM_CONNECTION_BYTES,
            kernel_unsent_bytes: (clients + platform_connections) * u64::from(UNSENT_BOUND),
            file_descriptors: clients + SHED_FDS + platform_connections + store + OTHER_FDS,
            platform_connections,
        }
    }

    /// Connections to the platform at most: `upstream.max_connections` per worker (upstream/pool.rs),
    /// and never more than the client requests that can be in flight.
    fn platform_connection_bound(&self) -> u64 {
        let Some(upstream) = &self.upstream else { return 0 };
        let limits = &self.limits;
        let workers = self
            .server
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            as u64;
        let requests =
            (limits.max_connections as u64).saturating_mul(u64::from(limits.max_concurrent_streams));
        (workers * upstream.max_connections as u64).min(requests)
    }

    /// `nymgate check`'s lines about the worst case, and a warning when this machine's limit on
    /// open files is below what the caps allow.
    pub fn explain_worst_case(&self, open_files_limit: Option<u64>) -> Vec<String> {
        let worst = self.worst_case();
        let mib = |bytes: u64| bytes.div_ceil(1024 * 1024);
        let kib = |bytes: u64| bytes.div_ceil(1024);
        let mut lines = vec![format!(
            "worst case at limits.max_connections = {}: {} MiB of memory ({} KiB per HTTP/1.1 connection mid-request, {} KiB per HTTP/2 connection with {} streams full) and {} MiB of kernel send queues, {} file descriptors, {} platform connections",
            self.limits.max_connections,
            mib(worst.memory_bytes),
            kib(worst.per_http1_connection),
            kib(worst.per_http2_connection),
            self.limits.max_concurrent_streams,
            mib(worst.kernel_unsent_bytes),
            worst.file_descriptors,
            worst.platform_connections,
        )];
        if let Some(limit) = open_files_limit {
            if limit < worst.file_descriptors {
                lines.push(format!(
                    "warning: this machine allows {limit} open files, fewer than the {} the caps allow: raise LimitNOFILE / ulimit -n or lower limits.max_connections",
                    worst.file_descriptors
                ));
            }
        }
        lines
    }
}

/// This process's soft limit on open files, from /proc (Linux); `None` elsewhere.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n{extra}"
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn the_worst_case_grows_with_every_cap() {
        let small = config("[limits]\nmax_connections = 100\nmax_concurrent_streams = 8\n").worst_case();
        let more = config("[limits]\nmax_connections = 200\nmax_concurrent_streams = 8\n").worst_case();
        let streams = config("[limits]\nmax_connections = 100\nmax_concurrent_streams = 16\n").worst_case();
        assert!(more.memory_bytes > small.memory_bytes);
        assert!(more.file_descriptors > small.file_descriptors);
        assert!(streams.per_http2_connection > small.per_http2_connection);
        assert_eq!(more.file_descriptors - small.file_descriptors, 100);
    }

    #[test]
    fn platform_connections_are_bounded_per_worker() {
        let upstream = "[upstream]\nurl = \"http://127.0.0.1:8080\"\nmax_connections = 100\n";
        let at = |workers: usize, limits: &str| {
            config(&format!("workers = {workers}\n{upstream}{limits}")).worst_case().platform_connections
        };
        assert_eq!(at(2, ""), 200);
        assert_eq!(at(4, ""), 400);
        // Never more than the requests the clients can have in flight.
        assert_eq!(at(4, "[limits]\nmax_connections = 2\nmax_concurrent_streams = 8\n"), 16);
        assert_eq!(config("").worst_case().platform_connections, 0, "no platform: the echo answers");
    }

    #[test]
    fn a_low_open_files_limit_is_named() {
        let lines = config("[limits]\nmax_connections = 5000\n").explain_worst_case(Some(1024));
        assert!(lines.iter().any(|l| l.starts_with("warning") && l.contains("1024")), "{lines:?}");
        let lines = config("[limits]\nmax_connections = 100\n").explain_worst_case(Some(1 << 20));
        assert_eq!(lines.len(), 1, "{lines:?}");
    }
}
