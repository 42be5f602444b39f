//! Unit tests of the store on real SQLite files (tests/retention*.rs run it end to end).

use super::*;
use crate::pseudonym::keyring::ScopeKey;
use crate::secret::Secret;

/// skola-a's and skola-b's wrapping keys for a scope with these key versions.
fn keys(versions: &[u32]) -> WrapKeys {
    let scope = ScopeKeys {
        keys: versions.iter().map(|&v| ScopeKey::new(v, 0, Secret::new(vec![v as u8; 32]))).collect(),
        migration_until: None,
    };
    WrapKeys::derive("skola-a", &scope, "skola-a")
}

fn values() -> Values {
    [
        ("email".to_owned(), vec!["anna.larare@skola.example".to_owned()]),
        ("name".to_owned(), vec!["Anna Lärare".to_owned()]),
    ]
    .into()
}

#[test]
fn records_round_trip_and_are_unreadable_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("retained.db");
    let store = RetentionStore::open(&path).unwrap();
    let keys = keys(&[1]);
    store.remember("skola-a", &keys, "v1-AAAA-BBBB", &values(), 100).unwrap();
    let record = store.lookup("skola-a", &keys, "v1-AAAA-BBBB").unwrap().unwrap();
    assert_eq!((record.values, record.last_seen, record.restricted), (values(), 100, false));
    assert_eq!(store.lookup("skola-a", &keys, "v1-CCCC").unwrap(), None);
    drop(store);
    // Neither the database nor its WAL holds a value in the clear.
    for name in ["retained.db", "retained.db-wal"] {
        let bytes = std::fs::read(dir.path().join(name)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("anna.larare") && !text.contains("Lärare"), "{name} holds a value");
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_record_moved_to_another_row_or_tenant_does_not_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let store = RetentionStore::open(&dir.path().join("r.db")).unwrap();
    let keys = keys(&[1]);
    store.remember("skola-a", &keys, "v1-A", &values(), 1).unwrap();
    store.remember("skola-a", &keys, "v1-B", &Values::new(), 1).unwrap();
    {
        let db = rusqlite::Connection::open(dir.path().join("r.db")).unwrap();
        db.execute_batch(
            "UPDATE records SET nonce = (SELECT nonce FROM records WHERE account_number = 'v1-A'),
             ciphertext = (SELECT ciphertext FROM records WHERE account_number = 'v1-A') WHERE account_number = 'v1-B'",
        )
        .unwrap();
    }
    assert!(matches!(store.lookup("skola-a", &keys, "v1-B"), Err(RetentionError::Tampered)));
    assert_eq!(store.tampered_total(), 1, "counted");
}

#[test]
fn erase_cull_and_offboard_remove_what_they_say() {
    let dir = tempfile::tempdir().unwrap();
    let store = RetentionStore::open(&dir.path().join("r.db")).unwrap();
    let keys = keys(&[1]);
    store.remember("skola-a", &keys, "v1-A", &values(), 100).unwrap();
    store.remember("skola-a", &keys, "v1-B", &values(), 200).unwrap();
    store.remember("skola-b", &keys, "v1-C", &values(), 300).unwrap();
    let changed: Values = [("email".to_owned(), vec!["ny@skola.example".to_owned()])].into();
    assert!(store.rectify("skola-a", &keys, "v1-A", &changed).unwrap());
    assert!(!store.rectify("skola-a", &keys, "v1-none", &changed).unwrap());
    assert!(store.restrict("skola-a", &keys, "v1-A", true).unwrap());
    let record = store.lookup("skola-a", &keys, "v1-A").unwrap().unwrap();
    assert_eq!((record.values, record.restricted, record.last_seen), (changed, true, 100));
    // A later login refreshes the values but keeps the restriction.
    store.remember("skola-a", &keys, "v1-A", &values(), 150).unwrap();
    assert!(store.lookup("skola-a", &keys, "v1-A").unwrap().unwrap().restricted);
    assert!(store.erase("skola-a", "v1-A").unwrap());
    assert!(!store.erase("skola-a", "v1-A").unwrap(), "erased once");
    assert_eq!(store.cull(250).unwrap(), 1, "v1-B, not seen since 200");
    assert_eq!(store.count("skola-b").unwrap(), 1);
    assert_eq!(store.offboard("skola-b", 1).unwrap(), 1);
    assert_eq!(store.count("skola-b").unwrap(), 0);
    assert!(store.is_offboarded("skola-b").unwrap() && !store.is_offboarded("skola-a").unwrap());
    // Nothing of an offboarded tenant is written again: no record, no data key.
    let write = store.remember("skola-b", &keys, "v1-D", &values(), 400);
    assert!(matches!(write, Err(RetentionError::Offboarded)), "{write:?}");
    assert_eq!(store.rewrap("skola-b", &keys).unwrap(), None);
    assert!(!store.rectify("skola-b", &keys, "v1-D", &values()).is_ok_and(|done| done));
    assert!(store.lookup("skola-b", &keys, "v1-D").unwrap().is_none());
    assert_eq!(store.transact(false, |db| db.data_key_row("skola-b")).unwrap(), None);
    assert_eq!(store.offboard("skola-b", 2).unwrap(), 0, "a second offboarding removes nothing");
}

/// Another replica's announcement, written as its own process would.
fn announce_other(store: &RetentionStore, name: &'static str, seen: u64, holdings: &'static str) {
    store.transact(false, move |db| db.announce(name, seen as i64, holdings)).unwrap();
}

fn wrapped_under(store: &RetentionStore, tenant: &'static str) -> u32 {
    store.transact(false, move |db| db.data_key_row(tenant)).unwrap().unwrap().0
}

/// A new SQLite store with skola-a's record v1-A under key version 1, and the time now.
fn store_with_one_record() -> (tempfile::TempDir, RetentionStore, u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = RetentionStore::open(&dir.path().join("r.db")).unwrap();
    store.remember("skola-a", &keys(&[1]), "v1-A", &values(), 1).unwrap();
    (dir, store, crate::clock::unix_now())
}

#[test]
fn a_data_key_stays_under_a_version_a_live_replica_still_lacks() {
    let (_dir, store, now) = store_with_one_record();
    // A rolling reload: this replica holds 1 and 2, another is live with 1 only.
    announce_other(&store, "other/1/aaaa", now, r#"{"skola-a":[1]}"#);
    assert_eq!(store.rewrap("skola-a", &keys(&[1, 2])).unwrap(), Some(1));
    store.remember("skola-a", &keys(&[1, 2]), "v1-B", &values(), 2).unwrap();
    assert_eq!(wrapped_under(&store, "skola-a"), 1, "the other replica can still read it");
    // A first data key is made under the common version too.
    store.remember("skola-b", &keys(&[1, 2]), "v1-C", &values(), 2).unwrap();
    assert_eq!(wrapped_under(&store, "skola-b"), 1);
    // The other replica's retire is refused while it has not loaded 2.
    let tenants = vec![("skola-a".to_owned(), keys(&[1, 2]))];
    let blocked = store.prepare_retire("skola-a", 1, tenants.clone(), now).unwrap().unwrap_err();
    assert!(blocked[0].contains("other/1/aaaa"), "{blocked:?}");
    // It reloads: now the key follows, and retire may go.
    announce_other(&store, "other/1/aaaa", now, r#"{"skola-a":[1,2]}"#);
    assert_eq!(store.prepare_retire("skola-a", 1, tenants, now).unwrap(), Ok(1));
    assert_eq!(wrapped_under(&store, "skola-a"), 2);
    assert_eq!(store.lookup("skola-a", &keys(&[2]), "v1-B").unwrap().unwrap().values, values());
    // A replica not heard of within LIVE_FOR holds nobody back.
    announce_other(&store, "gone/1/bbbb", now - replicas::LIVE_FOR - 1, r#"{"skola-a":[1]}"#);
    assert_eq!(store.rewrap("skola-b", &keys(&[1, 2])).unwrap(), Some(2));
}

#[test]
fn replica_rows_written_by_someone_else_hold_every_rewrap_back() {
    let (_dir, store, now) = store_with_one_record();
    // A row that does not parse: it may serve the scope and hold nothing we know of.
    announce_other(&store, "x\u{1b}[31m", now, "not json");
    assert_eq!(store.rewrap("skola-a", &keys(&[1, 2])).unwrap(), Some(1));
    let blocked = store.prepare_retire("skola-a", 1, vec![("skola-a".to_owned(), keys(&[1, 2]))], now);
    let blocked = blocked.unwrap().unwrap_err();
    assert!(blocked[0].contains("did not write") && !blocked[0].contains('\u{1b}'), "{blocked:?}");
    // More rows than MAX_REPLICAS: one more that holds nothing is assumed.
    let (_dir, store, _) = store_with_one_record();
    store
        .transact(false, move |db| {
            for i in 0..=replicas::MAX_REPLICAS {
                db.announce(&format!("r/{i}/x"), now as i64, r#"{"skola-a":[1,2]}"#)?;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(store.rewrap("skola-a", &keys(&[1, 2])).unwrap(), Some(1));
}

#[test]
fn erasing_the_scope_keys_makes_every_record_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let store = RetentionStore::open(&dir.path().join("r.db")).unwrap();
    store.remember("skola-a", &keys(&[1]), "v1-A", &values(), 1).unwrap();
    // After a rotation the data key still unwraps with the version it was wrapped under.
    assert!(store.lookup("skola-a", &keys(&[1, 2]), "v1-A").unwrap().is_some());
    // The scope's keys erased (offboarding): nothing decrypts any more.
    assert!(matches!(store.lookup("skola-a", &keys(&[3]), "v1-A"), Err(RetentionError::KeyGone(1))));
}

#[test]
fn a_rotation_rewraps_the_data_key_so_retiring_the_old_version_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = RetentionStore::open(&dir.path().join("r.db")).unwrap();
    store.remember("skola-a", &keys(&[1]), "v1-A", &values(), 1).unwrap();
    store.rewrap("skola-a", &keys(&[1, 2])).unwrap();
    // Version 1 retired: the record still reads under version 2.
    assert_eq!(store.lookup("skola-a", &keys(&[2]), "v1-A").unwrap().unwrap().values, values());
}

#[test]
fn a_store_serves_the_database_its_config_names_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let settings = |file: &str| -> crate::config::RetentionConfig {
        toml::from_str(&format!("sqlite_file = {:?}", dir.path().join(file).display().to_string())).unwrap()
    };
    let store = RetentionStore::from_config(&settings("a.db")).unwrap();
    assert!(store.serves(&settings("a.db")), "a reload with the same file keeps the store");
    assert!(!store.serves(&settings("b.db")), "a reload naming another file opens that one");
}

/// Writes skola-a's data key and one record `v1-OLD` as issue 11's format 1 did, straight into
/// the file: (the record's nonce, its ciphertext).
fn write_format_1(path: &std::path::Path, keys: &WrapKeys) -> (Vec<u8>, Vec<u8>) {
    let data_key = [42u8; 32];
    let (key_nonce, wrapped) =
        seal::seal_v1_for_tests(keys.get(1).unwrap(), "skola-a", None, data_key.to_vec());
    let plain = serde_json::to_vec(&values()).unwrap();
    let (nonce, sealed) = seal::seal_v1_for_tests(&data_key, "skola-a", Some("v1-OLD"), plain);
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute(
        "INSERT INTO data_keys (tenant, key_version, nonce, wrapped) VALUES ('skola-a', 1, ?1, ?2)",
        rusqlite::params![key_nonce, wrapped],
    )
    .unwrap();
    db.execute(
        "INSERT INTO records (tenant, account_number, nonce, ciphertext, last_seen, restricted) VALUES ('skola-a', 'v1-OLD', ?1, ?2, 7, 1)",
        rusqlite::params![nonce, sealed],
    )
    .unwrap();
    (nonce, sealed)
}

#[test]
fn format_1_records_still_read_and_move_to_format_2_at_the_first_rewrap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let store = RetentionStore::open(&path).unwrap();
    let keys = keys(&[1]);
    let (old_nonce, old_sealed) = write_format_1(&path, &keys);
    // Read as it is, before any migration.
    let record = store.lookup("skola-a", &keys, "v1-OLD").unwrap().unwrap();
    assert_eq!((record.values, record.last_seen, record.restricted), (values(), 7, true));
    // The rewrap at start (or any write) moves the tenant to format 2, restriction kept.
    store.rewrap("skola-a", &keys).unwrap();
    let db = rusqlite::Connection::open(&path).unwrap();
    let (nonce, sealed): (Vec<u8>, Vec<u8>) = db
        .query_row("SELECT nonce, ciphertext FROM records WHERE account_number = 'v1-OLD'", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(nonce.is_empty() && sealed[0] == seal::FORMAT_V2, "format 2 now");
    let key_nonce: Vec<u8> = db.query_row("SELECT nonce FROM data_keys", [], |r| r.get(0)).unwrap();
    assert!(key_nonce.is_empty(), "the data key is in format 2");
    let record = store.lookup("skola-a", &keys, "v1-OLD").unwrap().unwrap();
    assert_eq!((record.values, record.last_seen, record.restricted), (values(), 7, true));
    // The format-1 row restored from a backup is refused: the tenant is in format 2 now.
    db.execute(
        "UPDATE records SET nonce = ?1, ciphertext = ?2 WHERE account_number = 'v1-OLD'",
        rusqlite::params![old_nonce, old_sealed],
    )
    .unwrap();
    assert!(matches!(store.lookup("skola-a", &keys, "v1-OLD"), Err(RetentionError::Tampered)));
}

#[test]
fn a_login_does_not_launder_a_tampered_restriction_into_a_new_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let store = RetentionStore::open(&path).unwrap();
    let keys = keys(&[1]);
    store.remember("skola-a", &keys, "v1-A", &values(), 1).unwrap();
    assert!(store.restrict("skola-a", &keys, "v1-A", true).unwrap());
    rusqlite::Connection::open(&path).unwrap().execute_batch("UPDATE records SET restricted = 0").unwrap();
    assert!(matches!(store.remember("skola-a", &keys, "v1-A", &values(), 2), Err(RetentionError::Tampered)));
    assert!(matches!(store.restrict("skola-a", &keys, "v1-A", false), Err(RetentionError::Tampered)));
    assert_eq!(store.tampered_total(), 2);
}

#[test]
fn the_tenants_first_data_key_is_the_one_stored_first() {
    // Two handles on one file: the second one's first record finds the first one's key and
    // uses it (insert-if-absent, then read back), so each reads the other's record.
    let dir = tempfile::tempdir().unwrap();
    let (one, two) = (
        RetentionStore::open(&dir.path().join("r.db")).unwrap(),
        RetentionStore::open(&dir.path().join("r.db")).unwrap(),
    );
    let keys = keys(&[1]);
    one.remember("skola-a", &keys, "v1-A", &values(), 1).unwrap();
    two.remember("skola-a", &keys, "v1-B", &values(), 1).unwrap();
    assert!(one.lookup("skola-a", &keys, "v1-B").unwrap().is_some());
    assert!(two.lookup("skola-a", &keys, "v1-A").unwrap().is_some());
}
