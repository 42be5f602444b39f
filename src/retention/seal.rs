//! The retention store's formats on disk (docs/RETENTION.md, "How the values are protected"):
//! what a record's ciphertext and a wrapped data key are bound to, how a value's length is
//! hidden, and how the first format (issue 11) is still read until a tenant is migrated.
//!
//! Format 2 (this one). The `ciphertext` (or `wrapped`) column holds
//! `[FORMAT_V2][12-byte nonce][AES-256-GCM ciphertext and tag]` and the `nonce` column is empty.
//! Format 1 (issue 11) kept the 12-byte nonce in the `nonce` column and the bare ciphertext in the
//! other, with a shorter AAD. The `nonce` column's length tells the two apart without doubt (0 or
//! 12), and the leading byte leaves room for a format 3.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use super::RetentionError;

/// The leading byte of a format-2 blob.
pub(super) const FORMAT_V2: u8 = 2;

/// The smallest padded plaintext: every record of a few short values (a name, an email) has the
/// same ciphertext length, whatever the values' lengths.
const SMALLEST_BUCKET: usize = 256;

/// What a record's ciphertext is bound to (its AEAD associated data). A row whose ciphertext is
/// moved to another tenant or account, whose restriction flag or last-seen time is changed, or
/// which is an older copy (its `version` is not the one in `record_heads`) does not decrypt.
#[derive(Debug, Clone, Copy)]
pub(super) struct RecordBinding<'a> {
    pub tenant: &'a str,
    pub account: &'a str,
    /// Restricted or objected to (GDPR Art. 18, 21): flipping it in the database is refused.
    pub restricted: bool,
    /// The login time culling is measured from: moving it in the database is refused.
    pub last_seen: i64,
    /// This write's version, fresh at every write and kept in `record_heads` as well: an older
    /// copy of the row (a backup undoing a rectification) carries another one.
    pub version: i64,
}

impl RecordBinding<'_> {
    /// Length-prefixed fields, so that no two bindings share an encoding (a tenant id and an
    /// account number could otherwise trade a separator).
    fn aad(&self) -> Vec<u8> {
        let mut aad = b"nymgate retention record v2\0".to_vec();
        for field in [self.tenant.as_bytes(), self.account.as_bytes()] {
            aad.extend_from_slice(&(field.len() as u64).to_be_bytes());
            aad.extend_from_slice(field);
        }
        aad.push(u8::from(self.restricted));
        aad.extend_from_slice(&self.last_seen.to_be_bytes());
        aad.extend_from_slice(&self.version.to_be_bytes());
        aad
    }
}

/// Format 1's record AAD (issue 11): tenant and account number only.
fn record_aad_v1(tenant: &str, account: &str) -> Vec<u8> {
    format!("nymgate retention record v1\0{tenant}\0{account}").into_bytes()
}

fn data_key_aad_v2(tenant: &str) -> Vec<u8> {
    let mut aad = b"nymgate retention data key v2\0".to_vec();
    aad.extend_from_slice(&(tenant.len() as u64).to_be_bytes());
    aad.extend_from_slice(tenant.as_bytes());
    aad
}

/// Which format a stored (nonce column, blob column) pair is in.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(super) enum Format {
    V1,
    V2,
}

pub(super) fn format_of(nonce_column: &[u8], blob: &[u8]) -> Option<Format> {
    match (nonce_column.len(), blob.first()) {
        (0, Some(&FORMAT_V2)) => Some(Format::V2),
        (NONCE_LEN, _) => Some(Format::V1),
        _ => None,
    }
}

/// Pads `plain` to its bucket: a 4-byte big-endian length, the bytes, zeros up to the next power
/// of two from [`SMALLEST_BUCKET`]. The ciphertext then shows the bucket, not the length.
pub(super) fn pad(plain: &[u8]) -> Vec<u8> {
    let needed = plain.len() + 4;
    let bucket = needed.next_power_of_two().max(SMALLEST_BUCKET);
    let mut padded = Vec::with_capacity(bucket);
    padded.extend_from_slice(&(plain.len() as u32).to_be_bytes());
    padded.extend_from_slice(plain);
    padded.resize(bucket, 0);
    padded
}

pub(super) fn unpad(padded: &[u8]) -> Result<&[u8], RetentionError> {
    let (length, rest) = padded.split_first_chunk::<4>().ok_or(RetentionError::Tampered)?;
    let length = u32::from_be_bytes(*length) as usize;
    // The padding is authenticated, so a wrong length is a bug or another format, not an attack;
    // refused all the same.
    let (plain, zeros) = rest.split_at_checked(length).ok_or(RetentionError::Tampered)?;
    if zeros.iter().any(|&b| b != 0) {
        return Err(RetentionError::Tampered);
    }
    Ok(plain)
}

/// Seals a record's values (JSON) as format 2: the blob for the `ciphertext` column.
pub(super) fn seal_record(data_key: &[u8; 32], binding: &RecordBinding<'_>, plain: &[u8]) -> Vec<u8> {
    seal_v2(data_key, &binding.aad(), pad(plain))
}

/// Opens a stored record: format 2 under `binding`, or format 1 when `legacy_allowed` (a
/// tenant whose data key is still in format 1, not migrated yet). Every failure is `Tampered`.
pub(super) fn open_record(
    data_key: &[u8; 32],
    binding: &RecordBinding<'_>,
    nonce_column: &[u8],
    blob: Vec<u8>,
    legacy_allowed: bool,
) -> Result<Vec<u8>, RetentionError> {
    match format_of(nonce_column, &blob) {
        Some(Format::V2) => {
            let padded = open_v2(data_key, &binding.aad(), blob)?;
            Ok(unpad(&padded)?.to_vec())
        }
        Some(Format::V1) if legacy_allowed => {
            open(data_key, &record_aad_v1(binding.tenant, binding.account), nonce_column, blob)
        }
        _ => Err(RetentionError::Tampered),
    }
}

/// Wraps a data key as format 2: the blob for the `wrapped` column.
pub(super) fn wrap_data_key(wrap_key: &[u8; 32], tenant: &str, data_key: &[u8; 32]) -> Vec<u8> {
    seal_v2(wrap_key, &data_key_aad_v2(tenant), data_key.to_vec())
}

/// Unwraps a stored data key in either format; which one it was tells whether the tenant's
/// records may still be in format 1.
pub(super) fn unwrap_data_key(
    wrap_key: &[u8; 32],
    tenant: &str,
    nonce_column: &[u8],
    blob: Vec<u8>,
) -> Result<([u8; 32], Format), RetentionError> {
    let (plain, format) = match format_of(nonce_column, &blob) {
        Some(Format::V2) => (open_v2(wrap_key, &data_key_aad_v2(tenant), blob)?, Format::V2),
        Some(Format::V1) => (open(wrap_key, tenant.as_bytes(), nonce_column, blob)?, Format::V1),
        None => return Err(RetentionError::Corrupt),
    };
    let key: [u8; 32] = plain.try_into().map_err(|_| RetentionError::Corrupt)?;
    Ok((key, format))
}

fn seal_v2(key: &[u8; 32], aad: &[u8], plain: Vec<u8>) -> Vec<u8> {
    let (nonce, sealed) = seal(key, aad, plain);
    let mut blob = Vec::with_capacity(1 + nonce.len() + sealed.len());
    blob.push(FORMAT_V2);
    blob.extend_from_slice(&nonce);
    blob.extend_from_slice(&sealed);
    blob
}

fn open_v2(key: &[u8; 32], aad: &[u8], blob: Vec<u8>) -> Result<Vec<u8>, RetentionError> {
    let body = blob.get(1..).ok_or(RetentionError::Tampered)?;
    let (nonce, sealed) = body.split_at_checked(NONCE_LEN).ok_or(RetentionError::Tampered)?;
    open(key, aad, nonce, sealed.to_vec())
}

/// AES-256-GCM with a random 96-bit nonce: (nonce, ciphertext and tag). Random nonces are safe
/// here far beyond any tenant's record count (NIST SP 800-38D §8.3: 2^32 messages per key).
fn seal(key: &[u8; 32], aad: &[u8], mut plain: Vec<u8>) -> ([u8; NONCE_LEN], Vec<u8>) {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key"));
    let nonce = crate::secret::random_bytes::<NONCE_LEN>();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut plain)
        .expect("AES-GCM seals any length here");
    (nonce, plain)
}

fn open(key: &[u8; 32], aad: &[u8], nonce: &[u8], mut sealed: Vec<u8>) -> Result<Vec<u8>, RetentionError> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key"));
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| RetentionError::Tampered)?;
    let plain =
        key.open_in_place(nonce, Aad::from(aad), &mut sealed).map_err(|_| RetentionError::Tampered)?;
    Ok(plain.to_vec())
}

/// Format 1's sealing, for the migration tests only: rows as issue 11 wrote them.
#[cfg(test)]
pub(super) fn seal_v1_for_tests(
    key: &[u8; 32],
    tenant: &str,
    account: Option<&str>,
    plain: Vec<u8>,
) -> (Vec<u8>, Vec<u8>) {
    let aad = match account {
        Some(account) => record_aad_v1(tenant, account),
        None => tenant.as_bytes().to_vec(),
    };
    let (nonce, sealed) = seal(key, &aad, plain);
    (nonce.to_vec(), sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_hides_the_length_within_a_bucket_and_round_trips() {
        for len in [0usize, 1, 17, 200, 252] {
            let plain = vec![b'x'; len];
            let padded = pad(&plain);
            assert_eq!(padded.len(), SMALLEST_BUCKET, "{len} bytes");
            assert_eq!(unpad(&padded).unwrap(), &plain[..]);
        }
        assert_eq!(pad(&[b'x'; 253]).len(), 512);
        assert_eq!(pad(&[b'x'; 5000]).len(), 8192);
    }

    proptest::proptest! {
        /// Any plaintext round-trips through the padding, and the padded length depends only on
        /// the bucket.
        #[test]
        fn padding_round_trips(plain in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000)) {
            let padded = pad(&plain);
            proptest::prop_assert!(padded.len().is_power_of_two() && padded.len() >= SMALLEST_BUCKET);
            proptest::prop_assert!(padded.len() < 2 * (plain.len() + 4).max(SMALLEST_BUCKET));
            proptest::prop_assert_eq!(unpad(&padded).unwrap(), &plain[..]);
        }

        /// Changing any one field of the binding makes the record refuse to open.
        #[test]
        fn every_bound_field_is_checked(field in 0usize..5, version in 1i64..i64::MAX) {
            let key = [9u8; 32];
            let binding = RecordBinding { tenant: "t", account: "a", restricted: false, last_seen: 5, version };
            let blob = seal_record(&key, &binding, b"{}");
            let mut other = binding;
            match field {
                0 => other.tenant = "u",
                1 => other.account = "b",
                2 => other.restricted = true,
                3 => other.last_seen = 6,
                _ => other.version = version - 1,
            }
            proptest::prop_assert!(open_record(&key, &binding, &[], blob.clone(), false).is_ok());
            proptest::prop_assert!(matches!(
                open_record(&key, &other, &[], blob, false),
                Err(RetentionError::Tampered)
            ));
        }
    }

    #[test]
    fn tenant_and_account_cannot_trade_bytes() {
        let a = RecordBinding { tenant: "ab", account: "c", restricted: false, last_seen: 0, version: 1 };
        let b = RecordBinding { tenant: "a", account: "bc", ..a };
        assert_ne!(a.aad(), b.aad());
    }
}
