//! Host validation and the query policy: never panic on any Host value or query string, and a
//! dropped parameter never survives.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nymgate::client_ip::IpReducer;
use nymgate::config::{ClientIpConfig, PrivacyConfig};
use nymgate::sanitize::{sanitize_query, validated_host, SanitizePolicy};

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = http::HeaderValue::from_bytes(data) {
        let request = http::Request::get("/").header("host", value).body(()).unwrap();
        if let Ok(host) = validated_host(&request.into_parts().0) {
            assert!(!host.contains('/') && !host.contains("..") && !host.contains('@'));
        }
    }
    if let Ok(query) = std::str::from_utf8(data) {
        let policy = SanitizePolicy::new(&PrivacyConfig {
            drop_query_params: vec!["email".into()],
            pseudonymize_query_params: vec!["device".into()],
            ..Default::default()
        });
        let reducer = IpReducer::new(&ClientIpConfig::default(), None);
        let out = sanitize_query(query, &policy, &reducer);
        for pair in out.split('&') {
            let name = pair.split_once('=').map_or(pair, |(n, _)| n);
            assert_ne!(nymgate::sanitize::percent_decode(name), b"email");
        }
    }
});
