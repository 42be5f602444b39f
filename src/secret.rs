//! Secret bytes that never print, and where they are read from.

use std::fmt;

use crate::config::SecretSource;

/// Secret bytes. `Debug` prints only that it is redacted; the bytes are zeroed on drop as far as
/// safe Rust allows (an overwrite before the buffer is freed).
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Compares in constant time with respect to the contents (lengths may differ observably).
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        self.0.len() == other.len() && bool::from(self.0.as_slice().ct_eq(other))
    }

    /// Reads a secret from its configured source, by the rule `nymgate check` applies too
    /// (config::secrets). Errors name the source, never the value.
    pub fn load(source: &SecretSource) -> Result<Secret, String> {
        crate::config::secrets::read_secret(source).map(Secret)
    }

    /// A bearer token (`[retention.api]`), by the same rule as `nymgate check`.
    pub fn load_bearer_token(source: &SecretSource) -> Result<Secret, String> {
        crate::config::secrets::read_bearer_token(source).map(Secret)
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Constant-time equality of two strings (request IDs, states): lengths may differ observably.
pub fn ct_eq_str(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Random bytes from the operating system. A failing OS RNG is not survivable for a security
/// gateway, so it aborts the start rather than continue with weak keys.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).expect("the operating system's random number generator failed");
    out
}

/// A random identifier as lowercase hex, for request ids.
pub fn random_hex<const N: usize>() -> String {
    to_hex(&random_bytes::<N>())
}

/// Bytes as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::new(b"hunter2-hunter2-hunter2".to_vec());
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert!(s.ct_eq(b"hunter2-hunter2-hunter2"));
        assert!(!s.ct_eq(b"hunter2-hunter2-hunter3"));
        assert!(!s.ct_eq(b"hunter2"));
    }

    #[test]
    fn short_secret_refused_without_echoing_it() {
        std::env::set_var("NYMGATE_TEST_SHORT_SECRET", "tiny");
        let err = Secret::load(&SecretSource::Env("NYMGATE_TEST_SHORT_SECRET".into())).unwrap_err();
        assert!(!err.contains("tiny"), "{err}");
    }
}
