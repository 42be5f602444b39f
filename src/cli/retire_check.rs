//! What `nymgate keys retire` asks before it deletes a key version (docs/PSEUDONYMS.md,
//! "Retiring a version"; docs/RETENTION.md, "Replicas and key versions").
//!
//! A retained tenant's data key is wrapped under one version of its scope's keys. Retiring that
//! version would leave the key, and every record under it, unreadable for good; retiring it while
//! a live replica has not loaded the current version would leave that replica unable to read a
//! data key wrapped under the current one. So, with the keyring under its writer lock: refused
//! while a live replica serving the scope lacks the current version; otherwise every data key of
//! the scope's tenants still under the version is wrapped again under the current one (in the
//! database, before the keyring changes: a failure after it loses nothing), and refused if one
//! still depends on it.
//!
//! Why here, in the binary, and not in the library: only `nymgate keys retire` retires a key
//! version (the server never writes the keyring, except an offboarding's erase of a whole
//! scope, which leaves no version to check). The database's side of the check,
//! `RetentionStore::prepare_retire`, stays in the library's retention layer, under its
//! transaction; this module only gathers its inputs from the config and the keyring.

use nymgate::config::Config;
use nymgate::pseudonym::keyring::{Keyring, KeyringError};
use nymgate::retention::{RetentionStore, WrapKeys};

/// Makes retiring `version` of `scope` safe against the retention database `config` names (none:
/// nothing to ask). Returns how many data keys were wrapped again.
pub fn prepare(
    config: Option<&Config>,
    ring: &Keyring,
    scope: &str,
    version: u32,
    now: u64,
) -> Result<usize, KeyringError> {
    let Some(settings) = config.and_then(|c| c.retention.as_ref()) else { return Ok(0) };
    let keys = ring.scope(scope)?;
    if keys.current().version == version {
        // The keyring's own refusal says it best.
        return Ok(0);
    }
    let tenants: Vec<(String, WrapKeys)> = config
        .into_iter()
        .flat_map(|c| c.tenants.iter())
        .filter(|t| t.scope_name() == scope)
        .map(|t| (t.id.clone(), WrapKeys::derive(scope, keys, &t.id)))
        .collect();
    if tenants.is_empty() {
        return Ok(0);
    }
    let store = RetentionStore::from_config(settings)
        .map_err(|e| KeyringError::RetentionUnavailable(e.to_string()))?;
    match store.prepare_retire(scope, version, tenants, now) {
        Ok(Ok(rewrapped)) => Ok(rewrapped),
        Ok(Err(reasons)) => Err(KeyringError::InUse { scope: scope.to_owned(), version, reasons }),
        Err(error) => Err(KeyringError::RetentionUnavailable(error.to_string())),
    }
}
