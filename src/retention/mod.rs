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
//! Two backends behind one [`Db`] interface, every operation one transaction (a crash leaves a
//! record whole or absent): embedded SQLite by default (sqlite.rs: one file, WAL), PostgreSQL for
//! several replicas (postgres.rs). Calls block: async callers use `spawn_blocking`.

mod postgres;
mod sqlite;

use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use serde::{Deserialize, Serialize};

use crate::pseudonym::keyring::ScopeKeys;

/// The keys that wrap one tenant's data key, one per scope key version, derived from the keyring
/// before a blocking call (so that the call owns them). Never printed.
#[derive(Clone)]
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

impl From<::postgres::Error> for RetentionError {
    fn from(error: ::postgres::Error) -> Self {
        // The driver's messages name SQL states and columns, never values (they are parameters).
        RetentionError::Database(error.to_string())
    }
}

/// A stored record's row: (nonce, ciphertext, last seen, restricted).
type RecordRow = (Vec<u8>, Vec<u8>, i64, bool);

/// A stored data key's row: (scope key version, nonce, wrapped key).
type KeyRow = (u32, Vec<u8>, Vec<u8>);

/// What the store needs of a database, inside one transaction (sqlite.rs, postgres.rs).
trait Db {
    /// (key version, nonce, wrapped key) of the tenant's data key.
    fn data_key_row(&mut self, tenant: &str) -> Result<Option<KeyRow>, RetentionError>;
    fn put_data_key(
        &mut self,
        tenant: &str,
        version: u32,
        nonce: &[u8],
        wrapped: &[u8],
    ) -> Result<(), RetentionError>;
    /// Inserts or replaces a record's values and last-seen time (its restriction stays).
    fn upsert(
        &mut self,
        tenant: &str,
        account: &str,
        nonce: &[u8],
        sealed: &[u8],
        last_seen: i64,
    ) -> Result<(), RetentionError>;
    fn record_row(&mut self, tenant: &str, account: &str) -> Result<Option<RecordRow>, RetentionError>;
    /// Replaces an existing record's values; how many rows changed.
    fn update_values(
        &mut self,
        tenant: &str,
        account: &str,
        nonce: &[u8],
        sealed: &[u8],
    ) -> Result<u64, RetentionError>;
    fn set_restricted(
        &mut self,
        tenant: &str,
        account: &str,
        restricted: bool,
    ) -> Result<u64, RetentionError>;
    fn delete_record(&mut self, tenant: &str, account: &str) -> Result<u64, RetentionError>;
    fn delete_unseen_since(&mut self, before: i64) -> Result<u64, RetentionError>;
    /// Deletes the tenant's records and data key; how many records.
    fn delete_tenant(&mut self, tenant: &str) -> Result<u64, RetentionError>;
    fn count(&mut self, tenant: &str) -> Result<u64, RetentionError>;
}

/// An operation run in one transaction, on whichever thread the backend runs it.
type Operation<R> = Box<dyn FnOnce(&mut dyn Db) -> Result<R, RetentionError> + Send>;
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

/// The store.
pub struct RetentionStore {
    backend: Backend,
    /// Which database this is (`location` of its config), to know whether a reload keeps it.
    location: String,
}

enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

impl std::fmt::Debug for RetentionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetentionStore").finish_non_exhaustive()
    }
}

impl RetentionStore {
    /// The database `[retention]` names: its backend, file or URL (not its password or API).
    pub fn location(settings: &crate::config::RetentionConfig) -> String {
        format!("{:?} {:?} {:?}", settings.backend, settings.sqlite_file, settings.postgres_url)
    }

    /// Whether this store is the database `settings` names (a reload keeps it open then).
    pub fn serves(&self, settings: &crate::config::RetentionConfig) -> bool {
        self.location == Self::location(settings)
    }

    /// The store `[retention]` names.
    pub fn from_config(settings: &crate::config::RetentionConfig) -> Result<RetentionStore, String> {
        use crate::config::RetentionBackend;
        let mut store = match (settings.backend, &settings.sqlite_file, &settings.postgres_url) {
            (RetentionBackend::Sqlite, Some(file), _) => {
                RetentionStore::open(file).map_err(|e| format!("retention.sqlite_file: {e}"))
            }
            (RetentionBackend::Postgres, _, Some(url)) => {
                let password = settings
                    .postgres_password
                    .as_ref()
                    .map(|source| {
                        crate::secret::Secret::load(source)
                            .map_err(|e| format!("retention.postgres_password: {e}"))
                    })
                    .transpose()?;
                RetentionStore::postgres(url, password).map_err(|e| format!("retention.postgres_url: {e}"))
            }
            _ => Err("retention: the backend's sqlite_file or postgres_url is missing".into()),
        }?;
        store.location = Self::location(settings);
        Ok(store)
    }

    /// Opens (or creates, mode 0600) the SQLite file.
    pub fn open(path: &Path) -> Result<RetentionStore, RetentionError> {
        Ok(RetentionStore { backend: Backend::Sqlite(sqlite::Sqlite::open(path)?), location: String::new() })
    }

    /// PostgreSQL at `url` (`postgres://user@host:port/db`) with `password`; it connects at
    /// first use, on a thread of its own, and creates its tables if they are missing.
    pub fn postgres(
        url: &str,
        password: Option<crate::secret::Secret>,
    ) -> Result<RetentionStore, RetentionError> {
        Ok(RetentionStore {
            backend: Backend::Postgres(postgres::Postgres::new(url, password)?),
            location: String::new(),
        })
    }

    /// Runs `operation` in one transaction: committed when it returns `Ok`, rolled back
    /// otherwise.
    fn transact<R: Send + 'static>(
        &self,
        operation: impl FnOnce(&mut dyn Db) -> Result<R, RetentionError> + Send + 'static,
    ) -> Result<R, RetentionError> {
        match &self.backend {
            Backend::Sqlite(db) => db.transact(Box::new(operation)),
            Backend::Postgres(db) => db.transact(Box::new(operation)),
        }
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
        let (tenant, keys, account) = (tenant.to_owned(), keys.clone(), account_number.to_owned());
        let plain = serde_json::to_vec(values).expect("strings serialize");
        self.transact(move |db| {
            let data_key = data_key(db, &tenant, &keys)?;
            let (nonce, sealed) = seal(&data_key, &record_aad(&tenant, &account), plain);
            db.upsert(&tenant, &account, &nonce, &sealed, now as i64)
        })
    }

    /// The record of `account_number`, decrypted, or `None`.
    pub fn lookup(
        &self,
        tenant: &str,
        keys: &WrapKeys,
        account_number: &str,
    ) -> Result<Option<Record>, RetentionError> {
        let (tenant, keys, account) = (tenant.to_owned(), keys.clone(), account_number.to_owned());
        self.transact(move |db| {
            let Some((nonce, sealed, last_seen, restricted)) = db.record_row(&tenant, &account)? else {
                return Ok(None);
            };
            let (data_key, _) = existing_data_key(db, &tenant, &keys)?.ok_or(RetentionError::Corrupt)?;
            let plain = open(&data_key, &record_aad(&tenant, &account), &nonce, sealed)?;
            let values: Values = serde_json::from_slice(&plain).map_err(|_| RetentionError::Corrupt)?;
            Ok(Some(Record {
                tenant,
                account_number: account,
                values,
                last_seen: last_seen.max(0) as u64,
                restricted,
            }))
        })
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
        let (tenant, keys, account) = (tenant.to_owned(), keys.clone(), account_number.to_owned());
        let plain = serde_json::to_vec(values).expect("strings serialize");
        self.transact(move |db| {
            let data_key = data_key(db, &tenant, &keys)?;
            let (nonce, sealed) = seal(&data_key, &record_aad(&tenant, &account), plain);
            Ok(db.update_values(&tenant, &account, &nonce, &sealed)? > 0)
        })
    }

    /// Restricts (or lifts the restriction of) a record (GDPR Art. 18, 21): kept, but not served
    /// to the platform. `false` when there is no record.
    pub fn restrict(
        &self,
        tenant: &str,
        account_number: &str,
        restricted: bool,
    ) -> Result<bool, RetentionError> {
        let (tenant, account) = (tenant.to_owned(), account_number.to_owned());
        self.transact(move |db| Ok(db.set_restricted(&tenant, &account, restricted)? > 0))
    }

    /// Erases one record now. Returns whether there was one; `true` only once it is committed.
    pub fn erase(&self, tenant: &str, account_number: &str) -> Result<bool, RetentionError> {
        let (tenant, account) = (tenant.to_owned(), account_number.to_owned());
        self.transact(move |db| Ok(db.delete_record(&tenant, &account)? > 0))
    }

    /// Deletes every record not seen since `before` (unix seconds). Returns how many.
    pub fn cull(&self, before: u64) -> Result<usize, RetentionError> {
        self.transact(move |db| Ok(db.delete_unseen_since(before as i64)? as usize))
    }

    /// Erases a tenant: its records and its wrapped data key, in one transaction. Returns the
    /// number of records removed.
    pub fn offboard(&self, tenant: &str) -> Result<usize, RetentionError> {
        let tenant = tenant.to_owned();
        self.transact(move |db| Ok(db.delete_tenant(&tenant)? as usize))
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
        let tenant = tenant.to_owned();
        self.transact(move |db| Ok(db.count(&tenant)? as usize))
    }

    /// Wraps the tenant's data key under the scope's current key version, if it is not already
    /// (at start and after a reload, before anyone retires the old version).
    pub fn rewrap(&self, tenant: &str, keys: &WrapKeys) -> Result<(), RetentionError> {
        let (tenant, keys) = (tenant.to_owned(), keys.clone());
        self.transact(move |db| {
            if existing_data_key(db, &tenant, &keys)?.is_some() {
                data_key(db, &tenant, &keys)?;
            }
            Ok(())
        })
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
fn data_key(db: &mut dyn Db, tenant: &str, keys: &WrapKeys) -> Result<[u8; 32], RetentionError> {
    let version = keys.current;
    let (key, stored_version) = match existing_data_key(db, tenant, keys)? {
        Some((key, stored)) => (key, Some(stored)),
        None => (crate::secret::random_bytes::<32>(), None),
    };
    if stored_version != Some(version) {
        let (nonce, wrapped) = seal(keys.get(version)?, tenant.as_bytes(), key.to_vec());
        db.put_data_key(tenant, version, &nonce, &wrapped)?;
    }
    Ok(key)
}

/// The stored data key and the scope key version it is wrapped under.
fn existing_data_key(
    db: &mut dyn Db,
    tenant: &str,
    keys: &WrapKeys,
) -> Result<Option<([u8; 32], u32)>, RetentionError> {
    let Some((version, nonce, wrapped)) = db.data_key_row(tenant)? else { return Ok(None) };
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
            let db = rusqlite::Connection::open(dir.path().join("r.db")).unwrap();
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

    #[test]
    fn a_store_serves_the_database_its_config_names_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let settings = |file: &str| -> crate::config::RetentionConfig {
            toml::from_str(&format!("sqlite_file = {:?}", dir.path().join(file).display().to_string()))
                .unwrap()
        };
        let store = RetentionStore::from_config(&settings("a.db")).unwrap();
        assert!(store.serves(&settings("a.db")), "a reload with the same file keeps the store");
        assert!(!store.serves(&settings("b.db")), "a reload naming another file opens that one");
    }
}
