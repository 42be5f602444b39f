//! What a browser or platform sends to nymgate's login endpoints: query and form parameters,
//! cookies, `Authorization: Basic`, and `return_to`. None of them may panic, and `return_to`
//! never leaves the site.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nymgate::login::{form, safe_return_to};
use nymgate::mint::provider::basic_credentials;
use nymgate::web::cookie_value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let params = form(text);
    for value in params.values() {
        let target = safe_return_to(Some(value));
        assert!(target.starts_with('/') && !target.starts_with("//") && !target.starts_with("/\\"));
    }
    let _ = basic_credentials(text);
    if let Ok(value) = http::HeaderValue::from_str(text) {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::COOKIE, value);
        let _ = cookie_value(&headers, "__Host-nymgate-session");
    }
});
