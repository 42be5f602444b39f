//! An issuer's canonical form (src/config/issuer.rs) over the bytes an IdP chooses: a discovery
//! document's `issuer`, a SAML Issuer. Never a panic; a canonical form is its own canonical
//! form; equality of spellings is symmetric; and a select value (src/config/identity.rs) has
//! one form too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nymgate::config::identity::canonical_select_value;
use nymgate::config::issuer::{canonical_issuer, same_issuer};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_at(text.char_indices().nth(text.chars().count() / 2).map_or(0, |(i, _)| i));
    for raw in [text.as_ref(), a, b] {
        if let Ok(canonical) = canonical_issuer(raw) {
            assert_eq!(canonical_issuer(&canonical).as_ref(), Ok(&canonical), "{raw:?}");
            assert!(same_issuer(raw, &canonical));
        }
        let value = canonical_select_value(raw);
        assert_eq!(canonical_select_value(&value), value, "{raw:?}");
    }
    assert_eq!(same_issuer(a, b), same_issuer(b, a));
});
