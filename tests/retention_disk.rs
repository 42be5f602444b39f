//! What the retention store leaves on disk (issue 28, docs/RETENTION.md "What an erasure leaves,
//! and for how long"): an erased record's every ciphertext is gone from SQLite's file, WAL and
//! shared memory, and from every file of PostgreSQL's database folder; ciphertext lengths show a
//! bucket, not a value's length; and `nymgate retention` writes beside a store's own writes never
//! fail with "database is locked".

mod common;

use common::retention::{contains, files_under, fingerprints, teacher, Deployment};
use nymgate::retention::RetentionError;

const SQLITE: &str = "[retention]\nsqlite_file = \"retained.db\"\n";

/// The stored ciphertext of a record, read beside the store (SQLite).
fn sqlite_sealed(path: &std::path::Path, account: &str) -> Vec<u8> {
    let db = rusqlite::Connection::open(path).unwrap();
    db.query_row("SELECT ciphertext FROM records WHERE account_number = ?1", [account], |r| r.get(0)).unwrap()
}

/// Which of `fingerprints` occur in which of `files`: ("file", fingerprint index) pairs.
fn found_in(files: &[(std::path::PathBuf, Vec<u8>)], sealed: &[Vec<u8>]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, bytes) in files {
        for (i, one) in sealed.iter().enumerate() {
            if fingerprints(one).iter().any(|f| contains(bytes, f)) {
                found.push(format!("{} holds version {i}", path.display()));
            }
        }
    }
    found
}

fn sqlite_files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    ["retained.db", "retained.db-wal", "retained.db-shm"]
        .iter()
        .map(|name| (dir.join(name), std::fs::read(dir.join(name)).unwrap_or_default()))
        .collect()
}

#[test]
fn an_erased_record_leaves_nothing_in_the_raw_sqlite_files_wal_included() {
    let world = Deployment::new(SQLITE, "");
    let path = world.path("retained.db");
    let store = world.store();
    // A second handle, as `nymgate retention` beside a running server.
    let other = world.store();
    let keys = world.keys("school-a");
    for i in 0..40 {
        other
            .remember("school-a", &keys, &format!("v1-KEEP-{i}"), &teacher(&format!("Kollega {i}")), 1)
            .unwrap();
    }
    // The person's record in every version it had: logins, a rectification, a restriction.
    let mut versions = Vec::new();
    for (i, name) in ["Anna Lärare", "Anna Lärare-Berg", "Anna Berg"].iter().enumerate() {
        store.remember("school-a", &keys, "v1-ERASE", &teacher(name), 10 + i as u64).unwrap();
        versions.push(sqlite_sealed(&path, "v1-ERASE"));
    }
    assert!(store.rectify("school-a", &keys, "v1-ERASE", &teacher("Anna Rättad")).unwrap());
    versions.push(sqlite_sealed(&path, "v1-ERASE"));
    assert!(store.restrict("school-a", &keys, "v1-ERASE", true).unwrap());
    versions.push(sqlite_sealed(&path, "v1-ERASE"));
    // The scan can fail: before the erasure the current version is there.
    let before = found_in(&sqlite_files(world.dir.path()), &versions);
    assert!(before.iter().any(|f| f.ends_with("version 4")), "the scan sees a live record: {before:?}");

    assert!(store.erase("school-a", "v1-ERASE").unwrap());
    let files = sqlite_files(world.dir.path());
    assert_eq!(found_in(&files, &versions), Vec::<String>::new(), "an erased record's ciphertext survives");
    assert_eq!(files[1].1.len(), 0, "the WAL is emptied");
    for (name, bytes) in &files {
        assert!(!contains(bytes, b"v1-ERASE"), "{} still names the erased account", name.display());
        assert!(!contains(bytes, "Anna".as_bytes()), "{} holds a value in the clear", name.display());
    }
    // Everything else still reads, through either handle.
    assert!(other.lookup("school-a", &keys, "v1-KEEP-39").unwrap().is_some());
    assert_eq!(store.lookup("school-a", &keys, "v1-ERASE").unwrap(), None);
}

#[test]
fn a_culled_record_and_an_offboarded_tenant_leave_nothing_in_the_raw_sqlite_files() {
    let world = Deployment::new(SQLITE, "");
    let path = world.path("retained.db");
    let store = world.store();
    store.remember("school-a", &world.keys("school-a"), "v1-OLD", &teacher("Gammal Lärare"), 100).unwrap();
    store.remember("school-a", &world.keys("school-a"), "v1-NEW", &teacher("Ny Lärare"), 500).unwrap();
    store.remember("school-b", &world.keys("school-b"), "v1-B", &teacher("Annan Skola"), 500).unwrap();
    let (old, b) = (sqlite_sealed(&path, "v1-OLD"), sqlite_sealed(&path, "v1-B"));
    let wrapped: Vec<u8> = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("SELECT wrapped FROM data_keys WHERE tenant = 'school-b'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(store.cull(200).unwrap(), 1);
    assert_eq!(store.offboard("school-b", 1).unwrap(), 1);
    let files = sqlite_files(world.dir.path());
    assert_eq!(found_in(&files, &[old, b, wrapped]), Vec::<String>::new());
    assert!(store.lookup("school-a", &world.keys("school-a"), "v1-NEW").unwrap().is_some());
}

#[test]
fn an_erasure_blocked_by_a_reader_says_so_and_the_next_cull_forgets() {
    let world = Deployment::new(SQLITE, "");
    let path = world.path("retained.db");
    let store = world.store();
    let keys = world.keys("school-a");
    store.remember("school-a", &keys, "v1-KEEP", &teacher("Kollega"), 1).unwrap();
    store.remember("school-a", &keys, "v1-ERASE", &teacher("Anna Lärare"), 1).unwrap();
    let sealed = sqlite_sealed(&path, "v1-ERASE");
    // Another process holds a read transaction on an old snapshot for the whole erasure.
    let reader = rusqlite::Connection::open(&path).unwrap();
    reader.execute_batch("BEGIN; SELECT COUNT(*) FROM records;").unwrap();
    match store.erase("school-a", "v1-ERASE") {
        Err(RetentionError::NotForgotten(_)) => {}
        other => panic!("the erasure must say the WAL still holds it: {other:?}"),
    }
    assert_eq!(store.lookup("school-a", &keys, "v1-ERASE").unwrap(), None, "erased from the tables");
    reader.execute_batch("COMMIT").unwrap();
    // The next cull removes nothing itself, but forgets what the erasure could not.
    assert_eq!(store.cull(0).unwrap(), 0);
    assert_eq!(found_in(&sqlite_files(world.dir.path()), &[sealed]), Vec::<String>::new());
}

#[test]
fn an_erased_record_leaves_nothing_in_the_postgres_database_files() {
    let server = common::postgres::PostgresServer::start();
    let secrets = tempfile::tempdir().unwrap();
    let world = Deployment::new(&server.retention_toml(secrets.path()), "");
    let (store, keys) = (world.store(), world.keys("school-a"));
    let mut client = server.client();
    let sealed_of = |client: &mut postgres::Client, account: &str| -> Vec<u8> {
        client
            .query_one("SELECT ciphertext FROM nymgate_records WHERE account_number = $1", &[&account])
            .unwrap()
            .get(0)
    };
    for i in 0..40 {
        store
            .remember("school-a", &keys, &format!("v1-KEEP-{i}"), &teacher(&format!("Kollega {i}")), 1)
            .unwrap();
    }
    let mut versions = Vec::new();
    for (i, name) in ["Anna Lärare", "Anna Lärare-Berg", "Anna Berg"].iter().enumerate() {
        store.remember("school-a", &keys, "v1-ERASE", &teacher(name), 10 + i as u64).unwrap();
        versions.push(sealed_of(&mut client, "v1-ERASE"));
    }
    assert!(store.restrict("school-a", &keys, "v1-ERASE", true).unwrap());
    versions.push(sealed_of(&mut client, "v1-ERASE"));
    let oid: u32 =
        client.query_one("SELECT oid FROM pg_database WHERE datname = 'postgres'", &[]).unwrap().get(0);
    let base = server.data_dir().join("base").join(oid.to_string());
    // The scan can fail: with the pages on disk, the live version is there, and so are the dead
    // tuples of the earlier ones (a plain VACUUM would leave their bytes in the pages too).
    client.batch_execute("CHECKPOINT").unwrap();
    let before = found_in(&files_under(&base), &versions);
    assert!(before.iter().any(|f| f.ends_with("version 3")), "{before:?}");
    eprintln!("before the erasure, the database folder holds: {before:#?}");

    assert!(store.erase("school-a", "v1-ERASE").unwrap());
    client.batch_execute("CHECKPOINT").unwrap();
    assert_eq!(
        found_in(&files_under(&base), &versions),
        Vec::<String>::new(),
        "an erased record survives in the database's files"
    );
    // What stays is PostgreSQL's WAL (docs/RETENTION.md): measured here, not promised away.
    let wal = found_in(&files_under(&server.data_dir().join("pg_wal")), &versions);
    eprintln!("after the erasure, pg_wal still holds {} version(s): {wal:#?}", wal.len());
    assert!(store.lookup("school-a", &keys, "v1-KEEP-0").unwrap().is_some());
    assert_eq!(store.lookup("school-a", &keys, "v1-ERASE").unwrap(), None);
}

#[test]
fn ciphertext_length_does_not_reveal_value_length() {
    let world = Deployment::new(SQLITE, "");
    let (store, keys) = (world.store(), world.keys("school-a"));
    let path = world.path("retained.db");
    store.remember("school-a", &keys, "v1-SHORT", &teacher("Al"), 1).unwrap();
    store.remember("school-a", &keys, "v1-LONG", &teacher(&"Maximiliana ".repeat(5)), 1).unwrap();
    store.remember("school-a", &keys, "v1-EMPTY", &Default::default(), 1).unwrap();
    let lengths: Vec<usize> =
        ["v1-SHORT", "v1-LONG", "v1-EMPTY"].iter().map(|a| sqlite_sealed(&path, a).len()).collect();
    assert_eq!(lengths, vec![lengths[0]; 3], "one bucket, one length");
    // A value past the bucket moves to the next one, and no further.
    store.remember("school-a", &keys, "v1-HUGE", &teacher(&"Maximiliana ".repeat(12)), 1).unwrap();
    let huge = sqlite_sealed(&path, "v1-HUGE").len();
    assert_eq!(huge - lengths[0], 256, "{huge} vs {}", lengths[0]);
}

#[test]
fn shell_writes_beside_store_writes_never_fail_with_database_is_locked() {
    let world = Deployment::new(SQLITE, "");
    let (store, keys) = (world.store(), world.keys("school-a"));
    let rounds = 12;
    for i in 0..rounds {
        store
            .remember(
                "school-a",
                &keys,
                &format!("v1-CCCC-0000-0000-{i:04}"),
                &teacher(&format!("Lärare {i}")),
                1,
            )
            .unwrap();
    }
    let done = std::sync::atomic::AtomicBool::new(false);
    let (written, failures) = std::thread::scope(|scope| {
        // The server's side: logins writing records for as long as the shell works.
        let logins = scope.spawn(|| {
            let (mut written, mut failed) = (0u64, Vec::new());
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let account = format!("v1-S-{}", written % 50);
                match store.remember("school-a", &keys, &account, &teacher("Inloggad"), written) {
                    Ok(()) => written += 1,
                    Err(error) => failed.push(format!("a login's write: {error}")),
                }
                // A login's write is one step of a login, not a loop of writes: other steps
                // (the IdP's answer, the token) come between two of them. A writer with no pause
                // at all would hold the lock nearly always (docs/RETENTION.md).
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            (written, failed)
        });
        let mut failures = Vec::new();
        for i in 0..rounds {
            let account = format!("v1-CCCC-0000-0000-{i:04}");
            let who = ["--tenant", "school-a", "--account", account.as_str()];
            let values = r#"{"name": ["Rättad"]}"#;
            for args in [
                &[&["rectify"][..], &who, &["--values", values]].concat()[..],
                &[&["restrict"][..], &who].concat(),
                &[&["lift"][..], &who].concat(),
                &[&["erase"][..], &who].concat(),
            ] {
                let (ok, out, err) = world.cli(args);
                if !ok {
                    failures.push(format!("{args:?}: {out}{err}"));
                }
            }
        }
        // Stopped whatever happened above, so that the scope ends and the failures are shown.
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let (written, mut failed) = logins.join().unwrap();
        failures.append(&mut failed);
        (written, failures)
    });
    assert_eq!(failures, Vec::<String>::new(), "writes failed beside each other");
    assert!(written > 0, "the logins ran");
    assert_eq!(store.count("school-a").unwrap(), (written.min(50)) as usize);
}
