//! Sealed values (AEAD) for cookies: a pending login (state, nonce, PKCE verifier, which IdP it
//! went to) or a session lives in the browser, encrypted and authenticated by nymgate, so that
//! any replica can finish it and no shared store is needed (shared/PRODUCT.md, "Running it").
//!
//! Format (then base64url without padding):
//!
//! ```text
//! version (1) ‖ key id (4) ‖ expires, unix seconds (8, big-endian) ‖ nonce (12) ‖ AES-256-GCM ciphertext and tag
//! ```
//!
//! The header is authenticated as associated data together with the purpose (`flow`,
//! `session`…), so a value sealed for one purpose never opens as another, and the expiry can't
//! be moved. Keys are derived from a configured secret per purpose-independent key id; the
//! previous secret still opens values during a rotation. Every failure is one opaque error to
//! the client; the reason is for the log only.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{KeyInit, Mac};

use crate::secret::Secret;

const VERSION: u8 = 1;
const HEADER_LEN: usize = 1 + 4 + 8 + NONCE_LEN;
const TAG_LEN: usize = 16;
/// Browsers keep cookies up to about 4096 bytes; anything longer is not ours.
pub const MAX_SEALED_LEN: usize = 4096;

/// Why a sealed value did not open. Shown to nobody but the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value was made by a key nymgate no longer has")]
    UnknownKey,
    #[error("sealed value expired")]
    Expired,
    #[error("sealed value failed authentication")]
    Forged,
}

struct SealKey {
    id: [u8; 4],
    key: LessSafeKey,
}

impl SealKey {
    fn derive(secret: &Secret) -> Self {
        let mac = |label: &[u8]| {
            let mut mac =
                hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.expose()).expect("any key length");
            mac.update(label);
            mac.finalize().into_bytes()
        };
        let key_bytes = mac(b"nymgate/seal/aes-256-gcm/v1");
        let id_bytes = mac(b"nymgate/seal/key-id/v1");
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key_bytes).expect("32-byte key"));
        Self { id: [id_bytes[0], id_bytes[1], id_bytes[2], id_bytes[3]], key }
    }
}

/// Seals and opens values with the current key; opens with previous keys too.
pub struct Sealer {
    current: SealKey,
    previous: Vec<SealKey>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("keys", &(1 + self.previous.len())).finish_non_exhaustive()
    }
}

fn aad(purpose: &str, header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(16 + purpose.len() + header.len());
    aad.extend_from_slice(b"nymgate-seal\0");
    aad.extend_from_slice(&(purpose.len() as u32).to_be_bytes());
    aad.extend_from_slice(purpose.as_bytes());
    aad.extend_from_slice(header);
    aad
}

impl Sealer {
    pub fn new(current: &Secret, previous: &[Secret]) -> Self {
        Self { current: SealKey::derive(current), previous: previous.iter().map(SealKey::derive).collect() }
    }

    /// Seals `plaintext` for `purpose`, valid until `expires` (unix seconds).
    pub fn seal(&self, purpose: &str, plaintext: &[u8], expires: u64) -> String {
        let nonce_bytes: [u8; NONCE_LEN] = crate::secret::random_bytes();
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&expires.to_be_bytes());
        out.extend_from_slice(&nonce_bytes);
        let mut body = plaintext.to_vec();
        self.current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad(purpose, &out)),
                &mut body,
            )
            .expect("AES-GCM sealing of a bounded buffer cannot fail");
        out.extend_from_slice(&body);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens a value sealed for `purpose`, if it is authentic and not expired at `now`.
    pub fn open(&self, purpose: &str, sealed: &str, now: u64) -> Result<Vec<u8>, SealError> {
        if sealed.len() > MAX_SEALED_LEN {
            return Err(SealError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| SealError::Malformed)?;
        if raw.len() < HEADER_LEN + TAG_LEN || raw[0] != VERSION {
            return Err(SealError::Malformed);
        }
        let (header, body) = raw.split_at(HEADER_LEN);
        let id = &header[1..5];
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or(SealError::UnknownKey)?;
        let expires = u64::from_be_bytes(header[5..13].try_into().expect("8 bytes"));
        let nonce = Nonce::try_assume_unique_for_key(&header[13..]).map_err(|_| SealError::Malformed)?;
        let mut body = body.to_vec();
        // Authenticate before trusting the expiry: an expired-looking forgery is still a forgery.
        let plaintext = key
            .key
            .open_in_place(nonce, Aad::from(aad(purpose, header)), &mut body)
            .map_err(|_| SealError::Forged)?;
        if now >= expires {
            return Err(SealError::Expired);
        }
        Ok(plaintext.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(byte: u8) -> Secret {
        Secret::new(vec![byte; 32])
    }

    #[test]
    fn round_trip_and_expiry() {
        let sealer = Sealer::new(&secret(1), &[]);
        let sealed = sealer.seal("flow", b"state=abc", 100);
        assert_eq!(sealer.open("flow", &sealed, 99).unwrap(), b"state=abc");
        assert_eq!(sealer.open("flow", &sealed, 100), Err(SealError::Expired));
        assert_ne!(sealed, sealer.seal("flow", b"state=abc", 100), "fresh nonce each time");
    }

    #[test]
    fn purpose_binds_the_value() {
        let sealer = Sealer::new(&secret(1), &[]);
        let sealed = sealer.seal("flow", b"x", 100);
        assert_eq!(sealer.open("session", &sealed, 0), Err(SealError::Forged));
    }

    #[test]
    fn every_altered_byte_is_refused() {
        let sealer = Sealer::new(&secret(1), &[]);
        let raw = URL_SAFE_NO_PAD.decode(sealer.seal("flow", b"payload", 100)).unwrap();
        for i in 0..raw.len() {
            let mut altered = raw.clone();
            altered[i] ^= 0x01;
            let result = sealer.open("flow", &URL_SAFE_NO_PAD.encode(&altered), 0);
            assert!(result.is_err(), "byte {i} altered and still opened");
        }
        // Moving the expiry forward is an alteration too.
        let mut later = raw.clone();
        later[5..13].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(sealer.open("flow", &URL_SAFE_NO_PAD.encode(&later), 0), Err(SealError::Forged));
    }

    #[test]
    fn rotation_keeps_previous_values_open_and_drops_unknown_keys() {
        let old = Sealer::new(&secret(1), &[]);
        let sealed = old.seal("session", b"s", 100);
        let rotated = Sealer::new(&secret(2), &[secret(1)]);
        assert_eq!(rotated.open("session", &sealed, 0).unwrap(), b"s");
        let forgotten = Sealer::new(&secret(2), &[]);
        assert_eq!(forgotten.open("session", &sealed, 0), Err(SealError::UnknownKey));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let sealer = Sealer::new(&secret(1), &[]);
        for input in ["", "!!!", "AQ", &"A".repeat(5000), &URL_SAFE_NO_PAD.encode([1u8; 20])] {
            assert!(sealer.open("flow", input, 0).is_err(), "{input:?}");
        }
        assert_eq!(format!("{sealer:?}"), "Sealer { keys: 1, .. }");
    }
}
