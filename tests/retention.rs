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

/// The record of `account_number` at school-a, read from the world's store (SQLite or
/// PostgreSQL, as its config says) with its keyring.
fn record(world: &World, account_number: &str) -> Option<nymgate::retention::Record> {
    let ring = nymgate::pseudonym::keyring::Keyring::load(&world.dir.path().join("keyring.toml")).unwrap();
    let keys = WrapKeys::derive("school-a", ring.scope("school-a").unwrap(), "school-a");
    let config = nymgate::config::Config::load(&world.dir.path().join("nymgate.toml")).unwrap();
    let store = RetentionStore::from_config(config.retention.as_ref().unwrap()).unwrap();
    store.lookup("school-a", &keys, account_number).unwrap()
}

/// Runs `test` with the store in SQLite, then in a real PostgreSQL: `test` gets the
/// `[retention]` section to use, without its `[retention.api]`.
fn on_both_backends(test: impl Fn(&'static str)) {
    test("[retention]\nsqlite_file = \"retained.db\"\n");
    let server = common::postgres::PostgresServer::start();
    let dir = tempfile::tempdir().unwrap();
    test(Box::leak(server.retention_toml(dir.path()).into_boxed_str()));
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

const PLATFORM_TOKEN: &str = "platform-token-0123456789abcdef0123456789";
const DPO_TOKEN: &str = "dpo-token-fedcba9876543210fedcba9876543210";

/// A call to the admin API: (status, body as JSON).
fn api(
    world: &World,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u64, serde_json::Value) {
    let auth = token.map(|t| format!("authorization: 'Bearer {t}',")).unwrap_or_default();
    let body = body.map(|b| format!(", body: {b:?}")).unwrap_or_default();
    let out = world.node_eval(&format!(
        "const r = await fetch('http://127.0.0.1:{}/admin/v1/retention/{path}', {{method: {method:?}, headers: {{{auth} 'content-type': 'application/json'}}{body}}}); console.log(JSON.stringify({{status: r.status, body: await r.json()}}));",
        world.admin_port
    ));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("{out}"));
    (v["status"].as_u64().unwrap(), v["body"].clone())
}

#[test]
fn the_admin_api_serves_each_role_its_calls_and_audits_every_one() {
    on_both_backends(admin_api_on);
}

fn admin_api_on(store: &'static str) {
    // The tokens come from the environment (SecretSource env), as a deployment may give them.
    std::env::set_var("NYMGATE_TEST_RETENTION_PLATFORM", PLATFORM_TOKEN);
    std::env::set_var("NYMGATE_TEST_RETENTION_DPO", DPO_TOKEN);
    const KEEP_AND_SERVE: &str = "[tenants.retention]\nroles = [\"student\"]\nattributes = { email = [\"email\"], name = [\"name\"] }\nserve = [\"name\"]\n";
    const API: &str = "[retention.api]\nplatform_token = { env = \"NYMGATE_TEST_RETENTION_PLATFORM\" }\ndpo_token = { env = \"NYMGATE_TEST_RETENTION_DPO\" }\n";
    let extra: &'static str = Box::leak(format!("{store}{API}").into_boxed_str());
    let world = World::start(Options { tenant_a: KEEP_AND_SERVE, extra, ..Options::default() });
    let login = world.platform_login(serde_json::json!({}));
    let account = login["id_token_claims"]["sub"].as_str().unwrap().to_owned();
    let path = format!("school-a/{account}");
    let last_admin = |world: &World| {
        world.audit().into_iter().rev().find(|l| l["kind"] == "admin").expect("an admin audit line")
    };

    // No token, or a wrong one: 401, audited.
    assert_eq!(api(&world, "GET", &path, None, None).0, 401);
    assert_eq!(api(&world, "GET", &path, Some("not-a-token"), None).0, 401);
    assert_eq!(last_admin(&world)["reason"], "bad_credentials");
    // The platform: the `serve` values only.
    let (status, body) = api(&world, "GET", &path, Some(PLATFORM_TOKEN), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["values"], serde_json::json!({"name": [alice("name")]}));
    // The DPO: the whole record (access, portability).
    let (status, body) = api(&world, "GET", &path, Some(DPO_TOKEN), None);
    assert_eq!((status, &body["values"]["email"]), (200, &serde_json::json!([alice("email")])), "{body}");
    let audit = last_admin(&world);
    assert_eq!((audit["action"].as_str(), audit["outcome"].as_str()), (Some("retention_lookup"), Some("ok")));
    assert_eq!(
        (audit["tenant"].as_str(), audit["account_number"].as_str()),
        (Some("school-a"), Some(account.as_str()))
    );
    // Only the DPO rectifies, restricts and erases.
    let rectified = r#"{"values": {"name": ["Rättat Namn"]}}"#;
    assert_eq!(api(&world, "PUT", &path, Some(PLATFORM_TOKEN), Some(rectified)).0, 403);
    assert_eq!(last_admin(&world)["reason"], "platform_not_allowed");
    assert_eq!(api(&world, "PUT", &path, Some(DPO_TOKEN), Some(rectified)).0, 200);
    assert_eq!(
        api(&world, "GET", &path, Some(DPO_TOKEN), None).1["values"]["name"],
        serde_json::json!(["Rättat Namn"])
    );
    assert_eq!(api(&world, "PUT", &path, Some(DPO_TOKEN), Some("{\"name\": 1}")).0, 400);
    assert_eq!(api(&world, "POST", &format!("{path}/restrict"), Some(DPO_TOKEN), None).0, 200);
    assert_eq!(
        api(&world, "GET", &path, Some(PLATFORM_TOKEN), None).0,
        404,
        "a restricted record is not served"
    );
    assert_eq!(last_admin(&world)["reason"], "restricted");
    assert_eq!(api(&world, "GET", &path, Some(DPO_TOKEN), None).1["restricted"], true);
    assert_eq!(api(&world, "POST", &format!("{path}/lift"), Some(DPO_TOKEN), None).0, 200);
    assert_eq!(api(&world, "GET", &path, Some(PLATFORM_TOKEN), None).0, 200);
    assert_eq!(api(&world, "DELETE", &path, Some(DPO_TOKEN), None).0, 200);
    assert_eq!(
        (last_admin(&world)["action"].as_str(), last_admin(&world)["outcome"].as_str()),
        (Some("retention_erase"), Some("ok"))
    );
    assert_eq!(api(&world, "GET", &path, Some(DPO_TOKEN), None).0, 404, "erased");
    assert_eq!(last_admin(&world)["reason"], "no_record");
    // Calls for a tenant that keeps nothing, or an unknown path, find nothing.
    assert_eq!(api(&world, "GET", &format!("school-b/{account}"), Some(DPO_TOKEN), None).0, 404);

    // Offboarding: the DPO's, confirmed; the report says what went.
    world.platform_login(serde_json::json!({}));
    assert!(record(&world, &account).is_some());
    assert_eq!(
        api(&world, "POST", "school-a", Some(PLATFORM_TOKEN), Some(r#"{"confirm": "school-a"}"#)).0,
        403
    );
    assert_eq!(api(&world, "POST", "school-a", Some(DPO_TOKEN), Some(r#"{"confirm": "school-b"}"#)).0, 400);
    let (status, report) =
        api(&world, "POST", "school-a", Some(DPO_TOKEN), Some(r#"{"confirm": "school-a"}"#));
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["retained_records_removed"].as_u64(), report["scope_keys_destroyed"].as_u64()),
        (Some(1), Some(1))
    );
    let ring = nymgate::pseudonym::keyring::Keyring::load(&world.dir.path().join("keyring.toml")).unwrap();
    assert!(ring.scope("school-a").is_err() && ring.scope("school-b").is_ok());
    let audit = last_admin(&world);
    assert_eq!(
        (audit["action"].as_str(), audit["reason"].as_str()),
        (Some("tenant_offboard"), Some("by_dpo"))
    );
    // The logs, the audit log and the metrics hold no value of alice's.
    world.assert_no_personal_values(&[("the offboarding report", &report.to_string())]);
}

/// `nymgate retention --config … ARGS`: (success, stdout, stderr).
fn cli(world: &World, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nymgate"))
        .arg("retention")
        .arg("--config")
        .arg(world.dir.path().join("nymgate.toml"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_shell_commands_show_rectify_restrict_erase_and_offboard_with_audit_lines() {
    on_both_backends(shell_commands_on);
}

fn shell_commands_on(store: &'static str) {
    let world = World::start(Options { tenant_a: KEEP_STUDENTS, extra: store, ..Options::default() });
    let login = world.platform_login(serde_json::json!({}));
    let account = login["id_token_claims"]["sub"].as_str().unwrap().to_owned();
    let who = ["--tenant", "school-a", "--account", account.as_str()];

    let (ok, shown, err) = cli(&world, &[&["show"][..], &who].concat());
    assert!(ok, "{err}");
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["values"]["email"], serde_json::json!([alice("email")]));
    let (ok, _, err) = cli(
        &world,
        &[&["rectify"][..], &who, &["--values", r#"{"email": ["ny@school-a.example"]}"#]].concat(),
    );
    assert!(ok, "{err}");
    assert_eq!(record(&world, &account).unwrap().values["email"], ["ny@school-a.example"]);
    assert!(cli(&world, &[&["restrict"][..], &who].concat()).0);
    assert!(record(&world, &account).unwrap().restricted);
    assert!(cli(&world, &[&["lift"][..], &who].concat()).0);
    assert!(cli(&world, &[&["erase"][..], &who].concat()).0);
    assert_eq!(record(&world, &account), None);
    let (ok, _, err) = cli(&world, &[&["erase"][..], &who].concat());
    assert!(!ok && err.contains("no record"), "{err}");
    let actions: Vec<String> = world
        .audit()
        .iter()
        .filter(|l| l["kind"] == "admin")
        .map(|l| format!("{} {}", l["action"].as_str().unwrap(), l["outcome"].as_str().unwrap()))
        .collect();
    for expected in [
        "retention_lookup ok",
        "retention_rectify ok",
        "retention_restrict ok",
        "retention_lift ok",
        "retention_erase ok",
        "retention_erase failed",
    ] {
        assert!(actions.iter().any(|a| a == expected), "{expected} missing from {actions:?}");
    }

    // Offboarding: a new login leaves a record; offboard removes it, the data key and the
    // school's pseudonym keys, and says so.
    world.platform_login(serde_json::json!({}));
    assert!(record(&world, &account).is_some());
    let (ok, _, err) = cli(&world, &["offboard", "--tenant", "school-a", "--confirm", "school-b"]);
    assert!(!ok && err.contains("--confirm"), "{err}");
    let (ok, report, err) = cli(&world, &["offboard", "--tenant", "school-a", "--confirm", "school-a"]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["retained_records_removed"], 1, "{report}");
    assert_eq!(report["scope_keys_destroyed"], 1, "{report}");
    let ring = nymgate::pseudonym::keyring::Keyring::load(&world.dir.path().join("keyring.toml")).unwrap();
    assert!(ring.scope("school-a").is_err(), "the school's pseudonym keys are gone");
    assert!(ring.scope("school-b").is_ok(), "another school's keys stay");
    let last = world.audit().into_iter().rev().find(|l| l["kind"] == "admin").unwrap();
    assert_eq!(
        (last["action"].as_str(), last["tenant"].as_str()),
        (Some("tenant_offboard"), Some("school-a"))
    );
    world.assert_no_personal_values(&[("the offboarding report", &report.to_string())]);
}

/// Unix seconds of a day, midnight UTC.
fn day(date: &str) -> u64 {
    nymgate::clock::parse_instant(&format!("{date}T00:00:00Z")).unwrap()
}

#[test]
fn culling_and_the_offboarding_date_are_honoured_at_the_time_given() {
    // A record unseen for a year goes; one seen within the year stays.
    let world = World::start(Options { tenant_a: KEEP_STUDENTS, extra: STORE, ..Options::default() });
    let login = world.platform_login(serde_json::json!({}));
    let account = login["id_token_claims"]["sub"].as_str().unwrap().to_owned();
    let now = nymgate::clock::unix_now();
    let (ok, out, err) = cli(&world, &["cull", "--at", &(now + 300 * 86_400).to_string()]);
    assert!(ok && out.contains("culled 0 record(s)"), "{out}{err}");
    assert!(record(&world, &account).is_some());
    let (ok, out, err) = cli(&world, &["cull", "--at", &(now + 366 * 86_400).to_string()]);
    assert!(ok && out.contains("culled 1 record(s)"), "{out}{err}");
    assert_eq!(record(&world, &account), None);

    // The offboarding date: nothing before it, everything of the tenant from it on.
    let world = World::start(Options {
        tenant_a: concat!(
            "offboard_on = \"2100-01-01\"\n",
            "[tenants.retention]\nroles = [\"student\"]\nattributes = { email = [\"email\"] }\n"
        ),
        extra: "[retention]\nsqlite_file = \"retained.db\"\ncull_after = \"200y\"\n",
        ..Options::default()
    });
    let login = world.platform_login(serde_json::json!({}));
    let account = login["id_token_claims"]["sub"].as_str().unwrap().to_owned();
    let (ok, out, err) = cli(&world, &["cull", "--at", &day("2099-12-31").to_string()]);
    assert!(ok && out.contains("offboarded by date: none"), "{out}{err}");
    assert!(record(&world, &account).is_some());
    let (ok, out, err) = cli(&world, &["cull", "--at", &day("2100-01-01").to_string()]);
    assert!(ok && out.contains("offboarded by date: school-a (1 record(s))"), "{out}{err}");
    assert_eq!(record(&world, &account), None);
    let last = world.audit().into_iter().rev().find(|l| l["action"] == "tenant_offboard").unwrap();
    assert_eq!((last["tenant"].as_str(), last["reason"].as_str()), (Some("school-a"), Some("offboard_date")));
}

#[test]
fn a_tenant_past_its_offboarding_date_signs_nobody_in() {
    let world = World::start(Options { tenant_a: "offboard_on = \"2020-01-01\"\n", ..Options::default() });
    let flow = world.browse(&world.url("/nymgate/login/school-a"), Some(&world.url("/nymgate/callback")));
    assert_eq!(world.get_with_jar(flow["url"].as_str().unwrap(), &flow["jar"]), 400);
    assert_eq!(world.last_login()["reason"], "tenant_offboarded");
}

/// Past its offboarding date a tenant's records are not served by the admin API either, not
/// only after the next cull erases them (410, audited `tenant_offboarded`); erasure stays open.
#[test]
fn the_admin_api_serves_nothing_of_a_tenant_past_its_offboarding_date() {
    std::env::set_var("NYMGATE_TEST_OFFBOARDED_PLATFORM", PLATFORM_TOKEN);
    std::env::set_var("NYMGATE_TEST_OFFBOARDED_DPO", DPO_TOKEN);
    const TENANT: &str = "offboard_on = \"2020-01-01\"\n[tenants.retention]\nroles = [\"student\"]\nattributes = { email = [\"email\"] }\nserve = [\"email\"]\n";
    const API: &str = "[retention]\nsqlite_file = \"retained.db\"\n[retention.api]\nplatform_token = { env = \"NYMGATE_TEST_OFFBOARDED_PLATFORM\" }\ndpo_token = { env = \"NYMGATE_TEST_OFFBOARDED_DPO\" }\n";
    let world = World::start(Options { tenant_a: TENANT, extra: API, ..Options::default() });
    let path = "school-a/v1-ABCD-EFGH-JKMN-PQRS";
    for (method, token) in [("GET", PLATFORM_TOKEN), ("GET", DPO_TOKEN), ("POST", DPO_TOKEN)] {
        let target = if method == "POST" { format!("{path}/restrict") } else { path.to_owned() };
        assert_eq!(api(&world, method, &target, Some(token), None).0, 410, "{method} {target}");
        let line = world.audit().into_iter().rev().find(|l| l["kind"] == "admin").unwrap();
        assert_eq!(line["reason"], "tenant_offboarded");
    }
    // Erasure is still answered (no record here: 404, not 410).
    assert_ne!(api(&world, "DELETE", path, Some(DPO_TOKEN), None).0, 410);
}

// ---- crash safety ----------------------------------------------------------------------------

/// The keys of the crash test's store (a fixed scope key: the test owns the file).
fn crash_keys() -> WrapKeys {
    use nymgate::pseudonym::keyring::{ScopeKey, ScopeKeys};
    let scope = ScopeKeys {
        keys: vec![ScopeKey::new(1, 0, nymgate::secret::Secret::new(vec![7; 32]))],
        migration_until: None,
    };
    WrapKeys::derive("skola-c", &scope, "skola-c")
}

fn crash_values(i: u64) -> nymgate::retention::Values {
    [("name".to_owned(), vec![format!("Lärare {i}")])].into()
}

/// Writes `w-{i}` and erases `e-{i}` for i = 0.., printing each operation only after it is
/// committed, for `limit` rounds (or until killed).
fn crash_writer(path: &std::path::Path, limit: u64, out: &mut dyn std::io::Write) {
    let store = RetentionStore::open(path).unwrap();
    let keys = crash_keys();
    for i in 0..limit {
        store.remember("skola-c", &keys, &format!("w-{i}"), &crash_values(i), i).unwrap();
        writeln!(out, "wrote w-{i}").unwrap();
        if store.erase("skola-c", &format!("e-{i}")).unwrap() {
            writeln!(out, "erased e-{i}").unwrap();
        }
        out.flush().unwrap();
    }
}

/// What the store must hold after the writer printed `lines`: every written record whole, every
/// record reported erased gone, and nothing that does not decrypt.
fn check_after(path: &std::path::Path, lines: &[String], prepared: u64) {
    let store = RetentionStore::open(path).unwrap();
    let keys = crash_keys();
    let written: Vec<u64> = lines.iter().filter_map(|l| l.strip_prefix("wrote w-")?.parse().ok()).collect();
    let erased: Vec<u64> = lines.iter().filter_map(|l| l.strip_prefix("erased e-")?.parse().ok()).collect();
    for &i in &written {
        let record = store.lookup("skola-c", &keys, &format!("w-{i}")).unwrap();
        assert_eq!(record.map(|r| r.values), Some(crash_values(i)), "w-{i} was reported written");
    }
    for &i in &erased {
        assert_eq!(
            store.lookup("skola-c", &keys, &format!("e-{i}")).unwrap(),
            None,
            "e-{i} was reported erased"
        );
    }
    // Whatever else is there (the operation in flight at the kill, the records not reached)
    // decrypts whole or is absent: never a half-written record.
    let next = written.iter().max().map_or(0, |m| m + 2);
    for i in 0..next.max(prepared) {
        for account in [format!("w-{i}"), format!("e-{i}")] {
            if let Err(error) = store.lookup("skola-c", &keys, &account) {
                panic!("{account} is damaged: {error}");
            }
        }
    }
    let db = rusqlite::Connection::open(path).unwrap();
    let integrity: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
}

/// The child process of the crash test when NYMGATE_CRASH_CHILD_DB is set: writes until
/// killed. Run on its own it writes and checks 20 rounds.
#[test]
fn crash_child_writes_and_erases_until_killed() {
    match std::env::var_os("NYMGATE_CRASH_CHILD_DB") {
        Some(path) => crash_writer(std::path::Path::new(&path), u64::MAX, &mut std::io::stdout()),
        None => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("crash.db");
            prepare_erasable(&path, 20);
            let mut out = Vec::new();
            crash_writer(&path, 20, &mut out);
            let lines: Vec<String> = String::from_utf8(out).unwrap().lines().map(str::to_owned).collect();
            assert_eq!(lines.iter().filter(|l| l.starts_with("erased")).count(), 20);
            check_after(&path, &lines, 20);
        }
    }
}

/// Records `e-0` … for the writer to erase.
fn prepare_erasable(path: &std::path::Path, count: u64) {
    let store = RetentionStore::open(path).unwrap();
    for i in 0..count {
        store.remember("skola-c", &crash_keys(), &format!("e-{i}"), &crash_values(i), 0).unwrap();
    }
}

#[test]
fn a_process_killed_during_writes_and_erasures_leaves_no_half_record_and_nothing_reported_erased() {
    use std::io::BufRead;
    for (round, millis) in [150u64, 400, 900].into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crash.db");
        // More than the writer reaches in the time given (each of its operations is a synced
        // commit: about a millisecond here).
        let prepared = 3_000;
        prepare_erasable(&path, prepared);
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_child_writes_and_erases_until_killed",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("NYMGATE_CRASH_CHILD_DB", &path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            std::io::BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<String>>()
        });
        std::thread::sleep(std::time::Duration::from_millis(millis));
        child.kill().unwrap(); // SIGKILL: no destructor, no flush, as a crash
        child.wait().unwrap();
        let lines: Vec<String> = reader
            .join()
            .unwrap()
            .into_iter()
            .filter(|l| l.starts_with("wrote") || l.starts_with("erased"))
            .collect();
        assert!(lines.len() > 2, "round {round}: the writer did not get going: {lines:?}");
        let erased = lines.iter().filter(|l| l.starts_with("erased")).count() as u64;
        assert!(erased < prepared, "round {round}: the writer ran out of records to erase");
        check_after(&path, &lines, 0);
    }
}

// ---- PostgreSQL ------------------------------------------------------------------------------

#[test]
fn postgres_store_keeps_whole_encrypted_records_and_erases_them() {
    let server = common::postgres::PostgresServer::start();
    let password = nymgate::secret::Secret::new(server.password.clone().into_bytes());
    let store = RetentionStore::postgres(&server.url(), Some(password)).unwrap();
    let keys = crash_keys();
    store.remember("skola-c", &keys, "v1-A", &crash_values(1), 100).unwrap();
    store.remember("skola-c", &keys, "v1-B", &crash_values(2), 200).unwrap();
    assert_eq!(store.lookup("skola-c", &keys, "v1-A").unwrap().unwrap().values, crash_values(1));
    // The tables hold ciphertext only.
    let mut client = postgres::Config::new()
        .host("127.0.0.1")
        .port(server.port)
        .user(common::postgres::USER)
        .password(&server.password)
        .dbname("postgres")
        .connect(postgres::NoTls)
        .unwrap();
    for row in client.query("SELECT tenant, account_number, ciphertext FROM nymgate_records", &[]).unwrap() {
        let sealed: Vec<u8> = row.get(2);
        assert!(!String::from_utf8_lossy(&sealed).contains("Lärare"), "a value in the clear");
    }
    assert!(store.restrict("skola-c", &keys, "v1-A", true).unwrap());
    assert!(store.lookup("skola-c", &keys, "v1-A").unwrap().unwrap().restricted);
    assert!(store.erase("skola-c", "v1-A").unwrap());
    assert!(!store.erase("skola-c", "v1-A").unwrap());
    assert_eq!(store.cull(150).unwrap(), 0);
    assert_eq!(store.cull(250).unwrap(), 1);
    store.remember("skola-c", &keys, "v1-C", &crash_values(3), 300).unwrap();
    assert_eq!(store.offboard("skola-c", 1).unwrap(), 1);
    let keys_left: i64 = client.query_one("SELECT COUNT(*) FROM nymgate_data_keys", &[]).unwrap().get(0);
    assert_eq!(keys_left, 0, "offboarding removes the data key");
    // A wrong password is an error, not a panic, and the login path sees it as one.
    let wrong =
        RetentionStore::postgres(&server.url(), Some(nymgate::secret::Secret::new(b"wrong".to_vec())))
            .unwrap();
    assert!(wrong.lookup("skola-c", &keys, "v1-C").is_err());
}

#[test]
fn replicas_sharing_postgres_see_each_others_records() {
    let server = common::postgres::PostgresServer::start();
    std::env::set_var("NYMGATE_TEST_RETENTION_DPO", DPO_TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let retention: &'static str = Box::leak(
        format!(
            "{}[retention.api]\ndpo_token = {{ env = \"NYMGATE_TEST_RETENTION_DPO\" }}\n",
            server.retention_toml(dir.path())
        )
        .into_boxed_str(),
    );
    let world = World::start(Options { tenant_a: KEEP_STUDENTS, extra: retention, ..Options::default() });
    let replica = world.start_replica();
    // A login on the first replica; the record is read through the second one's admin API.
    let login = world.platform_login(serde_json::json!({}));
    let account = login["id_token_claims"]["sub"].as_str().unwrap().to_owned();
    let out = world.node_eval(&format!(
        "const r = await fetch('http://127.0.0.1:{}/admin/v1/retention/school-a/{account}', {{headers: {{authorization: 'Bearer {DPO_TOKEN}'}}}}); console.log(JSON.stringify({{status: r.status, body: await r.json()}}));",
        replica.admin_port
    ));
    let answer: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("{out}"));
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["body"]["values"]["email"], serde_json::json!([alice("email")]));
    world.assert_no_personal_values(&[]);
}
