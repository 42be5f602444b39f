//! Offboarding a tenant (docs/RETENTION.md, "From the shell", **Offboarding**): its retained
//! records, its data key, and its pseudonym scope's keys, in that order, and the report of what
//! went. One function for both doors: `nymgate retention offboard` (the shell) and
//! `POST /admin/v1/retention/{tenant}` (the admin API, src/login/retention_api.rs). Each caller
//! checks its caller and writes its own audit lines around it (`by_shell`, `by_dpo`); this is
//! only the erasure, so that both erase the same things in the same order.

use std::path::Path;

use serde::Serialize;

use super::{RetentionError, RetentionStore};

/// What an offboarding removed, counted. Answered as JSON by both doors (`to_json`); the field
/// names are the report's documented keys (docs/RETENTION.md, docs/DEPLOY.md).
#[derive(Debug, Clone, Serialize)]
pub struct OffboardReport {
    /// The tenant offboarded.
    pub tenant: String,
    /// How many of its retained records were erased.
    pub retained_records_removed: usize,
    /// Always true once there is a report: the data key goes with the records, in one transaction.
    pub data_key_removed: bool,
    /// The pseudonym scope the tenant's account numbers were derived under.
    pub pseudonym_scope: String,
    /// How many of the scope's keys were destroyed (0 when another tenant shares the scope, or
    /// when the keyring could not be written here).
    pub scope_keys_destroyed: usize,
    /// Set when the keyring could not be written here (a read-only Kubernetes Secret): what the
    /// operator must do where it is kept. The shell fails with `keyring_unwritable` on it.
    pub scope_keys_not_erased: Option<String>,
    /// The other tenants that share the scope, whose keys therefore stay.
    pub scope_kept_for: Vec<String>,
    /// What is left for the operator to do.
    pub next: &'static str,
}

impl OffboardReport {
    /// The report as a JSON object, as both doors answer it (keys in serde_json's map order).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a report serializes")
    }
}

/// Offboards `tenant` as of `now`: its records and data key first (once they are gone nothing is
/// left to read, so a crash before the keys leaves nothing readable behind), then its pseudonym
/// `scope`'s keys unless another tenant (`sharing`) uses the scope. Blocks: async callers use
/// `spawn_blocking`. Run again after an interruption, it finishes what is left.
pub fn offboard_tenant(
    store: &RetentionStore,
    keyring_file: &Path,
    tenant: &str,
    scope: &str,
    sharing: &[String],
    now: u64,
) -> Result<OffboardReport, RetentionError> {
    let records = store.offboard(tenant, now)?;
    // From here the school is ended on every replica (the offboarding is recorded in the
    // shared database): a keyring that can't be written (a read-only Kubernetes Secret) leaves
    // its keys to be erased where the keyring is kept, and the report says so.
    let mut keys_not_erased = None;
    let keys_destroyed = if sharing.is_empty() {
        // Under the keyring's writer lock, as every `nymgate keys` writer: a concurrent rotate
        // can't write the erased keys back (keyring_write.rs).
        let erased = crate::pseudonym::keyring_write::update(keyring_file, false, |ring| {
            match ring.erase(scope, now) {
                Ok(destroyed) => Ok(Some(destroyed)),
                // Already erased (a second run after an interruption): nothing to write.
                Err(_) => Ok(None),
            }
        });
        match erased {
            Ok(destroyed) => destroyed.unwrap_or(0),
            Err(error) => {
                tracing::error!(%error, "offboarding: the scope's keys could not be erased here");
                keys_not_erased = Some(format!(
                    "the keyring could not be written here: erase the scope with `nymgate keys erase --scope {scope}` where the keyring is kept, then give every replica the new keyring (docs/DEPLOY.md)"
                ));
                0
            }
        }
    } else {
        0
    };
    Ok(OffboardReport {
        tenant: tenant.to_owned(),
        retained_records_removed: records,
        data_key_removed: true,
        pseudonym_scope: scope.to_owned(),
        scope_keys_destroyed: keys_destroyed,
        scope_keys_not_erased: keys_not_erased,
        scope_kept_for: sharing.to_vec(),
        next: "remove the tenant from the config and reload; destroy backups of the keyring and of the retention database",
    })
}

#[cfg(test)]
#[path = "offboarding_tests.rs"]
mod tests;
