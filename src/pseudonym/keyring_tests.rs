//! The keyring's format and operations; the writer is tested in keyring_write.rs and
//! tests/keys_cli.

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
    assert_eq!(scope.current().secret.expose(), ring.scope("school-a").unwrap().current().secret.expose());

    let mut loaded = loaded;
    assert!(matches!(loaded.retire("school-a", 2, 3_000), Err(KeyringError::RetireCurrent { .. })));
    loaded.retire("school-a", 1, 3_000).unwrap();
    assert!(loaded.scope("school-a").unwrap().previous(2_000).is_none());
    assert_eq!(loaded.erase("municipality-x", 3_000).unwrap(), 1);
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
    let secret =
        text.lines().find_map(|l| l.strip_prefix("secret = \"")).unwrap().trim_end_matches('"').to_owned();
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

/// Any keyring nymgate can make: scope names by the name rule, versions unique from 1, times
/// within TOML's integers, with or without a window, with erasure records.
fn any_keyring() -> impl proptest::strategy::Strategy<Value = Keyring> {
    use proptest::prelude::*;
    let time = 0..=i64::MAX as u64;
    let key = (any::<[u8; 32]>(), time.clone());
    let scope = (
        "[a-z0-9][a-z0-9_-]{0,20}",
        proptest::collection::btree_map(1..=u32::MAX, key, 1..5),
        proptest::option::of(time.clone()),
    );
    let erased = ("[a-z0-9][a-z0-9_-]{0,20}", 1..=u32::MAX, time, any::<[u8; 32]>());
    (proptest::collection::vec(scope, 0..5), proptest::collection::vec(erased, 0..5)).prop_map(
        |(scopes, erased)| {
            let mut ring = Keyring::default();
            for (name, keys, migration_until) in scopes {
                let keys = keys
                    .into_iter()
                    .map(|(version, (secret, created))| {
                        ScopeKey::new(version, created, Secret::new(secret.to_vec()))
                    })
                    .collect();
                ring.scopes.insert(name, ScopeKeys { keys, migration_until });
            }
            for (scope, version, erased, print) in erased {
                let fingerprint = crate::secret::to_hex(&print);
                if !ring.erased.iter().any(|e| e.fingerprint == fingerprint) {
                    ring.erased.push(Erased { scope, version, erased, fingerprint });
                }
            }
            ring
        },
    )
}

proptest::proptest! {
    /// The file format round trip: what is written parses to the same keyring (every key, time,
    /// window and erasure record), and writing that again gives the same bytes.
    #[test]
    fn the_keyring_file_format_round_trips(ring in any_keyring()) {
        let text = ring.to_text();
        let back = Keyring::parse(&text, Path::new("k")).unwrap();
        proptest::prop_assert_eq!(back.to_text(), text);
        proptest::prop_assert_eq!(back.scopes.len(), ring.scopes.len());
        for ((name, a), (other, b)) in ring.scopes.iter().zip(back.scopes.iter()) {
            proptest::prop_assert_eq!(name, other);
            proptest::prop_assert_eq!(a.migration_until, b.migration_until);
            for (x, y) in a.keys.iter().zip(&b.keys) {
                proptest::prop_assert_eq!((x.version, x.created), (y.version, y.created));
                proptest::prop_assert!(x.secret.ct_eq(y.secret.expose()));
            }
        }
        proptest::prop_assert_eq!(&back.erased, &ring.erased);
    }

    /// Any damage to a keyring's text is an error that names no key, never a panic.
    #[test]
    fn a_damaged_keyring_is_an_error_without_its_keys(ring in any_keyring(), at in 0usize..4096, byte in proptest::prelude::any::<u8>()) {
        let mut bytes = ring.to_text().into_bytes();
        let at = at % bytes.len();
        bytes[at] = byte;
        let Ok(text) = String::from_utf8(bytes) else { return Ok(()) };
        if let Err(error) = Keyring::parse(&text, Path::new("k")) {
            let message = error.to_string();
            for (_, scope) in ring.scopes() {
                for key in &scope.keys {
                    let hex = crate::secret::to_hex(key.secret.expose());
                    proptest::prop_assert!(!message.contains(&hex[..16]), "{}", message);
                }
            }
        }
    }
}

#[test]
fn erasure_records_outlive_the_keys_and_refuse_their_return() {
    let mut ring = Keyring::default();
    ring.new_scope("s", 1).unwrap();
    ring.rotate("s", 2, 0).unwrap();
    let old = fingerprint(&ring.scope("s").unwrap().keys[0].secret);
    let text_with_old = ring.to_text();
    ring.retire("s", 1, 3).unwrap();
    assert_eq!(ring.erased()[0].fingerprint, old);
    assert_eq!((ring.erased()[0].version, ring.erased()[0].erased), (1, 3));
    ring.erase("s", 4).unwrap();
    assert_eq!(ring.erased().len(), 2);
    // The old key spliced back beside its record: refused.
    let records = ring.to_text();
    let records = &records[records.find("[[erased]]").unwrap()..];
    let spliced = format!("{text_with_old}\n{records}");
    let error = Keyring::parse(&spliced, Path::new("k")).unwrap_err().to_string();
    assert!(error.contains("holds a key deleted at"), "{error}");
}
