//! `nymgate keys` and `nymgate pseudonym` end to end through the binary: the keyring's
//! permission check, the rotation window, retirement, erasure (crypto-shredding) and the audit
//! lines, which never carry the subject; then the keyring's writers (writers.rs: one at a time,
//! kill -9 at every step, symlinks, the server's offboarding) and backups (backup.rs).

mod backup;
#[path = "../common/mod.rs"]
mod common;
mod writers;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const SUBJECT: &str = "pupil-7f3a-subject@school-a.example";

pub fn nymgate(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nymgate"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn failed(out: &Output) -> String {
    assert!(!out.status.success(), "expected failure: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr.clone()).unwrap()
}

pub struct Setup {
    pub dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        ok(&nymgate(&["certs", "dev", "--out", "certs"], dir.path()));
        let config = "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ncert_file = \"certs/localhost.pem\"\nkey_file = \"certs/localhost-key.pem\"\n[pseudonyms]\nkeyring_file = \"keyring.toml\"\n[audit]\nfile = \"audit.log\"\n[[tenants]]\nid = \"school-a\"\nidp = \"oidc\"\nissuer = \"https://idp.school-a.example\"\n";
        std::fs::write(dir.path().join("nymgate.toml"), config).unwrap();
        Setup { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn keys(&self, args: &[&str]) -> Output {
        let mut all = vec!["keys"];
        all.extend_from_slice(&args[..1]);
        all.extend_from_slice(&["--keyring", "keyring.toml", "--audit", "audit.log"]);
        all.extend_from_slice(&args[1..]);
        nymgate(&all, self.path())
    }
    pub fn pseudonym(&self) -> Output {
        nymgate(
            &["pseudonym", "--config", "nymgate.toml", "--tenant", "school-a", "--subject", SUBJECT],
            self.path(),
        )
    }
    pub fn audit(&self) -> String {
        std::fs::read_to_string(self.path().join("audit.log")).unwrap_or_default()
    }
    pub fn keyring(&self) -> PathBuf {
        self.path().join("keyring.toml")
    }
    /// The keyring's text as it is on disk now (a reader needs no lock: writes are renames).
    pub fn text(&self) -> String {
        std::fs::read_to_string(self.keyring()).unwrap()
    }
}

/// The keys of `scope` in a keyring's text, read with a TOML parser of the test's own (not
/// nymgate's loader, which refuses a keyring holding an erased key).
fn scope_keys(text: &str, scope: &str) -> Vec<toml::Value> {
    let table: toml::Table = toml::from_str(text).unwrap();
    let scopes = table.get("scope").and_then(|s| s.as_array()).cloned().unwrap_or_default();
    scopes
        .iter()
        .filter(|s| s["name"].as_str() == Some(scope))
        .flat_map(|s| s["key"].as_array().unwrap().clone())
        .collect()
}

/// The secrets of `scope` in a keyring's text.
pub fn secrets_of(text: &str, scope: &str) -> Vec<String> {
    scope_keys(text, scope).iter().map(|k| k["secret"].as_str().unwrap().to_owned()).collect()
}

/// The key versions of `scope`, in the file's order.
pub fn versions_of(text: &str, scope: &str) -> Vec<i64> {
    scope_keys(text, scope).iter().map(|k| k["version"].as_integer().unwrap()).collect()
}

/// The names in `dir` besides the keyring, its lock, the config, certificates and the audit
/// log: what a writer left behind.
pub fn leftovers(dir: &Path) -> Vec<String> {
    let expected = ["keyring.toml", "keyring.toml.lock", "nymgate.toml", "certs", "audit.log"];
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !expected.contains(&n.as_str()))
        .collect()
}

#[test]
fn keyring_readable_by_others_is_refused() {
    let s = Setup::new();
    // `keys new` says what it made, as every other keys change does.
    let said = ok(&s.keys(&["new", "--scope", "school-a"]));
    assert!(said.contains("created scope school-a: key version 1"), "{said}");
    assert_eq!(std::fs::metadata(s.keyring()).unwrap().permissions().mode() & 0o777, 0o600);
    // Others may read it (a group-readable file of nymgate's own group is taken:
    // src/config/file_access.rs).
    std::fs::set_permissions(s.keyring(), std::fs::Permissions::from_mode(0o604)).unwrap();
    assert!(failed(&s.pseudonym()).contains("chmod 600"));
    assert!(failed(&s.keys(&["list"])).contains("chmod 600"));
    let check = nymgate(&["check", "--config", "nymgate.toml"], s.path());
    assert!(String::from_utf8_lossy(&check.stdout).contains("pseudonyms.keyring_file"));
}

#[test]
fn check_names_a_tenant_whose_scope_has_no_keys() {
    let s = Setup::new();
    ok(&s.keys(&["new", "--scope", "another-scope"]));
    let out = nymgate(&["check", "--config", "nymgate.toml"], s.path());
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("tenants[0].scope") && stdout.contains("nymgate keys new"), "{stdout}");
    ok(&s.keys(&["new", "--scope", "school-a"]));
    assert!(ok(&nymgate(&["check", "--config", "nymgate.toml"], s.path())).contains("valid"));
}

#[test]
fn rotation_window_then_retirement() {
    let s = Setup::new();
    ok(&s.keys(&["new", "--scope", "school-a"]));
    let v1 = ok(&s.pseudonym()).trim().to_owned();
    assert!(v1.starts_with("v1-") && v1.lines().count() == 1, "{v1}");
    assert_eq!(ok(&s.pseudonym()).trim(), v1, "deterministic across processes");

    ok(&s.keys(&["rotate", "--scope", "school-a", "--window", "1h"]));
    let during = ok(&s.pseudonym());
    let lines: Vec<&str> = during.lines().collect();
    assert!(lines[0].starts_with("v2-"), "{during}");
    assert_eq!(lines[1], format!("{v1} (previous key, during the migration window)"));
    let listed = ok(&s.keys(&["list"]));
    assert!(listed.contains("current") && listed.contains("previous (sub_prev until"), "{listed}");

    ok(&s.keys(&["retire", "--scope", "school-a", "--version", "1", "--no-retention-check"]));
    let after = ok(&s.pseudonym());
    assert_eq!(after.lines().collect::<Vec<_>>(), vec![lines[0]]);
    assert!(failed(&s.keys(&["retire", "--scope", "school-a", "--version", "2", "--no-retention-check"]))
        .contains("current key"));
}

#[test]
fn erase_needs_confirmation_then_shreds_the_scope() {
    let s = Setup::new();
    ok(&s.keys(&["new", "--scope", "school-a"]));
    let before = ok(&s.pseudonym());
    // No terminal, no --confirm: refused, keys intact.
    assert!(failed(&s.keys(&["erase", "--scope", "school-a"])).contains("not confirmed"));
    assert!(
        failed(&s.keys(&["erase", "--scope", "school-a", "--confirm", "school-b"])).contains("not confirmed")
    );
    assert_eq!(ok(&s.pseudonym()), before);

    let secrets = secrets_of(&s.text(), "school-a");
    let erased = ok(&s.keys(&["erase", "--scope", "school-a", "--confirm", "school-a"]));
    assert!(erased.contains("1 key(s) destroyed"), "{erased}");
    let keyring = s.text();
    assert!(secrets_of(&keyring, "school-a").is_empty() && !keyring.contains(&secrets[0]), "{keyring}");
    // What stays is the erasure record: the scope, the version and a fingerprint, no key.
    assert!(keyring.contains("[[erased]]") && keyring.contains("scope = \"school-a\""), "{keyring}");
    assert!(failed(&s.pseudonym()).contains("nymgate keys new"));
    // A new key for the same scope gives a different number: the old ones are gone for good.
    ok(&s.keys(&["new", "--scope", "school-a"]));
    assert_ne!(ok(&s.pseudonym()), before);
}

#[test]
fn audit_lines_record_admin_actions_without_the_subject() {
    let s = Setup::new();
    ok(&s.keys(&["new", "--scope", "school-a"]));
    let number = ok(&s.pseudonym()).trim().to_owned();
    // The subject can come on standard input, out of the shell history and process list.
    let mut child = Command::new(env!("CARGO_BIN_EXE_nymgate"))
        .args(["pseudonym", "--config", "nymgate.toml", "--tenant", "school-a", "--subject", "-"])
        .current_dir(s.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{SUBJECT}").unwrap();
    assert_eq!(ok(&child.wait_with_output().unwrap()).trim(), number);
    failed(&nymgate(
        &["pseudonym", "--config", "nymgate.toml", "--tenant", "nope", "--subject", SUBJECT],
        s.path(),
    ));

    let audit = s.audit();
    let lines: Vec<serde_json::Value> = audit.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let actions: Vec<(&str, &str)> =
        lines.iter().map(|l| (l["action"].as_str().unwrap(), l["outcome"].as_str().unwrap())).collect();
    assert_eq!(
        actions,
        vec![
            // Every keyring change writes `started` before it runs (src/main.rs).
            ("keys_new", "started"),
            ("keys_new", "ok"),
            ("pseudonym_lookup", "ok"),
            ("pseudonym_lookup", "ok"),
            ("pseudonym_lookup", "failed")
        ]
    );
    assert_eq!(lines[2]["account_number"], number.as_str());
    assert!(!audit.contains("pupil-7f3a") && !audit.contains("school-a.example"), "{audit}");
}

/// Deny by default: a retire that names neither the config whose retention store depends on the
/// keyring nor `--no-retention-check` is refused before anything is read or written.
#[test]
fn retire_without_a_config_or_an_explicit_no_check_is_refused() {
    let s = Setup::new();
    ok(&s.keys(&["new", "--scope", "school-a"]));
    ok(&s.keys(&["rotate", "--scope", "school-a", "--window", "0s"]));
    let before = std::fs::read(s.keyring()).unwrap();
    let said = failed(&s.keys(&["retire", "--scope", "school-a", "--version", "1"]));
    assert!(said.contains("--config") && said.contains("--no-retention-check"), "{said}");
    assert_eq!(std::fs::read(s.keyring()).unwrap(), before, "the keyring is unchanged");
    // A config without [retention] has nothing to ask: the retire goes through.
    let said = ok(&s.keys(&["retire", "--scope", "school-a", "--version", "1", "--config", "nymgate.toml"]));
    assert!(said.contains("retired version 1 of scope school-a"), "{said}");
}
