//! The retention store (issue 11, docs/RETENTION.md), at login: a tenant that keeps values for
//! a role gets an encrypted record per person in the SQLite file, keyed by the account number;
//! other roles and tenants get none; the platform's token never carries the values; the file
//! holds none of them in the clear; a store that can't write fails the login closed.

mod common;

use common::login::{alice_sub, Options, World, ALICE};
use nymgate::retention::{RetentionStore, WrapKeys};

fn alice(kind: &str) -> &'static str {
    ALICE.iter().find(|(k, _)| *k == kind).unwrap().1
}

const STORE: &str = "[retention]\nsqlite_file = \"retained.db\"\n";
const KEEP_STUDENTS: &str =
    "[tenants.retention]\nroles = [\"student\"]\nattributes = { email = [\"email\"], name = [\"name\"] }\n";
const KEEP_TEACHERS: &str =
    "[tenants.retention]\nroles = [\"teacher\"]\nattributes = { email = [\"email\"] }\n";

/// The record of `account_number` at school-a, read with the world's keyring.
fn record(world: &World, account_number: &str) -> Option<nymgate::retention::Record> {
    let ring = nymgate::pseudonym::keyring::Keyring::load(&world.dir.path().join("keyring.toml")).unwrap();
    let keys = WrapKeys::derive(ring.scope("school-a").unwrap(), "school-a");
    let store = RetentionStore::open(&world.dir.path().join("retained.db")).unwrap();
    store.lookup("school-a", &keys, account_number).unwrap()
}

#[test]
fn records_are_written_at_login_for_the_configured_roles_only_and_encrypted() {
    let world = World::start(Options { tenant_a: KEEP_STUDENTS, extra: STORE, ..Options::default() });
    let login = world.platform_login(serde_json::json!({}));
    let account = login["id_token_claims"]["sub"].as_str().unwrap().to_owned();
    let kept = record(&world, &account).expect("alice's record");
    assert_eq!(kept.values["email"], [alice("email")]);
    assert_eq!(kept.values["name"], [alice("name")]);
    assert!(!kept.restricted);
    // Only the named attributes: not the subject, not the family name.
    assert_eq!(kept.values.len(), 2);
    // The file holds no value in the clear.
    for name in ["retained.db", "retained.db-wal"] {
        let bytes = std::fs::read(world.dir.path().join(name)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).to_lowercase();
        for (kind, value) in ALICE {
            assert!(!text.contains(&value.to_lowercase()), "alice's {kind} is readable in {name}");
        }
    }
    // The platform's token and everything else stays free of them.
    world.assert_no_personal_values(&[("platform's received bytes", &login["received"].to_string())]);
    assert!(alice_sub() != account);
}

#[test]
fn a_role_the_tenant_does_not_keep_leaves_no_record() {
    let world = World::start(Options { tenant_a: KEEP_TEACHERS, extra: STORE, ..Options::default() });
    let login = world.platform_login(serde_json::json!({}));
    let account = login["id_token_claims"]["sub"].as_str().unwrap();
    assert_eq!(record(&world, account), None, "alice is a student; only teachers are kept");
}

#[test]
fn a_store_that_cannot_write_fails_the_login_closed() {
    let world = World::start(Options { tenant_a: KEEP_STUDENTS, extra: STORE, ..Options::default() });
    // Another process breaks the database under nymgate.
    let db = rusqlite::Connection::open(world.dir.path().join("retained.db")).unwrap();
    db.execute_batch("DROP TABLE records;").unwrap();
    drop(db);
    let flow = world.browse(&world.url("/nymgate/login/school-a"), Some(&world.url("/nymgate/callback")));
    let status = world.get_with_jar(flow["url"].as_str().unwrap(), &flow["jar"]);
    assert_eq!(status, 503);
    let audit = world.last_login();
    assert_eq!(
        (audit["outcome"].as_str(), audit["reason"].as_str()),
        (Some("failed"), Some("retention_unavailable")),
        "{audit}"
    );
    world.assert_no_personal_values(&[]);
}
