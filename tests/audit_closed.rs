//! The audit log fails closed, and the admin surface around it (issue 28), with real processes:
//! a login or an admin change whose audit line can't be written is refused with 503 and leaves
//! nothing behind, `/readyz` follows the sink and recovers with it; refused admin calls are
//! counted and aggregated so that a flood can't rotate the real lines away; the CLI audits its
//! refusals and failures and never writes what the operator typed as an account number; `check`
//! refuses the admin tokens `serve` refuses; the DPO's lookup answers the numbers of every key
//! version still in the keyring.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::login::{alice_sub, Options, World};
use serde_json::Value;

const STORE: &str = "[retention]\nsqlite_file = \"retained.db\"\n";
const KEEP_STUDENTS: &str =
    "[tenants.retention]\nroles = [\"student\"]\nattributes = { email = [\"email\"], name = [\"name\"] }\n";
const DPO_TOKEN: &str = "dpo-token-fedcba9876543210fedcba9876543210";
/// The reason code of a login refused for want of its audit line (docs/LOGIN.md).
const AUDIT_UNAVAILABLE: &str = "audit_unavailable";

fn nymgate(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nymgate"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"))).collect()
}

/// Retained records at school-a, counted in the SQLite file.
fn records(world: &World) -> i64 {
    let db = rusqlite::Connection::open(world.dir.path().join("retained.db")).unwrap();
    db.query_row("SELECT count(*) FROM records", [], |row| row.get(0)).unwrap()
}

/// Polls `/readyz` until its status is `want` (each poll is a real probe of the audit log).
fn readyz_becomes(world: &World, want: u16) -> String {
    for _ in 0..100 {
        let (status, body) = world.admin_get(world.admin_port, "/readyz");
        if status == want {
            return body;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("/readyz never answered {want}: {:?}", world.admin_get(world.admin_port, "/readyz"));
}

/// The audit file replaced by a directory: every open fails, whoever runs the test (root too).
fn break_audit(world: &World) {
    let path = world.dir.path().join("audit.log");
    let _ = std::fs::remove_file(&path);
    std::fs::create_dir(&path).unwrap();
}

fn repair_audit(world: &World) {
    std::fs::remove_dir(world.dir.path().join("audit.log")).unwrap();
}

#[test]
fn an_unwritable_audit_file_refuses_logins_with_503_and_readyz_recovers() {
    let world = World::start(Options {
        provider: false,
        tenant_a: KEEP_STUDENTS,
        extra: STORE,
        ..Options::default()
    });
    assert_eq!(world.admin_get(world.admin_port, "/readyz").0, 200);
    break_audit(&world);

    let flow = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), None);
    assert_eq!(flow["status"], 503, "{flow}");
    assert!(flow["body"].as_str().unwrap().contains("every sign-in is recorded"), "{flow}");
    // Nothing delivered: no session cookie, never at the platform; nothing retained.
    let host = format!("localhost:{}", world.port);
    assert!(flow["jar"][&host].get("__Host-nymgate-session").is_none(), "{flow}");
    let platform = format!("https://{host}/echo");
    let steps = flow["steps"].as_array().unwrap();
    assert!(
        steps.iter().all(|s| !s["url"].as_str().unwrap().starts_with(&platform)),
        "at the platform: {flow}"
    );
    assert_eq!(records(&world), 0, "a record was retained for an unaudited login");

    let body = readyz_becomes(&world, 503);
    assert!(body.contains("audit: failing"), "{body}");
    let metrics = world.metrics();
    // Present at zero from the start: the count must have risen.
    assert!(!metrics.contains("nymgate_audit_failures_total{kind=\"login\"} 0\n"), "{metrics}");
    assert!(metrics.contains("nymgate_audit_failures_total{kind=\"login\"} "), "{metrics}");
    assert!(metrics.contains(&format!("reason=\"{AUDIT_UNAVAILABLE}\"")), "{metrics}");

    // The sink writes again: ready again, and the log says how many lines the outage kept out.
    repair_audit(&world);
    let body = readyz_becomes(&world, 200);
    assert!(body.contains("audit: writing"), "{body}");
    let audit = world.audit();
    let recovered = audit.iter().find(|l| l["action"] == "audit_sink").expect("the recovery line");
    assert_eq!(
        (recovered["kind"].as_str(), recovered["outcome"].as_str()),
        (Some("audit"), Some("recovered"))
    );
    assert!(recovered["count"].as_u64().is_some_and(|n| n >= 1), "{recovered}");

    let flow = world.browse(&world.url("/nymgate/login/school-a?return_to=/echo"), None);
    assert_eq!(flow["status"], 200, "{flow}");
    assert_eq!(world.last_login()["outcome"], "ok");
    assert_eq!(records(&world), 1);
    world.assert_no_personal_values(&[]);
}

/// A call to the admin API through node's fetch: (status, body).
fn api(world: &World, method: &str, path: &str, token: Option<&str>) -> (u64, Value) {
    let auth = token.map(|t| format!("authorization: 'Bearer {t}'")).unwrap_or_default();
    let out = world.node_eval(&format!(
        "const r = await fetch('http://127.0.0.1:{}/admin/v1/retention/{path}', {{method: {method:?}, headers: {{{auth}}}}}); console.log(JSON.stringify({{status: r.status, body: await r.json()}}));",
        world.admin_port
    ));
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("{out}"));
    (v["status"].as_u64().unwrap(), v["body"].clone())
}

fn api_world(audit: &'static str) -> (World, String) {
    std::env::set_var("NYMGATE_TEST_AUDIT_DPO", DPO_TOKEN);
    const API: &str = "[retention]\nsqlite_file = \"retained.db\"\n[retention.api]\ndpo_token = { env = \"NYMGATE_TEST_AUDIT_DPO\" }\n";
    let world = World::start(Options { tenant_a: KEEP_STUDENTS, extra: API, audit, ..Options::default() });
    let login = world.platform_login(serde_json::json!({}));
    let account = login["id_token_claims"]["sub"].as_str().unwrap().to_owned();
    (world, account)
}

#[test]
fn an_unwritable_audit_file_refuses_an_admin_erasure_with_503_and_erases_nothing() {
    let (world, account) = api_world("");
    assert_eq!(records(&world), 1);
    break_audit(&world);
    let (status, body) = api(&world, "DELETE", &format!("school-a/{account}"), Some(DPO_TOKEN));
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].as_str().unwrap().contains("audit log"), "{body}");
    assert_eq!(records(&world), 1, "erased without its audit line");
    let (status, _) = api(&world, "GET", &format!("school-a/{account}"), Some(DPO_TOKEN));
    assert_eq!(status, 503, "a record answered without its audit line");
    let metrics = world.metrics();
    assert!(!metrics.contains("nymgate_audit_failures_total{kind=\"admin\"} 0\n"), "{metrics}");
    assert!(metrics.contains("nymgate_audit_failures_total{kind=\"admin\"} "), "{metrics}");

    repair_audit(&world);
    let (status, _) = api(&world, "DELETE", &format!("school-a/{account}"), Some(DPO_TOKEN));
    assert_eq!(status, 200);
    assert_eq!(records(&world), 0);
    let erase: Vec<String> = world
        .audit()
        .iter()
        .filter(|l| l["action"] == "retention_erase")
        .map(|l| l["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(erase, ["started", "ok"], "one erasure on record, started before it ran");
}

#[test]
fn refused_admin_calls_flood_does_not_rotate_real_lines_away_and_is_counted() {
    // A small log: 4 KiB, one rotated file. One line per refused call would rotate the
    // erasure's line out within some 60 calls.
    let (world, account) = api_world("max_bytes = 4096\nkeep = 1");
    let (status, _) = api(&world, "GET", &format!("school-a/{account}"), Some(DPO_TOKEN));
    assert_eq!(status, 200);
    const FLOOD: usize = 2000;
    let out = world.node_eval(&format!(
        "const counts = {{}}; for (let i = 0; i < {FLOOD}; i++) {{ const r = await fetch('http://127.0.0.1:{}/admin/v1/retention/school-a/{account}', {{headers: {{authorization: 'Bearer wrong-token-' + i}}}}); counts[r.status] = (counts[r.status] ?? 0) + 1; await r.text(); }} console.log(JSON.stringify(counts));",
        world.admin_port
    ));
    let counts: Value = serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("{out}"));
    // A few 401s, then 429 for the rest of the interval; never a 200.
    assert!(counts["401"].as_u64().is_some_and(|n| n >= 1), "{counts}");
    assert!(counts["429"].as_u64().is_some_and(|n| n >= 1), "{counts}");
    assert_eq!(counts["401"].as_u64().unwrap() + counts["429"].as_u64().unwrap(), FLOOD as u64, "{counts}");

    let both = world.file("audit.log.1") + &world.file("audit.log");
    let all = lines(&both);
    assert!(
        all.iter().any(|l| l["action"] == "retention_lookup" && l["outcome"] == "ok"),
        "the DPO's lookup was rotated away: {both}"
    );
    let refused: Vec<&Value> = all.iter().filter(|l| l["reason"] == "bad_credentials").collect();
    assert!(refused.len() <= 2, "one line per refused call: {}", refused.len());
    let metrics = world.metrics();
    assert!(
        metrics.contains(&format!("nymgate_admin_refused_total{{reason=\"bad_credentials\"}} {FLOOD}")),
        "{metrics}"
    );
    // At shutdown the interval's count is written: every refused call is on record.
    world.signal("TERM");
    let mut total = 0;
    for _ in 0..400 {
        let text = world.file("audit.log.1") + &world.file("audit.log");
        total = lines(&text)
            .iter()
            .filter(|l| l["reason"] == "bad_credentials")
            .map(|l| l["count"].as_u64().unwrap())
            .sum();
        if total == FLOOD as u64 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(total, FLOOD as u64);
    assert!(!both.contains("wrong-token"), "a token reached the audit log");
}

#[test]
fn the_cli_refuses_a_value_that_is_not_an_account_number() {
    let world = World::start(Options { tenant_a: KEEP_STUDENTS, extra: STORE, ..Options::default() });
    let config = world.dir.path().join("nymgate.toml");
    let typed = "alice.andersson@school-a.example";
    for verb in ["show", "erase", "restrict"] {
        let out = nymgate(
            world.dir.path(),
            &[
                "retention",
                "--config",
                config.to_str().unwrap(),
                verb,
                "--tenant",
                "school-a",
                "--account",
                typed,
            ],
        );
        assert!(!out.status.success());
        assert!(stderr(&out).contains("not an account number"), "{}", stderr(&out));
    }
    let audit = world.file("audit.log");
    assert!(!audit.contains("alice.andersson"), "the typed value reached the audit log: {audit}");
    let refused: Vec<Value> =
        lines(&audit).into_iter().filter(|l| l["reason"] == "bad_account_number").collect();
    assert_eq!(refused.len(), 3, "{audit}");
    assert!(refused
        .iter()
        .all(|l| l["outcome"] == "refused" && l["account_number"].is_null() && l["tenant"] == "school-a"));
}

#[test]
fn every_refused_or_failed_cli_action_is_audited() {
    let world = World::start(Options { tenant_a: KEEP_STUDENTS, extra: STORE, ..Options::default() });
    let dir = world.dir.path();
    let retention = |args: &[&str]| {
        let mut all = vec!["retention", "--config", "nymgate.toml"];
        all.extend_from_slice(args);
        nymgate(dir, &all)
    };
    let keys = |args: &[&str]| {
        let mut all = vec!["keys", args[0], "--keyring", "keyring.toml", "--audit", "keys-audit.log"];
        all.extend_from_slice(&args[1..]);
        nymgate(dir, &all)
    };
    let number = "v1-7QX2-M9RA-4HVE-T0BZ";
    for out in [
        retention(&["erase", "--tenant", "no-such-school", "--account", number]),
        retention(&["erase", "--tenant", "school-a", "--account", number]),
        retention(&["rectify", "--tenant", "school-a", "--account", number, "--values", "[1"]),
        retention(&["offboard", "--tenant", "school-a", "--confirm", "school-b"]),
    ] {
        assert!(!out.status.success(), "{}", stderr(&out));
    }
    let audit = lines(&world.file("audit.log"));
    let admin: Vec<(String, String, String)> = audit
        .iter()
        .filter(|l| l["kind"] == "admin")
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap_or("").to_owned();
            (s("action"), s("outcome"), s("reason"))
        })
        .collect();
    let want = |a: &str, o: &str, r: &str| (a.to_owned(), o.to_owned(), r.to_owned());
    assert_eq!(
        admin,
        [
            want("retention_erase", "refused", "unknown_tenant"),
            want("retention_erase", "started", "by_shell"),
            want("retention_erase", "failed", "no_record"),
            want("retention_rectify", "refused", "bad_values"),
            want("tenant_offboard", "refused", "not_confirmed"),
        ]
    );
    assert!(!world.file("audit.log").contains("no-such-school"));

    for out in [
        keys(&["erase", "--scope", "school-a", "--confirm", "school-b"]),
        keys(&["retire", "--scope", "school-a", "--version", "7", "--no-retention-check"]),
        keys(&["new", "--scope", "school-a"]),
        keys(&["rotate", "--scope", "Not A Scope"]),
    ] {
        assert!(!out.status.success(), "{}", stderr(&out));
    }
    let keys_audit = world.file("keys-audit.log");
    let actions: Vec<(String, String, String)> = lines(&keys_audit)
        .iter()
        .map(|l| {
            let s = |k: &str| l[k].as_str().unwrap_or("").to_owned();
            (s("action"), s("outcome"), s("reason"))
        })
        .collect();
    assert_eq!(
        actions,
        [
            want("keys_erase", "refused", "not_confirmed"),
            want("keys_retire", "started", ""),
            want("keys_retire", "failed", "no_version"),
            want("keys_new", "started", ""),
            want("keys_new", "failed", "scope_exists"),
            want("keys_rotate", "refused", "bad_scope_name"),
        ]
    );
    assert!(!keys_audit.contains("Not A Scope"), "{keys_audit}");
}

/// `check` and `serve` take the same admin tokens: for each, `check` is valid exactly when
/// `serve` starts.
#[test]
fn check_refuses_every_admin_token_serve_refuses() {
    let dir = tempfile::tempdir().unwrap();
    assert!(nymgate(dir.path(), &["certs", "dev", "--out", "certs"]).status.success());
    for (i, (token, good)) in [
        ("short-token", false),
        ("dpo token with spaces 0123456789", false),
        ("dpo-token-\"quoted\"-0123456789", false),
        ("dpo-token-0123456789abcdef0123456789", true),
        ("ZHBvLXRva2VuLTAxMjM0NTY3ODlhYmNkZWY=", true),
    ]
    .into_iter()
    .enumerate()
    {
        let token_file = dir.path().join(format!("dpo-{i}.token"));
        common::login::write_private(&token_file, &format!("{token}\n"));
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ncert_file = \"certs/localhost.pem\"\nkey_file = \"certs/localhost-key.pem\"\n[audit]\nfile = \"audit.log\"\n[retention]\nsqlite_file = \"retained.db\"\n[retention.api]\ndpo_token = {{ file = \"dpo-{i}.token\" }}\n"
        );
        std::fs::write(dir.path().join("nymgate.toml"), config).unwrap();
        let check = nymgate(dir.path(), &["check", "--config", "nymgate.toml"]);
        let stdout = String::from_utf8_lossy(&check.stdout).into_owned();
        assert_eq!(check.status.success(), good, "check on {token:?}: {stdout}");
        if !good {
            assert!(stdout.contains("retention.api.dpo_token"), "{stdout}");
            assert!(!stdout.contains(token), "check echoed the token: {stdout}");
        }
        let log = dir.path().join(format!("serve-{i}.stderr"));
        let child = Command::new(env!("CARGO_BIN_EXE_nymgate"))
            .args(["serve", "--config", "nymgate.toml"])
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut serve = common::login::Peer(child);
        let started = common::login::wait_serving(&mut serve.0, &log);
        assert_eq!(started.is_ok(), good, "serve on {token:?}: {started:?}");
    }
}

#[test]
fn the_dpo_lookup_lists_the_old_and_the_new_number_after_a_rotation_window() {
    let world = World::start(Options { tenant_a: KEEP_STUDENTS, extra: STORE, ..Options::default() });
    let login = world.platform_login(serde_json::json!({}));
    let old = login["id_token_claims"]["sub"].as_str().unwrap().to_owned();
    let dir = world.dir.path();
    // A rotation whose window is already over: logins now get only the new number, while the
    // record made under the old one stays until culled.
    let rotated = nymgate(
        dir,
        &[
            "keys",
            "rotate",
            "--keyring",
            "keyring.toml",
            "--audit",
            "keys.log",
            "--scope",
            "school-a",
            "--window",
            "0s",
        ],
    );
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let out = nymgate(
        dir,
        &["pseudonym", "--config", "nymgate.toml", "--tenant", "school-a", "--subject", alice_sub()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let printed: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert!(printed[0].starts_with("v2-"), "{text}");
    assert!(printed.contains(&old.as_str()), "the old number is missing: {text}");
    let old_line = text.lines().find(|l| l.starts_with(&old)).unwrap();
    assert!(
        old_line.contains("older key version 1") && old_line.contains("holds a retained record"),
        "{text}"
    );
    // Each printed number is on record.
    let audit = lines(&world.file("audit.log"));
    for number in &printed {
        assert!(
            audit.iter().any(|l| l["action"] == "pseudonym_lookup" && l["account_number"] == *number),
            "{number} not audited"
        );
    }
    // Erasing by the printed numbers reaches the record made under the old one.
    for number in &printed {
        nymgate(
            dir,
            &["retention", "--config", "nymgate.toml", "erase", "--tenant", "school-a", "--account", number],
        );
    }
    assert_eq!(records(&world), 0, "a record survived an erasure by every printed number");
}
