//! Failed-attempt blocking (shared/PRODUCT.md, "Security promises"): a client whose failed
//! logins for one tenant reach that tenant's threshold within the window is refused every login
//! endpoint for `block_for`, with 429 and `Retry-After`.
//!
//! Privacy by construction: a client is known here only by an HMAC of its IP under a key drawn
//! at start and never written, so the table in memory holds no address, and nothing of it is
//! ever logged or persisted. Allowlisted networks (a school's NAT, a monitoring probe) are never
//! counted; a tenant whose pupils share one address gets its own, higher threshold.
//!
//! Bounded: at `CAPACITY` clients, idle entries are swept; if the table is still full, new
//! clients are not tracked (fail open for blocking, which is a brake, not an authentication).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use dashmap::DashMap;
use hmac::{KeyInit, Mac};
use ipnet::IpNet;

const CAPACITY: usize = 200_000;

/// A client as blocking knows it: 16 bytes of HMAC, never an address.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey([u8; 16]);

impl ClientKey {
    /// As hex, for the shared store's keys.
    pub fn to_hex(self) -> String {
        crate::secret::to_hex(&self.0)
    }
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientKey(<redacted>)")
    }
}

/// `[login.blocking]` and the tenants' `max_failed_logins`, compiled.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_failures: u32,
    pub window_secs: u64,
    pub block_secs: u64,
    pub allowlist: Vec<IpNet>,
    pub per_tenant: HashMap<String, u32>,
}

#[derive(Default)]
struct Entry {
    /// Failures per tenant ("" when none was known) since `window_start`.
    failures: HashMap<String, u32>,
    window_start: u64,
    blocked_until: u64,
}

pub struct Blocker {
    settings: Settings,
    /// The key and the counts, kept across config reloads (login/build.rs `Login::build`).
    state: Arc<State>,
}

struct State {
    key: hmac::Hmac<sha2::Sha256>,
    clients: DashMap<ClientKey, Entry>,
}

impl Blocker {
    /// `shared_key`: with a store shared by replicas, every replica must know a client by the
    /// same key, so it is derived from the shared seal secret; alone, a random key is drawn.
    pub fn new(settings: Settings, shared_key: Option<&[u8]>) -> Self {
        let key = match shared_key {
            Some(material) => {
                let mut derive =
                    hmac::Hmac::<sha2::Sha256>::new_from_slice(material).expect("any key length");
                derive.update(b"nymgate blocking client key v1");
                hmac::Hmac::<sha2::Sha256>::new_from_slice(&derive.finalize().into_bytes())
            }
            None => hmac::Hmac::<sha2::Sha256>::new_from_slice(&crate::secret::random_bytes::<32>()),
        }
        .expect("HMAC takes any key length");
        Blocker { settings, state: Arc::new(State { key, clients: DashMap::new() }) }
    }

    /// New settings over the key and counts of `previous` (a config reload).
    pub fn after(settings: Settings, previous: &Blocker) -> Self {
        Blocker { settings, state: previous.state.clone() }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The failures that block a client of `tenant`.
    pub fn threshold(&self, tenant: Option<&str>) -> u32 {
        self.settings.per_tenant.get(tenant.unwrap_or("")).copied().unwrap_or(self.settings.max_failures)
    }

    /// Notes a block the shared store started, for this replica's `nymgate_blocked_clients`.
    pub fn note_block(&self, client: ClientKey, now: u64) {
        if self.state.clients.len() < CAPACITY || self.state.clients.contains_key(&client) {
            self.state.clients.entry(client).or_default().blocked_until = now + self.settings.block_secs;
        }
    }

    /// The key of a client IP, or `None` when the IP is allowlisted (never counted).
    pub fn key_for(&self, ip: IpAddr) -> Option<ClientKey> {
        if self.settings.allowlist.iter().any(|net| net.contains(&ip)) {
            return None;
        }
        let mut mac = self.state.key.clone();
        match ip {
            IpAddr::V4(v4) => mac.update(&v4.to_ipv6_mapped().octets()),
            IpAddr::V6(v6) => mac.update(&v6.octets()),
        }
        let digest = mac.finalize().into_bytes();
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        Some(ClientKey(key))
    }

    /// Seconds until the client may try again, if it is blocked now.
    pub fn blocked_for(&self, client: ClientKey, now: u64) -> Option<u64> {
        let entry = self.state.clients.get(&client)?;
        (entry.blocked_until > now).then(|| entry.blocked_until - now)
    }

    /// Counts a failed login; returns true when this failure starts a block.
    pub fn record_failure(&self, client: ClientKey, tenant: Option<&str>, now: u64) -> bool {
        if self.state.clients.len() >= CAPACITY && !self.state.clients.contains_key(&client) {
            self.sweep(now);
            if self.state.clients.len() >= CAPACITY {
                return false;
            }
        }
        let threshold = self.threshold(tenant);
        let tenant = tenant.unwrap_or("");
        let mut entry = self.state.clients.entry(client).or_default();
        if now >= entry.window_start + self.settings.window_secs {
            entry.failures.clear();
            entry.window_start = now;
        }
        let count = entry.failures.entry(tenant.to_owned()).or_insert(0);
        *count += 1;
        if *count >= threshold && entry.blocked_until <= now {
            entry.blocked_until = now + self.settings.block_secs;
            entry.failures.clear();
            entry.window_start = now;
            return true;
        }
        false
    }

    /// Clients blocked now (a gauge for the metrics page).
    pub fn blocked_clients(&self, now: u64) -> usize {
        self.state.clients.iter().filter(|e| e.blocked_until > now).count()
    }

    fn sweep(&self, now: u64) {
        let window = self.settings.window_secs;
        self.state.clients.retain(|_, e| e.blocked_until > now || now < e.window_start + window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocker(per_tenant: &[(&str, u32)]) -> Blocker {
        Blocker::new(
            Settings {
                max_failures: 3,
                window_secs: 60,
                block_secs: 300,
                allowlist: vec!["10.0.0.0/8".parse().unwrap()],
                per_tenant: per_tenant.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
            },
            None,
        )
    }

    #[test]
    fn replicas_with_the_shared_secret_know_a_client_by_one_key() {
        let settings = blocker(&[]).settings().clone();
        let ip = "203.0.113.9".parse().unwrap();
        let a = Blocker::new(settings.clone(), Some(b"seal secret")).key_for(ip);
        let b = Blocker::new(settings.clone(), Some(b"seal secret")).key_for(ip);
        let other = Blocker::new(settings, Some(b"another secret")).key_for(ip);
        assert_eq!(a, b);
        assert_ne!(a, other);
    }

    #[test]
    fn blocks_at_the_threshold_for_the_configured_time() {
        let b = blocker(&[]);
        let client = b.key_for("203.0.113.7".parse().unwrap()).unwrap();
        assert!(!b.record_failure(client, Some("a"), 100));
        assert!(!b.record_failure(client, None, 101));
        assert_eq!(b.blocked_for(client, 101), None);
        assert!(!b.record_failure(client, Some("a"), 102), "the unknown tenant counts apart");
        assert!(b.record_failure(client, Some("a"), 103));
        assert_eq!(b.blocked_for(client, 103), Some(300));
        assert_eq!(b.blocked_for(client, 402), Some(1));
        assert_eq!(b.blocked_for(client, 403), None);
        let other = b.key_for("203.0.113.8".parse().unwrap()).unwrap();
        assert_eq!(b.blocked_for(other, 103), None, "one client's failures block only that client");
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let b = blocker(&[]);
        let client = b.key_for("2001:db8::1".parse().unwrap()).unwrap();
        b.record_failure(client, Some("a"), 0);
        b.record_failure(client, Some("a"), 30);
        assert!(!b.record_failure(client, Some("a"), 61), "a new window starts");
        assert_eq!(b.blocked_for(client, 61), None);
    }

    #[test]
    fn allowlist_and_per_tenant_thresholds() {
        let b = blocker(&[("nat-school", 100)]);
        assert!(b.key_for("10.1.2.3".parse().unwrap()).is_none(), "allowlisted");
        let client = b.key_for("198.51.100.1".parse().unwrap()).unwrap();
        for _ in 0..99 {
            assert!(!b.record_failure(client, Some("nat-school"), 10));
        }
        assert!(b.record_failure(client, Some("nat-school"), 10));
        let elsewhere = b.key_for("198.51.100.2".parse().unwrap()).unwrap();
        for _ in 0..2 {
            assert!(!b.record_failure(elsewhere, Some("other-school"), 10));
        }
        assert!(b.record_failure(elsewhere, Some("other-school"), 10), "other tenants keep the default");
    }

    #[test]
    fn the_key_is_not_the_address() {
        let b = blocker(&[]);
        let client = b.key_for("192.0.2.1".parse().unwrap()).unwrap();
        assert_eq!(format!("{client:?}"), "ClientKey(<redacted>)");
        assert_ne!(&client.0[..4], &[192, 0, 2, 1]);
        assert_eq!(
            Some(client),
            b.key_for("::ffff:192.0.2.1".parse().unwrap()),
            "v4 and v4-mapped v6 are one client"
        );
    }
}
