//! `nymgate keys backup` and `keys restore` (src/pseudonym/keyring_backup.rs, deploy/README.md
//! "Backing up the keyring").

use std::os::unix::fs::PermissionsExt;

use super::{failed, ok, secrets_of, Setup};

/// A setup with two scopes, one rotated, and a backup of it in `backup.keys`.
fn backed_up() -> Setup {
    let s = Setup::new();
    ok(&s.keys(&["new", "--scope", "school-a"]));
    ok(&s.keys(&["rotate", "--scope", "school-a"]));
    ok(&s.keys(&["new", "--scope", "gone"]));
    let out = ok(&s.keys(&["backup", "--out", "backup.keys"]));
    assert!(out.contains("3 key(s)"), "{out}");
    s
}

#[test]
fn backup_and_restore_round_trip() {
    let s = backed_up();
    let backup = s.path().join("backup.keys");
    assert_eq!(std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o600);
    let before = s.text();
    let number = ok(&s.pseudonym());
    // The keyring is lost; the backup brings every key back, and the same account numbers.
    std::fs::remove_file(s.keyring()).unwrap();
    let checked = ok(&s.keys(&["restore", "--from", "backup.keys", "--check"]));
    assert!(
        checked.contains("sound") && checked.contains("would add: gone v1, school-a v1, school-a v2"),
        "{checked}"
    );
    assert!(!s.keyring().exists(), "--check changes nothing");
    let restored = ok(&s.keys(&["restore", "--from", "backup.keys"]));
    assert!(restored.contains("added: gone v1, school-a v1, school-a v2"), "{restored}");
    assert_eq!(s.text(), before);
    assert_eq!(ok(&s.pseudonym()), number);
    // Restoring again over the live keyring changes nothing and loses nothing.
    ok(&s.keys(&["rotate", "--scope", "school-a"]));
    let after_rotation = s.text();
    let again = ok(&s.keys(&["restore", "--from", "backup.keys"]));
    assert!(again.contains("added: \n"), "{again}");
    assert_eq!(s.text(), after_rotation, "the key made after the backup stays");
    let actions: Vec<String> = s
        .audit()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["action"].as_str().unwrap().to_owned())
        .collect();
    assert!(["keys_backup", "keys_backup_check", "keys_restore"]
        .iter()
        .all(|a| actions.contains(&a.to_string())));
}

#[test]
fn a_tampered_backup_is_refused() {
    let s = backed_up();
    let backup = s.path().join("backup.keys");
    let good = std::fs::read_to_string(&backup).unwrap();
    std::fs::remove_file(s.keyring()).unwrap();
    // A key's digit changed, a line dropped, a copy cut short: each refused, nothing written.
    let secret = secrets_of(&good, "school-a")[0].clone();
    let flipped = format!("{}{}", if secret.starts_with('0') { "1" } else { "0" }, &secret[1..]);
    let dropped: String =
        good.lines().filter(|l| !l.starts_with("created")).map(|l| format!("{l}\n")).collect();
    for tampered in [good.replace(&secret, &flipped), dropped, good[..good.len() - 10].to_owned()] {
        std::fs::write(&backup, &tampered).unwrap();
        for args in
            [&["restore", "--from", "backup.keys", "--check"][..], &["restore", "--from", "backup.keys"]]
        {
            let err = failed(&s.keys(args));
            assert!(err.contains("not a sound keyring backup"), "{err}");
            assert!(!err.contains(&secret[..16]), "the error quotes a key: {err}");
        }
        assert!(!s.keyring().exists(), "nothing restored from a tampered backup");
    }
    // A backup others can read is refused as the keyring is.
    std::fs::write(&backup, &good).unwrap();
    std::fs::set_permissions(&backup, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(failed(&s.keys(&["restore", "--from", "backup.keys"])).contains("chmod 600"));
}

#[test]
fn a_restore_never_brings_back_a_key_erased_after_the_backup() {
    let s = backed_up();
    let erased = secrets_of(&s.text(), "gone");
    let old = secrets_of(&s.text(), "school-a")[0].clone();
    ok(&s.keys(&["erase", "--scope", "gone", "--confirm", "gone"]));
    ok(&s.keys(&["retire", "--scope", "school-a", "--version", "1", "--no-retention-check"]));
    let restored = ok(&s.keys(&["restore", "--from", "backup.keys"]));
    assert!(
        restored.contains("left out, deleted since (erasure records): gone v1, school-a v1"),
        "{restored}"
    );
    let text = s.text();
    assert!(!text.contains(&erased[0]) && !text.contains(&old), "a deleted key is back:\n{text}");
    // A scope erased and made again: the backup's old key stays out, the new one stays in.
    ok(&s.keys(&["new", "--scope", "gone"]));
    let fresh = secrets_of(&s.text(), "gone");
    ok(&s.keys(&["restore", "--from", "backup.keys"]));
    assert_eq!(secrets_of(&s.text(), "gone"), fresh);
    // A keyring spliced with the old key by hand is refused at load, by every reader.
    let spliced = s.text().replace(&fresh[0], &erased[0]);
    std::fs::write(s.keyring(), spliced).unwrap();
    assert!(failed(&s.keys(&["list"])).contains("holds a key deleted at"));
}

#[test]
fn a_restore_keeps_an_unreadable_keyring() {
    let s = backed_up();
    std::fs::write(s.keyring(), "damaged").unwrap();
    let err = failed(&s.keys(&["restore", "--from", "backup.keys"]));
    assert!(err.contains("Move it aside"), "{err}");
    assert_eq!(s.text(), "damaged", "the damaged keyring is kept for the operator");
    std::fs::rename(s.keyring(), s.path().join("keyring.damaged")).unwrap();
    ok(&s.keys(&["restore", "--from", "backup.keys"]));
    assert_eq!(secrets_of(&s.text(), "school-a").len(), 2);
}
