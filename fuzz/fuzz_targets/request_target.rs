//! The canonical request target (src/target.rs) and the other rules that decide on attacker
//! bytes before anything is routed: query rewriting, header-name canonical form, the Host check,
//! nymgate's cookie names, IPv4 inside IPv6, the form scanner (src/form_scan.rs). Never a panic, and the canonical forms hold their
//! invariants: a canonical path is its own canonical form; a query splits and rejoins to itself;
//! a dropped parameter never survives the rewrite.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nymgate::client_ip::{embedded_ipv4, truncate};
use nymgate::config::{ClientIpConfig, PrivacyConfig};
use nymgate::form_scan::FormScanner;
use nymgate::public_hosts::HostSet;
use nymgate::sanitize::{canonical_header_name, sanitize_query, sets_own_cookie, SanitizePolicy};
use nymgate::target::{canonical_param, canonical_path, query_has, query_pairs};

/// The form scanner's verdict on `data`, read whole or cut at `at`: it must not depend on how
/// the body was split into frames.
fn form_scan(content_type: &[u8], data: &[u8], at: usize) {
    let verdict = |pieces: &[&[u8]]| {
        let mut scanner = FormScanner::for_content_type(Some(content_type)).unwrap();
        pieces.iter().try_for_each(|piece| scanner.feed(piece)).and_then(|()| scanner.finish())
    };
    let at = at % (data.len() + 1);
    assert_eq!(verdict(&[data]), verdict(&[&data[..at], &data[at..]]));
}

fuzz_target!(|data: &[u8]| {
    let at = data.first().copied().unwrap_or_default() as usize;
    form_scan(b"application/x-www-form-urlencoded", data, at);
    form_scan(b"multipart/form-data; boundary=b", data, at);
    if data.len() >= 16 {
        let v6 = std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&data[..16]).unwrap());
        if let Some(v4) = embedded_ipv4(v6) {
            // An address that carries an IPv4 address is never kept more specific than it.
            let reduced = truncate(std::net::IpAddr::V6(v6), 24, 128);
            assert_eq!(reduced, truncate(std::net::IpAddr::V4(v4), 24, 128));
        }
    }
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (path, query) = text.split_once('?').unwrap_or((text, ""));
    if let Ok(canonical) = canonical_path(path) {
        assert!(canonical.as_str().starts_with('/'));
        assert_eq!(canonical_path(canonical.as_str()).ok().as_ref(), Some(&canonical));
    }
    let mut rejoined = String::new();
    for pair in query_pairs(query) {
        if let Some(separator) = pair.separator {
            rejoined.push(separator);
        }
        rejoined.push_str(pair.raw);
        let _ = canonical_param(pair.name);
    }
    assert_eq!(rejoined, query);
    let policy = SanitizePolicy::new(&PrivacyConfig {
        drop_query_params: vec!["email".into(), "SAMLResponse".into()],
        pseudonymize_query_params: vec!["device".into()],
        ..Default::default()
    });
    let reducer = nymgate::client_ip::IpReducer::new(&ClientIpConfig::default(), None);
    let kept = sanitize_query(query, &policy, &reducer);
    assert!(!query_has(&kept, &["email", "samlresponse"]), "{query:?} -> {kept:?}");
    let _ = canonical_header_name(path);
    let _ = sets_own_cookie(data);
    let _ = HostSet::new(query.split(',')).allows(path);
});
