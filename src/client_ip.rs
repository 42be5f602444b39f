//! The client IP: found from the socket and the trusted proxies' `X-Forwarded-For`, then reduced
//! before it goes anywhere (the platform, nymgate's own logs).
//!
//! shared/PRODUCT.md, "IP addresses": the chain is read right to left over the configured trusted
//! proxies, and the client IP is never the leftmost entry just because it is leftmost: every entry
//! left of the first untrusted one was written by a party we do not trust.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;

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

/// The address a socket or a proxy means: IPv4-mapped IPv6 (`::ffff:1.2.3.4`, a dual-stack
/// socket's form of an IPv4 peer) is that IPv4 address. This form decides trust
/// (`trusted_proxies`): only the mapped form is the same host, whereas a 6to4, Teredo or ISATAP
/// address is an IPv6 host anyone with an IPv6 prefix can pick to *look* like any IPv4 address,
/// a trusted proxy's among them.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The form an address is reduced in: an IPv6 address that carries an IPv4 address is that
/// IPv4 address, so that the IPv4 rule (/24 by default) applies and no IPv6 prefix keeps it
/// whole (a /48 of a 6to4 address is its entire IPv4 address). See [`embedded_ipv4`] for the
/// forms. Never used to decide trust (see [`canonical`]).
pub fn reduction_form(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// RFC 8215's local-use NAT64 prefix: the IPv4 address sits where the operator's prefix length
/// puts it (RFC 6052 §2.2 allows /32 to /96), which the address does not say, so it is never
/// kept longer than this /48, which carries none of it.
const NAT64_LOCAL_USE: (u128, u8) = (0x0064_ff9b_0001 << 80, 48);

/// The IPv4 address inside an IPv6 address, where its form says where it is:
/// - IPv4-mapped `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2), IPv4-translated `::ffff:0:a.b.c.d`
///   (RFC 7915) and IPv4-compatible `::a.b.c.d` (§2.5.5.1, deprecated but still routable inside
///   a site), other than `::` and `::1`;
/// - 6to4 `2002:AABB:CCDD::/16` (RFC 3056 §2), the address in bits 16-47;
/// - NAT64 with the well-known prefix `64:ff9b::/96` (RFC 6052 §2.1), the last 32 bits;
/// - Teredo `2001:0::/32` (RFC 4380 §4), the client's address in the last 32 bits, inverted;
/// - ISATAP interface identifiers `…:0:5efe:a.b.c.d` and `…:200:5efe:a.b.c.d` (RFC 5214 §6.1).
///
/// NAT64 under an operator's own prefix (RFC 6052 §2.2) cannot be told from native IPv6 by
/// the address alone; docs/PRIVACY.md says so.
pub fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(v6);
    let low32 = Ipv4Addr::from(bits as u32);
    let s = v6.segments();
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    // IPv4-compatible, and IPv4-translated `::ffff:0:a.b.c.d` (SIIT, RFC 7915 §6.2).
    if (s[..6] == [0; 6] && bits > 1) || (s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0) {
        return Some(low32);
    }
    match s[0] {
        0x2002 => return Some(Ipv4Addr::from((bits >> 80) as u32)),
        0x2001 if s[1] == 0 => return Some(Ipv4Addr::from(!(bits as u32))),
        0x0064 if s[1] == 0xff9b && s[2..6] == [0; 4] => return Some(low32),
        _ => {}
    }
    if matches!(s[4], 0 | 0x0200) && s[5] == 0x5efe {
        return Some(low32);
    }
    None
}

/// The IPv6 prefix length an address may keep at most, whatever is configured.
fn ipv6_prefix_cap(v6: Ipv6Addr) -> u8 {
    let (net, len) = NAT64_LOCAL_USE;
    let mask = u128::MAX << (128 - u32::from(len));
    if u128::from(v6) & mask == net {
        len
    } else {
        128
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
    match reduction_form(ip) {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(v4_prefix.min(32))).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let prefix = v6_prefix.min(ipv6_prefix_cap(v6));
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
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
                // Of an address whose IPv4 part cannot be located, only what truncation would
                // keep enters the hash (the same token for the whole local-use NAT64 /48).
                let bytes = match reduction_form(ip) {
                    IpAddr::V4(v4) => v4.octets().to_vec(),
                    IpAddr::V6(v6) if ipv6_prefix_cap(v6) < 128 => match truncate(ip, 32, 128) {
                        IpAddr::V6(net) => net.octets().to_vec(),
                        IpAddr::V4(v4) => v4.octets().to_vec(),
                    },
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

use crate::clock::utc_day;

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

    /// Every form that carries an IPv4 address, generated around a random one.
    fn embeddings(v4: Ipv4Addr, noise: u64, server: u32) -> Vec<(&'static str, Ipv6Addr)> {
        let a = u128::from(u32::from(v4));
        let noise = u128::from(noise);
        vec![
            ("mapped", Ipv6Addr::from(0xffff_u128 << 32 | a)),
            ("compatible", Ipv6Addr::from(a)),
            ("translated", Ipv6Addr::from(0xffff_u128 << 48 | a)),
            ("6to4", Ipv6Addr::from(0x2002_u128 << 112 | a << 80 | (noise & ((1 << 80) - 1)))),
            ("nat64", Ipv6Addr::from(0x0064_ff9b_u128 << 96 | a)),
            (
                "teredo",
                Ipv6Addr::from(
                    0x2001_0000_u128 << 96
                        | u128::from(server) << 64
                        | (noise & 0xffff_ffff) << 32
                        | (!a & 0xffff_ffff),
                ),
            ),
            ("isatap", Ipv6Addr::from((noise << 64) | 0x0000_5efe_u128 << 32 | a)),
            ("isatap-global", Ipv6Addr::from((noise << 64) | 0x0200_5efe_u128 << 32 | a)),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        /// An IPv6 address that carries an IPv4 one is reduced as that IPv4 address, in
        /// truncate and hash mode alike, and never shows more of it than the IPv4 rule does.
        #[test]
        fn ipv4_inside_ipv6_is_reduced_as_ipv4(octets: [u8; 4], noise: u64, server: u32, v4_prefix in 0u8..=32, v6_prefix in 0u8..=128) {
            let v4 = Ipv4Addr::from(octets);
            proptest::prop_assume!(u32::from(v4) > 1);
            let hashing = IpReducer::new(&ClientIpConfig { mode: IpMode::Hash, ..Default::default() }, None);
            let v4_token = hashing.reduce(IpAddr::V4(v4));
            for (form, v6) in embeddings(v4, noise, server) {
                let reduced = truncate(IpAddr::V6(v6), v4_prefix, v6_prefix);
                proptest::prop_assert_eq!(reduced, truncate(IpAddr::V4(v4), v4_prefix, v6_prefix), "{} {}", form, v6);
                proptest::prop_assert_eq!(hashing.reduce(IpAddr::V6(v6)), v4_token.clone(), "{}", form);
            }
        }

        /// The local-use NAT64 prefix hides where its IPv4 address sits: nothing past its /48 is
        /// kept, whatever the configured IPv6 prefix.
        #[test]
        fn nat64_local_use_never_keeps_more_than_its_prefix(low: u64, mid: u16, v6_prefix in 0u8..=128) {
            let v6 = Ipv6Addr::from(0x0064_ff9b_0001_u128 << 80 | u128::from(mid) << 64 | u128::from(low));
            let reduced = truncate(IpAddr::V6(v6), 24, v6_prefix);
            proptest::prop_assert_eq!(reduced, truncate(IpAddr::V6(v6), 24, v6_prefix.min(48)));
        }
    }

    /// An IPv6 client that picks an address embedding a trusted proxy's IPv4 address (ISATAP,
    /// 6to4, Teredo, compatible) is not that proxy: its X-Forwarded-For is ignored.
    #[test]
    fn an_embedded_ipv4_address_never_makes_a_client_a_trusted_proxy() {
        for spoof in ["2a00:1450::5efe:10.0.0.1", "2002:a00:1::1", "2001:0:1:2:0:0:f5ff:fffe", "::10.0.0.1"] {
            let got = resolve(spoof, &["203.0.113.9"], &["10.0.0.0/8"]);
            assert_eq!(got, ip(spoof), "{spoof} was trusted");
        }
        // The mapped form of a trusted proxy's own address is that proxy.
        assert_eq!(resolve("::ffff:10.0.0.1", &["203.0.113.9"], &["10.0.0.0/8"]), ip("203.0.113.9"));
    }

    #[test]
    fn a_6to4_address_truncated_to_48_no_longer_carries_its_ipv4() {
        let reducer = IpReducer::new(&ClientIpConfig::default(), None);
        let reduced = reducer.reduce(ip("2002:cb00:7109:1::1"));
        assert_eq!(reduced, ReducedIp::Network(ip("203.0.113.0")));
        assert!(!reduced.to_string().contains("cb00:7109"), "{reduced}");
    }

    #[test]
    fn native_ipv6_is_not_read_as_ipv4() {
        for native in ["2001:db8::1", "2a00:1450:4001::1", "::1", "::", "fe80::1"] {
            assert_eq!(embedded_ipv4(native.parse().unwrap()), None, "{native}");
        }
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
