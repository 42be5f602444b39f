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
//! The file must be mode 0600 or stricter; nymgate refuses to read it otherwise. It is replaced
//! atomically (write a temporary file, fsync, rename), so a crash leaves the old or the new
//! keyring, never half of one.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

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
    scopes: BTreeMap<String, ScopeKeys>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(default)]
    scope: Vec<FileScope>,
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

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Keyring {
    /// Reads a keyring file, refusing one that group or others can read.
    pub fn load(path: &Path) -> Result<Keyring, KeyringError> {
        check_private_file(path).map_err(KeyringError::File)?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| KeyringError::File(format!("cannot read {}: {e}", path.display())))?;
        let format = |message: String| KeyringError::Format { path: path.to_owned(), message };
        // toml's error quotes the offending line, which could be a secret: say only where.
        let file: FileFormat = toml::from_str(&text).map_err(|e| {
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
        Ok(Keyring { scopes })
    }

    /// Reads the keyring, or an empty one if the file does not exist yet.
    pub fn load_or_empty(path: &Path) -> Result<Keyring, KeyringError> {
        if path.exists() {
            Self::load(path)
        } else {
            Ok(Keyring::default())
        }
    }

    /// Writes the keyring atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), KeyringError> {
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
        };
        let text =
            toml::to_string(&file).map_err(|e| KeyringError::File(format!("cannot encode keyring: {e}")))?;
        crate::certs::write(path, format!("{HEADER}{text}").as_bytes(), 0o600).map_err(KeyringError::File)
    }

    pub fn scope(&self, name: &str) -> Result<&ScopeKeys, KeyringError> {
        self.scopes.get(name).ok_or_else(|| KeyringError::NoScope(name.to_owned()))
    }

    pub fn scopes(&self) -> impl Iterator<Item = (&str, &ScopeKeys)> {
        self.scopes.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Creates a scope with a fresh version-1 key.
    pub fn new_scope(&mut self, name: &str, now: u64) -> Result<(), KeyringError> {
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
        let scope = self.scopes.get_mut(name).ok_or_else(|| KeyringError::NoScope(name.to_owned()))?;
        let version = scope.current().version + 1;
        scope.keys.push(ScopeKey::new(
            version,
            now,
            Secret::new(crate::secret::random_bytes::<32>().to_vec()),
        ));
        scope.migration_until = (window_secs > 0).then_some(now + window_secs);
        Ok(version)
    }

    /// Deletes one old key version. Retiring the previous key ends its migration window.
    pub fn retire(&mut self, name: &str, version: u32) -> Result<(), KeyringError> {
        let scope = self.scopes.get_mut(name).ok_or_else(|| KeyringError::NoScope(name.to_owned()))?;
        if scope.current().version == version {
            return Err(KeyringError::RetireCurrent { scope: name.to_owned(), version });
        }
        let before = scope.keys.len();
        scope.keys.retain(|k| k.version != version);
        if scope.keys.len() == before {
            return Err(KeyringError::NoVersion { scope: name.to_owned(), version });
        }
        if scope.keys.len() == 1 {
            scope.migration_until = None;
        }
        Ok(())
    }

    /// Deletes a scope and all its keys (crypto-shredding). Returns how many keys were destroyed.
    pub fn erase(&mut self, name: &str) -> Result<usize, KeyringError> {
        self.scopes
            .remove(name)
            .map(|scope| scope.keys.len())
            .ok_or_else(|| KeyringError::NoScope(name.to_owned()))
    }
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
mod tests {
    use super::*;

    #[test]
    fn round_trip_rotation_and_retirement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.toml");
        let mut ring = Keyring::default();
        ring.new_scope("school-a", 1_000).unwrap();
        ring.new_scope("municipality-x", 1_000).unwrap();
        assert!(matches!(ring.new_scope("school-a", 1_000), Err(KeyringError::ScopeExists(_))));
        assert!(matches!(ring.new_scope("School A", 1_000), Err(KeyringError::BadScopeName(_))));
        assert_eq!(ring.rotate("school-a", 2_000, 500).unwrap(), 2);
        ring.save(&path).unwrap();

        let loaded = Keyring::load(&path).unwrap();
        let scope = loaded.scope("school-a").unwrap();
        assert_eq!(scope.current().version, 2);
        assert_eq!(scope.previous(2_499).unwrap().version, 1);
        assert!(scope.previous(2_500).is_none(), "window closed");
        assert_eq!(
            scope.current().secret.expose(),
            ring.scope("school-a").unwrap().current().secret.expose()
        );

        let mut loaded = loaded;
        assert!(matches!(loaded.retire("school-a", 2), Err(KeyringError::RetireCurrent { .. })));
        loaded.retire("school-a", 1).unwrap();
        assert!(loaded.scope("school-a").unwrap().previous(2_000).is_none());
        assert_eq!(loaded.erase("municipality-x").unwrap(), 1);
        assert!(matches!(loaded.scope("municipality-x"), Err(KeyringError::NoScope(_))));
    }

    #[test]
    fn debug_and_errors_never_show_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.toml");
        let mut ring = Keyring::default();
        ring.new_scope("s", 1).unwrap();
        ring.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let secret = text
            .lines()
            .find_map(|l| l.strip_prefix("secret = \""))
            .unwrap()
            .trim_end_matches('"')
            .to_owned();
        assert!(!format!("{ring:?}").contains(&secret));
        // A corrupted file: the error must not quote the line with the secret.
        std::fs::write(&path, text.replace("secret = \"", "secret = \"zz")).unwrap();
        let err = Keyring::load(&path).unwrap_err().to_string();
        assert!(!err.contains(&secret[..16]), "{err}");
        std::fs::write(&path, text.replace("version = 1", "version = ")).unwrap();
        let err = Keyring::load(&path).unwrap_err().to_string();
        assert!(!err.contains(&secret[..16]), "{err}");
    }

    #[test]
    fn readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.toml");
        let mut ring = Keyring::default();
        ring.new_scope("s", 1).unwrap();
        ring.save(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Keyring::load(&path).unwrap_err().to_string().contains("chmod 600"));
    }
}
