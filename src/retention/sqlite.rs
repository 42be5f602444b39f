//! The retention store in one SQLite file: one connection behind a mutex (writes are one per
//! retained login, and SQLite serializes writers anyway); WAL, and every commit synced.
//!
//! Other processes share the file (`nymgate retention …` beside a running server): every
//! transaction takes the write lock when it begins (`BEGIN IMMEDIATE`) and waits up to
//! [`BUSY_TIMEOUT`] for it, trying every [`RETRY_EVERY`]. A deferred transaction that reads and then writes could not wait: its
//! upgrade fails at once with "database is locked" when another process wrote meanwhile
//! (SQLite, "Transaction", §2.1), which failed logins during a shell command.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{replicas::Replica, Db, KeyRow, Operation, RecordRow, RetentionError};

/// How long a transaction waits for another process's write lock. Every transaction here is a
/// few statements (milliseconds), so this is never reached unless a process hangs holding it.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `forget`'s checkpoint waits for other connections' readers to move past the removal.
/// Shorter than [`BUSY_TIMEOUT`]: it holds this process's connection, and a checkpoint that
/// can't finish now is retried at the next removal or cull.
const FORGET_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a waiting connection tries the lock again. SQLite's own busy handler backs off to
/// 100 ms between tries, so a shell command beside a busy server found the lock free only by
/// luck and failed with "database is locked" after its timeout; trying every millisecond finds
/// the gaps between logins' writes.
const RETRY_EVERY: Duration = Duration::from_millis(1);

/// SQLite's busy handler for transactions: `true` to try again (after a pause), `false` to give
/// up with SQLITE_BUSY. `tries` counts the calls so far for this wait.
fn retry_transaction(tries: i32) -> bool {
    retry_within(tries, BUSY_TIMEOUT)
}

fn retry_forget(tries: i32) -> bool {
    retry_within(tries, FORGET_TIMEOUT)
}

fn retry_within(tries: i32, limit: Duration) -> bool {
    if RETRY_EVERY * tries.max(0) as u32 >= limit {
        return false;
    }
    std::thread::sleep(RETRY_EVERY);
    true
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
CREATE TABLE IF NOT EXISTS record_heads (
    tenant TEXT NOT NULL,
    account_number TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (tenant, account_number)
);
CREATE TABLE IF NOT EXISTS offboarded_tenants (
    tenant TEXT PRIMARY KEY,
    offboarded_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS replicas (
    replica TEXT PRIMARY KEY,
    seen INTEGER NOT NULL,
    holdings TEXT NOT NULL
);
";

pub(super) struct Sqlite {
    db: Mutex<Connection>,
}

impl Sqlite {
    /// Opens (or creates, mode 0600) the file.
    pub(super) fn open(path: &Path) -> Result<Sqlite, RetentionError> {
        if !path.exists() {
            crate::certs::write(path, b"", 0o600).map_err(RetentionError::Database)?;
        }
        let db = Connection::open(path)?;
        db.busy_handler(Some(retry_transaction))?;
        // WAL: a reader never sees half a transaction, and a crash loses at most the
        // transaction in flight. FULL: a commit is on disk before it is reported.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        // Removed rows are overwritten with zeros in their pages and in free pages, not left
        // there; `forget` then moves those pages from the WAL into the file and empties the WAL.
        db.pragma_update(None, "secure_delete", "ON")?;
        // Whenever the WAL restarts, it is cut to nothing: old frames (which hold the pages as
        // they were before a removal) do not linger past the point new frames reached.
        db.pragma_update(None, "journal_size_limit", 0)?;
        db.execute_batch(SCHEMA)?;
        Ok(Sqlite { db: Mutex::new(db) })
    }

    pub(super) fn transact<R>(&self, operation: Operation<R>) -> Result<R, RetentionError> {
        let mut db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let result = operation(&mut Tx(&tx))?;
        tx.commit()?;
        Ok(result)
    }

    /// Copies every page in the WAL into the file and truncates the WAL to zero bytes, so that
    /// no frame holding a removed row stays (SQLite, "PRAGMA wal_checkpoint", TRUNCATE). It waits
    /// (busy timeout) for other connections' readers; if one still holds an old snapshot, the
    /// frames stay and the caller hears so.
    pub(super) fn forget(&self) -> Result<(), RetentionError> {
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        db.busy_handler(Some(retry_forget))?;
        let checkpoint =
            db.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)));
        db.busy_handler(Some(retry_transaction))?;
        let (busy, log, moved): (i64, i64, i64) = checkpoint?;
        if busy != 0 || log > 0 || moved > 0 {
            return Err(RetentionError::Database(format!(
                "the WAL checkpoint was blocked by another connection ({moved} of {log} frames moved)"
            )));
        }
        Ok(())
    }
}

struct Tx<'a>(&'a Connection);

impl Db for Tx<'_> {
    fn data_key_row(&mut self, tenant: &str) -> Result<Option<KeyRow>, RetentionError> {
        Ok(self
            .0
            .query_row(
                "SELECT key_version, nonce, wrapped FROM data_keys WHERE tenant = ?1",
                params![tenant],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?)
    }

    fn insert_data_key(&mut self, tenant: &str, version: u32, wrapped: &[u8]) -> Result<(), RetentionError> {
        self.0.execute(
            "INSERT INTO data_keys (tenant, key_version, nonce, wrapped) VALUES (?1, ?2, X'', ?3)
             ON CONFLICT (tenant) DO NOTHING",
            params![tenant, version, wrapped],
        )?;
        Ok(())
    }

    fn replace_data_key(
        &mut self,
        tenant: &str,
        expected: &[u8],
        version: u32,
        wrapped: &[u8],
    ) -> Result<u64, RetentionError> {
        Ok(self.0.execute(
            "UPDATE data_keys SET key_version = ?3, nonce = X'', wrapped = ?4 WHERE tenant = ?1 AND wrapped = ?2",
            params![tenant, expected, version, wrapped],
        )? as u64)
    }

    fn record_row(&mut self, tenant: &str, account: &str) -> Result<Option<RecordRow>, RetentionError> {
        Ok(self
            .0
            .query_row(
                "SELECT nonce, ciphertext, last_seen, restricted FROM records WHERE tenant = ?1 AND account_number = ?2",
                params![tenant, account],
                |r| Ok(RecordRow { nonce: r.get(0)?, sealed: r.get(1)?, last_seen: r.get(2)?, restricted: r.get(3)? }),
            )
            .optional()?)
    }

    fn head(&mut self, tenant: &str, account: &str) -> Result<Option<i64>, RetentionError> {
        Ok(self
            .0
            .query_row(
                "SELECT version FROM record_heads WHERE tenant = ?1 AND account_number = ?2",
                params![tenant, account],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn put_record(
        &mut self,
        tenant: &str,
        account: &str,
        sealed: &[u8],
        last_seen: i64,
        restricted: bool,
        version: i64,
    ) -> Result<(), RetentionError> {
        self.0.execute(
            "INSERT INTO records (tenant, account_number, nonce, ciphertext, last_seen, restricted) VALUES (?1, ?2, X'', ?3, ?4, ?5)
             ON CONFLICT (tenant, account_number) DO UPDATE SET nonce = X'', ciphertext = ?3, last_seen = ?4, restricted = ?5",
            params![tenant, account, sealed, last_seen, restricted],
        )?;
        self.0.execute(
            "INSERT INTO record_heads (tenant, account_number, version) VALUES (?1, ?2, ?3)
             ON CONFLICT (tenant, account_number) DO UPDATE SET version = ?3",
            params![tenant, account, version],
        )?;
        Ok(())
    }

    fn legacy_accounts(&mut self, tenant: &str) -> Result<Vec<String>, RetentionError> {
        let mut query =
            self.0.prepare("SELECT account_number FROM records WHERE tenant = ?1 AND length(nonce) = 12")?;
        let accounts = query.query_map(params![tenant], |r| r.get(0))?;
        Ok(accounts.collect::<Result<_, _>>()?)
    }

    fn delete_record(&mut self, tenant: &str, account: &str) -> Result<u64, RetentionError> {
        self.0.execute(
            "DELETE FROM record_heads WHERE tenant = ?1 AND account_number = ?2",
            params![tenant, account],
        )?;
        Ok(self.0.execute(
            "DELETE FROM records WHERE tenant = ?1 AND account_number = ?2",
            params![tenant, account],
        )? as u64)
    }

    fn delete_unseen_since(&mut self, before: i64) -> Result<u64, RetentionError> {
        self.0.execute(
            "DELETE FROM record_heads WHERE (tenant, account_number) IN
             (SELECT tenant, account_number FROM records WHERE last_seen < ?1)",
            params![before],
        )?;
        Ok(self.0.execute("DELETE FROM records WHERE last_seen < ?1", params![before])? as u64)
    }

    fn delete_tenant(&mut self, tenant: &str) -> Result<u64, RetentionError> {
        let removed = self.0.execute("DELETE FROM records WHERE tenant = ?1", params![tenant])?;
        self.0.execute("DELETE FROM record_heads WHERE tenant = ?1", params![tenant])?;
        self.0.execute("DELETE FROM data_keys WHERE tenant = ?1", params![tenant])?;
        Ok(removed as u64)
    }

    fn count(&mut self, tenant: &str) -> Result<u64, RetentionError> {
        let n: i64 =
            self.0
                .query_row("SELECT COUNT(*) FROM records WHERE tenant = ?1", params![tenant], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    /// Every transaction holds the file's write lock from its start (`BEGIN IMMEDIATE`): an
    /// offboarding and a write can't interleave.
    fn offboarded(&mut self, tenant: &str) -> Result<bool, RetentionError> {
        Ok(self
            .0
            .query_row("SELECT 1 FROM offboarded_tenants WHERE tenant = ?1", params![tenant], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn mark_offboarded(&mut self, tenant: &str, at: i64) -> Result<bool, RetentionError> {
        Ok(self.0.execute(
            "INSERT INTO offboarded_tenants (tenant, offboarded_at) VALUES (?1, ?2) ON CONFLICT (tenant) DO NOTHING",
            params![tenant, at],
        )? > 0)
    }

    fn announce(&mut self, replica: &str, seen: i64, announcement: &str) -> Result<(), RetentionError> {
        self.0.execute("DELETE FROM replicas WHERE seen < ?1", params![seen.saturating_sub(86_400)])?;
        self.0.execute(
            "INSERT INTO replicas (replica, seen, holdings) VALUES (?1, ?2, ?3)
             ON CONFLICT (replica) DO UPDATE SET seen = ?2, holdings = ?3",
            params![replica, seen, announcement],
        )?;
        Ok(())
    }

    fn withdraw(&mut self, replica: &str) -> Result<(), RetentionError> {
        self.0.execute("DELETE FROM replicas WHERE replica = ?1", params![replica])?;
        Ok(())
    }

    /// Columns read as bytes, not text: a row someone else wrote need not be UTF-8 or text at all.
    fn replicas_since(&mut self, since: i64, limit: i64) -> Result<Vec<Replica>, RetentionError> {
        let mut query = self.0.prepare(
            "SELECT CAST(substr(replica, 1, 256) AS BLOB), seen, CAST(substr(holdings, 1, ?3) AS BLOB) FROM replicas
             WHERE seen >= ?1 ORDER BY seen DESC LIMIT ?2",
        )?;
        let bound = super::replicas::MAX_ANNOUNCEMENT as i64 + 1;
        let rows = query.query_map(params![since, limit, bound], |r| {
            let (id, seen, text): (Vec<u8>, i64, Vec<u8>) = (r.get(0)?, r.get(1)?, r.get(2)?);
            Ok(Replica::from_row(
                String::from_utf8_lossy(&id).into_owned(),
                seen,
                &String::from_utf8_lossy(&text),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
