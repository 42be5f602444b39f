//! Unit tests of [`offboard_tenant`] on a real SQLite store and a real keyring file, the one
//! erasure both the shell and the admin API run (tests/retention*.rs drive both doors end to end).

use std::path::Path;

use super::*;
use crate::pseudonym::keyring::Keyring;
use crate::retention::{Values, WrapKeys};

/// A store holding one record of skola-a, and a keyring file with skola-a's scope.
fn world(dir: &Path) -> (RetentionStore, std::path::PathBuf) {
    let ring_path = dir.join("keyring.toml");
    let mut ring = Keyring::default();
    ring.new_scope("skola-a", 1).unwrap();
    ring.save(&ring_path).unwrap();
    let keys = WrapKeys::derive("skola-a", ring.scope("skola-a").unwrap(), "skola-a");
    let store = RetentionStore::open(&dir.join("r.db")).unwrap();
    let values: Values = [("name".to_owned(), vec!["Anna Lärare".to_owned()])].into();
    store.remember("skola-a", &keys, "v1-A", &values, 10).unwrap();
    (store, ring_path)
}

#[test]
fn offboarding_an_unshared_scope_erases_records_data_key_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ring_path) = world(dir.path());
    let report = offboard_tenant(&store, &ring_path, "skola-a", "skola-a", &[], 100).unwrap();
    assert_eq!((report.retained_records_removed, report.scope_keys_destroyed), (1, 1), "{report:?}");
    assert_eq!((report.data_key_removed, report.scope_keys_not_erased.as_deref()), (true, None));
    assert!(store.is_offboarded("skola-a").unwrap());
    assert_eq!(store.count("skola-a").unwrap(), 0);
    let ring = Keyring::load(&ring_path).unwrap();
    assert!(ring.scope("skola-a").is_err(), "the scope's keys are gone");
    let erased: Vec<(&str, u64)> = ring.erased().iter().map(|e| (e.scope.as_str(), e.erased)).collect();
    assert_eq!(erased, [("skola-a", 100)], "recorded as erased as of the injected now");
}

#[test]
fn offboarding_again_after_an_interruption_finishes_without_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ring_path) = world(dir.path());
    offboard_tenant(&store, &ring_path, "skola-a", "skola-a", &[], 100).unwrap();
    let again = offboard_tenant(&store, &ring_path, "skola-a", "skola-a", &[], 200).unwrap();
    assert_eq!((again.retained_records_removed, again.scope_keys_destroyed), (0, 0), "{again:?}");
    assert_eq!(again.scope_keys_not_erased, None);
}

#[test]
fn a_scope_another_tenant_shares_keeps_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ring_path) = world(dir.path());
    let sharing = ["skola-b".to_owned()];
    let report = offboard_tenant(&store, &ring_path, "skola-a", "skola-a", &sharing, 100).unwrap();
    assert_eq!((report.retained_records_removed, report.scope_keys_destroyed), (1, 0), "{report:?}");
    assert_eq!(report.scope_kept_for, sharing);
    assert!(Keyring::load(&ring_path).unwrap().scope("skola-a").is_ok(), "skola-b still needs them");
}

#[test]
fn a_keyring_that_cannot_be_written_here_is_reported_and_the_records_still_go() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = world(dir.path());
    // A keyring under a path no one can write (its parent is a file), as a read-only Secret is.
    let blocked = dir.path().join("r.db").join("keyring.toml");
    let report = offboard_tenant(&store, &blocked, "skola-a", "skola-a", &[], 100).unwrap();
    assert_eq!((report.retained_records_removed, report.scope_keys_destroyed), (1, 0), "{report:?}");
    let said = report.scope_keys_not_erased.as_deref().unwrap_or_default();
    assert!(said.contains("nymgate keys erase --scope skola-a"), "{said}");
    assert!(store.is_offboarded("skola-a").unwrap());
}

#[test]
fn the_report_answers_the_documented_keys_and_no_others() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ring_path) = world(dir.path());
    let json = offboard_tenant(&store, &ring_path, "skola-a", "skola-a", &[], 100).unwrap().to_json();
    let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
    // docs/RETENTION.md and docs/DEPLOY.md name these; both doors answer them (in the map's order).
    let documented = [
        "data_key_removed",
        "next",
        "pseudonym_scope",
        "retained_records_removed",
        "scope_kept_for",
        "scope_keys_destroyed",
        "scope_keys_not_erased",
        "tenant",
    ];
    assert_eq!(keys, documented);
    assert_eq!(json["scope_keys_not_erased"], serde_json::Value::Null);
}

proptest::proptest! {
    // Each case opens a SQLite file and writes a keyring: a few cases cover the class.
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]

    /// Whoever shares the scope, its keys go exactly when no one does, the report names the
    /// sharers, and the records go either way.
    #[test]
    fn the_scope_keys_go_exactly_when_no_other_tenant_shares_them(
        sharing in proptest::collection::vec("skola-[b-z]", 0..4)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (store, ring_path) = world(dir.path());
        let report = offboard_tenant(&store, &ring_path, "skola-a", "skola-a", &sharing, 100).unwrap();
        let kept = Keyring::load(&ring_path).unwrap().scope("skola-a").is_ok();
        proptest::prop_assert_eq!(kept, !sharing.is_empty());
        proptest::prop_assert_eq!(report.scope_keys_destroyed, usize::from(sharing.is_empty()));
        proptest::prop_assert_eq!(&report.scope_kept_for, &sharing);
        proptest::prop_assert_eq!(report.retained_records_removed, 1);
    }
}
