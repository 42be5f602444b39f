//! What an IdP's pages send `nymgate loadtest --idp external`: the first form of a page, its
//! inputs, the login filled in, and links resolved against the page. None of it may panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nymgate::loadtest::html::{first_form, resolve};

fuzz_target!(|data: &[u8]| {
    let Ok(page) = std::str::from_utf8(data) else { return };
    if let Some(mut form) = first_form(page) {
        form.fill_login("person", "password");
        let _ = form.fields();
        let resolved = resolve("https://idp.example/a/b?c=1", &form.action);
        assert!(resolved.starts_with("https://") || resolved.starts_with("http://"));
    }
});
