//! The defaults, named so that the docs and the code agree.

use std::time::Duration;

/// An audit file's size before rotation (also the admin CLI's `--audit`; audit.rs).
pub const AUDIT_MAX_BYTES: u64 = 100 * 1024 * 1024;
/// Rotated audit files kept.
pub const AUDIT_KEEP: u32 = 10;

pub fn cert_reload_interval() -> Duration {
    Duration::from_secs(10)
}
pub fn connect_timeout() -> Duration {
    Duration::from_secs(3)
}
pub fn response_timeout() -> Duration {
    Duration::from_secs(30)
}
pub fn pool_idle_timeout() -> Duration {
    Duration::from_secs(90)
}
pub fn pool_max_idle_per_host() -> usize {
    256
}
/// As many as a worker's default idle pool keeps, so that it is never closed for room.
pub fn upstream_max_connections() -> usize {
    256
}
pub fn queue_timeout() -> Duration {
    Duration::from_secs(3)
}
pub fn ipv4_prefix() -> u8 {
    24
}
pub fn ipv6_prefix() -> u8 {
    48
}
pub fn max_header_bytes() -> usize {
    16 * 1024
}
pub fn max_headers() -> usize {
    100
}
pub fn max_body_bytes() -> usize {
    1024 * 1024
}
pub fn header_read_timeout() -> Duration {
    Duration::from_secs(10)
}
pub fn body_read_timeout() -> Duration {
    Duration::from_secs(30)
}
pub fn idle_timeout() -> Duration {
    Duration::from_secs(75)
}
pub fn send_timeout() -> Duration {
    Duration::from_secs(60)
}
pub fn upgrade_protocols() -> Vec<String> {
    vec!["websocket".to_owned()]
}
pub fn park_after() -> Duration {
    Duration::from_millis(100)
}
pub fn store_pool_size() -> usize {
    16
}
pub fn store_timeout() -> Duration {
    Duration::from_millis(500)
}
pub fn store_key_prefix() -> String {
    "nymgate:".into()
}
pub fn tls_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}
pub fn max_connections() -> usize {
    20_000
}
pub fn max_concurrent_streams() -> u32 {
    128
}
pub fn shutdown_grace() -> Duration {
    Duration::from_secs(30)
}
pub fn log_level() -> String {
    "info".to_owned()
}
