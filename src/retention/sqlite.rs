//! The retention store in one SQLite file: one connection behind a mutex (writes are one per
//! retained login, and SQLite serializes writers anyway); WAL, and every commit synced.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::{Db, KeyRow, Operation, RecordRow, RetentionError};

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
        // WAL: a reader never sees half a transaction, and a crash loses at most the
        // transaction in flight. FULL: a commit is on disk before it is reported.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        // Erased rows are overwritten, not left in free pages.
        db.pragma_update(None, "secure_delete", "ON")?;
        db.execute_batch(SCHEMA)?;
        Ok(Sqlite { db: Mutex::new(db) })
    }

    pub(super) fn transact<R>(&self, operation: Operation<R>) -> Result<R, RetentionError> {
        let mut db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        let tx = db.transaction()?;
        let result = operation(&mut Tx(&tx))?;
        tx.commit()?;
        Ok(result)
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

    fn put_data_key(
        &mut self,
        tenant: &str,
        version: u32,
        nonce: &[u8],
        wrapped: &[u8],
    ) -> Result<(), RetentionError> {
        self.0.execute(
            "INSERT INTO data_keys (tenant, key_version, nonce, wrapped) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant) DO UPDATE SET key_version = ?2, nonce = ?3, wrapped = ?4",
            params![tenant, version, nonce, wrapped],
        )?;
        Ok(())
    }

    fn upsert(
        &mut self,
        tenant: &str,
        account: &str,
        nonce: &[u8],
        sealed: &[u8],
        last_seen: i64,
    ) -> Result<(), RetentionError> {
        self.0.execute(
            "INSERT INTO records (tenant, account_number, nonce, ciphertext, last_seen) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (tenant, account_number) DO UPDATE SET nonce = ?3, ciphertext = ?4, last_seen = ?5",
            params![tenant, account, nonce, sealed, last_seen],
        )?;
        Ok(())
    }

    fn record_row(&mut self, tenant: &str, account: &str) -> Result<Option<RecordRow>, RetentionError> {
        Ok(self
            .0
            .query_row(
                "SELECT nonce, ciphertext, last_seen, restricted FROM records WHERE tenant = ?1 AND account_number = ?2",
                params![tenant, account],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?)
    }

    fn update_values(
        &mut self,
        tenant: &str,
        account: &str,
        nonce: &[u8],
        sealed: &[u8],
    ) -> Result<u64, RetentionError> {
        Ok(self.0.execute(
            "UPDATE records SET nonce = ?3, ciphertext = ?4 WHERE tenant = ?1 AND account_number = ?2",
            params![tenant, account, nonce, sealed],
        )? as u64)
    }

    fn set_restricted(
        &mut self,
        tenant: &str,
        account: &str,
        restricted: bool,
    ) -> Result<u64, RetentionError> {
        Ok(self.0.execute(
            "UPDATE records SET restricted = ?3 WHERE tenant = ?1 AND account_number = ?2",
            params![tenant, account, restricted],
        )? as u64)
    }

    fn delete_record(&mut self, tenant: &str, account: &str) -> Result<u64, RetentionError> {
        Ok(self.0.execute(
            "DELETE FROM records WHERE tenant = ?1 AND account_number = ?2",
            params![tenant, account],
        )? as u64)
    }

    fn delete_unseen_since(&mut self, before: i64) -> Result<u64, RetentionError> {
        Ok(self.0.execute("DELETE FROM records WHERE last_seen < ?1", params![before])? as u64)
    }

    fn delete_tenant(&mut self, tenant: &str) -> Result<u64, RetentionError> {
        let removed = self.0.execute("DELETE FROM records WHERE tenant = ?1", params![tenant])?;
        self.0.execute("DELETE FROM data_keys WHERE tenant = ?1", params![tenant])?;
        Ok(removed as u64)
    }

    fn count(&mut self, tenant: &str) -> Result<u64, RetentionError> {
        let n: i64 =
            self.0
                .query_row("SELECT COUNT(*) FROM records WHERE tenant = ?1", params![tenant], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }
}
