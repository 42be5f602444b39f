//! The check fuzz/fuzz_targets/retention_record.rs runs (not an API): whoever can write to the
//! retention database chooses the bytes seal.rs reads (the `nonce` column, a record's blob, a
//! wrapped data key, and the padding inside a record). Arbitrary stored bytes must be refused
//! without a panic and never open; what nymgate sealed must open under its own binding only,
//! and not once a bit of it is changed.

use super::seal::{self, Format, RecordBinding};
use super::RetentionError;

const KEY: [u8; 32] = [7; 32];

/// Panics when the retention formats mishandle `data`: its first byte picks the options (format-1
/// reads allowed, the nonce column's length, the restriction flag), the rest is stored bytes.
pub fn stored_bytes(data: &[u8]) {
    let Some((&head, rest)) = data.split_first() else { return };
    let legacy_allowed = head & 1 != 0;
    // The nonce column: empty (format 2), 12 bytes (format 1), or a length no format has.
    let nonce_len = [0, 12, 5, 13][usize::from((head >> 1) & 3)];
    let (nonce, blob) = rest.split_at(nonce_len.min(rest.len()));
    let binding =
        RecordBinding { tenant: "t", account: "a", restricted: head & 8 != 0, last_seen: 5, version: 9 };

    // The format is decided by the nonce column's length, and format 2's leading byte, alone.
    let format = seal::format_of(nonce, blob);
    let v2_shape = nonce.is_empty() && blob.first() == Some(&seal::FORMAT_V2);
    match format {
        Some(Format::V2) => assert!(v2_shape),
        Some(Format::V1) => assert_eq!(nonce.len(), 12),
        None => assert!(!v2_shape && nonce.len() != 12),
    }

    // Stored bytes nymgate did not seal never open, as a record or as a data key.
    let opened = seal::open_record(&KEY, &binding, nonce, blob.to_vec(), legacy_allowed);
    assert!(matches!(opened, Err(RetentionError::Tampered)), "{opened:?}");
    match seal::unwrap_data_key(&KEY, "t", nonce, blob.to_vec()) {
        Err(RetentionError::Tampered) => assert!(format.is_some()),
        Err(RetentionError::Corrupt) => assert!(format.is_none()),
        other => panic!("a data key nymgate never wrapped: {other:?}"),
    }

    // The padding reader takes any bytes: what it returns is the declared length's prefix,
    // followed by zeros only.
    if let Ok(plain) = seal::unpad(rest) {
        assert_eq!(plain.len(), u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize);
        assert_eq!(plain, &rest[4..4 + plain.len()]);
        assert!(rest[4 + plain.len()..].iter().all(|&b| b == 0));
    }
    // Padding round-trips, and a padding byte that is not zero is refused.
    let padded = seal::pad(rest);
    assert_eq!(seal::unpad(&padded).unwrap(), rest);
    let padding = padded.len() - 4 - rest.len();
    if padding > 0 {
        let mut dirty = padded;
        dirty[4 + rest.len() + usize::from(head) % padding] = head | 1;
        assert!(seal::unpad(&dirty).is_err());
    }

    // What nymgate seals opens under its binding, and not under another nor with a bit changed.
    let sealed = seal::seal_record(&KEY, &binding, rest);
    assert_eq!(seal::open_record(&KEY, &binding, &[], sealed.clone(), legacy_allowed).unwrap(), rest);
    let moved = RecordBinding { account: "b", ..binding };
    assert!(seal::open_record(&KEY, &moved, &[], sealed.clone(), legacy_allowed).is_err());
    let mut flipped = sealed;
    let at = usize::from(head) % flipped.len();
    flipped[at] ^= 1 << (head % 8);
    assert!(seal::open_record(&KEY, &binding, &[], flipped, legacy_allowed).is_err());

    let data_key: [u8; 32] = std::array::from_fn(|i| rest.get(i).copied().unwrap_or(0));
    let wrapped = seal::wrap_data_key(&KEY, "t", &data_key);
    assert_eq!(seal::unwrap_data_key(&KEY, "t", &[], wrapped.clone()).unwrap(), (data_key, Format::V2));
    assert!(seal::unwrap_data_key(&KEY, "u", &[], wrapped).is_err(), "another tenant's key");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuzz_seeds_pass() {
        let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/retention_record");
        let mut n = 0;
        for entry in std::fs::read_dir(seeds).unwrap() {
            stored_bytes(&std::fs::read(entry.unwrap().path()).unwrap());
            n += 1;
        }
        assert!(n >= 3);
    }

    proptest::proptest! {
        /// The fuzz target's check over arbitrary stored bytes, in every test run.
        #[test]
        fn arbitrary_stored_bytes_are_refused(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            stored_bytes(&data);
        }
    }
}
