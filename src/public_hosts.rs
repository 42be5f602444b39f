//! The hosts nymgate answers for. A request whose Host (or HTTP/2 `:authority`) names any other
//! gets 421 Misdirected Request (RFC 9110 §15.5.20) and never reaches the platform: a platform
//! that builds links, cookies or redirects from Host must only ever see nymgate's own names
//! (host header poisoning, shared/SECURITY.md), and a name nymgate was never configured for is
//! refused, not passed (deny by default).
//!
//! The set is `server.public_hosts` when it is given; otherwise the DNS names and IP addresses
//! of the TLS certificate in service (its subjectAltName, RFC 5280 §4.2.1.6), which follow the
//! certificate when it is reloaded. A browser could not have reached nymgate over TLS for a name
//! outside the certificate anyway, so that default refuses nothing a browser sends.

use std::collections::HashSet;
use std::net::IpAddr;

/// Host names and addresses, compared without letter case and without the port.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HostSet {
    /// Names and IP literals in canonical form (lowercase, no trailing dot, IPs as `IpAddr`
    /// prints them).
    exact: HashSet<String>,
    /// `*.example.org` entries as `.example.org`: one more label, no deeper (RFC 6125 §6.4.3).
    wildcards: Vec<String>,
}

impl HostSet {
    /// Builds the set from configured or certificate names; `*.` entries are wildcards.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut set = HostSet::default();
        for name in names {
            let name = canonical_host(name);
            match name.strip_prefix('*') {
                Some(suffix) if suffix.starts_with('.') => set.wildcards.push(suffix.to_owned()),
                _ => {
                    set.exact.insert(name);
                }
            }
        }
        set
    }

    /// The names of a DER certificate's subjectAltName; an empty set when it has none or does
    /// not parse. Then every request gets 421 (logged as `unknown_host`); with `[login]`,
    /// `check`, the start and a config reload refuse `login.public_url` as outside the set, and
    /// without it nothing warns.
    pub fn from_certificate(der: &[u8]) -> Self {
        Self::new(certificate_names(der).iter().map(String::as_str))
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcards.is_empty()
    }

    /// Whether `host` (a validated `host[:port]` from sanitize::validated_host) is one of ours.
    /// The port is not compared: a load balancer in front may map ports.
    pub fn allows(&self, host: &str) -> bool {
        let name = canonical_host(strip_port(host));
        if self.exact.contains(&name) {
            return true;
        }
        self.wildcards.iter().any(|suffix| {
            name.strip_suffix(suffix.as_str()).is_some_and(|label| !label.is_empty() && !label.contains('.'))
        })
    }
}

/// The Host the platform is given for a request that named `host` (validated, allowed): the
/// canonical name (lowercase, no trailing dot), and the port only when it is `public_port`. A
/// platform that builds links, redirects or cache keys from Host then never sees a spelling or
/// a port the client chose (host header poisoning, shared/SECURITY.md).
pub fn forwarded_host(host: &str, public_port: u16) -> String {
    let name = canonical_host(strip_port(host));
    let name = if name.contains(':') { format!("[{name}]") } else { name };
    let port = match host.strip_prefix('[') {
        Some(rest) => rest.split_once("]:").map(|(_, port)| port),
        None => host.rsplit_once(':').map(|(_, port)| port),
    };
    match port.and_then(|p| p.parse::<u16>().ok()) {
        Some(port) if port == public_port => format!("{name}:{port}"),
        _ => name,
    }
}

/// `host[:port]` or `[v6][:port]` without the port.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Lowercase, without a trailing dot (`learn.example.` is `learn.example`), IP literals in the
/// form `IpAddr` prints (so `::0001` is `::1`).
fn canonical_host(host: &str) -> String {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    let host = host.strip_suffix('.').unwrap_or(host);
    match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host.to_ascii_lowercase(),
    }
}

/// The DNS names and IP addresses of a certificate's subjectAltName extension.
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    use x509_cert::der::Decode;
    use x509_cert::ext::pkix::name::GeneralName;
    use x509_cert::ext::pkix::SubjectAltName;
    const SUBJECT_ALT_NAME: &str = "2.5.29.17";
    let Ok(cert) = x509_cert::Certificate::from_der(der) else { return Vec::new() };
    let mut names = Vec::new();
    for extension in cert.tbs_certificate.extensions.iter().flatten() {
        if extension.extn_id.to_string() != SUBJECT_ALT_NAME {
            continue;
        }
        let Ok(alt) = SubjectAltName::from_der(extension.extn_value.as_bytes()) else { continue };
        for name in alt.0 {
            match name {
                GeneralName::DnsName(dns) => names.push(dns.as_str().to_owned()),
                GeneralName::IpAddress(octets) => {
                    let bytes = octets.as_bytes();
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    names.extend(ip.map(|ip| ip.to_string()));
                }
                _ => {}
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_platform_gets_the_canonical_host_and_only_the_public_port() {
        assert_eq!(forwarded_host("LEARN.example.:8443", 8443), "learn.example:8443");
        assert_eq!(forwarded_host("learn.example:1", 8443), "learn.example");
        assert_eq!(forwarded_host("learn.example", 8443), "learn.example");
        assert_eq!(forwarded_host("[::1]:8443", 8443), "[::1]:8443");
        assert_eq!(forwarded_host("[0:0::1]:9", 8443), "[::1]");
        assert_eq!(forwarded_host("127.0.0.1:8443", 443), "127.0.0.1");
    }

    #[test]
    fn wildcards_cover_one_label() {
        let hosts = HostSet::new(["*.school.example", "learn.example"]);
        assert!(hosts.allows("a.school.example:443"));
        assert!(!hosts.allows("school.example"));
        assert!(!hosts.allows("a.b.school.example"));
        assert!(!hosts.allows(".school.example"));
    }

    proptest! {
        /// Every spelling of a configured host (letter case, a trailing dot, any port) is
        /// allowed; any other name is refused.
        #[test]
        fn host_spellings_decide_as_the_canonical_form(
            labels in prop::collection::vec("[a-z0-9]{1,8}", 1..4),
            upper in prop::collection::vec(any::<bool>(), 40),
            dot in any::<bool>(),
            port in prop::option::of(1u16..),
            other in "[a-z0-9]{1,8}",
        ) {
            let name = labels.join(".");
            let hosts = HostSet::new([name.as_str()]);
            let mut spelled: String = name
                .chars()
                .zip(upper.iter().cycle())
                .map(|(c, u)| if *u { c.to_ascii_uppercase() } else { c })
                .collect();
            if dot {
                spelled.push('.');
            }
            if let Some(port) = port {
                spelled = format!("{spelled}:{port}");
            }
            prop_assert!(hosts.allows(&spelled), "{}", spelled);
            let foreign = format!("{other}x.{name}");
            prop_assert!(!hosts.allows(&foreign), "{}", foreign);
        }
    }
}
