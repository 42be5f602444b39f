//! Replicas sharing one PostgreSQL retention database (issue 28, docs/RETENTION.md, "Replicas
//! and key versions" and "Offboarding a school"), with real nymgate processes: an offboarding on
//! one replica ends the school on every replica at once and nothing of it is written afterwards;
//! a rolling reload after a key rotation never leaves a replica with a data key it can't unwrap,
//! and `keys retire` waits for it.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::login::{Options, Replica, World};
use common::postgres::PostgresServer;
use nymgate::retention::{RetentionError, RetentionStore, Values, WrapKeys};

const KEEP_STUDENTS: &str =
    "[tenants.retention]\nroles = [\"student\"]\nattributes = { email = [\"email\"] }\nserve = [\"email\"]\n";
const DPO_TOKEN: &str = "dpo-token-for-the-replica-tests-0123456789";

/// A world on PostgreSQL with the admin API, and a second replica; with `own_keyring`, the
/// replica reads a copy of the keyring (`keyring-b.toml`), as a Kubernetes Secret gives each pod
/// its own.
fn world_on_postgres(server: &PostgresServer, own_keyring: bool) -> (World, Replica, tempfile::TempDir) {
    std::env::set_var("NYMGATE_TEST_REPLICAS_DPO", DPO_TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let retention: &'static str = Box::leak(
        format!(
            "{}[retention.api]\ndpo_token = {{ env = \"NYMGATE_TEST_REPLICAS_DPO\" }}\n",
            server.retention_toml(dir.path())
        )
        .into_boxed_str(),
    );
    let world = World::start(Options { tenant_a: KEEP_STUDENTS, extra: retention, ..Options::default() });
    if own_keyring {
        let dir = world.dir.path();
        std::fs::copy(dir.join("keyring.toml"), dir.join("keyring-b.toml")).unwrap();
    }
    let replica = world.start_replica_with(|config| match own_keyring {
        true => config.replace("keyring_file = \"keyring.toml\"", "keyring_file = \"keyring-b.toml\""),
        false => config,
    });
    // The password file's folder lives as long as the world.
    (world, replica, dir)
}

/// A browser login at school-a that the IdP sends back to `on` (a replica, or the world's own
/// nymgate): the callback's status, and the audit line it wrote.
fn login_on(world: &World, on: Option<&Replica>) -> (u16, serde_json::Value) {
    let callback = world.url("/nymgate/callback");
    let flow = world.browse(&world.url("/nymgate/login/school-a"), Some(&callback));
    let url = flow["url"].as_str().unwrap();
    let url = on.map_or(url.to_owned(), |r| r.moved(world, url));
    let status = world.get_with_jar(&url, &flow["jar"]);
    let audit = match on {
        Some(_) => world.file("audit-b.log"),
        None => world.file("audit.log"),
    };
    let last = audit
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["kind"] == "login")
        .unwrap();
    (status, last)
}

/// An admin API call on `admin_port` with the DPO token: (status, body).
fn dpo(
    world: &World,
    admin_port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u64, serde_json::Value) {
    let body = body.map(|b| format!(", body: {b:?}")).unwrap_or_default();
    let out = world.node_eval(&format!(
        "const r = await fetch('http://127.0.0.1:{admin_port}/admin/v1/retention/{path}', {{method: {method:?}, headers: {{authorization: 'Bearer {DPO_TOKEN}', 'content-type': 'application/json'}}{body}}}); console.log(JSON.stringify({{status: r.status, body: await r.json()}}));"
    ));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("{out}"));
    (v["status"].as_u64().unwrap(), v["body"].clone())
}

/// Rows of school-a in each table: (records, heads, data keys).
fn rows_of_school_a(server: &PostgresServer) -> (i64, i64, i64) {
    let mut client = server.client();
    let count = |client: &mut postgres::Client, table: &str| -> i64 {
        client
            .query_one(&format!("SELECT COUNT(*) FROM {table} WHERE tenant = 'school-a'"), &[])
            .unwrap()
            .get(0)
    };
    (
        count(&mut client, "nymgate_records"),
        count(&mut client, "nymgate_record_heads"),
        count(&mut client, "nymgate_data_keys"),
    )
}

fn data_key_version(server: &PostgresServer) -> i64 {
    server
        .client()
        .query_one("SELECT key_version FROM nymgate_data_keys WHERE tenant = 'school-a'", &[])
        .unwrap()
        .get(0)
}

fn hup(replica: &Replica) {
    let status = Command::new("kill").arg("-HUP").arg(replica.nymgate.0.id().to_string()).status().unwrap();
    assert!(status.success());
}

fn keys_cli(dir: &Path, args: &[&str]) -> (bool, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_nymgate")).arg("keys").args(args).current_dir(dir).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn an_offboarding_on_one_replica_ends_the_school_on_every_replica_at_once() {
    let server = PostgresServer::start();
    let (world, b, _password) = world_on_postgres(&server, false);
    let (status, line) = login_on(&world, None);
    assert_eq!((status, line["outcome"].as_str()), (303, Some("ok")), "{line}");
    let account = line["account_number"].as_str().unwrap().to_owned();
    assert_eq!(rows_of_school_a(&server), (1, 1, 1));

    // The DPO offboards the school through replica B's admin API.
    let (status, report) = dpo(&world, b.admin_port, "POST", "school-a", Some(r#"{"confirm": "school-a"}"#));
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["retained_records_removed"], 1, "{report}");

    // Replica A, which was not asked, refuses the school's logins from then on; so does B.
    for on in [None, Some(&b)] {
        let (status, line) = login_on(&world, on);
        assert_eq!((status, line["reason"].as_str()), (400, Some("tenant_offboarded")), "{line}");
    }
    // Nothing of it was written by either: no record, no head, no new data key.
    assert_eq!(rows_of_school_a(&server), (0, 0, 0));
    // A's admin API serves nothing of it (410), and says so in its audit.
    let (status, _) = dpo(&world, world.admin_port, "GET", &format!("school-a/{account}"), None);
    assert_eq!(status, 410);
    world.assert_no_personal_values(&[(
        "replica B's log and audit",
        &(world.file("nymgate-b.log") + &world.file("audit-b.log")),
    )]);
}

/// The class behind the test above, at the database: logins' writes racing an offboarding on
/// another connection. Whatever the interleaving, once the offboarding has returned nothing of
/// the tenant is in the tables, and every later write is refused as `Offboarded`.
#[test]
fn writes_racing_an_offboarding_on_postgres_leave_nothing_after_it() {
    let server = PostgresServer::start();
    let password = || Some(nymgate::secret::Secret::new(server.password.clone().into_bytes()));
    let keys = {
        use nymgate::pseudonym::keyring::{ScopeKey, ScopeKeys};
        let key = ScopeKey::new(1, 0, nymgate::secret::Secret::new(vec![7; 32]));
        WrapKeys::derive("school-a", &ScopeKeys { keys: vec![key], migration_until: None }, "school-a")
    };
    let values: Values = [("email".to_owned(), vec!["v@example.test".to_owned()])].into();
    for round in 0..20 {
        let tenant = format!("school-{round}");
        let writer = RetentionStore::postgres(&server.url(), password()).unwrap();
        let offboarder = RetentionStore::postgres(&server.url(), password()).unwrap();
        writer.remember(&tenant, &keys, "v1-0", &values, 1).unwrap();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tenant_w, keys_w, values_w, done_w) =
            (tenant.clone(), keys.clone(), values.clone(), done.clone());
        let writes = std::thread::spawn(move || {
            let mut after = 0;
            for i in 1.. {
                let offboarded_before = done_w.load(std::sync::atomic::Ordering::SeqCst);
                match writer.remember(&tenant_w, &keys_w, &format!("v1-{i}"), &values_w, 1) {
                    Ok(()) => assert!(!offboarded_before, "a write succeeded after the offboarding returned"),
                    Err(RetentionError::Offboarded) => {
                        after += 1;
                        if after == 5 {
                            return;
                        }
                    }
                    Err(other) => panic!("{other}"),
                }
            }
        });
        std::thread::sleep(Duration::from_millis(5 + round * 3));
        offboarder.offboard(&tenant, 2).unwrap();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        writes.join().unwrap();
        let mut client = server.client();
        for table in ["nymgate_records", "nymgate_record_heads", "nymgate_data_keys"] {
            let n: i64 = client
                .query_one(&format!("SELECT COUNT(*) FROM {table} WHERE tenant = $1"), &[&tenant])
                .unwrap()
                .get(0);
            assert_eq!(n, 0, "round {round}: {table} has rows of the offboarded tenant");
        }
    }
}

#[test]
fn retire_during_a_rolling_reload_waits_for_every_replica_and_loses_no_record() {
    let server = PostgresServer::start();
    let (world, b, _password) = world_on_postgres(&server, true);
    let dir = world.dir.path();
    let (status, line) = login_on(&world, None);
    assert_eq!(status, 303, "{line}");
    let account = line["account_number"].as_str().unwrap().to_owned();
    assert_eq!(data_key_version(&server), 1);

    // A rotation, loaded by A only: the rolling reload has reached one replica.
    let keyring = ["--keyring", "keyring.toml"];
    assert!(keys_cli(dir, &[&["rotate", "--scope", "school-a", "--window", "0s"][..], &keyring].concat()).0);
    world.signal("HUP");
    std::thread::sleep(Duration::from_secs(3));
    // A signs people in under version 2, but the data key stays under 1, which B can read.
    assert_eq!(login_on(&world, None).0, 303);
    assert_eq!(login_on(&world, Some(&b)).0, 303);
    assert_eq!(data_key_version(&server), 1, "a data key B could not unwrap");

    // Retiring version 1 now is refused, and says which replica holds it back.
    let retire =
        [&["retire", "--scope", "school-a", "--version", "1", "--config", "nymgate.toml"][..], &keyring]
            .concat();
    let (ok, said) = keys_cli(dir, &retire);
    assert!(!ok && said.contains("has not loaded version 2"), "{said}");
    let ring = nymgate::pseudonym::keyring::Keyring::load(&dir.join("keyring.toml")).unwrap();
    assert_eq!(ring.scope("school-a").unwrap().keys.len(), 2, "nothing was retired");

    // B reloads with the rotated keyring; retire then goes through (within B's announcement).
    std::fs::copy(dir.join("keyring.toml"), dir.join("keyring-b.toml")).unwrap();
    hup(&b);
    let deadline = Instant::now() + Duration::from_secs(20);
    let said = loop {
        let (ok, said) = keys_cli(dir, &retire);
        if ok {
            break said;
        }
        assert!(Instant::now() < deadline, "retire never went through: {said}");
        std::thread::sleep(Duration::from_millis(500));
    };
    // Wrapped again by B once it announced version 2, or by the retire itself.
    assert!(said.contains("retired version 1 of scope school-a"), "{said}");
    assert_eq!(data_key_version(&server), 2);

    // Both replicas load the keyring without version 1: every record still reads, on both.
    std::fs::copy(dir.join("keyring.toml"), dir.join("keyring-b.toml")).unwrap();
    world.signal("HUP");
    hup(&b);
    std::thread::sleep(Duration::from_secs(3));
    for admin_port in [world.admin_port, b.admin_port] {
        let (status, body) = dpo(&world, admin_port, "GET", &format!("school-a/{account}"), None);
        assert_eq!(status, 200, "{body}");
        assert!(body["values"]["email"].is_array(), "{body}");
    }
    assert_eq!(login_on(&world, Some(&b)).0, 303);
}
