//! A deployment of the retention store without a server: a config, a keyring made by
//! `nymgate keys new`, the store as the config names it (SQLite file or a real PostgreSQL), and
//! `nymgate retention …` run as the real binary, for the tests of what is on disk and in the
//! database (tests/retention_disk.rs, tests/retention_tamper.rs).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nymgate::retention::{RetentionStore, Values, WrapKeys};

pub struct Deployment {
    pub dir: tempfile::TempDir,
}

/// `nymgate ARGS` in `dir`: (success, stdout, stderr).
pub fn nymgate(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nymgate"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Deployment {
    /// Two tenants keeping teachers' names and emails, in the store `retention` names (a
    /// `[retention]` section); `school_a_extra` goes into school-a's `[[tenants]]` table.
    pub fn new(retention: &str, school_a_extra: &str) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let (ok, _, err) = nymgate(dir.path(), &["certs", "dev", "--out", "certs"]);
        assert!(ok, "{err}");
        let keep = "[tenants.retention]\nroles = [\"teacher\"]\nattributes = { name = [\"name\"], email = [\"email\"] }\n";
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ncert_file = \"certs/localhost.pem\"\nkey_file = \"certs/localhost-key.pem\"\n[pseudonyms]\nkeyring_file = \"keyring.toml\"\n[audit]\nfile = \"audit.log\"\n{retention}\n[[tenants]]\nid = \"school-a\"\nidp = \"oidc\"\nissuer = \"https://idp.school-a.example\"\n{school_a_extra}{keep}\n[[tenants]]\nid = \"school-b\"\nidp = \"oidc\"\nissuer = \"https://idp.school-b.example\"\n{keep}"
        );
        std::fs::write(dir.path().join("nymgate.toml"), config).unwrap();
        for scope in ["school-a", "school-b"] {
            let (ok, _, err) = nymgate(
                dir.path(),
                &["keys", "new", "--keyring", "keyring.toml", "--audit", "audit.log", "--scope", scope],
            );
            assert!(ok, "{err}");
        }
        Deployment { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The tenant's wrapping keys from the deployment's keyring, as nymgate derives them.
    pub fn keys(&self, tenant: &str) -> WrapKeys {
        let ring = nymgate::pseudonym::keyring::Keyring::load(&self.path("keyring.toml")).unwrap();
        WrapKeys::derive(tenant, ring.scope(tenant).unwrap(), tenant)
    }

    /// The store as the config names it: another handle on the same database, as a server's is.
    pub fn store(&self) -> RetentionStore {
        let config = nymgate::config::Config::load(&self.path("nymgate.toml")).unwrap();
        RetentionStore::from_config(config.retention.as_ref().unwrap()).unwrap()
    }

    /// `nymgate retention --config nymgate.toml ARGS`.
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        nymgate(self.dir.path(), &[&["retention", "--config", "nymgate.toml"][..], args].concat())
    }

    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// A teacher's values; `name` varies so that each write's ciphertext differs.
pub fn teacher(name: &str) -> Values {
    [
        ("email".to_owned(), vec![format!("{}@school-a.example", name.to_lowercase().replace(' ', "."))]),
        ("name".to_owned(), vec![name.to_owned()]),
    ]
    .into()
}

/// Whether `needle` occurs anywhere in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The pieces of a stored ciphertext that identify it (format 2: `[2][nonce][ciphertext][tag]`):
/// its nonce and its tag, each unique to one sealing. A page holding either still holds the
/// record (or the part of it that would decrypt).
pub fn fingerprints(sealed: &[u8]) -> [Vec<u8>; 2] {
    assert!(sealed.len() > 29 && sealed[0] == 2, "a format-2 ciphertext");
    [sealed[1..13].to_vec(), sealed[sealed.len() - 16..].to_vec()]
}

/// Every regular file under `root`, with its bytes.
pub fn files_under(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                found.push((path, bytes));
            }
        }
    }
    found
}
