//! The retention store (docs/RETENTION.md): personal values that a customer requires nymgate to
//! keep (say, teachers' names and emails for a teacher function), apart from the token path.
//!
//! Off by default; a tenant turns it on for named roles and attributes. Each record is keyed by
//! (tenant, account number) and holds the values as AES-256-GCM ciphertext under the tenant's
//! data key. The data key is stored wrapped (AES-256-GCM) under a key derived from the tenant's
//! pseudonym scope key in the keyring (HMAC-SHA256), with that key's version beside it. So
//! the database alone reveals nothing, and erasing the scope's keys (offboarding) makes every
//! record unreadable even in a backup.
//!
//! Embedded SQLite (one file, WAL, every write in a transaction: a crash leaves a record whole or
//! absent). Calls block: async callers use `spawn_blocking`.

use std::path::Path;
use std::sync::Mutex;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::pseudonym::keyring::ScopeKeys;

/// The keys that wrap one tenant's data key, one per scope key version, derived from the keyring
/// before a blocking call (so that the call owns them). Never printed.
pub struct WrapKeys {
    current: u32,
    by_version: Vec<(u32, [u8; 32])>,
}

impl std::fmt::Debug for WrapKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrapKeys").field("current", &self.current).finish_non_exhaustive()
    }
}

impl WrapKeys {
    /// HMAC-SHA256 of a domain tag and the tenant id under each of the scope's key versions.
    pub fn derive(keys: &ScopeKeys, tenant: &str) -> WrapKeys {
        use hmac::Mac;
        let by_version = keys
            .keys
            .iter()
            .map(|key| {
                let mut mac = key.mac();
                mac.update(b"nymgate retention data key wrap v1\0");
                mac.update(tenant.as_bytes());
                (key.version, mac.finalize().into_bytes().into())
            })
            .collect();
        WrapKeys { current: keys.current().version, by_version }
    }

    fn get(&self, version: u32) -> Result<&[u8; 32], RetentionError> {
        self.by_version
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, k)| k)
            .ok_or(RetentionError::KeyGone(version))
    }
}

/// Why the store failed. Messages carry no values.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("retention database: {0}")]
    Database(String),
    #[error("the tenant's data key cannot be unwrapped (its pseudonym key version {0} is gone)")]
    KeyGone(u32),
    #[error("a retained record does not decrypt (tampered, or another tenant's)")]
    Corrupt,
}

impl From<rusqlite::Error> for RetentionError {
    fn from(error: rusqlite::Error) -> Self {
        RetentionError::Database(error.to_string())
    }
}

/// What is kept of one person: attribute name → values, as the tenant's config names them.
pub type Values = std::collections::BTreeMap<String, Vec<String>>;

/// One record as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub tenant: String,
    pub account_number: String,
    pub values: Values,
    /// Unix seconds of the last login that wrote it.
    pub last_seen: u64,
    /// Restricted or objected to: kept, but not served to the platform.
    pub restricted: bool,
}

/// The store. One connection, behind a mutex: writes are one per retained login, and SQLite
/// serializes writers anyway.
pub struct RetentionStore {
    db: Mutex<Connection>,
}

impl std::fmt::Debug for RetentionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetentionStore").finish_non_exhaustive()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS data_keys (
    tenant TEXT PRIMARY KEY,
    key_version INTEGER NOT NULL,
    nonce BLOB NOT NULL,
    wrapped BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    tenant TEXT NOT NULL,
    account_number TEXT NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    last_seen INTEGER NOT NULL,
    restricted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, account_number)
);
CREATE INDEX IF NOT EXISTS records_last_seen ON records (last_seen);
";

impl RetentionStore {
    /// Opens (or creates, mode 0600) the SQLite file.
    pub fn open(path: &Path) -> Result<RetentionStore, RetentionError> {
        if !path.exists() {
            crate::certs::write(path, b"", 0o600).map_err(RetentionError::Database)?;
        }
        let db = Connection::open(path)?;
        // WAL: a reader never sees half a transaction, and a crash loses at most the
        // transaction in flight. FULL: a commit is on disk before it is reported.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        // Erased rows are overwritten, not left in free pages.
        db.pragma_update(None, "secure_delete", "ON")?;
        db.execute_batch(SCHEMA)?;
        Ok(RetentionStore { db: Mutex::new(db) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes (or replaces) `account_number`'s record at a login, with `last_seen = now`. A
    /// restriction stays as it was.
    pub fn remember(
        &self,
        tenant: &str,
        keys: &WrapKeys,
        account_number: &str,
        values: &Values,
        now: u64,
    ) -> Result<(), RetentionError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let data_key = data_key(&tx, tenant, keys)?;
        let plain = serde_json::to_vec(values).expect("strings serialize");
        let (nonce, ciphertext) = seal(&data_key, &record_aad(tenant, account_number), plain);
        tx.execute(
            "INSERT INTO records (tenant, account_number, nonce, ciphertext, last_seen) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (tenant, account_number) DO UPDATE SET nonce = ?3, ciphertext = ?4, last_seen = ?5",
            params![tenant, account_number, nonce, ciphertext, now as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The record of `account_number`, decrypted, or `None`.
    pub fn lookup(
        &self,
        tenant: &str,
        keys: &WrapKeys,
        account_number: &str,
    ) -> Result<Option<Record>, RetentionError> {
        let db = self.db();
        let row: Option<(Vec<u8>, Vec<u8>, i64, bool)> = db
            .query_row(
                "SELECT nonce, ciphertext, last_seen, restricted FROM records WHERE tenant = ?1 AND account_number = ?2",
                params![tenant, account_number],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((nonce, ciphertext, last_seen, restricted)) = row else { return Ok(None) };
        let (data_key, _) = existing_data_key(&db, tenant, keys)?.ok_or(RetentionError::Corrupt)?;
        let plain = open(&data_key, &record_aad(tenant, account_number), &nonce, ciphertext)?;
        let values: Values = serde_json::from_slice(&plain).map_err(|_| RetentionError::Corrupt)?;
        Ok(Some(Record {
            tenant: tenant.to_owned(),
            account_number: account_number.to_owned(),
            values,
            last_seen: last_seen.max(0) as u64,
            restricted,
        }))
    }

    /// Replaces an existing record's values (rectification, GDPR Art. 16); `false` when there
    /// is no record. Its last-seen time and restriction stay.
    pub fn rectify(
        &self,
        tenant: &str,
        keys: &WrapKeys,
        account_number: &str,
        values: &Values,
    ) -> Result<bool, RetentionError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let data_key = data_key(&tx, tenant, keys)?;
        let plain = serde_json::to_vec(values).expect("strings serialize");
        let (nonce, ciphertext) = seal(&data_key, &record_aad(tenant, account_number), plain);
        let changed = tx.execute(
            "UPDATE records SET nonce = ?3, ciphertext = ?4 WHERE tenant = ?1 AND account_number = ?2",
            params![tenant, account_number, nonce, ciphertext],
        )?;
        tx.commit()?;
        Ok(changed > 0)
    }

    /// Restricts (or lifts the restriction of) a record (GDPR Art. 18, 21): kept, but not served
    /// to the platform. `false` when there is no record.
    pub fn restrict(
        &self,
        tenant: &str,
        account_number: &str,
        restricted: bool,
    ) -> Result<bool, RetentionError> {
        let db = self.db();
        let changed = db.execute(
            "UPDATE records SET restricted = ?3 WHERE tenant = ?1 AND account_number = ?2",
            params![tenant, account_number, restricted],
        )?;
        Ok(changed > 0)
    }

    /// Erases one record now. Returns whether there was one; `true` only once it is committed.
    pub fn erase(&self, tenant: &str, account_number: &str) -> Result<bool, RetentionError> {
        let db = self.db();
        let removed = db.execute(
            "DELETE FROM records WHERE tenant = ?1 AND account_number = ?2",
            params![tenant, account_number],
        )?;
        Ok(removed > 0)
    }

    /// Deletes every record not seen since `before` (unix seconds). Returns how many.
    pub fn cull(&self, before: u64) -> Result<usize, RetentionError> {
        let db = self.db();
        Ok(db.execute("DELETE FROM records WHERE last_seen < ?1", params![before as i64])?)
    }

    /// Erases a tenant: its records and its wrapped data key, in one transaction. Returns the
    /// number of records removed.
    pub fn offboard(&self, tenant: &str) -> Result<usize, RetentionError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let removed = tx.execute("DELETE FROM records WHERE tenant = ?1", params![tenant])?;
        tx.execute("DELETE FROM data_keys WHERE tenant = ?1", params![tenant])?;
        tx.commit()?;
        Ok(removed)
    }

    /// The culling job's work at `now`: every tenant whose offboarding time (`offboard`) has
    /// come loses its records and data key; then every record not seen since `now - cull_after`
    /// goes. Returns (records culled, tenants offboarded with their records removed).
    pub fn cull_due(
        &self,
        now: u64,
        cull_after: u64,
        offboard: &[(String, u64)],
    ) -> Result<(usize, Vec<(String, usize)>), RetentionError> {
        let mut offboarded = Vec::new();
        for (tenant, at) in offboard {
            if *at <= now {
                offboarded.push((tenant.clone(), self.offboard(tenant)?));
            }
        }
        Ok((self.cull(now.saturating_sub(cull_after))?, offboarded))
    }

    /// How many records a tenant has (for metrics and reports; no values).
    pub fn count(&self, tenant: &str) -> Result<usize, RetentionError> {
        let db = self.db();
        let n: i64 =
            db.query_row("SELECT COUNT(*) FROM records WHERE tenant = ?1", params![tenant], |r| r.get(0))?;
        Ok(n.max(0) as usize)
    }
}

/// The AAD binding a record's ciphertext to its tenant and account number: a ciphertext moved
/// to another row does not decrypt.
fn record_aad(tenant: &str, account_number: &str) -> Vec<u8> {
    format!("nymgate retention record v1\0{tenant}\0{account_number}").into_bytes()
}

/// The tenant's data key, made (random) at first use, and stored wrapped under the scope's
/// current key version: one wrapped under an older version is wrapped again under the current
/// one, so that retiring old versions after a rotation (docs/PSEUDONYMS.md) loses nothing.
fn data_key(tx: &Connection, tenant: &str, keys: &WrapKeys) -> Result<[u8; 32], RetentionError> {
    let version = keys.current;
    let (key, stored_version) = match existing_data_key(tx, tenant, keys)? {
        Some((key, stored)) => (key, Some(stored)),
        None => (crate::secret::random_bytes::<32>(), None),
    };
    if stored_version != Some(version) {
        let (nonce, wrapped) = seal(keys.get(version)?, tenant.as_bytes(), key.to_vec());
        tx.execute(
            "INSERT INTO data_keys (tenant, key_version, nonce, wrapped) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant) DO UPDATE SET key_version = ?2, nonce = ?3, wrapped = ?4",
            params![tenant, version, nonce, wrapped],
        )?;
    }
    Ok(key)
}

impl RetentionStore {
    /// Wraps the tenant's data key under the scope's current key version, if it is not already
    /// (at start and after a reload, before anyone retires the old version).
    pub fn rewrap(&self, tenant: &str, keys: &WrapKeys) -> Result<(), RetentionError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        if existing_data_key(&tx, tenant, keys)?.is_some() {
            data_key(&tx, tenant, keys)?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// The stored data key and the scope key version it is wrapped under.
fn existing_data_key(
    db: &Connection,
    tenant: &str,
    keys: &WrapKeys,
) -> Result<Option<([u8; 32], u32)>, RetentionError> {
    let row: Option<(u32, Vec<u8>, Vec<u8>)> = db
        .query_row(
            "SELECT key_version, nonce, wrapped FROM data_keys WHERE tenant = ?1",
            params![tenant],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((version, nonce, wrapped)) = row else { return Ok(None) };
    let plain = open(keys.get(version)?, tenant.as_bytes(), &nonce, wrapped)?;
    let key: [u8; 32] = plain.try_into().map_err(|_| RetentionError::Corrupt)?;
    Ok(Some((key, version)))
}

/// AES-256-GCM with a random 96-bit nonce: (nonce, ciphertext and tag).
fn seal(key: &[u8; 32], aad: &[u8], mut plain: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key"));
    let nonce = crate::secret::random_bytes::<NONCE_LEN>();
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut plain)
        .expect("AES-GCM seals any length here");
    (nonce.to_vec(), plain)
}

fn open(key: &[u8; 32], aad: &[u8], nonce: &[u8], mut sealed: Vec<u8>) -> Result<Vec<u8>, RetentionError> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key"));
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| RetentionError::Corrupt)?;
    let plain = key.open_in_place(nonce, Aad::from(aad), &mut sealed).map_err(|_| RetentionError::Corrupt)?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pseudonym::keyring::ScopeKey;
    use crate::secret::Secret;

    /// skola-a's and skola-b's wrapping keys for a scope with these key versions.
    fn keys(versions: &[u32]) -> WrapKeys {
        let scope = ScopeKeys {
            keys: versions.iter().map(|&v| ScopeKey::new(v, 0, Secret::new(vec![v as u8; 32]))).collect(),
            migration_until: None,
        };
        WrapKeys::derive(&scope, "skola-a")
    }

    fn values() -> Values {
        [
            ("email".to_owned(), vec!["anna.larare@skola.example".to_owned()]),
            ("name".to_owned(), vec!["Anna Lärare".to_owned()]),
        ]
        .into()
    }

    #[test]
    fn records_round_trip_and_are_unreadable_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("retained.db");
        let store = RetentionStore::open(&path).unwrap();
        let keys = keys(&[1]);
        store.remember("skola-a", &keys, "v1-AAAA-BBBB", &values(), 100).unwrap();
        let record = store.lookup("skola-a", &keys, "v1-AAAA-BBBB").unwrap().unwrap();
        assert_eq!((record.values, record.last_seen, record.restricted), (values(), 100, false));
        assert_eq!(store.lookup("skola-a", &keys, "v1-CCCC").unwrap(), None);
        drop(store);
        // Neither the database nor its WAL holds a value in the clear.
        for name in ["retained.db", "retained.db-wal"] {
            let bytes = std::fs::read(dir.path().join(name)).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains("anna.larare") && !text.contains("Lärare"), "{name} holds a value");
        }
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_record_moved_to_another_row_or_tenant_does_not_decrypt() {
        let dir = tempfile::tempdir().unwrap();
        let store = RetentionStore::open(&dir.path().join("r.db")).unwrap();
        let keys = keys(&[1]);
        store.remember("skola-a", &keys, "v1-A", &values(), 1).unwrap();
        store.remember("skola-a", &keys, "v1-B", &Values::new(), 1).unwrap();
        {
            let db = store.db();
            db.execute_batch(
                "UPDATE records SET nonce = (SELECT nonce FROM records WHERE account_number = 'v1-A'),
                 ciphertext = (SELECT ciphertext FROM records WHERE account_number = 'v1-A') WHERE account_number = 'v1-B'",
            )
            .unwrap();
        }
        assert!(matches!(store.lookup("skola-a", &keys, "v1-B"), Err(RetentionError::Corrupt)));
    }

    #[test]
    fn erase_cull_and_offboard_remove_what_they_say() {
        let dir = tempfile::tempdir().unwrap();
        let store = RetentionStore::open(&dir.path().join("r.db")).unwrap();
        let keys = keys(&[1]);
        store.remember("skola-a", &keys, "v1-A", &values(), 100).unwrap();
        store.remember("skola-a", &keys, "v1-B", &values(), 200).unwrap();
        store.remember("skola-b", &keys, "v1-C", &values(), 300).unwrap();
        let changed: Values = [("email".to_owned(), vec!["ny@skola.example".to_owned()])].into();
        assert!(store.rectify("skola-a", &keys, "v1-A", &changed).unwrap());
        assert!(!store.rectify("skola-a", &keys, "v1-none", &changed).unwrap());
        assert!(store.restrict("skola-a", "v1-A", true).unwrap());
        let record = store.lookup("skola-a", &keys, "v1-A").unwrap().unwrap();
        assert_eq!((record.values, record.restricted, record.last_seen), (changed, true, 100));
        // A later login refreshes the values but keeps the restriction.
        store.remember("skola-a", &keys, "v1-A", &values(), 150).unwrap();
        assert!(store.lookup("skola-a", &keys, "v1-A").unwrap().unwrap().restricted);
        assert!(store.erase("skola-a", "v1-A").unwrap());
        assert!(!store.erase("skola-a", "v1-A").unwrap(), "erased once");
        assert_eq!(store.cull(250).unwrap(), 1, "v1-B, not seen since 200");
        assert_eq!(store.count("skola-b").unwrap(), 1);
        assert_eq!(store.offboard("skola-b").unwrap(), 1);
        assert_eq!(store.count("skola-b").unwrap(), 0);
        // A new record after offboarding gets a new data key.
        store.remember("skola-b", &keys, "v1-D", &values(), 400).unwrap();
        assert!(store.lookup("skola-b", &keys, "v1-D").unwrap().is_some());
    }

    #[test]
    fn erasing_the_scope_keys_makes_every_record_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let store = RetentionStore::open(&dir.path().join("r.db")).unwrap();
        store.remember("skola-a", &keys(&[1]), "v1-A", &values(), 1).unwrap();
        // After a rotation the data key still unwraps with the version it was wrapped under.
        assert!(store.lookup("skola-a", &keys(&[1, 2]), "v1-A").unwrap().is_some());
        // The scope's keys erased (offboarding): nothing decrypts any more.
        assert!(matches!(store.lookup("skola-a", &keys(&[3]), "v1-A"), Err(RetentionError::KeyGone(1))));
    }

    #[test]
    fn a_rotation_rewraps_the_data_key_so_retiring_the_old_version_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = RetentionStore::open(&dir.path().join("r.db")).unwrap();
        store.remember("skola-a", &keys(&[1]), "v1-A", &values(), 1).unwrap();
        store.rewrap("skola-a", &keys(&[1, 2])).unwrap();
        // Version 1 retired: the record still reads under version 2.
        assert_eq!(store.lookup("skola-a", &keys(&[2]), "v1-A").unwrap().unwrap().values, values());
    }
}
