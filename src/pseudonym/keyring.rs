//! The keyring: random 256-bit keys, one per scope and version, in one file only nymgate reads.
//!
//! File format (TOML, written by `nymgate keys`, never by hand):
//!
//! ```toml
//! [[scope]]
//! name = "school-a"
//! migration_until = 1767225600   # optional: until then tokens also carry sub_prev
//! [[scope.key]]
//! version = 1
//! created = 1764000000            # unix seconds
//! secret = "64 hex digits"
//! ```
//!
//! The current key of a scope is its highest version. During a migration window (opened by
//! `rotate`) the next-highest version is the previous key, and tokens carry both account numbers
//! so the platform can re-key its accounts. `retire` deletes old versions; `erase` deletes a
//! whole scope, which makes every account number made under it unlinkable for good
//! (crypto-shredding: shared/PRODUCT.md, "Erasure").
//!
//! Every key `retire` or `erase` deletes leaves an erasure record (a tombstone) in the file:
//!
//! ```toml
//! [[erased]]
//! scope = "school-a"
//! version = 1
//! erased = 1767225600             # unix seconds
//! fingerprint = "64 hex digits"   # SHA-256 of the deleted key, domain-separated
//! ```
//!
//! A keyring that holds a key its own tombstones name is refused at load, and a restore drops
//! every key a tombstone names (keyring_backup.rs), so a deleted key never comes back. The
//! fingerprint reveals nothing of the key: it is a hash of 256 random bits.
//!
//! The file must be mode 0600 or stricter; nymgate refuses to read it otherwise. It is written
//! by one writer at a time and replaced atomically (keyring_write.rs), so a crash leaves the old
//! or the new keyring, never half of one, and readers (start, reload) need no lock.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::check_private_file;
use crate::secret::Secret;

/// Scope names: what tenant ids allow (the config's one name rule), so that they can't
/// smuggle anything into files or logs.
pub fn is_valid_scope_name(name: &str) -> bool {
    crate::config::is_valid_name(name)
}

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("{0}")]
    File(String),
    #[error("keyring {path} is not valid: {message}")]
    Format { path: PathBuf, message: String },
    #[error("scope {0:?} has no keys; create them with `nymgate keys new --scope {0}`")]
    NoScope(String),
    #[error("scope {0:?} already has keys")]
    ScopeExists(String),
    #[error("scope name {0:?} is not valid: use 1 to 64 of a-z, 0-9, '-' and '_'")]
    BadScopeName(String),
    #[error("scope {scope:?} has no key version {version}")]
    NoVersion { scope: String, version: u32 },
    #[error("version {version} is the current key of scope {scope:?}; rotate first, or erase the scope")]
    RetireCurrent { scope: String, version: u32 },
    /// `keys retire` of a version a data key or a live replica still depends on
    /// (src/cli/retire_check.rs).
    #[error("version {version} of scope {scope:?} is still needed, so nothing was retired:\n  - {}", reasons.join("\n  - "))]
    InUse { scope: String, version: u32, reasons: Vec<String> },
    /// The retention database `keys retire` must ask could not be asked (or its config read).
    #[error("nothing was retired: {0}")]
    RetentionUnavailable(String),
}

/// One key.
pub struct ScopeKey {
    pub version: u32,
    pub created: u64,
    pub secret: Secret,
    /// HMAC state already keyed with `secret`: cloning it saves two SHA-256 blocks per
    /// derivation. As secret as the key; never printed.
    mac: hmac::Hmac<sha2::Sha256>,
}

impl ScopeKey {
    pub fn new(version: u32, created: u64, secret: Secret) -> Self {
        use hmac::KeyInit;
        let mac = hmac::Hmac::new_from_slice(secret.expose()).expect("HMAC takes any key length");
        Self { version, created, secret, mac }
    }

    /// A fresh HMAC-SHA256 keyed with this key.
    pub fn mac(&self) -> hmac::Hmac<sha2::Sha256> {
        self.mac.clone()
    }
}

impl fmt::Debug for ScopeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopeKey")
            .field("version", &self.version)
            .field("created", &self.created)
            .field("secret", &self.secret)
            .finish()
    }
}

/// The keys of one scope, newest last.
#[derive(Debug)]
pub struct ScopeKeys {
    pub keys: Vec<ScopeKey>,
    /// Unix seconds until which the previous key is still used for `sub_prev`.
    pub migration_until: Option<u64>,
}

impl ScopeKeys {
    pub fn current(&self) -> &ScopeKey {
        self.keys.last().expect("a scope always has at least one key")
    }

    /// The previous key, while the migration window is open at `now`.
    pub fn previous(&self, now: u64) -> Option<&ScopeKey> {
        match self.migration_until {
            Some(until) if now < until && self.keys.len() >= 2 => self.keys.get(self.keys.len() - 2),
            _ => None,
        }
    }
}

/// Every scope's keys.
#[derive(Debug, Default)]
pub struct Keyring {
    /// The live keys, by scope name.
    scopes: BTreeMap<String, ScopeKeys>,
    /// One record per key ever deleted from this keyring: what a restore must not bring back.
    erased: Vec<Erased>,
}

/// The record of one deleted key (retired or erased): enough to recognise it, nothing to use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Erased {
    /// The scope it belonged to, for the operator reading the file or a restore report.
    pub scope: String,
    /// Its version in that scope, for the same.
    pub version: u32,
    /// When it was deleted (unix seconds): a restore reports keys deleted after its backup.
    pub erased: u64,
    /// `fingerprint()` of the key: a scope erased and created again reuses version numbers,
    /// so only the key itself tells an old key from a new one.
    pub fingerprint: String,
}

/// A key's fingerprint: SHA-256 over a domain label and the key, as hex. A key is 256 random
/// bits, so its hash gives nothing toward it.
pub fn fingerprint(secret: &Secret) -> String {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    hash.update(b"nymgate keyring erased-key fingerprint v1\0");
    hash.update(secret.expose());
    crate::secret::to_hex(&hash.finalize())
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(default)]
    scope: Vec<FileScope>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    erased: Vec<Erased>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileScope {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    migration_until: Option<u64>,
    key: Vec<FileKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKey {
    version: u32,
    created: u64,
    secret: String,
}

const HEADER: &str = "# nymgate pseudonym keyring: secret, mode 0600. Manage it with `nymgate keys`;\n# deleting a scope here makes its account numbers unlinkable for good.\n\n";

impl Keyring {
    /// Reads a keyring file, refusing one that others, or a group not nymgate's, can read
    /// (crate::config::file_access).
    pub fn load(path: &Path) -> Result<Keyring, KeyringError> {
        check_private_file(path).map_err(KeyringError::File)?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| KeyringError::File(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text, path)
    }

    /// Parses a keyring's text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Keyring, KeyringError> {
        let format = |message: String| KeyringError::Format { path: path.to_owned(), message };
        // toml's error quotes the offending line, which could be a secret: say only where.
        let file: FileFormat = toml::from_str(text).map_err(|e| {
            format(match e.span() {
                Some(span) => format!("syntax error at byte {}", span.start),
                None => "syntax error".into(),
            })
        })?;
        let mut scopes = BTreeMap::new();
        for scope in file.scope {
            if !is_valid_scope_name(&scope.name) {
                return Err(format(format!("scope name {:?} is not valid", scope.name)));
            }
            let mut keys = Vec::new();
            for key in scope.key {
                let bytes = decode_hex(&key.secret).filter(|b| b.len() == 32).ok_or_else(|| {
                    format(format!(
                        "scope {} version {}: secret is not 64 hex digits",
                        scope.name, key.version
                    ))
                })?;
                keys.push(ScopeKey::new(key.version, key.created, Secret::new(bytes)));
            }
            if keys.is_empty() {
                return Err(format(format!("scope {} has no keys", scope.name)));
            }
            keys.sort_by_key(|k| k.version);
            if keys.windows(2).any(|w| w[0].version == w[1].version) || keys[0].version == 0 {
                return Err(format(format!(
                    "scope {}: key versions must be unique and start at 1",
                    scope.name
                )));
            }
            if scopes
                .insert(scope.name.clone(), ScopeKeys { keys, migration_until: scope.migration_until })
                .is_some()
            {
                return Err(format(format!("scope {} appears twice", scope.name)));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for record in &file.erased {
            // Checked like a key's: the scope name reaches messages, the fingerprint is compared.
            let hex = record.fingerprint.len() == 64
                && record.fingerprint.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
            if !is_valid_scope_name(&record.scope) || !hex {
                return Err(format("an [[erased]] record is not valid".into()));
            }
            if !seen.insert(record.fingerprint.as_str()) {
                return Err(format("an [[erased]] record appears twice".into()));
            }
        }
        // Fail closed on a deleted key brought back (a hand edit, a splice of an old backup):
        // its account numbers were promised unlinkable.
        for (name, scope) in &scopes {
            for key in &scope.keys {
                if let Some(record) = file.erased.iter().find(|e| e.fingerprint == fingerprint(&key.secret)) {
                    return Err(format(format!(
                        "scope {name} version {} holds a key deleted at {} (its [[erased]] record); remove it from the file",
                        key.version,
                        crate::audit::rfc3339(record.erased)
                    )));
                }
            }
        }
        Ok(Keyring { scopes, erased: file.erased })
    }

    /// Reads the keyring, or an empty one if the file does not exist yet.
    pub fn load_or_empty(path: &Path) -> Result<Keyring, KeyringError> {
        if path.exists() {
            Self::load(path)
        } else {
            Ok(Keyring::default())
        }
    }

    /// The file's text: the canonical form, which `parse` reads back to the same keyring.
    pub fn to_text(&self) -> String {
        let file = FileFormat {
            scope: self
                .scopes
                .iter()
                .map(|(name, scope)| FileScope {
                    name: name.clone(),
                    migration_until: scope.migration_until,
                    key: scope
                        .keys
                        .iter()
                        .map(|k| FileKey {
                            version: k.version,
                            created: k.created,
                            secret: encode_hex(k.secret.expose()),
                        })
                        .collect(),
                })
                .collect(),
            erased: self.erased.clone(),
        };
        // Every number is kept at most i64::MAX (TOML's integers) where it is made, so encoding
        // can't fail.
        let text = toml::to_string(&file).expect("a keyring encodes as TOML");
        format!("{HEADER}{text}")
    }

    /// Replaces the keyring file with this keyring, under the writer lock (keyring_write.rs).
    /// For a keyring no one else writes (a first setup, tests); changes to a live keyring go
    /// through `keyring_write::update`, which reads and writes under one lock.
    pub fn save(&self, path: &Path) -> Result<(), KeyringError> {
        super::keyring_write::update(path, true, |ring| {
            *ring = Keyring::parse(&self.to_text(), path)?;
            Ok(())
        })
    }

    /// The erasure records: every key deleted from this keyring.
    pub fn erased(&self) -> &[Erased] {
        &self.erased
    }

    pub fn scope(&self, name: &str) -> Result<&ScopeKeys, KeyringError> {
        self.scopes.get(name).ok_or_else(|| KeyringError::NoScope(name.to_owned()))
    }

    pub fn scopes(&self) -> impl Iterator<Item = (&str, &ScopeKeys)> {
        self.scopes.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Creates a scope with a fresh version-1 key.
    pub fn new_scope(&mut self, name: &str, now: u64) -> Result<(), KeyringError> {
        let now = toml_int(now);
        if !is_valid_scope_name(name) {
            return Err(KeyringError::BadScopeName(name.to_owned()));
        }
        if self.scopes.contains_key(name) {
            return Err(KeyringError::ScopeExists(name.to_owned()));
        }
        let key = ScopeKey::new(1, now, Secret::new(crate::secret::random_bytes::<32>().to_vec()));
        self.scopes.insert(name.to_owned(), ScopeKeys { keys: vec![key], migration_until: None });
        Ok(())
    }

    /// Adds a new current key and opens a migration window of `window_secs` during which the
    /// old current key makes `sub_prev`. Returns the new version.
    pub fn rotate(&mut self, name: &str, now: u64, window_secs: u64) -> Result<u32, KeyringError> {
        let now = toml_int(now);
        let scope = self.scopes.get_mut(name).ok_or_else(|| KeyringError::NoScope(name.to_owned()))?;
        let version = scope
            .current()
            .version
            .checked_add(1)
            .ok_or_else(|| KeyringError::File(format!("scope {name:?} has no version number left")))?;
        scope.keys.push(ScopeKey::new(
            version,
            now,
            Secret::new(crate::secret::random_bytes::<32>().to_vec()),
        ));
        scope.migration_until = (window_secs > 0).then_some(toml_int(now.saturating_add(window_secs)));
        Ok(version)
    }

    /// Deletes one old key version, leaving its erasure record. Retiring the previous key ends
    /// its migration window.
    pub fn retire(&mut self, name: &str, version: u32, now: u64) -> Result<(), KeyringError> {
        let scope = self.scopes.get_mut(name).ok_or_else(|| KeyringError::NoScope(name.to_owned()))?;
        if scope.current().version == version {
            return Err(KeyringError::RetireCurrent { scope: name.to_owned(), version });
        }
        let index = scope
            .keys
            .iter()
            .position(|k| k.version == version)
            .ok_or_else(|| KeyringError::NoVersion { scope: name.to_owned(), version })?;
        let key = scope.keys.remove(index);
        if scope.keys.len() == 1 {
            scope.migration_until = None;
        }
        self.erased.push(Erased {
            scope: name.to_owned(),
            version,
            erased: toml_int(now),
            fingerprint: fingerprint(&key.secret),
        });
        Ok(())
    }

    /// Deletes a scope and all its keys (crypto-shredding), leaving their erasure records.
    /// Returns how many keys were destroyed.
    pub fn erase(&mut self, name: &str, now: u64) -> Result<usize, KeyringError> {
        let scope = self.scopes.remove(name).ok_or_else(|| KeyringError::NoScope(name.to_owned()))?;
        for key in &scope.keys {
            self.erased.push(Erased {
                scope: name.to_owned(),
                version: key.version,
                erased: toml_int(now),
                fingerprint: fingerprint(&key.secret),
            });
        }
        Ok(scope.keys.len())
    }

    /// Adds a key from a backup (keyring_backup.rs) unless this keyring already has it; the
    /// caller has checked it against the erasure records. A scope new to this keyring takes the
    /// backup's migration window.
    pub(super) fn insert_restored(
        &mut self,
        name: &str,
        key: &ScopeKey,
        migration_until: Option<u64>,
    ) -> Result<bool, KeyringError> {
        let scope = self
            .scopes
            .entry(name.to_owned())
            .or_insert_with(|| ScopeKeys { keys: Vec::new(), migration_until });
        match scope.keys.iter().find(|k| k.version == key.version) {
            Some(have) if have.secret.ct_eq(key.secret.expose()) => Ok(false),
            Some(_) => Err(KeyringError::File(format!(
                "scope {name:?} version {} differs between the keyring and the backup; nothing restored",
                key.version
            ))),
            None => {
                let secret = Secret::new(key.secret.expose().to_vec());
                scope.keys.push(ScopeKey::new(key.version, key.created, secret));
                scope.keys.sort_by_key(|k| k.version);
                Ok(true)
            }
        }
    }

    /// Adds an erasure record from a backup unless this keyring has it already.
    pub(super) fn insert_erased(&mut self, record: &Erased) {
        if !self.erased.iter().any(|e| e.fingerprint == record.fingerprint) {
            self.erased.push(record.clone());
        }
    }
}

/// TOML integers are i64: a time past that (a window of centuries) is kept at the largest one.
fn toml_int(value: u64) -> u64 {
    value.min(i64::MAX as u64)
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
#[path = "keyring_tests.rs"]
mod tests;
