//! The retention store in PostgreSQL, for several replicas sharing it. The blocking `postgres`
//! client lives on a thread of its own, which runs each operation in one transaction: the client
//! keeps a runtime of its own, which must never be started, blocked on or dropped inside
//! nymgate's async runtime. The connection is made at first use, and again after it breaks.

use std::sync::mpsc;
use std::sync::Mutex;

use ::postgres::{Client, NoTls, Transaction};

use super::{replicas::Replica, Db, KeyRow, Operation, RecordRow, RetentionError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS nymgate_data_keys (
    tenant TEXT PRIMARY KEY,
    key_version BIGINT NOT NULL,
    nonce BYTEA NOT NULL,
    wrapped BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS nymgate_records (
    tenant TEXT NOT NULL,
    account_number TEXT NOT NULL,
    nonce BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    last_seen BIGINT NOT NULL,
    restricted BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (tenant, account_number)
);
CREATE INDEX IF NOT EXISTS nymgate_records_last_seen ON nymgate_records (last_seen);
CREATE TABLE IF NOT EXISTS nymgate_record_heads (
    tenant TEXT NOT NULL,
    account_number TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (tenant, account_number)
);
CREATE TABLE IF NOT EXISTS nymgate_offboarded_tenants (
    tenant TEXT PRIMARY KEY,
    offboarded_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS nymgate_replicas (
    replica TEXT PRIMARY KEY,
    seen BIGINT NOT NULL,
    holdings TEXT NOT NULL
);
";

/// The advisory lock nymgate's replicas take while they create the tables (any constant the
/// database's other users don't take; "nymgate" in ASCII).
const SCHEMA_LOCK: i64 = 0x006e_796d_6761_7465;

/// The first key of every tenant's offboarding lock (`pg_advisory_xact_lock(int, int)`, the
/// second key the tenant's `hashtext`): a write takes it shared, an offboarding exclusively. Two
/// tenants whose ids hash alike only wait for each other.
const OFFBOARDING_LOCK: i32 = 0x6e79_6f66;

/// How long `forget`'s `VACUUM FULL` waits for the tables' lock before it gives up (and the next
/// removal tries again): it must not queue for long, since every login's write waits behind it.
const FORGET_LOCK_TIMEOUT: &str = "5s";

/// Rewrites the tables into new files and drops the old ones (PostgreSQL, "VACUUM", FULL). A plain
/// VACUUM marks a dead tuple's space free but leaves its bytes in the page until a later row
/// happens to overwrite them; the rewrite copies only live rows, and the old file is truncated to
/// nothing at commit (its name is unlinked at the next checkpoint).
const FORGET: &str = "VACUUM (FULL) nymgate_records, nymgate_record_heads, nymgate_data_keys";

/// A job for the client's thread.
type Job = Box<dyn FnOnce(&mut Option<Client>) + Send>;

pub(super) struct Postgres {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl Postgres {
    /// Starts the client's thread; nothing connects until the first operation.
    pub(super) fn new(
        url: &str,
        password: Option<crate::secret::Secret>,
    ) -> Result<Postgres, RetentionError> {
        let mut config: ::postgres::Config = url
            .parse()
            .map_err(|e: ::postgres::Error| RetentionError::Database(format!("postgres_url: {e}")))?;
        if let Some(password) = &password {
            config.password(password.expose());
        }
        // A database that does not answer must not hold a login (or a reload) for long.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("nymgate-retention-pg".into())
            .spawn(move || {
                let mut client: Option<Client> = None;
                while let Ok(job) = queue.recv() {
                    if client.as_ref().is_none_or(Client::is_closed) {
                        client = config.connect(NoTls).ok();
                        if let Some(c) = client.as_mut() {
                            // Under a lock: two replicas creating the tables at once would have
                            // one fail on PostgreSQL's catalog (`CREATE … IF NOT EXISTS` is not
                            // safe against a concurrent creation).
                            let schema = format!(
                                "BEGIN; SELECT pg_advisory_xact_lock({SCHEMA_LOCK}); {SCHEMA} COMMIT;"
                            );
                            if c.batch_execute(&schema).is_err() {
                                client = None;
                            }
                        }
                    }
                    job(&mut client);
                }
            })
            .map_err(|e| RetentionError::Database(format!("cannot start the PostgreSQL thread: {e}")))?;
        Ok(Postgres { jobs: Mutex::new(jobs) })
    }

    pub(super) fn transact<R: Send + 'static>(&self, operation: Operation<R>) -> Result<R, RetentionError> {
        self.run(move |client| {
            let mut tx = client.transaction()?;
            let result = operation(&mut Tx(&mut tx))?;
            tx.commit()?;
            Ok(result)
        })
    }

    /// Makes the tables' files drop removed rows now ([`FORGET`]); outside any transaction, as
    /// VACUUM must be. What PostgreSQL's WAL and backups keep is docs/RETENTION.md's.
    pub(super) fn forget(&self) -> Result<(), RetentionError> {
        self.run(|client| {
            client.batch_execute(&format!("SET lock_timeout = '{FORGET_LOCK_TIMEOUT}'"))?;
            let vacuumed = client.batch_execute(FORGET);
            client.batch_execute("RESET lock_timeout")?;
            Ok(vacuumed?)
        })
    }

    /// Runs `work` on the client's thread with the connection, and waits for its answer.
    fn run<R: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Client) -> Result<R, RetentionError> + Send + 'static,
    ) -> Result<R, RetentionError> {
        let (reply, answer) = mpsc::channel();
        let job: Job = Box::new(move |client: &mut Option<Client>| {
            let result = match client.as_mut() {
                None => Err(RetentionError::Database("PostgreSQL is unreachable".into())),
                Some(client) => work(client),
            };
            let _ = reply.send(result);
        });
        let sent = self.jobs.lock().unwrap_or_else(|e| e.into_inner()).send(job);
        sent.map_err(|_| RetentionError::Database("the PostgreSQL thread has stopped".into()))?;
        answer.recv().map_err(|_| RetentionError::Database("the PostgreSQL thread has stopped".into()))?
    }
}

struct Tx<'a, 'b>(&'a mut Transaction<'b>);

impl Db for Tx<'_, '_> {
    fn data_key_row(&mut self, tenant: &str) -> Result<Option<KeyRow>, RetentionError> {
        let row = self.0.query_opt(
            "SELECT key_version, nonce, wrapped FROM nymgate_data_keys WHERE tenant = $1",
            &[&tenant],
        )?;
        Ok(row.map(|r| (r.get::<_, i64>(0) as u32, r.get(1), r.get(2))))
    }

    /// Under READ COMMITTED, a second replica's insert waits for the first one's commit and then
    /// does nothing; its next statement (the read back) sees the first one's key.
    fn insert_data_key(&mut self, tenant: &str, version: u32, wrapped: &[u8]) -> Result<(), RetentionError> {
        self.0.execute(
            "INSERT INTO nymgate_data_keys (tenant, key_version, nonce, wrapped) VALUES ($1, $2, ''::bytea, $3)
             ON CONFLICT (tenant) DO NOTHING",
            &[&tenant, &i64::from(version), &wrapped],
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
            "UPDATE nymgate_data_keys SET key_version = $3, nonce = ''::bytea, wrapped = $4 WHERE tenant = $1 AND wrapped = $2",
            &[&tenant, &expected, &i64::from(version), &wrapped],
        )?)
    }

    /// Locks the row to the end of the transaction: a login that carries a record's restriction
    /// into its new version waits for a DPO's restriction being committed, and then sees it
    /// (READ COMMITTED re-reads a row it waited for), instead of writing the old state back.
    fn record_row(&mut self, tenant: &str, account: &str) -> Result<Option<RecordRow>, RetentionError> {
        let row = self.0.query_opt(
            "SELECT nonce, ciphertext, last_seen, restricted FROM nymgate_records WHERE tenant = $1 AND account_number = $2 FOR UPDATE",
            &[&tenant, &account],
        )?;
        Ok(row.map(|r| RecordRow {
            nonce: r.get(0),
            sealed: r.get(1),
            last_seen: r.get(2),
            restricted: r.get(3),
        }))
    }

    fn head(&mut self, tenant: &str, account: &str) -> Result<Option<i64>, RetentionError> {
        let row = self.0.query_opt(
            "SELECT version FROM nymgate_record_heads WHERE tenant = $1 AND account_number = $2",
            &[&tenant, &account],
        )?;
        Ok(row.map(|r| r.get(0)))
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
            "INSERT INTO nymgate_records (tenant, account_number, nonce, ciphertext, last_seen, restricted) VALUES ($1, $2, ''::bytea, $3, $4, $5)
             ON CONFLICT (tenant, account_number) DO UPDATE SET nonce = ''::bytea, ciphertext = $3, last_seen = $4, restricted = $5",
            &[&tenant, &account, &sealed, &last_seen, &restricted],
        )?;
        self.0.execute(
            "INSERT INTO nymgate_record_heads (tenant, account_number, version) VALUES ($1, $2, $3)
             ON CONFLICT (tenant, account_number) DO UPDATE SET version = $3",
            &[&tenant, &account, &version],
        )?;
        Ok(())
    }

    fn legacy_accounts(&mut self, tenant: &str) -> Result<Vec<String>, RetentionError> {
        let rows = self.0.query(
            "SELECT account_number FROM nymgate_records WHERE tenant = $1 AND length(nonce) = 12",
            &[&tenant],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn delete_record(&mut self, tenant: &str, account: &str) -> Result<u64, RetentionError> {
        self.0.execute(
            "DELETE FROM nymgate_record_heads WHERE tenant = $1 AND account_number = $2",
            &[&tenant, &account],
        )?;
        Ok(self.0.execute(
            "DELETE FROM nymgate_records WHERE tenant = $1 AND account_number = $2",
            &[&tenant, &account],
        )?)
    }

    fn delete_unseen_since(&mut self, before: i64) -> Result<u64, RetentionError> {
        self.0.execute(
            "DELETE FROM nymgate_record_heads WHERE (tenant, account_number) IN
             (SELECT tenant, account_number FROM nymgate_records WHERE last_seen < $1)",
            &[&before],
        )?;
        Ok(self.0.execute("DELETE FROM nymgate_records WHERE last_seen < $1", &[&before])?)
    }

    fn delete_tenant(&mut self, tenant: &str) -> Result<u64, RetentionError> {
        let removed = self.0.execute("DELETE FROM nymgate_records WHERE tenant = $1", &[&tenant])?;
        self.0.execute("DELETE FROM nymgate_record_heads WHERE tenant = $1", &[&tenant])?;
        self.0.execute("DELETE FROM nymgate_data_keys WHERE tenant = $1", &[&tenant])?;
        Ok(removed)
    }

    fn count(&mut self, tenant: &str) -> Result<u64, RetentionError> {
        let row = self.0.query_one("SELECT COUNT(*) FROM nymgate_records WHERE tenant = $1", &[&tenant])?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    /// The shared lock is held to the end of the transaction: an offboarding (exclusive) waits
    /// for this write to commit, and this statement, run after the lock is granted, sees an
    /// offboarding that committed first.
    fn offboarded(&mut self, tenant: &str) -> Result<bool, RetentionError> {
        self.0.execute(
            "SELECT pg_advisory_xact_lock_shared($1, hashtext($2))",
            &[&OFFBOARDING_LOCK, &tenant],
        )?;
        let row =
            self.0.query_opt("SELECT 1 FROM nymgate_offboarded_tenants WHERE tenant = $1", &[&tenant])?;
        Ok(row.is_some())
    }

    fn mark_offboarded(&mut self, tenant: &str, at: i64) -> Result<bool, RetentionError> {
        self.0.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&OFFBOARDING_LOCK, &tenant])?;
        Ok(self.0.execute(
            "INSERT INTO nymgate_offboarded_tenants (tenant, offboarded_at) VALUES ($1, $2) ON CONFLICT (tenant) DO NOTHING",
            &[&tenant, &at],
        )? > 0)
    }

    fn announce(&mut self, replica: &str, seen: i64, announcement: &str) -> Result<(), RetentionError> {
        self.0.execute("DELETE FROM nymgate_replicas WHERE seen < $1", &[&seen.saturating_sub(86_400)])?;
        self.0.execute(
            "INSERT INTO nymgate_replicas (replica, seen, holdings) VALUES ($1, $2, $3)
             ON CONFLICT (replica) DO UPDATE SET seen = $2, holdings = $3",
            &[&replica, &seen, &announcement],
        )?;
        Ok(())
    }

    fn withdraw(&mut self, replica: &str) -> Result<(), RetentionError> {
        self.0.execute("DELETE FROM nymgate_replicas WHERE replica = $1", &[&replica])?;
        Ok(())
    }

    /// The announcement is cut in the database to one byte over the bound: a huge row is
    /// refused without being carried here.
    fn replicas_since(&mut self, since: i64, limit: i64) -> Result<Vec<Replica>, RetentionError> {
        let bound = super::replicas::MAX_ANNOUNCEMENT as i32 + 1;
        let rows = self.0.query(
            "SELECT left(replica, 256), seen, left(holdings, $3) FROM nymgate_replicas
             WHERE seen >= $1 ORDER BY seen DESC LIMIT $2",
            &[&since, &limit, &bound],
        )?;
        Ok(rows.iter().map(|r| Replica::from_row(r.get(0), r.get(1), r.get::<_, &str>(2))).collect())
    }
}
