//! The client IP: found from the socket and the trusted proxies' `X-Forwarded-For`, then reduced
//! before it goes anywhere (the platform, nymgate's own logs).
//!
//! shared/PRODUCT.md, "IP addresses": the chain is read right to left over the configured trusted
//! proxies, and the client IP is never the leftmost entry just because it is leftmost: every entry
//! left of the first untrusted one was written by a party we do not trust.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{KeyInit, Mac};
use ipnet::IpNet;

use crate::config::{ClientIpConfig, IpMode};
use crate::secret::Secret;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// At most this many `X-Forwarded-For` entries are read, from the right: a chain longer than any
/// real proxy path is attacker padding, and reading it all would be work for nothing.
pub const MAX_FORWARDED_HOPS: usize = 32;

/// The client's address, as far as the trusted proxies vouch for it.
///
/// `peer` is the socket's remote address; `forwarded_for` are the values of every
/// `X-Forwarded-For` line, in order. If the peer is not a trusted proxy the header is ignored.
pub fn resolve_client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'a [u8]>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut candidate = canonical(peer);
    if !is_trusted(&candidate) {
        return candidate;
    }
    // Lines are one list (RFC 9110 §5.3), so join them before reading right to left.
    let lines: Vec<&[u8]> = forwarded_for.collect();
    let entries = lines.iter().flat_map(|line| line.split(|b| *b == b',')).collect::<Vec<_>>();
    for entry in entries.iter().rev().take(MAX_FORWARDED_HOPS) {
        match parse_forwarded_entry(entry) {
            Some(ip) => candidate = ip,
            // Garbage from a trusted hop's left: stop at the last address we could vouch for.
            None => return candidate,
        }
        if !is_trusted(&candidate) {
            return candidate;
        }
    }
    candidate
}

/// One `X-Forwarded-For` entry: an IPv4 or IPv6 address, optionally `[v6]`, `v4:port` or
/// `[v6]:port` (some proxies write ports). Anything else is `None`.
pub fn parse_forwarded_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?.trim_matches(|c| c == ' ' || c == '\t');
    if text.len() > 64 {
        return None;
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        if !(after.is_empty() || is_port_suffix(after)) {
            return None;
        }
        return inner.parse::<Ipv6Addr>().ok().map(|ip| canonical(IpAddr::V6(ip)));
    }
    let (host, port) = text.rsplit_once(':')?;
    if !is_port_suffix(&text[host.len()..]) || port.is_empty() {
        return None;
    }
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port_suffix(s: &str) -> bool {
    s.strip_prefix(':')
        .is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is treated as the IPv4 address it is, so that the /24
/// truncation applies and a dual-stack socket does not leak the full address under /48.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// What replaces the client IP.
#[derive(Clone, PartialEq, Eq)]
pub enum ReducedIp {
    /// A truncated network address, such as `203.0.113.0`.
    Network(IpAddr),
    /// An obfuscated identifier (RFC 7239 §6.3 `obfnode`), such as `_3f9a1c0e5b7d2a41`.
    Token(String),
    /// Nothing.
    Dropped,
}

impl ReducedIp {
    /// Writes the `X-Forwarded-For` value; false, with nothing written, in drop mode.
    pub fn write_x_forwarded_for(&self, out: &mut impl fmt::Write) -> bool {
        match self {
            ReducedIp::Network(ip) => write!(out, "{ip}").is_ok(),
            ReducedIp::Token(t) => out.write_str(t).is_ok(),
            ReducedIp::Dropped => false,
        }
    }

    /// Writes the `for=` parameter of `Forwarded` (RFC 7239 §4, §6): an IPv6 address is quoted
    /// and bracketed, no address at all is `unknown`.
    pub fn write_forwarded_for(&self, out: &mut impl fmt::Write) -> fmt::Result {
        match self {
            ReducedIp::Network(IpAddr::V4(ip)) => write!(out, "for={ip}"),
            ReducedIp::Network(IpAddr::V6(ip)) => write!(out, "for=\"[{ip}]\""),
            ReducedIp::Token(t) => write!(out, "for={t}"),
            ReducedIp::Dropped => out.write_str("for=unknown"),
        }
    }
}

/// Displays what logs may show: never more than the platform gets.
impl fmt::Display for ReducedIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReducedIp::Network(ip) => write!(f, "{ip}"),
            ReducedIp::Token(t) => f.write_str(t),
            ReducedIp::Dropped => f.write_str("-"),
        }
    }
}

impl fmt::Debug for ReducedIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Zeroes the host bits of `ip` beyond `prefix`.
pub fn truncate(ip: IpAddr, v4_prefix: u8, v6_prefix: u8) -> IpAddr {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(v4_prefix.min(32))).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(v6_prefix.min(128))).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// Reduces client IPs, and pseudonymizes configured header and query values, under a key that
/// changes every UTC day.
pub struct IpReducer {
    mode: IpMode,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    keys: DailyKey,
}

impl IpReducer {
    pub fn new(config: &ClientIpConfig, secret: Option<Secret>) -> Self {
        Self {
            mode: config.mode,
            ipv4_prefix: config.ipv4_prefix,
            ipv6_prefix: config.ipv6_prefix,
            keys: DailyKey::new(secret),
        }
    }

    pub fn reduce(&self, ip: IpAddr) -> ReducedIp {
        match self.mode {
            IpMode::Truncate => ReducedIp::Network(truncate(ip, self.ipv4_prefix, self.ipv6_prefix)),
            IpMode::Hash => {
                let bytes = match canonical(ip) {
                    IpAddr::V4(v4) => v4.octets().to_vec(),
                    IpAddr::V6(v6) => v6.octets().to_vec(),
                };
                ReducedIp::Token(format!("_{}", self.keys.tag(b"nymgate/client-ip/v1", &[&bytes])))
            }
            IpMode::Drop => ReducedIp::Dropped,
        }
    }

    /// The pseudonym of a configured header or query value: `_` and 16 hex digits, stable for
    /// one UTC day. The name is mixed in so that equal values under different names differ.
    pub fn pseudonymize_value(&self, name: &str, value: &[u8]) -> String {
        format!("_{}", self.keys.tag(b"nymgate/traffic-value/v1", &[name.as_bytes(), value]))
    }
}

/// The key of the current UTC day.
///
/// With a configured secret, the day key is HMAC(secret, day number), so every replica agrees;
/// whoever holds the secret can recompute any day's key, which the docs say. Without one, each
/// process draws a random key per day and forgets the old one at midnight, so yesterday's hashes
/// can't be linked to today's by anyone.
struct DailyKey {
    secret: Option<Secret>,
    current: Mutex<(u64, HmacSha256)>,
}

impl DailyKey {
    fn new(secret: Option<Secret>) -> Self {
        let day = utc_day();
        let mac = Self::key_for(secret.as_ref(), day);
        Self { secret, current: Mutex::new((day, mac)) }
    }

    fn key_for(secret: Option<&Secret>, day: u64) -> HmacSha256 {
        let key: [u8; 32] = match secret {
            Some(secret) => {
                let mut mac = HmacSha256::new_from_slice(secret.expose()).expect("HMAC takes any key length");
                mac.update(b"nymgate/ip-day-key/v1");
                mac.update(&day.to_be_bytes());
                mac.finalize().into_bytes().into()
            }
            None => crate::secret::random_bytes(),
        };
        HmacSha256::new_from_slice(&key).expect("HMAC takes any key length")
    }

    /// 64 bits of HMAC over the domain tag and length-prefixed parts, as hex.
    fn tag(&self, domain: &[u8], parts: &[&[u8]]) -> String {
        let mut mac = {
            let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
            let today = utc_day();
            if current.0 != today {
                *current = (today, Self::key_for(self.secret.as_ref(), today));
            }
            current.1.clone()
        };
        mac.update(domain);
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        let out = mac.finalize().into_bytes();
        out[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn utc_day() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() / 86_400).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn resolve(peer: &str, xff: &[&str], trusted: &[&str]) -> IpAddr {
        resolve_client_ip(ip(peer), xff.iter().map(|s| s.as_bytes()), &nets(trusted))
    }

    #[test]
    fn untrusted_peer_ignores_forwarded_for() {
        assert_eq!(resolve("198.51.100.7", &["1.2.3.4"], &["10.0.0.0/8"]), ip("198.51.100.7"));
    }

    #[test]
    fn reads_right_to_left_over_trusted_hops() {
        // The client spoofed 6.6.6.6 at the left; the LB at 10.0.0.2 appended the real client.
        let got = resolve("10.0.0.1", &["6.6.6.6, 203.0.113.9, 10.0.0.2"], &["10.0.0.0/8"]);
        assert_eq!(got, ip("203.0.113.9"));
    }

    #[test]
    fn several_header_lines_are_one_list() {
        let got = resolve("10.0.0.1", &["6.6.6.6", "203.0.113.9", "10.0.0.2"], &["10.0.0.0/8"]);
        assert_eq!(got, ip("203.0.113.9"));
    }

    #[test]
    fn garbage_stops_at_last_vouched_address() {
        assert_eq!(resolve("10.0.0.1", &["bogus, 10.0.0.3"], &["10.0.0.0/8"]), ip("10.0.0.3"));
        assert_eq!(resolve("10.0.0.1", &["unknown"], &["10.0.0.0/8"]), ip("10.0.0.1"));
    }

    #[test]
    fn all_trusted_gives_leftmost_trusted() {
        assert_eq!(resolve("10.0.0.1", &["10.0.0.9, 10.0.0.2"], &["10.0.0.0/8"]), ip("10.0.0.9"));
    }

    #[test]
    fn entry_forms() {
        assert_eq!(parse_forwarded_entry(b" 192.0.2.1 "), Some(ip("192.0.2.1")));
        assert_eq!(parse_forwarded_entry(b"192.0.2.1:443"), Some(ip("192.0.2.1")));
        assert_eq!(parse_forwarded_entry(b"[2001:db8::1]:443"), Some(ip("2001:db8::1")));
        assert_eq!(parse_forwarded_entry(b"2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(parse_forwarded_entry(b"::ffff:192.0.2.1"), Some(ip("192.0.2.1")));
        assert_eq!(parse_forwarded_entry(b"192.0.2.1:"), None);
        assert_eq!(parse_forwarded_entry(b"[2001:db8::1]x"), None);
        assert_eq!(parse_forwarded_entry(b"host.example"), None);
        assert_eq!(parse_forwarded_entry(&[0xff, 0xfe]), None);
    }

    #[test]
    fn truncation_defaults() {
        assert_eq!(truncate(ip("203.0.113.77"), 24, 48), ip("203.0.113.0"));
        assert_eq!(truncate(ip("2001:db8:abcd:12::1"), 24, 48), ip("2001:db8:abcd::"));
        assert_eq!(truncate(ip("::ffff:203.0.113.77"), 24, 48), ip("203.0.113.0"));
        assert_eq!(truncate(ip("203.0.113.77"), 0, 0), ip("0.0.0.0"));
        assert_eq!(truncate(ip("203.0.113.77"), 32, 128), ip("203.0.113.77"));
    }

    #[test]
    fn hash_mode_is_stable_within_a_day_and_hides_the_address() {
        let config = ClientIpConfig { mode: IpMode::Hash, ..Default::default() };
        let r = IpReducer::new(&config, Some(Secret::new(b"0123456789abcdef0123456789abcdef".to_vec())));
        let a = r.reduce(ip("203.0.113.77"));
        assert_eq!(a, r.reduce(ip("203.0.113.77")));
        assert_ne!(a, r.reduce(ip("203.0.113.78")));
        let text = x_forwarded_for(&a).unwrap();
        assert!(text.starts_with('_') && text.len() == 17 && !text.contains("203"), "{text}");
        // The same secret on another replica gives the same token.
        let r2 = IpReducer::new(&config, Some(Secret::new(b"0123456789abcdef0123456789abcdef".to_vec())));
        assert_eq!(a, r2.reduce(ip("203.0.113.77")));
        // Without a secret, two processes disagree.
        let r3 = IpReducer::new(&config, None);
        assert_ne!(a, r3.reduce(ip("203.0.113.77")));
    }

    fn x_forwarded_for(reduced: &ReducedIp) -> Option<String> {
        let mut value = String::new();
        reduced.write_x_forwarded_for(&mut value).then_some(value)
    }

    fn forwarded_for(reduced: &ReducedIp) -> String {
        let mut value = String::new();
        reduced.write_forwarded_for(&mut value).unwrap();
        value
    }

    #[test]
    fn forwarded_syntax() {
        assert_eq!(forwarded_for(&ReducedIp::Network(ip("203.0.113.0"))), "for=203.0.113.0");
        assert_eq!(forwarded_for(&ReducedIp::Network(ip("2001:db8::"))), "for=\"[2001:db8::]\"");
        assert_eq!(forwarded_for(&ReducedIp::Dropped), "for=unknown");
        assert_eq!(x_forwarded_for(&ReducedIp::Network(ip("203.0.113.0"))).as_deref(), Some("203.0.113.0"));
        assert_eq!(x_forwarded_for(&ReducedIp::Dropped), None);
    }
}
