//! The retention store (docs/RETENTION.md): personal values that a customer requires nymgate to
//! keep (say, teachers' names and emails for a teacher function), apart from the token path.
//!
//! Off by default; a tenant turns it on for named roles and attributes. Each record is keyed by
//! (tenant, account number) and holds the values as AES-256-GCM ciphertext under the tenant's
//! data key, padded to a size bucket and bound to its tenant, account number, restriction,
//! last-seen time and version (seal.rs). The version is also kept in `record_heads`, so a row
//! restored from an older copy, or re-inserted after its erasure, is refused as tampered. The data
//! key is stored wrapped (AES-256-GCM) under a key derived from the tenant's pseudonym scope key
//! in the keyring (HMAC-SHA256), with that key's version beside it. So the database alone reveals
//! nothing, and erasing the scope's keys (offboarding) makes every record unreadable even in a
//! backup.
//!
//! Two backends behind one [`Db`] interface, every operation one transaction (a crash leaves a
//! record whole or absent): embedded SQLite by default (sqlite.rs: one file, WAL), PostgreSQL for
//! several replicas (postgres.rs). After a removal (erasure, cull, offboarding, rectification)
//! each backend makes its files forget the removed bytes at once: a truncating WAL checkpoint
//! over secure-deleted pages in SQLite, `VACUUM FULL` in PostgreSQL. Calls block: async callers
//! use `spawn_blocking`.

mod data_key;
#[doc(hidden)]
pub mod fuzz;
mod offboarding;
mod postgres;
pub mod replicas;
mod seal;
mod sqlite;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::pseudonym::keyring::ScopeKeys;
pub use offboarding::{offboard_tenant, OffboardReport};
use seal::RecordBinding;

/// The keys that wrap one tenant's data key, one per scope key version, derived from the keyring
/// before a blocking call (so that the call owns them). Never printed.
#[derive(Clone)]
pub struct WrapKeys {
    /// The pseudonym scope the keys are of: which replicas' holdings matter (replicas.rs).
    scope: String,
    /// The key version new data keys are wrapped under.
    current: u32,
    /// Every version's wrap key, to open data keys wrapped under older ones.
    by_version: Vec<(u32, [u8; 32])>,
}

impl std::fmt::Debug for WrapKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrapKeys").field("current", &self.current).finish_non_exhaustive()
    }
}

impl WrapKeys {
    /// HMAC-SHA256 of a domain tag and the tenant id under each of the `scope`'s key versions.
    pub fn derive(scope: &str, keys: &ScopeKeys, tenant: &str) -> WrapKeys {
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
        WrapKeys { scope: scope.to_owned(), current: keys.current().version, by_version }
    }

    /// The wrap keys of a configured tenant, from its pseudonym scope in `pseudonymizer`.
    pub fn of_tenant(pseudonymizer: &crate::pseudonym::Pseudonymizer, tenant: &str) -> Option<WrapKeys> {
        let scope = &pseudonymizer.tenant(tenant).ok()?.scope;
        Some(WrapKeys::derive(scope, pseudonymizer.scope_keys(tenant)?, tenant))
    }

    fn get(&self, version: u32) -> Result<&[u8; 32], RetentionError> {
        self.by_version
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, k)| k)
            .ok_or(RetentionError::KeyGone(version))
    }
}

/// Why the store failed. Messages carry no values (a driver's message names SQL states and
/// columns; values are always parameters).
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("retention database: {0}")]
    Database(String),
    #[error("the tenant's data key cannot be unwrapped (its pseudonym key version {0} is gone)")]
    KeyGone(u32),
    #[error("the tenant's data key does not unwrap (tampered, or another tenant's)")]
    Corrupt,
    /// A record's row was changed, moved, rolled back or re-inserted in the database: nothing of
    /// it is served, and [`RetentionStore::tampered_total`] counts it.
    #[error(
        "a retained record was changed in the database (moved, rolled back, re-inserted, or its restriction or time edited): refused as tampered"
    )]
    Tampered,
    /// The tenant is offboarded (recorded in the database every replica shares): nothing of it
    /// is written from then on.
    #[error("the tenant is offboarded: nothing of it is written or served")]
    Offboarded,
    /// The removal is committed, but the database's files may still hold the removed bytes; the
    /// next removal (or the next cull) tries again.
    #[error("done, but the database has not yet forgotten the removed bytes ({0}); run it again")]
    NotForgotten(String),
}

impl From<rusqlite::Error> for RetentionError {
    fn from(error: rusqlite::Error) -> Self {
        RetentionError::Database(error.to_string())
    }
}

impl From<::postgres::Error> for RetentionError {
    fn from(error: ::postgres::Error) -> Self {
        RetentionError::Database(error.to_string())
    }
}

/// A stored record's row, as read: nothing in it is trusted until it opens under its binding.
#[derive(Debug)]
struct RecordRow {
    /// Empty in format 2; the nonce in format 1 (seal.rs).
    nonce: Vec<u8>,
    sealed: Vec<u8>,
    last_seen: i64,
    restricted: bool,
}

/// A stored data key's row: (scope key version, nonce column, wrapped key).
type KeyRow = (u32, Vec<u8>, Vec<u8>);

/// What the store needs of a database, inside one transaction (sqlite.rs, postgres.rs).
trait Db {
    fn data_key_row(&mut self, tenant: &str) -> Result<Option<KeyRow>, RetentionError>;
    /// Stores the tenant's first data key unless one is there already (insert-if-absent: two
    /// replicas creating it at once keep the first; the caller reads back which won).
    fn insert_data_key(&mut self, tenant: &str, version: u32, wrapped: &[u8]) -> Result<(), RetentionError>;
    /// Replaces the data key's wrapping only while it is still `expected` (compare-and-swap);
    /// how many rows changed.
    fn replace_data_key(
        &mut self,
        tenant: &str,
        expected: &[u8],
        version: u32,
        wrapped: &[u8],
    ) -> Result<u64, RetentionError>;
    fn record_row(&mut self, tenant: &str, account: &str) -> Result<Option<RecordRow>, RetentionError>;
    /// The record's current version (`record_heads`).
    fn head(&mut self, tenant: &str, account: &str) -> Result<Option<i64>, RetentionError>;
    /// Inserts or replaces a record (format 2) and its head, together.
    fn put_record(
        &mut self,
        tenant: &str,
        account: &str,
        sealed: &[u8],
        last_seen: i64,
        restricted: bool,
        version: i64,
    ) -> Result<(), RetentionError>;
    /// The tenant's records still in format 1 (to migrate).
    fn legacy_accounts(&mut self, tenant: &str) -> Result<Vec<String>, RetentionError>;
    /// Deletes a record and its head; how many records.
    fn delete_record(&mut self, tenant: &str, account: &str) -> Result<u64, RetentionError>;
    fn delete_unseen_since(&mut self, before: i64) -> Result<u64, RetentionError>;
    /// Deletes the tenant's records, heads and data key; how many records.
    fn delete_tenant(&mut self, tenant: &str) -> Result<u64, RetentionError>;
    fn count(&mut self, tenant: &str) -> Result<u64, RetentionError>;
    /// Whether the tenant is offboarded. In PostgreSQL it first takes the tenant's offboarding
    /// lock shared, to the end of the transaction, so that an offboarding waits for a write in
    /// flight and every write after it sees it (READ COMMITTED reads what committed before each
    /// statement).
    fn offboarded(&mut self, tenant: &str) -> Result<bool, RetentionError>;
    /// Records the tenant as offboarded at `at` (taking the lock exclusively); whether it is new.
    fn mark_offboarded(&mut self, tenant: &str, at: i64) -> Result<bool, RetentionError>;
    /// Writes this replica's announcement (replicas.rs), and drops rows older than a day.
    fn announce(&mut self, replica: &str, seen: i64, announcement: &str) -> Result<(), RetentionError>;
    fn withdraw(&mut self, replica: &str) -> Result<(), RetentionError>;
    /// Replicas heard of since `since`, newest first, at most `limit` rows.
    fn replicas_since(&mut self, since: i64, limit: i64) -> Result<Vec<replicas::Replica>, RetentionError>;
}

/// An operation run in one transaction, on whichever thread the backend runs it.
type Operation<R> = Box<dyn FnOnce(&mut dyn Db) -> Result<R, RetentionError> + Send>;
/// What is kept of one person: attribute name → values, as the tenant's config names them.
pub type Values = std::collections::BTreeMap<String, Vec<String>>;

/// One record as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The configured tenant the record belongs to.
    pub tenant: String,
    /// The number it is kept under: the only key the platform and a DPO know.
    pub account_number: String,
    /// The values the tenant's `retention.attributes` keep, by name.
    pub values: Values,
    /// Unix seconds of the last login that wrote it.
    pub last_seen: u64,
    /// Restricted or objected to: kept, but not served to the platform.
    pub restricted: bool,
}

/// The store.
pub struct RetentionStore {
    /// SQLite or PostgreSQL, opened.
    backend: Backend,
    /// Which database this is (`location` of its config), to know whether a reload keeps it.
    location: String,
    /// Records refused as tampered since start (for metrics: a non-zero value means someone
    /// with database access changed a row, or a backup was restored over live rows).
    tampered: AtomicU64,
    /// A removal whose forgetting (checkpoint, vacuum) failed: the next cull tries again even when
    /// it removes nothing itself.
    unforgotten: AtomicBool,
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
    pub fn from_config(
        settings: &crate::config::RetentionConfig,
    ) -> Result<RetentionStore, crate::config::ConfigProblem> {
        use crate::config::RetentionBackend;
        let mut store = match (settings.backend, &settings.sqlite_file, &settings.postgres_url) {
            (RetentionBackend::Sqlite, Some(file), _) => RetentionStore::open(file)
                .map_err(|e| crate::config::ConfigProblem::new("retention.sqlite_file", e)),
            (RetentionBackend::Postgres, _, Some(url)) => {
                let password = settings
                    .postgres_password
                    .as_ref()
                    .map(|source| {
                        crate::secret::Secret::load(source)
                            .map_err(|e| crate::config::ConfigProblem::new("retention.postgres_password", e))
                    })
                    .transpose()?;
                RetentionStore::postgres(url, password)
                    .map_err(|e| crate::config::ConfigProblem::new("retention.postgres_url", e))
            }
            _ => Err(crate::config::ConfigProblem::new(
                "retention.backend",
                "the backend's sqlite_file or postgres_url is missing",
            )),
        }?;
        store.location = Self::location(settings);
        Ok(store)
    }

    fn with(backend: Backend) -> RetentionStore {
        RetentionStore {
            backend,
            location: String::new(),
            tampered: AtomicU64::new(0),
            unforgotten: AtomicBool::new(false),
        }
    }

    /// Opens (or creates, mode 0600) the SQLite file.
    pub fn open(path: &Path) -> Result<RetentionStore, RetentionError> {
        Ok(Self::with(Backend::Sqlite(sqlite::Sqlite::open(path)?)))
    }

    /// PostgreSQL at `url` (`postgres://user@host:port/db`) with `password`; it connects at
    /// first use, on a thread of its own, and creates its tables if they are missing.
    pub fn postgres(
        url: &str,
        password: Option<crate::secret::Secret>,
    ) -> Result<RetentionStore, RetentionError> {
        Ok(Self::with(Backend::Postgres(postgres::Postgres::new(url, password)?)))
    }

    /// How many records were refused as tampered since this store was opened.
    pub fn tampered_total(&self) -> u64 {
        self.tampered.load(Ordering::Relaxed)
    }

    /// Runs `operation` in one transaction: committed when it returns `Ok`, rolled back
    /// otherwise. With `forget`, the database then drops the bytes the operation removed.
    fn transact<R: Send + 'static>(
        &self,
        forget: bool,
        operation: impl FnOnce(&mut dyn Db) -> Result<R, RetentionError> + Send + 'static,
    ) -> Result<R, RetentionError> {
        let result = match &self.backend {
            Backend::Sqlite(db) => db.transact(Box::new(operation)),
            Backend::Postgres(db) => db.transact(Box::new(operation)),
        };
        if matches!(result, Err(RetentionError::Tampered)) {
            self.tampered.fetch_add(1, Ordering::Relaxed);
        }
        let result = result?;
        if forget {
            self.forget()?;
        }
        Ok(result)
    }

    /// Makes the database's files drop removed rows now (sqlite.rs, postgres.rs: `forget`).
    fn forget(&self) -> Result<(), RetentionError> {
        let forgotten = match &self.backend {
            Backend::Sqlite(db) => db.forget(),
            Backend::Postgres(db) => db.forget(),
        };
        self.unforgotten.store(forgotten.is_err(), Ordering::Relaxed);
        forgotten.map_err(|e| RetentionError::NotForgotten(e.to_string()))
    }

    /// Writes (or replaces) `account_number`'s record at a login, with `last_seen = now`; the
    /// replicas live at `now` decide the data key's wrapping (data_key.rs). A restriction stays
    /// as it was; a stored record that fails its integrity check is refused (its restriction
    /// can't be trusted, so the login must not launder it into a new record).
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
        self.transact(false, move |db| {
            let key = data_key::writable(db, &tenant, &keys, now)?;
            let restricted = verified(db, &tenant, &account, &key, false)?.is_some_and(|r| r.restricted);
            seal_and_put(db, &key, &tenant, &account, &plain, restricted, now as i64)
        })
    }

    /// The record of `account_number`, decrypted, or `None`. A row that fails its integrity
    /// check is `Tampered`, never served.
    pub fn lookup(
        &self,
        tenant: &str,
        keys: &WrapKeys,
        account_number: &str,
    ) -> Result<Option<Record>, RetentionError> {
        let (tenant, keys, account) = (tenant.to_owned(), keys.clone(), account_number.to_owned());
        self.transact(false, move |db| {
            let (key, format) = match data_key::stored(db, &tenant, &keys)? {
                Some(found) => found,
                // No data key: a record (or a head) is then one nymgate never wrote.
                None if db.record_row(&tenant, &account)?.is_none()
                    && db.head(&tenant, &account)?.is_none() =>
                {
                    return Ok(None);
                }
                None => return Err(RetentionError::Tampered),
            };
            let found = verified(db, &tenant, &account, &key, format == seal::Format::V1)?;
            Ok(found.map(|v| Record::from_verified(tenant, account, v)))
        })
    }

    /// Replaces an existing record's values (rectification, GDPR Art. 16); `false` when there
    /// is no record. Its last-seen time and restriction stay; the old values are forgotten.
    pub fn rectify(
        &self,
        tenant: &str,
        keys: &WrapKeys,
        account_number: &str,
        values: &Values,
    ) -> Result<bool, RetentionError> {
        let (tenant, keys, account) = (tenant.to_owned(), keys.clone(), account_number.to_owned());
        let plain = serde_json::to_vec(values).expect("strings serialize");
        // Which replicas are live is judged at this one reading of the clock (data_key.rs).
        let now = crate::clock::unix_now();
        self.transact(true, move |db| {
            let key = data_key::writable(db, &tenant, &keys, now)?;
            let Some(old) = verified(db, &tenant, &account, &key, false)? else { return Ok(false) };
            seal_and_put(db, &key, &tenant, &account, &plain, old.restricted, old.last_seen as i64)?;
            Ok(true)
        })
    }

    /// Restricts (or lifts the restriction of) a record (GDPR Art. 18, 21): kept, but not served
    /// to the platform. `false` when there is no record. The record is sealed again, because its
    /// restriction is bound into its ciphertext.
    pub fn restrict(
        &self,
        tenant: &str,
        keys: &WrapKeys,
        account_number: &str,
        restricted: bool,
    ) -> Result<bool, RetentionError> {
        let (tenant, keys, account) = (tenant.to_owned(), keys.clone(), account_number.to_owned());
        // Which replicas are live is judged at this one reading of the clock (data_key.rs).
        let now = crate::clock::unix_now();
        self.transact(false, move |db| {
            let key = data_key::writable(db, &tenant, &keys, now)?;
            let Some(old) = verified(db, &tenant, &account, &key, false)? else { return Ok(false) };
            let plain = serde_json::to_vec(&old.values).expect("strings serialize");
            seal_and_put(db, &key, &tenant, &account, &plain, restricted, old.last_seen as i64)?;
            Ok(true)
        })
    }

    /// Erases one record now, and makes the database forget it. Returns whether there was one;
    /// `true` only once it is committed. A failed forgetting is `NotForgotten`: the record is
    /// gone from the tables, and the next erasure or cull tries again.
    pub fn erase(&self, tenant: &str, account_number: &str) -> Result<bool, RetentionError> {
        let (tenant, account) = (tenant.to_owned(), account_number.to_owned());
        self.transact(true, move |db| Ok(db.delete_record(&tenant, &account)? > 0))
    }

    /// Deletes every record not seen since `before` (unix seconds). Returns how many.
    pub fn cull(&self, before: u64) -> Result<usize, RetentionError> {
        let culled = self.transact(false, move |db| Ok(db.delete_unseen_since(before as i64)? as usize))?;
        if culled > 0 || self.unforgotten.load(Ordering::Relaxed) {
            self.forget()?;
        }
        Ok(culled)
    }

    /// Offboards a tenant at `now`: records it as offboarded, so that no replica writes or serves
    /// anything of it from then on, and erases its records and its wrapped data key, in one
    /// transaction; then makes the database forget them. Returns the number of records removed.
    /// Running it again removes nothing and writes nothing.
    pub fn offboard(&self, tenant: &str, now: u64) -> Result<usize, RetentionError> {
        let tenant = tenant.to_owned();
        let (removed, newly) = self.transact(false, move |db| {
            let newly = db.mark_offboarded(&tenant, now as i64)?;
            Ok((db.delete_tenant(&tenant)? as usize, newly))
        })?;
        if newly || removed > 0 || self.unforgotten.load(Ordering::Relaxed) {
            self.forget()?;
        }
        Ok(removed)
    }

    /// Whether the tenant is offboarded in the database (by any replica or shell command).
    pub fn is_offboarded(&self, tenant: &str) -> Result<bool, RetentionError> {
        let tenant = tenant.to_owned();
        self.transact(false, move |db| db.offboarded(&tenant))
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
                offboarded.push((tenant.clone(), self.offboard(tenant, now)?));
            }
        }
        Ok((self.cull(now.saturating_sub(cull_after))?, offboarded))
    }

    /// How many records a tenant has (for metrics and reports; no values).
    pub fn count(&self, tenant: &str) -> Result<usize, RetentionError> {
        let tenant = tenant.to_owned();
        self.transact(false, move |db| Ok(db.count(&tenant)? as usize))
    }

    /// Wraps the tenant's data key under the newest key version every live replica of its scope
    /// holds (replicas.rs), if it is not already (after this replica announced a reload, and
    /// before `keys retire`), and moves the tenant's records from format 1 to format 2 if they
    /// are not yet. Returns the version it is wrapped under, `None` without a data key.
    pub fn rewrap(&self, tenant: &str, keys: &WrapKeys) -> Result<Option<u32>, RetentionError> {
        let (tenant, keys) = (tenant.to_owned(), keys.clone());
        // Which replicas are live is judged at this one reading of the clock (data_key.rs).
        let now = crate::clock::unix_now();
        self.transact(false, move |db| {
            if db.data_key_row(&tenant)?.is_none() {
                return Ok(None);
            }
            data_key::writable(db, &tenant, &keys, now)?;
            Ok(db.data_key_row(&tenant)?.map(|(version, _, _)| version))
        })
    }
}

/// A record whose row opened under its binding: what may be served or carried over.
struct Verified {
    values: Values,
    last_seen: u64,
    restricted: bool,
}

/// Reads a record and checks it whole: its head (the version it must carry) and its ciphertext
/// under the binding of every column nymgate relies on. Format 1 rows are read only while
/// `legacy_allowed` (the tenant's data key is still in format 1, seal.rs). `None` when neither
/// row nor head exists.
fn verified(
    db: &mut dyn Db,
    tenant: &str,
    account: &str,
    key: &[u8; 32],
    legacy_allowed: bool,
) -> Result<Option<Verified>, RetentionError> {
    let (row, head) = (db.record_row(tenant, account)?, db.head(tenant, account)?);
    let row = match (row, head) {
        (None, None) => return Ok(None),
        // A head without its row: the row was deleted outside nymgate.
        (None, Some(_)) => return Err(RetentionError::Tampered),
        (Some(row), _) => row,
    };
    let legacy = seal::format_of(&row.nonce, &row.sealed) == Some(seal::Format::V1);
    let version = match head {
        Some(version) if !legacy => version,
        // Format 1 rows had no head; a format 2 row without one was re-inserted after its
        // erasure (or its head was deleted).
        None if legacy => 0,
        _ => return Err(RetentionError::Tampered),
    };
    let binding =
        RecordBinding { tenant, account, restricted: row.restricted, last_seen: row.last_seen, version };
    let plain = seal::open_record(key, &binding, &row.nonce, row.sealed, legacy_allowed)?;
    let values = serde_json::from_slice(&plain).map_err(|_| RetentionError::Tampered)?;
    Ok(Some(Verified { values, last_seen: row.last_seen.max(0) as u64, restricted: row.restricted }))
}

/// Seals `plain` under a fresh version and stores the row and its head.
fn seal_and_put(
    db: &mut dyn Db,
    key: &[u8; 32],
    tenant: &str,
    account: &str,
    plain: &[u8],
    restricted: bool,
    last_seen: i64,
) -> Result<(), RetentionError> {
    let version = fresh_version();
    let binding = RecordBinding { tenant, account, restricted, last_seen, version };
    db.put_record(tenant, account, &seal::seal_record(key, &binding, plain), last_seen, restricted, version)
}

/// A record version: 63 random bits, new at every write. Detecting a rollback needs only that
/// an older copy's version differs from the head's, which random versions give without a
/// shared counter (one more row every replica's writes would queue on).
fn fresh_version() -> i64 {
    (u64::from_be_bytes(crate::secret::random_bytes::<8>()) >> 1) as i64
}

impl Record {
    fn from_verified(tenant: String, account_number: String, verified: Verified) -> Record {
        Record {
            tenant,
            account_number,
            values: verified.values,
            last_seen: verified.last_seen,
            restricted: verified.restricted,
        }
    }
}
