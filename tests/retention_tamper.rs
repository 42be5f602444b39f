//! Records bound to their meaning (issue 28, docs/RETENTION.md "How the values are protected"):
//! each way someone with database access could change a retained record (its restriction flag,
//! an older copy of it, an erased row put back, a row moved to another account or tenant, its
//! last-seen time) is refused by the store and by `nymgate retention` as tampered, counted, and
//! audited, with nothing of the record printed; and two replicas on one PostgreSQL creating a
//! tenant's first data key at once end with one key that reads both replicas' records.

mod common;

use common::retention::{teacher, Deployment};
use nymgate::retention::RetentionError;

const SQLITE: &str = "[retention]\nsqlite_file = \"retained.db\"\n";

/// A deployment whose school-a holds `v1-TAMP-0000-0000-0001` (restricted, seen at 100) and `v1-0THR-0000-0000-0002`, and
/// whose school-b holds `v1-BBBB-0000-0000-0003`, all written by the store; then `tamper` edits the file as
/// someone with database access would.
fn tampered(tamper: impl FnOnce(&Deployment, &rusqlite::Connection)) -> Deployment {
    let world = Deployment::new(SQLITE, "");
    let store = world.store();
    let keys = world.keys("school-a");
    store.remember("school-a", &keys, "v1-TAMP-0000-0000-0001", &teacher("Anna Lärare"), 100).unwrap();
    store.remember("school-a", &keys, "v1-0THR-0000-0000-0002", &teacher("Bo Kollega"), 100).unwrap();
    store
        .remember(
            "school-b",
            &world.keys("school-b"),
            "v1-BBBB-0000-0000-0003",
            &teacher("Cecilia Annan"),
            100,
        )
        .unwrap();
    assert!(store.restrict("school-a", &keys, "v1-TAMP-0000-0000-0001", true).unwrap());
    let db = rusqlite::Connection::open(world.path("retained.db")).unwrap();
    tamper(&world, &db);
    world
}

/// The store refuses the record as tampered and counts it; the shell says so, prints nothing of
/// it, and audits the refusal with reason `tampered`.
fn assert_refused_as_tampered(world: &Deployment, tenant: &str, account: &str) {
    let store = world.store();
    match store.lookup(tenant, &world.keys(tenant), account) {
        Err(RetentionError::Tampered) => {}
        other => panic!("{tenant}/{account} must be refused as tampered: {other:?}"),
    }
    assert_eq!(store.tampered_total(), 1, "counted");
    let (ok, out, err) = world.cli(&["show", "--tenant", tenant, "--account", account]);
    assert!(!ok && err.contains("tampered"), "{out}{err}");
    assert!(out.is_empty() && !err.contains("Lärare") && !err.contains("example"), "{out}{err}");
    let last = world.audit().into_iter().rev().find(|l| l["kind"] == "admin").unwrap();
    assert_eq!(
        (last["action"].as_str(), last["outcome"].as_str(), last["reason"].as_str()),
        (Some("retention_lookup"), Some("failed"), Some("tampered")),
        "{last}"
    );
    // Nor can a write carry the tampered state into a new, genuine-looking record.
    let (ok, _, err) = world.cli(&["lift", "--tenant", tenant, "--account", account]);
    assert!(!ok && err.contains("tampered"), "{err}");
    // The other records are untouched by the refusal.
    assert!(store.lookup("school-a", &world.keys("school-a"), "v1-0THR-0000-0000-0002").unwrap().is_some());
}

#[test]
fn a_flipped_restriction_flag_is_refused_as_tampered() {
    let world = tampered(|_, db| {
        db.execute_batch("UPDATE records SET restricted = 0 WHERE account_number = 'v1-TAMP-0000-0000-0001'")
            .unwrap();
    });
    assert_refused_as_tampered(&world, "school-a", "v1-TAMP-0000-0000-0001");
}

#[test]
fn an_older_row_restored_from_a_copy_is_refused_as_tampered() {
    let world = tampered(|world, db| {
        // A copy of the row (as a backup holds it), then a rectification, then the copy put back
        // over it: the rectification undone.
        db.execute_batch(
            "CREATE TABLE copy AS SELECT * FROM records WHERE account_number = 'v1-TAMP-0000-0000-0001'",
        )
        .unwrap();
        let store = world.store();
        let fixed = teacher("Anna Rättad");
        assert!(store
            .rectify("school-a", &world.keys("school-a"), "v1-TAMP-0000-0000-0001", &fixed)
            .unwrap());
        db.execute_batch(
            "DELETE FROM records WHERE account_number = 'v1-TAMP-0000-0000-0001'; INSERT INTO records SELECT * FROM copy;",
        )
        .unwrap();
    });
    assert_refused_as_tampered(&world, "school-a", "v1-TAMP-0000-0000-0001");
}

#[test]
fn an_erased_row_reinserted_is_refused_as_tampered() {
    let world = tampered(|world, db| {
        db.execute_batch(
            "CREATE TABLE copy AS SELECT * FROM records WHERE account_number = 'v1-TAMP-0000-0000-0001'",
        )
        .unwrap();
        assert!(world.store().erase("school-a", "v1-TAMP-0000-0000-0001").unwrap());
        db.execute_batch("INSERT INTO records SELECT * FROM copy").unwrap();
    });
    assert_refused_as_tampered(&world, "school-a", "v1-TAMP-0000-0000-0001");
}

#[test]
fn a_row_moved_to_another_account_is_refused_as_tampered() {
    let world = tampered(|_, db| {
        // Row and head together, so that only the binding can tell.
        db.execute_batch(
            "UPDATE records SET account_number = 'v1-M0VD-0000-0000-0004' WHERE account_number = 'v1-TAMP-0000-0000-0001';
             UPDATE record_heads SET account_number = 'v1-M0VD-0000-0000-0004' WHERE account_number = 'v1-TAMP-0000-0000-0001';",
        )
        .unwrap();
    });
    assert_refused_as_tampered(&world, "school-a", "v1-M0VD-0000-0000-0004");
}

#[test]
fn a_row_moved_to_another_tenant_is_refused_as_tampered() {
    let world = tampered(|_, db| {
        db.execute_batch(
            "UPDATE records SET tenant = 'school-b' WHERE account_number = 'v1-TAMP-0000-0000-0001';
             UPDATE record_heads SET tenant = 'school-b' WHERE account_number = 'v1-TAMP-0000-0000-0001';",
        )
        .unwrap();
    });
    assert_refused_as_tampered(&world, "school-b", "v1-TAMP-0000-0000-0001");
}

#[test]
fn a_changed_last_seen_time_is_refused_as_tampered() {
    // Moving the time forward would keep a record past its cull; it is bound like the rest.
    let world = tampered(|_, db| {
        db.execute_batch(
            "UPDATE records SET last_seen = 4102444800 WHERE account_number = 'v1-TAMP-0000-0000-0001'",
        )
        .unwrap();
    });
    assert_refused_as_tampered(&world, "school-a", "v1-TAMP-0000-0000-0001");
}

#[test]
fn a_tenant_past_its_offboarding_date_is_not_served_by_the_shell() {
    let world = Deployment::new(SQLITE, "offboard_on = \"2020-01-01\"\n");
    world
        .store()
        .remember("school-a", &world.keys("school-a"), "v1-AAAA-0000-0000-0005", &teacher("Anna Lärare"), 1)
        .unwrap();
    for action in ["show", "restrict", "lift"] {
        let (ok, out, err) =
            world.cli(&[action, "--tenant", "school-a", "--account", "v1-AAAA-0000-0000-0005"]);
        assert!(!ok && err.contains("past its offboarding date") && out.is_empty(), "{action}: {out}{err}");
    }
    // Erasure stays open: removing is what the date asks for.
    let (ok, _, err) = world.cli(&["erase", "--tenant", "school-a", "--account", "v1-AAAA-0000-0000-0005"]);
    assert!(ok, "{err}");
}

/// Wrapping keys from a fixed scope key, for tests that need no keyring file.
fn fixed_keys() -> nymgate::retention::WrapKeys {
    use nymgate::pseudonym::keyring::{ScopeKey, ScopeKeys};
    let scope = ScopeKeys {
        keys: vec![ScopeKey::new(1, 0, nymgate::secret::Secret::new(vec![7; 32]))],
        migration_until: None,
    };
    nymgate::retention::WrapKeys::derive("school-a", &scope, "school-a")
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    /// Any change of one stored column of a record (or of its head) is refused as tampered.
    #[test]
    fn tampering_any_column_of_a_record_is_refused(column in 0usize..7, at in 0usize..300, bit in 0u8..8) {
        let dir = tempfile::tempdir().unwrap();
        let store = nymgate::retention::RetentionStore::open(&dir.path().join("r.db")).unwrap();
        let keys = fixed_keys();
        store.remember("school-a", &keys, "v1-PPPP-0000-0000-0006", &teacher("Anna Lärare"), 100).unwrap();
        let db = rusqlite::Connection::open(dir.path().join("r.db")).unwrap();
        let sealed: Vec<u8> =
            db.query_row("SELECT ciphertext FROM records", [], |r| r.get(0)).unwrap();
        let mut flipped = sealed.clone();
        flipped[at % sealed.len()] ^= 1 << bit;
        let mut account = "v1-PPPP-0000-0000-0006".to_owned();
        match column {
            0 => { db.execute("UPDATE records SET ciphertext = ?1", [flipped]).unwrap(); }
            1 => { db.execute("UPDATE records SET nonce = ?1", [vec![0u8; 12]]).unwrap(); }
            2 => { db.execute("UPDATE records SET last_seen = last_seen + ?1", [1 + at as i64]).unwrap(); }
            3 => { db.execute_batch("UPDATE records SET restricted = 1").unwrap(); }
            4 => { db.execute_batch("UPDATE record_heads SET version = version + 1").unwrap(); }
            5 => { db.execute_batch("DELETE FROM record_heads").unwrap(); }
            _ => {
                db.execute_batch("UPDATE records SET account_number = 'v1-QQQQ-0000-0000-0007'; UPDATE record_heads SET account_number = 'v1-QQQQ-0000-0000-0007'").unwrap();
                account = "v1-QQQQ-0000-0000-0007".to_owned();
            }
        }
        proptest::prop_assert!(matches!(store.lookup("school-a", &keys, &account), Err(RetentionError::Tampered)));
    }
}

// ---- PostgreSQL ------------------------------------------------------------------------------

#[test]
fn tampered_postgres_rows_are_refused_like_sqlite_ones() {
    let server = common::postgres::PostgresServer::start();
    let secrets = tempfile::tempdir().unwrap();
    let world = Deployment::new(&server.retention_toml(secrets.path()), "");
    let (store, keys) = (world.store(), world.keys("school-a"));
    store.remember("school-a", &keys, "v1-TAMP-0000-0000-0001", &teacher("Anna Lärare"), 100).unwrap();
    store.remember("school-a", &keys, "v1-0THR-0000-0000-0002", &teacher("Bo Kollega"), 100).unwrap();
    assert!(store.restrict("school-a", &keys, "v1-TAMP-0000-0000-0001", true).unwrap());
    let mut client = server.client();
    client
        .batch_execute(
            "UPDATE nymgate_records SET restricted = FALSE WHERE account_number = 'v1-TAMP-0000-0000-0001'",
        )
        .unwrap();
    assert_refused_as_tampered(&world, "school-a", "v1-TAMP-0000-0000-0001");
    // An older copy of a row put back after a rectification.
    client
        .batch_execute("CREATE TABLE copy AS SELECT * FROM nymgate_records WHERE account_number = 'v1-0THR-0000-0000-0002'")
        .unwrap();
    assert!(store.rectify("school-a", &keys, "v1-0THR-0000-0000-0002", &teacher("Bo Rättad")).unwrap());
    client
        .batch_execute(
            "DELETE FROM nymgate_records WHERE account_number = 'v1-0THR-0000-0000-0002'; INSERT INTO nymgate_records SELECT * FROM copy;",
        )
        .unwrap();
    assert!(matches!(
        store.lookup("school-a", &keys, "v1-0THR-0000-0000-0002"),
        Err(RetentionError::Tampered)
    ));
}

#[test]
fn two_replicas_on_one_postgres_create_a_tenants_first_data_key_at_once() {
    let server = common::postgres::PostgresServer::start();
    let secrets = tempfile::tempdir().unwrap();
    let world = Deployment::new(&server.retention_toml(secrets.path()), "");
    // Two handles, each with its own connection: two replicas.
    let (one, two) = (world.store(), world.store());
    let keys = world.keys("school-a");
    let rounds = 40;
    // Tenant ids differ per round so that each round is some tenant's first record; the keys
    // derived for school-a serve them all (the store takes what it is given).
    let tenants: Vec<String> = (0..rounds).map(|i| format!("race-{i}")).collect();
    let barrier = std::sync::Barrier::new(2);
    let failed: Vec<String> = std::thread::scope(|scope| {
        let writers: Vec<_> = [(&one, "v1-ONE"), (&two, "v1-TWO")]
            .into_iter()
            .map(|(store, account)| {
                let (barrier, keys, tenants) = (&barrier, &keys, &tenants);
                scope.spawn(move || {
                    // Failures are collected, not raised, so that the other writer never waits
                    // at the barrier for a writer that stopped.
                    let mut failed = Vec::new();
                    for tenant in tenants {
                        barrier.wait();
                        if let Err(e) = store.remember(tenant, keys, account, &teacher("Anna Lärare"), 1) {
                            failed.push(format!("{account} at {tenant}: {e}"));
                        }
                    }
                    failed
                })
            })
            .collect();
        writers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    assert_eq!(failed, Vec::<String>::new());
    for tenant in &tenants {
        // Each replica reads the other's record: both were sealed under the one stored key.
        assert!(one.lookup(tenant, &keys, "v1-TWO").unwrap().is_some(), "{tenant}");
        assert!(two.lookup(tenant, &keys, "v1-ONE").unwrap().is_some(), "{tenant}");
    }
    let keys_stored: i64 =
        server.client().query_one("SELECT COUNT(*) FROM nymgate_data_keys", &[]).unwrap().get(0);
    assert_eq!(keys_stored, rounds as i64, "one data key per tenant");
}
