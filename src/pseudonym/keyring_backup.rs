//! Keyring backups (`nymgate keys backup`, `keys restore`; deploy/README.md "Backing up the
//! keyring").
//!
//! A backup is the keyring's text behind two comment lines, so it is itself a valid keyring
//! file:
//!
//! ```text
//! # nymgate keyring backup: secret, mode 0600. Check or restore it with `nymgate keys restore`.
//! # sha256 <64 hex digits: SHA-256 of every byte after this line>
//! # made <unix seconds>
//! <the keyring's text>
//! ```
//!
//! The digest finds a damaged or edited backup (a truncated copy, a flipped bit, a hand edit).
//! It does not stop a forger who holds the backup, who could recompute it, but such a person
//! holds every key already: a backup must be kept as the keyring is (encrypted, access-logged).
//!
//! A restore never loses a key and never brings a deleted one back: it merges the backup into
//! the live keyring under the writer lock, adding the keys the live one lacks and dropping every
//! key an erasure record of either names. A live keyring that exists but can't be read is not
//! replaced: it may hold the only record of an erasure made after the backup, so the operator
//! moves it aside first (and keeps it until the restored keyring is checked).

use std::path::Path;

use super::keyring::{fingerprint, Keyring, KeyringError};
use super::keyring_write::{update, WriterLock};

const FIRST_LINE: &str =
    "# nymgate keyring backup: secret, mode 0600. Check or restore it with `nymgate keys restore`.\n";
const DIGEST_PREFIX: &str = "# sha256 ";
const MADE_PREFIX: &str = "# made ";

/// A backup's text of `ring`, made at `now`.
pub fn backup_text(ring: &Keyring, now: u64) -> String {
    let body = format!("{MADE_PREFIX}{now}\n{}", ring.to_text());
    format!("{FIRST_LINE}{DIGEST_PREFIX}{}\n{body}", sha256_hex(body.as_bytes()))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    crate::secret::to_hex(&sha2::Sha256::digest(bytes))
}

/// A backup checked: its digest, then its keyring. Returns the keyring and when it was made.
pub fn read_backup(bytes: &[u8], path: &Path) -> Result<(Keyring, u64), KeyringError> {
    let bad =
        |why: &str| KeyringError::File(format!("{} is not a sound keyring backup: {why}", path.display()));
    let text = std::str::from_utf8(bytes).map_err(|_| bad("it is not UTF-8"))?;
    let rest = text.strip_prefix(FIRST_LINE).ok_or_else(|| bad("its first line is not a backup's"))?;
    let (digest_line, body) = rest.split_once('\n').ok_or_else(|| bad("it ends early"))?;
    let recorded = digest_line.strip_prefix(DIGEST_PREFIX).ok_or_else(|| bad("it has no digest line"))?;
    if !crate::secret::ct_eq_str(recorded, &sha256_hex(body.as_bytes())) {
        return Err(bad("its content does not match its SHA-256 (damaged or edited)"));
    }
    let (made_line, keyring) = body.split_once('\n').ok_or_else(|| bad("it ends early"))?;
    let made = made_line
        .strip_prefix(MADE_PREFIX)
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| bad("it has no `made` line"))?;
    Ok((Keyring::parse(keyring, path)?, made))
}

/// Writes a backup of the keyring at `keyring` to `out` (mode 0600, atomically, under `out`'s
/// own writer lock) and checks it by reading it back. Returns the backup's keyring.
pub fn backup(keyring: &Path, out: &Path, now: u64) -> Result<Keyring, KeyringError> {
    // The keyring is replaced by rename, so reading it needs no lock: this is a whole version.
    let ring = Keyring::load(keyring)?;
    let text = backup_text(&ring, now);
    let lock = WriterLock::take(out)?;
    if lock.target() == super::keyring_write::resolve(keyring)? {
        return Err(KeyringError::File("the backup would replace the keyring itself".into()));
    }
    lock.write(text.as_bytes(), |bytes| {
        let (copy, _) = read_backup(bytes, out)?;
        match copy.to_text() == ring.to_text() {
            true => Ok(()),
            false => Err(KeyringError::File("the backup written does not read back the same".into())),
        }
    })?;
    Ok(ring)
}

/// What a restore did (or, checking only, would do): key versions by scope.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// When the backup was made (unix seconds).
    pub made: u64,
    /// Keys the backup brought that the keyring lacked.
    pub added: Vec<(String, u32)>,
    /// Keys the keyring had already.
    pub present: Vec<(String, u32)>,
    /// Keys of the backup an erasure record names (deleted, possibly after the backup): left out.
    pub dropped_erased: Vec<(String, u32)>,
}

/// Merges `backup` into `live`: the keys `live` lacks are added, every key an erasure record
/// (of either) names is left out, and both sets of records are kept.
pub fn merge(live: &mut Keyring, backup: &Keyring, made: u64) -> Result<RestoreReport, KeyringError> {
    for record in backup.erased() {
        live.insert_erased(record);
    }
    let mut report = RestoreReport { made, ..RestoreReport::default() };
    for (name, scope) in backup.scopes() {
        for key in &scope.keys {
            let print = fingerprint(&key.secret);
            let version = (name.to_owned(), key.version);
            if live.erased().iter().any(|e| e.fingerprint == print) {
                report.dropped_erased.push(version);
            } else if live.insert_restored(name, key, scope.migration_until)? {
                report.added.push(version);
            } else {
                report.present.push(version);
            }
        }
    }
    Ok(report)
}

/// Restores the backup at `from` into the keyring at `keyring` (merging, under the writer lock;
/// created if missing). With `check_only`, verifies the backup and reports what a restore
/// would do, changing nothing.
pub fn restore(keyring: &Path, from: &Path, check_only: bool) -> Result<RestoreReport, KeyringError> {
    crate::config::check_private_file(from).map_err(KeyringError::File)?;
    let bytes = std::fs::read(from)
        .map_err(|e| KeyringError::File(format!("cannot read {}: {e}", from.display())))?;
    let (backup, made) = read_backup(&bytes, from)?;
    let unreadable = |e: KeyringError| {
        KeyringError::File(format!(
            "{e}; the keyring exists but can't be read, so it is not replaced: it may hold the only record of an erasure made after the backup. Move it aside (keep it), then restore again"
        ))
    };
    if check_only {
        let mut live = match std::fs::symlink_metadata(keyring) {
            Ok(_) => Keyring::load(keyring).map_err(unreadable)?,
            Err(_) => Keyring::default(),
        };
        return merge(&mut live, &backup, made);
    }
    let exists = std::fs::symlink_metadata(keyring).is_ok();
    if exists {
        // The same check `update` makes, with the advice for this case.
        Keyring::load(keyring).map_err(unreadable)?;
    }
    update(keyring, true, |live| merge(live, &backup, made))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_reads_back_and_any_edit_is_refused() {
        let mut ring = Keyring::default();
        ring.new_scope("s", 1).unwrap();
        let text = backup_text(&ring, 7);
        let (copy, made) = read_backup(text.as_bytes(), Path::new("b")).unwrap();
        assert_eq!((copy.to_text(), made), (ring.to_text(), 7));
        // Every single-byte change after the first line is found.
        let start = FIRST_LINE.len();
        for at in (start..text.len()).step_by(7) {
            let mut bytes = text.clone().into_bytes();
            bytes[at] ^= 0x01;
            assert!(read_backup(&bytes, Path::new("b")).is_err(), "a change at byte {at} went unseen");
        }
        assert!(read_backup(&text.as_bytes()[..text.len() - 1], Path::new("b")).is_err());
    }

    #[test]
    fn a_merge_drops_keys_erased_after_the_backup_and_keeps_newer_keys() {
        let mut live = Keyring::default();
        live.new_scope("kept", 1).unwrap();
        live.new_scope("gone", 1).unwrap();
        let backup = Keyring::parse(&live.to_text(), Path::new("b")).unwrap();
        live.erase("gone", 2).unwrap();
        live.rotate("kept", 3, 0).unwrap();
        let mut merged = Keyring::parse(&live.to_text(), Path::new("k")).unwrap();
        let report = merge(&mut merged, &backup, 1).unwrap();
        assert_eq!(report.dropped_erased, vec![("gone".to_owned(), 1)]);
        assert_eq!(report.present, vec![("kept".to_owned(), 1)]);
        assert!(merged.scope("gone").is_err());
        assert_eq!(merged.scope("kept").unwrap().keys.len(), 2, "the key made after the backup stays");
        // Into an empty keyring, the backup comes back whole.
        let mut empty = Keyring::default();
        merge(&mut empty, &backup, 1).unwrap();
        assert_eq!(empty.to_text(), backup.to_text());
    }
}
