//! A tenant's data key: created once however many replicas race for it, wrapped again under the
//! scope's current key version, and the moment a tenant's records move from format 1 to format 2
//! (seal.rs).

use super::seal::{self, Format, RecordBinding};
use super::{replicas, seal_and_put, Db, RetentionError, WrapKeys};

/// The stored data key and the format it is wrapped in (format 1: the tenant's records may still
/// be in format 1), or `None` before the tenant's first record.
pub(super) fn stored(
    db: &mut dyn Db,
    tenant: &str,
    keys: &WrapKeys,
) -> Result<Option<([u8; 32], Format)>, RetentionError> {
    let Some((version, nonce, wrapped)) = db.data_key_row(tenant)? else { return Ok(None) };
    seal::unwrap_data_key(keys.get(version)?, tenant, &nonce, wrapped).map(Some)
}

/// The tenant's data key for a write: made (random) at first use, stored insert-if-absent, and
/// the stored one used (so that two replicas creating it at once agree on the first one stored,
/// and no record is ever sealed under a key that lost). It is wrapped under the newest scope key
/// version every live replica holds (replicas.rs): a key wrapped under another one, or in format
/// 1, is wrapped again, so that retiring old versions after a rotation (docs/PSEUDONYMS.md)
/// loses nothing and no replica in a rolling reload is left with a key it cannot unwrap; in
/// format 1 the tenant's records move to format 2 in the same transaction. An offboarded tenant
/// gets nothing: `Offboarded`, before anything is written. `now` (unix seconds) judges which
/// replicas are live; the caller reads the clock (clock.rs: one read per operation, passed in).
pub(super) fn writable(
    db: &mut dyn Db,
    tenant: &str,
    keys: &WrapKeys,
    now: u64,
) -> Result<[u8; 32], RetentionError> {
    if db.offboarded(tenant)? {
        return Err(RetentionError::Offboarded);
    }
    let live = replicas::live(db, now)?;
    let target = replicas::wrap_version(keys, &live);
    let Some((version, nonce, wrapped)) = db.data_key_row(tenant)? else {
        // No version every replica holds: the current one (a replica that can't unwrap it
        // refuses that tenant's retained logins, closed, until it reloads).
        let version = target.unwrap_or(keys.current);
        let fresh = crate::secret::random_bytes::<32>();
        db.insert_data_key(tenant, version, &seal::wrap_data_key(keys.get(version)?, tenant, &fresh))?;
        // Read back what won: ours, or another replica's stored first.
        let (key, _) = stored(db, tenant, keys)?.ok_or_else(|| {
            RetentionError::Database("the tenant's data key vanished while it was made".into())
        })?;
        return Ok(key);
    };
    let (key, format) = seal::unwrap_data_key(keys.get(version)?, tenant, &nonce, wrapped.clone())?;
    let target = target.unwrap_or(version);
    if format == Format::V2 && version == target {
        return Ok(key);
    }
    let rewrapped = seal::wrap_data_key(keys.get(target)?, tenant, &key);
    // Compare-and-swap: the row stays locked to the end of this transaction (PostgreSQL), so a
    // replica doing the same at once waits, finds it changed, and leaves the migration to us.
    if db.replace_data_key(tenant, &wrapped, target, &rewrapped)? == 0 {
        return Ok(stored(db, tenant, keys)?.ok_or(RetentionError::Corrupt)?.0);
    }
    if format == Format::V1 {
        migrate(db, tenant, &key)?;
    }
    Ok(key)
}

/// Seals every format-1 record of the tenant again in format 2, with a head. Its restriction and
/// last-seen time are taken as stored: format 1 did not bind them, so they are trusted once,
/// here. A format-1 row that does not open is left as it is, and is refused as tampered from
/// now on (its tenant's key is in format 2).
fn migrate(db: &mut dyn Db, tenant: &str, key: &[u8; 32]) -> Result<(), RetentionError> {
    for account in db.legacy_accounts(tenant)? {
        let Some(row) = db.record_row(tenant, &account)? else { continue };
        let binding = RecordBinding {
            tenant,
            account: &account,
            restricted: row.restricted,
            last_seen: row.last_seen,
            version: 0,
        };
        let Ok(plain) = seal::open_record(key, &binding, &row.nonce, row.sealed, true) else {
            tracing::warn!(
                tenant,
                "retention: a format-1 record does not open; left, and refused from now on"
            );
            continue;
        };
        seal_and_put(db, key, tenant, &account, &plain, row.restricted, row.last_seen)?;
    }
    Ok(())
}
