//! X-Forwarded-For as a client writes it: the right-to-left walk never panics, and the answer is
//! always the peer or an address written in the header.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nymgate::client_ip::{parse_forwarded_entry, resolve_client_ip};

fuzz_target!(|data: &[u8]| {
    let trusted = ["10.0.0.0/8".parse().unwrap(), "127.0.0.0/8".parse().unwrap()];
    let peer = "127.0.0.1".parse().unwrap();
    let lines: Vec<&[u8]> = data.split(|b| *b == b'\n').collect();
    let ip = resolve_client_ip(peer, lines.iter().copied(), &trusted);
    let written = lines.iter().flat_map(|l| l.split(|b| *b == b',')).filter_map(parse_forwarded_entry);
    assert!(ip == peer || written.clone().any(|w| w == ip));
});
